/*
 * The operators' dashboard in Debian's headless Chromium (driven by playwright-core, no
 * downloaded browser): sign in, watch the numbers move while tool calls run in the background
 * (inline fixtures, an upstream MCP server, a queued backend run by the embedded worker), and
 * save screenshots under the OS temp directory.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import Redis from 'ioredis';
import { Browser, chromium, Page } from 'playwright-core';
import { TenantService } from '@portico/tenancy';
import { RunningGateway, startGateway } from './support/gateway';
import { within } from './support/sdk';
import { createApiKey, seedTenant } from './support/tenants';

const MODERN = '2026-07-28';
const REDIS = 'redis://127.0.0.1:6379';
const FIXTURE = join(
  __dirname,
  '..',
  'libs',
  'testing',
  'fixtures-upstream',
  'upstream-server.mjs',
);
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** The fixture upstream MCP server as a child process. */
async function startUpstream(): Promise<{ process: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [FIXTURE, '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const ready = new Promise<number>((resolve, reject) => {
    lines.on('line', (line) => {
      const match = /^READY (\d+)$/.exec(line);
      if (match) {
        resolve(Number(match[1]));
      }
    });
    child.once('exit', (code) => reject(new Error(`fixture upstream exited with ${code}`)));
  });
  const port = await within(ready, 10_000, 'fixture upstream start');
  return { process: child, url: `http://127.0.0.1:${port}/mcp` };
}

/** One modern-era tools/call; the HTTP status once the body is read. */
async function callTool(url: string, key: string, name: string, args: object = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${key}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN,
      'mcp-method': 'tools/call',
      'mcp-name': name,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: randomBytes(4).readUInt32BE(),
      method: 'tools/call',
      params: {
        name,
        arguments: args,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': MODERN,
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      },
    }),
  });
  await res.arrayBuffer();
  return res.status;
}

/** A number as the page prints it ("1,234", "3.40"); NaN for "—". */
function shown(text: string | null): number {
  return Number((text ?? '').replace(/,/g, '').replace(/\s*%$/, ''));
}

/** Polls `check` (in Node, through the page) until it holds. */
async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out waiting until ${what}`);
    }
    await sleep(100);
  }
}

async function screenshot(page: Page, name: string): Promise<string> {
  const path = join(tmpdir(), `portico-dashboard-${name}-${Date.now()}.png`);
  await page.screenshot({ path, fullPage: true });
  process.stdout.write(`dashboard screenshot: ${path}\n`);
  return path;
}

async function signIn(page: Page, token: string, tenant = ''): Promise<void> {
  await page.fill('#token', token);
  await page.fill('#tenant', tenant);
  await page.click('#sign-in');
}

describe('dashboard in headless Chromium', () => {
  const prefix = `portico-test-${randomBytes(4).toString('hex')}:`;
  let upstream: { process: ChildProcess; url: string };
  let gateway: RunningGateway;
  let browser: Browser;
  let page: Page;
  let platformKey: string;
  let globexAdmin: string;
  let acme: { url: string; key: string };
  let globex: { url: string; key: string };
  const problems: string[] = [];

  beforeAll(async () => {
    upstream = await startUpstream();
    gateway = await startGateway({
      BOOTSTRAP_ADMIN_TOKEN: 'browser-bootstrap-token-0123456789abcdef',
      REDIS_URL: REDIS,
      REDIS_KEY_PREFIX: prefix,
      WORKER_EMBEDDED: 'true',
      LOG_LEVEL: 'fatal',
    });
    const tenants = gateway.app.get(TenantService);
    platformKey = (
      await createApiKey(gateway.app, null, { name: 'ops', roles: ['platform-admin'] })
    ).secret;

    const a = await seedTenant(gateway.app, { slug: 'acme', fixtures: ['echo', 'conformance'] });
    await tenants.backends(a.tenant.id).insert({
      name: 'crm',
      kind: 'mcp-http',
      target: upstream.url,
      settings: { internal: true, timeoutMs: 2000 },
      credentialsSealed: null,
    });
    await tenants.changed(a.tenant);
    acme = { url: `${gateway.mcpUrl}/acme`, key: a.apiKey };

    const g = await seedTenant(gateway.app, { slug: 'globex', fixtures: ['conformance'] });
    const [backend] = await tenants.backends(g.tenant.id).find();
    await tenants.backends(g.tenant.id).update(backend.id, {
      settings: { executor: 'queued', timeoutMs: 5000 },
    });
    await tenants.changed((await tenants.byId(g.tenant.id))!);
    globex = { url: `${gateway.mcpUrl}/globex`, key: g.apiKey };
    globexAdmin = (
      await createApiKey(gateway.app, g.tenant.id, { name: 'admin', roles: ['tenant-admin'] })
    ).secret;

    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
    page.setDefaultTimeout(20_000);
    // Script errors and CSP violations (reported on the console) fail the suite.
    page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error' && !/status of 40[134]/.test(message.text())) {
        problems.push(`console: ${message.text()}`);
      }
    });
  });

  afterAll(async () => {
    await browser?.close();
    await gateway?.close();
    if (upstream && upstream.process.exitCode === null) {
      const exited = once(upstream.process, 'exit');
      upstream.process.kill('SIGKILL');
      await exited;
    }
    const redis = new Redis(REDIS);
    try {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) {
        await redis.del(...keys);
      }
    } finally {
      await redis.quit();
    }
  });

  it('shows live numbers that move while calls run, for every tenant', async () => {
    await page.goto(`${gateway.baseUrl}/dashboard`);
    await signIn(page, platformKey);
    await page.locator('#board').waitFor({ state: 'visible' });
    await page.locator('#status', { hasText: 'Live' }).waitFor();
    expect(await page.textContent('#scope')).toBe('All tenants');
    await page.locator('#footer', { hasText: 'updated' }).waitFor();
    const rateBefore = await page.textContent('#rate');

    let running = true;
    let calls = 0;
    const load = (async () => {
      while (running) {
        const statuses = await Promise.all([
          callTool(acme.url, acme.key, 'echo', { message: `m${calls}` }),
          callTool(acme.url, acme.key, 'crm__echo', { message: 'upstream' }),
          calls % 5 === 0
            ? callTool(acme.url, acme.key, 'test_error_handling')
            : callTool(acme.url, acme.key, 'test_simple_text'),
          callTool(globex.url, globex.key, 'test_simple_text'),
        ]);
        expect(statuses).toEqual([200, 200, 200, 200]);
        calls++;
        await sleep(40);
      }
    })();

    try {
      // Requests per second leave their resting value and become positive.
      await until('requests/s is positive', async () => {
        const text = await page.textContent('#rate');
        return text !== rateBefore && shown(text) > 0;
      });
      const acmeCalls = page.locator('#tenants tr[data-tenant="acme"] td[data-col="calls"]');
      await acmeCalls.waitFor();
      const first = shown(await acmeCalls.textContent());
      await until(
        'the call counter moves',
        async () => shown(await acmeCalls.textContent()) > first,
      );
      const globexCalls = page.locator('#tenants tr[data-tenant="globex"] td[data-col="calls"]');
      await until('globex has calls', async () => shown(await globexCalls.textContent()) > 0);
      // Latency, errors, the upstream's health and the queue, once there is data.
      await until('p99 is shown', async () => /\d/.test((await page.textContent('#p99')) ?? ''));
      const acmeErrors = page.locator('#tenants tr[data-tenant="acme"] td[data-col="errors"]');
      await until('acme errors are counted', async () => shown(await acmeErrors.textContent()) > 0);
      expect(await page.locator('#rate-chart path.line').count()).toBe(1);
      const crm = page.locator('#backends tr[data-backend="acme/crm"]');
      await crm.locator('td[data-col="health"]', { hasText: 'up' }).waitFor();
      await crm.locator('td[data-col="circuit"]', { hasText: 'closed' }).waitFor();
      await page.locator('#queues tr[data-queue="tool-calls"]').waitFor();
      // Let the charts gather some history for the picture.
      await sleep(8000);
    } finally {
      running = false;
      await load;
    }
    await screenshot(page, 'platform');
    expect(calls).toBeGreaterThan(0);
    expect(problems).toEqual([]);
  }, 60_000);

  it("shows a tenant administrator its own tenant and nobody else's", async () => {
    await page.click('#sign-out');
    await page.locator('#login').waitFor({ state: 'visible' });
    await signIn(page, globexAdmin);
    await page.locator('#scope', { hasText: 'Tenant globex' }).waitFor();
    await page.locator('#tenants tr[data-tenant="globex"]').waitFor();
    for (let i = 0; i < 5; i++) {
      expect(await callTool(globex.url, globex.key, 'test_simple_text')).toBe(200);
      expect(await callTool(acme.url, acme.key, 'echo', { message: 'hidden' })).toBe(200);
    }
    await until('tool calls/s is positive', async () => shown(await page.textContent('#rate')) > 0);
    expect(await page.locator('#tenants tbody tr').count()).toBe(1);
    expect(await page.isHidden('#queues-panel')).toBe(true);
    expect(await page.isHidden('#guard-card')).toBe(true);
    expect(await page.textContent('#rate-label')).toBe('Tool calls / s');
    expect(await page.textContent('body')).not.toContain('acme');
    await screenshot(page, 'tenant');
    expect(problems).toEqual([]);
  });

  it('keeps a refused credential on the sign-in form with the reason', async () => {
    await page.click('#sign-out');
    await signIn(page, `ptk_${'x'.repeat(43)}`);
    await page
      .locator('#login-error', { hasText: 'Unknown, revoked or expired API key' })
      .waitFor();
    expect(await page.isHidden('#board')).toBe(true);
    expect(await page.textContent('#status')).toBe('Signed out');
  });
});

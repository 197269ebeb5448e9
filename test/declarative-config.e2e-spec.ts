import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { AuditService, TenantService } from '@portico/tenancy';
import { DATABASE_KINDS, DatabaseKind, testDatabaseEnv } from '@portico/testing';
import { RunningGateway, startGateway } from './support/gateway';
import { assertCliBuilt, CLI_MAIN, cliEnv } from './support/stdio';

const run = promisify(execFile);
const EXAMPLE = resolve(__dirname, '../examples/portico.yaml');
const GATEWAY_MAIN = resolve(__dirname, '../dist/apps/gateway/apps/gateway/src/main.js');
const DEMO_KEY = `ptk_${'d'.repeat(40)}`;

async function cli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI_MAIN, ...args], {
      env: cliEnv(env),
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function callEcho(gateway: RunningGateway, key: string | undefined): Promise<Response> {
  return fetch(`${gateway.mcpUrl}/demo`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'tools/call',
      'mcp-name': 'echo',
      ...(key ? { authorization: `Bearer ${key}` } : {}),
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: {
        name: 'echo',
        arguments: { message: 'declared' },
        _meta: {
          'io.modelcontextprotocol/protocolVersion': '2026-07-28',
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      },
    }),
  });
}

describe('declarative configuration (portico.yaml)', () => {
  let dir: string;

  beforeAll(() => {
    assertCliBuilt();
    dir = mkdtempSync(join(tmpdir(), 'portico-decl-'));
    // Secret references resolve against the process environment.
    process.env.PORTICO_DEMO_API_KEY = DEMO_KEY;
  });

  afterAll(() => {
    delete process.env.PORTICO_DEMO_API_KEY;
    rmSync(dir, { recursive: true, force: true });
  });

  describe.each(DATABASE_KINDS)('on %s', (kind: DatabaseKind) => {
    let env: Record<string, string>;
    let cleanup: () => Promise<void>;

    beforeAll(async () => {
      ({ env, cleanup } = await testDatabaseEnv(kind));
      if (kind === 'sqlite') {
        // The CLI and the gateway are separate processes: share a file, not memory.
        env = { DATABASE_PATH: join(dir, `${kind}.db`) };
      }
    });

    afterAll(async () => {
      await cleanup();
    });

    it('`config apply` creates the declared tenant, and a second apply changes nothing', async () => {
      const first = await cli(['config', 'apply', EXAMPLE], {
        ...env,
        PORTICO_DEMO_API_KEY: DEMO_KEY,
      });
      expect(first.stderr).toBe('');
      expect(first.code).toBe(0);
      expect(first.stdout).toContain('created tenant:demo');
      expect(first.stdout).toContain('created api-key:demo/demo');
      const second = await cli(['config', 'apply', EXAMPLE], {
        ...env,
        PORTICO_DEMO_API_KEY: DEMO_KEY,
      });
      expect(second).toMatchObject({ code: 0, stdout: 'nothing to change\n' });
    });

    it('the gateway applies the file at boot and serves the tenant with the declared key', async () => {
      const gateway = await startGateway({ ...env, PORTICO_CONFIG_FILE: EXAMPLE });
      try {
        const ok = await callEcho(gateway, DEMO_KEY);
        expect(ok.status).toBe(200);
        const body = (await ok.json()) as { result: { content: { text: string }[] } };
        expect(body.result.content[0].text).toBe('declared');
        expect((await callEcho(gateway, undefined)).status).toBe(401);
        const tenant = await gateway.app.get(TenantService).bySlug('demo');
        const [events] = await gateway.app
          .get(AuditService)
          .query(tenant!.id, { action: 'tools/call', skip: 0, take: 10 });
        expect(events[0]).toMatchObject({
          action: 'tools/call',
          target: 'echo',
          outcome: 'success',
        });
      } finally {
        await gateway.close();
      }
    });

    it('a changed file is applied as a diff: removed backends go, a new key secret replaces the old', async () => {
      const changed = join(dir, `changed-${kind}.yaml`);
      writeFileSync(
        changed,
        [
          'version: 1',
          'tenants:',
          '  - slug: demo',
          '    name: Demo renamed',
          '    backends:',
          '      - { name: echo, kind: fixture, target: echo }',
          '    apiKeys:',
          '      - name: demo',
          '        secret: { env: OTHER_DEMO_KEY }',
          '        roles: [tool-user]',
        ].join('\n'),
      );
      const other = `ptk_${'e'.repeat(40)}`;
      const result = await cli(['config', 'apply', changed], { ...env, OTHER_DEMO_KEY: other });
      expect(result.code).toBe(0);
      expect(result.stdout).toContain('updated tenant:demo');
      expect(result.stdout).toContain('deleted backend:demo/fixtures');
      expect(result.stdout).toContain('deleted policy:demo/test_simple_text');
      expect(result.stdout).toContain('updated api-key:demo/demo');
      const gateway = await startGateway(env);
      try {
        expect((await callEcho(gateway, DEMO_KEY)).status).toBe(401);
        expect((await callEcho(gateway, other)).status).toBe(200);
      } finally {
        await gateway.close();
      }
    });
  });

  it('`config validate` lists every problem with its path and exits 1', async () => {
    const broken = join(dir, 'broken.yaml');
    writeFileSync(
      broken,
      [
        'version: 1',
        'tenants:',
        '  - slug: Bad_Slug',
        '    name: x',
        '    backends:',
        '      - { name: a, kind: mcp-http, target: not-a-url }',
        '    apiKeys:',
        '      - { name: k, secret: ptk_inline_secret_inline_secret_inline_secret }',
      ].join('\n'),
    );
    const result = await cli(['config', 'validate', broken], {});
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('tenants[0].slug');
    expect(result.stderr).toContain('tenants[0].backends[0].target');
    expect(result.stderr).toContain('tenants[0].apiKeys[0].secret');
    expect(result.stderr).not.toContain('ptk_inline_secret');
  });

  it('the gateway refuses to boot on an invalid file, naming the problem, without a stack trace', async () => {
    const broken = join(dir, 'boot-broken.yaml');
    writeFileSync(broken, 'version: 2\ntenants: []\n');
    const result = await run(process.execPath, [GATEWAY_MAIN], {
      env: cliEnv({ PORTICO_CONFIG_FILE: broken, PORT: '0' }),
    }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => err,
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`${broken} is invalid`);
    expect(result.stderr).toContain('version');
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});

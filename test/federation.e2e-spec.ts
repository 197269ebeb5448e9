/*
 * Federation, first increment: an upstream MCP server over Streamable HTTP (the fixture in
 * libs/testing/fixtures-upstream, its own process) registered as an `mcp-http` backend of a
 * tenant, reached through the real gateway with the tenant's API key in both eras.
 */
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { TenantService } from '@portico/tenancy';
import { RunningGateway, startGateway } from './support/gateway';
import { closeAll, connectV1, HttpRecorder, rejectionOf, within } from './support/sdk';
import { seedTenant } from './support/tenants';

const FIXTURE = join(
  __dirname,
  '..',
  'libs',
  'testing',
  'fixtures-upstream',
  'upstream-server.mjs',
);
const UPSTREAM_SECRET = 'Bearer upstream-secret';
const TIMEOUT_MS = 300;
const BREAKER_THRESHOLD = 3;
const BREAKER_RESET_MS = 1000;

/** The fixture upstream as a child process; `port` 0 lets the OS choose. */
class Upstream {
  private constructor(
    readonly process: ChildProcess,
    readonly port: number,
  ) {}

  static async start(port = 0): Promise<Upstream> {
    const child = spawn(process.execPath, [FIXTURE, String(port)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
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
    return new Upstream(child, await within(ready, 10_000, 'fixture upstream start'));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/mcp`;
  }

  async stats(): Promise<{ slowStarted: number; slowCancelled: number; slowFinished: number }> {
    const response = await fetch(`http://127.0.0.1:${this.port}/stats`);
    return (await response.json()) as {
      slowStarted: number;
      slowCancelled: number;
      slowFinished: number;
    };
  }

  /** Kills the process and waits until it is gone. */
  async stop(): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) {
      return;
    }
    const exited = once(this.process, 'exit');
    this.process.kill('SIGKILL');
    await exited;
  }
}

function firstText(result: unknown): string | undefined {
  const content = (result as { content?: { type: string; text?: string }[] }).content ?? [];
  return content.find((c) => c.type === 'text')?.text;
}

async function eventually<T>(probe: () => Promise<T>, accept: (value: T) => boolean, ms = 3000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (accept(value) || Date.now() > deadline) {
      return value;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

let gateway: RunningGateway;
let upstream: Upstream;
let endpoint: string;
let apiKey: string;
const clients: { close(): Promise<void> }[] = [];

async function connect(
  mode: 'auto' | 'legacy',
  options: ConstructorParameters<typeof Client>[1] = {},
): Promise<Client> {
  const client = new Client(
    { name: `e2e-federation-${mode}`, version: '1.0.0' },
    { ...options, versionNegotiation: { mode } },
  );
  await client.connect(
    new StreamableHTTPClientTransport(new URL(endpoint), {
      requestInit: { headers: { Authorization: `Bearer ${apiKey}` } },
    }),
  );
  clients.push(client);
  return client;
}

beforeAll(async () => {
  upstream = await Upstream.start();
  gateway = await startGateway({ LOG_LEVEL: process.env.E2E_LOG ?? 'silent' });
  const seeded = await seedTenant(gateway.app, { slug: 'fed', fixtures: [] });
  apiKey = seeded.apiKey;
  endpoint = `${gateway.mcpUrl}/fed`;
  const tenants = gateway.app.get(TenantService);
  await tenants.backends(seeded.tenant.id).insert({
    name: 'up',
    kind: 'mcp-http',
    target: upstream.url,
    settings: {
      internal: true,
      timeoutMs: TIMEOUT_MS,
      breakerThreshold: BREAKER_THRESHOLD,
      breakerResetMs: BREAKER_RESET_MS,
    },
    credentialsSealed: tenants.sealCredentials(seeded.tenant.id, 'up', {
      Authorization: UPSTREAM_SECRET,
    }),
  });
  // The same upstream without `internal`: the SSRF guard must leave it out.
  await tenants.backends(seeded.tenant.id).insert({
    name: 'ssrf',
    kind: 'mcp-http',
    target: upstream.url,
    settings: {},
    credentialsSealed: null,
  });
  await tenants.changed(seeded.tenant);
});

afterAll(async () => {
  await closeAll(...clients);
  await gateway?.close();
  await upstream?.stop();
  expect(upstream.process.exitCode !== null || upstream.process.signalCode !== null).toBe(true);
});

describe('an mcp-http upstream behind the gateway', () => {
  it.each(['auto', 'legacy'] as const)(
    'lists the namespaced upstream tools and prompts (%s client)',
    async (mode) => {
      const client = await connect(mode);
      const tools = (await client.listTools()).tools.map((t) => t.name);
      expect(tools).toEqual(
        expect.arrayContaining(['up__echo', 'up__slow', 'up__whoami', 'up__fail']),
      );
      // Refused by the SSRF guard (loopback target without settings.internal).
      expect(tools.filter((name) => name.startsWith('ssrf__'))).toEqual([]);
      const prompts = (await client.listPrompts()).prompts.map((p) => p.name);
      expect(prompts).toContain('up__greet');
      const resources = (await client.listResources()).resources.map((r) => r.uri);
      expect(resources).toContain('fixture://hello');
    },
  );

  it.each(['auto', 'legacy'] as const)(
    'forwards tools/call with the original name and arguments (%s client)',
    async (mode) => {
      const client = await connect(mode);
      const result = await client.callTool({ name: 'up__echo', arguments: { message: 'hi' } });
      expect(result.content).toEqual([{ type: 'text', text: 'hi' }]);
      expect(result.isError).toBeFalsy();
    },
  );

  it("sends the backend's credential upstream, never the client's token", async () => {
    const client = await connect('auto');
    const result = await client.callTool({ name: 'up__whoami', arguments: {} });
    expect(firstText(result)).toBe(UPSTREAM_SECRET);
    expect(firstText(result)).not.toContain(apiKey);
  });

  it('relays a failing upstream tool as the upstream reported it', async () => {
    const client = await connect('auto');
    const result = await client.callTool({ name: 'up__fail', arguments: {} });
    expect(result.isError).toBe(true);
    expect(firstText(result)).toContain('fixture failure');
  });

  it('forwards resources/read and prompts/get', async () => {
    const client = await connect('legacy');
    const read = await client.readResource({ uri: 'fixture://hello' });
    expect(read.contents).toEqual([
      { uri: 'fixture://hello', mimeType: 'text/plain', text: 'Hello, upstream!' },
    ]);
    const prompt = await client.getPrompt({ name: 'up__greet', arguments: { name: 'Ada' } });
    expect(prompt.messages).toEqual([
      { role: 'user', content: { type: 'text', text: 'Hello, Ada!' } },
    ]);
  });

  it("answers an upstream's resource-not-found in the code of the client's era", async () => {
    // SDK v2 reports either code as -32602 (its ResourceNotFoundError): read the wire with v1.
    const modern = await connect('auto');
    const missing = await rejectionOf(modern.readResource({ uri: 'fixture://missing/7' }));
    expect(missing.code).toBe(-32602);
    expect(missing.data).toEqual(expect.objectContaining({ uri: 'fixture://missing/7' }));
    const recorder = new HttpRecorder((url, init) => {
      const headers = new Headers(init?.headers);
      headers.set('authorization', `Bearer ${apiKey}`);
      return fetch(url, { ...init, headers });
    });
    const { client: legacy } = await connectV1(endpoint, { recorder });
    clients.push(legacy);
    // A session closed before its standalone stream is open would leave that stream open.
    await recorder.waitFor((e) => e.httpMethod === 'GET' && e.status === 200);
    const old = await rejectionOf(legacy.readResource({ uri: 'fixture://missing/8' }));
    expect(old.code).toBe(-32002);
    expect(old.data).toEqual(expect.objectContaining({ uri: 'fixture://missing/8' }));
  });

  it('cancels the upstream call when the client abandons its request', async () => {
    const client = await connect('auto');
    const before = await upstream.stats();
    const abort = new AbortController();
    const call = client.callTool(
      { name: 'up__slow', arguments: { ms: 250 } },
      { signal: abort.signal },
    );
    await eventually(
      () => upstream.stats(),
      (s) => s.slowStarted > before.slowStarted,
    );
    abort.abort();
    await expect(call).rejects.toThrow();
    const after = await eventually(
      () => upstream.stats(),
      (s) => s.slowCancelled > before.slowCancelled,
    );
    expect(after.slowCancelled).toBe(before.slowCancelled + 1);
  });

  it('answers a call beyond timeoutMs with a clear error and aborts it upstream', async () => {
    const client = await connect('auto');
    const before = await upstream.stats();
    const started = Date.now();
    const result = await rejectionOf(
      client.callTool({ name: 'up__slow', arguments: { ms: 5000 } }),
    );
    expect(Date.now() - started).toBeLessThan(1000);
    expect(result.code).toBe(-32603);
    expect(result.message).toContain(`Backend up unavailable: timed out after ${TIMEOUT_MS} ms`);
    const after = await eventually(
      () => upstream.stats(),
      (s) => s.slowCancelled > before.slowCancelled,
    );
    expect(after.slowCancelled).toBe(before.slowCancelled + 1);
    // A success closes the breaker's count again before the outage below.
    await client.callTool({ name: 'up__echo', arguments: { message: 'ok' } });
  });

  it.each(['auto', 'legacy'] as const)(
    "follows the upstream's tools list_changed and tells the client (%s client)",
    async (mode) => {
      const seen: string[][] = [];
      const client = await connect(mode, {
        listChanged: {
          tools: {
            debounceMs: 0,
            onChanged: (_error, tools) => {
              if (tools) {
                seen.push(tools.map((t) => t.name));
              }
            },
          },
        },
      });
      const names = async () =>
        (await client.listTools(undefined, { cacheMode: 'refresh' })).tools.map((t) => t.name);
      expect(await names()).not.toContain('up__extra');

      await client.callTool({ name: 'up__toggle_extra', arguments: {} });
      await eventually(
        () => Promise.resolve(seen.at(-1) ?? []),
        (latest) => latest.includes('up__extra'),
      );
      expect(seen.at(-1)).toContain('up__extra');
      const extra = await client.callTool({ name: 'up__extra', arguments: {} });
      expect(firstText(extra)).toBe('extra');

      await client.callTool({ name: 'up__toggle_extra', arguments: {} });
      expect(await eventually(names, (list) => !list.includes('up__extra'))).not.toContain(
        'up__extra',
      );
    },
  );

  it('fails fast when the upstream dies, opens the circuit, and recovers after a restart', async () => {
    const client = await connect('auto');
    const port = upstream.port;

    // Killed mid-call: a clear error, not a hang.
    const inFlight = rejectionOf(client.callTool({ name: 'up__slow', arguments: { ms: 250 } }));
    await eventually(
      () => upstream.stats(),
      (s) => s.slowStarted > s.slowCancelled + s.slowFinished,
    );
    await upstream.stop();
    const killed = await within(inFlight, 2000, 'call to a killed upstream');
    expect(killed.code).toBe(-32603);
    expect(killed.message).toMatch(/^Backend up unavailable: /);

    // Further failures open the circuit; then calls are refused at once.
    let refusal = killed;
    for (let i = 0; i < BREAKER_THRESHOLD && !refusal.message.includes('circuit open'); i++) {
      refusal = await rejectionOf(
        client.callTool({ name: 'up__echo', arguments: { message: 'x' } }),
      );
      expect(refusal.message).toMatch(/^Backend up unavailable: /);
    }
    const started = Date.now();
    const open = await rejectionOf(
      client.callTool({ name: 'up__echo', arguments: { message: 'x' } }),
    );
    expect(Date.now() - started).toBeLessThan(200);
    expect(open.code).toBe(-32603);
    expect(open.message).toBe('Backend up unavailable: circuit open');

    // Back on the same port: once the circuit half-opens, calls go through again.
    upstream = await Upstream.start(port);
    const restarted = Date.now();
    const result = await eventually(
      () =>
        client
          .callTool({ name: 'up__echo', arguments: { message: 'back' } })
          .then(firstText, (err: Error) => err.message),
      (text) => text === 'back',
      BREAKER_RESET_MS + 3000,
    );
    expect(result).toBe('back');
    expect(Date.now() - restarted).toBeGreaterThanOrEqual(BREAKER_RESET_MS / 2);
  });
});

/*
 * Federation over the other upstream transports: an `mcp-stdio` backend (a child process the
 * gateway starts, libs/testing/fixtures-upstream/stdio-server.mjs), an `mcp-sse` backend (the
 * 2024-11-05 HTTP+SSE fixture) and an `mcp-ws` backend (the WebSocket fixture), all reached
 * through the real gateway with a tenant's API key.
 *
 * stdio backends are off unless the gateway allows them (UpstreamOptions.stdioEnabled, from
 * UPSTREAM_STDIO_ENABLED); this suite boots the gateway's modules with them allowed. Nest's
 * logger is captured to check what reaches the log.
 */
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { LoggerService } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { loadConfig } from '@portico/config';
import { GatewayMetrics, Tracing } from '@portico/observability';
import { UpstreamOptions } from '@portico/registry/upstream/upstream-options';
import { UpstreamSourceFactory } from '@portico/registry';
import type { TenantEntity } from '@portico/persistence';
import { TenantService } from '@portico/tenancy';
import { AppModule } from '../apps/gateway/src/app.module';
import { StreamableHttpTransport } from '../apps/gateway/src/mcp/streamable-http.transport';
import { McpWsAdapter } from '../apps/gateway/src/mcp/websocket/mcp-ws.adapter';
import { closeAll, rejectionOf, Rejection, within } from './support/sdk';
import { seedTenant } from './support/tenants';

const FIXTURES = join(__dirname, '..', 'libs', 'testing', 'fixtures-upstream');
const STDIO_SECRET = 'stdio-secret-4f9a1c';
const SSE_SECRET = 'Bearer sse-secret-77b2';
const WS_SECRET = 'Bearer ws-secret-0c3e';
/** A gateway secret in the environment: stdio children must not inherit it. */
const GATEWAY_SECRET = 'gateway-secret-e61d';
const BREAKER_THRESHOLD = 2;
const BREAKER_RESET_MS = 800;
const RESILIENCE = {
  internal: true,
  timeoutMs: 5000,
  breakerThreshold: BREAKER_THRESHOLD,
  breakerResetMs: BREAKER_RESET_MS,
};

/** Nest's log lines as written, all levels. */
class CapturedLog implements LoggerService {
  readonly lines: { level: string; text: string }[] = [];
  log(message: unknown, ...rest: unknown[]) {
    this.add('log', message, rest);
  }
  error(message: unknown, ...rest: unknown[]) {
    this.add('error', message, rest);
  }
  warn(message: unknown, ...rest: unknown[]) {
    this.add('warn', message, rest);
  }
  debug(message: unknown, ...rest: unknown[]) {
    this.add('debug', message, rest);
  }
  verbose(message: unknown, ...rest: unknown[]) {
    this.add('verbose', message, rest);
  }
  fatal(message: unknown, ...rest: unknown[]) {
    this.add('fatal', message, rest);
  }
  private add(level: string, message: unknown, rest: unknown[]) {
    const text = [message, ...rest]
      .map((part) => (typeof part === 'string' ? part : JSON.stringify(part)))
      .join(' ');
    this.lines.push({ level, text });
  }
}

/** A fixture upstream server as a child process; `port` 0 lets the OS choose. */
class Upstream {
  private constructor(
    readonly process: ChildProcess,
    readonly port: number,
  ) {}

  static async start(script: string, port = 0): Promise<Upstream> {
    const child = spawn(process.execPath, [join(FIXTURES, script), String(port)], {
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
      child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
    });
    return new Upstream(child, await within(ready, 10_000, `${script} start`));
  }

  async stop(): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) {
      return;
    }
    const exited = once(this.process, 'exit');
    this.process.kill('SIGKILL');
    await exited;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function eventually<T>(probe: () => Promise<T>, accept: (value: T) => boolean, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (accept(value) || Date.now() > deadline) {
      return value;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function firstText(result: unknown): string | undefined {
  const content = (result as { content?: { type: string; text?: string }[] }).content ?? [];
  return content.find((c) => c.type === 'text')?.text;
}

interface ChildEnv {
  pid: number;
  argv: string[];
  cwd: string;
  token: string | null;
  greeting: string | null;
  inherited: string[];
}

let app: NestFastifyApplication;
let log: CapturedLog;
let tenant: TenantEntity;
let apiKey: string;
let endpoint: string;
let sse: Upstream;
let ws: Upstream;
let workDir: string;
let refuseFile: string;
let savedSecret: string | undefined;
const clients: Client[] = [];

async function connect(mode: 'auto' | 'legacy' = 'auto'): Promise<Client> {
  const client = new Client(
    { name: `e2e-transports-${mode}`, version: '1.0.0' },
    { versionNegotiation: { mode } },
  );
  await client.connect(
    new StreamableHTTPClientTransport(new URL(endpoint), {
      requestInit: { headers: { Authorization: `Bearer ${apiKey}` } },
    }),
  );
  clients.push(client);
  return client;
}

async function childEnv(client: Client): Promise<ChildEnv> {
  const result = await client.callTool({ name: 'stdio__env', arguments: {} });
  return JSON.parse(firstText(result) ?? 'null') as ChildEnv;
}

/** Calls until the breaker answers "circuit open"; every answer on the way is a clear outage. */
async function untilCircuitOpens(call: () => Promise<unknown>, backend: string) {
  let last: Rejection | undefined;
  for (let i = 0; i <= BREAKER_THRESHOLD + 1; i++) {
    last = await rejectionOf(call());
    expect(last.code).toBe(-32603);
    expect(last.message).toMatch(new RegExp(`^Backend ${backend} unavailable: `));
    if (last.message.endsWith('circuit open')) {
      break;
    }
  }
  return last!;
}

beforeAll(async () => {
  savedSecret = process.env.PORTICO_SECRET;
  process.env.PORTICO_SECRET = GATEWAY_SECRET;
  workDir = mkdtempSync(join(tmpdir(), 'portico-stdio-'));
  refuseFile = join(workDir, 'refuse');
  [sse, ws] = await Promise.all([
    Upstream.start('sse-server.mjs'),
    Upstream.start('ws-server.mjs'),
  ]);

  const config = loadConfig({
    LOG_LEVEL: 'silent',
    PORTICO_SECRET: 'test-secret-test-secret-test-secret!',
    DATABASE_PATH: ':memory:',
    MASTER_KEYS: `test:${Buffer.alloc(32, 7).toString('base64')}`,
    PORT: '0',
    HOST: '127.0.0.1',
  });
  const moduleRef = await Test.createTestingModule({ imports: [AppModule.forRoot(config)] })
    // Until UPSTREAM_STDIO_ENABLED reaches the config, the switch is set here.
    .overrideProvider(UpstreamSourceFactory)
    .useFactory({
      factory: (metrics?: GatewayMetrics, tracing?: Tracing) =>
        new UpstreamSourceFactory(metrics, tracing, new UpstreamOptions({ stdioEnabled: true })),
      inject: [
        { token: GatewayMetrics, optional: true },
        { token: Tracing, optional: true },
      ],
    })
    .compile();
  app = moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter());
  log = new CapturedLog();
  app.useLogger(log);
  // The gateway's WebSocket endpoint is part of its modules: it needs its adapter.
  app.useWebSocketAdapter(new McpWsAdapter(app, config.mcp.path, config.http.maxBodyBytes));
  app
    .get(StreamableHttpTransport)
    .register(app.getHttpAdapter().getInstance(), config.mcp.path, config.http.maxBodyBytes);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.getHttpServer().address() as { port: number };

  const seeded = await seedTenant(app, { slug: 'trans', fixtures: [] });
  tenant = seeded.tenant;
  apiKey = seeded.apiKey;
  endpoint = `http://127.0.0.1:${address.port}${config.mcp.path}/trans`;
  const tenants = app.get(TenantService);
  const backends = tenants.backends(tenant.id);
  await backends.insert({
    name: 'stdio',
    kind: 'mcp-stdio',
    target: `"${process.execPath}" '${join(FIXTURES, 'stdio-server.mjs')}' "two words"`,
    settings: {
      ...RESILIENCE,
      args: ['--flag'],
      cwd: workDir,
      env: { FIXTURE_GREETING: 'hello', FIXTURE_REFUSE_FILE: refuseFile },
    },
    credentialsSealed: tenants.sealCredentials(tenant.id, 'stdio', { FIXTURE_TOKEN: STDIO_SECRET }),
  });
  await backends.insert({
    name: 'sse',
    kind: 'mcp-sse',
    target: `http://127.0.0.1:${sse.port}/sse`,
    settings: RESILIENCE,
    credentialsSealed: tenants.sealCredentials(tenant.id, 'sse', { Authorization: SSE_SECRET }),
  });
  await backends.insert({
    name: 'ws',
    kind: 'mcp-ws',
    target: `ws://127.0.0.1:${ws.port}/`,
    settings: RESILIENCE,
    credentialsSealed: tenants.sealCredentials(tenant.id, 'ws', { Authorization: WS_SECRET }),
  });
  // The same WebSocket upstream without `internal`: the SSRF guard must leave it out.
  await backends.insert({
    name: 'wsguarded',
    kind: 'mcp-ws',
    target: `ws://127.0.0.1:${ws.port}/`,
    settings: {},
    credentialsSealed: null,
  });
  await tenants.changed(tenant);
});

afterAll(async () => {
  await closeAll(...clients);
  await app?.close();
  await Promise.all([sse?.stop(), ws?.stop()]);
  rmSync(workDir, { recursive: true, force: true });
  if (savedSecret === undefined) {
    delete process.env.PORTICO_SECRET;
  } else {
    process.env.PORTICO_SECRET = savedSecret;
  }
});

describe('an mcp-stdio upstream behind the gateway', () => {
  it('lists the child process tools under namespaced names', async () => {
    const client = await connect();
    const tools = (await client.listTools()).tools.map((t) => t.name);
    expect(tools).toEqual(
      expect.arrayContaining(['stdio__echo', 'stdio__fail', 'stdio__crash', 'stdio__env']),
    );
    const templates = (await client.listResourceTemplates()).resourceTemplates;
    expect(templates.map((t) => t.uriTemplate)).toContain('fixture://items/{id}');
  });

  it.each(['auto', 'legacy'] as const)(
    'forwards tools/call with its arguments (%s)',
    async (mode) => {
      const client = await connect(mode);
      const result = await client.callTool({ name: 'stdio__echo', arguments: { message: 'hi' } });
      expect(result.content).toEqual([{ type: 'text', text: 'hi' }]);
      expect(result.isError).toBeFalsy();
    },
  );

  it('starts the command with its arguments, cwd and env; credentials only as variables', async () => {
    const env = await childEnv(await connect());
    expect(env.argv).toEqual(['two words', '--flag']);
    expect(env.cwd).toBe(workDir);
    expect(env.greeting).toBe('hello');
    expect(env.token).toBe(STDIO_SECRET);
    // The gateway's own environment is not handed down.
    expect(env.inherited).toEqual([]);
  });

  it('relays a tool error as reported and keeps an upstream JSON-RPC error', async () => {
    const client = await connect();
    const failed = await client.callTool({ name: 'stdio__fail', arguments: {} });
    expect(failed.isError).toBe(true);
    expect(firstText(failed)).toContain('fixture failure');

    expect(await client.readResource({ uri: 'fixture://items/1' })).toMatchObject({
      contents: [{ uri: 'fixture://items/1', text: 'item 1' }],
    });
    const missing = await rejectionOf(client.readResource({ uri: 'fixture://items/2' }));
    expect(missing.code).toBe(-32602);
    expect(missing.message).toContain('no item 2');
  });

  it('starts a new child on the next call after the child was killed', async () => {
    const client = await connect();
    const before = await childEnv(client);
    process.kill(before.pid, 'SIGKILL');
    await eventually(
      () => Promise.resolve(alive(before.pid)),
      (running) => !running,
    );
    expect(alive(before.pid)).toBe(false);
    const after = await eventually(
      () => childEnv(client).catch(() => undefined),
      (env) => env !== undefined,
    );
    expect(after?.pid).not.toBe(before.pid);
    expect(alive(after!.pid)).toBe(true);
  });

  it('answers a call cut short by the child exiting with a clear error, then recovers', async () => {
    const client = await connect();
    const crashed = await rejectionOf(client.callTool({ name: 'stdio__crash', arguments: {} }));
    expect(crashed.code).toBe(-32603);
    expect(crashed.message).toMatch(/^Backend stdio unavailable: /);
    const echoed = await client.callTool({ name: 'stdio__echo', arguments: { message: 'back' } });
    expect(firstText(echoed)).toBe('back');
  });

  it('counts failed restarts in the breaker, then recovers once the command starts again', async () => {
    const client = await connect();
    const { pid } = await childEnv(client);
    writeFileSync(refuseFile, '');
    try {
      process.kill(pid, 'SIGKILL');
      await eventually(
        () => Promise.resolve(alive(pid)),
        (running) => !running,
      );
      const open = await untilCircuitOpens(
        () => client.callTool({ name: 'stdio__echo', arguments: { message: 'x' } }),
        'stdio',
      );
      expect(open.message).toBe('Backend stdio unavailable: circuit open');
    } finally {
      rmSync(refuseFile, { force: true });
    }
    const text = await eventually(
      () =>
        client
          .callTool({ name: 'stdio__echo', arguments: { message: 'again' } })
          .then(firstText, (err: Error) => err.message),
      (value) => value === 'again',
      BREAKER_RESET_MS + 5000,
    );
    expect(text).toBe('again');
  });

  it("logs the child's stderr at debug and never its credentials", () => {
    const relayed = log.lines.filter((line) => line.text.includes('stdio fixture started'));
    expect(relayed.length).toBeGreaterThan(0);
    expect(relayed.every((line) => line.level === 'debug')).toBe(true);
    expect(relayed[0].text).toContain('Backend stdio (tenant trans) stderr:');
    const leaks = log.lines.filter((line) =>
      [STDIO_SECRET, SSE_SECRET, WS_SECRET].some((secret) => line.text.includes(secret)),
    );
    expect(leaks).toEqual([]);
  });

  it("stops the child when the tenant's catalog is replaced", async () => {
    const client = await connect();
    const { pid } = await childEnv(client);
    await app.get(TenantService).changed(tenant);
    await eventually(
      () => Promise.resolve(alive(pid)),
      (running) => !running,
      8000,
    );
    expect(alive(pid)).toBe(false);
    const next = await childEnv(client);
    expect(next.pid).not.toBe(pid);
  });
});

describe('an mcp-sse (HTTP+SSE) upstream behind the gateway', () => {
  it('lists and calls its tools with the backend credential on the stream request', async () => {
    const client = await connect();
    const tools = (await client.listTools()).tools.map((t) => t.name);
    expect(tools).toEqual(
      expect.arrayContaining(['sse__echo', 'sse__whoami', 'sse__fail', 'sse__reject']),
    );
    const echoed = await client.callTool({ name: 'sse__echo', arguments: { message: 'hi' } });
    expect(firstText(echoed)).toBe('hi');
    const who = await client.callTool({ name: 'sse__whoami', arguments: {} });
    expect(firstText(who)).toBe(SSE_SECRET);
  });

  it('relays a tool error and keeps an upstream JSON-RPC error code', async () => {
    const client = await connect();
    const failed = await client.callTool({ name: 'sse__fail', arguments: {} });
    expect(failed.isError).toBe(true);
    expect(firstText(failed)).toBe('fixture failure');
    const rejected = await rejectionOf(client.callTool({ name: 'sse__reject', arguments: {} }));
    expect(rejected.code).toBe(-32602);
    expect(rejected.message).toContain('fixture rejects this call');
  });

  it('answers clearly when the upstream is down, opens the circuit, and recovers', async () => {
    const client = await connect();
    const port = sse.port;
    await sse.stop();
    const open = await untilCircuitOpens(
      () => client.callTool({ name: 'sse__echo', arguments: { message: 'x' } }),
      'sse',
    );
    expect(open.message).toBe('Backend sse unavailable: circuit open');

    sse = await Upstream.start('sse-server.mjs', port);
    const text = await eventually(
      () =>
        client
          .callTool({ name: 'sse__echo', arguments: { message: 'back' } })
          .then(firstText, (err: Error) => err.message),
      (value) => value === 'back',
      BREAKER_RESET_MS + 5000,
    );
    expect(text).toBe('back');
  });
});

describe('an mcp-ws (WebSocket) upstream behind the gateway', () => {
  it('lists and calls its tools with the backend credential on the upgrade request', async () => {
    const client = await connect();
    const tools = (await client.listTools()).tools.map((t) => t.name);
    expect(tools).toEqual(expect.arrayContaining(['ws__echo', 'ws__whoami', 'ws__fail']));
    // Refused by the SSRF guard (loopback target without settings.internal).
    expect(tools.filter((name) => name.startsWith('wsguarded__'))).toEqual([]);
    const echoed = await client.callTool({ name: 'ws__echo', arguments: { message: 'hi' } });
    expect(firstText(echoed)).toBe('hi');
    const who = await client.callTool({ name: 'ws__whoami', arguments: {} });
    expect(firstText(who)).toBe(WS_SECRET);
  });

  it('relays a tool error and keeps an upstream JSON-RPC error code', async () => {
    const client = await connect();
    const failed = await client.callTool({ name: 'ws__fail', arguments: {} });
    expect(failed.isError).toBe(true);
    expect(firstText(failed)).toContain('fixture failure');
    const missing = await rejectionOf(client.readResource({ uri: 'fixture://ws-items/9' }));
    expect(missing.code).toBe(-32602);
    expect(missing.message).toContain('no item 9');
  });

  it('answers clearly when the upstream is down, opens the circuit, and recovers', async () => {
    const client = await connect();
    const port = ws.port;
    await ws.stop();
    const open = await untilCircuitOpens(
      () => client.callTool({ name: 'ws__echo', arguments: { message: 'x' } }),
      'ws',
    );
    expect(open.message).toBe('Backend ws unavailable: circuit open');

    ws = await Upstream.start('ws-server.mjs', port);
    const text = await eventually(
      () =>
        client
          .callTool({ name: 'ws__echo', arguments: { message: 'back' } })
          .then(firstText, (err: Error) => err.message),
      (value) => value === 'back',
      BREAKER_RESET_MS + 5000,
    );
    expect(text).toBe('back');
  });
});

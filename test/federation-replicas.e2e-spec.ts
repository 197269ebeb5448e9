/*
 * Backends with replicas (settings.replicas): several instances of the fixture upstream MCP
 * server (libs/testing/fixtures-upstream/upstream-server.mjs) and of the REST fixture
 * (libs/testing/fixtures-openapi/rest-server.mjs), each its own process, behind one backend
 * of the real gateway (booted in-process). Which instance served a call is read from its own
 * GET /stats: the MCP fixture lists the tools/call requests it received, the REST fixture
 * counts calls per operation. Health is read from portico_backend_replica_up on /metrics.
 */
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { TenantService } from '@portico/tenancy';
import type { TenantEntity } from '@portico/persistence';
import { RunningGateway, startGateway } from './support/gateway';
import { closeAll, later, rejectionOf, within } from './support/sdk';
import { seedTenant } from './support/tenants';

const ROOT = join(__dirname, '..');
const MCP_FIXTURE = join(ROOT, 'libs/testing/fixtures-upstream/upstream-server.mjs');
const REST_FIXTURE = join(ROOT, 'libs/testing/fixtures-openapi/rest-server.mjs');
const WAIT_MS = 20_000;
/** Probed often, so that the suite need not wait long for a verdict. */
const HEALTH = { intervalMs: 150, timeoutMs: 1000, unhealthyAfter: 1, healthyAfter: 1 };

/** A fixture process; `port` 0 lets the OS choose. */
class Fixture {
  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
    private readonly script: string,
  ) {}

  static async start(script: string, port = 0): Promise<Fixture> {
    const child = spawn(process.execPath, [script, String(port)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const ready = new Promise<number>((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        const match = /^READY (\d+)$/.exec(line);
        if (match) {
          resolve(Number(match[1]));
        }
      });
      child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
    });
    return new Fixture(child, await within(ready, WAIT_MS, 'fixture start'), script);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The same fixture again, on the same port. */
  restart(): Promise<Fixture> {
    return Fixture.start(this.script, this.port);
  }

  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) {
      return;
    }
    const exited = once(this.child, 'exit');
    this.child.kill('SIGKILL');
    await exited;
  }

  async stats<T>(): Promise<T> {
    const response = await fetch(`${this.url}/stats`);
    return (await response.json()) as T;
  }

  /** tools/call requests of `tool` this process received. */
  async calls(tool: string): Promise<number> {
    const stats = await this.stats<{ toolCalls: { name: string }[] }>();
    return stats.toolCalls.filter((c) => c.name === tool).length;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function text(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] }).content ?? [];
  return content.find((c) => c.type === 'text')?.text ?? '';
}

async function eventually<T>(probe: () => Promise<T>, accept: (value: T) => boolean): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await probe();
    if (accept(value) || Date.now() > deadline) {
      return value;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

let gateway: RunningGateway;
let tenants: TenantService;
let tenant: TenantEntity;
let client: Client;
const fixtures: Fixture[] = [];

async function start(script: string, port?: number): Promise<Fixture> {
  const fixture = await Fixture.start(script, port);
  fixtures.push(fixture);
  return fixture;
}

/** portico_backend_replica_up of `backend`'s replica `index` (undefined: no such series). */
async function replicaUp(backend: string, index: number): Promise<number | undefined> {
  const body = await (await fetch(`${gateway.baseUrl}/metrics`)).text();
  const series =
    `portico_backend_replica_up{tenant="${tenant.slug}",backend="${backend}",` +
    `replica="${index}"} `;
  const line = body.split('\n').find((l) => l.startsWith(series));
  return line === undefined ? undefined : Number(line.slice(series.length));
}

async function waitForReplica(backend: string, index: number, up: boolean): Promise<void> {
  const value = await eventually(
    () => replicaUp(backend, index),
    (v) => v === (up ? 1 : 0),
  );
  expect(value).toBe(up ? 1 : 0);
}

async function addBackend(
  name: string,
  kind: 'mcp-http' | 'openapi',
  target: string,
  settings: Record<string, unknown>,
): Promise<void> {
  await tenants.backends(tenant.id).insert({
    name,
    kind,
    target,
    settings: { internal: true, timeoutMs: 5000, healthCheck: HEALTH, ...settings },
    credentialsSealed: null,
  });
}

function call(name: string, args: Record<string, unknown> = {}, signal?: AbortSignal) {
  return client.callTool({ name, arguments: args }, { signal, timeout: WAIT_MS });
}

/** Calls `name` `times` times, one after the other; every answer must be a success. */
async function callInTurn(name: string, times: number, args = { message: 'hi' }): Promise<void> {
  for (let i = 0; i < times; i++) {
    const result = await call(name, args);
    expect(result.isError).not.toBe(true);
  }
}

/** How many calls of `tool` each fixture received while `run` ran. */
async function served(tool: string, on: Fixture[], run: () => Promise<void>): Promise<number[]> {
  const before = await Promise.all(on.map((f) => f.calls(tool)));
  await run();
  const after = await Promise.all(on.map((f) => f.calls(tool)));
  return after.map((count, i) => count - before[i]);
}

describe('backends with replicas', () => {
  let a: Fixture;
  let b: Fixture;
  let c: Fixture;
  let d: Fixture;
  let e: Fixture;
  let f: Fixture;
  let g: Fixture;
  let lateB: Fixture | undefined;
  let latePort: number;
  let rest1: Fixture;
  let rest2: Fixture;

  beforeAll(async () => {
    [a, b, c, d, e, f, g, rest1, rest2] = await Promise.all([
      start(MCP_FIXTURE),
      start(MCP_FIXTURE),
      start(MCP_FIXTURE),
      start(MCP_FIXTURE),
      start(MCP_FIXTURE),
      start(MCP_FIXTURE),
      start(MCP_FIXTURE),
      start(REST_FIXTURE),
      start(REST_FIXTURE),
    ]);
    latePort = await freePort();
    gateway = await startGateway({ LOG_LEVEL: process.env.E2E_LOG ?? 'silent' });
    const seeded = await seedTenant(gateway.app, { slug: 'replicas', fixtures: [] });
    tenant = seeded.tenant;
    tenants = gateway.app.get(TenantService);
    const mcp = (f: Fixture) => `${f.url}/mcp`;
    await addBackend('rr', 'mcp-http', mcp(a), { replicas: [mcp(b), mcp(c)] });
    await addBackend('lif', 'mcp-http', mcp(d), {
      replicas: [mcp(e)],
      loadBalancing: 'least-in-flight',
    });
    // Probed once a minute: only calls find out that a replica is gone.
    await addBackend('retry', 'mcp-http', mcp(f), {
      replicas: [mcp(g)],
      healthCheck: { ...HEALTH, intervalMs: 60_000 },
    });
    // Its replica is down when the catalog is built; it starts later.
    await addBackend('late', 'mcp-http', mcp(a), {
      replicas: [`http://127.0.0.1:${latePort}/mcp`],
    });
    await addBackend('pets', 'openapi', `${rest1.url}/openapi.json`, {
      replicas: [`${rest2.url}/api`],
      healthCheck: { ...HEALTH, path: '/pets?limit=1' },
    });
    await tenants.changed(tenant);
    client = new Client({ name: 'e2e-replicas', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${gateway.mcpUrl}/${tenant.slug}`), {
        requestInit: { headers: { Authorization: `Bearer ${seeded.apiKey}` } },
      }),
    );
  }, 60_000);

  afterAll(async () => {
    await closeAll(client);
    await gateway?.close();
    await Promise.all([...fixtures, ...(lateB ? [lateB] : [])].map((f) => f.kill()));
  });

  it('lists the catalog of the replicas once, under the backend prefix', async () => {
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    expect(names.filter((n) => n === 'rr__echo')).toHaveLength(1);
    expect(names).toEqual(expect.arrayContaining(['lif__echo', 'late__echo', 'pets__listPets']));
  });

  it('spreads calls over the replicas in turn (round robin)', async () => {
    const counts = await served('echo', [a, b, c], () => callInTurn('rr__echo', 6));
    expect(counts).toEqual([2, 2, 2]);
  });

  it('sends calls to the idle replica while the other is busy (least in flight)', async () => {
    const busy = new AbortController();
    const started = await Promise.all([d, e].map((f) => f.stats<{ slowStarted: number }>()));
    const slow = later(call('lif__slow', { ms: 60_000 }, busy.signal));
    // Wait until one replica is serving the long call.
    const running = await eventually(
      () => Promise.all([d, e].map((f) => f.stats<{ slowStarted: number }>())),
      (now) => now.some((s, i) => s.slowStarted > started[i].slowStarted),
    );
    const busyIndex = running.findIndex((s, i) => s.slowStarted > started[i].slowStarted);
    expect(busyIndex).not.toBe(-1);
    const counts = await served('echo', [d, e], () => callInTurn('lif__echo', 4));
    busy.abort();
    await slow.catch(() => undefined);
    expect(counts[busyIndex]).toBe(0);
    expect(counts[1 - busyIndex]).toBe(4);
  });

  it('takes a killed replica out of rotation and brings it back once restarted', async () => {
    await b.kill();
    // A call that reaches it first fails; the health checks find it sooner or later anyway.
    await waitForReplica('rr', 1, false);
    const whileDown = await served('echo', [a, c], () => callInTurn('rr__echo', 6));
    expect(whileDown).toEqual([3, 3]);

    const restarted = await b.restart();
    fixtures.push(restarted);
    await waitForReplica('rr', 1, true);
    const counts = await served('echo', [a, restarted, c], () => callInTurn('rr__echo', 6));
    expect(counts).toEqual([2, 2, 2]);
  });

  it('connects a replica that was down at registration once it comes up', async () => {
    expect(await replicaUp('late', 1)).toBe(0);
    const before = await served('echo', [a], () => callInTurn('late__echo', 2));
    expect(before).toEqual([2]);

    lateB = await Fixture.start(MCP_FIXTURE, latePort);
    await waitForReplica('late', 1, true);
    const counts = await served('echo', [a, lateB], () => callInTurn('late__echo', 4));
    expect(counts).toEqual([2, 2]);
  });

  it('sends an idempotent call on to another replica when its replica is gone', async () => {
    await g.kill();
    // In turn, one of the two calls meets the dead replica first: `flaky` is annotated
    // idempotent, so that call is sent to the other replica, and the dead one leaves rotation.
    const counts = await served('flaky', [f], async () => {
      for (let i = 0; i < 2; i++) {
        const result = await call('retry__flaky', { key: `retry-${i}`, failures: 0 });
        expect(result.isError).not.toBe(true);
        expect(text(result)).toBe(`ok retry-${i} after 1 attempts`);
      }
    });
    expect(counts).toEqual([2]);
    expect(await replicaUp('retry', 1)).toBe(0);
    expect(await replicaUp('retry', 0)).toBe(1);
  });

  it('spreads REST calls over the base URLs, and keeps serving when one is gone', async () => {
    type RestStats = Record<string, number>;
    const listed = async () =>
      Promise.all([rest1, rest2].map(async (f) => (await f.stats<RestStats>())['GET /pets'] ?? 0));
    const before = await listed();
    for (let i = 0; i < 4; i++) {
      const result = await call('pets__listPets', {});
      expect(result.isError).not.toBe(true);
    }
    const after = await listed();
    // The health checks also GET /pets on each replica: at least two calls each.
    expect(after[0] - before[0]).toBeGreaterThanOrEqual(2);
    expect(after[1] - before[1]).toBeGreaterThanOrEqual(2);

    await rest2.kill();
    // GET is idempotent: a call that meets the dead replica is sent to the other one.
    for (let i = 0; i < 4; i++) {
      const result = await call('pets__listPets', {});
      expect(result.isError).not.toBe(true);
      expect(JSON.parse(text(result))).toEqual(
        expect.arrayContaining([{ id: '1', name: 'Rex', tag: 'dog' }]),
      );
    }
    await waitForReplica('pets', 1, false);
    expect(await replicaUp('pets', 0)).toBe(1);
  });

  it('fails at once, naming the backend, when every replica is down', async () => {
    await Promise.all([d.kill(), e.kill()]);
    await waitForReplica('lif', 0, false);
    await waitForReplica('lif', 1, false);
    const rejection = await rejectionOf(call('lif__echo', { message: 'hi' }));
    expect(rejection.message).toContain(
      'Backend lif unavailable: none of its 2 replicas is in rotation',
    );
  });
});

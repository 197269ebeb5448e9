/*
 * The backend, queue and worker series of /metrics, asserted by value after known sequences:
 * an upstream MCP server (the fixture in libs/testing/fixtures-upstream, its own process)
 * called, stopped until its circuit opens, and brought back; queued tool calls run by the
 * gateway's embedded worker (Redis behind a proxy that can cut it) and by a separate worker
 * process serving its own /metrics.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Queue } from 'bullmq';
import Redis from 'ioredis';
import { TOOL_CALL_QUEUE } from '@portico/queue';
import { TenantService } from '@portico/tenancy';
import { testDatabaseEnv } from '@portico/testing';
import { RunningGateway, startGateway } from './support/gateway';
import { within } from './support/sdk';
import { TcpProxy } from './support/tcp-proxy';
import { seedTenant } from './support/tenants';

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
const WORKER_MAIN = resolve(__dirname, '../dist/apps/worker/apps/worker/src/main.js');
const METRICS_TOKEN = 'worker-metrics-token-0123456789';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- asserted field by field

/** A modern-era tools/call (or tools/list) to a tenant's endpoint; the JSON-RPC messages back. */
async function mcp(
  url: string,
  key: string,
  method: 'tools/call' | 'tools/list',
  params: Record<string, unknown> = {},
  signal?: AbortSignal,
): Promise<Json[]> {
  const res = await fetch(url, {
    method: 'POST',
    signal,
    headers: {
      authorization: `Bearer ${key}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN,
      'mcp-method': method,
      ...(typeof params.name === 'string' ? { 'mcp-name': params.name } : {}),
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: randomBytes(4).readUInt32BE(),
      method,
      params: {
        ...params,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': MODERN,
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      },
    }),
  });
  const text = await res.text();
  expect(res.status).toBe(200);
  if (text.startsWith('{')) {
    return [JSON.parse(text)];
  }
  return text
    .split('\n')
    .filter((line) => line.startsWith('data: {'))
    .map((line) => JSON.parse(line.slice(6)));
}

/** The final message of a tools/call: its result, or its error. */
async function callTool(
  url: string,
  key: string,
  name: string,
  args: Record<string, unknown> = {},
): Promise<Json> {
  const reply = await mcp(url, key, 'tools/call', { name, arguments: args });
  return reply.at(-1)!;
}

/** Samples of a Prometheus text exposition, keyed `name{a="x",b="y"}` with labels sorted. */
type Samples = Map<string, number>;

function parseExposition(text: string): Samples {
  const samples: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) {
      continue;
    }
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!match) {
      throw new Error(`Unparseable exposition line: ${line}`);
    }
    const labels = [...(match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)]
      .map(([, name, value]) => `${name}="${value}"`)
      .sort();
    samples.set(`${match[1]}{${labels.join(',')}}`, Number(match[3]));
  }
  return samples;
}

function sample(samples: Samples, name: string, labels: Record<string, string> = {}): number {
  const key = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(',');
  return samples.get(`${name}{${key}}`) ?? Number.NaN;
}

function seriesOf(samples: Samples, name: string): string[] {
  return [...samples.keys()].filter((key) => key.startsWith(`${name}{`));
}

async function scrape(baseUrl: string, token?: string): Promise<Samples> {
  const res = await fetch(`${baseUrl}/metrics`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain');
  return parseExposition(await res.text());
}

/** Probes until `accept` holds (or `ms` pass) and returns the last value for the assertions. */
async function eventually<T>(
  probe: () => Promise<T>,
  accept: (value: T) => boolean,
  ms = 5000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (accept(value) || Date.now() > deadline) {
      return value;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function deleteRedisKeys(prefix: string): Promise<void> {
  const redis = new Redis(REDIS);
  try {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) {
      await redis.del(...keys);
    }
  } finally {
    await redis.quit();
  }
}

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
    const ready = new Promise<number>((resolvePort, reject) => {
      lines.on('line', (line) => {
        const match = /^READY (\d+)$/.exec(line);
        if (match) {
          resolvePort(Number(match[1]));
        }
      });
      child.once('exit', (code) => reject(new Error(`fixture upstream exited with ${code}`)));
    });
    return new Upstream(child, await within(ready, 10_000, 'fixture upstream start'));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/mcp`;
  }

  async slowStarted(): Promise<number> {
    const response = await fetch(`http://127.0.0.1:${this.port}/stats`);
    return ((await response.json()) as { slowStarted: number }).slowStarted;
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

describe('upstream backend series', () => {
  const BREAKER_THRESHOLD = 2;
  const BREAKER_RESET_MS = 1000;
  const duration = 'portico_backend_request_duration_seconds';
  const up = { tenant: 'obs', backend: 'up' };
  const spare = { tenant: 'obs', backend: 'spare' };
  let upstream: Upstream;
  let gateway: RunningGateway;
  let endpoint: string;
  let apiKey: string;
  let tenantId: string;
  let openedAt = 0;

  beforeAll(async () => {
    upstream = await Upstream.start();
    gateway = await startGateway({ LOG_LEVEL: 'silent' });
    const seeded = await seedTenant(gateway.app, { slug: 'obs', fixtures: [] });
    apiKey = seeded.apiKey;
    tenantId = seeded.tenant.id;
    endpoint = `${gateway.mcpUrl}/obs`;
    const tenants = gateway.app.get(TenantService);
    // Two backends on the same upstream: `spare` is never called, so its series stay put.
    for (const name of ['up', 'spare']) {
      await tenants.backends(tenantId).insert({
        name,
        kind: 'mcp-http',
        target: upstream.url,
        settings: {
          internal: true,
          timeoutMs: 2000,
          breakerThreshold: BREAKER_THRESHOLD,
          breakerResetMs: BREAKER_RESET_MS,
        },
        credentialsSealed: null,
      });
    }
    await tenants.changed(seeded.tenant);
  });

  afterAll(async () => {
    await gateway?.close();
    await upstream?.stop();
  });

  it('times every upstream request: the four list reads at connect, then each call', async () => {
    const tools = (await mcp(endpoint, apiKey, 'tools/list'))[0].result.tools.map(
      (t: Json) => t.name,
    );
    expect(tools).toEqual(expect.arrayContaining(['up__echo', 'spare__echo']));
    for (let i = 0; i < 3; i++) {
      const echoed = await callTool(endpoint, apiKey, 'up__echo', { message: `m${i}` });
      expect(echoed.result.content).toEqual([{ type: 'text', text: `m${i}` }]);
    }
    // A tool error is an answer: the backend request succeeded.
    expect((await callTool(endpoint, apiKey, 'up__fail')).result.isError).toBe(true);

    const samples = await scrape(gateway.baseUrl);
    expect(sample(samples, `${duration}_count`, { ...up, outcome: 'success' })).toBe(8);
    expect(sample(samples, `${duration}_bucket`, { ...up, outcome: 'success', le: '+Inf' })).toBe(
      8,
    );
    expect(sample(samples, `${duration}_sum`, { ...up, outcome: 'success' })).toBeGreaterThan(0);
    expect(sample(samples, `${duration}_count`, { ...up, outcome: 'error' })).toBe(0);
    expect(sample(samples, `${duration}_count`, { ...up, outcome: 'refused' })).toBe(0);
    expect(sample(samples, `${duration}_count`, { ...spare, outcome: 'success' })).toBe(4);
    expect(sample(samples, 'portico_backend_up', up)).toBe(1);
    expect(sample(samples, 'portico_backend_circuit_state', up)).toBe(0);
    expect(seriesOf(samples, 'portico_backend_up')).toHaveLength(2);
  });

  it('counts failures while the upstream is down, then refusals once the circuit is open', async () => {
    await upstream.stop();
    for (let i = 0; i < BREAKER_THRESHOLD; i++) {
      const failed = await callTool(endpoint, apiKey, 'up__echo', { message: 'x' });
      expect(failed.error.message).toMatch(/^Backend up unavailable: /);
      expect(failed.error.message).not.toContain('circuit open');
    }
    openedAt = Date.now();
    const refused = await callTool(endpoint, apiKey, 'up__echo', { message: 'x' });
    expect(refused.error.message).toBe('Backend up unavailable: circuit open');

    const samples = await scrape(gateway.baseUrl);
    expect(sample(samples, `${duration}_count`, { ...up, outcome: 'success' })).toBe(8);
    expect(sample(samples, `${duration}_count`, { ...up, outcome: 'error' })).toBe(2);
    expect(sample(samples, `${duration}_count`, { ...up, outcome: 'refused' })).toBe(1);
    expect(sample(samples, `${duration}_sum`, { ...up, outcome: 'refused' })).toBe(0);
    expect(sample(samples, 'portico_backend_circuit_state', up)).toBe(2);
    expect(sample(samples, 'portico_backend_up', up)).toBe(0);
    // Each backend has its own breaker: the one nobody called is untouched.
    expect(sample(samples, 'portico_backend_circuit_state', spare)).toBe(0);
    expect(sample(samples, 'portico_backend_up', spare)).toBe(1);
  });

  it('half-opens for one trial call when the upstream is back, then closes', async () => {
    upstream = await Upstream.start(upstream.port);
    // The breaker lets a trial through only once its reset time has passed.
    await new Promise((r) =>
      setTimeout(r, Math.max(0, openedAt + BREAKER_RESET_MS + 50 - Date.now())),
    );
    const trial = callTool(endpoint, apiKey, 'up__slow', { ms: 500 });
    expect(
      await eventually(
        () => upstream.slowStarted(),
        (n) => n === 1,
      ),
    ).toBe(1);
    const during = await scrape(gateway.baseUrl);
    expect(sample(during, 'portico_backend_circuit_state', up)).toBe(1);

    expect((await trial).result.content).toEqual([{ type: 'text', text: 'slept 500' }]);
    // After a reconnect the lists are read again (four more requests) once a call succeeded.
    const after = await eventually(
      () => scrape(gateway.baseUrl),
      (s) => sample(s, `${duration}_count`, { ...up, outcome: 'success' }) === 13,
    );
    expect(sample(after, `${duration}_count`, { ...up, outcome: 'success' })).toBe(13);
    expect(sample(after, `${duration}_count`, { ...up, outcome: 'error' })).toBe(2);
    expect(sample(after, 'portico_backend_circuit_state', up)).toBe(0);
    expect(sample(after, 'portico_backend_up', up)).toBe(1);
  });

  it('removes the series of a backend dropped from the catalog, and of closed connections', async () => {
    const tenants = gateway.app.get(TenantService);
    await tenants.backends(tenantId).delete({ name: 'up' });
    await tenants.changed((await tenants.byId(tenantId))!);
    // The replaced catalog closes every connection it held: no series is left behind.
    const closed = await eventually(
      () => scrape(gateway.baseUrl),
      (s) => [...s.keys()].every((key) => !key.includes('tenant="obs"') || key.includes('tool=')),
    );
    for (const name of [
      `${duration}_count`,
      'portico_backend_up',
      'portico_backend_circuit_state',
    ]) {
      expect(seriesOf(closed, name)).toEqual([]);
    }

    // The next request builds the catalog again: `spare` alone, with fresh series.
    const tools = (await mcp(endpoint, apiKey, 'tools/list'))[0].result.tools.map(
      (t: Json) => t.name,
    );
    expect(tools.some((name: string) => name.startsWith('up__'))).toBe(false);
    const rebuilt = await scrape(gateway.baseUrl);
    expect(seriesOf(rebuilt, 'portico_backend_up')).toEqual([
      'portico_backend_up{backend="spare",tenant="obs"}',
    ]);
    expect(sample(rebuilt, `${duration}_count`, { ...spare, outcome: 'success' })).toBe(4);
    expect(sample(rebuilt, 'portico_backend_up', spare)).toBe(1);
    expect(seriesOf(rebuilt, 'portico_backend_circuit_state')).toEqual([
      'portico_backend_circuit_state{backend="spare",tenant="obs"}',
    ]);
  });

  it('shows a backend unreachable when its catalog was built as down, not missing', async () => {
    const tenants = gateway.app.get(TenantService);
    // A port nothing listens on: the connect at catalog build fails.
    const closed = await new Promise<number>((resolve) => {
      const probe = createServer();
      probe.listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as { port: number };
        probe.close(() => resolve(port));
      });
    });
    await tenants.backends(tenantId).insert({
      name: 'gone',
      kind: 'mcp-http',
      target: `http://127.0.0.1:${closed}/mcp`,
      settings: { internal: true, timeoutMs: 500 },
      credentialsSealed: null,
    });
    await tenants.changed((await tenants.byId(tenantId))!);
    const tools = (await mcp(endpoint, apiKey, 'tools/list'))[0].result.tools.map(
      (t: Json) => t.name,
    );
    expect(tools.some((name: string) => name.startsWith('gone__'))).toBe(false);
    const gone = { tenant: 'obs', backend: 'gone' };
    const down = await scrape(gateway.baseUrl);
    expect(sample(down, 'portico_backend_up', gone)).toBe(0);
    expect(sample(down, 'portico_backend_up', spare)).toBe(1);
    // Removed from the tenant: its series go with the catalog that held it.
    await tenants.backends(tenantId).delete({ name: 'gone' });
    await tenants.changed((await tenants.byId(tenantId))!);
    await mcp(endpoint, apiKey, 'tools/list');
    const after = await eventually(
      () => scrape(gateway.baseUrl),
      (s) => Number.isNaN(sample(s, 'portico_backend_up', gone)),
    );
    expect(seriesOf(after, 'portico_backend_up')).toEqual([
      'portico_backend_up{backend="spare",tenant="obs"}',
    ]);
  });
});

/** The queue's job counts by state in a scrape. */
function queueJobs(samples: Samples): Record<string, number> {
  return Object.fromEntries(
    ['waiting', 'active', 'delayed', 'failed', 'prioritized'].map((state) => [
      state,
      sample(samples, 'portico_queue_jobs', { queue: TOOL_CALL_QUEUE, state }),
    ]),
  );
}

function workerJobs(samples: Samples): Record<string, number> {
  return Object.fromEntries(
    ['completed', 'failed', 'cancelled', 'timed_out'].map((outcome) => [
      outcome,
      sample(samples, 'portico_worker_jobs_total', { queue: TOOL_CALL_QUEUE, outcome }),
    ]),
  );
}

function runCounts(samples: Samples): Record<string, number> {
  return Object.fromEntries(
    ['completed', 'failed', 'cancelled', 'timed_out'].map((outcome) => [
      outcome,
      sample(samples, 'portico_queue_run_seconds_count', { queue: TOOL_CALL_QUEUE, outcome }),
    ]),
  );
}

/** Points a tenant's only backend at the queue with the given deadline. */
async function queued(gateway: RunningGateway, tenantId: string, timeoutMs: number) {
  const tenants = gateway.app.get(TenantService);
  const [backend] = await tenants.backends(tenantId).find();
  await tenants.backends(tenantId).update(backend.id, {
    settings: { executor: 'queued', timeoutMs },
  });
  await tenants.changed((await tenants.byId(tenantId))!);
}

describe('queue and worker series of the embedded worker', () => {
  const prefix = `portico-test-${randomBytes(4).toString('hex')}:`;
  let redis: TcpProxy;
  let gateway: RunningGateway;
  let jobs: { url: string; key: string };
  let rushed: { url: string; key: string };
  let queue: Queue;

  beforeAll(async () => {
    // Redis behind a proxy the test can cut, as an outage would.
    redis = await TcpProxy.start(6379);
    gateway = await startGateway({
      REDIS_URL: `redis://127.0.0.1:${redis.port}`,
      REDIS_KEY_PREFIX: prefix,
      WORKER_EMBEDDED: 'true',
      HEALTH_CHECK_TIMEOUT_MS: '500',
      LOG_LEVEL: 'fatal',
    });
    const a = await seedTenant(gateway.app, { slug: 'jobs' });
    await queued(gateway, a.tenant.id, 5000);
    jobs = { url: `${gateway.mcpUrl}/jobs`, key: a.apiKey };
    const b = await seedTenant(gateway.app, { slug: 'rushed' });
    // The progress tool pauses about 100 ms; the deadline is half that.
    await queued(gateway, b.tenant.id, 50);
    rushed = { url: `${gateway.mcpUrl}/rushed`, key: b.apiKey };
    queue = new Queue(TOOL_CALL_QUEUE, {
      // BullMQ leaves a connection it was given open: pass options, it closes its own.
      connection: { host: '127.0.0.1', port: 6379, maxRetriesPerRequest: null },
      prefix: `${prefix}bull`,
    });
  });

  afterAll(async () => {
    await queue?.close();
    await gateway?.close();
    await redis?.stop();
    await deleteRedisKeys(prefix);
  });

  it('serves every worker outcome at 0 and an empty queue before the first job', async () => {
    const samples = await scrape(gateway.baseUrl);
    expect(workerJobs(samples)).toEqual({ completed: 0, failed: 0, cancelled: 0, timed_out: 0 });
    expect(queueJobs(samples)).toEqual({
      waiting: 0,
      active: 0,
      delayed: 0,
      failed: 0,
      prioritized: 0,
    });
    expect(sample(samples, 'portico_queue_wait_seconds_count', { queue: TOOL_CALL_QUEUE })).toBe(0);
  });

  it('counts completed, failed, timed-out and cancelled jobs with their wait and run times', async () => {
    for (let i = 0; i < 3; i++) {
      const done = await callTool(jobs.url, jobs.key, 'test_simple_text');
      expect(done.result.content[0].text).toBe('This is a simple text response for testing.');
    }
    // A tool that throws a JSON-RPC error fails its job.
    const failed = await callTool(jobs.url, jobs.key, 'protocol_error_job');
    expect(failed.error.message).toContain('The job broke down');
    const late = await callTool(rushed.url, rushed.key, 'test_tool_with_progress');
    expect(late.error.message).toMatch(/deadline/i);

    // A caller that hangs up while the worker runs its job cancels it.
    const abort = new AbortController();
    const pending = mcp(
      jobs.url,
      jobs.key,
      'tools/call',
      { name: 'test_reconnection' },
      abort.signal,
    ).catch(() => undefined);
    await eventually(
      async () => (await queue.getJobs(['active'])).length,
      (n) => n === 1,
    );
    abort.abort();
    await pending;

    const samples = await eventually(
      () => scrape(gateway.baseUrl),
      (s) =>
        sample(s, 'portico_queue_wait_seconds_count', { queue: TOOL_CALL_QUEUE }) === 6 &&
        workerJobs(s).cancelled === 1 &&
        workerJobs(s).timed_out === 1,
    );
    expect(workerJobs(samples)).toEqual({ completed: 3, failed: 1, cancelled: 1, timed_out: 1 });
    expect(runCounts(samples)).toEqual({ completed: 3, failed: 1, cancelled: 1, timed_out: 1 });
    expect(sample(samples, 'portico_queue_wait_seconds_count', { queue: TOOL_CALL_QUEUE })).toBe(6);
    expect(
      sample(samples, 'portico_queue_run_seconds_sum', {
        queue: TOOL_CALL_QUEUE,
        outcome: 'cancelled',
      }),
    ).toBeGreaterThan(0);
    // Failed jobs stay in Redis for inspection; nothing is waiting or running any more.
    expect(queueJobs(samples)).toEqual({
      waiting: 0,
      active: 0,
      delayed: 0,
      failed: 3,
      prioritized: 0,
    });
  });

  it('still answers a scrape while Redis is unreachable, without the queue counts', async () => {
    await redis.stop();
    try {
      const res = await fetch(`${gateway.baseUrl}/metrics`);
      expect(res.status).toBe(200);
      const samples = parseExposition(await res.text());
      expect(seriesOf(samples, 'portico_queue_jobs')).toEqual([]);
      // What this node counted itself is still there.
      expect(workerJobs(samples)).toEqual({ completed: 3, failed: 1, cancelled: 1, timed_out: 1 });
    } finally {
      await redis.resume();
    }
    const back = await eventually(
      () => scrape(gateway.baseUrl),
      (s) => queueJobs(s).failed === 3,
      15_000,
    );
    expect(queueJobs(back).failed).toBe(3);
  });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

describe('a separate worker process serves its own /metrics', () => {
  const prefix = `portico-test-${randomBytes(4).toString('hex')}:`;
  let gateway: RunningGateway;
  let worker: ChildProcess;
  let workerUrl: string;
  let cleanup: () => Promise<void>;
  let remote: { url: string; key: string };

  beforeAll(async () => {
    const db = await testDatabaseEnv('postgres');
    cleanup = db.cleanup;
    const env = { ...db.env, REDIS_URL: REDIS, REDIS_KEY_PREFIX: prefix };
    gateway = await startGateway({ ...env, WORKER_EMBEDDED: 'false' });
    const seeded = await seedTenant(gateway.app, { slug: 'remote' });
    await queued(gateway, seeded.tenant.id, 5000);
    remote = { url: `${gateway.mcpUrl}/remote`, key: seeded.apiKey };
    const port = await freePort();
    workerUrl = `http://127.0.0.1:${port}`;
    worker = spawn(process.execPath, [WORKER_MAIN], {
      env: {
        PATH: process.env.PATH ?? '',
        ...env,
        WORKER_PORT: String(port),
        LOG_LEVEL: 'warn',
        METRICS_TOKEN,
        MASTER_KEYS: gateway.config.security.masterKeys
          .map((k) => `${k.id}:${k.key.toString('base64')}`)
          .join(','),
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const ready = await eventually(
      () =>
        fetch(`${workerUrl}/health/ready`).then(
          (res) => res.status,
          () => 0,
        ),
      (status) => status === 200 || worker.exitCode !== null,
      20_000,
    );
    if (ready !== 200) {
      throw new Error('the worker process did not become ready');
    }
  });

  afterAll(async () => {
    if (worker && worker.exitCode === null && worker.signalCode === null) {
      const exited = once(worker, 'exit');
      worker.kill('SIGTERM');
      await exited;
    }
    await gateway?.close();
    await deleteRedisKeys(prefix);
    await cleanup?.();
  });

  it('refuses a scrape without its METRICS_TOKEN', async () => {
    const res = await fetch(`${workerUrl}/metrics`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('Bearer');
    expect(await res.text()).not.toContain('portico_');
  });

  it('counts the jobs it ran; the gateway, which ran none, has only the queue counts', async () => {
    for (let i = 0; i < 2; i++) {
      const done = await callTool(remote.url, remote.key, 'test_simple_text');
      expect(done.result.content[0].text).toBe('This is a simple text response for testing.');
    }
    const failed = await callTool(remote.url, remote.key, 'protocol_error_job');
    expect(failed.error.message).toContain('The job broke down');

    const samples = await eventually(
      () => scrape(workerUrl, METRICS_TOKEN),
      (s) => workerJobs(s).failed === 1,
    );
    expect(workerJobs(samples)).toEqual({ completed: 2, failed: 1, cancelled: 0, timed_out: 0 });
    expect(runCounts(samples)).toEqual({ completed: 2, failed: 1, cancelled: 0, timed_out: 0 });
    expect(sample(samples, 'portico_queue_wait_seconds_count', { queue: TOOL_CALL_QUEUE })).toBe(3);
    expect(queueJobs(samples)).toEqual({
      waiting: 0,
      active: 0,
      delayed: 0,
      failed: 1,
      prioritized: 0,
    });
    expect(sample(samples, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);

    const front = await scrape(gateway.baseUrl);
    expect(seriesOf(front, 'portico_worker_jobs_total')).toEqual([]);
    expect(seriesOf(front, 'portico_queue_run_seconds_count')).toEqual([]);
    expect(queueJobs(front).failed).toBe(1);
    // The gateway counted the calls it accepted, as tool calls.
    expect(
      sample(front, 'portico_tool_calls_total', {
        tenant: 'remote',
        tool: 'test_simple_text',
        outcome: 'success',
      }),
    ).toBe(2);
  });
});

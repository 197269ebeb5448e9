/*
 * Two gateway processes (the built dist/ main.js, each with its own SQLite file) behind HAProxy
 * running docker/haproxy.cfg, all on loopback. Requests go through HAProxy; which node served
 * them is read from each node's own /metrics, and what HAProxy thinks of each node from its
 * runtime API. Run with `npm run test:cluster`.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { CONFIG_SCHEMA } from '@portico/config';
import {
  describeError,
  freePort,
  GatewayNode,
  Haproxy,
  HAPROXY_BIN,
  HAPROXY_CONFIG,
  inRotation,
  McpReply,
  modernRequest,
  newApiKey,
  postMcp,
  ProcessGroup,
  resultText,
  ServerState,
  SESSION_VERSION,
  sessionMessage,
  until,
  UpstreamFixture,
  within,
} from './support/cluster';

/** Long enough to still run when HAProxy has taken its node out of rotation. */
const LONG_CALL_MS = 8000;
/**
 * How long a draining node keeps serving while HAProxy's checks notice it (>= ~2 s), passed as
 * SHUTDOWN_DRAIN_DELAY_MS: the drain delay docs/deployment.md asks of the gateway.
 */
const DRAIN_DELAY_MS = 3000;
const SHUTDOWN_GRACE_MS = 20_000;
const STREAM_WORKERS = 3;

let dir: string;
let group: ProcessGroup;
let upstream: UpstreamFixture;
let nodes: GatewayNode[];
let haproxy: Haproxy;
let apiKey: string;

function failureDetail(): string {
  return group.tails();
}

async function requestCounts(): Promise<number[]> {
  return Promise.all(nodes.map((node) => node.mcpRequests()));
}

/** A 2026-07-28 tools/call of the fixture `echo` tool through HAProxy. */
async function echoThroughHaproxy(
  message: string,
  extraHeaders: Record<string, string> = {},
): Promise<McpReply> {
  const { body, headers } = modernRequest('tools/call', { name: 'echo', arguments: { message } });
  return postMcp(`${haproxy.url}/mcp`, body, { ...headers, ...extraHeaders });
}

/**
 * Stateless requests back to back from several workers until stopped. Every answer that is not
 * a 200 carrying the echoed text is kept, with its time relative to `origin` and HAProxy's log
 * line for it (found by the request's X-Request-Id, which the config captures).
 */
class RequestStream {
  private running = true;
  private readonly workers: Promise<void>[];
  private readonly failed: { id: string; atMs: number; outcome: string }[] = [];
  private readonly logLines: string[] = [];
  private readonly unsubscribe: () => void;
  succeeded = 0;
  origin = Date.now();

  constructor(workers: number) {
    this.unsubscribe = haproxy.process.onLine((line) => {
      this.logLines.push(line);
      if (this.logLines.length > 20_000) {
        this.logLines.shift();
      }
    });
    this.workers = Array.from({ length: workers }, (_, i) => this.work(i));
  }

  private async work(worker: number): Promise<void> {
    for (let n = 0; this.running; n++) {
      const id = `stream-${worker}-${n}`;
      try {
        const answer = await echoThroughHaproxy(id, { 'x-request-id': id });
        if (answer.status === 200 && resultText(answer.reply) === id) {
          this.succeeded++;
        } else {
          this.fail(id, `HTTP ${answer.status} ${answer.body.slice(0, 200)}`);
        }
      } catch (err) {
        this.fail(id, describeError(err));
      }
    }
  }

  private fail(id: string, outcome: string): void {
    this.failed.push({ id, atMs: Date.now() - this.origin, outcome });
  }

  get failures(): { atMs: number; outcome: string; haproxyLog?: string }[] {
    return this.failed.map(({ id, atMs, outcome }) => ({
      atMs,
      outcome,
      haproxyLog: this.logLines.find((line) => line.includes(`{${id}}`)),
    }));
  }

  /** HAProxy log lines of requests that ended abnormally (5xx, or termination flags set). */
  get haproxyErrors(): string[] {
    return this.logLines.filter((line) => {
      const match = / (\d{3}) \d+ \S+ \S+ (\S{4}) /.exec(line);
      return match !== null && (match[1].startsWith('5') || match[2] !== '----');
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.workers);
    this.unsubscribe();
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portico-cluster-'));
  group = new ProcessGroup();
  try {
    upstream = await UpstreamFixture.start(group);
    apiKey = newApiKey();
    // The same declarative file on every node: a tenant whose backend is the fixture upstream
    // (its `slow` tool holds a call in flight) and an API key from the environment.
    const configFile = join(dir, 'portico.yaml');
    await writeFile(
      configFile,
      [
        'version: 1',
        'tenants:',
        '  - slug: cluster',
        '    name: Cluster test',
        '    backends:',
        '      - name: up',
        '        kind: mcp-http',
        `        target: ${upstream.url}`,
        `        settings: { internal: true, timeoutMs: ${LONG_CALL_MS * 4} }`,
        '    apiKeys:',
        '      - name: cluster',
        '        secret: { env: CLUSTER_API_KEY }',
        '        roles: [tool-user]',
        '',
      ].join('\n'),
    );
    const secret = randomBytes(32).toString('hex');
    nodes = [];
    for (const name of ['gw1', 'gw2']) {
      const dataDir = join(dir, name);
      await mkdir(dataDir);
      nodes.push(
        new GatewayNode(group, name, await freePort(), {
          LOG_LEVEL: process.env.CLUSTER_LOG ?? 'warn',
          DATA_DIR: dataDir,
          PORTICO_SECRET: secret,
          PORTICO_CONFIG_FILE: configFile,
          CLUSTER_API_KEY: apiKey,
          SHUTDOWN_GRACE_MS: String(SHUTDOWN_GRACE_MS),
          SHUTDOWN_DRAIN_DELAY_MS: String(DRAIN_DELAY_MS),
        }),
      );
    }
    await Promise.all(nodes.map((node) => node.start()));
    haproxy = await Haproxy.start(group, dir, {
      PORTICO_GW1: nodes[0].address,
      PORTICO_GW2: nodes[1].address,
    });
    for (const node of nodes) {
      await haproxy.waitForState(node.name, inRotation, 10_000);
    }
  } catch (err) {
    await group.stopAll();
    throw err;
  }
}, 90_000);

afterAll(async () => {
  await group?.stopAll();
  if (dir) {
    await rm(dir, { recursive: true, force: true });
  }
});

describe('gateway nodes behind HAProxy (docker/haproxy.cfg)', () => {
  it('spreads stateless requests over both nodes', async () => {
    const before = await requestCounts();
    const count = 20;
    for (let i = 0; i < count; i++) {
      const answer = await echoThroughHaproxy(`spread-${i}`);
      expect({ status: answer.status, text: resultText(answer.reply) }).toEqual({
        status: 200,
        text: `spread-${i}`,
      });
    }
    const served = (await requestCounts()).map((after, i) => after - before[i]);
    expect(served.reduce((a, b) => a + b, 0)).toBe(count);
    expect(served.every((n) => n > 0)).toBe(true);
  });

  it('keeps a 2025-era session on the node that created it (Mcp-Session-Id stickiness)', async () => {
    const before = await requestCounts();
    const url = `${haproxy.url}/mcp`;
    const init = await postMcp(
      url,
      sessionMessage('initialize', {
        protocolVersion: SESSION_VERSION,
        capabilities: {},
        clientInfo: { name: 'cluster-spec', version: '1.0.0' },
      }),
    );
    expect(init.status).toBe(200);
    expect(init.reply?.result?.protocolVersion).toBe(SESSION_VERSION);
    const session = init.headers.get('mcp-session-id');
    expect(session).toEqual(expect.any(String));
    const headers = { 'mcp-session-id': session ?? '', 'mcp-protocol-version': SESSION_VERSION };

    const initialized = await postMcp(
      url,
      sessionMessage('notifications/initialized', {}, true),
      headers,
    );
    expect(initialized.status).toBe(202);
    // Without stickiness about half of these would reach the other node: 404, unknown session.
    const outcomes: string[] = [];
    for (let i = 0; i < 12; i++) {
      const answer = await postMcp(
        url,
        i % 3 === 0
          ? sessionMessage('tools/list')
          : sessionMessage('tools/call', { name: 'echo', arguments: { message: `s${i}` } }),
        headers,
      );
      outcomes.push(`${answer.status} ${answer.reply?.error ? 'error' : 'result'}`);
    }
    expect(outcomes).toEqual(Array(12).fill('200 result'));

    const served = (await requestCounts()).map((after, i) => after - before[i]);
    expect(served.filter((n) => n > 0)).toHaveLength(1);

    const ended = await fetch(url, { method: 'DELETE', headers });
    expect(ended.status).toBeLessThan(300);
  });

  it(
    'drains a node on SIGTERM: out of rotation, in-flight call completes, no request fails, exit 0',
    async () => {
      // A long call through HAProxy, in flight once the upstream has started it.
      const { body, headers } = modernRequest('tools/call', {
        name: 'up__slow',
        arguments: { ms: LONG_CALL_MS },
      });
      const longCall = postMcp(`${haproxy.url}/mcp/cluster`, body, {
        ...headers,
        authorization: `Bearer ${apiKey}`,
      }).then(
        (answer) => ({
          status: answer.status,
          text: resultText(answer.reply),
          error: answer.reply?.error?.message,
        }),
        (err: unknown) => ({ status: 0, text: undefined, error: describeError(err) }),
      );
      await until(
        'upstream started the long call',
        () => upstream.stats(),
        (s) => s.slowStarted === 1,
        {
          timeoutMs: 10_000,
          detail: failureDetail,
        },
      );
      // The node holding it: the only server with a request in progress.
      const stats = await until(
        'one server holding the long call',
        () => haproxy.serverStats(),
        (s) => Object.values(s).filter((server) => server.current === 1).length === 1,
        { timeoutMs: 5000, detail: failureDetail },
      );
      const victim = nodes.find((node) => stats[node.name].current === 1) as GatewayNode;
      const survivor = nodes.find((node) => node !== victim) as GatewayNode;

      const stream = new RequestStream(STREAM_WORKERS);
      try {
        // Both nodes take part in the stream before the drain starts.
        const start = await requestCounts();
        await until(
          'stream reaching both nodes',
          requestCounts,
          (counts) => counts.every((n, i) => n - start[i] >= 5),
          { timeoutMs: 10_000, detail: failureDetail },
        );

        stream.origin = Date.now();
        victim.process.signal('SIGTERM');
        // Readiness turns 503 while the node still answers: the balancer must see it.
        const readiness = await until(
          `${victim.name} readiness after SIGTERM`,
          () => victim.readiness(),
          (status) => status !== '200',
          { timeoutMs: 2000, intervalMs: 20, detail: failureDetail },
        );
        const haproxyState = await haproxy
          .waitForState(victim.name, (s) => s === ServerState.Stopped, 10_000)
          .then(
            () => 'out of rotation',
            (err: Error) => err.message,
          );
        const longCallOutcome = await longCall;
        const exit = await within(victim.process.exit, SHUTDOWN_GRACE_MS + 5000, 'still running');
        // Traffic goes on through the survivor after the victim is gone.
        const afterExit = await survivor.mcpRequests();
        await until(
          'stream continuing on the survivor',
          () => survivor.mcpRequests(),
          (n) => n - afterExit >= 20,
          { timeoutMs: 10_000, detail: failureDetail },
        );
        await stream.stop();

        expect({
          readinessAfterSigterm: readiness,
          haproxyState,
          longCall: longCallOutcome,
          upstream: await upstream.stats().then(({ slowStarted, slowFinished, slowCancelled }) => ({
            slowStarted,
            slowFinished,
            slowCancelled,
          })),
          exit,
          failedRequests: stream.failures,
          haproxyErrors: stream.haproxyErrors,
        }).toEqual({
          readinessAfterSigterm: '503 draining',
          haproxyState: 'out of rotation',
          longCall: { status: 200, text: `slept ${LONG_CALL_MS}`, error: undefined },
          upstream: { slowStarted: 1, slowFinished: 1, slowCancelled: 0 },
          exit: { code: 0, signal: null },
          failedRequests: [],
          haproxyErrors: [],
        });
        expect(stream.succeeded).toBeGreaterThan(0);
      } finally {
        await stream.stop();
      }
    },
    SHUTDOWN_GRACE_MS + LONG_CALL_MS + 40_000,
  );

  it('puts a restarted node back into rotation once it is ready (rise)', async () => {
    // The node drained by the previous test (or the first one, if that test failed early).
    const victim = nodes.find((node) => !node.process.running) ?? nodes[0];
    await victim.process.stop();
    await haproxy.waitForState(victim.name, (s) => s === ServerState.Stopped, 10_000);

    await victim.start();
    const state = await haproxy.waitForState(victim.name, inRotation, 15_000);
    expect([ServerState.Starting, ServerState.Running]).toContain(state);

    // It serves again: requests through HAProxy reach it (slowstart ramps its share up).
    const before = await victim.mcpRequests();
    const failures: string[] = [];
    await until(
      `${victim.name} serving through HAProxy`,
      async () => {
        const answer = await echoThroughHaproxy('back');
        if (answer.status !== 200 || resultText(answer.reply) !== 'back') {
          failures.push(`HTTP ${answer.status} ${answer.body.slice(0, 200)}`);
        }
        return victim.mcpRequests();
      },
      (n) => n - before >= 3,
      { timeoutMs: 20_000, intervalMs: 0, detail: failureDetail },
    );
    expect(failures).toEqual([]);
  }, 60_000);
});

describe('docker/haproxy.cfg, docker/compose.yaml and docker/prometheus.yml', () => {
  const run = promisify(execFile);
  const compose = parse(readFileSync(join(__dirname, '..', 'docker', 'compose.yaml'), 'utf8'), {
    merge: true,
  }) as {
    services: Record<
      string,
      { environment?: Record<string, unknown>; command?: string[]; image?: string }
    >;
  };
  const haproxyConfig = readFileSync(HAPROXY_CONFIG, 'utf8');

  it('is a valid HAProxy configuration, with and without the environment set', async () => {
    for (const env of [
      { PATH: process.env.PATH ?? '' },
      {
        PATH: process.env.PATH ?? '',
        PORTICO_GW1: '127.0.0.1:1',
        PORTICO_GW2: '127.0.0.1:2',
        PORTICO_HAPROXY_BIND: '127.0.0.1:8080',
        PORTICO_HAPROXY_SOCKET: join(tmpdir(), 'portico-haproxy-check.sock'),
      },
    ]) {
      const { stdout } = await run(HAPROXY_BIN, ['-c', '-f', HAPROXY_CONFIG], { env });
      expect(stdout).toContain('Configuration file is valid');
    }
  });

  it('gives Portico services only variables the configuration schema knows', () => {
    const known = new Set(Object.keys(CONFIG_SCHEMA.properties));
    const portico = Object.entries(compose.services).filter(([, service]) =>
      (service.command ?? []).some((arg) => arg.startsWith('dist/apps/')),
    );
    expect(portico.map(([name]) => name).sort()).toEqual(
      ['gateway1', 'gateway2', 'migrate', 'worker'].sort(),
    );
    for (const [name, service] of portico) {
      const unknown = Object.keys(service.environment ?? {}).filter((key) => !known.has(key));
      expect({ service: name, unknown }).toEqual({ service: name, unknown: [] });
    }
  });

  it('points HAProxy at the gateway services with variables its config reads', () => {
    const env = compose.services.haproxy.environment ?? {};
    for (const key of Object.keys(env)) {
      expect(haproxyConfig).toContain(`"\${${key}-`);
    }
    const port = (service: string) => String(compose.services[service].environment?.PORT);
    expect(env.PORTICO_GW1).toBe(`gateway1:${port('gateway1')}`);
    expect(env.PORTICO_GW2).toBe(`gateway2:${port('gateway2')}`);
  });

  it("has Prometheus scrape every gateway's and the worker's /metrics", () => {
    const prometheus = parse(
      readFileSync(join(__dirname, '..', 'docker', 'prometheus.yml'), 'utf8'),
    ) as {
      scrape_configs: { metrics_path?: string; static_configs: { targets: string[] }[] }[];
    };
    const targets = prometheus.scrape_configs.flatMap((job) =>
      job.static_configs.flatMap((c) =>
        c.targets.map((t) => `${t}${job.metrics_path ?? '/metrics'}`),
      ),
    );
    const env = (service: string) => compose.services[service].environment ?? {};
    expect(targets.sort()).toEqual(
      [
        `gateway1:${String(env('gateway1').PORT)}/metrics`,
        `gateway2:${String(env('gateway2').PORT)}/metrics`,
        `worker:${String(env('worker').WORKER_PORT)}/metrics`,
      ].sort(),
    );
  });
});

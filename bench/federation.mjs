// The cost of federation: tools/call to an upstream MCP server through the gateway, against
// the load generator calling that same upstream directly, in the same run. Run by
// `npm run bench` (section "federation") or alone: `node bench/federation.mjs`.
//
// The upstream is the official SDK v2 server (`servers/sdk-v2.mjs`: createMcpHandler,
// stateless, JSON answers, 2026-07-28 natively), the reference implementation a tenant is most
// likely to federate, in its own process. The gateway is the built one, in its own process,
// with a tenant whose only backend is that upstream (`mcp-http`, no name prefix, so the
// requests a client sends to the gateway and to the upstream are byte-for-byte the same).
// Rounds are interleaved (u0 u1 u2 …, then the low-concurrency rounds) and summarised by
// their median. Overhead at p50 is checked with one connection, where neither process queues
// requests; with 50 connections the difference includes queueing and is shown alongside.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runLoad } from './load.mjs';
import {
  INITIALIZED_NOTIFICATION,
  PROTOCOL_2025,
  eraRequest,
  initializeMessage,
  nextId,
  parseRpcBody,
  post,
  sampleCheck,
} from './lib/mcp.mjs';
import {
  cpuPerCall,
  cpuTimeMs,
  freePort,
  installCleanup,
  startFixture,
  stop,
} from './lib/procs.mjs';
import { median } from './lib/report.mjs';

const ROOT = resolve(import.meta.dirname, '..');
const ENTRY = resolve(
  ROOT,
  process.env.PORTICO_ENTRY ?? 'dist/apps/gateway/apps/gateway/src/main.js',
);
const UPSTREAM = resolve(import.meta.dirname, 'servers', 'sdk-v2.mjs');
const API_KEY = `ptk_${randomBytes(32).toString('base64url')}`;
const TENANT_PATH = '/mcp/bench';

export const FEDERATION_GOALS = {
  /** Through the gateway / direct, req/s at the configured (50) connections. */
  throughput: 0.85,
  /** Gateway p50 minus direct p50 with one connection, in ms. */
  overheadP50Ms: 1,
};

/**
 * The targets. `via`: who the load generator talks to; `era`: the client's protocol era
 * (the gateway picks its own with the upstream, so the upstream leg is the same for all).
 */
export const FEDERATION_TARGETS = [
  { key: 'u0', label: 'direct to the upstream (SDK v2), 2026-07-28', via: 'upstream' },
  { key: 'u1', label: 'through Portico, 2026-07-28, API key', via: 'gateway', era: 'modern' },
  {
    key: 'u2',
    label: 'through Portico, 2025-11-25 session, API key',
    via: 'gateway',
    era: '2025',
  },
];

/**
 * Lower concurrencies for the unloaded latency comparison (u0 and u1 only); the overhead goal
 * is checked at 1.
 */
const LOW_CONNECTIONS = [1, 10];
const lowConnections = (config) => LOW_CONNECTIONS.filter((c) => c < config.connections);

/** Seconds of a low-concurrency round: their latency histograms fill quickly. */
const lowDurationSec = (config) => Math.max(2, Math.min(config.durationSec, 5));

/** Seconds the section takes with `config`, start-up and checks included (for watchdogs). */
export function federationPlannedSec(config) {
  const perRound =
    FEDERATION_TARGETS.length * (config.durationSec + 1) +
    lowConnections(config).length * 2 * (lowDurationSec(config) + 1);
  return 20 + FEDERATION_TARGETS.length * (config.warmupSec + 1) + config.rounds * perRound;
}

function writeTenantFile(dir, upstreamPort, connections) {
  const file = join(dir, 'portico.yaml');
  writeFileSync(
    file,
    [
      'version: 1',
      'tenants:',
      '  - slug: bench',
      '    name: Federation benchmark tenant',
      '    backends:',
      '      - name: up',
      '        kind: mcp-http',
      `        target: http://127.0.0.1:${upstreamPort}/mcp`,
      // internal: the SSRF guard refuses loopback otherwise; prefix '': upstream names as is;
      // maxConcurrent: the backend's bulkhead must not turn the bench's connections away.
      `        settings: { internal: true, prefix: '', maxConcurrent: ${Math.max(64, connections)} }`,
      '    apiKeys:',
      '      - { name: bench, secret: { env: BENCH_API_KEY }, roles: [tool-user] }',
    ].join('\n'),
  );
  return file;
}

/**
 * The gateway as in production, logs to /dev/null. With BENCH_CPU_PROF=<dir> it runs under
 * `--cpu-prof` and writes its profile there when it stops.
 */
async function startGateway(dir, connections) {
  const port = await freePort();
  const devNull = openSync('/dev/null', 'w');
  const profile = process.env.BENCH_CPU_PROF
    ? ['--cpu-prof', '--cpu-prof-dir', resolve(process.env.BENCH_CPU_PROF)]
    : [];
  const child = spawn(process.execPath, [...profile, ENTRY], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: String(port),
      DATA_DIR: dir,
      DATABASE_PATH: ':memory:',
      PORTICO_SECRET: 'bench-secret-bench-secret-bench-secret',
      PORTICO_CONFIG_FILE: join(dir, 'portico.yaml'),
      BENCH_API_KEY: API_KEY,
      LOG_LEVEL: 'warn',
      // No load balancer to drain: stop at once (and within stop()'s grace, for --cpu-prof).
      SHUTDOWN_DRAIN_DELAY_MS: '0',
      // u2 puts every connection in one session (default limit 32 open requests).
      MAX_STREAMS_PER_SESSION: String(Math.max(32, connections)),
    },
    stdio: ['ignore', devNull, 'inherit'],
  });
  closeSync(devNull); // the child has its own copy
  // Not tracked by lib/procs.mjs (its own stdio): never outlive the bench.
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  child.once('exit', () => process.off('exit', kill));
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ready = await fetch(`http://127.0.0.1:${port}/health/ready`).catch(() => undefined);
    if (ready?.status === 200) {
      return { child, port };
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop(child);
      throw new Error('the gateway did not become ready');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** lib/mcp.mjs's openSession2025 with the tenant's credentials on both requests. */
async function openSession(url, auth) {
  const headers = {
    accept: 'application/json, text/event-stream',
    'content-type': 'application/json',
    ...auth,
  };
  const init = await post(url, headers, initializeMessage(nextId()));
  const sessionId = init.headers.get('mcp-session-id');
  if (init.status !== 200 || !parseRpcBody(init.text).result || !sessionId) {
    throw new Error(`initialize: HTTP ${init.status} ${init.text.slice(0, 300)}`);
  }
  const initialized = await post(
    url,
    { ...headers, 'mcp-session-id': sessionId, 'mcp-protocol-version': PROTOCOL_2025 },
    INITIALIZED_NOTIFICATION,
  );
  if (initialized.status !== 202 && initialized.status !== 200) {
    throw new Error(`notifications/initialized: HTTP ${initialized.status} ${initialized.text}`);
  }
  return sessionId;
}

/**
 * Runs the section: prints its table and checks and returns { targets, checks }. `config`:
 * durationSec, warmupSec, rounds, connections, verify (bench/run.mjs's settings).
 */
export async function runFederationBench(config) {
  if (!existsSync(ENTRY)) {
    const err = new Error(`${ENTRY} not found — run \`npm run build\` first`);
    err.code = 'PORTICO_NOT_BUILT';
    throw err;
  }
  const dir = mkdtempSync(join(tmpdir(), 'portico-bench-fed-'));
  let upstream;
  let gateway;
  try {
    upstream = await startFixture(UPSTREAM, 'upstream sdk-v2');
    writeTenantFile(dir, upstream.port, config.connections);
    gateway = await startGateway(dir, config.connections);
    console.log(
      `upstream pid ${upstream.child.pid} port ${upstream.port}; ` +
        `gateway pid ${gateway.child.pid} port ${gateway.port}`,
    );

    const auth = { authorization: `Bearer ${API_KEY}` };
    const gatewayUrl = `http://127.0.0.1:${gateway.port}${TENANT_PATH}`;
    const wire = new Map();
    for (const target of FEDERATION_TARGETS) {
      if (target.via === 'upstream') {
        wire.set(target.key, {
          origin: `http://127.0.0.1:${upstream.port}`,
          path: '/mcp',
          request: eraRequest('modern'),
        });
        continue;
      }
      const sessionId = target.era === '2025' ? await openSession(gatewayUrl, auth) : undefined;
      const base = eraRequest(target.era, { sessionId });
      wire.set(target.key, {
        origin: `http://127.0.0.1:${gateway.port}`,
        path: TENANT_PATH,
        request: { headers: { ...base.headers, ...auth }, bodyFor: base.bodyFor },
      });
    }
    const check = (target) => {
      const { origin, path, request } = wire.get(target.key);
      return sampleCheck(`${origin}${path}`, request);
    };

    // The upstream's CPU is sampled here: runLoad samples only the process it is pointed at.
    const load = async (target, connections, durationSec) => {
      const { origin, path, request } = wire.get(target.key);
      const upstreamCpu0 = cpuTimeMs(upstream.child.pid);
      const gatewayCpu0 = cpuTimeMs(gateway.child.pid);
      const result = await runLoad({
        url: origin,
        path,
        headers: request.headers,
        bodyFor: request.bodyFor,
        connections,
        durationSec,
        verify: config.verify,
        serverPid: target.via === 'upstream' ? upstream.child.pid : gateway.child.pid,
      });
      const calls = result.completed;
      return {
        ...result,
        connections,
        upstreamCpuUsPerReq: cpuPerCall(cpuTimeMs(upstream.child.pid) - upstreamCpu0, calls),
        gatewayCpuUsPerReq:
          target.via === 'gateway'
            ? cpuPerCall(cpuTimeMs(gateway.child.pid) - gatewayCpu0, calls)
            : null,
      };
    };

    for (const target of FEDERATION_TARGETS) {
      await check(target);
      process.stdout.write(`warm-up ${target.key} ${target.label}… `);
      const w = await load(target, config.connections, config.warmupSec);
      console.log(`${w.reqPerSec} req/s`);
    }

    // Every (target, connections) pair measured; low concurrency for u0 and u1 only.
    const runs = [
      ...FEDERATION_TARGETS.map((target) => ({ target, connections: config.connections })),
      ...lowConnections(config).flatMap((connections) =>
        FEDERATION_TARGETS.filter((t) => t.key !== 'u2').map((target) => ({
          target,
          connections,
        })),
      ),
    ].map((run) => ({ ...run, rounds: [] }));
    for (let round = 1; round <= config.rounds; round++) {
      for (const run of runs) {
        const seconds =
          run.connections === config.connections ? config.durationSec : lowDurationSec(config);
        const result = await load(run.target, run.connections, seconds);
        run.rounds.push(result);
        console.log(
          `  round ${round} ${run.target.key} × ${run.connections}: ${result.reqPerSec} req/s, ` +
            `p50 ${result.latencyMs.p50} ms, p99 ${result.latencyMs.p99} ms, ` +
            `gateway ${result.gatewayCpuUsPerReq ?? '-'} / upstream ` +
            `${result.upstreamCpuUsPerReq ?? '?'} µs CPU/req` +
            (problems(result) > 0
              ? ` (${result.non2xx} non-2xx, ${result.errors} errors, ` +
                `${result.timeouts} timeouts, ${result.invalid} invalid; ` +
                `status ${JSON.stringify(result.statusCodes)})`
              : ''),
        );
        if (result.firstInvalid) {
          run.firstInvalid ??= result.firstInvalid;
        }
      }
    }

    // A target that broke under load must not go unnoticed.
    const postChecks = new Map();
    for (const target of FEDERATION_TARGETS) {
      await check(target).catch((err) => postChecks.set(target.key, err.message));
    }

    const targets = runs.map(({ target, connections, rounds, firstInvalid }) => ({
      key: target.key,
      label: target.label,
      connections,
      reqPerSec: median(rounds.map((r) => r.reqPerSec)),
      p50: median(rounds.map((r) => r.latencyMs.p50)),
      p99: median(rounds.map((r) => r.latencyMs.p99)),
      gatewayCpuUsPerReq: median(rounds.map((r) => r.gatewayCpuUsPerReq)),
      upstreamCpuUsPerReq: median(rounds.map((r) => r.upstreamCpuUsPerReq)),
      clean: rounds.every((r) => problems(r) === 0) && !postChecks.has(target.key),
      ...(firstInvalid && { firstInvalid }),
      ...(postChecks.has(target.key) && { postCheck: postChecks.get(target.key) }),
      rounds,
    }));
    const checks = federationChecks(targets, config.connections);
    printFederation(targets, checks, config);
    return { targets, checks };
  } finally {
    await Promise.all([gateway, upstream].filter(Boolean).map(({ child }) => stop(child)));
    rmSync(dir, { recursive: true, force: true });
  }
}

const problems = (r) => r.non2xx + r.errors + r.timeouts + r.invalid;

/**
 * The goals, checked on the medians (a comparison with an unclean side proves nothing), and
 * for information the same comparisons in server CPU per call, which the load generator's
 * share of the cores and other processes disturb less.
 */
function federationChecks(targets, connections) {
  const at = (key, conns) => targets.find((t) => t.key === key && t.connections === conns);
  const checks = [];
  const push = (what, value, unit, goal, pass, ...sides) =>
    checks.push({ what, value, unit, goal, pass, valid: sides.every((t) => t.clean) });
  const direct = at('u0', connections);
  for (const key of ['u1', 'u2']) {
    const via = at(key, connections);
    const ratio = via.reqPerSec / direct.reqPerSec;
    const goal = key === 'u1' ? FEDERATION_GOALS.throughput : undefined;
    push(
      `federation throughput: ${via.label} (${key}) / ${direct.label} (u0), ${connections} connections`,
      Number(ratio.toFixed(2)),
      '×',
      goal === undefined ? null : `≥ ${goal}`,
      goal === undefined ? null : ratio >= goal,
      via,
      direct,
    );
  }
  for (const conns of [...new Set([1, ...LOW_CONNECTIONS, connections])]) {
    const [via, alone] = [at('u1', conns), at('u0', conns)];
    if (!via || !alone) {
      continue;
    }
    const overhead = via.p50 - alone.p50;
    const goal = conns === 1 ? FEDERATION_GOALS.overheadP50Ms : undefined;
    push(
      `federation overhead at p50: u1 p50 − u0 p50, ${conns} connection${conns === 1 ? '' : 's'}`,
      Number(overhead.toFixed(3)),
      ' ms',
      goal === undefined ? null : `≤ ${goal} ms`,
      goal === undefined ? null : overhead <= goal,
      via,
      alone,
    );
  }
  const via = at('u1', connections);
  push(
    `federation CPU: gateway µs per call (u1) / the upstream's own µs per call (u0), ${connections} connections`,
    Number((via.gatewayCpuUsPerReq / direct.upstreamCpuUsPerReq).toFixed(2)),
    '×',
    null,
    null,
    via,
    direct,
  );
  return checks;
}

function printFederation(targets, checks, config) {
  console.log(
    `\ntools/call to an upstream MCP server, direct vs through Portico ` +
      `(medians of ${config.rounds} interleaved rounds; same upstream process, same run):`,
  );
  const cell = (n, digits = 0) => (n == null ? '-' : n.toFixed(digits));
  console.log(
    '  key  target                                         conns   req/s  p50 ms  p99 ms' +
      '  gw µs/req  up µs/req',
  );
  for (const t of targets) {
    console.log(
      `  ${t.key.padEnd(4)} ${t.label.padEnd(46)} ${String(t.connections).padStart(5)} ` +
        `${cell(t.reqPerSec).padStart(7)} ${cell(t.p50, 3).padStart(7)} ${cell(t.p99, 3).padStart(7)}` +
        ` ${cell(t.gatewayCpuUsPerReq).padStart(10)} ${cell(t.upstreamCpuUsPerReq).padStart(10)}` +
        `${t.clean ? '' : '  (not clean)'}`,
    );
  }
  for (const t of targets.filter((x) => !x.clean)) {
    if (t.firstInvalid) {
      console.log(
        `  ${t.key} × ${t.connections} first invalid answer (${t.firstInvalid.reason}): ${t.firstInvalid.body}`,
      );
    }
    if (t.postCheck) {
      console.log(`  ${t.key} post-load check failed: ${t.postCheck}`);
    }
  }
  console.log(
    '  gw / up µs/req: CPU time of the gateway / upstream process per answered call. The p50 ' +
      'overhead goal is checked with 1 connection (nothing queues); with more, both p50s include ' +
      'queueing.',
  );
  for (const c of checks) {
    const verdict = !c.valid ? 'N/A ' : c.pass === null ? 'INFO' : c.pass ? 'PASS' : 'FAIL';
    console.log(
      `  ${verdict}  ${c.what} = ${c.value}${c.unit}${c.goal ? ` (goal ${c.goal})` : ''}`,
    );
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const number = (name, fallback) => Number(process.env[name] ?? fallback);
  installCleanup();
  try {
    const { targets } = await runFederationBench({
      durationSec: number('BENCH_DURATION', 10),
      warmupSec: number('BENCH_WARMUP', 3),
      rounds: number('BENCH_ROUNDS', 3),
      connections: number('BENCH_CONNECTIONS', 50),
      verify: process.env.BENCH_VERIFY !== '0',
    });
    if (targets.some((t) => !t.clean)) {
      process.exitCode = 1;
    }
  } catch (err) {
    if (err.code !== 'PORTICO_NOT_BUILT') {
      throw err;
    }
    console.error(`bench: ${err.message}`);
    process.exitCode = 1;
  }
}

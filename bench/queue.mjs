// Queued tool calls against raw BullMQ: tools/call through Portico's tool-call queue and a
// separate `portico worker`, against a bare BullMQ producer and worker doing the same round
// trip (add → process → wait for the result) on the same Redis, in the same run; and against
// the same call run inline, for the latency the queue adds. Run by `npm run bench` (section
// "queue") or alone: `node bench/queue.mjs`.
//
// Every variant keeps the same number of calls in flight (50) and its worker runs as many jobs
// at once, so no job waits for a free worker slot. The baselines move the same bytes as
// Portico: their jobs copy the data, result and options of a job Portico itself queued in this
// run. Rounds are interleaved (q0 q0h q1 q1e q2, q0 …) and summarised by their median. Each
// variant has its own Redis key prefix under one prefix per run, deleted at the end.
//
// Besides throughput and latency, every process of a variant is charged its CPU time per call
// (load generator, gateway or HTTP server, worker, Redis): on a machine whose cores are all
// busy, throughput follows the sum.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Queue } from 'bullmq';
import Redis from 'ioredis';
import { runLoad } from './load.mjs';
import { eraRequest, sampleCheck } from './lib/mcp.mjs';
import {
  cpuPerCall,
  cpuTimeMs,
  freePort,
  installCleanup,
  startCommand,
  startFixture,
  stop,
} from './lib/procs.mjs';
import { isClean, median } from './lib/report.mjs';

const ROOT = resolve(import.meta.dirname, '..');
const SERVERS = resolve(import.meta.dirname, 'servers');
const ENTRY = resolve(
  ROOT,
  process.env.PORTICO_ENTRY ?? 'dist/apps/gateway/apps/gateway/src/main.js',
);
const WORKER_ENTRY = resolve(
  ROOT,
  process.env.PORTICO_WORKER_ENTRY ?? 'dist/apps/worker/apps/worker/src/main.js',
);
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Queued throughput over the raw BullMQ round trip, and the queued call's p99. */
export const QUEUE_GOALS = { vsRaw: 0.8, p99Ms: 50 };
/** The tool-call queue (libs/queue/src/tool-job.ts). */
const QUEUE = 'tool-calls';
/** Portico's default job lock (DEFAULT_LOCK_MS, WORKER_LOCK_MS). */
const LOCK_MS = 30_000;
/** API key variables of the two tenants (`executor: queued` and the default, inline). */
const TENANT_KEYS = { queued: 'BENCH_QUEUED_KEY', inline: 'BENCH_INLINE_KEY' };

/**
 * `side` names the processes a variant runs on: the raw producer (raw), the raw HTTP server
 * (rawHttp), the gateway with a separate worker (front) or the one with its embedded worker.
 */
export const QUEUE_VARIANTS = [
  { key: 'q0', label: 'raw BullMQ: add → worker → waitUntilFinished', side: 'raw' },
  { key: 'q0h', label: 'raw BullMQ behind bare Fastify (no MCP, no auth)', side: 'rawHttp' },
  {
    key: 'q1',
    label: 'Portico queued, one separate portico worker',
    side: 'front',
    tenant: 'queued',
  },
  {
    key: 'q1e',
    label: 'Portico queued, worker embedded in the gateway',
    side: 'embedded',
    tenant: 'queued',
  },
  { key: 'q2', label: 'Portico inline (same gateway as q1)', side: 'front', tenant: 'inline' },
];

function writeTenantFile(dir) {
  const tenant = (slug, settings) => [
    `  - slug: ${slug}`,
    `    name: Benchmark tenant (${slug})`,
    '    backends:',
    `      - { name: echo, kind: fixture, target: echo${settings} }`,
    '    apiKeys:',
    `      - { name: bench, secret: { env: ${TENANT_KEYS[slug]} }, roles: [tool-user] }`,
  ];
  writeFileSync(
    join(dir, 'portico.yaml'),
    [
      'version: 1',
      'tenants:',
      ...tenant('queued', ', settings: { executor: queued }'),
      ...tenant('inline', ''),
    ].join('\n'),
  );
}

/**
 * The environment every Portico process of the run shares: observability off (its cost is
 * bench/observability.mjs's subject), the same secret (a worker reads what its gateway wrote)
 * and a worker concurrency equal to the calls in flight.
 */
function porticoEnv(dir, keys, concurrency) {
  return {
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    DATA_DIR: dir,
    PORTICO_SECRET: 'bench-secret-bench-secret-bench-secret',
    PORTICO_CONFIG_FILE: join(dir, 'portico.yaml'),
    ...keys,
    METRICS_ENABLED: 'false',
    LOG_LEVEL: 'warn',
    OTEL_TRACES_EXPORTER: 'none',
    REDIS_URL,
    WORKER_CONCURRENCY: String(concurrency),
    WORKER_LOCK_MS: String(LOCK_MS),
  };
}

async function waitReady(url, child, name) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const res = await fetch(url).catch(() => undefined);
    if (res?.status === 200) {
      return;
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`${name} did not become ready (${url})\n${child.outputTail()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The gateway (ENTRY) or a worker (WORKER_ENTRY), ready when its /health/ready says so. */
async function startPortico(name, entry, portVariable, env) {
  const port = await freePort();
  // BENCH_NODE_ARGS: extra Node flags for Portico's processes (e.g. --cpu-prof).
  const nodeArgs = process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const { child } = await startCommand(process.execPath, [...nodeArgs, entry], {
    name,
    cwd: ROOT,
    port,
    env: { ...env, [portVariable]: String(port) },
  });
  await waitReady(`http://127.0.0.1:${port}/health/ready`, child, name);
  return { child, port };
}

/**
 * The sample check before any load, tried up to three times: the first queued call also builds
 * the worker's catalog of the tenant from the database, which on a busy machine can outlast
 * one request's timeout. The check after the load gets one try.
 */
async function firstCalls(url, request) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await sampleCheck(url, request);
    } catch (err) {
      if (attempt === 3) {
        throw err;
      }
      console.log(`  ${url}: ${err.message.split('\n')[0]}; trying again`);
    }
  }
}

/** Sends `msg` to a forked baseline and resolves with its answer of type `type`. */
function ask(child, msg, type, timeoutMs) {
  return new Promise((done, fail) => {
    const finish = (settle, value) => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      settle(value);
    };
    const timer = setTimeout(
      () => finish(fail, new Error(`${child.benchName}: no ${type} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onMessage = (answer) => {
      if (answer?.type === type) {
        finish(done, answer);
      } else if (answer?.type === 'failed') {
        finish(fail, new Error(`${child.benchName}: ${answer.message}`));
      }
    };
    const onExit = () =>
      finish(fail, new Error(`${child.benchName} exited\n${child.outputTail()}`));
    child.on('message', onMessage);
    child.once('exit', onExit);
    child.send(msg);
  });
}

/** A forked baseline script, configured with `start` (answered by { type: 'started' }). */
async function startBaseline(script, start) {
  const { child } = await startFixture(resolve(SERVERS, script), script.replace(/\.mjs$/, ''));
  const { port } = await ask(
    child,
    { type: 'start', redisUrl: REDIS_URL, ...start },
    'started',
    15_000,
  );
  return { child, port };
}

/**
 * A job Portico itself put on the queue: its data and result, and the options it was added
 * with (priority, attempts, retention) but its id, which the baselines leave to BullMQ.
 */
async function porticoJob(redis, prefix) {
  // BullMQ leaves a connection it was given open: the bench's own client is closed at the end.
  const queue = new Queue(QUEUE, { connection: redis, prefix: `${prefix}bull` });
  try {
    const [job] = await queue.getJobs(['completed'], 0, 0);
    if (!job) {
      throw new Error('the queued sample calls left no completed job to copy');
    }
    const { jobId: _ownId, ...options } = job.opts;
    return { data: job.data, result: job.returnvalue, options };
  } finally {
    await queue.close();
  }
}

/** Redis's pid when it runs on this machine (its CPU time is read from /proc). */
async function redisPid(redis) {
  const pid = /process_id:(\d+)/.exec(await redis.info('server'))?.[1];
  try {
    return pid && readFileSync(`/proc/${pid}/comm`, 'utf8').includes('redis') ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function redisCommands(redis) {
  return Number(/total_commands_processed:(\d+)/.exec(await redis.info('stats'))?.[1]);
}

async function deleteKeys(redis, prefix) {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    if (keys.length) {
      await redis.unlink(...keys);
    }
    cursor = next;
  } while (cursor !== '0');
}

/**
 * Runs the section and prints it; returns { variants, checks, jobOptions } (checks in
 * bench/run.mjs's report shape, jobOptions the options Portico's jobs had and the baselines
 * copied). `config`: durationSec, warmupSec, rounds, verify, and optionally connections
 * (calls in flight, default 50; every worker runs as many jobs at once).
 */
export async function runQueueBench(config) {
  const inFlight = config.connections ?? 50;
  for (const entry of [ENTRY, WORKER_ENTRY]) {
    if (!existsSync(entry)) {
      throw new Error(`${entry} does not exist: run \`npm run build\``);
    }
  }
  const run = `portico-bench-${randomBytes(4).toString('hex')}:`;
  const prefix = (key) => `${run}${key}:`;
  const keys = Object.fromEntries(
    Object.values(TENANT_KEYS).map((name) => [
      name,
      `ptk_${randomBytes(32).toString('base64url')}`,
    ]),
  );
  const dir = mkdtempSync(join(tmpdir(), 'portico-bench-queue-'));
  writeTenantFile(dir);
  const env = porticoEnv(dir, keys, inFlight);
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  const procs = {};
  try {
    // The gateway of q1 and q2 shares its SQLite file with its worker (the worker reads the
    // tenant the gateway declared); the embedded variant has a file of its own.
    const front = { ...env, DATABASE_PATH: join(dir, 'front.db'), REDIS_KEY_PREFIX: prefix('q1') };
    procs.front = await startPortico('portico-gateway', ENTRY, 'PORT', {
      ...front,
      WORKER_EMBEDDED: 'false',
    });
    procs.frontWorker = await startPortico('portico-worker', WORKER_ENTRY, 'WORKER_PORT', front);
    procs.embedded = await startPortico('portico-embedded', ENTRY, 'PORT', {
      ...env,
      DATABASE_PATH: join(dir, 'embedded.db'),
      REDIS_KEY_PREFIX: prefix('q1e'),
      WORKER_EMBEDDED: 'true',
    });

    // One request shape for every HTTP variant: the raw server ignores what it does not need.
    const base = eraRequest('modern');
    const requestFor = (v) => ({
      headers: v.tenant
        ? { ...base.headers, authorization: `Bearer ${keys[TENANT_KEYS[v.tenant]]}` }
        : base.headers,
      bodyFor: base.bodyFor,
    });
    const pathOf = (v) => (v.tenant ? `/mcp/${v.tenant}` : '/mcp');
    const urlOf = (v) => `http://127.0.0.1:${procs[v.side].port}`;
    // Also leaves the completed job the baselines copy.
    for (const v of QUEUE_VARIANTS.filter((v) => v.tenant)) {
      await firstCalls(`${urlOf(v)}${pathOf(v)}`, requestFor(v));
    }

    const job = await porticoJob(redis, prefix('q1'));
    const rawWorker = (key) =>
      startBaseline('raw-bullmq-worker.mjs', {
        queue: QUEUE,
        prefix: `${prefix(key)}bull`,
        concurrency: inFlight,
        lockMs: LOCK_MS,
        result: job.result,
      });
    const producer = (key) => ({
      queue: QUEUE,
      prefix: `${prefix(key)}bull`,
      data: job.data,
      jobOptions: job.options,
    });
    procs.rawWorker = await rawWorker('q0');
    procs.raw = await startBaseline('raw-bullmq-producer.mjs', producer('q0'));
    procs.rawHttpWorker = await rawWorker('q0h');
    procs.rawHttp = await startBaseline('raw-bullmq-http.mjs', producer('q0h'));
    const rawHttp = QUEUE_VARIANTS.find((v) => v.side === 'rawHttp');
    await sampleCheck(`${urlOf(rawHttp)}${pathOf(rawHttp)}`, requestFor(rawHttp));

    const redisProc = await redisPid(redis);
    const workerOf = { raw: 'rawWorker', rawHttp: 'rawHttpWorker', front: 'frontWorker' };
    const measure = async (v, durationSec) => {
      const pids = {
        server: v.side === 'raw' ? undefined : procs[v.side].child.pid,
        worker: v.tenant === 'inline' ? undefined : procs[workerOf[v.side]]?.child.pid,
        redis: redisProc,
      };
      const cpu0 = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuTimeMs(pid)]));
      const commands0 = await redisCommands(redis);
      const loader0 = process.cpuUsage();
      let m;
      let loaderUs;
      if (v.side === 'raw') {
        const msg = { type: 'run', durationSec, inFlight, verify: config.verify };
        m = (await ask(procs.raw.child, msg, 'result', (durationSec + 60) * 1000)).result;
        loaderUs = m.cpuUs;
      } else {
        m = await runLoad({
          url: urlOf(v),
          path: pathOf(v),
          ...requestFor(v),
          connections: inFlight,
          durationSec,
          verify: config.verify,
        });
        const loader = process.cpuUsage(loader0);
        loaderUs = loader.user + loader.system;
      }
      const commands = (await redisCommands(redis)) - commands0;
      const perCall = (k) =>
        pids[k] ? cpuPerCall(cpuTimeMs(pids[k]) - cpu0[k], m.completed) : null;
      const cpu = {
        loader: cpuPerCall(loaderUs / 1000, m.completed),
        server: perCall('server'),
        worker: perCall('worker'),
        redis: perCall('redis'),
      };
      return {
        reqPerSec: m.reqPerSec,
        completed: m.completed,
        latencyMs: m.latencyMs,
        non2xx: m.non2xx ?? 0,
        errors: m.errors,
        timeouts: m.timeouts ?? 0,
        invalid: m.invalid,
        firstError: m.firstError,
        firstInvalid: m.firstInvalid,
        cpuUsPerReq: { ...cpu, total: Object.values(cpu).reduce((a, b) => a + (b ?? 0), 0) },
        redisCommandsPerReq: m.completed ? Math.round((10 * commands) / m.completed) / 10 : null,
      };
    };

    for (const v of QUEUE_VARIANTS) {
      process.stdout.write(`warm-up ${v.key} ${v.label}… `);
      const w = await measure(v, config.warmupSec);
      console.log(`${w.reqPerSec.toLocaleString('en-US')} req/s`);
    }
    const rounds = new Map(QUEUE_VARIANTS.map((v) => [v.key, []]));
    for (let round = 1; round <= config.rounds; round++) {
      for (const v of QUEUE_VARIANTS) {
        const m = await measure(v, config.durationSec);
        rounds.get(v.key).push(m);
        const failed = m.non2xx + m.errors + m.timeouts + m.invalid;
        console.log(
          `  round ${round} ${v.key}: ${m.reqPerSec} req/s, p50 ${m.latencyMs.p50} ms, ` +
            `p99 ${m.latencyMs.p99} ms, ${Math.round(m.cpuUsPerReq.total)} µs CPU/call` +
            (failed
              ? ` (${m.non2xx} non-2xx, ${m.errors} errors, ${m.timeouts} timeouts, ${m.invalid} invalid)`
              : ''),
        );
      }
    }
    // A variant that broke under load must not go unnoticed.
    for (const v of QUEUE_VARIANTS.filter((v) => v.side !== 'raw')) {
      await sampleCheck(`${urlOf(v)}${pathOf(v)}`, requestFor(v));
    }

    const variants = QUEUE_VARIANTS.map((v) => summarizeVariant(v, rounds.get(v.key)));
    const checks = queueChecks(variants);
    printQueue(variants, checks, { ...config, inFlight, jobOptions: job.options });
    return { variants, checks, jobOptions: job.options };
  } finally {
    await Promise.all(Object.values(procs).map(({ child }) => stop(child, 15_000)));
    await deleteKeys(redis, run).catch((err) => console.error(`bench: keys left: ${err.message}`));
    redis.disconnect();
    rmSync(dir, { recursive: true, force: true });
  }
}

function summarizeVariant(variant, list) {
  const med = (pick) => median(list.map(pick));
  const sum = (pick) => list.reduce((acc, r) => acc + pick(r), 0);
  const rps = list.map((r) => r.reqPerSec);
  const failed = {
    non2xx: sum((r) => r.non2xx),
    errors: sum((r) => r.errors),
    timeouts: sum((r) => r.timeouts),
    invalid: sum((r) => r.invalid),
  };
  const cpu = (k) => med((r) => r.cpuUsPerReq[k]);
  return {
    key: variant.key,
    label: variant.label,
    reqPerSec: Math.round(median(rps)),
    minReqPerSec: Math.min(...rps),
    maxReqPerSec: Math.max(...rps),
    p50Ms: med((r) => r.latencyMs.p50),
    p99Ms: med((r) => r.latencyMs.p99),
    cpuUsPerReq: Object.fromEntries(
      ['loader', 'server', 'worker', 'redis', 'total'].map((k) => [k, cpu(k)]),
    ),
    redisCommandsPerReq: med((r) => r.redisCommandsPerReq),
    ...failed,
    clean: isClean(failed),
    firstError: list.find((r) => r.firstError)?.firstError,
    firstInvalid: list.find((r) => r.firstInvalid)?.firstInvalid,
    rounds: list,
  };
}

/**
 * The goals (q1 against q0, q1's p99); for information q1 against the raw round trip behind
 * HTTP, the embedded worker, and the latency the queue adds over inline execution.
 */
function queueChecks(variants) {
  const by = Object.fromEntries(variants.map((v) => [v.key, v]));
  const round2 = (n) => Math.round(n * 100) / 100;
  const check = (what, value, unit, goal, pass, valid) => ({
    what,
    value: round2(value),
    unit,
    goal,
    pass,
    valid,
  });
  const vsBaseline = (k, base, goal) => {
    const value = by[k].reqPerSec / by[base].reqPerSec;
    return check(
      `queued throughput: ${by[k].label} (${k}) / ${by[base].label} (${base})`,
      value,
      '×',
      goal === undefined ? null : `≥ ${goal}`,
      goal === undefined ? null : value >= goal,
      by[k].clean && by[base].clean,
    );
  };
  const p99 = (k, goal) =>
    check(
      `queued p99 latency: ${by[k].label} (${k})`,
      by[k].p99Ms,
      ' ms',
      goal === undefined ? null : `≤ ${goal} ms`,
      goal === undefined ? null : by[k].p99Ms <= goal,
      by[k].clean,
    );
  const added = (k, pct) =>
    check(
      `latency added over inline, p${pct}: ${k} − q2`,
      by[k][`p${pct}Ms`] - by.q2[`p${pct}Ms`],
      ' ms',
      null,
      null,
      by[k].clean && by.q2.clean,
    );
  return [
    vsBaseline('q1', 'q0', QUEUE_GOALS.vsRaw),
    p99('q1', QUEUE_GOALS.p99Ms),
    vsBaseline('q1', 'q0h'),
    vsBaseline('q1e', 'q0'),
    p99('q1e'),
    added('q1', 50),
    added('q1', 99),
    added('q1e', 50),
    added('q1e', 99),
  ];
}

function printQueue(variants, checks, config) {
  console.log(
    `\n== queued tools/call vs raw BullMQ: ${config.inFlight} calls in flight, workers at ` +
      `concurrency ${config.inFlight}, ${config.rounds} × ${config.durationSec}s rounds (median), ` +
      `warm-up ${config.warmupSec}s ==`,
  );
  console.log(
    `  job options (Portico's, copied by q0 and q0h): ${JSON.stringify(config.jobOptions)}`,
  );
  const num = (n, digits = 0) => (n == null ? '—' : n.toFixed(digits));
  const header = ['key', 'variant', 'req/s', 'range', 'p50 ms', 'p99 ms'];
  const cpuHeader = ['load', 'server', 'worker', 'redis', 'total', 'redis cmd', 'failed'];
  const rows = variants.map((v) => [
    v.key,
    v.label,
    v.reqPerSec.toLocaleString('en-US'),
    `${v.minReqPerSec}–${v.maxReqPerSec}`,
    num(v.p50Ms, 2),
    num(v.p99Ms, 2),
    ...['loader', 'server', 'worker', 'redis', 'total'].map((k) => num(v.cpuUsPerReq[k])),
    num(v.redisCommandsPerReq, 1),
    v.non2xx + v.errors + v.timeouts + v.invalid,
  ]);
  const all = [...header, ...cpuHeader];
  const widths = all.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) =>
    cells
      .map((c, i) => (i < 2 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i])))
      .join('  ');
  const cpuStart = header.reduce((acc, _h, i) => acc + widths[i] + 2, 2);
  console.log(`${' '.repeat(cpuStart)}CPU µs per call (median)`);
  console.log(`  ${line(all)}`);
  for (const row of rows) {
    console.log(`  ${line(row)}`);
  }
  for (const v of variants.filter((v) => !v.clean)) {
    console.log(`  ${v.key} had failed calls — its figures are not valid.`);
    if (v.firstError) {
      console.log(`     first error: ${v.firstError}`);
    }
    if (v.firstInvalid) {
      console.log(`     first invalid answer: ${JSON.stringify(v.firstInvalid).slice(0, 500)}`);
    }
  }
  console.log(
    '  load = the load generator (q0: the raw producer itself); server = the gateway, or the raw ' +
      'HTTP server; worker = the separate worker process; redis cmd = Redis commands per call ' +
      '(Lua calls included). Redis is shared with anything else on the machine: its columns are ' +
      'upper bounds.',
  );
  for (const c of checks) {
    const verdict = !c.valid ? 'N/A ' : c.pass === null ? 'INFO' : c.pass ? 'PASS' : 'FAIL';
    console.log(
      `  ${verdict}  ${c.what} = ${c.value}${c.unit}${c.goal ? `  (goal ${c.goal})` : ''}`,
    );
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const number = (name, fallback) => Number(process.env[name] ?? fallback);
  installCleanup();
  const { variants } = await runQueueBench({
    durationSec: number('BENCH_DURATION', 10),
    warmupSec: number('BENCH_WARMUP', 3),
    rounds: number('BENCH_ROUNDS', 3),
    connections: number('BENCH_CONNECTIONS', 50),
    verify: process.env.BENCH_VERIFY !== '0',
  });
  if (variants.some((v) => !v.clean)) {
    process.exitCode = 1;
  }
}

#!/usr/bin/env node
// The long hostile-input run: the property-based fuzz of test/fuzz.e2e-spec.ts, at volume,
// against the BUILT gateway (HTTP, legacy SSE, WebSocket) and the built stdio CLI.
//   npm run build && node scripts/fuzz-long.mjs
// Environment:
//   FUZZ_COUNT          messages per transport (default 100000)
//   FUZZ_SEED           seed of the generated traffic (default 42)
//   FUZZ_TRANSPORTS     comma-separated subset of http,sse,ws,stdio (default all)
//   FUZZ_CONCURRENCY    scenarios in flight per transport (default 4)
//   FUZZ_TIME_LIMIT_S   time budget per transport (default 900); stopping early exits 3
//   FUZZ_HEAP_MARGIN_MB allowed heap growth after GC (default 50)
//   FUZZ_STDIO_CHUNK    messages per stdio process (default 5000)
// Prints per transport: messages sent, answers checked, failures, throughput, RSS and heap
// (after a forced GC, through the inspector) before and after. Exits 1 on any property
// failure, 3 when the time budget ran out first, 2 on a setup problem.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import Module, { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const GATEWAY_MAIN = join(ROOT, 'dist/apps/gateway/apps/gateway/src/main.js');
const CLI_MAIN = join(ROOT, 'dist/apps/cli/apps/cli/src/main.js');
const FUZZ_SOURCE = join(ROOT, 'test/support/fuzz.ts');

const env = process.env;
const COUNT = Number(env.FUZZ_COUNT ?? 100_000);
const SEED = Number(env.FUZZ_SEED ?? 42);
const TRANSPORTS = (env.FUZZ_TRANSPORTS ?? 'http,sse,ws,stdio').split(',').map((t) => t.trim());
const CONCURRENCY = Number(env.FUZZ_CONCURRENCY ?? 4);
const TIME_LIMIT_MS = Number(env.FUZZ_TIME_LIMIT_S ?? 900) * 1000;
const HEAP_MARGIN = Number(env.FUZZ_HEAP_MARGIN_MB ?? 50) * 1024 * 1024;
const STDIO_CHUNK = Number(env.FUZZ_STDIO_CHUNK ?? 5000);
const MAX_BODY_BYTES = 16_384;
const SECRET = 'fuzz-long-secret-fuzz-long-secret!';
const SCENARIO_WATCHDOG_MS = 60_000;

for (const [name, value] of Object.entries({ COUNT, SEED, CONCURRENCY, TIME_LIMIT_MS })) {
  if (!Number.isFinite(value) || value < 0) {
    console.error(`fuzz-long: invalid ${name}`);
    process.exit(2);
  }
}
for (const file of [GATEWAY_MAIN, CLI_MAIN]) {
  if (!existsSync(file)) {
    console.error(`fuzz-long: ${file} not found; run "npm run build" first`);
    process.exit(2);
  }
}

// The shared arbitraries, oracles and drivers are TypeScript: transpile them with SWC (a dev
// dependency) and load them as a CommonJS module resolving from test/support.
const require = createRequire(import.meta.url);
const { transformSync } = require('@swc/core');
function loadFuzz() {
  const { code } = transformSync(readFileSync(FUZZ_SOURCE, 'utf8'), {
    filename: FUZZ_SOURCE,
    jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
    module: { type: 'commonjs' },
  });
  const mod = new Module(FUZZ_SOURCE);
  mod.filename = FUZZ_SOURCE;
  mod.paths = Module._nodeModulePaths(dirname(FUZZ_SOURCE));
  mod._compile(code, FUZZ_SOURCE);
  return mod.exports;
}
const F = loadFuzz();
// The same fast-check instance as the module above (arbitraries are tied to it).
const fc = require('fast-check');
const WebSocket = require('ws');

// ---------------------------------------------------------------------------------------------
// Children: tracked, and killed whatever happens

const children = new Set();
function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}
function killChildren() {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
    }
  }
}
process.on('exit', killChildren);
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const freePort = () =>
  new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });

/** Resolves with the inspector URL a child started with --inspect=127.0.0.1:0 prints. */
function inspectorUrl(readStderr, child) {
  return new Promise((done, fail) => {
    const deadline = Date.now() + 15_000;
    const poll = () => {
      const match = /Debugger listening on (ws:\/\/\S+)/.exec(readStderr());
      if (match) {
        return done(match[1]);
      }
      if (child.exitCode !== null || Date.now() > deadline) {
        return fail(new Error('no inspector URL on stderr'));
      }
      setTimeout(poll, 20);
    };
    poll();
  });
}

/** Heap after forced full GCs, and RSS, of a child, through its inspector. */
async function inspect(url) {
  const socket = new WebSocket(url);
  await new Promise((done, fail) => {
    socket.once('open', done);
    socket.once('error', fail);
  });
  let next = 0;
  const pending = new Map();
  socket.on('message', (data) => {
    const message = JSON.parse(String(data));
    pending.get(message.id)?.(message);
    pending.delete(message.id);
  });
  const call = (method, params = {}) =>
    new Promise((done, fail) => {
      const id = ++next;
      pending.set(id, done);
      socket.send(JSON.stringify({ id, method, params }));
      setTimeout(() => fail(new Error(`inspector ${method} timed out`)), 30_000).unref();
    });
  return {
    async memory() {
      for (let i = 0; i < 3; i++) {
        await call('HeapProfiler.collectGarbage');
      }
      const answer = await call('Runtime.evaluate', {
        expression: 'JSON.stringify(process.memoryUsage())',
        returnByValue: true,
      });
      return JSON.parse(answer.result.result.value);
    },
    close: () => socket.close(),
  };
}

const mb = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

// ---------------------------------------------------------------------------------------------
// The gateway

async function startGateway() {
  const port = await freePort();
  let log = '';
  const child = track(
    spawn(process.execPath, ['--inspect=127.0.0.1:0', GATEWAY_MAIN], {
      env: F.childEnv({
        PORT: String(port),
        HOST: '127.0.0.1',
        MAX_BODY_BYTES: String(MAX_BODY_BYTES),
        CLIENT_REQUEST_TIMEOUT_MS: '300',
        LOG_LEVEL: 'error',
        PORTICO_SECRET: SECRET,
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let errorLines = 0;
  let errorSample = '';
  const onLog = (chunk) => {
    log = (log + chunk).slice(-50_000);
    for (const line of String(chunk).split('\n')) {
      if (/"level":(50|60)/.test(line)) {
        errorLines++;
        errorSample ||= line.slice(0, 300);
      }
    }
  };
  child.stdout.on('data', onLog);
  child.stderr.on('data', onLog);
  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`gateway exited with ${child.exitCode}: ${log.slice(-2000)}`);
    }
    try {
      if ((await fetch(`${baseUrl}/health/ready`)).ok) {
        break;
      }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      throw new Error('gateway did not become ready within 30 s');
    }
    await sleep(200);
  }
  const inspector = await inspect(await inspectorUrl(() => log, child));
  return {
    child,
    baseUrl,
    inspector,
    errors: () => ({ count: errorLines, sample: errorSample }),
    alive: () => child.exitCode === null && child.signalCode === null,
  };
}

// ---------------------------------------------------------------------------------------------
// Scenario sources: deterministic batches of generated scenarios

function source(arbitrary, seed) {
  let batch = [];
  let index = 0;
  return () => {
    if (batch.length === 0) {
      batch = fc.sample(arbitrary, { seed: seed + index++, numRuns: 100 });
    }
    return batch.shift();
  };
}

const withWatchdog = (promise, what, ms) =>
  Promise.race([
    promise,
    new Promise((done) =>
      setTimeout(
        () =>
          done({
            sent: 0,
            checked: 0,
            problems: [`${what} did not finish within ${ms} ms (hang?)`],
          }),
        ms,
      ).unref(),
    ),
  ]);

/** Runs scenarios from `next` with `run` until COUNT messages or the time budget. */
async function pump(name, next, run, concurrency = CONCURRENCY) {
  const stats = { name, sent: 0, checked: 0, runs: 0, failures: [], outOfTime: false };
  const started = Date.now();
  const worker = async (w) => {
    while (stats.sent < COUNT) {
      if (Date.now() - started > TIME_LIMIT_MS) {
        stats.outOfTime = true;
        return;
      }
      const scenario = next();
      // Generous: a scenario takes milliseconds, a stdio chunk seconds.
      const watchdogMs =
        SCENARIO_WATCHDOG_MS + 20 * (Array.isArray(scenario) ? scenario.length : 0);
      const report = await withWatchdog(
        run(scenario, w, stats.runs++),
        `${name} scenario`,
        watchdogMs,
      );
      stats.sent += report.sent;
      stats.checked += report.checked;
      if (report.problems.length > 0) {
        stats.failures.push({ problems: report.problems, scenario: fc.stringify(scenario) });
      }
      if (Date.now() - lastProgress > 30_000) {
        lastProgress = Date.now();
        const done = Math.min(stats.sent, COUNT);
        const rate = Math.round(done / ((Date.now() - started) / 1000));
        console.log(
          `  ${name}: ${done}/${COUNT} messages, ${rate}/s, ${stats.failures.length} failing run(s)`,
        );
      }
    }
  };
  let lastProgress = Date.now();
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  stats.seconds = (Date.now() - started) / 1000;
  return stats;
}

const streamOptions = (profile, sentinelId) => ({
  profile,
  settleMs: 1500,
  answerTimeoutMs: 10_000,
  sentinelId,
});

// ---------------------------------------------------------------------------------------------
// Transports

async function fuzzGatewayTransport(gateway, name) {
  const target = {
    baseUrl: gateway.baseUrl,
    mcpPath: '/mcp',
    maxBodyBytes: MAX_BODY_BYTES,
    profile: F.CONFORMANCE_PROFILE,
    timeoutMs: 15_000,
  };
  const profile = F.CONFORMANCE_PROFILE;
  const before = await gateway.inspector.memory();
  let stats;
  if (name === 'http') {
    const fuzzers = Array.from({ length: CONCURRENCY }, () => new F.HttpFuzzer(target));
    stats = await pump(name, source(F.httpScenarioArb(profile, 12), SEED), (s, w) =>
      fuzzers[w].run(s),
    );
    fuzzers.forEach((f) => f.close());
  } else if (name === 'sse') {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 * CONCURRENCY });
    stats = await pump(
      name,
      source(F.streamScenarioArb(profile, 30), SEED + 1_000_000),
      async (steps, _w, i) => {
        const endpoint = await F.LegacySseEndpoint.open(target, agent);
        try {
          const report = await F.driveStream(endpoint, steps, streamOptions(profile, `sse-${i}`));
          if (report.problems.length > 0) {
            report.problems.push(F.describeFailure({ problems: [] }, endpoint.received));
          }
          return report;
        } finally {
          endpoint.close();
        }
      },
    );
    agent.destroy();
  } else {
    const url = `${gateway.baseUrl.replace(/^http/, 'ws')}/mcp`;
    stats = await pump(name, source(F.wsScenarioArb(profile, 30), SEED + 2_000_000), (s, _w, i) =>
      F.runWebSocket(url, s, {
        ...streamOptions(profile, `ws-${i}`),
        maxFrameBytes: MAX_BODY_BYTES,
      }),
    );
  }
  await sleep(500); // let closed streams and sockets be released
  const after = await gateway.inspector.memory();
  if (!gateway.alive()) {
    stats.failures.push({ problems: ['the gateway process died'], scenario: '' });
  }
  if (after.heapUsed - before.heapUsed > HEAP_MARGIN) {
    stats.failures.push({
      problems: [`heap grew from ${mb(before.heapUsed)} to ${mb(after.heapUsed)} after GC`],
      scenario: '',
    });
  }
  return { ...stats, before, after };
}

async function fuzzStdio() {
  const profile = F.CONFORMANCE_PROFILE;
  const next = source(F.streamScenarioArb(profile, 30), SEED + 3_000_000);
  const memory = { before: undefined, after: undefined, worst: 0 };
  const failures = [];
  let processes = 0;
  const workers = Math.min(CONCURRENCY, 2);
  const chunk = Math.max(1, Math.min(STDIO_CHUNK, Math.ceil(COUNT / workers)));
  // One process per chunk: a long stream made of many generated scenarios back to back.
  const stats = await pump(
    'stdio',
    () => {
      const steps = [];
      let frames = 0;
      while (frames < chunk) {
        const scenario = next();
        frames += scenario.filter((s) => s.t !== 'pause').length;
        steps.push(...scenario);
      }
      return steps;
    },
    async (steps) => {
      const endpoint = new F.StdioEndpoint(
        CLI_MAIN,
        F.childEnv({
          MAX_BODY_BYTES: String(MAX_BODY_BYTES),
          CLIENT_REQUEST_TIMEOUT_MS: '300',
          SHUTDOWN_GRACE_MS: '500',
          LOG_LEVEL: 'warn',
          PORTICO_SECRET: SECRET,
        }),
        ['--inspect=127.0.0.1:0'],
      );
      track(endpoint.child);
      processes++;
      let inspector;
      try {
        inspector = await inspect(await inspectorUrl(() => endpoint.stderr, endpoint.child));
        // Warm up (engine, schemas), then take the baseline.
        await F.driveStream(endpoint, [], streamOptions(profile, 'warm-up'));
        const before = await inspector.memory();
        const report = await F.driveStream(endpoint, steps, {
          ...streamOptions(profile, `stdio-${processes}`),
          maxFrameBytes: MAX_BODY_BYTES, // longer lines are refused with one error
        });
        const after = await inspector.memory();
        memory.before ??= before;
        memory.after = after;
        memory.worst = Math.max(memory.worst, after.heapUsed - before.heapUsed);
        if (after.heapUsed - before.heapUsed > HEAP_MARGIN) {
          report.problems.push(
            `heap grew from ${mb(before.heapUsed)} to ${mb(after.heapUsed)} after GC`,
          );
        }
        inspector.close();
        inspector = undefined;
        await endpoint.stop(15_000);
        report.problems.push(...endpoint.problems.filter((p) => !report.problems.includes(p)));
        if (report.problems.length > 0) {
          report.problems.push(F.describeFailure({ problems: [] }, endpoint.received));
        }
        return report;
      } catch (err) {
        return { sent: 0, checked: 0, problems: [`stdio driver: ${err.message}`] };
      } finally {
        inspector?.close();
        endpoint.kill();
      }
    },
    workers,
  );
  stats.failures.push(...failures);
  return { ...stats, ...memory, processes };
}

// ---------------------------------------------------------------------------------------------
// Main

/** A failure's kind: its first problem without the payload, ids and numbers (status kept). */
function signature(problem) {
  const line = problem.split('\n')[0];
  const http = /^exchange #\d+ \(([^)]*)\): /.exec(line);
  const rest = (http ? line.slice(http[0].length) : line)
    .replace(/server message #\d+/, 'server message')
    .replace(/: [[{"].*$/, '')
    .replace(/id [a-z]+:\S*/g, 'id …')
    .replace(/-?\d+(\.\d+)?(e-?\d+)?/g, 'N');
  return `${http ? `${http[1]}: ` : ''}${rest}`.slice(0, 140);
}

console.log(
  `Portico long fuzz: seed ${SEED}, ${COUNT} messages per transport (${TRANSPORTS.join(', ')}), ` +
    `concurrency ${CONCURRENCY}, time budget ${TIME_LIMIT_MS / 1000} s per transport`,
);
const results = [];
let gateway;
let setupFailed = false;
try {
  if (TRANSPORTS.some((t) => t !== 'stdio')) {
    gateway = await startGateway();
    console.log(
      `gateway: pid ${gateway.child.pid} on ${gateway.baseUrl} (built, conformance catalog)`,
    );
  }
  for (const name of TRANSPORTS) {
    let result;
    if (name === 'stdio') {
      result = await fuzzStdio();
    } else if (['http', 'sse', 'ws'].includes(name)) {
      if (!gateway.alive()) {
        throw new Error('the gateway is not running any more');
      }
      result = await fuzzGatewayTransport(gateway, name);
    } else {
      throw new Error(`unknown transport ${name}`);
    }
    results.push(result);
    const rate = Math.round(Math.min(result.sent, COUNT) / result.seconds);
    const memory = result.before
      ? `RSS ${mb(result.before.rss)} -> ${mb(result.after.rss)}, heap after GC ${mb(result.before.heapUsed)} -> ${mb(result.after.heapUsed)}`
      : 'memory: n/a';
    console.log(
      `${name.padEnd(6)} messages ${String(result.sent).padStart(7)}  answers checked ${String(result.checked).padStart(7)}  ` +
        `failures ${String(result.failures.length).padStart(4)}  ${String(rate).padStart(5)} msg/s  ` +
        `${result.seconds.toFixed(1)} s${result.outOfTime ? ' (TIME BUDGET REACHED)' : ''}\n` +
        `       ${memory}${result.processes ? ` (last of ${result.processes} CLI processes; worst growth ${mb(result.worst)})` : ''}`,
    );
  }
} catch (err) {
  console.error(`fuzz-long: ${err.stack ?? err}`);
  setupFailed = true;
} finally {
  if (gateway) {
    const { count, sample } = gateway.errors();
    if (count > 0) {
      console.log(`gateway logged ${count} error-level line(s), e.g. ${sample}`);
    }
    gateway.inspector.close();
    gateway.child.kill('SIGTERM');
    await Promise.race([new Promise((r) => gateway.child.once('exit', r)), sleep(5000)]);
  }
  killChildren();
}

const failing = results.filter((r) => r.failures.length > 0);
if (failing.length > 0) {
  const file = join(tmpdir(), `portico-fuzz-long-${SEED}-${Date.now()}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      results.map((r) => ({ transport: r.name, failures: r.failures })),
      null,
      2,
    ),
  );
  console.log('\nFailures by kind (first problem of each failing run):');
  for (const r of failing) {
    const kinds = new Map();
    for (const f of r.failures) {
      const key = signature(f.problems[0]);
      const entry = kinds.get(key) ?? { count: 0, example: f };
      entry.count++;
      kinds.set(key, entry);
    }
    for (const [key, { count, example }] of [...kinds].sort((a, b) => b[1].count - a[1].count)) {
      console.log(`  ${r.name}: ${count} x ${key}`);
      console.log(`      e.g. ${example.scenario.slice(0, 600)}`);
    }
  }
  console.log(`\nAll failing scenarios and their problems: ${file}`);
}
const outOfTime = results.some((r) => r.outOfTime);
process.exitCode = setupFailed ? 2 : failing.length > 0 ? 1 : outOfTime ? 3 : 0;

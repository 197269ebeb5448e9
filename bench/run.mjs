// `npm run bench`: the engine microbenchmark, then tools/call over Streamable
// HTTP, over WebSocket and over stdio, each against same-run baselines and
// Portico. See bench/README.md.
//
// Environment:
//   BENCH_DURATION        seconds per measured round          (default 10)
//   BENCH_ROUNDS          measured rounds per target           (default 3)
//   BENCH_WARMUP          warm-up seconds per target           (default 3)
//   BENCH_CONNECTIONS     concurrent HTTP connections          (default 50)
//   BENCH_WS_CONNECTIONS  concurrent WebSocket connections     (default 100)
//   BENCH_WS_PIPELINE     requests in flight per WS connection (default 1)
//   BENCH_ENGINE_SECONDS  engine microbenchmark seconds        (default 3)
//   BENCH_ONLY            e.g. "engine,a,c", "sdk-v1,portico-modern", "ws,stdio", "w1,w2"
//                         or the sections "observability", "queue", "federation"
//   BENCH_VERIFY=0        skip checking every response body under load
//   PORTICO_ENTRY         gateway entry (default dist/apps/gateway/apps/gateway/src/main.js)
//   PORTICO_CLI_ENTRY     CLI entry (default dist/apps/cli/apps/cli/src/main.js)
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { resolve } from 'node:path';
import { federationPlannedSec, runFederationBench } from './federation.mjs';
import { runLoad } from './load.mjs';
import { OBSERVABILITY_VARIANTS, runObservabilityBench } from './observability.mjs';
import { runQueueBench } from './queue.mjs';
import { eraRequest, openSession2025, sampleCheck } from './lib/mcp.mjs';
import { installCleanup, runForked, stop, stopAll } from './lib/procs.mjs';
import {
  computeChecks,
  computeStdioChecks,
  computeWsChecks,
  isClean,
  printChecks,
  printEngine,
  printHttp,
  printStdio,
  printWs,
  summarize,
  summarizeStdio,
} from './lib/report.mjs';
import { PORTICO_CLI_ENTRY, PORTICO_ENTRY } from './servers/portico.mjs';
import { StdioPeer, runStdioRound } from './stdio-load.mjs';
import { STDIO_SERVERS, parseOnly, startServers } from './targets.mjs';
import { runWsLoad, sampleCheckWs } from './ws-load.mjs';

const BENCH_DIR = import.meta.dirname;

/** Bad settings end the run with one line, not a stack trace. */
function usageError(message) {
  console.error(`bench: ${message}`);
  process.exit(2);
}

function numberEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') {
    return fallback;
  }
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    usageError(`${name} must be a positive number`);
  }
  return value;
}

const config = {
  durationSec: numberEnv('BENCH_DURATION', 10),
  rounds: Math.round(numberEnv('BENCH_ROUNDS', 3)),
  warmupSec: numberEnv('BENCH_WARMUP', 3),
  connections: Math.round(numberEnv('BENCH_CONNECTIONS', 50)),
  wsConnections: Math.round(numberEnv('BENCH_WS_CONNECTIONS', 100)),
  wsPipeline: Math.round(numberEnv('BENCH_WS_PIPELINE', 1)),
  engineSec: numberEnv('BENCH_ENGINE_SECONDS', 3),
  verify: process.env.BENCH_VERIFY !== '0',
  only: process.env.BENCH_ONLY ?? '',
};
let selection;
try {
  selection = parseOnly(config.only);
} catch (err) {
  usageError(err.message);
}

installCleanup();

// Hard stop: whatever hangs, the bench ends by itself. The budget is the
// planned load time plus generous slack for start-up and checks.
// WebSocket rounds also open (and close) their connections and wait for late
// answers; stdio targets each start a process of their own.
const plannedSec =
  (selection.engine ? config.engineSec + 2 : 0) +
  selection.targets.length * (config.warmupSec + config.rounds * (config.durationSec + 1)) +
  selection.ws.length * (config.warmupSec + 3 + config.rounds * (config.durationSec + 3)) +
  selection.stdio.length * (config.warmupSec + 10 + config.rounds * (config.durationSec + 1)) +
  (selection.observability
    ? OBSERVABILITY_VARIANTS.length *
      (5 + config.warmupSec + config.rounds * (config.durationSec + 1))
    : 0) +
  (selection.queue ? 60 + 5 * (config.warmupSec + config.rounds * (config.durationSec + 2)) : 0) +
  (selection.federation ? federationPlannedSec(config) : 0);
const watchdog = setTimeout(
  () => {
    console.error(`\nbench exceeded its time budget (${Math.round(plannedSec + 120)} s); aborting`);
    stopAll().finally(() => process.exit(2));
  },
  (plannedSec + 120) * 1000,
);
watchdog.unref();

const report = {
  startedAt: new Date().toISOString(),
  machine: {
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
  },
  config,
  engine: null,
  http: [],
  ws: [],
  stdio: [],
  observability: null,
  queue: null,
  federation: null,
  checks: [],
};

/**
 * Mark the run as failed when a measurement is not trustworthy (failed
 * requests) or a target could not be measured — except Portico simply not
 * being built yet, which is the expected state while it is being written.
 */
function flagBroken(results, isUnbuilt) {
  const broken = results.filter(
    (r) => (r.skipped && !isUnbuilt(r)) || r.postCheck || (r.summary && !isClean(r.summary)),
  );
  if (broken.length) {
    process.exitCode = 1;
  }
  return results.some(isUnbuilt);
}

// ---- 1. Engine microbenchmark (own process, before any server exists) ----
if (selection.engine) {
  try {
    const msg = await runForked(resolve(BENCH_DIR, 'engine.mjs'), 'engine', {
      env: { BENCH_ENGINE_SECONDS: String(config.engineSec) },
      timeoutMs: (config.engineSec + 30) * 1000,
    });
    report.engine = msg.type === 'engine' ? msg.result : { error: msg.message };
  } catch (err) {
    report.engine = { error: err.message };
  }
  printEngine(report.engine);
}

// ---- 2. HTTP benchmark ----
if (selection.targets.length) {
  const results = selection.targets.map((t) => ({ ...t, rounds: [], verified: config.verify }));

  // Start each needed server once (Portico serves two targets).
  const servers = await startServers(new Set(results.map((r) => r.server)));

  // Prepare each target: session handshake where needed, then prove that the
  // target answers correctly before any load is put on it. The wire details
  // (URL, headers, body builder) stay out of `results`, which becomes the JSON.
  const wire = new Map();
  for (const r of results) {
    const server = servers[r.server];
    if (server.error) {
      r.skipped = `${r.server} did not start: ${server.error.split('\n')[0]}`;
      continue;
    }
    const url = `http://127.0.0.1:${server.port}${r.path ?? '/mcp'}`;
    try {
      const sessionId = r.era === '2025' ? await openSession2025(url) : undefined;
      const base = eraRequest(r.era, { sessionId });
      const request = { ...base, headers: { ...base.headers, ...r.headers } };
      await sampleCheck(url, request);
      wire.set(r, { url, request });
    } catch (err) {
      r.skipped = `not answering correctly: ${err.message}`;
      console.log(`  ${r.key} ${r.label}: ${r.skipped}`);
    }
  }
  const live = results.filter((r) => !r.skipped);

  const load = (r, durationSec) =>
    runLoad({
      url: `http://127.0.0.1:${servers[r.server].port}`,
      path: r.path ?? '/mcp',
      headers: wire.get(r).request.headers,
      bodyFor: wire.get(r).request.bodyFor,
      connections: config.connections,
      durationSec,
      verify: config.verify,
      serverPid: servers[r.server].child.pid,
    });

  for (const r of live) {
    process.stdout.write(`warm-up ${r.key} ${r.label}… `);
    const w = await load(r, config.warmupSec);
    console.log(`${w.reqPerSec.toLocaleString('en-US')} req/s`);
  }

  // Rounds are interleaved (a b c … a b c …) rather than back to back per
  // target, so slow drifts in machine noise hit every target alike.
  for (let round = 1; round <= config.rounds; round++) {
    for (const r of live) {
      const m = await load(r, config.durationSec);
      r.rounds.push(m);
      if (m.firstInvalid) {
        r.firstInvalid ??= m.firstInvalid;
      }
      console.log(
        `round ${round}/${config.rounds} ${r.key}: ${m.reqPerSec.toLocaleString('en-US')} req/s, ` +
          `p50 ${m.latencyMs.p50} ms, p99 ${m.latencyMs.p99} ms, non-2xx ${m.non2xx}, ` +
          `errors ${m.errors + m.timeouts}, invalid ${m.invalid}`,
      );
    }
  }

  // A target that broke under load must not go unnoticed.
  for (const r of live) {
    try {
      await sampleCheck(wire.get(r).url, wire.get(r).request);
    } catch (err) {
      r.postCheck = err.message;
    }
    r.summary = summarize(r.rounds);
  }

  await Promise.all(Object.values(servers).map((s) => s.child && stop(s.child)));

  printHttp(results, config);
  report.checks.push(...computeChecks(results));
  report.http = results;
  if (flagBroken(results, (r) => r.server === 'portico' && servers.portico?.notBuilt)) {
    console.log(`\nPortico not measured: ${PORTICO_ENTRY} does not exist. Run \`npm run build\`.`);
  }
}

// ---- 3. WebSocket benchmark ----
if (selection.ws.length) {
  const results = selection.ws.map((t) => ({
    ...t,
    connections: config.wsConnections,
    pipeline: config.wsPipeline,
    rounds: [],
    verified: config.verify,
  }));
  // A fresh Portico, not the one the HTTP rounds used (no leftover sessions).
  const servers = await startServers(new Set(results.map((r) => r.server)));
  const url = (r) => `ws://127.0.0.1:${servers[r.server].port}/mcp`;

  for (const r of results) {
    const server = servers[r.server];
    if (server.error) {
      r.skipped = `${r.server} did not start: ${server.error.split('\n')[0]}`;
      continue;
    }
    try {
      await sampleCheckWs(url(r), r.era);
    } catch (err) {
      r.skipped = `not answering correctly: ${err.message}`;
      console.log(`  ${r.key} ${r.label}: ${r.skipped}`);
    }
  }
  const live = results.filter((r) => !r.skipped);

  const load = (r, durationSec) =>
    runWsLoad({
      url: url(r),
      era: r.era,
      connections: config.wsConnections,
      pipeline: config.wsPipeline,
      durationSec,
      verify: config.verify,
      serverPid: servers[r.server].child.pid,
    });
  // A round that cannot even connect is recorded as failed, not fatal.
  const failedRound = (err) => ({
    reqPerSec: 0,
    completed: 0,
    latencyMs: { p50: null, p90: null, p99: null, max: null },
    errors: 1,
    firstError: err.message,
    timeouts: 0,
    invalid: 0,
    cpuPercent: { loader: null, server: null },
  });

  for (const r of live) {
    process.stdout.write(`warm-up ${r.key} ${r.label}… `);
    const w = await load(r, config.warmupSec).catch(failedRound);
    console.log(
      `${w.reqPerSec.toLocaleString('en-US')} req/s${w.firstError ? ` (${w.firstError})` : ''}`,
    );
  }
  for (let round = 1; round <= config.rounds; round++) {
    for (const r of live) {
      const m = await load(r, config.durationSec).catch(failedRound);
      r.rounds.push(m);
      r.firstInvalid ??= m.firstInvalid;
      r.firstError ??= m.firstError;
      console.log(
        `round ${round}/${config.rounds} ${r.key}: ${m.reqPerSec.toLocaleString('en-US')} req/s, ` +
          `p50 ${m.latencyMs.p50} ms, p99 ${m.latencyMs.p99} ms, errors ${m.errors}, ` +
          `timeouts ${m.timeouts}, invalid ${m.invalid}`,
      );
    }
  }
  for (const r of live) {
    try {
      await sampleCheckWs(url(r), r.era);
    } catch (err) {
      r.postCheck = err.message;
    }
    r.summary = summarize(r.rounds);
  }

  await Promise.all(Object.values(servers).map((s) => s.child && stop(s.child)));

  printWs(results, config);
  report.checks.push(...computeWsChecks(results));
  report.ws = results;
  if (flagBroken(results, (r) => r.server === 'portico' && servers.portico?.notBuilt)) {
    console.log(`\nPortico WS not measured: ${PORTICO_ENTRY} does not exist.`);
  }
}

// ---- 4. stdio benchmark ----
if (selection.stdio.length) {
  const results = selection.stdio.map((t) => ({ ...t, rounds: [], verified: config.verify }));
  // One process per target: over stdio the protocol era belongs to the
  // connection, i.e. to the process. Ready = it answered the sample check.
  const peers = new Map();
  for (const r of results) {
    process.stdout.write(`starting ${r.id}… `);
    let started;
    try {
      started = STDIO_SERVERS[r.server](r.id);
      const peer = new StdioPeer(started.child);
      const handshake = (async () => {
        if (r.era === '2025') {
          await peer.initialize2025();
        }
        await peer.sampleCheck(r.era);
      })();
      await Promise.race([handshake, started.exited]);
      peers.set(r, peer);
      console.log(`pid ${started.child.pid}`);
    } catch (err) {
      r.notBuilt = err.code === 'PORTICO_NOT_BUILT';
      r.skipped = r.notBuilt ? err.message : `not answering correctly: ${err.message}`;
      console.log('FAILED');
      console.log(`  ${r.skipped.split('\n').join('\n  ')}`);
      if (started) {
        await stop(started.child);
      }
    }
  }
  const live = results.filter((r) => !r.skipped);
  const round = (r, durationSec) =>
    runStdioRound(peers.get(r), { era: r.era, durationSec, verify: config.verify });

  for (const r of live) {
    process.stdout.write(`warm-up ${r.key} ${r.label}… `);
    const w = await round(r, config.warmupSec);
    console.log(`${w.callsPerSec.toLocaleString('en-US')} calls/s`);
  }
  for (let n = 1; n <= config.rounds; n++) {
    for (const r of live) {
      const m = await round(r, config.durationSec);
      r.rounds.push(m);
      r.firstInvalid ??= m.firstInvalid;
      r.firstError ??= m.firstError;
      console.log(
        `round ${n}/${config.rounds} ${r.key}: ${m.callsPerSec.toLocaleString('en-US')} calls/s, ` +
          `p50 ${m.latencyUs.p50} µs, p99 ${m.latencyUs.p99} µs, ` +
          `errors ${m.errors + m.timeouts}, invalid ${m.invalid}`,
      );
    }
  }
  for (const r of live) {
    try {
      await peers.get(r).sampleCheck(r.era);
    } catch (err) {
      r.postCheck = err.message;
    }
    r.summary = summarizeStdio(r.rounds);
  }

  // Closing stdin is the normal way to end a stdio server; stop() follows up
  // on any that has not exited a few seconds later.
  await Promise.all(
    [...peers.values()].map(async ({ child }) => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.stdin.end();
      if (child.exitCode === null && child.signalCode === null) {
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 3000))]);
      }
      await stop(child);
    }),
  );

  printStdio(results, config);
  report.checks.push(...computeStdioChecks(results));
  report.stdio = results;
  if (flagBroken(results, (r) => r.notBuilt)) {
    console.log(`\nPortico stdio not measured: ${PORTICO_CLI_ENTRY} does not exist.`);
  }
}

// ---- 5–7. Sections with servers of their own: observability on vs off, queued calls vs raw
// BullMQ, federation through the gateway vs direct. Each prints its own table; their goals
// join the summary. Portico not being built is not an error (as above).
const SECTION_RUNS = [
  ['observability', 'tools/call with metrics, logs and traces on vs off', runObservabilityBench],
  ['queue', 'queued tools/call vs a raw BullMQ round trip', runQueueBench],
  [
    'federation',
    'tools/call to an upstream MCP server, through Portico vs direct',
    runFederationBench,
  ],
];
for (const [name, title, run] of SECTION_RUNS) {
  if (!selection[name]) {
    continue;
  }
  console.log(`\n== ${title} ==`);
  try {
    const result = await run(config);
    report[name] = result;
    report.checks.push(...(result.checks ?? []));
    const rows = result.variants ?? result.targets ?? result.summary ?? [];
    if (rows.some((row) => row.clean === false)) {
      process.exitCode = 1;
    }
  } catch (err) {
    report[name] = { error: err.message };
    console.log(`  not measured: ${err.message.split('\n')[0]}`);
    if (existsSync(PORTICO_ENTRY) && err.code !== 'PORTICO_NOT_BUILT') {
      process.exitCode = 1;
    }
  }
}

if (
  selection.targets.length ||
  selection.ws.length ||
  selection.stdio.length ||
  SECTION_RUNS.some(([name]) => selection[name])
) {
  printChecks(report.checks, report.http);
}

if (report.engine?.error) {
  process.exitCode = 1;
}

report.finishedAt = new Date().toISOString();
const resultsDir = resolve(BENCH_DIR, 'results');
mkdirSync(resultsDir, { recursive: true });
const file = resolve(resultsDir, `${report.startedAt.replace(/[:.]/g, '-')}.json`);
writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
console.log(`\nresults written to ${file}`);

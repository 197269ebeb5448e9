// `npm run bench`: the engine microbenchmark, then tools/call over Streamable
// HTTP against the baselines and Portico. See bench/README.md.
//
// Environment:
//   BENCH_DURATION        seconds per measured round          (default 10)
//   BENCH_ROUNDS          measured rounds per target           (default 3)
//   BENCH_WARMUP          warm-up seconds per target           (default 3)
//   BENCH_CONNECTIONS     concurrent connections               (default 50)
//   BENCH_ENGINE_SECONDS  engine microbenchmark seconds        (default 3)
//   BENCH_ONLY            e.g. "engine,a,c" or "sdk-v1,portico-modern"
//   BENCH_VERIFY=0        skip checking every response body under load
//   PORTICO_ENTRY         gateway entry (default dist/apps/gateway/apps/gateway/src/main.js)
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { resolve } from 'node:path';
import { runLoad } from './load.mjs';
import { eraRequest, openSession2025, sampleCheck } from './lib/mcp.mjs';
import { installCleanup, runForked, stop, stopAll } from './lib/procs.mjs';
import {
  computeChecks,
  isClean,
  printChecks,
  printEngine,
  printHttp,
  summarize,
} from './lib/report.mjs';
import { PORTICO_ENTRY } from './servers/portico.mjs';
import { SERVERS, parseOnly } from './targets.mjs';

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
const plannedSec =
  (selection.engine ? config.engineSec + 2 : 0) +
  selection.targets.length * (config.warmupSec + config.rounds * (config.durationSec + 1));
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
  checks: [],
};

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
  const servers = {};
  for (const name of new Set(results.map((r) => r.server))) {
    process.stdout.write(`starting ${name}… `);
    try {
      servers[name] = await SERVERS[name]();
      console.log(`pid ${servers[name].child.pid}, port ${servers[name].port}`);
    } catch (err) {
      servers[name] = { error: err.message, notBuilt: err.code === 'PORTICO_NOT_BUILT' };
      console.log('FAILED');
      console.log(`  ${err.message.split('\n').join('\n  ')}`);
    }
  }

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
    const url = `http://127.0.0.1:${server.port}/mcp`;
    try {
      const sessionId = r.era === '2025' ? await openSession2025(url) : undefined;
      const request = eraRequest(r.era, { sessionId });
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
      path: '/mcp',
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
  report.checks = computeChecks(results);
  printChecks(report.checks, results);

  report.http = results;

  // Exit non-zero when a measurement is not trustworthy (failed requests) or
  // a target could not be measured — except Portico simply not being built
  // yet, which is the expected state while it is being written.
  const porticoUnbuilt = (r) => r.server === 'portico' && servers.portico?.notBuilt;
  const broken = results.filter(
    (r) => (r.skipped && !porticoUnbuilt(r)) || r.postCheck || (r.summary && !isClean(r.summary)),
  );
  if (broken.length) {
    process.exitCode = 1;
  }
  if (results.some(porticoUnbuilt)) {
    console.log(`\nPortico not measured: ${PORTICO_ENTRY} does not exist. Run \`npm run build\`.`);
  }
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

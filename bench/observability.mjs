// The cost of observability: tools/call throughput of the same gateway build with metrics,
// info-level logging and tracing on, against the same run with all of them off, and each
// signal on alone (to tell which one costs what). Run by `npm run bench` (section "o") or
// alone: `node bench/observability.mjs`.
//
// Every variant is its own gateway process, started once, serving the same tenant endpoint
// (`/mcp/bench`, an API key, the echo fixture backend) with the 2026-07-28 envelope. Rounds are
// interleaved (o0 o1 … o5, o0 o1 …) and summarised by their median. Logs go to /dev/null
// (a log shipper reads them in production; the bench must not pay for reading them), spans to
// an OTLP/HTTP sink in a child process that accepts and discards them (http/protobuf, the
// default protocol), exported in batches as configured by default.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runLoad } from './load.mjs';
import { eraRequest, sampleCheck } from './lib/mcp.mjs';
import { freePort, stop } from './lib/procs.mjs';
import { median } from './lib/report.mjs';

const ROOT = resolve(import.meta.dirname, '..');
const ENTRY =
  process.env.PORTICO_ENTRY ?? resolve(ROOT, 'dist/apps/gateway/apps/gateway/src/main.js');
const GOAL = 0.9;
const API_KEY = `ptk_${randomBytes(32).toString('base64url')}`;
const TENANT_PATH = '/mcp/bench';

/** The variants; `on` lists the signals it turns on. */
export const OBSERVABILITY_VARIANTS = [
  { key: 'o0', label: 'all off (metrics off, logs at warn, no tracing)', on: [] },
  {
    key: 'o1',
    label: 'all on (metrics, logs at info, tracing)',
    on: ['metrics', 'logs', 'traces'],
  },
  { key: 'o2', label: 'metrics only', on: ['metrics'] },
  { key: 'o3', label: 'logs at info only', on: ['logs'] },
  { key: 'o4', label: 'tracing only (OTLP, every request sampled)', on: ['traces'] },
  {
    key: 'o5',
    label: 'all on, traces sampled 10% (parentbased_traceidratio)',
    on: ['metrics', 'logs', 'traces'],
    sampleRatio: 0.1,
  },
  {
    key: 'o6',
    label: 'tracing on, no trace sampled (ratio 0)',
    on: ['traces'],
    sampleRatio: 0,
  },
];

/** BENCH_OBS_VARIANTS=o0,o5 runs a subset (o0, the baseline, always runs). */
function selectedVariants() {
  const wanted = process.env.BENCH_OBS_VARIANTS?.split(',').map((k) => k.trim());
  return wanted
    ? OBSERVABILITY_VARIANTS.filter((v) => v.key === 'o0' || wanted.includes(v.key))
    : OBSERVABILITY_VARIANTS;
}

const SINK = `
  const { createServer } = require('node:http');
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end());
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write('READY ' + server.address().port + '\\n'));
`;

async function startSink() {
  const child = spawn(process.execPath, ['-e', SINK], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((done, fail) => {
    let text = '';
    child.stdout.on('data', (chunk) => {
      text += chunk;
      const match = /READY (\d+)/.exec(text);
      if (match) {
        done(Number(match[1]));
      }
    });
    child.once('exit', (code) => fail(new Error(`OTLP sink exited with ${code}`)));
  });
  return { child, url: `http://127.0.0.1:${port}/v1/traces` };
}

function writeTenantFile(dir) {
  const file = join(dir, 'portico.yaml');
  writeFileSync(
    file,
    [
      'version: 1',
      'tenants:',
      '  - slug: bench',
      '    name: Benchmark tenant',
      '    backends:',
      '      - { name: echo, kind: fixture, target: echo }',
      '    apiKeys:',
      '      - { name: bench, secret: { env: BENCH_API_KEY }, roles: [tool-user] }',
    ].join('\n'),
  );
  return file;
}

async function startVariant(variant, dir, sinkUrl) {
  const port = await freePort();
  const on = new Set(variant.on);
  const devNull = openSync('/dev/null', 'w');
  const child = spawn(process.execPath, [ENTRY], {
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
      METRICS_ENABLED: on.has('metrics') ? 'true' : 'false',
      LOG_LEVEL: on.has('logs') ? 'info' : 'warn',
      OTEL_TRACES_EXPORTER: on.has('traces') ? 'otlp' : 'none',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: sinkUrl,
      OTEL_SERVICE_NAME: `bench-${variant.key}`,
      ...(variant.sampleRatio !== undefined && {
        OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
        OTEL_TRACES_SAMPLER_ARG: String(variant.sampleRatio),
      }),
    },
    stdio: ['ignore', devNull, 'inherit'],
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ready = await fetch(`http://127.0.0.1:${port}/health/ready`).catch(() => undefined);
    if (ready?.status === 200) {
      break;
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop(child);
      throw new Error(`${variant.key} did not become ready`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, port };
}

/**
 * Runs the section: returns { results, ratios } and prints them. `config`: durationSec,
 * warmupSec, rounds, connections, verify (bench/run.mjs's settings).
 */
export async function runObservabilityBench(config) {
  const dir = mkdtempSync(join(tmpdir(), 'portico-bench-obs-'));
  writeTenantFile(dir);
  const sink = await startSink();
  const servers = new Map();
  const variants = selectedVariants();
  try {
    for (const variant of variants) {
      servers.set(variant.key, await startVariant(variant, dir, sink.url));
    }
    const base = eraRequest('modern');
    const request = {
      headers: { ...base.headers, authorization: `Bearer ${API_KEY}` },
      bodyFor: base.bodyFor,
    };
    const load = (variant, durationSec) => {
      const server = servers.get(variant.key);
      return runLoad({
        url: `http://127.0.0.1:${server.port}`,
        path: TENANT_PATH,
        headers: request.headers,
        bodyFor: request.bodyFor,
        connections: config.connections,
        durationSec,
        verify: config.verify,
        serverPid: server.child.pid,
      });
    };
    for (const variant of variants) {
      await sampleCheck(`http://127.0.0.1:${servers.get(variant.key).port}${TENANT_PATH}`, request);
      process.stdout.write(`warm-up ${variant.key} ${variant.label}… `);
      await load(variant, config.warmupSec);
      process.stdout.write('done\n');
    }
    const rounds = new Map(variants.map((v) => [v.key, []]));
    for (let round = 1; round <= config.rounds; round++) {
      for (const variant of variants) {
        const result = await load(variant, config.durationSec);
        rounds.get(variant.key).push(result);
        console.log(
          `  round ${round} ${variant.key}: ${result.reqPerSec} req/s, p99 ${result.latencyMs.p99} ms` +
            `, server ${result.serverCpuUsPerReq ?? '?'} µs CPU/req` +
            (result.non2xx + result.errors + result.timeouts + result.invalid > 0
              ? ` (${result.non2xx} non-2xx, ${result.errors} errors, ${result.invalid} invalid)`
              : ''),
        );
      }
    }
    const summary = variants.map((variant) => {
      const list = rounds.get(variant.key);
      return {
        ...variant,
        reqPerSec: median(list.map((r) => r.reqPerSec)),
        p50: median(list.map((r) => r.latencyMs.p50)),
        p99: median(list.map((r) => r.latencyMs.p99)),
        cpuUsPerReq: median(list.map((r) => r.serverCpuUsPerReq ?? Number.NaN)),
        clean: list.every((r) => r.non2xx + r.errors + r.timeouts + r.invalid === 0),
      };
    });
    printObservability(summary);
    return { variants: summary, checks: observabilityChecks(summary) };
  } finally {
    await Promise.all([...servers.values()].map(({ child }) => stop(child)));
    await stop(sink.child);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The section's goals in bench/run.mjs's summary: all on (every trace, then 10 %) / all off. */
function observabilityChecks(summary) {
  const by = Object.fromEntries(summary.map((s) => [s.key, s]));
  const round2 = (n) => Math.round(n * 100) / 100;
  return ['o1', 'o5']
    .filter((key) => by[key])
    .flatMap((key) => [
      {
        what: `observability on / off: ${by[key].label} (${key}) / all off (o0), req/s`,
        value: round2(by[key].reqPerSec / by.o0.reqPerSec),
        unit: '×',
        goal: `≥ ${GOAL}`,
        pass: by[key].reqPerSec / by.o0.reqPerSec >= GOAL,
        valid: by[key].clean && by.o0.clean,
      },
      {
        what: `observability on / off by server CPU per request (${key} / o0)`,
        value: round2(by.o0.cpuUsPerReq / by[key].cpuUsPerReq),
        unit: '×',
        goal: null,
        pass: null,
        valid: by[key].clean && by.o0.clean,
      },
    ]);
}

function printObservability(summary) {
  const off = summary.find((s) => s.key === 'o0');
  console.log('\ntools/call with observability on vs off (medians; same build, same run):');
  console.log(
    '  key  variant                                        req/s   p50 ms  p99 ms  µs CPU/req  ratio',
  );
  for (const s of summary) {
    const ratio = s.reqPerSec / off.reqPerSec;
    console.log(
      `  ${s.key.padEnd(4)} ${s.label.padEnd(46)} ${String(Math.round(s.reqPerSec)).padStart(6)} ` +
        `${s.p50.toFixed(2).padStart(7)} ${s.p99.toFixed(2).padStart(7)} ${String(Math.round(s.cpuUsPerReq)).padStart(11)}` +
        `  ${s.key === 'o0' ? '  —  ' : ratio.toFixed(2)}${s.clean ? '' : '  (not clean)'}`,
    );
  }
  const all = summary.find((s) => s.key === 'o1');
  if (!all) {
    return;
  }
  const ratio = all.reqPerSec / off.reqPerSec;
  const cpuRatio = off.cpuUsPerReq / all.cpuUsPerReq;
  console.log(
    `  ${ratio >= GOAL ? 'PASS' : 'FAIL'}  all on / all off ${ratio.toFixed(2)} (goal ≥ ${GOAL}); ` +
      `by server CPU per request ${cpuRatio.toFixed(2)}`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const number = (name, fallback) => Number(process.env[name] ?? fallback);
  process.on('SIGINT', () => process.exit(130));
  await runObservabilityBench({
    durationSec: number('BENCH_DURATION', 10),
    warmupSec: number('BENCH_WARMUP', 3),
    rounds: number('BENCH_ROUNDS', 3),
    connections: number('BENCH_CONNECTIONS', 50),
    verify: process.env.BENCH_VERIFY !== '0',
  });
}

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
import { freePort, startFixture, stop } from './lib/procs.mjs';
import { median } from './lib/report.mjs';

const ROOT = resolve(import.meta.dirname, '..');
const ENTRY =
  process.env.PORTICO_ENTRY ?? resolve(ROOT, 'dist/apps/gateway/apps/gateway/src/main.js');
const GOAL = 0.9;
const API_KEY = `ptk_${randomBytes(32).toString('base64url')}`;
const TENANT_PATH = '/mcp/bench';
const FEDERATED_PATH = '/mcp/fed';
const FED_API_KEY = `ptk_${randomBytes(32).toString('base64url')}`;
const UPSTREAM = resolve(import.meta.dirname, 'servers', 'sdk-v2.mjs');

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
  // The same, for a tool of an upstream MCP server (SDK v2, over HTTP): what a gateway mostly
  // serves. Only the gateway's own CPU is in the µs column; the upstream is the same for all.
  { key: 'f0', label: 'federated: all off', on: [], path: FEDERATED_PATH },
  {
    key: 'f1',
    label: 'federated: all on (every request sampled)',
    on: ['metrics', 'logs', 'traces'],
    path: FEDERATED_PATH,
  },
  {
    key: 'f5',
    label: 'federated: all on, traces sampled 10%',
    on: ['metrics', 'logs', 'traces'],
    sampleRatio: 0.1,
    path: FEDERATED_PATH,
  },
];

/** Each variant's baseline: the echo variants against o0, the federated ones against f0. */
const baselineOf = (variant) => (variant.path === FEDERATED_PATH ? 'f0' : 'o0');

/** BENCH_OBS_VARIANTS=o5,f5 runs a subset (with the baselines they are compared with). */
function selectedVariants() {
  const wanted = process.env.BENCH_OBS_VARIANTS?.split(',').map((k) => k.trim());
  if (!wanted) {
    return OBSERVABILITY_VARIANTS;
  }
  const chosen = OBSERVABILITY_VARIANTS.filter((v) => wanted.includes(v.key));
  const keys = new Set([...chosen.map((v) => v.key), ...chosen.map(baselineOf)]);
  return OBSERVABILITY_VARIANTS.filter((v) => keys.has(v.key));
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

function writeTenantFile(dir, upstreamPort) {
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
      '  - slug: fed',
      '    name: Federated benchmark tenant',
      '    backends:',
      '      - name: up',
      '        kind: mcp-http',
      `        target: http://127.0.0.1:${upstreamPort}/mcp`,
      // internal: loopback passes the SSRF guard; prefix '': the upstream's names as they are.
      "        settings: { internal: true, prefix: '', maxConcurrent: 128 }",
      '    apiKeys:',
      '      - { name: bench, secret: { env: BENCH_FED_API_KEY }, roles: [tool-user] }',
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
      BENCH_FED_API_KEY: FED_API_KEY,
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
  const variants = selectedVariants();
  const upstream = variants.some((v) => v.path === FEDERATED_PATH)
    ? await startFixture(UPSTREAM, 'upstream sdk-v2')
    : undefined;
  writeTenantFile(dir, upstream?.port ?? 9);
  const sink = await startSink();
  const servers = new Map();
  try {
    for (const variant of variants) {
      servers.set(variant.key, await startVariant(variant, dir, sink.url));
    }
    const base = eraRequest('modern');
    const requestOf = (variant) => ({
      headers: {
        ...base.headers,
        authorization: `Bearer ${variant.path === FEDERATED_PATH ? FED_API_KEY : API_KEY}`,
      },
      bodyFor: base.bodyFor,
    });
    const load = (variant, durationSec) => {
      const server = servers.get(variant.key);
      return runLoad({
        url: `http://127.0.0.1:${server.port}`,
        path: variant.path ?? TENANT_PATH,
        headers: requestOf(variant).headers,
        bodyFor: base.bodyFor,
        connections: config.connections,
        durationSec,
        verify: config.verify,
        serverPid: server.child.pid,
      });
    };
    for (const variant of variants) {
      const port = servers.get(variant.key).port;
      await sampleCheck(
        `http://127.0.0.1:${port}${variant.path ?? TENANT_PATH}`,
        requestOf(variant),
      );
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
    if (upstream) {
      await stop(upstream.child);
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The section's goals in bench/run.mjs's summary: all on (every trace, then 10 %) / all off,
 * for the echo tool (o1, o5 against o0) and for an upstream's tool (f1, f5 against f0).
 */
function observabilityChecks(summary) {
  const by = Object.fromEntries(summary.map((s) => [s.key, s]));
  const round2 = (n) => Math.round(n * 100) / 100;
  return ['o1', 'o5', 'f1', 'f5']
    .filter((key) => by[key] && by[baselineOf(by[key])])
    .flatMap((key) => {
      const on = by[key];
      const off = by[baselineOf(on)];
      return [
        {
          what: `observability on / off: ${on.label} (${key}) / ${off.label} (${off.key}), req/s`,
          value: round2(on.reqPerSec / off.reqPerSec),
          unit: '×',
          goal: `≥ ${GOAL}`,
          pass: on.reqPerSec / off.reqPerSec >= GOAL,
          valid: on.clean && off.clean,
        },
        {
          what: `observability on / off by gateway CPU per request (${key} / ${off.key})`,
          value: round2(off.cpuUsPerReq / on.cpuUsPerReq),
          unit: '×',
          goal: null,
          pass: null,
          valid: on.clean && off.clean,
        },
      ];
    });
}

function printObservability(summary) {
  const by = Object.fromEntries(summary.map((s) => [s.key, s]));
  console.log('\ntools/call with observability on vs off (medians; same build, same run):');
  console.log(
    '  key  variant                                        req/s   p50 ms  p99 ms  µs CPU/req  ratio',
  );
  for (const s of summary) {
    const off = by[baselineOf(s)];
    const ratio = off && off !== s ? (s.reqPerSec / off.reqPerSec).toFixed(2) : '  —  ';
    console.log(
      `  ${s.key.padEnd(4)} ${s.label.padEnd(46)} ${String(Math.round(s.reqPerSec)).padStart(6)} ` +
        `${s.p50.toFixed(2).padStart(7)} ${s.p99.toFixed(2).padStart(7)} ${String(Math.round(s.cpuUsPerReq)).padStart(11)}` +
        `  ${ratio}${s.clean ? '' : '  (not clean)'}`,
    );
  }
  for (const check of observabilityChecks(summary).filter((c) => c.goal !== null)) {
    console.log(
      `  ${check.pass ? 'PASS' : 'FAIL'}  ${check.what}: ${check.value} (goal ${check.goal})`,
    );
  }
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

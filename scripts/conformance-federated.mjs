#!/usr/bin/env node
// Runs the official MCP conformance suite through federation: against a tenant endpoint of the
// built gateway (/mcp/{tenant}) whose only backend is an upstream MCP server serving the
// conformance catalog (libs/testing/fixtures-upstream/conformance-upstream.mjs), reached over
// Streamable HTTP (`mcp-http`) or as a child process over stdio (`mcp-stdio`), with the
// upstream serving both eras or pinned to one (era bridging). Builds nothing:
//   npm run build && node scripts/conformance-federated.mjs
//
// The harness sends no credential, so it talks to a small local relay that adds the tenant's
// API key (Authorization: Bearer) and forwards everything else as is, Host and Origin included,
// streaming SSE both ways; the gateway's own DNS-rebinding checks still see the harness's
// headers. The suite needs Node >= 22, so it runs under node@24 (npx), as in conformance.mjs.
//
// Selection (comma-separated lists):
//   FEDCONF_TRANSPORTS        http,stdio               how the gateway reaches the upstream
//   FEDCONF_UPSTREAM_ERAS     both,2025                both | 2025 | modern (see the fixture)
//   CONFORMANCE_REQUIREMENTS  2026-07-28,2025-11-25    the suite's requirement sets
//   FEDCONF_SCENARIO          one scenario (`--scenario NAME --force`) instead of the sets
//   FEDCONF_CONCURRENCY       suite runs at once (default 2; each run has a tenant of its own)
//   FEDCONF_LOG_LEVEL         the gateway's LOG_LEVEL (default warn; its log is kept per run)
//   FEDCONF_HOLD=1            start everything, print the tenant URLs, run nothing, wait for ^C
// Results (checks.json per scenario, the suite's output, the gateway log) go to
// conformance-results/federated/. Exits non-zero when any scenario fails, scored or not.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { relay } from '../libs/testing/fixtures-upstream/http-relay.mjs';

const ROOT = resolve(import.meta.dirname, '..');
const GATEWAY = join(ROOT, 'dist/apps/gateway/apps/gateway/src/main.js');
const CLI = join(ROOT, 'dist/apps/cli/apps/cli/src/main.js');
const UPSTREAM = join(ROOT, 'libs/testing/fixtures-upstream/conformance-upstream.mjs');
const SUITE = '@modelcontextprotocol/conformance@0.2.0-alpha.12';
const RESULTS = join(ROOT, 'conformance-results/federated');

const list = (name, fallback) =>
  (process.env[name] ?? fallback)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
const TRANSPORTS = list('FEDCONF_TRANSPORTS', 'http,stdio');
const ERAS = list('FEDCONF_UPSTREAM_ERAS', 'both,2025');
const REQUIREMENTS = list('CONFORMANCE_REQUIREMENTS', '2026-07-28,2025-11-25');
const SCENARIO = process.env.FEDCONF_SCENARIO;
const CONCURRENCY = Math.max(1, Number(process.env.FEDCONF_CONCURRENCY ?? 2) || 1);

for (const t of TRANSPORTS) {
  if (!['http', 'stdio'].includes(t)) {
    console.error(`conformance-federated: unknown transport ${t} (http, stdio)`);
    process.exit(2);
  }
}
for (const e of ERAS) {
  if (!['both', '2025', 'modern'].includes(e)) {
    console.error(`conformance-federated: unknown upstream era ${e} (both, 2025, modern)`);
    process.exit(2);
  }
}
for (const entry of [GATEWAY, CLI]) {
  if (!existsSync(entry)) {
    console.error(`conformance-federated: ${entry} not found; run "npm run build" first`);
    process.exit(2);
  }
}

const children = new Set();
const stopAll = () => {
  stopping = true;
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
    }
  }
};
process.on('exit', stopAll);
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

/** Servers that stopped while the suite still needed them: their runs' results mean little. */
const died = [];
let stopping = false;

/** Tracks a child process; `server`: a name, for one that must run until the end. */
function track(child, server) {
  children.add(child);
  child.once('exit', (code, signal) => {
    children.delete(child);
    if (server && !stopping) {
      died.push(`${server} exited (${signal ?? code}) during the runs`);
    }
  });
  return child;
}

const freePort = () =>
  new Promise((done, fail) => {
    const server = createNetServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });

/** Starts an HTTP upstream fixture and resolves with its port (it prints `READY <port>`). */
function startHttpUpstream(era, log) {
  return new Promise((done, fail) => {
    const child = track(
      spawn(process.execPath, [UPSTREAM, '--transport', 'http', '--era', era], {
        env: { ...process.env, LOG_LEVEL: 'warn' },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
      `the HTTP upstream (${era})`,
    );
    child.stderr.pipe(log, { end: false });
    let buffered = '';
    const timer = setTimeout(() => fail(new Error(`upstream (${era}) not ready in 60 s`)), 60_000);
    child.stdout.on('data', (chunk) => {
      buffered += chunk.toString();
      const match = /READY (\d+)/.exec(buffered);
      if (match) {
        clearTimeout(timer);
        done(Number(match[1]));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`upstream (${era}) exited with code ${code}`));
    });
  });
}

/** A tenant per run, each with its own API key and backend. */
function tenantsFile(dir, runs) {
  const lines = ['version: 1', 'tenants:'];
  for (const c of runs) {
    const backend =
      c.transport === 'http'
        ? [
            '        kind: mcp-http',
            `        target: http://127.0.0.1:${c.upstreamPort}/mcp`,
            // internal: loopback passes the SSRF guard; prefix '': the catalog's own names.
            "        settings: { internal: true, prefix: '' }",
          ]
        : [
            '        kind: mcp-stdio',
            `        target: '"${process.execPath}" "${UPSTREAM}" --transport stdio --era ${c.era}'`,
            "        settings: { prefix: '', env: { LOG_LEVEL: warn } }",
          ];
    lines.push(
      `  - slug: ${c.slug}`,
      `    name: Federated conformance (${c.transport}, upstream ${c.era})`,
      '    backends:',
      '      - name: upstream',
      ...backend,
      '    apiKeys:',
      `      - { name: harness, secret: { env: ${c.keyVar} }, roles: [tool-user] }`,
    );
  }
  const file = join(dir, 'portico.yaml');
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

async function startGateway(dir, runs, log) {
  const port = await freePort();
  const keys = Object.fromEntries(runs.map((c) => [c.keyVar, c.key]));
  const child = track(
    spawn(process.execPath, [GATEWAY], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        NODE_ENV: 'production',
        HOST: '127.0.0.1',
        PORT: String(port),
        DATA_DIR: dir,
        DATABASE_PATH: ':memory:',
        PORTICO_SECRET: randomBytes(24).toString('base64url'),
        PORTICO_CONFIG_FILE: tenantsFile(dir, runs),
        UPSTREAM_STDIO_ENABLED: 'true',
        LOG_LEVEL: process.env.FEDCONF_LOG_LEVEL ?? 'warn',
        SHUTDOWN_DRAIN_DELAY_MS: '0',
        ...keys,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
    'the gateway',
  );
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`gateway exited with code ${child.exitCode} (see ${log.path})`);
    }
    const ready = await fetch(`http://127.0.0.1:${port}/health/ready`).catch(() => undefined);
    if (ready?.ok) {
      return port;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('gateway not ready within 60 s');
}

/** The credential-adding relay: /mcp/{slug}… gets that tenant's key, nothing else changes. */
function startRelay(gatewayPort, runs) {
  const keys = new Map(runs.map((c) => [c.slug, c.key]));
  const server = createServer((req, res) => {
    const slug = /^\/mcp\/([^/?]+)/.exec(req.url ?? '')?.[1];
    const key = slug === undefined ? undefined : keys.get(slug);
    relay(req, res, {
      port: gatewayPort,
      headers: key === undefined ? {} : { authorization: `Bearer ${key}` },
    });
  });
  return new Promise((done) => {
    server.listen(0, '127.0.0.1', () => done({ server, port: server.address().port }));
  });
}

/** Where the gateway must have the tenant's upstream in its catalog before the suite starts. */
async function waitCatalog(relayPort, slug) {
  const deadline = Date.now() + 60_000;
  let last = '';
  while (Date.now() < deadline) {
    const res = await fetch(`http://127.0.0.1:${relayPort}/mcp/${slug}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/list',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/list',
        params: {
          _meta: {
            'io.modelcontextprotocol/protocolVersion': '2026-07-28',
            'io.modelcontextprotocol/clientCapabilities': {},
          },
        },
      }),
    }).catch((err) => ({ ok: false, text: async () => String(err) }));
    last = await res.text();
    if (res.ok && last.includes('test_simple_text')) {
      return;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`tenant ${slug}: the upstream's tools never appeared (${last.slice(0, 300)})`);
}

/** Runs the suite once; resolves with its exit code and what it printed. */
function runSuite(url, requirements, outDir) {
  const args = ['-y', '-p', 'node@24', '-p', SUITE, 'conformance', 'server', '--url', url];
  args.push(...(SCENARIO ? ['--scenario', SCENARIO, '--force'] : ['--requirements', requirements]));
  args.push('--output-dir', outDir);
  return new Promise((done) => {
    const child = track(spawn('npx', args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    let output = '';
    child.stdout.on('data', (c) => (output += c));
    child.stderr.on('data', (c) => (output += c));
    child.on('exit', (code, signal) => done({ code: code ?? (signal ? 1 : 0), output }));
  });
}

/**
 * Per scenario (from its checks.json): passed and failed checks, whether it is scored (the
 * suite's "Not scored" list says which are not), and its failed checks.
 */
function summarise(output, outDir) {
  const notScored = new Set();
  const listed = /Not scored for[^\n]*\n((?:\s+[✓✗] .*\n?)*)/u.exec(output);
  for (const m of listed?.[1].matchAll(/[✓✗] (\S+)/gu) ?? []) {
    notScored.add(m[1]);
  }
  const scenarios = new Map();
  for (const entry of existsSync(outDir) ? readdirSync(outDir) : []) {
    const name = /^server-(.+)-\d{4}-\d\d-\d\dT/.exec(entry)?.[1];
    const file = join(outDir, entry, 'checks.json');
    if (name === undefined || !existsSync(file)) {
      continue;
    }
    const s = { passed: 0, failed: 0, scored: !notScored.has(name), checks: [] };
    for (const check of JSON.parse(readFileSync(file, 'utf8'))) {
      if (check.status === 'SUCCESS') {
        s.passed++;
      } else if (check.status === 'FAILURE') {
        s.failed++;
        s.checks.push(`${check.id}: ${check.errorMessage ?? check.description}`);
      }
    }
    scenarios.set(name, s);
  }
  return scenarios;
}

async function pool(jobs, size) {
  const results = [];
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const index = next++;
      results[index] = await jobs[index]();
    }
  };
  await Promise.all(Array.from({ length: Math.min(size, jobs.length) }, worker));
  return results;
}

// ---------------------------------------------------------------------------------------------

// One tenant per suite run, so that runs at once never share an upstream session (over stdio,
// messages of calls in flight at once cannot be told apart); HTTP upstreams are shared per era.
const runs = [];
for (const transport of TRANSPORTS) {
  for (const era of ERAS) {
    for (const requirements of SCENARIO ? ['scenario'] : REQUIREMENTS) {
      const id = `${transport}-${era}`;
      const slug = `fedconf-${id}-${requirements.replaceAll('-', '')}`;
      runs.push({
        id,
        transport,
        era,
        requirements,
        slug,
        keyVar: slug.replaceAll('-', '_').toUpperCase(),
        key: `ptk_${randomBytes(32).toString('base64url')}`,
      });
    }
  }
}

rmSync(RESULTS, { recursive: true, force: true });
mkdirSync(RESULTS, { recursive: true });
const work = mkdtempSync(join(tmpdir(), 'portico-fedconf-'));
const gatewayLog = createWriteStream(join(RESULTS, 'gateway.log'));
const upstreamLog = createWriteStream(join(RESULTS, 'upstreams.log'));
const started = Date.now();
let exitCode = 0;
let relayServer;
try {
  const httpPorts = new Map();
  for (const era of TRANSPORTS.includes('http') ? ERAS : []) {
    httpPorts.set(era, await startHttpUpstream(era, upstreamLog));
  }
  for (const run of runs) {
    run.upstreamPort = httpPorts.get(run.era);
  }
  const gatewayPort = await startGateway(work, runs, gatewayLog);
  const relayed = await startRelay(gatewayPort, runs);
  relayServer = relayed.server;
  await Promise.all(runs.map((run) => waitCatalog(relayed.port, run.slug)));
  console.log(
    `gateway :${gatewayPort}, relay :${relayed.port}; ` +
      `${runs.length} tenant(s) ready in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );

  if (process.env.FEDCONF_HOLD === '1') {
    for (const run of runs) {
      console.log(`${run.slug}: http://localhost:${relayed.port}/mcp/${run.slug} (key ${run.key})`);
    }
    await new Promise(() => undefined);
  }

  const results = await pool(
    runs.map((run) => async () => {
      const label = `${run.id} ${SCENARIO ?? run.requirements}`;
      const outDir = join(RESULTS, run.id, run.requirements);
      // localhost: the harness's DNS-rebinding scenario expects a loopback name.
      const url = `http://localhost:${relayed.port}/mcp/${run.slug}`;
      const t0 = Date.now();
      const { code, output } = await runSuite(url, run.requirements, outDir);
      mkdirSync(outDir, { recursive: true });
      writeFileSync(join(outDir, 'suite-output.txt'), output);
      const scenarios = summarise(output, outDir);
      const seconds = ((Date.now() - t0) / 1000).toFixed(0);
      console.log(`${label}: exit ${code} (${seconds} s)`);
      return { ...run, code, scenarios };
    }),
    CONCURRENCY,
  );

  // Summary: scored scenarios passed/failed per run, then the failures with their checks.
  console.log('\n=== federated conformance ===');
  console.log(
    'transport  upstream  requirements  scored passed  scored failed  not scored failed  exit',
  );
  for (const r of results) {
    const all = [...r.scenarios.values()];
    const scored = all.filter((s) => s.scored);
    const row = [
      r.transport.padEnd(9),
      r.era.padEnd(8),
      (SCENARIO ?? r.requirements).padEnd(12),
      String(scored.filter((s) => s.failed === 0).length).padStart(13),
      String(scored.filter((s) => s.failed > 0).length).padStart(14),
      String(all.filter((s) => !s.scored && s.failed > 0).length).padStart(18),
      String(r.code).padStart(5),
    ];
    console.log(row.join('  '));
    // The suite's exit code counts the scored scenarios only; the extension scenarios
    // (tasks-*) pass through federation too, in every configuration: a failure there is one.
    if (r.code !== 0 || scored.length === 0 || all.some((s) => s.failed > 0)) {
      exitCode = 1;
    }
  }
  for (const r of results) {
    const failing = [...r.scenarios].filter(([, s]) => s.failed > 0);
    if (failing.length === 0) {
      continue;
    }
    console.log(`\n${r.id} ${SCENARIO ?? r.requirements}:`);
    for (const [name, s] of failing) {
      console.log(`  ${s.scored ? 'FAIL' : 'fail (not scored)'} ${name}`);
      for (const check of s.checks) {
        console.log(`      ${check.replace(/\s+/g, ' ').slice(0, 300)}`);
      }
    }
  }
  for (const line of died) {
    console.log(`\nFAIL ${line}: see ${RESULTS}/gateway.log and upstreams.log`);
    exitCode = 1;
  }
  console.log(`\nresults in ${RESULTS}; ${((Date.now() - started) / 1000).toFixed(0)} s in all`);
} catch (err) {
  console.error(`conformance-federated: ${err.message}`);
  exitCode = 1;
} finally {
  relayServer?.close();
  relayServer?.closeAllConnections();
  stopAll();
  rmSync(work, { recursive: true, force: true });
}
process.exit(exitCode);

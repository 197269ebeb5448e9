#!/usr/bin/env node
// Runs the official MCP conformance suite against the built gateway, for both eras:
//   npm run build && npm run test:conformance
// The suite needs Node >= 22, so it runs under node@24 from the npm registry (npx), while the
// gateway runs on this machine's Node. Exits non-zero when any check fails.
//
// CONFORMANCE_TARGET selects what is tested:
//   fixture (default)  the anonymous endpoint /mcp, serving the conformance fixture catalog inline;
//   queued             a tenant endpoint whose backend is that catalog with `executor: queued`:
//                      every tool call (progress, logs, client input, tasks) runs as a BullMQ job
//                      on the gateway's embedded worker (needs Redis at REDIS_URL, default
//                      redis://127.0.0.1:6379; keys under a prefix of the run, deleted after).
//                      The suite sends no credential: a local relay adds the tenant's API key.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { Queue } from 'bullmq';
import Redis from 'ioredis';
import { relay } from '../libs/testing/fixtures-upstream/http-relay.mjs';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const MAIN = join(ROOT, 'dist/apps/gateway/apps/gateway/src/main.js');
const SUITE = '@modelcontextprotocol/conformance@0.2.0-alpha.12';
const REQUIREMENTS = (process.env.CONFORMANCE_REQUIREMENTS ?? '2026-07-28,2025-11-25').split(',');
const TARGET = process.env.CONFORMANCE_TARGET ?? 'fixture';
const RESULTS = join(ROOT, 'conformance-results', ...(TARGET === 'fixture' ? [] : [TARGET]));
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const TENANT = 'conformance';

if (!['fixture', 'queued'].includes(TARGET)) {
  console.error(`conformance: CONFORMANCE_TARGET must be fixture or queued, not ${TARGET}`);
  process.exit(2);
}

if (!existsSync(MAIN)) {
  console.error(`conformance: ${MAIN} not found; run "npm run build" first`);
  process.exit(2);
}

/** `scenario/check` of every check with status FAILURE in a run's output directory. */
function failedChecks(dir) {
  if (!existsSync(dir)) {
    return ['(no results written)'];
  }
  const failures = [];
  for (const scenario of readdirSync(dir)) {
    const file = join(dir, scenario, 'checks.json');
    if (!existsSync(file)) {
      continue;
    }
    for (const check of JSON.parse(readFileSync(file, 'utf8'))) {
      if (check.status === 'FAILURE') {
        failures.push(`${scenario.replace(/-\d{4}-\d\d-\d\dT.*$/, '')}/${check.id}`);
      }
    }
  }
  return failures;
}

const freePort = () =>
  new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });

async function waitReady(url, child) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`gateway exited with code ${child.exitCode}`);
    }
    try {
      const res = await fetch(url);
      if (res.ok) {
        return;
      }
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('gateway did not become ready within 30 s');
}

function run(command, args, env) {
  return new Promise((done) => {
    const child = spawn(command, args, { stdio: 'inherit', env: { ...process.env, ...env } });
    child.on('exit', (code, signal) => done(code ?? (signal ? 1 : 0)));
  });
}

/**
 * The environment of a queued run: a tenant declared in a portico.yaml whose one backend is the
 * conformance catalog with every tool queued, an API key for it, Redis under a key prefix of
 * this run, the worker embedded in the gateway.
 */
function queuedSetup() {
  const dir = mkdtempSync(join(tmpdir(), 'portico-conformance-'));
  const key = `ptk_${randomBytes(32).toString('base64url')}`;
  writeFileSync(
    join(dir, 'portico.yaml'),
    [
      'version: 1',
      'tenants:',
      `  - slug: ${TENANT}`,
      '    name: Conformance through the queue',
      '    backends:',
      '      - name: conformance',
      '        kind: fixture',
      '        target: conformance',
      // test_tool_with_task gathers input on the request before its task exists (beforeTask),
      // which needs the handler in the gateway: a queued tool's questions come once its job
      // runs, so after the task exists (docs/queue.md).
      '        settings: { executor: queued, tools: { test_tool_with_task: { executor: inline } } }',
      '    apiKeys:',
      '      - { name: suite, secret: { env: CONFORMANCE_API_KEY }, roles: [tool-user] }',
    ].join('\n'),
  );
  const prefix = `portico-conformance-${randomBytes(4).toString('hex')}:`;
  return {
    dir,
    key,
    prefix,
    env: {
      DATA_DIR: dir,
      PORTICO_CONFIG_FILE: join(dir, 'portico.yaml'),
      CONFORMANCE_API_KEY: key,
      REDIS_URL,
      REDIS_KEY_PREFIX: prefix,
      WORKER_EMBEDDED: 'true',
    },
  };
}

/** Adds the tenant's key to every request and maps /mcp… onto the tenant's endpoint. */
function startRelay(gatewayPort, key) {
  const server = createHttpServer((req, res) => {
    req.url = (req.url ?? '/').replace(/^\/mcp(?=[/?]|$)/, `/mcp/${TENANT}`);
    relay(req, res, { port: gatewayPort, headers: { authorization: `Bearer ${key}` } });
  });
  return new Promise((done) => {
    server.listen(0, '127.0.0.1', () => done({ server, port: server.address().port }));
  });
}

/** How many tool calls ran as jobs (the queued run must really have used the queue). */
async function jobsRun(prefix) {
  const queue = new Queue('tool-calls', {
    connection: { url: REDIS_URL, maxRetriesPerRequest: 1 },
    prefix: `${prefix}bull`,
  });
  try {
    const counts = await queue.getJobCounts('completed', 'failed');
    return counts.completed + counts.failed;
  } finally {
    await queue.close();
  }
}

async function deleteKeys(prefix) {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      if (keys.length > 0) {
        await redis.del(...keys);
      }
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

const queued = TARGET === 'queued' ? queuedSetup() : undefined;
const port = await freePort();
const gateway = spawn(process.execPath, [MAIN], {
  env: {
    ...process.env,
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    DATABASE_PATH: ':memory:',
    ...queued?.env,
  },
  stdio: ['ignore', 'inherit', 'inherit'],
});
const stop = () => {
  if (gateway.exitCode === null) {
    gateway.kill('SIGTERM');
  }
};
process.on('exit', stop);
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

let failed = 0;
try {
  await waitReady(`http://127.0.0.1:${port}/health/ready`, gateway);
  mkdirSync(RESULTS, { recursive: true });
  const relayed = queued ? await startRelay(port, queued.key) : undefined;
  const suitePort = relayed?.port ?? port;
  for (const requirements of REQUIREMENTS) {
    console.log(`\n=== conformance --requirements ${requirements} ===`);
    rmSync(join(RESULTS, requirements), { recursive: true, force: true });
    const code = await run(
      'npx',
      [
        '-y',
        '-p',
        'node@24',
        '-p',
        SUITE,
        'conformance',
        'server',
        '--url',
        `http://localhost:${suitePort}/mcp`,
        '--requirements',
        requirements,
        '--output-dir',
        join(RESULTS, requirements),
      ],
      {},
    );
    // The suite's exit code counts the scored scenarios only; the extension scenarios
    // (tasks-*) and pending ones run too, and Portico passes them: a failure there is one.
    const unscored = failedChecks(join(RESULTS, requirements));
    if (code !== 0) {
      failed++;
      console.error(`conformance ${requirements}: FAILED (exit ${code})`);
    } else if (unscored.length > 0) {
      failed++;
      console.error(`conformance ${requirements}: FAILED checks: ${unscored.join(', ')}`);
    } else {
      console.log(`conformance ${requirements}: passed`);
    }
  }
  if (queued) {
    const jobs = await jobsRun(queued.prefix);
    console.log(`conformance: ${jobs} tool calls ran as BullMQ jobs`);
    if (jobs === 0) {
      failed++;
      console.error('conformance: the queued run queued nothing');
    }
  }
} catch (err) {
  console.error(`conformance: ${err.message}`);
  failed++;
} finally {
  stop();
  if (queued) {
    if (gateway.exitCode === null && gateway.signalCode === null) {
      await new Promise((r) => gateway.once('exit', r));
    }
    await deleteKeys(queued.prefix).catch((err) => console.error(`conformance: ${err.message}`));
    rmSync(queued.dir, { recursive: true, force: true });
  }
}
process.exit(failed === 0 ? 0 : 1);

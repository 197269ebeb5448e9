#!/usr/bin/env node
// Runs the official MCP conformance suite against the built gateway, for both eras:
//   npm run build && npm run test:conformance
// The suite needs Node >= 22, so it runs under node@24 from the npm registry (npx), while the
// gateway runs on this machine's Node. Exits non-zero when any scored scenario fails.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const MAIN = join(ROOT, 'dist/apps/gateway/apps/gateway/src/main.js');
const SUITE = '@modelcontextprotocol/conformance@0.2.0-alpha.12';
const REQUIREMENTS = (process.env.CONFORMANCE_REQUIREMENTS ?? '2026-07-28,2025-11-25').split(',');
const RESULTS = join(ROOT, 'conformance-results');

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

const port = await freePort();
const gateway = spawn(process.execPath, [MAIN], {
  env: {
    ...process.env,
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    DATABASE_PATH: ':memory:',
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
        `http://localhost:${port}/mcp`,
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
} catch (err) {
  console.error(`conformance: ${err.message}`);
  failed++;
} finally {
  stop();
}
process.exit(failed === 0 ? 0 : 1);

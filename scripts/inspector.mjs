#!/usr/bin/env node
// The MCP Inspector CLI lists and calls tools on the built gateway over Streamable HTTP and on
// the built `portico stdio`. The Inspector needs Node >= 22.19, so it runs under node@24 from
// the npm registry. Usage: npm run build && npm run test:inspector
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..');
const GATEWAY = join(ROOT, 'dist/apps/gateway/apps/gateway/src/main.js');
const CLI = join(ROOT, 'dist/apps/cli/apps/cli/src/main.js');
const INSPECTOR = [
  '-y',
  '-p',
  'node@24',
  '-p',
  '@modelcontextprotocol/inspector@2.12.0',
  'mcp-inspector',
  '--cli',
];

for (const file of [GATEWAY, CLI]) {
  if (!existsSync(file)) {
    console.error(`inspector: ${file} not found; run "npm run build" first`);
    process.exit(2);
  }
}

const port = await new Promise((done, fail) => {
  const server = createServer();
  server.once('error', fail);
  server.listen(0, '127.0.0.1', () => {
    const { port: p } = server.address();
    server.close(() => done(p));
  });
});
const gateway = spawn(process.execPath, [GATEWAY], {
  env: {
    ...process.env,
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    DATABASE_PATH: ':memory:',
  },
  stdio: 'ignore',
});
process.on('exit', () => gateway.kill('SIGTERM'));

const deadline = Date.now() + 30_000;
while (Date.now() < deadline) {
  try {
    if ((await fetch(`http://127.0.0.1:${port}/health/ready`)).ok) {
      break;
    }
  } catch {
    // not listening yet
  }
  await new Promise((r) => setTimeout(r, 200));
}

const targets = {
  'Streamable HTTP': [`http://127.0.0.1:${port}/mcp`, '--transport', 'http'],
  stdio: [process.execPath, CLI, 'stdio'],
};
let failures = 0;
for (const [name, target] of Object.entries(targets)) {
  const checks = [
    [['--method', 'tools/list'], (out) => out.tools?.some((t) => t.name === 'echo')],
    [
      [
        '--method',
        'tools/call',
        '--tool-name',
        'echo',
        '--tool-arg',
        `message=inspected over ${name}`,
      ],
      (out) => out.content?.[0]?.text === `inspected over ${name}`,
    ],
  ];
  for (const [args, ok] of checks) {
    const label = `${name}: ${args[1]}`;
    try {
      const { stdout } = await run('npx', [...INSPECTOR, ...target, ...args], {
        timeout: 180_000,
        maxBuffer: 16 * 1024 * 1024,
      });
      const passed = ok(JSON.parse(stdout));
      console.log(`${passed ? 'PASS' : 'FAIL'}  ${label}`);
      failures += passed ? 0 : 1;
    } catch (err) {
      console.log(`FAIL  ${label}: ${err.message.split('\n')[0]}`);
      failures++;
    }
  }
}
console.log(`${4 - failures} passed, ${failures} failed`);
process.exit(failures === 0 ? 0 : 1);

// The conformance catalog as an upstream MCP server, in its own process, for federation:
//   node libs/testing/fixtures-upstream/conformance-upstream.mjs --transport http [--port N] [--era E]
//   node libs/testing/fixtures-upstream/conformance-upstream.mjs --transport stdio [--era E]
// It runs Portico's own build (dist: `npm run build` first): the gateway's anonymous endpoint
// over Streamable HTTP, or `portico stdio`, both serving the fixture catalog the conformance
// scenarios need (FIXTURE_CATALOG=conformance) in both eras. In front of it sits a thin filter
// that can pin the server to one era (--era, or CONFORMANCE_UPSTREAM_ERA):
//   both    (default) everything passes: SDK v2 clients settle on 2026-07-28.
//   2025    a 2025-era server: requests before `initialize` are refused the way SDK v1 servers
//           refuse them (HTTP: 400 -32000 without Mcp-Session-Id, 400 for a 2026
//           MCP-Protocol-Version header; stdio: server/discover -32601, anything else before
//           initialize -32600), so clients fall back to `initialize`.
//   modern  a 2026-07-28-only server: `initialize` is refused (-32601; HTTP 404) and the
//           2025-era GET/DELETE endpoints answer 405.
// HTTP prints `READY <port>` once listening. stdio relays newline-delimited JSON-RPC between
// its stdin/stdout and `portico stdio`; it ends when stdin closes. Logs go to stderr.
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { readBody, relay } from './http-relay.mjs';

const ROOT = resolve(import.meta.dirname, '../../..');
const GATEWAY = resolve(ROOT, 'dist/apps/gateway/apps/gateway/src/main.js');
const CLI = resolve(ROOT, 'dist/apps/cli/apps/cli/src/main.js');
const LEGACY_VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'];
const MODERN_VERSION = '2026-07-28';
const META_VERSION = 'io.modelcontextprotocol/protocolVersion';

const option = (name, fallback) => {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && process.argv[at + 1] !== undefined ? process.argv[at + 1] : fallback;
};
const transport = option('transport', 'http');
const era = option('era', process.env.CONFORMANCE_UPSTREAM_ERA ?? 'both');
if (!['http', 'stdio'].includes(transport) || !['both', '2025', 'modern'].includes(era)) {
  process.stderr.write(
    'usage: conformance-upstream.mjs --transport http|stdio --era both|2025|modern\n',
  );
  process.exit(2);
}
const entry = transport === 'http' ? GATEWAY : CLI;
if (!existsSync(entry)) {
  process.stderr.write(`conformance-upstream: ${entry} not found; run "npm run build" first\n`);
  process.exit(2);
}

/** Portico as a development server with the conformance catalog, nothing kept on disk. */
const porticoEnv = {
  ...process.env,
  NODE_ENV: 'development',
  FIXTURE_CATALOG: 'conformance',
  DATABASE_PATH: ':memory:',
  LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  SHUTDOWN_DRAIN_DELAY_MS: '0',
  // A fixture stops at once: nothing it runs is worth waiting for.
  SHUTDOWN_GRACE_MS: '0',
};

const isRequest = (message) =>
  typeof message === 'object' &&
  message !== null &&
  !Array.isArray(message) &&
  typeof message.method === 'string' &&
  message.id !== undefined;

function errorMessage(id, code, message, data) {
  return JSON.stringify({
    jsonrpc: '2.0',
    id: id ?? null,
    error: { code, message, ...(data !== undefined && { data }) },
  });
}

// ---------------------------------------------------------------------------------------------
// Streamable HTTP

const freePort = () =>
  new Promise((done, fail) => {
    const server = createNetServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });

async function waitReady(port, child) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`portico exited with code ${child.exitCode}`);
    }
    const res = await fetch(`http://127.0.0.1:${port}/health/ready`).catch(() => undefined);
    if (res?.ok) {
      return;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('portico did not become ready within 60 s');
}

/** The refusal a pinned server gives `req` (with its parsed body), or undefined to pass it on. */
function httpRefusal(req, message) {
  const version = req.headers['mcp-protocol-version'];
  if (era === '2025') {
    if (!isRequest(message)) {
      return undefined;
    }
    if (version !== undefined && !LEGACY_VERSIONS.includes(version)) {
      return {
        status: 400,
        body: errorMessage(
          null,
          -32000,
          `Bad Request: Unsupported protocol version: ${version} (supported versions: ${LEGACY_VERSIONS.join(', ')})`,
        ),
      };
    }
    if (message.method !== 'initialize' && req.headers['mcp-session-id'] === undefined) {
      return {
        status: 400,
        body: errorMessage(null, -32000, 'Bad Request: Mcp-Session-Id header is required'),
      };
    }
    return undefined;
  }
  if (isRequest(message) && message.method === 'initialize') {
    return { status: 404, body: errorMessage(message.id, -32601, 'Method not found: initialize') };
  }
  return undefined;
}

async function serveHttp() {
  const innerPort = await freePort();
  const child = spawn(process.execPath, [GATEWAY], {
    env: { ...porticoEnv, HOST: '127.0.0.1', PORT: String(innerPort) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const stop = () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
    }
  };
  process.on('exit', stop);
  process.on('SIGTERM', () => process.exit(0));
  process.on('SIGINT', () => process.exit(0));
  child.on('exit', (code) => {
    process.stderr.write(`conformance-upstream: portico exited (${code})\n`);
    process.exit(1);
  });
  await waitReady(innerPort, child);

  const server = createServer((req, res) => {
    if (era === 'both') {
      relay(req, res, { port: innerPort });
      return;
    }
    if (era === 'modern' && (req.method === 'GET' || req.method === 'DELETE')) {
      res.writeHead(405, { allow: 'POST' }).end();
      return;
    }
    if (req.method !== 'POST') {
      relay(req, res, { port: innerPort });
      return;
    }
    readBody(req).then(
      (body) => {
        let message;
        try {
          message = JSON.parse(body);
        } catch {
          message = undefined;
        }
        const refusal = httpRefusal(req, message);
        if (refusal) {
          res.writeHead(refusal.status, { 'content-type': 'application/json' }).end(refusal.body);
          return;
        }
        relay(req, res, { port: innerPort, body });
      },
      () => res.destroy(),
    );
  });
  const port = Number(option('port', process.env.PORT ?? 0));
  server.listen(port, '127.0.0.1', () => {
    process.stdout.write(`READY ${server.address().port}\n`);
  });
}

// ---------------------------------------------------------------------------------------------
// stdio

/** The error line a pinned server answers `message` with, or undefined to pass it on. */
function stdioRefusal(message, state) {
  if (!isRequest(message)) {
    return undefined;
  }
  if (era === '2025') {
    if (message.method === 'initialize') {
      state.initialized = true;
      return undefined;
    }
    if (message.method === 'server/discover') {
      return errorMessage(message.id, -32601, 'Method not found');
    }
    if (!state.initialized || message.params?._meta?.[META_VERSION] === MODERN_VERSION) {
      return errorMessage(message.id, -32600, 'Server not initialized');
    }
    return undefined;
  }
  if (era === 'modern' && message.method === 'initialize') {
    return errorMessage(message.id, -32601, 'Method not found: initialize');
  }
  return undefined;
}

function serveStdio() {
  // Own pipes only: were this process killed, portico would see its stdin close and stop,
  // without holding on to a pipe of whoever started this one.
  const child = spawn(process.execPath, [CLI, 'stdio'], {
    env: porticoEnv,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stderr.pipe(process.stderr);
  const state = { initialized: false };
  const out = (line) => process.stdout.write(`${line}\n`);
  createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', out);
  const input = createInterface({ input: process.stdin, crlfDelay: Infinity });
  input.on('line', (line) => {
    let message;
    try {
      message = JSON.parse(line);
    } catch {
      message = undefined;
    }
    const refusal = era === 'both' ? undefined : stdioRefusal(message, state);
    if (refusal) {
      out(refusal);
    } else {
      child.stdin.write(`${line}\n`);
    }
  });
  input.on('close', () => child.stdin.end());
  child.stdin.on('error', () => undefined);
  process.on('SIGTERM', () => child.kill('SIGTERM'));
  process.on('SIGINT', () => child.kill('SIGTERM'));
  child.on('exit', (code) => process.exit(code ?? 0));
}

if (transport === 'http') {
  serveHttp().catch((err) => {
    process.stderr.write(`conformance-upstream: ${err.message}\n`);
    process.exit(1);
  });
} else {
  serveStdio();
}

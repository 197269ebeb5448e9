// A fixture upstream MCP server for federation tests, run as its own process:
//   node libs/testing/fixtures-upstream/upstream-server.mjs [port]   (or PORT=…)
// It serves both eras over Streamable HTTP on /mcp through the SDK v2 entry createMcpHandler
// (2026-07-28 per-request envelope natively, 2025-era clients through its stateless legacy
// fallback), and prints `READY <port>` once listening. Plain ESM so tests need no build step.
//
// GET /stats answers the counters of the `slow` tool, so a test can see that an abandoned
// gateway request really cancelled the upstream call, and the trace context (traceparent
// header and `_meta.traceparent`) each tools/call arrived with, and `attempts`: per `key`
// argument, how many tools/call requests of `flaky`, `flaky_write` and `rpc_error` arrived.
// `flaky` (annotated idempotent) and `flaky_write` (not) close the connection without an
// answer for the first `failures` attempts of a key; `rpc_error` always answers a JSON-RPC
// error.
// `tracked` sleeps `ms` like `slow` and records, per `group` argument, under `tracked`: how many
// of its calls run now and at most at once (`running`, `maxRunning`), and the `label` argument
// of each call in the order they started (`started`).
// The resource template fixture://missing/{id} answers every read with resource-not-found.
//
// Resource subscriptions: `touch` {uri} announces that a resource changed (on the
// subscriptions/listen streams of 2026-07-28 clients; over stdio, to the session if it
// subscribed), and `subscriptions` answers `{pid, uris}`: this process and the URIs some client
// is subscribed to now (open listen streams over HTTP, resources/subscribe over stdio).
//
//   node libs/testing/fixtures-upstream/upstream-server.mjs --stdio
// serves the same catalog over stdio as a 2025-era server (one session per process, as an
// SDK server wired by hand serves it: server/discover is unknown, so clients fall back to
// initialize) with resources/subscribe and resources/unsubscribe. Over stdio only, to see what
// reaches a client outside any call: `later` {ms} answers at once, then after `ms` sends a log
// message "later from <pid>" and asks the client for its roots; `roots` answers `{pid, roots}`:
// the roots the last such request got (null before any; `{error}` when it was refused).
import { createServer } from 'node:http';
import {
  McpServer,
  ResourceNotFoundError,
  ResourceTemplate,
  createMcpHandler,
  fromJsonSchema,
} from '@modelcontextprotocol/server';
import { StdioServerTransport } from '@modelcontextprotocol/server/stdio';

const HOST = '127.0.0.1';
const STDIO = process.argv.includes('--stdio');
const port = Number(
  process.argv.slice(2).find((arg) => !arg.startsWith('--')) ?? process.env.PORT ?? 0,
);
const stats = { slowStarted: 0, slowCancelled: 0, slowFinished: 0, toolCalls: [], attempts: {} };
const FAILING_TOOLS = new Set(['flaky', 'flaky_write']);
const tracked = {};
stats.tracked = tracked;
// Flipped by the `toggle_extra` tool: whether the `extra` tool exists (list_changed tests).
let extraTool = false;

// Over HTTP: the resourceSubscriptions of each open subscriptions/listen stream. Over stdio:
// the URIs the session subscribed to.
const listens = new Set();
const subscribed = new Set();
const subscribedUris = () =>
  [...new Set([...subscribed, ...[...listens].flatMap((listen) => listen.uris)])].sort();
// The one server instance of a stdio process (HTTP builds one per request).
let stdioServer;
// Over stdio: what the client answered the roots/list that `later` sent.
let lastRoots = null;

const object = (properties, required = Object.keys(properties)) =>
  fromJsonSchema({ type: 'object', properties, required });
const text = (value) => ({ content: [{ type: 'text', text: value }] });

/** Tells clients what changed: listen streams over HTTP, the session over stdio. */
const notify = {
  toolsChanged() {
    if (STDIO) {
      void stdioServer?.server.sendToolListChanged().catch(() => undefined);
    } else {
      handler.notify.toolsChanged();
    }
  },
  resourceUpdated(uri) {
    if (!STDIO) {
      handler.notify.resourceUpdated(uri);
    } else if (subscribed.has(uri)) {
      void stdioServer?.server.sendResourceUpdated({ uri }).catch(() => undefined);
    }
  },
};

function buildServer(ctx) {
  // The factory runs per request, so the header is the one this very request carried.
  const authorization = ctx.requestInfo?.headers.get('authorization') ?? '';
  // A stateless 2025-era request (HTTP) could never hear of an update: no subscriptions there.
  const subscribe = STDIO || ctx.era === 'modern';
  const server = new McpServer(
    { name: 'fixture-upstream', version: '1.0.0' },
    {
      capabilities: {
        tools: {},
        resources: subscribe ? { subscribe: true } : {},
        prompts: {},
        ...(STDIO && { logging: {} }),
      },
    },
  );
  if (STDIO) {
    server.server.setRequestHandler('resources/subscribe', async (request) => {
      subscribed.add(request.params.uri);
      return {};
    });
    server.server.setRequestHandler('resources/unsubscribe', async (request) => {
      subscribed.delete(request.params.uri);
      return {};
    });
  }
  server.registerTool(
    'echo',
    { description: 'Echoes the message', inputSchema: object({ message: { type: 'string' } }) },
    async ({ message }) => text(message),
  );
  server.registerTool(
    'slow',
    { description: 'Sleeps for ms milliseconds', inputSchema: object({ ms: { type: 'number' } }) },
    async ({ ms }, toolCtx) => {
      const signal = toolCtx.mcpReq.signal;
      stats.slowStarted += 1;
      const finished = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve(true), ms);
        signal.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve(false);
        });
      });
      if (!finished) {
        stats.slowCancelled += 1;
        return text('cancelled');
      }
      stats.slowFinished += 1;
      return text(`slept ${ms}`);
    },
  );
  server.registerTool(
    'tracked',
    {
      description: 'Sleeps for ms milliseconds, counted per group',
      inputSchema: object({
        group: { type: 'string' },
        label: { type: 'string' },
        ms: { type: 'number' },
      }),
    },
    async ({ group, label, ms }, toolCtx) => {
      const g = (tracked[group] ??= { running: 0, maxRunning: 0, started: [] });
      g.running += 1;
      g.maxRunning = Math.max(g.maxRunning, g.running);
      g.started.push(label);
      try {
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, ms);
          toolCtx.mcpReq.signal.addEventListener('abort', () => {
            clearTimeout(timer);
            resolve();
          });
        });
      } finally {
        g.running -= 1;
      }
      return text(`${group} ${label}`);
    },
  );
  server.registerTool(
    'whoami',
    { description: 'Returns the Authorization header it received', inputSchema: object({}) },
    async () => text(authorization),
  );
  server.registerTool(
    'fail',
    { description: 'Always throws', inputSchema: object({}) },
    async () => {
      throw new Error('fixture failure');
    },
  );
  const flakyInput = object({ key: { type: 'string' }, failures: { type: 'number' } });
  server.registerTool(
    'flaky',
    {
      description: 'Drops the connection for the first `failures` attempts of `key`',
      inputSchema: flakyInput,
      annotations: { idempotentHint: true },
    },
    async ({ key }) => text(`ok ${key} after ${stats.attempts[key]} attempts`),
  );
  server.registerTool(
    'flaky_write',
    { description: 'Like flaky, but not idempotent', inputSchema: flakyInput },
    async ({ key }) => text(`ok ${key} after ${stats.attempts[key]} attempts`),
  );
  server.registerTool(
    'rpc_error',
    {
      description: 'Answers a JSON-RPC error (counted per key)',
      inputSchema: object({ key: { type: 'string' } }),
      annotations: { idempotentHint: true },
    },
    // Answered by the HTTP layer below; never reached.
    async () => text('unreachable'),
  );
  server.registerTool(
    'toggle_extra',
    { description: 'Adds or removes the tool `extra`', inputSchema: object({}) },
    async () => {
      extraTool = !extraTool;
      notify.toolsChanged();
      return text(extraTool ? 'added' : 'removed');
    },
  );
  server.registerTool(
    'touch',
    {
      description: 'Announces that a resource changed',
      inputSchema: object({ uri: { type: 'string' } }),
    },
    async ({ uri }) => {
      notify.resourceUpdated(uri);
      return text(`touched ${uri}`);
    },
  );
  server.registerTool(
    'subscriptions',
    { description: 'This process and the URIs clients are subscribed to', inputSchema: object({}) },
    async () => text(JSON.stringify({ pid: process.pid, uris: subscribedUris() })),
  );
  if (STDIO) {
    server.registerTool(
      'later',
      {
        description: 'Logs and asks for the roots after ms, outside this call',
        inputSchema: object({ ms: { type: 'number' } }),
      },
      async ({ ms }) => {
        setTimeout(() => {
          void server.server
            .sendLoggingMessage({ level: 'info', data: `later from ${process.pid}` })
            .catch(() => undefined);
          server.server.listRoots().then(
            (answer) => (lastRoots = answer.roots),
            (err) => (lastRoots = { error: String(err?.message ?? err) }),
          );
        }, ms);
        return text(`later in ${ms} ms`);
      },
    );
    server.registerTool(
      'roots',
      { description: 'The roots the last request of `later` got', inputSchema: object({}) },
      async () => text(JSON.stringify({ pid: process.pid, roots: lastRoots })),
    );
  }
  if (extraTool) {
    server.registerTool(
      'extra',
      { description: 'Exists only while toggled on', inputSchema: object({}) },
      async () => text('extra'),
    );
  }
  server.registerResource(
    'hello',
    'fixture://hello',
    { mimeType: 'text/plain', description: 'A greeting' },
    async (uri) => ({
      contents: [{ uri: uri.href, mimeType: 'text/plain', text: 'Hello, upstream!' }],
    }),
  );
  // Every read of fixture://missing/{id} is a resource-not-found error (-32602 with data.uri
  // to a 2026-07-28 client, -32002 to a 2025-era one).
  server.registerResource(
    'missing',
    new ResourceTemplate('fixture://missing/{id}', { list: undefined }),
    { mimeType: 'text/plain', description: 'Never found' },
    async (uri) => {
      throw new ResourceNotFoundError(uri.href);
    },
  );
  server.registerPrompt(
    'greet',
    { description: 'Greets someone', argsSchema: object({ name: { type: 'string' } }) },
    async ({ name }) => ({
      messages: [{ role: 'user', content: { type: 'text', text: `Hello, ${name}!` } }],
    }),
  );
  return server;
}

const handler = STDIO ? undefined : createMcpHandler(buildServer);

function readBody(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

function toHeaders(nodeHeaders) {
  const headers = new Headers();
  for (const [name, value] of Object.entries(nodeHeaders)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== undefined) {
        headers.append(name, v);
      }
    }
  }
  return headers;
}

/** Counts the URIs of a subscriptions/listen request for as long as its stream is open. */
function recordListen(raw, res) {
  let message;
  try {
    message = raw ? JSON.parse(raw) : undefined;
  } catch {
    return;
  }
  if (message?.method !== 'subscriptions/listen') {
    return;
  }
  const requested = message.params?.notifications?.resourceSubscriptions;
  const listen = { uris: Array.isArray(requested) ? requested.map(String) : [] };
  listens.add(listen);
  res.on('close', () => listens.delete(listen));
}

function recordToolCall(headers, raw) {
  let message;
  try {
    message = raw ? JSON.parse(raw) : undefined;
  } catch {
    return;
  }
  if (message?.method === 'tools/call') {
    stats.toolCalls.push({
      name: message.params?.name,
      traceparentHeader: headers.traceparent ?? null,
      traceparentMeta: message.params?._meta?.traceparent ?? null,
    });
  }
}

/** The transport-level failures of `flaky`, `flaky_write` and `rpc_error`; true when handled. */
function misbehave(raw, req, res) {
  let message;
  try {
    message = raw ? JSON.parse(raw) : undefined;
  } catch {
    return false;
  }
  const name = message?.method === 'tools/call' ? message.params?.name : undefined;
  if (!FAILING_TOOLS.has(name) && name !== 'rpc_error') {
    return false;
  }
  const key = String(message.params?.arguments?.key ?? '');
  stats.attempts[key] = (stats.attempts[key] ?? 0) + 1;
  if (name === 'rpc_error') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        jsonrpc: '2.0',
        id: message.id,
        error: { code: -32000, message: `fixture rpc error ${key}` },
      }),
    );
    return true;
  }
  if (stats.attempts[key] <= Number(message.params?.arguments?.failures ?? 0)) {
    req.socket.destroy();
    return true;
  }
  return false;
}

const http = STDIO
  ? undefined
  : createServer(async (req, res) => {
      if (req.method === 'GET' && req.url === '/stats') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(stats));
        return;
      }
      // A client that goes away aborts the web Request, which the SDK turns into mcpReq.signal.
      const abort = new AbortController();
      res.on('close', () => {
        if (!res.writableFinished) {
          abort.abort();
        }
      });
      try {
        const hasBody = req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'DELETE';
        const raw = hasBody ? await readBody(req) : undefined;
        recordToolCall(req.headers, raw);
        recordListen(raw, res);
        if (misbehave(raw, req, res)) {
          return;
        }
        const request = new Request(`http://${req.headers.host ?? HOST}${req.url}`, {
          method: req.method,
          headers: toHeaders(req.headers),
          body: raw,
          signal: abort.signal,
        });
        const response = await handler.fetch(request);
        res.writeHead(response.status, Object.fromEntries(response.headers));
        if (!response.body) {
          res.end();
          return;
        }
        for await (const chunk of response.body) {
          res.write(chunk);
        }
        res.end();
      } catch (err) {
        if (!res.headersSent) {
          res.writeHead(500, { 'content-type': 'application/json' });
        }
        res.end(
          JSON.stringify({
            jsonrpc: '2.0',
            id: null,
            error: { code: -32603, message: String(err) },
          }),
        );
      }
    });

if (STDIO) {
  stdioServer = buildServer({ era: 'legacy' });
  await stdioServer.connect(new StdioServerTransport());
} else {
  http.listen(port, HOST, () => {
    process.stdout.write(`READY ${http.address().port}\n`);
  });
}
process.on('SIGTERM', () => process.exit(0));

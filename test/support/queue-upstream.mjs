// An upstream MCP server for suites of queued tool calls, run as its own process:
//   node test/support/queue-upstream.mjs [port]
// Like libs/testing/fixtures-upstream/upstream-server.mjs (SDK v2 createMcpHandler, both eras on
// /mcp, `READY <port>` once listening), with tools that show what reached the upstream:
// - `steps` reports progress 1..steps of steps (message `step i`) when the request has a progress
//   token, then returns text and structuredContent;
// - `hold` runs until `ms` pass, its `key` is released (POST /release/<key>) or its request is
//   aborted, and records per key under GET /stats `holds`: how many calls started, were aborted
//   and finished (ran to their end or release).
import { createServer } from 'node:http';
import { McpServer, createMcpHandler, fromJsonSchema } from '@modelcontextprotocol/server';

const HOST = '127.0.0.1';
const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
const holds = {};
/** Release callbacks of the `hold` calls running now, per key. */
const releases = new Map();

const object = (properties, required = Object.keys(properties)) =>
  fromJsonSchema({ type: 'object', properties, required });

const handler = createMcpHandler(() => {
  const server = new McpServer(
    { name: 'queue-upstream', version: '1.0.0' },
    { capabilities: { tools: {} } },
  );
  server.registerTool(
    'steps',
    {
      description: 'Reports progress 1..steps, then returns',
      inputSchema: object({ steps: { type: 'number' } }),
      outputSchema: object({ steps: { type: 'number' } }),
    },
    async ({ steps }, ctx) => {
      const progressToken = ctx.mcpReq._meta?.progressToken;
      for (let i = 1; i <= steps; i++) {
        if (progressToken !== undefined) {
          await ctx.mcpReq.notify({
            method: 'notifications/progress',
            params: { progressToken, progress: i, total: steps, message: `step ${i}` },
          });
        }
        // Each step its own event, as a real tool's would be.
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      return {
        content: [{ type: 'text', text: `done after ${steps} steps` }],
        structuredContent: { steps },
      };
    },
  );
  server.registerTool(
    'hold',
    {
      description: 'Runs until ms pass, its key is released or the call is aborted',
      inputSchema: object({ key: { type: 'string' }, ms: { type: 'number' } }),
    },
    async ({ key, ms }, ctx) => {
      const record = (holds[key] ??= { started: 0, aborted: 0, finished: 0 });
      record.started += 1;
      const signal = ctx.mcpReq.signal;
      const ended = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve('finished'), ms);
        const end = (how) => {
          clearTimeout(timer);
          resolve(how);
        };
        releases.set(key, [...(releases.get(key) ?? []), () => end('finished')]);
        if (signal.aborted) {
          end('aborted');
        }
        signal.addEventListener('abort', () => end('aborted'), { once: true });
      });
      releases.delete(key);
      record[ended] += 1;
      return { content: [{ type: 'text', text: `${ended} ${key}` }] };
    },
  );
  return server;
});

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

const http = createServer(async (req, res) => {
  if (req.method === 'GET' && req.url === '/stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ holds }));
    return;
  }
  const release = req.method === 'POST' ? /^\/release\/([^/]+)$/.exec(req.url ?? '') : null;
  if (release) {
    const key = decodeURIComponent(release[1]);
    const waiting = releases.get(key) ?? [];
    waiting.forEach((resume) => resume());
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ released: waiting.length }));
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
      JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32603, message: String(err) } }),
    );
  }
});

http.listen(port, HOST, () => {
  process.stdout.write(`READY ${http.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));

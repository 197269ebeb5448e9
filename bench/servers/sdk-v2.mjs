// Baseline (c): the official TypeScript SDK v2 (@modelcontextprotocol/server)
// via its recommended entry, createMcpHandler: a fresh McpServer per request,
// serving MCP 2026-07-28 (stateless, per-request _meta envelope) natively.
//
// createMcpHandler speaks web-standard Request/Response. The official Node
// adapter (@modelcontextprotocol/node) is not installed, so a minimal
// node:http <-> fetch adapter lives here. It hands the SDK the pre-parsed body
// (`parsedBody`, the SDK's documented fast path for framework body parsers) so
// the baseline is measured at its best, not penalised by our adapter.
import { createServer } from 'node:http';
import { McpServer, createMcpHandler } from '@modelcontextprotocol/server';
import { z } from 'zod';
import { ECHO_TOOL, HOST, announceReady, listenPort, readBody } from './common.mjs';

// Built once: only the server instance is per-request by design; the schema
// need not be, and hoisting it gives the baseline its best case.
const echoInput = z.object({ message: z.string() });

const handler = createMcpHandler(() => {
  const server = new McpServer({ name: 'bench-sdk-v2', version: '1.0.0' });
  server.registerTool(
    ECHO_TOOL,
    { description: 'Echo the message back', inputSchema: echoInput },
    async ({ message }) => ({ content: [{ type: 'text', text: message }] }),
  );
  return server;
});

function toHeaders(nodeHeaders) {
  const headers = new Headers();
  for (const [name, value] of Object.entries(nodeHeaders)) {
    if (Array.isArray(value)) {
      for (const v of value) {
        headers.append(name, v);
      }
    } else if (value !== undefined) {
      headers.set(name, value);
    }
  }
  return headers;
}

const http = createServer(async (req, res) => {
  try {
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    const raw = hasBody ? await readBody(req) : undefined;
    let parsedBody;
    try {
      parsedBody = raw ? JSON.parse(raw) : undefined;
    } catch {
      // Leave it to the SDK to answer malformed JSON with its own error.
    }
    const request = new Request(`http://${req.headers.host ?? HOST}${req.url}`, {
      method: req.method,
      headers: toHeaders(req.headers),
      body: raw,
    });
    const response = await handler.fetch(request, { parsedBody });

    res.writeHead(response.status, Object.fromEntries(response.headers));
    if (!response.body) {
      return res.end();
    }
    // Stream rather than buffer so an SSE answer would also work.
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

http.listen(listenPort(), HOST, () => announceReady(http, 'sdk-v2'));

// Baseline (b): the official TypeScript SDK v1 (@modelcontextprotocol/sdk) in
// its documented stateful Streamable HTTP setup: one McpServer + transport per
// session, sessions keyed by the Mcp-Session-Id header, JSON responses.
// Plain node:http (no Express) so the comparison measures the SDK, not a router.
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { ECHO_TOOL, HOST, announceReady, listenPort, readBody } from './common.mjs';

/** @type {Map<string, StreamableHTTPServerTransport>} */
const sessions = new Map();

function buildServer() {
  const server = new McpServer({ name: 'bench-sdk-v1', version: '1.0.0' });
  server.registerTool(
    ECHO_TOOL,
    { description: 'Echo the message back', inputSchema: { message: z.string() } },
    async ({ message }) => ({ content: [{ type: 'text', text: message }] }),
  );
  return server;
}

function sendError(res, status, message) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32000, message } }));
}

const http = createServer(async (req, res) => {
  try {
    if (req.url !== '/mcp') {
      return sendError(res, 404, 'Not found');
    }
    const sessionId = req.headers['mcp-session-id'];
    let transport = typeof sessionId === 'string' ? sessions.get(sessionId) : undefined;

    // The body is parsed here because we need it to spot `initialize`; the
    // transport accepts the pre-parsed body, so it is not parsed twice.
    const body = req.method === 'POST' ? JSON.parse(await readBody(req)) : undefined;

    if (!transport) {
      if (sessionId || !isInitializeRequest(body)) {
        return sendError(res, 400, 'Bad Request: no valid session');
      }
      transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableJsonResponse: true,
        onsessioninitialized: (id) => sessions.set(id, transport),
      });
      transport.onclose = () => transport.sessionId && sessions.delete(transport.sessionId);
      await buildServer().connect(transport);
    }
    await transport.handleRequest(req, res, body);
  } catch (err) {
    if (!res.headersSent) {
      sendError(res, 500, String(err?.message ?? err));
    }
  }
});

http.listen(listenPort(), HOST, () => announceReady(http, 'sdk-v1'));

// A fixture MCP server on the 2024-11-05 HTTP+SSE transport (SDK v1 SSEServerTransport on
// node:http) for federation tests, run as its own process:
//   node libs/testing/fixtures-upstream/sse-server.mjs [port]
// GET /sse opens a session's event stream (its `endpoint` event names POST /messages), and
// prints `READY <port>` once listening. Plain ESM, no build step.
//
// Tools: echo, whoami (the Authorization header of the stream's request), fail (a tool
// error) and reject (a JSON-RPC error, -32602). GET /stats counts the streams opened and the
// trace context of each tools/call POST.
import { createServer } from 'node:http';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import {
  CallToolRequestSchema,
  ErrorCode,
  ListToolsRequestSchema,
  McpError,
} from '@modelcontextprotocol/sdk/types.js';

const HOST = '127.0.0.1';
const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
const sessions = new Map();
const stats = { streams: 0, toolCalls: [] };

const TOOLS = [
  {
    name: 'echo',
    description: 'Echoes the message',
    inputSchema: {
      type: 'object',
      properties: { message: { type: 'string' } },
      required: ['message'],
    },
  },
  {
    name: 'whoami',
    description: 'The Authorization header of the stream',
    inputSchema: { type: 'object' },
  },
  { name: 'fail', description: 'A tool error', inputSchema: { type: 'object' } },
  { name: 'reject', description: 'A JSON-RPC error', inputSchema: { type: 'object' } },
];
const text = (value, isError = false) => ({
  content: [{ type: 'text', text: value }],
  ...(isError && { isError: true }),
});

function mcpServer(authorization) {
  const server = new Server(
    { name: 'fixture-sse', version: '1.0.0' },
    { capabilities: { tools: {} } },
  );
  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: TOOLS }));
  server.setRequestHandler(CallToolRequestSchema, async (request) => {
    switch (request.params.name) {
      case 'echo':
        return text(String(request.params.arguments?.message ?? ''));
      case 'whoami':
        return text(authorization);
      case 'fail':
        return text('fixture failure', true);
      case 'reject':
        throw new McpError(ErrorCode.InvalidParams, 'fixture rejects this call');
      default:
        throw new McpError(ErrorCode.InvalidParams, `Tool ${request.params.name} not found`);
    }
  });
  return server;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

const http = createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', `http://${HOST}`);
  try {
    if (req.method === 'GET' && url.pathname === '/stats') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(stats));
      return;
    }
    if (req.method === 'GET' && url.pathname === '/sse') {
      stats.streams += 1;
      const transport = new SSEServerTransport('/messages', res);
      sessions.set(transport.sessionId, transport);
      res.on('close', () => sessions.delete(transport.sessionId));
      await mcpServer(req.headers.authorization ?? '').connect(transport);
      return;
    }
    if (req.method === 'POST' && url.pathname === '/messages') {
      const transport = sessions.get(url.searchParams.get('sessionId'));
      if (!transport) {
        res.writeHead(404).end('unknown session');
        return;
      }
      const body = JSON.parse(await readBody(req));
      if (body?.method === 'tools/call') {
        stats.toolCalls.push({
          name: body.params?.name,
          traceparentHeader: req.headers.traceparent ?? null,
          traceparentMeta: body.params?._meta?.traceparent ?? null,
        });
      }
      await transport.handlePostMessage(req, res, body);
      return;
    }
    res.writeHead(404).end();
  } catch (err) {
    if (!res.headersSent) {
      res.writeHead(500, { 'content-type': 'text/plain' });
    }
    res.end(String(err));
  }
});

http.listen(port, HOST, () => {
  process.stdout.write(`READY ${http.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));

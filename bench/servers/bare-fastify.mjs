// Baseline (a): the cheapest possible "MCP-shaped" server — Fastify parsing a
// JSON body and returning a JSON-RPC result that echoes the argument. No
// protocol logic at all, so it is the ceiling a gateway on the same HTTP stack
// could approach.
import Fastify from 'fastify';
import { ECHO_TOOL, HOST, announceReady, listenPort } from './common.mjs';

const app = Fastify({ logger: false });

app.post('/mcp', async (request, reply) => {
  const msg = request.body;
  if (msg?.method !== 'tools/call' || msg.params?.name !== ECHO_TOOL) {
    return reply.code(400).send({
      jsonrpc: '2.0',
      id: msg?.id ?? null,
      error: { code: -32601, message: 'Method not found' },
    });
  }
  return {
    jsonrpc: '2.0',
    id: msg.id,
    result: { content: [{ type: 'text', text: String(msg.params.arguments?.message ?? '') }] },
  };
});

await app.listen({ host: HOST, port: listenPort() });
announceReady(app.server, 'bare-fastify');

// A fixture MCP server over WebSocket (subprotocol "mcp", one JSON-RPC message per text
// frame) for federation tests, run as its own process:
//   node libs/testing/fixtures-upstream/ws-server.mjs [port]
// A `ws` server with one SDK v2 McpServer per connection on a minimal Transport; prints
// `READY <port>` once listening. Plain ESM, no build step.
//
// Tools: echo, whoami (the Authorization header of the upgrade request) and fail (a tool
// error); the resource template fixture://ws-items/{id} answers id "1" and a JSON-RPC error
// (-32602) otherwise. Upgrades without the "mcp" subprotocol are refused.
import {
  McpServer,
  ProtocolError,
  ProtocolErrorCode,
  ResourceTemplate,
  fromJsonSchema,
} from '@modelcontextprotocol/server';
import { WebSocketServer } from 'ws';

const HOST = '127.0.0.1';
const port = Number(process.argv[2] ?? process.env.PORT ?? 0);

const object = (properties, required = Object.keys(properties)) =>
  fromJsonSchema({ type: 'object', properties, required });
const text = (value) => ({ content: [{ type: 'text', text: value }] });

function mcpServer(authorization) {
  const server = new McpServer(
    { name: 'fixture-ws', version: '1.0.0' },
    { capabilities: { tools: {}, resources: {} } },
  );
  server.registerTool(
    'echo',
    { description: 'Echoes the message', inputSchema: object({ message: { type: 'string' } }) },
    async ({ message }) => text(message),
  );
  server.registerTool(
    'whoami',
    { description: 'The Authorization header of the upgrade', inputSchema: object({}) },
    async () => text(authorization),
  );
  server.registerTool(
    'fail',
    { description: 'Always throws', inputSchema: object({}) },
    async () => {
      throw new Error('fixture failure');
    },
  );
  server.registerResource(
    'item',
    new ResourceTemplate('fixture://ws-items/{id}', { list: undefined }),
    { mimeType: 'text/plain' },
    async (uri, { id }) => {
      if (id !== '1') {
        throw new ProtocolError(ProtocolErrorCode.InvalidParams, `no item ${id}`);
      }
      return { contents: [{ uri: uri.href, mimeType: 'text/plain', text: 'item 1' }] };
    },
  );
  return server;
}

/** The SDK Transport shape over one accepted socket. */
function socketTransport(socket) {
  const transport = {
    onclose: undefined,
    onerror: undefined,
    onmessage: undefined,
    async start() {},
    send(message) {
      return new Promise((resolve, reject) =>
        socket.send(JSON.stringify(message), (err) => (err ? reject(err) : resolve())),
      );
    },
    async close() {
      socket.close();
    },
  };
  socket.on('message', (data, isBinary) => {
    try {
      if (isBinary) {
        throw new Error('binary frame');
      }
      transport.onmessage?.(JSON.parse(data.toString('utf8')));
    } catch (err) {
      transport.onerror?.(err);
    }
  });
  socket.on('close', () => transport.onclose?.());
  socket.on('error', (err) => transport.onerror?.(err));
  return transport;
}

const wss = new WebSocketServer({
  host: HOST,
  port,
  handleProtocols: (protocols) => (protocols.has('mcp') ? 'mcp' : false),
});
wss.on('connection', (socket, request) => {
  if (socket.protocol !== 'mcp') {
    socket.close(1002, 'subprotocol mcp required');
    return;
  }
  void mcpServer(request.headers.authorization ?? '').connect(socketTransport(socket));
});
wss.on('listening', () => {
  process.stdout.write(`READY ${wss.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));

// WebSocket baseline: the cheapest "MCP-shaped" server on `ws` — parse each
// text frame as JSON and answer a JSON-RPC result that echoes the argument.
// No protocol logic, so it is the ceiling a gateway on the same WebSocket
// library could approach. Same path and subprotocol as Portico (/mcp, "mcp").
import { WebSocketServer } from 'ws';
import { ECHO_TOOL, HOST, announceReady, listenPort } from './common.mjs';

const wss = new WebSocketServer({
  host: HOST,
  port: listenPort(),
  path: '/mcp',
  perMessageDeflate: false,
  handleProtocols: (protocols) => (protocols.has('mcp') ? 'mcp' : false),
});

wss.on('connection', (socket) => {
  socket.on('message', (data, isBinary) => {
    let msg;
    try {
      msg = isBinary ? undefined : JSON.parse(data.toString());
    } catch {
      // answered below as an error
    }
    if (msg?.method !== 'tools/call' || msg.params?.name !== ECHO_TOOL) {
      socket.send(
        JSON.stringify({
          jsonrpc: '2.0',
          id: msg?.id ?? null,
          error: { code: -32601, message: 'Method not found' },
        }),
      );
      return;
    }
    socket.send(
      JSON.stringify({
        jsonrpc: '2.0',
        id: msg.id,
        result: { content: [{ type: 'text', text: String(msg.params.arguments?.message ?? '') }] },
      }),
    );
  });
});

wss.on('listening', () => announceReady(wss, 'bare-ws'));

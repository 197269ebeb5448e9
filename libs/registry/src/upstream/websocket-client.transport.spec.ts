import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { JSONRPCMessage } from '@modelcontextprotocol/client';
import WebSocket, { WebSocketServer } from 'ws';
import { WebSocketClientTransport } from './websocket-client.transport';

const OPTIONS = { handshakeTimeoutMs: 2000, maxPayload: 1 << 20 };

describe(WebSocketClientTransport.name, () => {
  let server: WebSocketServer;
  let url: URL;
  const accepted: { socket: WebSocket; authorization?: string }[] = [];

  beforeEach(async () => {
    accepted.length = 0;
    server = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      handleProtocols: (protocols) => (protocols.has('mcp') ? 'mcp' : false),
    });
    server.on('connection', (socket, request) =>
      accepted.push({ socket, authorization: request.headers.authorization }),
    );
    await once(server, 'listening');
    url = new URL(`ws://127.0.0.1:${(server.address() as AddressInfo).port}/`);
  });
  afterEach(async () => {
    for (const { socket } of accepted) {
      socket.terminate();
    }
    await new Promise((resolve) => server.close(resolve));
  });

  it('sends its headers on the upgrade and exchanges one message per text frame', async () => {
    const sut = new WebSocketClientTransport(url, {
      ...OPTIONS,
      headers: { authorization: 'Bearer abc' },
    });
    const received: JSONRPCMessage[] = [];
    sut.onmessage = (message) => received.push(message);
    await sut.start();
    expect(accepted[0].authorization).toBe('Bearer abc');

    const frame = once(accepted[0].socket, 'message');
    await sut.send({ jsonrpc: '2.0', id: 1, method: 'ping' });
    expect(JSON.parse(String((await frame)[0]))).toEqual({ jsonrpc: '2.0', id: 1, method: 'ping' });

    accepted[0].socket.send(JSON.stringify({ jsonrpc: '2.0', id: 1, result: {} }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(received).toEqual([{ jsonrpc: '2.0', id: 1, result: {} }]);

    const closed = new Promise<void>((resolve) => (sut.onclose = resolve));
    await sut.close();
    await closed;
  });

  it('reports frames that are not JSON-RPC messages as errors', async () => {
    const sut = new WebSocketClientTransport(url, OPTIONS);
    const errors: string[] = [];
    sut.onerror = (err) => errors.push(err.message);
    sut.onmessage = () => errors.push('unexpected message');
    await sut.start();
    accepted[0].socket.send('not json');
    accepted[0].socket.send(Buffer.from('{}'), { binary: true });
    accepted[0].socket.send(JSON.stringify({ hello: 'world' }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(errors).toHaveLength(3);
    expect(errors[0]).toMatch(/^invalid JSON-RPC message/);
    expect(errors[1]).toBe('unexpected binary WebSocket frame');
    expect(errors[2]).toMatch(/^invalid JSON-RPC message/);
    await sut.close();
  });

  it('fails to start when the server refuses the upgrade or the subprotocol', async () => {
    const other = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      // Accepts the upgrade without choosing any subprotocol.
      handleProtocols: () => false,
    });
    await once(other, 'listening');
    try {
      const port = (other.address() as AddressInfo).port;
      await expect(
        new WebSocketClientTransport(new URL(`ws://127.0.0.1:${port}/`), OPTIONS).start(),
      ).rejects.toThrow('Server sent no subprotocol');
    } finally {
      for (const client of other.clients) {
        client.terminate();
      }
      await new Promise((resolve) => other.close(resolve));
    }
    server.options.verifyClient = (_info, done) => done(false, 401);
    await expect(new WebSocketClientTransport(url, OPTIONS).start()).rejects.toThrow('401');
  });
});

import { connect, Socket } from 'node:net';
import { META, StaticCatalog } from '@portico/mcp-protocol';
import WebSocket from 'ws';
import { ConnectionLimiter } from '../apps/gateway/src/mcp/connection-limiter';
import { RunningGateway, startGateway } from './support/gateway';

const ACCEPT = 'application/json, text/event-stream';

/** A tool that holds its request open until the test releases it. */
function gatedCatalog(): { catalog: StaticCatalog; release: () => void } {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const catalog = new StaticCatalog({
    tools: [
      {
        definition: {
          name: 'hold',
          description: 'Waits for the test',
          inputSchema: { type: 'object' },
        },
        call: async () => {
          await gate;
          return { content: [{ type: 'text', text: 'released' }] };
        },
      },
    ],
  });
  return { catalog, release };
}

/** Opens a raw TCP connection, writes `data`, resolves with what the server sent and when it closed. */
function rawExchange(port: number, data: string): Promise<{ text: string; elapsedMs: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket: Socket = connect(port, '127.0.0.1', () => socket.write(data));
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('close', () => resolve({ text, elapsedMs: Date.now() - started }));
    socket.on('error', reject);
    setTimeout(() => {
      socket.destroy();
      reject(new Error(`socket still open after 10 s; received: ${text}`));
    }, 10_000).unref();
  });
}

const portOf = (gateway: RunningGateway) => Number(new URL(gateway.baseUrl).port);

describe('slow-client defences', () => {
  const gateways: RunningGateway[] = [];
  const start = async (env: Record<string, string>, catalog?: StaticCatalog) => {
    const gateway = await startGateway(env, catalog ? { catalog } : {});
    gateways.push(gateway);
    return gateway;
  };

  afterEach(async () => {
    for (const gateway of gateways.splice(0)) {
      await gateway.close();
    }
  });

  it('answers 408 and closes a client that never finishes its headers', async () => {
    const gateway = await start({
      HTTP_HEADERS_TIMEOUT_MS: '400',
      HTTP_REQUEST_TIMEOUT_MS: '5000',
    });
    const result = await rawExchange(portOf(gateway), 'POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    expect(result.text).toMatch(/^HTTP\/1\.1 408/);
  });

  it('answers 408 and closes a client that never finishes its body', async () => {
    const gateway = await start({ HTTP_HEADERS_TIMEOUT_MS: '300', HTTP_REQUEST_TIMEOUT_MS: '600' });
    const result = await rawExchange(
      portOf(gateway),
      'POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
        `Accept: ${ACCEPT}\r\nContent-Length: 100\r\n\r\n{"jsonrpc":`,
    );
    expect(result.text).toMatch(/^HTTP\/1\.1 408/);
  });

  it('closes an idle keep-alive connection', async () => {
    const gateway = await start({ HTTP_KEEPALIVE_TIMEOUT_MS: '300' });
    const result = await rawExchange(
      portOf(gateway),
      'GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n',
    );
    expect(result.text).toMatch(/^HTTP\/1\.1 200/);
    expect(result.elapsedMs).toBeLessThan(5000); // closed by the server, not by the test's timer
  });

  it('refuses sockets beyond HTTP_MAX_CONNECTIONS', async () => {
    const gateway = await start({ HTTP_MAX_CONNECTIONS: '2' });
    const port = portOf(gateway);
    const held: Socket[] = [];
    for (let i = 0; i < 2; i++) {
      held.push(
        await new Promise<Socket>((resolve) => {
          const socket = connect(port, '127.0.0.1', () => resolve(socket));
        }),
      );
    }
    try {
      const third = await rawExchange(port, 'GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      expect(third.text).toBe('');
    } finally {
      held.forEach((s) => s.destroy());
    }
  });

  it('caps open requests and streams per session with 429', async () => {
    const { catalog, release } = gatedCatalog();
    const gateway = await start({ MAX_STREAMS_PER_SESSION: '2' }, catalog);
    const init = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: ACCEPT },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 0,
        method: 'initialize',
        params: {
          protocolVersion: '2025-11-25',
          capabilities: {},
          clientInfo: { name: 't', version: '1' },
        },
      }),
    });
    const sessionId = init.headers.get('mcp-session-id')!;
    const headers = {
      'content-type': 'application/json',
      accept: ACCEPT,
      'mcp-session-id': sessionId,
    };
    await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers,
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    });
    const call = (id: number) =>
      fetch(gateway.mcpUrl, {
        method: 'POST',
        headers,
        body: JSON.stringify({
          jsonrpc: '2.0',
          id,
          method: 'tools/call',
          params: { name: 'hold' },
        }),
      });
    const first = call(1);
    const second = call(2);
    const limiter = gateway.app.get(ConnectionLimiter);
    await waitUntil(() => Promise.resolve(limiter.openForSession(sessionId) === 2));
    const third = await call(3);
    expect(third.status).toBe(429);
    expect(third.headers.get('retry-after')).toBe('1');
    expect(((await third.json()) as { error: { message: string } }).error.message).toMatch(
      /Too many/,
    );
    release();
    expect((await first).status).toBe(200);
    expect((await second).status).toBe(200);
    expect((await call(4)).status).toBe(200);
  });

  it('caps WebSocket connections and streams per client address', async () => {
    const gateway = await start({ MAX_STREAMS_PER_CLIENT: '2' });
    const url = gateway.mcpUrl.replace(/^http/, 'ws');
    const open = () =>
      new Promise<WebSocket>((resolve, reject) => {
        const socket = new WebSocket(url, 'mcp');
        socket.once('open', () => resolve(socket));
        socket.once('error', reject);
      });
    const a = await open();
    const b = await open();
    const c = await open();
    const closed = await new Promise<number>((resolve) => c.once('close', (code) => resolve(code)));
    expect(closed).toBe(1013);
    // The address is at its limit for HTTP streams too.
    const response = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: ACCEPT,
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/list',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/list',
        params: { _meta: { [META.protocolVersion]: '2026-07-28', [META.clientCapabilities]: {} } },
      }),
    });
    expect(response.status).toBe(429);
    a.close();
    b.close();
    await waitUntil(async () => (await fetch(`${gateway.baseUrl}/health/live`)).ok);
  });
});

async function waitUntil(test: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await test())) {
    if (Date.now() > deadline) {
      throw new Error('condition not met in time');
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

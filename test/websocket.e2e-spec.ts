import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { WebSocketClientTransport } from '@modelcontextprotocol/sdk/client/websocket.js';
import { META, StaticCatalog } from '@portico/mcp-protocol';
import { echoTool } from '@portico/testing';
import WebSocket from 'ws';
import { McpWebSocketGateway } from '../apps/gateway/src/mcp/websocket/mcp-ws.gateway';
import { RunningGateway, startGateway } from './support/gateway';

const modernMeta = { [META.protocolVersion]: '2026-07-28', [META.clientCapabilities]: {} };

interface Observed {
  cancelled: boolean;
}

function catalog(observed: Observed): StaticCatalog {
  return new StaticCatalog({
    tools: [
      echoTool,
      {
        definition: {
          name: 'progress_then_wait',
          description: 'Reports progress, then waits until cancelled',
          inputSchema: { type: 'object' },
        },
        call: async (_args, ctx) => {
          await ctx.progress(1, 2, 'working');
          await new Promise<void>((resolve) =>
            ctx.signal.addEventListener('abort', () => {
              observed.cancelled = true;
              resolve();
            }),
          );
          return { content: [] };
        },
      },
      {
        definition: {
          name: 'ask_name',
          description: 'Asks the user for a name',
          inputSchema: { type: 'object' },
        },
        call: async (_args, ctx) => {
          const answer = await ctx.elicit(
            {
              message: 'Name?',
              requestedSchema: { type: 'object', properties: { name: { type: 'string' } } },
            },
            { key: 'name' },
          );
          return { content: [{ type: 'text', text: `hello ${String(answer.content?.name)}` }] };
        },
      },
    ],
  });
}

/** A raw client: sends frames, collects parsed messages, resolves waits on predicates. */
class RawClient {
  readonly messages: Record<string, unknown>[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: {
    test: (m: Record<string, unknown>) => boolean;
    resolve: (m: Record<string, unknown>) => void;
  }[] = [];

  constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const message = JSON.parse(rawText(data)) as Record<string, unknown>;
      this.messages.push(message);
      this.waiters = this.waiters.filter((w) =>
        w.test(message) ? (w.resolve(message), false) : true,
      );
    });
    this.closed = new Promise((resolve) =>
      socket.on('close', (code, reason) => resolve({ code, reason: String(reason) })),
    );
  }

  static async open(
    url: string,
    options: WebSocket.ClientOptions = {},
    protocol: string | undefined = 'mcp',
  ) {
    const socket = new WebSocket(url, protocol ? [protocol] : [], options);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return new RawClient(socket);
  }

  send(value: unknown): void {
    this.socket.send(typeof value === 'string' ? value : JSON.stringify(value));
  }

  next(test: (m: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    const found = this.messages.find(test);
    if (found) {
      return Promise.resolve(found);
    }
    return new Promise((resolve) => this.waiters.push({ test, resolve }));
  }

  response(id: unknown) {
    return this.next((m) => m.id === id && ('result' in m || 'error' in m)) as Promise<{
      result?: Record<string, unknown>;
      error?: { code: number; message: string };
    }>;
  }
}

describe('WebSocket transport', () => {
  let gateway: RunningGateway;
  let observed: Observed;
  let wsUrl: string;
  const clients: RawClient[] = [];

  beforeEach(async () => {
    observed = { cancelled: false };
    gateway = await startGateway(
      { MAX_BODY_BYTES: '65536', WS_PING_INTERVAL_MS: '1000', WS_MAX_BUFFERED_BYTES: '65536' },
      { catalog: catalog(observed) },
    );
    wsUrl = gateway.mcpUrl.replace(/^http/, 'ws');
  });

  afterEach(async () => {
    for (const client of clients.splice(0)) {
      client.socket.terminate();
    }
    await gateway.close();
  });

  const open = async (options?: WebSocket.ClientOptions, protocol?: string) => {
    const client = await RawClient.open(wsUrl, options, protocol);
    clients.push(client);
    return client;
  };

  it('serves the SDK v1 WebSocket client in the 2025 era', async () => {
    const globals = globalThis as { WebSocket?: unknown };
    const previous = globals.WebSocket;
    globals.WebSocket = WebSocket; // Node 20 has no global WebSocket; the SDK expects one
    const client = new Client({ name: 'e2e-ws', version: '1.0.0' });
    try {
      await client.connect(new WebSocketClientTransport(new URL(wsUrl)));
      expect(client.getServerVersion()?.name).toBe('portico');
      const tools = await client.listTools();
      expect(tools.tools.map((t) => t.name)).toContain('echo');
      const result = await client.callTool({ name: 'echo', arguments: { message: 'over ws' } });
      expect(result.content).toEqual([{ type: 'text', text: 'over ws' }]);
    } finally {
      await client.close();
      globals.WebSocket = previous;
    }
  });

  it('negotiates the mcp subprotocol', async () => {
    const client = await open();
    expect(client.socket.protocol).toBe('mcp');
  });

  it('serves 2026-07-28 requests with progress and input_required, and cancels on notifications/cancelled', async () => {
    const client = await open();
    client.send({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'echo', arguments: { message: 'm' }, _meta: modernMeta },
    });
    expect((await client.response(1)).result?.resultType).toBe('complete');

    const caps = { ...modernMeta, [META.clientCapabilities]: { elicitation: {} } };
    client.send({
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/call',
      params: { name: 'ask_name', _meta: caps },
    });
    const first = (await client.response(2)).result!;
    expect(first.resultType).toBe('input_required');
    client.send({
      jsonrpc: '2.0',
      id: 3,
      method: 'tools/call',
      params: {
        name: 'ask_name',
        requestState: first.requestState,
        inputResponses: { name: { action: 'accept', content: { name: 'Ada' } } },
        _meta: caps,
      },
    });
    expect((await client.response(3)).result?.content).toEqual([
      { type: 'text', text: 'hello Ada' },
    ]);

    client.send({
      jsonrpc: '2.0',
      id: 4,
      method: 'tools/call',
      params: { name: 'progress_then_wait', _meta: { ...modernMeta, progressToken: 'p4' } },
    });
    const progress = await client.next((m) => m.method === 'notifications/progress');
    expect(progress.params).toMatchObject({ progressToken: 'p4', progress: 1 });
    client.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 4 } });
    const deadline = Date.now() + 5000;
    while (!observed.cancelled && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(observed.cancelled).toBe(true);
    // The cancelled request gets no response; the connection still serves.
    client.send({
      jsonrpc: '2.0',
      id: 5,
      method: 'server/discover',
      params: { _meta: modernMeta },
    });
    await client.response(5);
    expect(client.messages.some((m) => m.id === 4)).toBe(false);
  });

  it('answers malformed frames with JSON-RPC errors and keeps the connection', async () => {
    const client = await open();
    client.send('{not json');
    expect((await client.next((m) => 'error' in m)).error).toMatchObject({ code: -32700 });
    client.send({ jsonrpc: '2.0', id: null, method: 'tools/list' });
    await client.next((m) => (m.error as { code?: number } | undefined)?.code === -32600);
    client.send({ jsonrpc: '2.0', id: 9, method: 'tools/list', params: { _meta: modernMeta } });
    expect((await client.response(9)).result?.tools).toBeDefined();
  });

  it('closes with 1003 on a binary frame', async () => {
    const client = await open();
    client.socket.send(Buffer.from([1, 2, 3]), { binary: true });
    expect((await client.closed).code).toBe(1003);
  });

  it('closes with 1009 on a frame over the size limit', async () => {
    const client = await open();
    client.send({ jsonrpc: '2.0', id: 1, method: 'ping', params: { pad: 'x'.repeat(70_000) } });
    expect((await client.closed).code).toBe(1009);
  });

  it('closes with 1008 for an untrusted Origin', async () => {
    const client = await open({ headers: { origin: 'http://evil.example.com' } });
    const closed = await client.closed;
    expect(closed.code).toBe(1008);
    expect(closed.reason).toMatch(/Origin/);
  });

  it('disconnects a peer that stops answering pings', async () => {
    const client = await open({ autoPong: false });
    const closed = await client.closed;
    expect(closed.code).toBe(1006); // terminated: no close frame
  });

  it('disconnects a reader too slow to keep up instead of buffering without bound', async () => {
    const client = await open();
    const raw = (client.socket as unknown as { _socket: { pause(): void; resume(): void } })
      ._socket;
    raw.pause(); // the client stops reading
    const big = 'y'.repeat(60_000);
    for (let i = 0; i < 400; i++) {
      client.send({
        jsonrpc: '2.0',
        id: i,
        method: 'tools/call',
        params: { name: 'echo', arguments: { message: big }, _meta: modernMeta },
      });
    }
    const closedByServer = await waitFor(
      () => gateway.app.get(McpWebSocketGateway).size === 0,
      20_000,
    );
    expect(closedByServer).toBe(true);
    raw.resume();
    // Terminated after the 1013 close frame it could not read, or the frame itself.
    expect([1006, 1013]).toContain((await client.closed).code);
  });
});

async function waitFor(test: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!test() && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 25));
  }
  return test();
}

function rawText(data: WebSocket.RawData): string {
  return Array.isArray(data)
    ? Buffer.concat(data).toString('utf8')
    : Buffer.from(data as ArrayBuffer).toString('utf8');
}

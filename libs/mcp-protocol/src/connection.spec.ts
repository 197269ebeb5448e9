import { StaticCatalog } from './catalog';
import { META } from './constants';
import { McpConnection, PARSE_ERROR } from './connection';
import { McpEngine } from './engine';
import type { JsonObject, JsonRpcMessage, JsonRpcResponse } from './jsonrpc';

const modernMeta = { [META.protocolVersion]: '2026-07-28', [META.clientCapabilities]: {} };

function setup() {
  const observed = { cancelled: 0, calls: 0 };
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const catalog = new StaticCatalog({
    tools: [
      {
        definition: {
          name: 'wait',
          description: 'Waits for the gate',
          inputSchema: { type: 'object' },
        },
        call: async (_args, ctx) => {
          observed.calls++;
          ctx.signal.addEventListener('abort', () => observed.cancelled++);
          await gate;
          return { content: [{ type: 'text', text: 'done' }] };
        },
      },
    ],
  });
  const engine = new McpEngine({
    serverInfo: { name: 'spec', version: '1' },
    catalog,
    secret: 'connection-spec-secret-connection',
  });
  const sent: (JsonRpcMessage | JsonRpcResponse[])[] = [];
  const connection = new McpConnection(engine, { send: (m) => void sent.push(m) });
  return { connection, sent, observed, release };
}

const byId = (sent: unknown[], id: unknown) =>
  sent.find((m) => (m as { id?: unknown }).id === id) as JsonObject | undefined;

describe(McpConnection.name, () => {
  it('answers a parse error and an invalid message, and keeps serving', async () => {
    const { connection, sent } = setup();
    await connection.receive(PARSE_ERROR);
    await connection.receive({ jsonrpc: '2.0', id: 1 });
    await connection.receive({
      jsonrpc: '2.0',
      id: 2,
      method: 'server/discover',
      params: { _meta: modernMeta },
    });
    expect((sent[0] as { error: { code: number } }).error.code).toBe(-32700);
    expect((sent[1] as { error: { code: number } }).error.code).toBe(-32600);
    expect((byId(sent, 2)?.result as JsonObject).resultType).toBe('complete');
  });

  it('serves modern requests without a handshake and refuses bare requests', async () => {
    const { connection, sent } = setup();
    await connection.receive({ jsonrpc: '2.0', id: 1, method: 'tools/list' });
    expect((byId(sent, 1)?.error as JsonObject).code).toBe(-32600);
    await connection.receive({
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/list',
      params: { _meta: modernMeta },
    });
    expect(byId(sent, 2)?.result).toBeDefined();
  });

  it('cancels a modern request on notifications/cancelled and sends no response', async () => {
    const { connection, sent, observed } = setup();
    const call = connection.receive({
      jsonrpc: '2.0',
      id: 'c',
      method: 'tools/call',
      params: { name: 'wait', _meta: modernMeta },
    });
    await new Promise((r) => setImmediate(r));
    expect(connection.inFlight).toBe(1);
    await connection.receive({
      jsonrpc: '2.0',
      method: 'notifications/cancelled',
      params: { requestId: 'c' },
    });
    await call;
    expect(observed.cancelled).toBe(1);
    expect(byId(sent, 'c')).toBeUndefined();
    expect(connection.inFlight).toBe(0);
  });

  it('answers a duplicate in-flight id with an error instead of hanging', async () => {
    const { connection, sent, release } = setup();
    const request = {
      jsonrpc: '2.0',
      id: 7,
      method: 'tools/call',
      params: { name: 'wait', _meta: modernMeta },
    };
    const first = connection.receive(request);
    await new Promise((r) => setImmediate(r));
    await connection.receive(request);
    expect((sent[0] as { error: { message: string } }).error.message).toMatch(/already in flight/);
    release();
    await first;
    expect((byId(sent.slice(1), 7)?.result as JsonObject).content).toEqual([
      { type: 'text', text: 'done' },
    ]);
  });

  it('switches to the 2025 era on initialize, for the rest of the connection', async () => {
    const { connection, sent } = setup();
    await connection.receive({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion: '2025-03-26',
        capabilities: {},
        clientInfo: { name: 'c', version: '1' },
      },
    });
    expect((byId(sent, 1)?.result as JsonObject).protocolVersion).toBe('2025-03-26');
    await connection.receive({ jsonrpc: '2.0', method: 'notifications/initialized' });
    await connection.receive({ jsonrpc: '2.0', id: 2, method: 'ping' });
    expect(byId(sent, 2)?.result).toEqual({});
    await connection.receive({ jsonrpc: '2.0', id: 3, method: 'initialize', params: {} });
    expect((byId(sent, 3)?.error as JsonObject).code).toBe(-32600);
    // 2025-03-26 allows batches.
    await connection.receive([
      { jsonrpc: '2.0', id: 4, method: 'ping' },
      { jsonrpc: '2.0', id: 5, method: 'tools/list' },
    ]);
    const batch = sent[sent.length - 1] as JsonRpcResponse[];
    expect(batch.map((r) => r.id)).toEqual([4, 5]);
  });

  it('refuses batches outside 2025-03-26', async () => {
    const { connection, sent } = setup();
    await connection.receive([{ jsonrpc: '2.0', id: 1, method: 'ping' }]);
    expect((sent[0] as { error: { code: number } }).error.code).toBe(-32600);
  });

  it('drains in-flight calls, then cancels what is left on close', async () => {
    const { connection, observed, release } = setup();
    void connection.receive({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'wait', _meta: modernMeta },
    });
    await new Promise((r) => setImmediate(r));
    expect(await connection.drain(20)).toBe(false);
    connection.close();
    expect(observed.cancelled).toBe(1);
    release();
  });
});

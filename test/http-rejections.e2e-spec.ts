import { META } from '@portico/mcp-protocol';
import { RunningGateway, startGateway } from './support/gateway';

const ACCEPT_BOTH = 'application/json, text/event-stream';
const MAX_BODY = 4096;

interface Case {
  name: string;
  method?: 'POST' | 'GET' | 'DELETE';
  headers?: Record<string, string>;
  /** A string is sent as is; anything else as JSON. */
  body?: unknown;
  /** Use the session opened in beforeAll. */
  session?: boolean;
  status: number;
  /** Expected JSON-RPC error code in the body (when the rejection has a body). */
  code?: number;
  id?: string | number | null;
}

function modernBody(
  method: string,
  params: Record<string, unknown> = {},
  meta?: Record<string, unknown>,
) {
  return {
    jsonrpc: '2.0',
    id: 'm1',
    method,
    params: {
      ...params,
      _meta: meta ?? {
        [META.protocolVersion]: '2026-07-28',
        [META.clientCapabilities]: {},
      },
    },
  };
}

const modernHeaders = (method: string, name?: string): Record<string, string> => ({
  'mcp-protocol-version': '2026-07-28',
  'mcp-method': method,
  ...(name ? { 'mcp-name': name } : {}),
});

const cases: Case[] = [
  // Transport-level checks, before any protocol work.
  {
    name: 'an untrusted Origin',
    headers: { origin: 'http://evil.example.com' },
    body: { jsonrpc: '2.0', id: 1, method: 'ping' },
    status: 403,
    code: -32600,
  },
  {
    name: 'a Host that is not served (DNS rebinding)',
    headers: { host: 'evil.example.com' },
    body: { jsonrpc: '2.0', id: 1, method: 'ping' },
    status: 403,
  },
  {
    name: 'an Accept without text/event-stream',
    headers: { accept: 'application/json' },
    body: { jsonrpc: '2.0', id: 1, method: 'ping' },
    status: 406,
    code: -32600,
  },
  {
    name: 'a Content-Type that is not JSON',
    headers: { 'content-type': 'text/plain' },
    body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
    status: 415,
    code: -32600,
  },
  {
    name: 'a body over the size limit',
    body: { jsonrpc: '2.0', id: 1, method: 'ping', params: { pad: 'x'.repeat(MAX_BODY) } },
    status: 413,
    code: -32600,
  },
  { name: 'malformed JSON', body: '{"jsonrpc":', status: 400, code: -32700, id: null },
  { name: 'an empty JSON body', body: 'null', status: 400, code: -32600 },
  { name: 'a non-JSON-RPC object', body: { hello: 'world' }, status: 400, code: -32600, id: null },
  {
    name: 'a null request id',
    body: { jsonrpc: '2.0', id: null, method: 'tools/list' },
    status: 400,
    code: -32600,
  },
  {
    name: 'a wrong jsonrpc version',
    body: { jsonrpc: '1.0', id: 3, method: 'tools/list' },
    status: 400,
    code: -32600,
    id: 3,
  },
  // 2025 era: sessions.
  {
    name: 'a 2025 request without Mcp-Session-Id',
    body: { jsonrpc: '2.0', id: 1, method: 'tools/list' },
    status: 400,
    code: -32600,
  },
  {
    name: 'an unknown session',
    headers: { 'mcp-session-id': 'no-such-session' },
    body: { jsonrpc: '2.0', id: 1, method: 'tools/list' },
    status: 404,
  },
  {
    name: 'an unsupported MCP-Protocol-Version on a session',
    session: true,
    headers: { 'mcp-protocol-version': '2025-01-01' },
    body: { jsonrpc: '2.0', id: 1, method: 'tools/list' },
    status: 400,
  },
  {
    name: 'a batch on a 2025-11-25 session',
    session: true,
    headers: { 'mcp-protocol-version': '2025-11-25' },
    body: [{ jsonrpc: '2.0', id: 1, method: 'ping' }],
    status: 400,
    code: -32600,
  },
  {
    name: 'a malformed initialize',
    body: { jsonrpc: '2.0', id: 9, method: 'initialize', params: {} },
    status: 400,
    code: -32602,
    id: 9,
  },
  {
    name: 'GET without Accept: text/event-stream',
    method: 'GET',
    headers: { accept: 'application/json' },
    status: 406,
  },
  {
    name: 'GET without a session',
    method: 'GET',
    headers: { accept: 'text/event-stream' },
    status: 400,
  },
  {
    name: 'GET with a Last-Event-ID of another session',
    method: 'GET',
    session: true,
    headers: { accept: 'text/event-stream', 'last-event-id': 'someone-else.1:1' },
    status: 400,
  },
  { name: 'DELETE without a session', method: 'DELETE', status: 400 },
  {
    name: 'DELETE of an unknown session',
    method: 'DELETE',
    headers: { 'mcp-session-id': 'nope' },
    status: 404,
  },
  // 2026-07-28: stateless requests, checked in the spec's order.
  {
    name: 'a modern request without _meta keys',
    headers: modernHeaders('tools/list'),
    body: { jsonrpc: '2.0', id: 'm1', method: 'tools/list', params: {} },
    status: 400,
    code: -32602,
    id: 'm1',
  },
  {
    name: 'a modern request without clientCapabilities',
    headers: modernHeaders('tools/list'),
    body: modernBody('tools/list', {}, { [META.protocolVersion]: '2026-07-28' }),
    status: 400,
    code: -32602,
    id: 'm1',
  },
  {
    name: 'a modern request without MCP-Protocol-Version',
    headers: { 'mcp-method': 'tools/list' },
    body: modernBody('tools/list'),
    status: 400,
    code: -32020,
    id: 'm1',
  },
  {
    name: 'an MCP-Protocol-Version that disagrees with _meta',
    headers: { ...modernHeaders('tools/list'), 'mcp-protocol-version': '2099-01-01' },
    body: modernBody('tools/list'),
    status: 400,
    code: -32020,
  },
  {
    name: 'an unsupported version named in both places',
    headers: { ...modernHeaders('tools/list'), 'mcp-protocol-version': 'v999.0.0' },
    body: modernBody(
      'tools/list',
      {},
      { [META.protocolVersion]: 'v999.0.0', [META.clientCapabilities]: {} },
    ),
    status: 400,
    code: -32022,
  },
  {
    name: 'a missing Mcp-Method',
    headers: { 'mcp-protocol-version': '2026-07-28' },
    body: modernBody('tools/list'),
    status: 400,
    code: -32020,
  },
  {
    name: 'an Mcp-Method that disagrees with the body',
    headers: modernHeaders('prompts/list'),
    body: modernBody('tools/list'),
    status: 400,
    code: -32020,
  },
  {
    name: 'a missing Mcp-Name on tools/call',
    headers: modernHeaders('tools/call'),
    body: modernBody('tools/call', { name: 'echo', arguments: { message: 'x' } }),
    status: 400,
    code: -32020,
  },
  {
    name: 'an Mcp-Name that disagrees with the body',
    headers: modernHeaders('tools/call', 'other'),
    body: modernBody('tools/call', { name: 'echo', arguments: { message: 'x' } }),
    status: 400,
    code: -32020,
  },
  {
    name: 'initialize on the modern wire (a removed method)',
    headers: modernHeaders('initialize'),
    body: modernBody('initialize'),
    status: 404,
    code: -32601,
    id: 'm1',
  },
  {
    name: 'an unknown modern method',
    headers: modernHeaders('unknown/method'),
    body: modernBody('unknown/method'),
    status: 404,
    code: -32601,
  },
  {
    name: 'ping on the modern wire (a removed method)',
    headers: modernHeaders('ping'),
    body: modernBody('ping'),
    status: 404,
    code: -32601,
  },
  {
    name: 'a modern tools/call that needs a capability the client lacks',
    headers: modernHeaders('tools/call', 'needs_sampling'),
    body: modernBody('tools/call', { name: 'needs_sampling' }),
    status: 400,
    code: -32021,
  },
  {
    name: 'GET from a modern client',
    method: 'GET',
    headers: { 'mcp-protocol-version': '2026-07-28' },
    status: 405,
  },
  {
    name: 'DELETE from a modern client',
    method: 'DELETE',
    headers: { 'mcp-protocol-version': '2026-07-28' },
    status: 405,
  },
];

describe('HTTP rejections on the MCP endpoint', () => {
  let gateway: RunningGateway;
  let sessionId: string;

  beforeAll(async () => {
    const { StaticCatalog } = await import('@portico/mcp-protocol');
    const { echoTool } = await import('@portico/testing');
    gateway = await startGateway(
      { MAX_BODY_BYTES: String(MAX_BODY) },
      {
        catalog: new StaticCatalog({
          tools: [
            echoTool,
            {
              definition: {
                name: 'needs_sampling',
                description: 'Samples',
                inputSchema: { type: 'object' },
              },
              call: async (_args, ctx) => {
                await ctx.createMessage({ messages: [], maxTokens: 1 });
                return { content: [] };
              },
            },
          ],
        }),
      },
    );
    const init = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: ACCEPT_BOTH },
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
    expect(init.status).toBe(200);
    sessionId = init.headers.get('mcp-session-id')!;
    expect(sessionId).toMatch(/^[\x21-\x7e]{16,}$/);
  });

  afterAll(async () => {
    await gateway.close();
  });

  it.each(cases.map((c) => [c.name, c] as const))('rejects %s', async (_name, c) => {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: ACCEPT_BOTH,
      ...(c.session ? { 'mcp-session-id': sessionId } : {}),
      ...c.headers,
    };
    const response = await rawRequest(gateway.baseUrl, c.method ?? 'POST', headers, c.body);
    expect(response.status).toBe(c.status);
    if (c.code !== undefined) {
      expect(response.headers['content-type']).toMatch(/^application\/json/);
      const body = JSON.parse(response.body);
      expect(body.jsonrpc).toBe('2.0');
      expect(body.error.code).toBe(c.code);
      expect(typeof body.error.message).toBe('string');
      expect(body.error.message).not.toMatch(/\n\s+at /); // never a stack trace
      if (c.id !== undefined) {
        expect(body.id).toBe(c.id);
      }
    }
  });

  it('still serves normal requests after every rejection', async () => {
    const response = await rawRequest(
      gateway.baseUrl,
      'POST',
      {
        'content-type': 'application/json',
        accept: ACCEPT_BOTH,
        ...modernHeaders('tools/call', 'echo'),
      },
      modernBody('tools/call', { name: 'echo', arguments: { message: 'still here' } }),
    );
    expect(response.status).toBe(200);
    expect(JSON.parse(response.body).result.content[0].text).toBe('still here');
  });

  it('ends a session on DELETE; the id is then unknown', async () => {
    const headers = {
      'content-type': 'application/json',
      accept: ACCEPT_BOTH,
      'mcp-session-id': sessionId,
    };
    expect((await rawRequest(gateway.baseUrl, 'DELETE', headers)).status).toBe(200);
    const after = await rawRequest(gateway.baseUrl, 'POST', headers, {
      jsonrpc: '2.0',
      id: 1,
      method: 'ping',
    });
    expect(after.status).toBe(404);
  });
});

/**
 * A request over node:http so that Host can be forged (fetch forbids setting it).
 */
async function rawRequest(
  baseUrl: string,
  method: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const http = await import('node:http');
  const url = new URL(`${baseUrl}/mcp`);
  const payload =
    body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method,
        headers: {
          ...(payload ? { 'content-length': Buffer.byteLength(payload) } : {}),
          ...headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers as Record<string, string>,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      },
    );
    req.on('error', reject);
    if (payload) {
      req.write(payload);
    }
    req.end();
  });
}

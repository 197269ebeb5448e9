/*
 * Tenant routes of the legacy HTTP+SSE transport (`/mcp/{tenant}/sse` + `/mcp/{tenant}/messages`)
 * and of the WebSocket transport (`ws://host/mcp/{tenant}`), with the access rules of Streamable
 * HTTP: 401 with a WWW-Authenticate challenge, 404 for an unknown tenant, 403 for a suspended
 * one, tenant isolation of catalogs, and (SSE) messages accepted only from the principal that
 * opened the stream. The anonymous endpoints (`/mcp/sse`, `ws://host/mcp`) exist only while a
 * fixture catalog is configured.
 */
import type { IncomingMessage } from 'node:http';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import type { TenantEntity } from '@portico/persistence';
import { ApiKeyService } from '@portico/auth';
import { TenantService } from '@portico/tenancy';
import WebSocket from 'ws';
import { LegacySseTransport } from '../apps/gateway/src/mcp/legacy-sse.transport';
import { RunningGateway, startGateway } from './support/gateway';
import { createApiKey, seedTenant } from './support/tenants';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const INITIALIZED = { jsonrpc: '2.0', method: 'notifications/initialized' };
const SIMPLE_TEXT = 'This is a simple text response for testing.';
const LOG_LEVEL = process.env.E2E_LOG ?? 'silent';

function bearer(token: string | undefined): Record<string, string> {
  return token === undefined ? {} : { authorization: `Bearer ${token}` };
}

function initialize(id: number): Json {
  return {
    jsonrpc: '2.0',
    id,
    method: 'initialize',
    params: {
      protocolVersion: '2025-06-18',
      capabilities: {},
      clientInfo: { name: 'e2e-tenant-transports', version: '1' },
    },
  };
}

/** A raw SSE stream: the endpoint it named, and its `message` events as they arrive. */
class RawSse {
  readonly messages: Json[] = [];
  private buffer = '';
  private waiters: { test: (m: Json) => boolean; resolve: (m: Json) => void }[] = [];

  private constructor(
    readonly endpoint: string,
    private readonly controller: AbortController,
  ) {}

  static async open(url: string, headers: Record<string, string> = {}): Promise<RawSse> {
    const controller = new AbortController();
    const response = await fetch(url, {
      headers: { accept: 'text/event-stream', ...headers },
      signal: controller.signal,
    });
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!text.includes('\n\n')) {
      text += decoder.decode((await reader.read()).value, { stream: true });
    }
    const endpoint = /^event: endpoint\ndata: (\S+)\n\n/.exec(text)![1];
    const sse = new RawSse(endpoint, controller);
    sse.feed(text.slice(text.indexOf('\n\n') + 2));
    void (async () => {
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) {
            return;
          }
          sse.feed(decoder.decode(value, { stream: true }));
        }
      } catch {
        // aborted
      }
    })();
    return sse;
  }

  next(test: (m: Json) => boolean): Promise<Json> {
    const found = this.messages.find(test);
    if (found) {
      return Promise.resolve(found);
    }
    return new Promise((resolve) => this.waiters.push({ test, resolve }));
  }

  response(id: number): Promise<Json> {
    return this.next((m) => m.id === id && ('result' in m || 'error' in m));
  }

  close(): void {
    this.controller.abort();
  }

  private feed(chunk: string): void {
    this.buffer += chunk;
    let end: number;
    while ((end = this.buffer.indexOf('\n\n')) >= 0) {
      const event = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const data = event
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).trim())
        .join('\n');
      if (!/^event: (?!message)/m.test(event) && data !== '') {
        const message = JSON.parse(data) as Json;
        this.messages.push(message);
        this.waiters = this.waiters.filter((w) =>
          w.test(message) ? (w.resolve(message), false) : true,
        );
      }
    }
  }
}

/** A raw WebSocket client (subprotocol mcp) with request helpers. */
class RawWs {
  readonly messages: Json[] = [];
  private waiters: { test: (m: Json) => boolean; resolve: (m: Json) => void }[] = [];

  constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const message = JSON.parse((data as Buffer).toString('utf8')) as Json;
      this.messages.push(message);
      this.waiters = this.waiters.filter((w) =>
        w.test(message) ? (w.resolve(message), false) : true,
      );
    });
  }

  send(value: Json): void {
    this.socket.send(JSON.stringify(value));
  }

  response(id: number): Promise<Json> {
    const test = (m: Json) => m.id === id && ('result' in m || 'error' in m);
    const found = this.messages.find(test);
    if (found) {
      return Promise.resolve(found);
    }
    return new Promise((resolve) => this.waiters.push({ test, resolve }));
  }

  async request(id: number, method: string, params: Json = {}): Promise<Json> {
    this.send({ jsonrpc: '2.0', id, method, params });
    return this.response(id);
  }
}

interface Upgraded {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
  client?: RawWs;
}

/** Attempts an upgrade: the open client, or the HTTP response that refused it. */
function upgrade(url: string, headers: Record<string, string> = {}): Promise<Upgraded> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, ['mcp'], { headers });
    socket.once('open', () =>
      resolve({ status: 101, headers: {}, body: '', client: new RawWs(socket) }),
    );
    socket.once('unexpected-response', (_req, res: IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        socket.terminate();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
    socket.once('error', (err) => reject(err));
  });
}

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('tenant routes of the HTTP+SSE and WebSocket transports', () => {
  let gateway: RunningGateway;
  let wsBase: string;
  let a: { tenant: TenantEntity; apiKey: string };
  let b: { tenant: TenantEntity; apiKey: string };
  let aSecondKey: string;
  const sockets: WebSocket[] = [];
  const streams: RawSse[] = [];

  beforeAll(async () => {
    gateway = await startGateway({ LOG_LEVEL });
    wsBase = gateway.mcpUrl.replace(/^http/, 'ws');
    a = await seedTenant(gateway.app, { slug: 'tenant-a', fixtures: ['conformance'] });
    b = await seedTenant(gateway.app, { slug: 'tenant-b', fixtures: ['echo'] });
    aSecondKey = (await createApiKey(gateway.app, a.tenant.id, { name: 'second' })).secret;
    const frozen = await seedTenant(gateway.app, { slug: 'frozen', fixtures: ['echo'] });
    await gateway.app.get(TenantService).update(frozen.tenant, { status: 'suspended' });
  });

  afterEach(() => {
    for (const socket of sockets.splice(0)) {
      socket.terminate();
    }
    for (const stream of streams.splice(0)) {
      stream.close();
    }
  });

  afterAll(async () => {
    await gateway?.close();
  });

  const openSse = async (slug: string, headers: Record<string, string>) => {
    const stream = await RawSse.open(`${gateway.mcpUrl}/${slug}/sse`, headers);
    streams.push(stream);
    return stream;
  };

  const postMessage = (endpoint: string, body: Json, headers: Record<string, string> = {}) =>
    fetch(`${gateway.baseUrl}${endpoint}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });

  const openWs = async (slug: string, headers: Record<string, string>) => {
    const upgraded = await upgrade(`${wsBase}/${slug}`, headers);
    expect(upgraded.status).toBe(101);
    sockets.push(upgraded.client!.socket);
    return upgraded.client!;
  };

  describe('HTTP+SSE', () => {
    const refusal = async (slug: string, headers: Record<string, string>) => {
      const response = await fetch(`${gateway.mcpUrl}/${slug}/sse`, {
        headers: { accept: 'text/event-stream', ...headers },
      });
      return {
        status: response.status,
        challenge: response.headers.get('www-authenticate'),
        body: (await response.json()) as Json,
      };
    };

    it('refuses a stream without credentials: 401 with the RFC 9728 challenge', async () => {
      const refused = await refusal('tenant-a', {});
      expect(refused.status).toBe(401);
      expect(refused.challenge).toMatch(/^Bearer /);
      expect(refused.challenge).toContain(
        `resource_metadata="${gateway.baseUrl}/.well-known/oauth-protected-resource/mcp/tenant-a"`,
      );
      expect(refused.body).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32600 } });
    });

    it.each([
      ['an unknown tenant', 'nobody', 404, 'Unknown tenant'],
      ['a suspended tenant', 'frozen', 403, 'Tenant suspended'],
    ])('refuses %s with %i', async (_name, slug, status, message) => {
      const refused = await refusal(slug, bearer(a.apiKey));
      expect(refused.status).toBe(status);
      expect(refused.body.error).toEqual({ code: -32600, message });
    });

    it("refuses tenant A's key on tenant B with 401", async () => {
      const refused = await refusal('tenant-b', bearer(a.apiKey));
      expect(refused.status).toBe(401);
      expect(refused.challenge).toContain('/mcp/tenant-b"');
    });

    it('names the tenant message endpoint and serves only that tenant (raw, both key headers)', async () => {
      const streamA = await openSse('tenant-a', bearer(a.apiKey));
      expect(streamA.endpoint).toMatch(/^\/mcp\/tenant-a\/messages\?sessionId=[\w-]{20,}$/);
      expect((await postMessage(streamA.endpoint, initialize(1), bearer(a.apiKey))).status).toBe(
        202,
      );
      await streamA.response(1);
      await postMessage(streamA.endpoint, INITIALIZED, bearer(a.apiKey));
      await postMessage(
        streamA.endpoint,
        { jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} },
        bearer(a.apiKey),
      );
      const namesA = ((await streamA.response(2)).result.tools as { name: string }[]).map(
        (t) => t.name,
      );
      expect(namesA).toContain('test_simple_text');

      const keyB = { 'x-api-key': b.apiKey };
      const streamB = await openSse('tenant-b', keyB);
      expect(streamB.endpoint).toMatch(/^\/mcp\/tenant-b\/messages\?sessionId=/);
      await postMessage(streamB.endpoint, initialize(1), keyB);
      await streamB.response(1);
      await postMessage(streamB.endpoint, INITIALIZED, keyB);
      await postMessage(streamB.endpoint, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, keyB);
      const namesB = ((await streamB.response(2)).result.tools as { name: string }[]).map(
        (t) => t.name,
      );
      expect(namesB).toEqual(['echo']);
      await postMessage(
        streamB.endpoint,
        {
          jsonrpc: '2.0',
          id: 3,
          method: 'tools/call',
          params: { name: 'echo', arguments: { message: 'tenant b' } },
        },
        keyB,
      );
      expect((await streamB.response(3)).result.content).toEqual([
        { type: 'text', text: 'tenant b' },
      ]);
    });

    it('serves the SDK v1 SSE client with requestInit headers', async () => {
      const client = new Client({ name: 'e2e-tenant-sse', version: '1.0.0' });
      await client.connect(
        new SSEClientTransport(new URL(`${gateway.mcpUrl}/tenant-a/sse`), {
          requestInit: { headers: { Authorization: `Bearer ${a.apiKey}` } },
        }),
      );
      try {
        const tools = await client.listTools();
        expect(tools.tools.map((t) => t.name)).toContain('test_simple_text');
        const result = await client.callTool({ name: 'test_simple_text', arguments: {} });
        expect(result.content).toEqual([{ type: 'text', text: SIMPLE_TEXT }]);
      } finally {
        await client.close();
      }
    });

    it('accepts messages only from the principal and tenant that opened the stream', async () => {
      const stream = await openSse('tenant-a', bearer(a.apiKey));
      const sessionId = new URL(stream.endpoint, gateway.baseUrl).searchParams.get('sessionId');
      const ping = (id: number) => ({ jsonrpc: '2.0', id, method: 'ping' });

      // Missing credentials: the tenant's challenge, as on every tenant request.
      const anonymous = await postMessage(stream.endpoint, ping(1));
      expect(anonymous.status).toBe(401);
      expect(anonymous.headers.get('www-authenticate')).toMatch(/^Bearer /);

      // Another principal of the same tenant: the session is "unknown", like a bad id.
      const other = await postMessage(stream.endpoint, ping(2), bearer(aSecondKey));
      expect(other.status).toBe(404);
      expect(((await other.json()) as Json).error.message).toBe('Unknown or closed SSE session');

      // Another tenant's path (with that tenant's valid key), and the anonymous endpoint.
      const crossTenant = await postMessage(
        `/mcp/tenant-b/messages?sessionId=${sessionId}`,
        ping(3),
        bearer(b.apiKey),
      );
      expect(crossTenant.status).toBe(404);
      const viaAnonymous = await postMessage(`/mcp/messages?sessionId=${sessionId}`, ping(4));
      expect(viaAnonymous.status).toBe(404);

      // The owner still gets through, and nothing of the refused messages was delivered.
      expect((await postMessage(stream.endpoint, ping(5), bearer(a.apiKey))).status).toBe(202);
      await stream.response(5);
      expect(stream.messages.map((m) => m.id)).toEqual([5]);
    });

    it('forgets a tenant stream when it closes', async () => {
      const transport = gateway.app.get(LegacySseTransport);
      await until(() => transport.size === 0);
      const before = transport.size;
      const stream = await openSse('tenant-b', bearer(b.apiKey));
      expect(transport.size).toBe(before + 1);
      stream.close();
      await until(() => transport.size === before);
      expect(transport.size).toBe(before);
    });
  });

  describe('WebSocket', () => {
    it('refuses an upgrade without credentials with HTTP 401 and the challenge', async () => {
      const refused = await upgrade(`${wsBase}/tenant-a`);
      expect(refused.status).toBe(401);
      expect(refused.headers['www-authenticate']).toMatch(/^Bearer /);
      expect(refused.headers['www-authenticate']).toContain(
        '/.well-known/oauth-protected-resource/mcp/tenant-a"',
      );
      expect(refused.headers['content-type']).toBe('application/json');
      expect(JSON.parse(refused.body)).toMatchObject({
        jsonrpc: '2.0',
        id: null,
        error: { code: -32600 },
      });
    });

    it.each([
      ['an unknown tenant', 'nobody', 404, 'Unknown tenant'],
      ['a suspended tenant', 'frozen', 403, 'Tenant suspended'],
    ])('refuses %s with HTTP %i', async (_name, slug, status, message) => {
      const refused = await upgrade(`${wsBase}/${slug}`, bearer(a.apiKey));
      expect(refused.status).toBe(status);
      expect((JSON.parse(refused.body) as Json).error).toEqual({ code: -32600, message });
    });

    it("refuses tenant A's key on tenant B with HTTP 401", async () => {
      const refused = await upgrade(`${wsBase}/tenant-b`, bearer(a.apiKey));
      expect(refused.status).toBe(401);
      expect(refused.headers['www-authenticate']).toContain('/mcp/tenant-b"');
    });

    it('refuses paths outside the MCP routes with 404', async () => {
      expect((await upgrade(`${wsBase}/tenant-a/extra`, bearer(a.apiKey))).status).toBe(404);
      expect((await upgrade(`${gateway.baseUrl.replace(/^http/, 'ws')}/elsewhere`)).status).toBe(
        404,
      );
    });

    it("serves each tenant's catalog only (Authorization and X-API-Key)", async () => {
      const clientA = await openWs('tenant-a', bearer(a.apiKey));
      expect(clientA.socket.protocol).toBe('mcp');
      await clientA.request(1, 'initialize', initialize(1).params as Json);
      clientA.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
      const namesA = ((await clientA.request(2, 'tools/list')).result.tools as Json[]).map(
        (t) => t.name as string,
      );
      expect(namesA).toContain('test_simple_text');
      expect(
        (await clientA.request(3, 'tools/call', { name: 'test_simple_text', arguments: {} })).result
          .content,
      ).toEqual([{ type: 'text', text: SIMPLE_TEXT }]);

      const clientB = await openWs('tenant-b', { 'x-api-key': b.apiKey });
      await clientB.request(1, 'initialize', initialize(1).params as Json);
      clientB.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
      const namesB = ((await clientB.request(2, 'tools/list')).result.tools as Json[]).map(
        (t) => t.name as string,
      );
      expect(namesB).toEqual(['echo']);
      expect(
        (await clientB.request(3, 'tools/call', { name: 'echo', arguments: { message: 'ws b' } }))
          .result.content,
      ).toEqual([{ type: 'text', text: 'ws b' }]);
      const foreign = await clientB.request(4, 'tools/call', {
        name: 'test_simple_text',
        arguments: {},
      });
      expect(foreign.error ?? foreign.result?.isError).toBeTruthy();
    });

    it('ends an open connection whose key is revoked: the next request is refused, then 1008', async () => {
      const key = await createApiKey(gateway.app, a.tenant.id, { name: 'revoked-while-open' });
      const client = await openWs('tenant-a', bearer(key.secret));
      await client.request(1, 'initialize', initialize(1).params as Json);
      client.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
      expect((await client.request(2, 'ping')).result).toEqual({});
      await gateway.app.get(ApiKeyService).revoke(a.tenant.id, key.id);
      const closed = new Promise<number>((resolve) => client.socket.once('close', resolve));
      const refused = await client.request(3, 'tools/list');
      expect(refused.error).toMatchObject({ code: -32600 });
      expect(refused.result).toBeUndefined();
      expect(await closed).toBe(1008);
    });
  });
});

describe('anonymous endpoints without a fixture catalog', () => {
  let gateway: RunningGateway;
  let key: string;

  beforeAll(async () => {
    gateway = await startGateway({ LOG_LEVEL, FIXTURE_CATALOG: 'none' });
    key = (await seedTenant(gateway.app, { slug: 'solo', fixtures: ['echo'] })).apiKey;
  });

  afterAll(async () => {
    await gateway?.close();
  });

  it('answers 404 on /mcp/sse and /mcp/messages', async () => {
    const sse = await fetch(`${gateway.mcpUrl}/sse`, { headers: { accept: 'text/event-stream' } });
    expect(sse.status).toBe(404);
    const messages = await fetch(`${gateway.mcpUrl}/messages?sessionId=x`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(messages.status).toBe(404);
  });

  it('refuses the WebSocket upgrade on /mcp with HTTP 404', async () => {
    const refused = await upgrade(gateway.mcpUrl.replace(/^http/, 'ws'));
    expect(refused.status).toBe(404);
    expect((JSON.parse(refused.body) as Json).error.code).toBe(-32600);
  });

  it("checks a tenant tool's Mcp-Param headers against that tenant's tool (-32020)", async () => {
    const { apiKey } = await seedTenant(gateway.app, { slug: 'headers' });
    const post = (region: string) =>
      fetch(`${gateway.mcpUrl}/headers`, {
        method: 'POST',
        headers: {
          ...bearer(apiKey),
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2026-07-28',
          'mcp-method': 'tools/call',
          'mcp-name': 'test_custom_header',
          'mcp-param-region': region,
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'tools/call',
          params: {
            name: 'test_custom_header',
            arguments: { region: 'eu-west-1' },
            _meta: {
              'io.modelcontextprotocol/protocolVersion': '2026-07-28',
              'io.modelcontextprotocol/clientCapabilities': {},
            },
          },
        }),
      });
    const mismatched = await post('us-east-1');
    expect(mismatched.status).toBe(400);
    expect(((await mismatched.json()) as Json).error.code).toBe(-32020);
    const matching = await post('eu-west-1');
    expect(matching.status).toBe(200);
    expect(((await matching.json()) as Json).result.content[0].text).toBe('Region: eu-west-1');
  });

  it('still serves tenants over both transports', async () => {
    const stream = await RawSse.open(`${gateway.mcpUrl}/solo/sse`, bearer(key));
    try {
      expect(stream.endpoint).toMatch(/^\/mcp\/solo\/messages\?sessionId=/);
    } finally {
      stream.close();
    }
    const upgraded = await upgrade(`${gateway.mcpUrl.replace(/^http/, 'ws')}/solo`, bearer(key));
    expect(upgraded.status).toBe(101);
    const initialized = await upgraded.client!.request(
      1,
      'initialize',
      initialize(1).params as Json,
    );
    expect((initialized.result as Json).serverInfo.name).toBe('portico');
    upgraded.client!.socket.terminate();
  });
});

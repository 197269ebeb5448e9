import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import WebSocket from 'ws';
import { TenantService } from '@portico/tenancy';
import { testDatabaseEnv } from '@portico/testing';
import { RunningGateway, startGateway } from './support/gateway';
import { createApiKey, seedTenant } from './support/tenants';

const MODERN = '2026-07-28';
const QUOTA_EXCEEDED = -32029;

interface Reply {
  status: number;
  headers: Headers;
  body: { result?: Record<string, unknown>; error?: { code: number; data?: unknown } };
}

async function call(
  gateway: RunningGateway,
  slug: string,
  key: string,
  method: string,
  params: Record<string, unknown> = {},
): Promise<Reply> {
  const res = await fetch(`${gateway.mcpUrl}/${slug}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${key}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN,
      'mcp-method': method,
      ...(typeof params.name === 'string' ? { 'mcp-name': params.name } : {}),
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: randomBytes(4).readUInt32BE(),
      method,
      params: {
        ...params,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': MODERN,
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      },
    }),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Reply['body'] };
}

async function initialize(gateway: RunningGateway, slug: string, key: string): Promise<number> {
  const res = await fetch(`${gateway.mcpUrl}/${slug}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${key}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion: '2025-11-25',
        capabilities: {},
        clientInfo: { name: 'quota-test', version: '1' },
      },
    }),
  });
  await res.arrayBuffer();
  return res.status;
}

async function setLimits(
  gateway: RunningGateway,
  tenantId: string,
  limits: Record<string, number>,
): Promise<void> {
  const tenants = gateway.app.get(TenantService);
  const tenant = await tenants.byId(tenantId);
  await tenants.update(tenant!, { limits });
}

describe('tenant quotas and rate limits (in memory)', () => {
  let gateway: RunningGateway;

  beforeAll(async () => {
    gateway = await startGateway({ API_KEY_REQUESTS_PER_MINUTE: '5' });
  });

  afterAll(async () => {
    await gateway.close();
  });

  it('limits requests per minute per tenant: 429, Retry-After and a JSON-RPC retry hint', async () => {
    const { tenant, apiKey } = await seedTenant(gateway.app, { slug: 'rate', fixtures: ['echo'] });
    await setLimits(gateway, tenant.id, { requestsPerMinute: 3 });
    const other = await createApiKey(gateway.app, tenant.id, { name: 'second' });
    for (let i = 0; i < 2; i++) {
      expect((await call(gateway, 'rate', apiKey, 'tools/list')).status).toBe(200);
    }
    expect((await call(gateway, 'rate', other.secret, 'tools/list')).status).toBe(200);
    // The tenant's allowance is shared by all its keys.
    const refused = await call(gateway, 'rate', other.secret, 'tools/list');
    expect(refused.status).toBe(429);
    const seconds = Number(refused.headers.get('retry-after'));
    expect(seconds).toBeGreaterThanOrEqual(1);
    expect(seconds).toBeLessThanOrEqual(60);
    expect(refused.body.error).toMatchObject({
      code: QUOTA_EXCEEDED,
      data: { limit: 'tenant-rate' },
    });
    expect((refused.body.error!.data as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(0);
  });

  it('another tenant keeps its own allowance', async () => {
    const { apiKey } = await seedTenant(gateway.app, { slug: 'calm', fixtures: ['echo'] });
    expect((await call(gateway, 'calm', apiKey, 'tools/list')).status).toBe(200);
  });

  it('limits requests per minute per API key (API_KEY_REQUESTS_PER_MINUTE)', async () => {
    const { tenant, apiKey } = await seedTenant(gateway.app, {
      slug: 'keyrate',
      fixtures: ['echo'],
    });
    for (let i = 0; i < 5; i++) {
      expect((await call(gateway, 'keyrate', apiKey, 'tools/list')).status).toBe(200);
    }
    const refused = await call(gateway, 'keyrate', apiKey, 'tools/list');
    expect(refused.status).toBe(429);
    expect(refused.body.error).toMatchObject({ code: QUOTA_EXCEEDED, data: { limit: 'key-rate' } });
    const fresh = await createApiKey(gateway.app, tenant.id, { name: 'fresh' });
    expect((await call(gateway, 'keyrate', fresh.secret, 'tools/list')).status).toBe(200);
  });

  it('limits concurrent tool calls per tenant', async () => {
    const { tenant, apiKey } = await seedTenant(gateway.app, { slug: 'busy' });
    await setLimits(gateway, tenant.id, { maxConcurrentCalls: 1 });
    const keys = await Promise.all(
      [1, 2, 3].map((i) => createApiKey(gateway.app, tenant.id, { name: `k${i}` })),
    );
    const replies = await Promise.all(
      [apiKey, ...keys.map((k) => k.secret)].map((key) =>
        call(gateway, 'busy', key, 'tools/call', {
          name: 'test_tool_with_progress',
          arguments: {},
        }),
      ),
    );
    const ok = replies.filter((r) => r.body.result !== undefined);
    const refused = replies.filter((r) => r.body.error?.code === QUOTA_EXCEEDED);
    expect(ok.length).toBeGreaterThanOrEqual(1);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    expect(ok.length + refused.length).toBe(4);
    // Slots come back: a later call succeeds.
    const later = await call(gateway, 'busy', apiKey, 'tools/call', {
      name: 'test_tool_with_progress',
      arguments: {},
    });
    expect(later.body.result).toBeDefined();
  });

  it('limits open 2025-era sessions per tenant', async () => {
    const { tenant, apiKey } = await seedTenant(gateway.app, {
      slug: 'sessions',
      fixtures: ['echo'],
    });
    await setLimits(gateway, tenant.id, { maxSessions: 2 });
    expect(await initialize(gateway, 'sessions', apiKey)).toBe(200);
    expect(await initialize(gateway, 'sessions', apiKey)).toBe(200);
    expect(await initialize(gateway, 'sessions', apiKey)).toBe(429);
  });
});

describe('tenant rate limits shared by two gateways through Redis', () => {
  const prefix = `portico-test-${randomBytes(4).toString('hex')}:`;
  let first: RunningGateway;
  let second: RunningGateway;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    const db = await testDatabaseEnv('postgres');
    cleanup = db.cleanup;
    const env = { ...db.env, REDIS_URL: 'redis://127.0.0.1:6379', REDIS_KEY_PREFIX: prefix };
    first = await startGateway(env);
    second = await startGateway(env);
  });

  afterAll(async () => {
    await first?.close();
    await second?.close();
    const redis = new Redis('redis://127.0.0.1:6379');
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) {
      await redis.del(...keys);
    }
    await redis.quit();
    await cleanup?.();
  });

  it('counts one tenant allowance across nodes', async () => {
    const { tenant, apiKey } = await seedTenant(first.app, { slug: 'shared', fixtures: ['echo'] });
    await setLimits(first, tenant.id, { requestsPerMinute: 4 });
    expect((await call(first, 'shared', apiKey, 'tools/list')).status).toBe(200);
    expect((await call(second, 'shared', apiKey, 'tools/list')).status).toBe(200);
    expect((await call(first, 'shared', apiKey, 'tools/list')).status).toBe(200);
    expect((await call(second, 'shared', apiKey, 'tools/list')).status).toBe(200);
    expect((await call(second, 'shared', apiKey, 'tools/list')).status).toBe(429);
    expect((await call(first, 'shared', apiKey, 'tools/list')).status).toBe(429);
    const redis = new Redis('redis://127.0.0.1:6379');
    try {
      expect((await redis.keys(`${prefix}*`)).length).toBeGreaterThan(0);
    } finally {
      await redis.quit();
    }
  });
});

describe('tenant rate limits when Redis is unreachable', () => {
  let gateway: RunningGateway;

  beforeAll(async () => {
    // Nothing listens on port 1: every Redis command fails at once.
    gateway = await startGateway({ REDIS_URL: 'redis://127.0.0.1:1', LOG_LEVEL: 'fatal' });
  });

  afterAll(async () => {
    await gateway.close();
  });

  it('keeps serving and keeps limiting with the in-memory stand-in', async () => {
    const { tenant, apiKey } = await seedTenant(gateway.app, {
      slug: 'noredis',
      fixtures: ['echo'],
    });
    await setLimits(gateway, tenant.id, { requestsPerMinute: 2 });
    expect((await call(gateway, 'noredis', apiKey, 'tools/list')).status).toBe(200);
    expect((await call(gateway, 'noredis', apiKey, 'tools/list')).status).toBe(200);
    expect((await call(gateway, 'noredis', apiKey, 'tools/list')).status).toBe(429);
  });
});

describe('tenant rate limits on the WebSocket and HTTP+SSE transports', () => {
  let gateway: RunningGateway;

  beforeAll(async () => {
    gateway = await startGateway();
  });

  afterAll(async () => {
    await gateway.close();
  });

  it('answers a WebSocket request over the rate with a JSON-RPC error carrying its id', async () => {
    const { tenant, apiKey } = await seedTenant(gateway.app, {
      slug: 'wsrate',
      fixtures: ['echo'],
    });
    await setLimits(gateway, tenant.id, { requestsPerMinute: 2 });
    const socket = new WebSocket(`${gateway.mcpUrl.replace('http', 'ws')}/wsrate`, ['mcp'], {
      headers: { authorization: `Bearer ${apiKey}` },
    });
    const replies: { id: number; result?: unknown; error?: { code: number } }[] = [];
    socket.on('message', (data: Buffer) => replies.push(JSON.parse(data.toString('utf8'))));
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    const meta = {
      'io.modelcontextprotocol/protocolVersion': MODERN,
      'io.modelcontextprotocol/clientCapabilities': {},
    };
    for (const id of [1, 2, 3]) {
      socket.send(
        JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/list', params: { _meta: meta } }),
      );
    }
    const deadline = Date.now() + 5000;
    while (replies.length < 3 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    socket.close();
    const byId = new Map(replies.map((r) => [r.id, r]));
    expect(byId.get(1)?.result).toBeDefined();
    expect(byId.get(2)?.result).toBeDefined();
    expect(byId.get(3)?.error).toMatchObject({ code: QUOTA_EXCEEDED });
  });

  it('answers an SSE message POST over the rate with 429 and Retry-After', async () => {
    const { tenant, apiKey } = await seedTenant(gateway.app, {
      slug: 'sserate',
      fixtures: ['echo'],
    });
    await setLimits(gateway, tenant.id, { requestsPerMinute: 2 });
    const auth = { authorization: `Bearer ${apiKey}` };
    const controller = new AbortController();
    const stream = await fetch(`${gateway.mcpUrl}/sserate/sse`, {
      headers: { ...auth, accept: 'text/event-stream' },
      signal: controller.signal,
    });
    expect(stream.status).toBe(200);
    const reader = stream.body!.getReader();
    const { value } = await reader.read();
    const endpoint = /data: (\S+)/.exec(Buffer.from(value).toString('utf8'))![1];
    const post = () =>
      fetch(new URL(endpoint, gateway.baseUrl), {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
      });
    // The stream itself used one of the two requests.
    expect((await post()).status).toBe(202);
    const refused = await post();
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await refused.json()).toMatchObject({ error: { code: QUOTA_EXCEEDED } });
    controller.abort();
  });
});

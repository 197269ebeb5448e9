/*
 * Authentication, authorization and tenant isolation of the tenant MCP endpoints
 * (`/mcp/{tenant}`), against the real gateway, in both MCP eras: forged and broken
 * credentials, RFC 9728 discovery, per-tool scopes and policies, cross-tenant and
 * cross-principal isolation of sessions, catalogs and MRTR requestState, and the official SDK
 * clients authenticating with API keys and JWTs.
 */
import { ApiKeyService } from '@portico/auth';
import { META } from '@portico/mcp-protocol';
import type { TenantEntity } from '@portico/persistence';
import { startJwksServer, unsignedToken, type JwksServer } from '@portico/testing/jwks-server';
import { TenantService } from '@portico/tenancy';
import { RunningGateway, startGateway } from './support/gateway';
import { buildV1, buildV2 } from './support/mcp-auth-sdk';
import { closeAll, rejectionOf, type Exchange, type Rejection } from './support/sdk';
import { createApiKey, seedTenant } from './support/tenants';

const ACCEPT = 'application/json, text/event-stream';
const MODERN = '2026-07-28';
const LEGACY = '2025-11-25';
const SIMPLE_TEXT = 'This is a simple text response for testing.';
const STATIC_TEXT = 'This is the content of the static text resource.';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

interface Reply {
  status: number;
  headers: Headers;
  /** The JSON-RPC response (plain JSON, or the matching message of an SSE stream). */
  body: Json | undefined;
  text: string;
}

let nextId = 1;

function bearer(token: string | undefined): Record<string, string> {
  return token === undefined ? {} : { authorization: `Bearer ${token}` };
}

async function post(url: string, body: Json, headers: Record<string, string> = {}): Promise<Reply> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: ACCEPT, ...headers },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: Json | undefined;
  if ((response.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    const messages = text
      .split('\n')
      .filter((line) => line.startsWith('data:'))
      .map((line) => line.slice(5).trim())
      .filter((data) => data !== '')
      .map((data) => JSON.parse(data) as Json);
    parsed = messages.find((m) => m.id === body.id && ('result' in m || 'error' in m));
  } else if (text !== '') {
    parsed = JSON.parse(text) as Json;
  }
  return { status: response.status, headers: response.headers, body: parsed, text };
}

const NAMED: Record<string, string> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
};

/** A 2026-07-28 request: `_meta` envelope plus the matching headers. */
function modern(
  url: string,
  token: string | undefined,
  method: string,
  params: Json = {},
  extra: { capabilities?: Json; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const headers: Record<string, string> = {
    'mcp-protocol-version': MODERN,
    'mcp-method': method,
    ...bearer(token),
    ...extra.headers,
  };
  const nameField = NAMED[method];
  if (nameField !== undefined) {
    headers['mcp-name'] = String(params[nameField]);
  }
  return post(
    url,
    {
      jsonrpc: '2.0',
      id: nextId++,
      method,
      params: {
        ...params,
        _meta: {
          [META.protocolVersion]: MODERN,
          [META.clientCapabilities]: extra.capabilities ?? {},
          [META.clientInfo]: { name: 'e2e-auth', version: '1' },
        },
      },
    },
    headers,
  );
}

function initializeBody(): Json {
  return {
    jsonrpc: '2.0',
    id: nextId++,
    method: 'initialize',
    params: {
      protocolVersion: LEGACY,
      capabilities: {},
      clientInfo: { name: 'e2e-auth', version: '1' },
    },
  };
}

function initialize(
  url: string,
  token: string | undefined,
  headers: Record<string, string> = {},
): Promise<Reply> {
  return post(url, initializeBody(), { ...bearer(token), ...headers });
}

/** A 2025 session (initialize + notifications/initialized) opened with `token`. */
async function openSession(url: string, token: string | undefined): Promise<string> {
  const init = await initialize(url, token);
  expect(init.status).toBe(200);
  const sessionId = init.headers.get('mcp-session-id');
  expect(sessionId).toEqual(expect.any(String));
  const ack = await post(
    url,
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    { ...bearer(token), 'mcp-session-id': sessionId as string, 'mcp-protocol-version': LEGACY },
  );
  expect(ack.status).toBe(202);
  return sessionId as string;
}

function legacy(
  url: string,
  token: string | undefined,
  sessionId: string,
  method: string,
  params: Json = {},
): Promise<Reply> {
  return post(
    url,
    { jsonrpc: '2.0', id: nextId++, method, params },
    { ...bearer(token), 'mcp-session-id': sessionId, 'mcp-protocol-version': LEGACY },
  );
}

/** The standalone GET stream of a 2025 session, accumulated as raw text. */
async function openStream(
  url: string,
  token: string,
  sessionId: string,
): Promise<{ text(): string; waitFor(marker: string, ms?: number): Promise<void>; close(): void }> {
  const abort = new AbortController();
  const response = await fetch(url, {
    headers: {
      accept: 'text/event-stream',
      'mcp-session-id': sessionId,
      'mcp-protocol-version': LEGACY,
      ...bearer(token),
    },
    signal: abort.signal,
  });
  expect(response.status).toBe(200);
  let seen = '';
  const listeners = new Set<() => void>();
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  const pump = async (): Promise<void> => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        return;
      }
      seen += decoder.decode(value, { stream: true });
      listeners.forEach((l) => l());
    }
  };
  pump().catch(() => undefined);
  return {
    text: () => seen,
    waitFor: (marker, ms = 3000) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`${marker} not seen within ${ms} ms: ${seen}`));
        }, ms);
        function check(): void {
          if (seen.includes(marker)) {
            clearTimeout(timer);
            listeners.delete(check);
            resolve();
          }
        }
        listeners.add(check);
        check();
      }),
    close: () => abort.abort(),
  };
}

function toolNames(reply: Reply): string[] {
  expect(reply.status).toBe(200);
  const tools = (reply.body?.result?.tools ?? []) as { name: string }[];
  return tools.map((t) => t.name);
}

function textOf(reply: Reply): string | undefined {
  return (reply.body?.result?.content as { text?: string }[] | undefined)?.[0]?.text;
}

/** The parameters of a `Bearer` WWW-Authenticate challenge. */
function challengeOf(reply: Reply | Exchange): Record<string, string> {
  const value =
    'headers' in reply
      ? reply.headers.get('www-authenticate')
      : reply.responseHeaders?.['www-authenticate'];
  expect(value).toMatch(/^Bearer /);
  const params: Record<string, string> = {};
  for (const match of (value as string).matchAll(/([a-z_]+)="([^"]*)"/g)) {
    params[match[1]] = match[2];
  }
  return params;
}

// ---------------------------------------------------------------------------------------------

describe('tenant endpoint authentication (401/403/404)', () => {
  let gateway: RunningGateway;
  let jwks: JwksServer;
  let tenant: TenantEntity;
  let endpoint: string;
  let apiKey: string;
  let otherTenantKey: string;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    gateway = await startGateway({ LOG_LEVEL: process.env.E2E_LOG ?? 'silent' });
    jwks = await startJwksServer();
    endpoint = `${gateway.mcpUrl}/acme`;
    const seeded = await seedTenant(gateway.app, {
      slug: 'acme',
      auth: {
        jwt: {
          issuer: jwks.url,
          audience: endpoint,
          jwksUri: jwks.jwksUri,
          algorithms: ['RS256', 'ES256'],
        },
      },
    });
    tenant = seeded.tenant;
    apiKey = seeded.apiKey;
    otherTenantKey = (await seedTenant(gateway.app, { slug: 'other' })).apiKey;

    const aud = { audience: endpoint };
    tokens.valid = await jwks.sign({}, aud);
    tokens.validEs256 = await jwks.sign({}, { ...aud, alg: 'ES256' });
    tokens.wrongSignature = await jwks.foreignKeySign({}, aud);
    tokens.algNone = unsignedToken({
      iss: jwks.url,
      aud: endpoint,
      sub: 'user-1',
      exp: Math.floor(Date.now() / 1000) + 300,
    });
    // Algorithm confusion: HS256 keyed with the issuer's public key.
    tokens.hs256 = await jwks.hmacSign(await jwks.publicKeyPem(), {}, aud);
    tokens.hs256Kid = await jwks.hmacSign(
      await jwks.publicKeyPem(),
      {},
      {
        ...aud,
        header: { kid: jwks.kid() },
      },
    );
    tokens.wrongIssuer = await jwks.sign({}, { ...aud, issuer: 'https://evil.example' });
    tokens.wrongAudience = await jwks.sign({}, { audience: `${gateway.mcpUrl}/other` });
    tokens.noAudience = await jwks.sign({});
    tokens.expired = await jwks.sign({}, { ...aud, expiresIn: -120 });
    tokens.notYetValid = await jwks.sign({}, { ...aud, notBefore: 600 });
    tokens.garbage = 'not-a-token';
  });

  afterAll(async () => {
    await gateway?.close();
    await jwks?.close();
  });

  const shapes: [
    string,
    (token: string | undefined, h?: Record<string, string>) => Promise<Reply>,
  ][] = [
    [
      '2026-07-28 tools/list',
      (token, h) => modern(endpoint, token, 'tools/list', {}, { headers: h }),
    ],
    ['2025 initialize', (token, h) => initialize(endpoint, token, h)],
  ];

  describe.each(shapes)('%s', (_name, request) => {
    it('without credentials: 401 with a bare Bearer challenge pointing at RFC 9728 metadata', async () => {
      const reply = await request(undefined);
      expect(reply.status).toBe(401);
      expect(reply.body).toEqual({
        jsonrpc: '2.0',
        id: null,
        error: { code: -32600, message: 'Authentication required' },
      });
      const challenge = challengeOf(reply);
      expect(challenge.resource_metadata).toBe(
        `${gateway.baseUrl}/.well-known/oauth-protected-resource/mcp/acme`,
      );
      // RFC 6750 §3.1: no error code when the request carried no credentials.
      expect(challenge.error).toBeUndefined();
      expect(reply.headers.get('mcp-session-id')).toBeNull();

      const metadata = await fetch(challenge.resource_metadata);
      expect(metadata.status).toBe(200);
      expect(metadata.headers.get('content-type')).toMatch(/^application\/json/);
      const doc = (await metadata.json()) as Json;
      expect(doc.resource).toBe(endpoint);
      expect(doc.authorization_servers).toEqual([jwks.url]);
      expect(doc.bearer_methods_supported).toEqual(['header']);
    });

    it.each([
      ['a forged signature (key not in the JWKS)', 'wrongSignature'],
      ['alg: none', 'algNone'],
      ['HS256 keyed with the public key (algorithm confusion)', 'hs256'],
      ['HS256 with a served kid (algorithm confusion)', 'hs256Kid'],
      ['a wrong issuer', 'wrongIssuer'],
      ["another endpoint's audience", 'wrongAudience'],
      ['no audience', 'noAudience'],
      ['an expired token', 'expired'],
      ['a token not valid yet', 'notYetValid'],
      ['a malformed token', 'garbage'],
    ])('JWT with %s: 401 invalid_token', async (_what, name) => {
      const reply = await request(tokens[name]);
      expect(reply.status).toBe(401);
      expect(reply.body?.error?.code).toBe(-32600);
      expect(reply.body?.result).toBeUndefined();
      const challenge = challengeOf(reply);
      expect(challenge.error).toBe('invalid_token');
      expect(challenge.resource_metadata).toBe(
        `${gateway.baseUrl}/.well-known/oauth-protected-resource/mcp/acme`,
      );
      expect(reply.headers.get('mcp-session-id')).toBeNull();
    });

    it('valid RS256 and ES256 JWTs and a valid API key: 200', async () => {
      for (const token of [tokens.valid, tokens.validEs256, apiKey]) {
        const reply = await request(token);
        expect(reply.status).toBe(200);
        expect(reply.body?.result).toBeDefined();
        expect(reply.headers.get('www-authenticate')).toBeNull();
      }
    });

    it('the API key in X-API-Key instead of Authorization: 200', async () => {
      const reply = await request(undefined, { 'x-api-key': apiKey });
      expect(reply.status).toBe(200);
    });

    it("another tenant's API key: 401 invalid_token", async () => {
      const reply = await request(otherTenantKey);
      expect(reply.status).toBe(401);
      expect(challengeOf(reply).error).toBe('invalid_token');
    });

    it.each(['access_token', 'api_key', 'token'])(
      'a credential in the query string (?%s=) is refused with 401 invalid_request, even with a valid header',
      async (param) => {
        const url = `${endpoint}?${param}=${encodeURIComponent(tokens.valid)}`;
        const isModern = _name.startsWith('2026');
        const reply = isModern
          ? await modern(url, tokens.valid, 'tools/list')
          : await initialize(url, tokens.valid);
        expect(reply.status).toBe(401);
        expect(challengeOf(reply).error).toBe('invalid_request');
        expect(reply.body?.result).toBeUndefined();
      },
    );

    it.each([
      ['Basic', `Basic ${Buffer.from('user:pass').toString('base64')}`],
      ['Token', 'Token abc'],
      ['Bearer without a token', 'Bearer'],
      ['a bare API key', 'API_KEY_PLACEHOLDER'],
    ])('Authorization with %s: 401 invalid_request', async (_what, value) => {
      const reply = await request(undefined, {
        authorization: value === 'API_KEY_PLACEHOLDER' ? apiKey : value,
      });
      expect(reply.status).toBe(401);
      expect(challengeOf(reply).error).toBe('invalid_request');
    });
  });

  it('a revoked API key: 401 invalid_token, immediately after revocation', async () => {
    const key = await createApiKey(gateway.app, tenant.id, { name: 'to-revoke' });
    expect((await modern(endpoint, key.secret, 'tools/list')).status).toBe(200);
    expect(await gateway.app.get(ApiKeyService).revoke(tenant.id, key.id)).toBe(true);
    for (const reply of [
      await modern(endpoint, key.secret, 'tools/list'),
      await initialize(endpoint, key.secret),
    ]) {
      expect(reply.status).toBe(401);
      expect(challengeOf(reply).error).toBe('invalid_token');
      expect(reply.body?.error?.message).toBe('Unknown, revoked or expired API key');
    }
  });

  it('an expired API key: 401 invalid_token', async () => {
    const key = await createApiKey(gateway.app, tenant.id, {
      name: 'expired',
      expiresAt: new Date(Date.now() - 60_000),
    });
    for (const reply of [
      await modern(endpoint, key.secret, 'tools/list'),
      await initialize(endpoint, key.secret),
    ]) {
      expect(reply.status).toBe(401);
      expect(challengeOf(reply).error).toBe('invalid_token');
    }
  });

  it('an API key that expires while cached stops working at its expiry', async () => {
    const key = await createApiKey(gateway.app, tenant.id, {
      name: 'short-lived',
      expiresAt: new Date(Date.now() + 1_000),
    });
    expect((await modern(endpoint, key.secret, 'tools/list')).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect((await modern(endpoint, key.secret, 'tools/list')).status).toBe(401);
  });

  it('a platform-level API key (no tenant) is not valid on a tenant endpoint: 401', async () => {
    const key = await createApiKey(gateway.app, null, {
      name: 'platform',
      roles: ['platform-admin'],
    });
    for (const reply of [
      await modern(endpoint, key.secret, 'tools/list'),
      await initialize(endpoint, key.secret),
    ]) {
      expect(reply.status).toBe(401);
      expect(challengeOf(reply).error).toBe('invalid_token');
    }
  });

  it('a key revoked while its 2025 session is open: the next request on the session is 401', async () => {
    const key = await createApiKey(gateway.app, tenant.id, { name: 'session-revoke' });
    const sessionId = await openSession(endpoint, key.secret);
    expect((await legacy(endpoint, key.secret, sessionId, 'tools/list')).status).toBe(200);
    await gateway.app.get(ApiKeyService).revoke(tenant.id, key.id);
    const reply = await legacy(endpoint, key.secret, sessionId, 'tools/list');
    expect(reply.status).toBe(401);
    expect(challengeOf(reply).error).toBe('invalid_token');
    expect(reply.body?.result).toBeUndefined();
  });

  it("changing the tenant's JWT audience takes effect at once (verifier cache follows the revision)", async () => {
    const moved = await seedTenant(gateway.app, {
      slug: 'moved',
      auth: {
        jwt: {
          issuer: jwks.url,
          audience: 'urn:old',
          jwksUri: jwks.jwksUri,
          algorithms: ['RS256'],
        },
      },
    });
    const url = `${gateway.mcpUrl}/moved`;
    const oldToken = await jwks.sign({}, { audience: 'urn:old' });
    const newToken = await jwks.sign({}, { audience: 'urn:new' });
    expect((await modern(url, oldToken, 'tools/list')).status).toBe(200);
    expect((await modern(url, newToken, 'tools/list')).status).toBe(401);
    await gateway.app.get(TenantService).update(moved.tenant, {
      auth: {
        jwt: {
          issuer: jwks.url,
          audience: 'urn:new',
          jwksUri: jwks.jwksUri,
          algorithms: ['RS256'],
        },
      },
    });
    const refused = await modern(url, oldToken, 'tools/list');
    expect(refused.status).toBe(401);
    expect(challengeOf(refused).error).toBe('invalid_token');
    expect((await modern(url, newToken, 'tools/list')).status).toBe(200);
  });

  it('a key whose roles do not grant mcp:use: 403 without error code', async () => {
    const key = await createApiKey(gateway.app, tenant.id, {
      name: 'operator',
      roles: ['tenant-operator'],
    });
    const reply = await modern(endpoint, key.secret, 'tools/list');
    expect(reply.status).toBe(403);
    expect(challengeOf(reply).error).toBeUndefined();
  });

  it('an unknown tenant: 404 before any authentication, no challenge, no metadata', async () => {
    for (const token of [undefined, apiKey, tokens.valid, 'garbage']) {
      const replies = [
        await modern(`${gateway.mcpUrl}/nope`, token, 'tools/list'),
        await initialize(`${gateway.mcpUrl}/nope`, token),
      ];
      for (const reply of replies) {
        expect(reply.status).toBe(404);
        expect(reply.body?.error).toEqual({ code: -32600, message: 'Unknown tenant' });
        expect(reply.headers.get('www-authenticate')).toBeNull();
      }
    }
    const metadata = await fetch(
      `${gateway.baseUrl}/.well-known/oauth-protected-resource/mcp/nope`,
    );
    expect(metadata.status).toBe(404);
  });

  it('a tenant suspended while cached: 403 at once (no cache wait), then 200 when reactivated', async () => {
    const frozen = await seedTenant(gateway.app, { slug: 'frozen' });
    const url = `${gateway.mcpUrl}/frozen`;
    const metadataUrl = `${gateway.baseUrl}/.well-known/oauth-protected-resource/mcp/frozen`;
    // Warm the per-node tenant cache (2 s) first.
    expect((await modern(url, frozen.apiKey, 'tools/list')).status).toBe(200);
    expect((await fetch(metadataUrl)).status).toBe(200);

    const tenants = gateway.app.get(TenantService);
    await tenants.update(frozen.tenant, { status: 'suspended' });
    for (const token of [frozen.apiKey, undefined]) {
      for (const reply of [await modern(url, token, 'tools/list'), await initialize(url, token)]) {
        expect(reply.status).toBe(403);
        expect(reply.body?.error).toEqual({ code: -32600, message: 'Tenant suspended' });
        expect(reply.headers.get('www-authenticate')).toBeNull();
      }
    }
    expect((await fetch(metadataUrl)).status).toBe(404);

    await tenants.update(frozen.tenant, { status: 'active' });
    expect((await modern(url, frozen.apiKey, 'tools/list')).status).toBe(200);
  });

  it('a 2025 session of a tenant suspended afterwards is refused (403)', async () => {
    const paused = await seedTenant(gateway.app, { slug: 'paused' });
    const url = `${gateway.mcpUrl}/paused`;
    const sessionId = await openSession(url, paused.apiKey);
    expect((await legacy(url, paused.apiKey, sessionId, 'ping')).status).toBe(200);
    await gateway.app.get(TenantService).update(paused.tenant, { status: 'suspended' });
    expect((await legacy(url, paused.apiKey, sessionId, 'ping')).status).toBe(403);
  });
});

// ---------------------------------------------------------------------------------------------

describe('per-tool scopes and policies', () => {
  let gateway: RunningGateway;
  let jwks: JwksServer;
  let endpoint: string;
  let plainKey: string;
  let adminKey: string;
  let metadataUrl: string;

  beforeAll(async () => {
    gateway = await startGateway({ LOG_LEVEL: process.env.E2E_LOG ?? 'silent' });
    jwks = await startJwksServer();
    endpoint = `${gateway.mcpUrl}/scoped`;
    metadataUrl = `${gateway.baseUrl}/.well-known/oauth-protected-resource/mcp/scoped`;
    const seeded = await seedTenant(gateway.app, {
      slug: 'scoped',
      auth: {
        jwt: {
          issuer: jwks.url,
          audience: endpoint,
          jwksUri: jwks.jwksUri,
          algorithms: ['RS256', 'ES256'],
        },
      },
      policies: [
        { tool: 'test_simple_text', requiredScopes: ['tools:admin'] },
        { tool: 'test_image_content', disabled: true },
        { tool: 'test_audio_content', rename: 'renamed_audio' },
      ],
    });
    plainKey = seeded.apiKey;
    adminKey = (
      await createApiKey(gateway.app, seeded.tenant.id, {
        name: 'admin',
        scopes: ['tools:admin', 'other:scope'],
      })
    ).secret;
  });

  afterAll(async () => {
    await gateway?.close();
    await jwks?.close();
  });

  const listBoth = async (token: string): Promise<string[][]> => {
    const sessionId = await openSession(endpoint, token);
    return [
      toolNames(await modern(endpoint, token, 'tools/list')),
      toolNames(await legacy(endpoint, token, sessionId, 'tools/list')),
    ];
  };

  it('a key without the scope does not see the scoped tool (both eras)', async () => {
    for (const names of await listBoth(plainKey)) {
      expect(names).not.toContain('test_simple_text');
      expect(names).toContain('test_error_handling');
    }
  });

  it('a key with the scope sees it (both eras)', async () => {
    for (const names of await listBoth(adminKey)) {
      expect(names).toContain('test_simple_text');
    }
  });

  it('a JWT with the scope (scope claim) sees it; one without does not', async () => {
    const withScope = await jwks.sign({ scope: 'openid tools:admin' }, { audience: endpoint });
    const without = await jwks.sign({ scope: 'openid' }, { audience: endpoint });
    for (const names of await listBoth(withScope)) {
      expect(names).toContain('test_simple_text');
    }
    for (const names of await listBoth(without)) {
      expect(names).not.toContain('test_simple_text');
    }
    const call = await modern(endpoint, withScope, 'tools/call', { name: 'test_simple_text' });
    expect(call.status).toBe(200);
    expect(textOf(call)).toBe(SIMPLE_TEXT);
  });

  const expectInsufficientScope = (reply: Reply): void => {
    expect(reply.status).toBe(403);
    const challenge = challengeOf(reply);
    expect(challenge.error).toBe('insufficient_scope');
    expect(challenge.scope).toBe('tools:admin');
    expect(challenge.resource_metadata).toBe(metadataUrl);
    expect(reply.body?.error).toEqual({
      code: -32600,
      message: 'Insufficient scope',
      data: { requiredScopes: ['tools:admin'] },
    });
    expect(reply.text).not.toContain(SIMPLE_TEXT);
  };

  it('tools/call without the scope: HTTP 403 insufficient_scope (2026-07-28)', async () => {
    const reply = await modern(endpoint, plainKey, 'tools/call', { name: 'test_simple_text' });
    expectInsufficientScope(reply);
    expect(reply.body?.id).toEqual(expect.any(Number));
  });

  it('tools/call without the scope: HTTP 403 insufficient_scope (2025 session)', async () => {
    const sessionId = await openSession(endpoint, plainKey);
    const reply = await legacy(endpoint, plainKey, sessionId, 'tools/call', {
      name: 'test_simple_text',
      arguments: {},
    });
    expectInsufficientScope(reply);
  });

  it('tools/call with the scope answers the result in both eras', async () => {
    const call = await modern(endpoint, adminKey, 'tools/call', { name: 'test_simple_text' });
    expect(call.status).toBe(200);
    expect(textOf(call)).toBe(SIMPLE_TEXT);
    const sessionId = await openSession(endpoint, adminKey);
    const old = await legacy(endpoint, adminKey, sessionId, 'tools/call', {
      name: 'test_simple_text',
      arguments: {},
    });
    expect(old.status).toBe(200);
    expect(textOf(old)).toBe(SIMPLE_TEXT);
  });

  it('the metadata advertises the scopes tools require', async () => {
    const doc = (await (await fetch(metadataUrl)).json()) as Json;
    expect(doc.scopes_supported).toEqual(['tools:admin']);
    expect(doc.resource).toBe(endpoint);
  });

  it('a disabled tool is neither listed nor callable, for any key, in either era', async () => {
    for (const token of [plainKey, adminKey]) {
      for (const names of await listBoth(token)) {
        expect(names).not.toContain('test_image_content');
      }
      const call = await modern(endpoint, token, 'tools/call', { name: 'test_image_content' });
      expect(call.status).toBe(400);
      expect(call.body?.error?.code).toBe(-32602);
      expect(call.body?.result).toBeUndefined();
      const sessionId = await openSession(endpoint, token);
      const old = await legacy(endpoint, token, sessionId, 'tools/call', {
        name: 'test_image_content',
        arguments: {},
      });
      expect(old.status).toBe(200);
      expect(old.body?.error?.code).toBe(-32602);
      expect(old.body?.result).toBeUndefined();
    }
  });

  it('a renamed tool is listed and callable under its new name only', async () => {
    for (const names of await listBoth(plainKey)) {
      expect(names).toContain('renamed_audio');
      expect(names).not.toContain('test_audio_content');
    }
    const renamed = await modern(endpoint, plainKey, 'tools/call', { name: 'renamed_audio' });
    expect(renamed.status).toBe(200);
    expect(renamed.body?.result?.content?.[0]?.type).toBe('audio');
    const original = await modern(endpoint, plainKey, 'tools/call', {
      name: 'test_audio_content',
    });
    expect(original.status).toBe(400);
    expect(original.body?.error?.code).toBe(-32602);

    const sessionId = await openSession(endpoint, plainKey);
    const old = await legacy(endpoint, plainKey, sessionId, 'tools/call', {
      name: 'renamed_audio',
      arguments: {},
    });
    expect(old.body?.result?.content?.[0]?.type).toBe('audio');
    const oldOriginal = await legacy(endpoint, plainKey, sessionId, 'tools/call', {
      name: 'test_audio_content',
      arguments: {},
    });
    expect(oldOriginal.body?.error?.code).toBe(-32602);
  });
});

// ---------------------------------------------------------------------------------------------

describe('tenant isolation', () => {
  let gateway: RunningGateway;
  let jwks: JwksServer;
  let a: { tenant: TenantEntity; apiKey: string; url: string };
  let b: { tenant: TenantEntity; apiKey: string; url: string };
  let a2Key: string;
  let bRevokedKey: string;

  const jwtSettings = (audience: string) => ({
    jwt: { issuer: jwks.url, audience, jwksUri: jwks.jwksUri, algorithms: ['RS256'] },
  });

  beforeAll(async () => {
    gateway = await startGateway({ LOG_LEVEL: process.env.E2E_LOG ?? 'silent' });
    jwks = await startJwksServer();
    const aUrl = `${gateway.mcpUrl}/tenant-a`;
    const bUrl = `${gateway.mcpUrl}/tenant-b`;
    a = {
      ...(await seedTenant(gateway.app, {
        slug: 'tenant-a',
        fixtures: ['conformance'],
        auth: jwtSettings(aUrl),
      })),
      url: aUrl,
    };
    b = {
      ...(await seedTenant(gateway.app, {
        slug: 'tenant-b',
        fixtures: ['echo'],
        auth: jwtSettings(bUrl),
      })),
      url: bUrl,
    };
    a2Key = (await createApiKey(gateway.app, a.tenant.id, { name: 'second' })).secret;
    const revoked = await createApiKey(gateway.app, b.tenant.id, { name: 'revoked' });
    await gateway.app.get(ApiKeyService).revoke(b.tenant.id, revoked.id);
    bRevokedKey = revoked.secret;
  });

  afterAll(async () => {
    await gateway?.close();
    await jwks?.close();
  });

  const leaksNothing = (reply: Reply): void => {
    for (const secret of [
      a.tenant.id,
      b.tenant.id,
      a.tenant.name,
      b.tenant.name,
      'tenant-a',
      'echo',
      'test_',
      'test://',
      SIMPLE_TEXT,
      STATIC_TEXT,
    ]) {
      expect(reply.text).not.toContain(secret);
    }
  };

  it("A's API key on B's endpoint: 401, the same answer as an unknown key", async () => {
    for (const send of [
      (token: string) => modern(b.url, token, 'tools/list'),
      (token: string) => initialize(b.url, token),
    ]) {
      const cross = await send(a.apiKey);
      const unknown = await send(bRevokedKey);
      expect(cross.status).toBe(401);
      expect(unknown.status).toBe(401);
      expect(cross.body?.error).toEqual(unknown.body?.error);
      expect(cross.headers.get('www-authenticate')).toBe(unknown.headers.get('www-authenticate'));
      expect(challengeOf(cross).error).toBe('invalid_token');
      leaksNothing(cross);
    }
  });

  it("A's JWT (audience A) on B's endpoint: 401 invalid_token", async () => {
    const token = await jwks.sign({}, { audience: a.url });
    expect((await modern(a.url, token, 'tools/list')).status).toBe(200);
    for (const reply of [
      await modern(b.url, token, 'tools/list'),
      await initialize(b.url, token),
    ]) {
      expect(reply.status).toBe(401);
      expect(challengeOf(reply).error).toBe('invalid_token');
      leaksNothing(reply);
    }
  });

  it('the same JWT subject is a different principal per tenant (sessions do not cross)', async () => {
    const tokenA = await jwks.sign({}, { audience: a.url, subject: 'shared-user' });
    const tokenB = await jwks.sign({}, { audience: b.url, subject: 'shared-user' });
    const sessionA = await openSession(a.url, tokenA);
    const reply = await legacy(b.url, tokenB, sessionA, 'tools/list');
    expect(reply.status).toBe(404);
    expect(reply.body?.error).toEqual({ code: -32600, message: 'Session not found' });
  });

  describe("A's 2025 session id", () => {
    let sessionA: string;

    beforeAll(async () => {
      sessionA = await openSession(a.url, a.apiKey);
    });

    it("works for A's own key", async () => {
      const reply = await legacy(a.url, a.apiKey, sessionA, 'tools/list');
      expect(toolNames(reply)).toContain('test_simple_text');
    });

    it("on B's endpoint without credentials: 401", async () => {
      const reply = await legacy(b.url, undefined, sessionA, 'tools/list');
      expect(reply.status).toBe(401);
      leaksNothing(reply);
    });

    it("on B's endpoint with A's key: 401", async () => {
      const reply = await legacy(b.url, a.apiKey, sessionA, 'tools/list');
      expect(reply.status).toBe(401);
      leaksNothing(reply);
    });

    it.each([
      ['tools/list', {}],
      ['tools/call', { name: 'test_simple_text', arguments: {} }],
      ['resources/list', {}],
      ['resources/read', { uri: 'test://static-text' }],
      ['resources/templates/list', {}],
      ['prompts/list', {}],
      ['prompts/get', { name: 'test_simple_prompt' }],
      [
        'completion/complete',
        {
          ref: { type: 'ref/prompt', name: 'test_prompt_with_arguments' },
          argument: { name: 'arg1', value: 't' },
        },
      ],
      ['resources/subscribe', { uri: 'test://watched-resource' }],
      ['logging/setLevel', { level: 'debug' }],
      ['ping', {}],
    ])("%s with B's key on B's endpoint: 404 Session not found", async (method, params) => {
      const reply = await legacy(b.url, b.apiKey, sessionA, method, params);
      expect(reply.status).toBe(404);
      expect(reply.body?.error).toEqual({ code: -32600, message: 'Session not found' });
      leaksNothing(reply);
    });

    it('used by another key of tenant A (another principal): 404 Session not found', async () => {
      for (const method of ['tools/list', 'ping']) {
        const reply = await legacy(a.url, a2Key, sessionA, method);
        expect(reply.status).toBe(404);
        expect(reply.body?.error).toEqual({ code: -32600, message: 'Session not found' });
      }
    });

    it("GET and DELETE with B's key: 404 Session not found, and the session survives", async () => {
      const get = await fetch(b.url, {
        headers: { accept: 'text/event-stream', 'mcp-session-id': sessionA, ...bearer(b.apiKey) },
      });
      expect(get.status).toBe(404);
      await get.body?.cancel();
      const del = await fetch(b.url, {
        method: 'DELETE',
        headers: { 'mcp-session-id': sessionA, ...bearer(b.apiKey) },
      });
      expect(del.status).toBe(404);
      const delOtherKey = await fetch(a.url, {
        method: 'DELETE',
        headers: { 'mcp-session-id': sessionA, ...bearer(a2Key) },
      });
      expect(delOtherKey.status).toBe(404);
      expect((await legacy(a.url, a.apiKey, sessionA, 'ping')).status).toBe(200);
    });
  });

  describe("B's key sees only B's catalog", () => {
    it.each(['2026-07-28', '2025 session'])('tools/list (%s): only echo', async (era) => {
      const reply =
        era === MODERN
          ? await modern(b.url, b.apiKey, 'tools/list')
          : await legacy(b.url, b.apiKey, await openSession(b.url, b.apiKey), 'tools/list');
      expect(toolNames(reply)).toEqual(['echo']);
    });

    // [method, params, expected HTTP status (2026-07-28), what B must get]
    const probes: [string, Json, number, 'error' | Json][] = [
      ['tools/call', { name: 'test_simple_text', arguments: {} }, 400, 'error'],
      ['resources/list', {}, 200, { resources: [] }],
      ['resources/read', { uri: 'test://static-text' }, 400, 'error'],
      ['resources/templates/list', {}, 200, { resourceTemplates: [] }],
      ['prompts/list', {}, 200, { prompts: [] }],
      ['prompts/get', { name: 'test_simple_prompt' }, 400, 'error'],
      [
        'completion/complete',
        {
          ref: { type: 'ref/prompt', name: 'test_prompt_with_arguments' },
          argument: { name: 'arg1', value: 't' },
        },
        400,
        'error',
      ],
      [
        'completion/complete',
        {
          ref: { type: 'ref/resource', uri: 'test://template/{id}/data' },
          argument: { name: 'id', value: '1' },
        },
        400,
        'error',
      ],
    ];

    it.each(probes)('%s %j (2026-07-28)', async (method, params, status, expected) => {
      const reply = await modern(b.url, b.apiKey, method, params);
      expect(reply.status).toBe(status);
      if (expected === 'error') {
        expect(reply.body?.error?.code).toEqual(expect.any(Number));
        expect(reply.body?.result).toBeUndefined();
      } else {
        expect(reply.body?.result).toMatchObject(expected);
      }
      expect(reply.text).not.toContain(SIMPLE_TEXT);
      expect(reply.text).not.toContain(STATIC_TEXT);
    });

    it.each(probes)('%s %j (2025 session)', async (method, params, _status, expected) => {
      const sessionId = await openSession(b.url, b.apiKey);
      const reply = await legacy(b.url, b.apiKey, sessionId, method, params);
      expect(reply.status).toBe(200);
      if (expected === 'error') {
        expect(reply.body?.error?.code).toEqual(expect.any(Number));
        expect(reply.body?.result).toBeUndefined();
      } else {
        expect(reply.body?.result).toMatchObject(expected);
      }
      expect(reply.text).not.toContain(SIMPLE_TEXT);
      expect(reply.text).not.toContain(STATIC_TEXT);
    });

    it("resources/subscribe to A's resource URI (2025 session): B never hears of A's updates", async () => {
      const sessionA = await openSession(a.url, a.apiKey);
      const sessionB = await openSession(b.url, b.apiKey);
      for (const [url, token, sessionId] of [
        [a.url, a.apiKey, sessionA],
        [b.url, b.apiKey, sessionB],
      ]) {
        const sub = await legacy(url, token, sessionId, 'resources/subscribe', {
          uri: 'test://watched-resource',
        });
        // The engine accepts any URI (no existence check in the tenant's catalog): see report.
        expect(sub.body).toMatchObject({ result: {} });
      }
      const streamA = await openStream(a.url, a.apiKey, sessionA);
      const streamB = await openStream(b.url, b.apiKey, sessionB);
      try {
        const trigger = await modern(a.url, a.apiKey, 'tools/call', {
          name: 'test_trigger_resource_update',
        });
        expect(trigger.status).toBe(200);
        // Positive control: A's own subscription fires.
        await streamA.waitFor('notifications/resources/updated');
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect(streamB.text()).not.toContain('notifications/resources/updated');
        expect(streamB.text()).not.toContain('watched-resource');
      } finally {
        streamA.close();
        streamB.close();
      }
    });

    it("logging/setLevel and ping work on B's own session", async () => {
      const sessionId = await openSession(b.url, b.apiKey);
      const level = await legacy(b.url, b.apiKey, sessionId, 'logging/setLevel', {
        level: 'debug',
      });
      expect(level.body).toMatchObject({ result: {} });
      const ping = await legacy(b.url, b.apiKey, sessionId, 'ping');
      expect(ping.body).toMatchObject({ result: {} });
    });

    it("A's key still sees A's catalog (the probes are not vacuous)", async () => {
      const read = await modern(a.url, a.apiKey, 'resources/read', { uri: 'test://static-text' });
      expect(read.body?.result?.contents?.[0]?.text).toBe(STATIC_TEXT);
      const prompt = await modern(a.url, a.apiKey, 'prompts/get', { name: 'test_simple_prompt' });
      expect(prompt.status).toBe(200);
      const call = await modern(a.url, a.apiKey, 'tools/call', { name: 'test_simple_text' });
      expect(textOf(call)).toBe(SIMPLE_TEXT);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('MRTR requestState is bound to the principal', () => {
  let gateway: RunningGateway;
  let jwks: JwksServer;
  let url: string;
  let k1: string;
  let k2: string;
  let otherTenant: { apiKey: string; url: string };
  const TOOL = 'test_input_required_result_request_state';
  const CAPS = { elicitation: { form: {} } };
  const ANSWERS = { confirm: { action: 'accept', content: { ok: true } } };

  beforeAll(async () => {
    gateway = await startGateway({ LOG_LEVEL: process.env.E2E_LOG ?? 'silent' });
    jwks = await startJwksServer();
    url = `${gateway.mcpUrl}/mrtr`;
    const seeded = await seedTenant(gateway.app, {
      slug: 'mrtr',
      auth: {
        jwt: { issuer: jwks.url, audience: url, jwksUri: jwks.jwksUri, algorithms: ['RS256'] },
      },
    });
    k1 = seeded.apiKey;
    k2 = (await createApiKey(gateway.app, seeded.tenant.id, { name: 'k2' })).secret;
    otherTenant = {
      apiKey: (await seedTenant(gateway.app, { slug: 'mrtr-other' })).apiKey,
      url: `${gateway.mcpUrl}/mrtr-other`,
    };
  });

  afterAll(async () => {
    await gateway?.close();
    await jwks?.close();
  });

  const start = async (token: string, target = url): Promise<string> => {
    const first = await modern(
      target,
      token,
      'tools/call',
      { name: TOOL, arguments: {} },
      {
        capabilities: CAPS,
      },
    );
    expect(first.status).toBe(200);
    expect(first.body?.result).toMatchObject({
      resultType: 'input_required',
      inputRequests: { confirm: { method: 'elicitation/create' } },
      requestState: expect.any(String),
    });
    return first.body?.result?.requestState as string;
  };

  const retry = (token: string, requestState: string, target = url): Promise<Reply> =>
    modern(
      target,
      token,
      'tools/call',
      { name: TOOL, arguments: {}, inputResponses: ANSWERS, requestState },
      { capabilities: CAPS },
    );

  const expectRefused = (reply: Reply): void => {
    expect(reply.status).toBe(400);
    expect(reply.body?.error).toMatchObject({
      code: -32602,
      message: 'Invalid requestState: it belongs to another request',
    });
    expect(reply.text).not.toContain('state-ok');
  };

  it('another key of the same tenant cannot use it; the issuing key still can', async () => {
    const state = await start(k1);
    expectRefused(await retry(k2, state));
    const done = await retry(k1, state);
    expect(done.status).toBe(200);
    expect(done.body?.result?.resultType).toBe('complete');
    expect(textOf(done)).toBe('state-ok: requestState validated, confirmed=true');
  });

  it('a JWT user cannot use a state issued to another subject', async () => {
    const alice = await jwks.sign({}, { audience: url, subject: 'alice' });
    const bob = await jwks.sign({}, { audience: url, subject: 'bob' });
    const state = await start(alice);
    expectRefused(await retry(bob, state));
    expectRefused(await retry(k1, state));
    expect(textOf(await retry(alice, state))).toBe(
      'state-ok: requestState validated, confirmed=true',
    );
  });

  it("another tenant's key on its own endpoint cannot use it", async () => {
    const state = await start(k1);
    const reply = await retry(otherTenant.apiKey, state, otherTenant.url);
    expectRefused(reply);
  });

  it('a state is single-use, even for its owner', async () => {
    const state = await start(k1);
    expect((await retry(k1, state)).status).toBe(200);
    const again = await retry(k1, state);
    expect(again.status).toBe(400);
    expect(again.body?.error).toMatchObject({
      code: -32602,
      message: 'Invalid requestState: already used',
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('official SDK clients on a tenant endpoint', () => {
  let gateway: RunningGateway;
  let jwks: JwksServer;
  let url: string;
  let apiKey: string;
  const open: { close(): Promise<void> }[] = [];

  beforeAll(async () => {
    gateway = await startGateway({ LOG_LEVEL: process.env.E2E_LOG ?? 'silent' });
    jwks = await startJwksServer();
    url = `${gateway.mcpUrl}/sdk`;
    apiKey = (
      await seedTenant(gateway.app, {
        slug: 'sdk',
        auth: {
          jwt: {
            issuer: jwks.url,
            audience: url,
            jwksUri: jwks.jwksUri,
            algorithms: ['RS256', 'ES256'],
          },
        },
      })
    ).apiKey;
  });

  afterEach(async () => {
    await closeAll(...open.splice(0));
  });

  afterAll(async () => {
    await gateway?.close();
    await jwks?.close();
  });

  const credential = async (kind: string): Promise<string> =>
    kind === 'api key' ? apiKey : jwks.sign({}, { audience: url, alg: 'ES256' });

  describe.each(['api key', 'jwt'])('with a %s', (kind) => {
    it.each(['modern', 'legacy'] as const)(
      'SDK v2 (%s) lists tools and calls test_simple_text',
      async (mode) => {
        const built = buildV2(url, mode, await credential(kind));
        open.push(built.client);
        await built.connect();
        expect(built.client.getProtocolEra()).toBe(mode);
        const { tools } = await built.client.listTools();
        expect(tools.map((t) => t.name)).toContain('test_simple_text');
        const result = await built.client.callTool({ name: 'test_simple_text', arguments: {} });
        expect(result.content).toEqual([{ type: 'text', text: SIMPLE_TEXT }]);
        const posts = built.recorder.exchanges.filter((e) => e.httpMethod === 'POST');
        expect(posts.length).toBeGreaterThan(0);
        for (const exchange of posts) {
          expect(exchange.requestHeaders.authorization).toMatch(/^Bearer /);
          expect(exchange.status).not.toBe(401);
        }
      },
    );

    it('SDK v1 lists tools and calls test_simple_text', async () => {
      const built = buildV1(url, await credential(kind));
      open.push(built.client);
      await built.connect();
      const { tools } = await built.client.listTools();
      expect(tools.map((t) => t.name)).toContain('test_simple_text');
      const result = await built.client.callTool({ name: 'test_simple_text', arguments: {} });
      expect(result.content).toEqual([{ type: 'text', text: SIMPLE_TEXT }]);
    });
  });

  /** SDK v2 reports the HTTP status in `data.status` (SdkHttpError), v1 in `code`. */
  const httpStatusOf = (failure: Rejection): unknown =>
    (failure.data as { status?: unknown } | undefined)?.status ?? failure.code;

  const refusedClients: [string, () => ReturnType<typeof buildV1> | ReturnType<typeof buildV2>][] =
    [
      ['SDK v2 (modern)', () => buildV2(url, 'modern', undefined)],
      ['SDK v2 (legacy)', () => buildV2(url, 'legacy', undefined)],
      ['SDK v1', () => buildV1(url, undefined)],
    ];

  it.each(refusedClients)(
    '%s without credentials fails with a 401, and the metadata is discoverable',
    async (_name, build) => {
      const built = build();
      open.push(built.client);
      const failure = await rejectionOf(built.connect());
      expect(httpStatusOf(failure)).toBe(401);
      const refused = built.recorder.exchanges.find((e) => e.status === 401);
      expect(refused).toBeDefined();
      const challenge = challengeOf(refused as Exchange);
      expect(challenge.resource_metadata).toBe(
        `${gateway.baseUrl}/.well-known/oauth-protected-resource/mcp/sdk`,
      );
      const doc = (await (await fetch(challenge.resource_metadata)).json()) as Json;
      expect(doc).toMatchObject({ resource: url, authorization_servers: [jwks.url] });
    },
  );

  it.each(refusedClients.map(([name]) => name))(
    '%s with a forged JWT fails with a 401 invalid_token',
    async (name) => {
      const forged = await jwks.foreignKeySign({}, { audience: url });
      const built =
        name === 'SDK v1'
          ? buildV1(url, forged)
          : buildV2(url, name.includes('modern') ? 'modern' : 'legacy', forged);
      open.push(built.client);
      const failure = await rejectionOf(built.connect());
      expect(httpStatusOf(failure)).toBe(401);
      const refused = built.recorder.exchanges.find((e) => e.status === 401);
      expect(challengeOf(refused as Exchange).error).toBe('invalid_token');
    },
  );
});

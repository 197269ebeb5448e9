import { randomUUID } from 'node:crypto';
import type { Type } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants';
import { RequestMethod } from '@nestjs/common';
import type { FastifyInstance, HTTPMethods } from 'fastify';
import type { DataSource } from 'typeorm';
import { getDataSourceToken } from '@nestjs/typeorm';
import { BackendEntity } from '@portico/persistence';
import { AdminModule, TenantService } from '@portico/tenancy';
import { testDatabaseEnv } from '@portico/testing';
import { GatewayAdminModule } from '../apps/gateway/src/admin/gateway-admin.module';
import { RunningGateway, startGateway } from './support/gateway';
import { createApiKey, seedTenant } from './support/tenants';

const BOOTSTRAP = 'admin-e2e-bootstrap-token-0123456789abcdef';
const PROBLEM_JSON = 'application/problem+json';

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are asserted field by field
  body: any;
}

interface CallOptions {
  token?: string | null;
  body?: unknown;
  /** Sent verbatim as the JSON body (malformed JSON tests). */
  raw?: string;
  headers?: Record<string, string>;
}

type Api = (method: string, path: string, options?: CallOptions) => Promise<Reply>;

function apiFor(baseUrl: string): Api {
  return async (method, path, options = {}) => {
    const headers: Record<string, string> = { ...options.headers };
    const token = options.token === undefined ? BOOTSTRAP : options.token;
    if (token !== null) {
      headers.authorization = `Bearer ${token}`;
    }
    let body: string | undefined;
    if (options.raw !== undefined || options.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = options.raw ?? JSON.stringify(options.body);
    }
    const response = await fetch(`${baseUrl}/admin/v1${path}`, { method, headers, body });
    const text = await response.text();
    let parsed: unknown = undefined;
    if (text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    return { status: response.status, headers: response.headers, text, body: parsed };
  };
}

function expectProblem(reply: Reply, status: number): void {
  expect({ status: reply.status, type: reply.headers.get('content-type') }).toEqual({
    status,
    type: expect.stringContaining(PROBLEM_JSON),
  });
  expect(reply.body).toEqual(
    expect.objectContaining({
      type: expect.any(String),
      title: expect.any(String),
      status,
      detail: expect.any(String),
      instance: expect.stringMatching(/^\/admin\/v1\//),
    }),
  );
}

interface AdminRoute {
  method: HTTPMethods;
  /** Nest/Fastify form: /admin/v1/tenants/:slug/backends/:id */
  path: string;
}

/** Every admin route as the controllers declare it: the list the router and the docs must match. */
function declaredAdminRoutes(): AdminRoute[] {
  const controllers = [AdminModule, GatewayAdminModule].flatMap(
    (module) => (Reflect.getMetadata('controllers', module) as Type<unknown>[] | undefined) ?? [],
  );
  const routes: AdminRoute[] = [];
  for (const controller of controllers) {
    const base = Reflect.getMetadata(PATH_METADATA, controller) as string;
    const proto = controller.prototype as Record<string, unknown>;
    for (const name of Object.getOwnPropertyNames(proto)) {
      const handler = proto[name];
      if (name === 'constructor' || typeof handler !== 'function') {
        continue;
      }
      const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
      const sub = Reflect.getMetadata(PATH_METADATA, handler) as string | undefined;
      if (method === undefined || sub === undefined) {
        continue;
      }
      const path = [base, sub].filter((part) => part !== '/' && part !== '').join('/');
      routes.push({ method: RequestMethod[method], path });
    }
  }
  return routes;
}

const toOpenApi = (path: string): string => path.replace(/:([A-Za-z]+)/g, '{$1}');

function concrete(route: AdminRoute, slug: string, id = randomUUID()): string {
  return route.path
    .replace(/^\/admin\/v1/, '')
    .replace(':slug', slug)
    .replace(':id', id);
}

const isTenantRoute = (route: AdminRoute): boolean => route.path.includes('/tenants/:slug/');
const isRead = (route: AdminRoute): boolean => route.method === 'GET';

/** The main flow through every resource; run on SQLite and on PostgreSQL. */
async function crudFlow(api: Api, slug: string): Promise<void> {
  // Tenants
  const created = await api('POST', '/tenants', { body: { slug, name: 'Acme' } });
  expect(created.status).toBe(201);
  expect(created.body).toMatchObject({ slug, name: 'Acme', status: 'active', revision: 1 });
  const listed = await api('GET', '/tenants?offset=0&limit=100');
  expect(listed.status).toBe(200);
  expect(listed.body).toMatchObject({ offset: 0, limit: 100 });
  expect(listed.body.items.map((t: { slug: string }) => t.slug)).toContain(slug);
  expect(listed.body.total).toBeGreaterThanOrEqual(1);
  expect((await api('GET', `/tenants/${slug}`)).body).toMatchObject({ id: created.body.id });
  const patched = await api('PATCH', `/tenants/${slug}`, {
    body: { name: 'Acme Inc', limits: { maxSessions: 5 } },
  });
  expect(patched.status).toBe(200);
  expect(patched.body).toMatchObject({
    slug,
    name: 'Acme Inc',
    status: 'active',
    limits: { maxSessions: 5 },
    revision: 2,
  });

  // Backends: credentials go in, never come out.
  const base = `/tenants/${slug}`;
  const backend = await api('POST', `${base}/backends`, {
    body: {
      name: 'search',
      kind: 'fixture',
      target: 'echo',
      credentials: { token: 'plain-credential-value' },
    },
  });
  expect(backend.status).toBe(201);
  expect(backend.body).toMatchObject({ name: 'search', kind: 'fixture', hasCredentials: true });
  expect(backend.body).not.toHaveProperty('credentials');
  expect(backend.body).not.toHaveProperty('credentialsSealed');
  expect(backend.text).not.toContain('plain-credential-value');
  const backendPath = `${base}/backends/${backend.body.id}`;
  const one = await api('GET', backendPath);
  expect(one.body).toMatchObject({ id: backend.body.id, hasCredentials: true });
  expect(one.text).not.toContain('plain-credential-value');
  const all = await api('GET', `${base}/backends`);
  expect(all.body).toHaveLength(1);
  expect(all.text).not.toContain('plain-credential-value');
  // Catalogs rebuild on the tenant's revision: every change bumps it.
  expect((await api('GET', `/tenants/${slug}`)).body.revision).toBe(3);
  const cleared = await api('PATCH', backendPath, {
    body: { target: 'conformance', credentials: null },
  });
  expect(cleared.body).toMatchObject({
    target: 'conformance',
    name: 'search',
    hasCredentials: false,
  });
  const resealed = await api('PATCH', backendPath, { body: { credentials: { token: 'other' } } });
  expect(resealed.body).toMatchObject({ target: 'conformance', hasCredentials: true });
  expect((await api('GET', `/tenants/${slug}`)).body.revision).toBe(5);
  expect(
    (
      await api('POST', `${base}/backends`, {
        body: { name: 'search', kind: 'fixture', target: 'echo' },
      })
    ).status,
  ).toBe(409);
  expect((await api('DELETE', backendPath)).status).toBe(204);
  expectProblem(await api('GET', backendPath), 404);
  expectProblem(await api('DELETE', backendPath), 404);

  // Tool policies
  const policy = await api('POST', `${base}/tool-policies`, {
    body: {
      tool: 'echo',
      requiredScopes: ['tools:echo'],
      description: 'Says it back',
      rename: 'say',
      annotations: { readOnlyHint: true },
    },
  });
  expect(policy.status).toBe(201);
  expect(policy.body).toMatchObject({ tool: 'echo', disabled: false, rename: 'say' });
  const policyPath = `${base}/tool-policies/${policy.body.id}`;
  expect((await api('GET', `${base}/tool-policies`)).body).toHaveLength(1);
  const disabled = await api('PATCH', policyPath, { body: { disabled: true } });
  expect(disabled.body).toMatchObject({
    tool: 'echo',
    disabled: true,
    rename: 'say',
    requiredScopes: ['tools:echo'],
    description: 'Says it back',
    annotations: { readOnlyHint: true },
  });
  expect((await api('GET', policyPath)).body).toMatchObject({ disabled: true });
  expect((await api('DELETE', policyPath)).status).toBe(204);
  expectProblem(await api('GET', policyPath), 404);

  // API keys: the secret once, then only its prefix.
  const key = await api('POST', `${base}/api-keys`, {
    body: { name: 'ci', roles: ['tenant-admin'], scopes: ['deploy'] },
  });
  expect(key.status).toBe(201);
  const secret = key.body.secret as string;
  expect(secret).toMatch(/^ptk_/);
  expect(key.body).toMatchObject({ name: 'ci', roles: ['tenant-admin'], revokedAt: null });
  expect(secret.startsWith(key.body.prefix as string)).toBe(true);
  const keys = await api('GET', `${base}/api-keys`);
  expect(keys.body).toHaveLength(1);
  for (const shown of [keys.body[0], (await api('GET', `${base}/api-keys/${key.body.id}`)).body]) {
    expect(Object.keys(shown).sort()).toEqual([
      'createdAt',
      'expiresAt',
      'id',
      'lastUsedAt',
      'name',
      'prefix',
      'revokedAt',
      'roles',
      'scopes',
    ]);
  }
  expect(keys.text).not.toContain(secret);
  expect((await api('GET', `${base}/backends`, { token: secret })).status).toBe(200);
  expect((await api('POST', `${base}/api-keys`, { body: { name: 'ci' } })).status).toBe(409);
  const revoked = await api('POST', `${base}/api-keys/${key.body.id}/revoke`);
  expect(revoked.status).toBe(200);
  expect(revoked.body.revokedAt).not.toBeNull();
  expectProblem(await api('GET', `${base}/backends`, { token: secret }), 401);
  const second = await api('POST', `${base}/api-keys`, { body: { name: 'other' } });
  expect(second.body.roles).toEqual(['tool-user']);
  expect((await api('DELETE', `${base}/api-keys/${second.body.id}`)).status).toBe(204);
  expect((await api('GET', `${base}/api-keys/${second.body.id}`)).body.revokedAt).not.toBeNull();
  expectProblem(await api('DELETE', `${base}/api-keys/${randomUUID()}`), 404);

  // Role bindings
  const binding = await api('POST', `${base}/role-bindings`, {
    body: { subject: 'user-1', role: 'tenant-operator' },
  });
  expect(binding.status).toBe(201);
  expect(binding.body).toMatchObject({ subject: 'user-1', role: 'tenant-operator' });
  expect((await api('GET', `${base}/role-bindings`)).body).toHaveLength(1);
  expectProblem(
    await api('POST', `${base}/role-bindings`, {
      body: { subject: 'user-1', role: 'tenant-operator' },
    }),
    409,
  );
  expect((await api('DELETE', `${base}/role-bindings/${binding.body.id}`)).status).toBe(204);
  expect((await api('GET', `${base}/role-bindings`)).body).toHaveLength(0);

  // Audit: every mutation above, newest first.
  const audit = await api('GET', `${base}/audit?limit=200`);
  expect(audit.status).toBe(200);
  const actions = (audit.body.items as { action: string }[]).map((e) => e.action);
  expect(new Set(actions)).toEqual(
    new Set([
      'tenant.create',
      'tenant.update',
      'backend.create',
      'backend.update',
      'backend.delete',
      'tool-policy.create',
      'tool-policy.update',
      'tool-policy.delete',
      'api-key.create',
      'api-key.revoke',
      'role-binding.create',
      'role-binding.delete',
    ]),
  );
  expect(actions[actions.length - 1]).toBe('tenant.create');
  expect(actions[0]).toBe('role-binding.delete');

  expect((await api('DELETE', `/tenants/${slug}`)).status).toBe(204);
  expectProblem(await api('GET', `/tenants/${slug}`), 404);
  expectProblem(await api('GET', `${base}/backends`), 404);
}

describe('Admin API', () => {
  let gateway: RunningGateway;
  let api: Api;

  beforeAll(async () => {
    gateway = await startGateway({ BOOTSTRAP_ADMIN_TOKEN: BOOTSTRAP });
    api = apiFor(gateway.baseUrl);
  });

  afterAll(async () => {
    await gateway.close();
  });

  it('manages every resource through its full lifecycle (SQLite)', async () => {
    await crudFlow(api, 'crud-sqlite');
  });

  it('never stores backend credentials in the clear', async () => {
    const slug = 'sealed';
    await api('POST', '/tenants', { body: { slug, name: 'Sealed' } });
    const created = await api('POST', `/tenants/${slug}/backends`, {
      body: {
        name: 'gh',
        kind: 'mcp-http',
        target: 'https://example.test/mcp',
        credentials: { token: 'tok-123456' },
      },
    });
    expect(created.status).toBe(201);
    const rows = await gateway.app
      .get<DataSource>(getDataSourceToken())
      .getRepository(BackendEntity)
      .findBy({ id: created.body.id as string });
    expect(rows[0].credentialsSealed).toEqual(expect.any(String));
    expect(rows[0].credentialsSealed).not.toContain('tok-123456');
    expect(gateway.app.get(TenantService).openCredentials(rows[0])).toEqual({
      token: 'tok-123456',
    });
  });

  describe('authentication and authorisation', () => {
    let tenantA: { slug: string; admin: string; operator: string; toolUser: string };
    let tenantB: { slug: string; id: string };

    beforeAll(async () => {
      const a = await seedTenant(gateway.app, { slug: 'auth-a', roles: ['tool-user'] });
      const b = await seedTenant(gateway.app, { slug: 'auth-b' });
      tenantA = {
        slug: 'auth-a',
        admin: (
          await createApiKey(gateway.app, a.tenant.id, { name: 'admin', roles: ['tenant-admin'] })
        ).secret,
        operator: (
          await createApiKey(gateway.app, a.tenant.id, { name: 'op', roles: ['tenant-operator'] })
        ).secret,
        toolUser: a.apiKey,
      };
      tenantB = { slug: 'auth-b', id: b.tenant.id };
    });

    it('answers 401 with a Bearer challenge when credentials are missing', async () => {
      for (const path of [
        '/tenants',
        `/tenants/${tenantA.slug}/backends`,
        '/tenants/nope/backends',
      ]) {
        const reply = await api('GET', path, { token: null });
        expectProblem(reply, 401);
        expect(reply.headers.get('www-authenticate')).toBe('Bearer realm="portico"');
      }
    });

    it('answers 401 for bad credentials', async () => {
      const fake = `ptk_${'x'.repeat(40)}`;
      for (const token of [fake, 'not-a-key', `${BOOTSTRAP}x`]) {
        const reply = await api('GET', `/tenants/${tenantA.slug}/backends`, { token });
        expectProblem(reply, 401);
        expect(reply.headers.get('www-authenticate')).toMatch(
          /^Bearer realm="portico", error="invalid_token"/,
        );
      }
      expectProblem(await api('GET', '/tenants', { token: fake }), 401);
    });

    it('answers 403 when the role is not enough', async () => {
      expectProblem(
        await api('GET', `/tenants/${tenantA.slug}/backends`, { token: tenantA.toolUser }),
        403,
      );
      expectProblem(await api('GET', '/tenants', { token: tenantA.admin }), 403);
      expectProblem(
        await api('POST', '/tenants', { token: tenantA.admin, body: { slug: 'x', name: 'x' } }),
        403,
      );
    });

    it('answers 404 on every route of another tenant, exactly as for a missing tenant', async () => {
      const routes = declaredAdminRoutes().filter(isTenantRoute);
      expect(routes.length).toBeGreaterThanOrEqual(20);
      for (const route of routes) {
        for (const slug of [tenantB.slug, 'no-such-tenant']) {
          const reply = await api(route.method, concrete(route, slug), {
            token: tenantA.admin,
            body: route.method === 'GET' || route.method === 'DELETE' ? undefined : {},
          });
          expect({ route: `${route.method} ${route.path}`, slug, status: reply.status }).toEqual({
            route: `${route.method} ${route.path}`,
            slug,
            status: 404,
          });
          expectProblem(reply, 404);
          expect(reply.body.detail).toBe('Tenant not found');
        }
      }
      // And nothing of B's changed: its backend is still there, untouched.
      const backends = await api('GET', `/tenants/${tenantB.slug}/backends`);
      expect(backends.body).toHaveLength(1);
    });

    it('lets a tenant-operator read but not write', async () => {
      const routes = declaredAdminRoutes().filter(isTenantRoute);
      for (const route of routes) {
        const reply = await api(route.method, concrete(route, tenantA.slug), {
          token: tenantA.operator,
          body: isRead(route) ? undefined : {},
        });
        // This gateway has no REDIS_URL: the queue routes answer 503 once access is granted.
        const readStatus = route.path.includes('/queue/')
          ? 503
          : route.path.endsWith(':id')
            ? 404
            : 200;
        const expected = isRead(route) ? readStatus : 403;
        expect({ route: `${route.method} ${route.path}`, status: reply.status }).toEqual({
          route: `${route.method} ${route.path}`,
          status: expected,
        });
      }
    });

    it('records failed and refused mutations in the audit trail', async () => {
      const requestId = randomUUID();
      await api('PATCH', `/tenants/${tenantA.slug}/backends/${randomUUID()}`, {
        token: tenantA.admin,
        body: { target: 'x' },
        headers: { 'x-request-id': requestId },
      });
      const audit = await api('GET', `/tenants/${tenantA.slug}/audit?outcome=error`, {
        token: tenantA.operator,
      });
      expect(audit.body.items).toEqual([
        expect.objectContaining({ action: 'backend.update', outcome: 'error', requestId }),
      ]);
      const refusedId = randomUUID();
      expectProblem(
        await api('POST', `/tenants/${tenantA.slug}/role-bindings`, {
          token: tenantA.operator,
          body: { subject: 's', role: 'tenant-admin' },
          headers: { 'x-request-id': refusedId },
        }),
        403,
      );
      const denied = await api('GET', `/tenants/${tenantA.slug}/audit?outcome=denied&limit=200`, {
        token: tenantA.operator,
      });
      expect(denied.body.items).toContainEqual(
        expect.objectContaining({
          action: 'role-binding.create',
          outcome: 'denied',
          requestId: refusedId,
          actor: expect.stringMatching(/^key:/),
        }),
      );
    });
  });

  describe('problem details', () => {
    it('lists every invalid field', async () => {
      const reply = await api('POST', '/tenants', {
        body: { slug: 'Bad Slug!', name: '', status: 'gone', limits: { maxSessions: 0 } },
      });
      expectProblem(reply, 400);
      const fields = (reply.body.errors as { field: string; messages: string[] }[]).map(
        (e) => e.field,
      );
      expect(fields.sort()).toEqual(['limits.maxSessions', 'name', 'slug', 'status']);
      for (const error of reply.body.errors as { messages: string[] }[]) {
        expect(error.messages.length).toBeGreaterThan(0);
      }
    });

    it('refuses unknown properties', async () => {
      const reply = await api('POST', '/tenants', {
        body: { slug: 'extra', name: 'E', owner: 'me' },
      });
      expectProblem(reply, 400);
      expect(reply.body.errors).toEqual([
        { field: 'owner', messages: [expect.stringContaining('owner')] },
      ]);
      expectProblem(await api('GET', '/tenants?offset=-1&page=2'), 400);
    });

    it('refuses reserved slugs', async () => {
      const reply = await api('POST', '/tenants', { body: { slug: 'admin', name: 'A' } });
      expectProblem(reply, 400);
      expect(reply.body.errors).toEqual([{ field: 'slug', messages: ['slug is reserved'] }]);
    });

    it('answers malformed JSON with 400 problem+json', async () => {
      const reply = await api('POST', '/tenants', { raw: '{"slug": "x",' });
      expectProblem(reply, 400);
      expect(reply.body.instance).toBe('/admin/v1/tenants');
    });

    it('answers a duplicate slug with 409', async () => {
      await api('POST', '/tenants', { body: { slug: 'twice', name: 'One' } });
      const reply = await api('POST', '/tenants', { body: { slug: 'twice', name: 'Two' } });
      expectProblem(reply, 409);
      expect(reply.body.detail).toContain('twice');
    });

    it('answers an unexpected failure with 500, a correlation id and no internals', async () => {
      const tenants = gateway.app.get(TenantService);
      const spy = jest
        .spyOn(tenants, 'list')
        .mockRejectedValueOnce(new Error('connection to db-internal.example:5432 lost'));
      const requestId = randomUUID();
      try {
        const reply = await api('GET', '/tenants', { headers: { 'x-request-id': requestId } });
        expectProblem(reply, 500);
        expect(reply.body.correlationId).toBe(requestId);
        expect(reply.text).not.toContain('db-internal');
        expect(reply.text).not.toMatch(/at .*\.ts:\d+/);
      } finally {
        spy.mockRestore();
      }
    });
  });

  describe('sessions', () => {
    it('lists and terminates a tenant’s live sessions, and only its own', async () => {
      const mine = await seedTenant(gateway.app, { slug: 'sess-a' });
      await seedTenant(gateway.app, { slug: 'sess-b' });
      const init = await fetch(`${gateway.mcpUrl}/sess-a`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${mine.apiKey}`,
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 0,
          method: 'initialize',
          params: {
            protocolVersion: '2025-06-18',
            capabilities: {},
            clientInfo: { name: 'admin-e2e', version: '1' },
          },
        }),
      });
      expect(init.status).toBe(200);
      await init.text();
      const sessionId = init.headers.get('mcp-session-id')!;

      const listed = await api('GET', '/tenants/sess-a/sessions');
      expect(listed.body).toEqual([
        expect.objectContaining({
          id: sessionId,
          protocolVersion: '2025-06-18',
          client: { name: 'admin-e2e', version: '1' },
        }),
      ]);
      expect((await api('GET', '/tenants/sess-b/sessions')).body).toEqual([]);
      expectProblem(await api('DELETE', `/tenants/sess-b/sessions/${sessionId}`), 404);

      expect((await api('DELETE', `/tenants/sess-a/sessions/${sessionId}`)).status).toBe(204);
      expect((await api('GET', '/tenants/sess-a/sessions')).body).toEqual([]);
      expectProblem(await api('DELETE', `/tenants/sess-a/sessions/${sessionId}`), 404);
      const audit = await api(
        'GET',
        '/tenants/sess-a/audit?action=session.terminate&outcome=success',
      );
      expect(audit.body).toMatchObject({
        total: 1,
        items: [{ target: sessionId, actor: 'bootstrap' }],
      });
    });
  });

  describe('audit', () => {
    it('filters by action, actor, outcome and time, newest first with paging', async () => {
      const slug = 'audited';
      const before = new Date(Date.now() - 1);
      await api('POST', '/tenants', { body: { slug, name: 'Audited' } });
      const requestId = randomUUID();
      for (const name of ['b1', 'b2', 'b3']) {
        await api('POST', `/tenants/${slug}/backends`, {
          body: { name, kind: 'fixture', target: 'echo' },
          headers: name === 'b3' ? { 'x-request-id': requestId } : {},
        });
      }
      const base = `/tenants/${slug}/audit`;
      const page = await api('GET', `${base}?action=backend.create&offset=0&limit=2`);
      expect(page.body).toMatchObject({ total: 3, offset: 0, limit: 2 });
      expect(page.body.items).toHaveLength(2);
      expect(page.body.items[0]).toMatchObject({
        action: 'backend.create',
        actor: 'bootstrap',
        outcome: 'success',
        requestId,
      });
      const at = (page.body.items as { at: string }[]).map((e) => Date.parse(e.at));
      expect(at[0]).toBeGreaterThanOrEqual(at[1]);
      expect((await api('GET', `${base}?actor=bootstrap`)).body.total).toBe(4);
      expect((await api('GET', `${base}?actor=someone-else`)).body.total).toBe(0);
      expect((await api('GET', `${base}?outcome=denied`)).body.total).toBe(0);
      expect((await api('GET', `${base}?from=${before.toISOString()}`)).body.total).toBe(4);
      expect((await api('GET', `${base}?to=${before.toISOString()}`)).body.total).toBe(0);
      expectProblem(await api('GET', `${base}?from=yesterday`), 400);
    });
  });

  describe('platform API keys', () => {
    it('replace the bootstrap token: admin API only, never a tenant endpoint, revocable', async () => {
      const created = await api('POST', '/api-keys', { body: { name: 'automation' } });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({ name: 'automation', roles: ['platform-admin'] });
      const secret = created.body.secret as string;
      expect(secret).toMatch(/^ptk_/);
      expect((await api('GET', '/tenants', { token: secret })).status).toBe(200);

      const listed = await api('GET', '/api-keys');
      expect(listed.body.map((k: { name: string }) => k.name)).toContain('automation');
      expect(JSON.stringify(listed.body)).not.toContain(secret);

      // A tenant endpoint does not accept platform credentials.
      await api('POST', '/tenants', { body: { slug: 'plat-probe', name: 'Probe' } });
      const mcp = await fetch(`${gateway.mcpUrl}/plat-probe`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${secret}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
      });
      expect(mcp.status).toBe(401);

      expect((await api('DELETE', `/api-keys/${created.body.id as string}`)).status).toBe(204);
      expectProblem(await api('GET', '/tenants', { token: secret }), 401);
      expectProblem(await api('DELETE', `/api-keys/${randomUUID()}`), 404);
    });

    it('are managed by platform admins only', async () => {
      const { tenant } = await seedTenant(gateway.app, { slug: 'plat-tenant' });
      const tenantAdmin = await createApiKey(gateway.app, tenant.id, {
        name: 'admin',
        roles: ['tenant-admin'],
      });
      expectProblem(
        await api('POST', '/api-keys', { token: tenantAdmin.secret, body: { name: 'x' } }),
        403,
      );
      expectProblem(await api('GET', '/api-keys', { token: tenantAdmin.secret }), 403);
      expectProblem(
        await api('POST', '/api-keys', { body: { name: 'x', roles: ['tool-user'] } }),
        400,
      );
    });
  });

  describe('OpenAPI', () => {
    it('serves the docs UI and documents exactly the routes the router has', async () => {
      const ui = await fetch(`${gateway.baseUrl}/admin/docs`);
      expect(ui.status).toBe(200);
      expect(await ui.text()).toContain('swagger');
      const json = await fetch(`${gateway.baseUrl}/admin/docs-json`);
      expect(json.status).toBe(200);
      const document = (await json.json()) as {
        paths: Record<string, Record<string, { security?: unknown[] }>>;
      };

      const fastify: FastifyInstance = gateway.app.getHttpAdapter().getInstance();
      const declared = declaredAdminRoutes();
      expect(declared.length).toBeGreaterThanOrEqual(25);
      for (const route of declared) {
        expect({
          route,
          routed: fastify.hasRoute({ method: route.method, url: route.path }),
        }).toEqual({
          route,
          routed: true,
        });
      }
      const documented = Object.entries(document.paths).flatMap(([path, methods]) =>
        Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`),
      );
      expect(documented.sort()).toEqual(
        declared.map((r) => `${r.method} ${toOpenApi(r.path)}`).sort(),
      );
      // Every documented route carries the bearer scheme.
      for (const methods of Object.values(document.paths)) {
        for (const operation of Object.values(methods)) {
          expect(operation.security).toEqual([{ bearer: [] }]);
        }
      }
    });
  });
});

describe('Admin API on PostgreSQL', () => {
  let gateway: RunningGateway;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    const database = await testDatabaseEnv('postgres');
    cleanup = database.cleanup;
    gateway = await startGateway({ ...database.env, BOOTSTRAP_ADMIN_TOKEN: BOOTSTRAP });
  });

  afterAll(async () => {
    await gateway?.close();
    await cleanup?.();
  });

  it('manages every resource through its full lifecycle', async () => {
    await crudFlow(apiFor(gateway.baseUrl), 'crud-pg');
  });
});

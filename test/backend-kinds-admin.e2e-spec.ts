import { randomBytes } from 'node:crypto';
import { RunningGateway, startGateway } from './support/gateway';
import { seedTenant } from './support/tenants';

/** Who may register which backend kinds through the admin API, and with which settings. */
describe('admin API: backend kinds that run processes, kind-specific settings', () => {
  const bootstrap = randomBytes(24).toString('hex');
  let gateway: RunningGateway;
  let tenantAdminKey: string;

  const call = async (token: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${gateway.baseUrl}/admin/v1${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined && { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return {
      status: res.status,
      type: res.headers.get('content-type') ?? '',
      body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
    };
  };

  beforeAll(async () => {
    gateway = await startGateway({ BOOTSTRAP_ADMIN_TOKEN: bootstrap });
    ({ apiKey: tenantAdminKey } = await seedTenant(gateway.app, {
      slug: 'kinds',
      roles: ['tenant-admin'],
    }));
  });

  afterAll(async () => {
    await gateway?.close();
  });

  const stdioBackend = (name: string, settings: Record<string, unknown> = {}) => ({
    name,
    kind: 'mcp-stdio',
    target: '/usr/bin/env node server.mjs',
    settings,
  });

  it('refuses an mcp-stdio backend from a tenant admin (403 problem+json)', async () => {
    const reply = await call(
      tenantAdminKey,
      'POST',
      '/tenants/kinds/backends',
      stdioBackend('local'),
    );
    expect(reply.status).toBe(403);
    expect(reply.type).toContain('application/problem+json');
    expect(String(reply.body.detail)).toContain('platform admin');
  });

  it('lets a platform admin create one, and keeps tenant admins from changing it', async () => {
    const created = await call(
      bootstrap,
      'POST',
      '/tenants/kinds/backends',
      stdioBackend('local', {
        args: ['--quiet'],
        cwd: '/srv/tools',
        env: { MODE: 'readonly' },
      }),
    );
    expect(created.status).toBe(201);
    const id = String(created.body.id);
    const patched = await call(tenantAdminKey, 'PATCH', `/tenants/kinds/backends/${id}`, {
      target: '/bin/sh -c reboot',
    });
    expect(patched.status).toBe(403);
    // Nor may a tenant admin turn another kind into one.
    const http = await call(tenantAdminKey, 'POST', '/tenants/kinds/backends', {
      name: 'remote',
      kind: 'mcp-http',
      target: 'https://tools.example.com/mcp',
    });
    expect(http.status).toBe(201);
    const converted = await call(
      tenantAdminKey,
      'PATCH',
      `/tenants/kinds/backends/${String(http.body.id)}`,
      {
        kind: 'mcp-stdio',
        target: '/bin/sh',
      },
    );
    expect(converted.status).toBe(403);
    // Reading stays open to the tenant admin.
    const listed = await call(tenantAdminKey, 'GET', '/tenants/kinds/backends');
    expect(listed.status).toBe(200);
  });

  it('validates mcp-stdio settings with errors naming each field', async () => {
    const reply = await call(
      bootstrap,
      'POST',
      '/tenants/kinds/backends',
      stdioBackend('bad', {
        args: 'not-an-array',
        cwd: 'relative/dir',
        env: { 'BAD-NAME': 'x' },
      }),
    );
    expect(reply.status).toBe(400);
    const fields = (reply.body.errors as { field: string }[]).map((e) => e.field).sort();
    expect(fields).toEqual(expect.arrayContaining(['settings.args', 'settings.cwd']));
    expect(fields.some((f) => f.startsWith('settings.env'))).toBe(true);
  });
});

/*
 * The tenant's catalog in the admin API: two `mcp-http` backends with the same prefix in front
 * of the fixture upstream (its own process), a fixture `echo` backend and a rename policy onto
 * its name. The first backend by name wins every collision, on every rebuild, whatever order
 * the rows were written in; clients are served exactly the recorded winner; the admin API lists
 * backends (a failed one with its reason and no secrets), the governed lists and the
 * collisions; tenant-scoped auth and 404s like the other admin routes; documented in OpenAPI.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { TenantService } from '@portico/tenancy';
import type { TenantEntity } from '@portico/persistence';
import { RunningGateway, startGateway } from './support/gateway';
import { closeAll, connectV1, type FetchLike, HttpRecorder, within } from './support/sdk';
import { createApiKey, seedTenant } from './support/tenants';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const FIXTURE = join(
  __dirname,
  '..',
  'libs',
  'testing',
  'fixtures-upstream',
  'upstream-server.mjs',
);
const BOOTSTRAP = 'catalog-admin-e2e-bootstrap-token-0123456789';
const PROBLEM_JSON = 'application/problem+json';
const CATALOG_PATH = '/admin/v1/tenants/{slug}/catalog';

/** The fixture upstream as a child process on a port the OS chooses. */
async function startUpstream(): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [FIXTURE, '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const ready = new Promise<number>((resolve, reject) => {
    lines.on('line', (line) => {
      const match = /^READY (\d+)$/.exec(line);
      if (match) {
        resolve(Number(match[1]));
      }
    });
    child.once('exit', (code) => reject(new Error(`fixture upstream exited with ${code}`)));
  });
  const port = await within(ready, 10_000, 'fixture upstream start');
  return { child, url: `http://127.0.0.1:${port}/mcp` };
}

/** A loopback port nobody listens on (taken, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  return typeof address === 'object' && address ? address.port : 9;
}

let gateway: RunningGateway;
let upstream: { child: ChildProcess; url: string };
let tenant: TenantEntity;
let toolUserKey: string;
let adminKey: string;
let otherAdminKey: string;

async function getCatalog(
  slug: string,
  token: string = BOOTSTRAP,
  query = '',
): Promise<{ status: number; type: string | null; body: Json }> {
  const response = await fetch(`${gateway.baseUrl}/admin/v1/tenants/${slug}/catalog${query}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  return {
    status: response.status,
    type: response.headers.get('content-type'),
    body: (await response.json()) as Json,
  };
}

function withApiKey(apiKey: string): FetchLike {
  return (url, init) => {
    const headers = new Headers(init?.headers);
    headers.set('authorization', `Bearer ${apiKey}`);
    return fetch(url, { ...init, headers });
  };
}

/** Bumps the tenant's revision: every node drops its catalog and builds it again. */
async function rebuild(): Promise<void> {
  await gateway.app.get(TenantService).changed(tenant);
}

beforeAll(async () => {
  upstream = await startUpstream();
  gateway = await startGateway({
    LOG_LEVEL: process.env.E2E_LOG ?? 'silent',
    BOOTSTRAP_ADMIN_TOKEN: BOOTSTRAP,
  });
  const seeded = await seedTenant(gateway.app, {
    slug: 'cat',
    fixtures: [],
    policies: [
      // Moved onto the fixture backend's `echo`: a collision made by policy.
      { tool: 'shared__fail', rename: 'echo' },
      { tool: 'shared__slow', disabled: true },
      { tool: 'shared__tracked', rename: 'tracked', requiredScopes: ['ops'] },
    ],
  });
  tenant = seeded.tenant;
  toolUserKey = seeded.apiKey;
  const tenants = gateway.app.get(TenantService);
  const backends = tenants.backends(tenant.id);
  // Written out of name order: the rows' order must not decide anything.
  const down = await closedPort();
  for (const name of ['zeta', 'down', 'alpha']) {
    await backends.insert({
      name,
      kind: 'mcp-http',
      target: name === 'down' ? `http://127.0.0.1:${down}/mcp?token=s3cret` : upstream.url,
      settings: { internal: true, prefix: 'shared', timeoutMs: 5000 },
      // `whoami` answers with the header it got: which backend served a call.
      credentialsSealed: tenants.sealCredentials(tenant.id, name, {
        Authorization: `Bearer from-${name}`,
      }),
    });
  }
  await backends.insert({
    name: 'echo',
    kind: 'fixture',
    target: 'echo',
    settings: {},
    credentialsSealed: null,
  });
  await tenants.changed(tenant);
  adminKey = (await createApiKey(gateway.app, tenant.id, { name: 'ops', roles: ['tenant-admin'] }))
    .secret;
  const other = await seedTenant(gateway.app, { slug: 'other', fixtures: ['echo'] });
  otherAdminKey = (
    await createApiKey(gateway.app, other.tenant.id, { name: 'ops', roles: ['tenant-operator'] })
  ).secret;
}, 60_000);

afterAll(async () => {
  await gateway?.close();
  if (upstream && upstream.child.exitCode === null) {
    const exited = once(upstream.child, 'exit');
    upstream.child.kill('SIGKILL');
    await exited;
  }
});

describe('GET /admin/v1/tenants/:slug/catalog', () => {
  it('lists the backends in catalog order with their state; a failure without secrets', async () => {
    const { status, body } = await getCatalog('cat');

    expect(status).toBe(200);
    expect(body.backends.map((b: Json) => [b.name, b.status])).toEqual([
      ['alpha', 'connected'],
      ['down', 'failed'],
      ['echo', 'connected'],
      ['zeta', 'connected'],
    ]);
    const down = body.backends[1];
    expect(down).toMatchObject({ kind: 'mcp-http', tools: 0, error: expect.any(String) });
    expect(down.error).not.toMatch(/s3cret|token=|\n/);
    expect(body.backends[0]).toMatchObject({
      kind: 'mcp-http',
      tools: expect.any(Number),
      prompts: 1,
      resources: 1,
      resourceTemplates: 1,
    });
    expect(body.backends[0].tools).toBeGreaterThan(5);
    expect(body.backends[2]).toMatchObject({ kind: 'fixture', tools: 1 });
  });

  it('records every collision with the first backend by name as the winner', async () => {
    const { body } = await getCatalog('cat');

    expect(body.collisions).toEqual(
      expect.arrayContaining([
        { kind: 'tool', name: 'shared__echo', winner: 'alpha', shadowed: ['zeta'] },
        { kind: 'tool', name: 'shared__whoami', winner: 'alpha', shadowed: ['zeta'] },
        {
          kind: 'tool',
          name: 'echo',
          winner: 'alpha',
          shadowed: ['echo', 'zeta'],
          renamedFrom: ['shared__fail'],
        },
        { kind: 'prompt', name: 'shared__greet', winner: 'alpha', shadowed: ['zeta'] },
        { kind: 'resource', name: 'fixture://hello', winner: 'alpha', shadowed: ['zeta'] },
        {
          kind: 'resourceTemplate',
          name: 'fixture://missing/{id}',
          winner: 'alpha',
          shadowed: ['zeta'],
        },
      ]),
    );
    expect(body.totals.collisions).toBe(body.collisions.length);
  });

  it('shows the lists as policies make them: disabled tools absent, renamed ones renamed', async () => {
    const { body } = await getCatalog('cat');
    const tools = new Map<string, Json>(body.tools.map((t: Json) => [t.name, t]));

    expect(tools.has('shared__slow')).toBe(false);
    expect(tools.has('shared__fail')).toBe(false);
    expect(tools.get('tracked')).toMatchObject({
      backend: 'alpha',
      renamedFrom: 'shared__tracked',
      requiredScopes: ['ops'],
    });
    expect(tools.get('echo')).toMatchObject({ backend: 'alpha', renamedFrom: 'shared__fail' });
    expect(tools.get('shared__echo')).toMatchObject({
      backend: 'alpha',
      description: 'Echoes the message',
    });
    const names = body.tools.map((t: Json) => t.name as string);
    expect(names).toEqual([...names].sort());
    expect(body.prompts).toEqual([
      expect.objectContaining({ name: 'shared__greet', backend: 'alpha' }),
    ]);
    expect(body.resources).toEqual([
      expect.objectContaining({ uri: 'fixture://hello', backend: 'alpha' }),
    ]);
    expect(body.resourceTemplates).toEqual([
      expect.objectContaining({ uriTemplate: 'fixture://missing/{id}', backend: 'alpha' }),
    ]);
  });

  it('keeps the same winner on every rebuild, and serves clients exactly that winner', async () => {
    const winners: string[] = [];
    for (let i = 0; i < 3; i++) {
      await rebuild();
      const { body } = await getCatalog('cat');
      const whoami = body.collisions.find((c: Json) => c.name === 'shared__whoami');
      winners.push(whoami.winner);
    }
    expect(winners).toEqual(['alpha', 'alpha', 'alpha']);

    const { client } = await connectV1(`${gateway.mcpUrl}/cat`, {
      recorder: new HttpRecorder(withApiKey(toolUserKey)),
    });
    try {
      const result = await client.callTool({ name: 'shared__whoami', arguments: {} });
      expect(result.content).toEqual([{ type: 'text', text: 'Bearer from-alpha' }]);
    } finally {
      await closeAll(client);
    }
  });

  it('pages every list with offset and limit, and tells the whole lengths', async () => {
    const whole = (await getCatalog('cat')).body;

    const { status, body } = await getCatalog('cat', BOOTSTRAP, '?offset=1&limit=2');

    expect(status).toBe(200);
    expect(body.tools).toEqual(whole.tools.slice(1, 3));
    expect(body.collisions).toEqual(whole.collisions.slice(1, 3));
    expect(body.totals).toEqual(whole.totals);
    expect(body.totals.tools).toBe(whole.tools.length);
    expect({ offset: body.offset, limit: body.limit }).toEqual({ offset: 1, limit: 2 });
    expect(body.backends).toHaveLength(4);
  });

  it('refuses a bad page as problem+json', async () => {
    for (const query of ['?limit=0', '?limit=100000', '?offset=-1', '?limit=abc', '?extra=1']) {
      const reply = await getCatalog('cat', BOOTSTRAP, query);
      expect({ query, status: reply.status, type: reply.type }).toEqual({
        query,
        status: 400,
        type: expect.stringContaining(PROBLEM_JSON),
      });
    }
  });

  it("answers the tenant's own admin, refuses a tool user, hides the tenant from others", async () => {
    expect((await getCatalog('cat', adminKey)).status).toBe(200);

    const toolUser = await getCatalog('cat', toolUserKey);
    expect({ status: toolUser.status, type: toolUser.type }).toEqual({
      status: 403,
      type: expect.stringContaining(PROBLEM_JSON),
    });

    const foreign = await getCatalog('cat', otherAdminKey);
    expect({ status: foreign.status, type: foreign.type }).toEqual({
      status: 404,
      type: expect.stringContaining(PROBLEM_JSON),
    });
    expect((await getCatalog('other', otherAdminKey)).status).toBe(200);
  });

  it('answers an unknown tenant with 404 problem+json, and no credentials with 401', async () => {
    const unknown = await getCatalog('nope');
    expect({ status: unknown.status, type: unknown.type }).toEqual({
      status: 404,
      type: expect.stringContaining(PROBLEM_JSON),
    });
    expect(unknown.body).toMatchObject({ status: 404, detail: 'Tenant not found' });

    const response = await fetch(`${gateway.baseUrl}/admin/v1/tenants/cat/catalog`);
    expect(response.status).toBe(401);
  });

  it('is documented in the OpenAPI document', async () => {
    const response = await fetch(`${gateway.baseUrl}/admin/docs-json`);
    const document = (await response.json()) as Json;

    const operation = document.paths[CATALOG_PATH]?.get;
    expect(operation).toBeDefined();
    expect(operation.tags).toEqual(['catalog']);
    expect(Object.keys(operation.responses)).toEqual(expect.arrayContaining(['200', '404']));
    expect(document.components.schemas.TenantCatalogDto.properties).toEqual(
      expect.objectContaining({ collisions: expect.any(Object), backends: expect.any(Object) }),
    );
  });
});

import type {
  CatalogEvent,
  CatalogScope,
  Principal,
  RequestContext,
  ToolHandler,
} from '@portico/mcp-protocol';
import type {
  BackendEntity,
  TenantEntity,
  ToolPolicyEntity,
  VirtualServerEntity,
} from '@portico/persistence';
import type { TenantService } from '@portico/tenancy';
import { DATA_TEMPLATE, STATIC_TEXT_URI, WATCHED_RESOURCE_URI } from '@portico/testing';
import { StaticCatalog } from '@portico/mcp-protocol';
import { bindToServer, serverOfPrincipal, serverOfScope } from './server-principal';
import type { UpstreamSourceFactory } from '../upstream/upstream-source.factory';
import { publicError, TenantCatalogRouter } from './tenant-catalog.router';

const TENANT = 'tenant-1';

type ServerRow = Pick<
  VirtualServerEntity,
  'name' | 'tools' | 'prompts' | 'resources' | 'resourceTemplates'
>;

/** The rows a TenantService would read, changeable between builds. */
class FakeTenants {
  /** Returned as they are: the order a database might give, not necessarily by name. */
  backends: Partial<BackendEntity>[] = [
    { name: 'fixtures', kind: 'fixture', target: 'conformance', tenantId: TENANT },
  ];
  servers: ServerRow[] = [];
  policies: Partial<ToolPolicyEntity>[] = [];
  private readonly listeners = new Set<(tenant: TenantEntity) => void>();
  readonly tenant = { id: TENANT, slug: 'acme', revision: 1 } as TenantEntity;

  asService(): TenantService {
    const rows =
      <T>(get: () => T[]) =>
      () => ({ find: () => Promise.resolve(get()) });
    return {
      byId: () => Promise.resolve(this.tenant),
      backends: rows(() => this.backends),
      policies: rows(() => this.policies),
      servers: rows(() => this.servers),
      onChange: (listener: (tenant: TenantEntity) => void) => {
        this.listeners.add(listener);
        return () => this.listeners.delete(listener);
      },
    } as unknown as TenantService;
  }

  /** What an admin change does: new revision, listeners told. */
  change(): void {
    this.tenant.revision += 1;
    this.listeners.forEach((listener) => listener(this.tenant));
  }
}

const server = (name: string, lists: Partial<ServerRow> = {}): ServerRow => ({
  name,
  tools: [],
  prompts: [],
  resources: [],
  resourceTemplates: [],
  ...lists,
});

/** An authenticated-principal stand-in with a method, like AuthPrincipal. */
class TestPrincipal implements Principal {
  constructor(
    readonly id: string,
    readonly tenant: string,
    readonly scopes: readonly string[] = [],
  ) {}

  describe(): string {
    return `${this.id}@${this.tenant}`;
  }
}

const names = (tools: readonly ToolHandler[]): string[] =>
  tools.map((t) => t.definition.name).sort();

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) {
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe(TenantCatalogRouter.name, () => {
  let tenants: FakeTenants;
  let sut: TenantCatalogRouter;
  const principal = new TestPrincipal('key:1', TENANT);

  beforeEach(() => {
    tenants = new FakeTenants();
    tenants.policies = [
      { tool: 'greet', rename: 'crm_greet', requiredScopes: [], disabled: false },
      { tool: 'test_audio_content', requiredScopes: ['media'], disabled: false },
      { tool: 'json_schema_2020_12_tool', requiredScopes: ['secret'], disabled: false },
    ];
    tenants.servers = [
      server('crm', {
        tools: ['crm_*', 'test_simple_text', 'test_audio_content'],
        prompts: ['test_simple_prompt'],
        resources: [STATIC_TEXT_URI],
        resourceTemplates: ['test://template/*'],
      }),
      server('watch', { resources: ['test://watched-*'] }),
    ];
    sut = new TenantCatalogRouter(tenants.asService(), new StaticCatalog());
  });

  afterEach(async () => {
    await sut.onModuleDestroy();
  });

  it('filters every list through the server, by the names policies give', async () => {
    const crm: CatalogScope = { principal: bindToServer(principal, 'crm') };

    expect(names(await sut.listTools(crm))).toEqual(['crm_greet', 'test_simple_text']);
    expect((await sut.listPrompts(crm)).map((p) => p.definition.name)).toEqual([
      'test_simple_prompt',
    ]);
    expect((await sut.listResources(crm)).map((r) => r.definition.uri)).toEqual([STATIC_TEXT_URI]);
    expect((await sut.listResourceTemplates(crm)).map((t) => t.definition.uriTemplate)).toEqual([
      DATA_TEMPLATE,
    ]);
    // The tenant endpoint still sees everything.
    expect((await sut.listTools({ principal })).length).toBeGreaterThan(20);
  });

  it('answers lookups outside the server as if the thing did not exist', async () => {
    const crm: CatalogScope = { principal, server: 'crm' };

    expect(await sut.getTool('test_simple_text', crm)).toBeDefined();
    expect(await sut.getTool('crm_greet', crm)).toBeDefined();
    expect(await sut.getTool('test_error_handling', crm)).toBeUndefined();
    expect(await sut.getTool('greet', crm)).toBeUndefined(); // renamed: only the new name counts
    expect(await sut.getPrompt('test_prompt_with_arguments', crm)).toBeUndefined();
    expect(await sut.getResource('test://static-binary', crm)).toBeUndefined();
    expect(await sut.getResource(STATIC_TEXT_URI, crm)).toBeDefined();
    expect(await sut.getTool('test_error_handling', { principal })).toBeDefined();
  });

  it('tells scopes apart only inside the server: outside, every tool is unknown', async () => {
    const crm = bindToServer(principal, 'crm');

    expect(await sut.toolAccess('json_schema_2020_12_tool', { principal })).toEqual({
      allowed: false,
      reason: 'scope',
      requiredScopes: ['secret'],
    });
    expect(await sut.toolAccess('json_schema_2020_12_tool', { principal: crm })).toEqual({
      allowed: false,
      reason: 'unknown',
    });
    expect(await sut.toolAccess('test_audio_content', { principal: crm })).toEqual({
      allowed: false,
      reason: 'scope',
      requiredScopes: ['media'],
    });
    expect(await sut.scopesOf(TENANT)).toEqual(['media', 'secret']);
    expect(await sut.scopesOf(TENANT, 'crm')).toEqual(['media']);
    expect(await sut.scopesOf(TENANT, 'watch')).toEqual([]);
  });

  it('shows nothing through a server the tenant does not have', async () => {
    const gone: CatalogScope = { principal: bindToServer(principal, 'gone') };

    expect(await sut.listTools(gone)).toEqual([]);
    expect(await sut.listResourceTemplates(gone)).toEqual([]);
    expect(await sut.getTool('test_simple_text', gone)).toBeUndefined();
    expect(await sut.toolAccess('test_simple_text', gone)).toEqual({
      allowed: false,
      reason: 'unknown',
    });
  });

  it('tells watchers of a server about a change of its definition, and applies it', async () => {
    const crm = bindToServer(principal, 'crm');
    await sut.listTools({ principal: crm });
    const events: CatalogEvent[] = [];
    sut.watch((event) => events.push(event), { principal: crm });

    tenants.servers = [server('crm', { tools: ['test_error_handling'] })];
    tenants.change();
    await settle();

    expect(events.map((e) => e.type)).toEqual([
      'tools-changed',
      'prompts-changed',
      'resources-changed',
    ]);
    expect(names(await sut.listTools({ principal: crm }))).toEqual(['test_error_handling']);
  });

  it('passes resource updates only to servers exposing the resource', async () => {
    const heard = { watch: [] as string[], crm: [] as string[], tenant: [] as string[] };
    const listen = (into: string[]) => (event: CatalogEvent) => {
      if (event.type === 'resource-updated') {
        into.push(event.uri);
      }
    };
    sut.watch(listen(heard.watch), { principal: bindToServer(principal, 'watch') });
    sut.watch(listen(heard.crm), { principal, server: 'crm' });
    sut.watch(listen(heard.tenant), { principal });
    const trigger = await sut.getTool('test_trigger_resource_update', { principal });

    await trigger!.call({}, { principal, requestId: 1 } as unknown as RequestContext);
    await settle();

    expect(heard).toEqual({
      watch: [WATCHED_RESOURCE_URI],
      crm: [],
      tenant: [WATCHED_RESOURCE_URI],
    });
  });

  it('stops a watcher for good even after a rebuild moved it', async () => {
    await sut.listTools({ principal });
    const events: CatalogEvent[] = [];
    const stop = sut.watch((event) => events.push(event), { principal, server: 'crm' });
    tenants.change();
    await settle();
    const heard = events.length;
    expect(heard).toBe(3);

    stop();
    tenants.change();
    await settle();

    expect(events).toHaveLength(heard);
  });
});

describe(`${TenantCatalogRouter.name} collisions`, () => {
  const echo = (name: string): Partial<BackendEntity> => ({
    name,
    kind: 'fixture',
    target: 'echo',
    tenantId: TENANT,
  });
  let tenants: FakeTenants;
  let sut: TenantCatalogRouter;

  beforeEach(() => {
    tenants = new FakeTenants();
    const refused: Partial<UpstreamSourceFactory> = {
      create: () =>
        Promise.reject(
          new Error(
            'Upstream https://user:hunter2@crm.example/mcp?token=s3cret refused\n    at stack',
          ),
        ),
    };
    sut = new TenantCatalogRouter(
      tenants.asService(),
      new StaticCatalog(),
      undefined,
      undefined,
      refused as UpstreamSourceFactory,
    );
  });

  afterEach(async () => {
    await sut.onModuleDestroy();
  });

  it('puts backends in name order whatever order the rows come in: the first name wins', async () => {
    tenants.backends = [echo('zeta'), echo('Alpha'), echo('alpha')];
    const first = await sut.describe(TENANT);
    tenants.backends = [echo('alpha'), echo('zeta'), echo('Alpha')];
    tenants.change();

    const second = await sut.describe(TENANT);

    for (const report of [first, second]) {
      expect(report.backends.map((b) => b.name)).toEqual(['Alpha', 'alpha', 'zeta']);
      expect(report.tools).toEqual([expect.objectContaining({ name: 'echo', backend: 'Alpha' })]);
      expect(report.collisions).toEqual([
        { kind: 'tool', name: 'echo', winner: 'Alpha', shadowed: ['alpha', 'zeta'] },
      ]);
    }
  });

  it('shows each backend with its state and counts, and a failure without its secrets', async () => {
    tenants.backends = [
      echo('echo'),
      { name: 'crm', kind: 'mcp-http', target: 'https://crm.example/mcp', tenantId: TENANT },
    ];

    const report = await sut.describe(TENANT);

    expect(report.backends).toEqual([
      {
        name: 'crm',
        kind: 'mcp-http',
        status: 'failed',
        error: 'Upstream https://crm.example/mcp refused',
        tools: 0,
        prompts: 0,
        resources: 0,
        resourceTemplates: 0,
      },
      {
        name: 'echo',
        kind: 'fixture',
        status: 'connected',
        tools: 1,
        prompts: 0,
        resources: 0,
        resourceTemplates: 0,
      },
    ]);
  });
});

describe(publicError.name, () => {
  it('keeps the first line, drops URL credentials, queries and fragments, and caps length', () => {
    expect(publicError(new Error('GET http://u:p@h:1/x?key=1#f failed\nstack'))).toBe(
      'GET http://h:1/x failed',
    );
    expect(publicError('plain')).toBe('plain');
    expect(publicError(new Error('x'.repeat(1000)))).toHaveLength(300);
  });
});

describe(bindToServer.name, () => {
  const principal = new TestPrincipal('key:1', TENANT, ['a']);

  it('keeps the principal whole, methods included, and adds the server', () => {
    const bound = bindToServer(principal, 'crm');

    expect(bound).toBeInstanceOf(TestPrincipal);
    expect(bound).toMatchObject({ id: 'key:1', tenant: TENANT, scopes: ['a'], server: 'crm' });
    expect(bound.describe()).toBe(`key:1@${TENANT}`);
    expect(JSON.parse(JSON.stringify(bound))).toMatchObject({ server: 'crm', id: 'key:1' });
    expect(principal).not.toHaveProperty('server');
  });

  it('gives one object per principal and server', () => {
    expect(bindToServer(principal, 'crm')).toBe(bindToServer(principal, 'crm'));
    expect(bindToServer(principal, 'crm')).not.toBe(bindToServer(principal, 'other'));
  });

  it('is what serverOfPrincipal and serverOfScope read; the scope wins', () => {
    const bound = bindToServer(principal, 'crm');

    expect(serverOfPrincipal(bound)).toBe('crm');
    expect(serverOfPrincipal(principal)).toBeUndefined();
    expect(serverOfPrincipal(undefined)).toBeUndefined();
    expect(serverOfScope({ principal: bound })).toBe('crm');
    expect(serverOfScope({ principal: bound, server: 'other' })).toBe('other');
    expect(serverOfScope({ principal })).toBeUndefined();
  });
});

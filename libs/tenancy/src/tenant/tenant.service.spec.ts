import { randomBytes } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { loadConfig } from '@portico/config';
import {
  BackendEntity,
  CredentialCipher,
  dataSourceOptions,
  openDataSource,
  RoleBindingEntity,
  TenantEntity,
  ToolPolicyEntity,
  VirtualServerEntity,
} from '@portico/persistence';
import { DATABASE_KINDS, DatabaseKind, testDatabaseEnv } from '@portico/testing';
import { assertSlug, TenantInputError, TenantService } from './tenant.service';

describe.each(DATABASE_KINDS)(`${TenantService.name} on %s`, (kind: DatabaseKind) => {
  let dataSource: DataSource;
  let cleanup: () => Promise<void>;
  let sut: TenantService;
  let counter = 0;

  const slug = () => `tenant-${process.pid}-${++counter}`;

  beforeAll(async () => {
    const db = await testDatabaseEnv(kind);
    cleanup = db.cleanup;
    const config = loadConfig(db.env);
    ({ dataSource } = await openDataSource(dataSourceOptions(config.database), true));
  });

  afterAll(async () => {
    await dataSource?.destroy();
    await cleanup?.();
  });

  beforeEach(() => {
    sut = new TenantService(
      dataSource.getRepository(TenantEntity),
      dataSource.getRepository(BackendEntity),
      dataSource.getRepository(ToolPolicyEntity),
      dataSource.getRepository(RoleBindingEntity),
      dataSource.getRepository(VirtualServerEntity),
      new CredentialCipher([{ id: 'k1', key: randomBytes(32) }]),
    );
  });

  it('reads a tenant once, then answers synchronously from the cache', async () => {
    const created = await sut.create({ slug: slug(), name: 'Acme' });

    const first = sut.bySlug(created.slug);
    expect(first).toBeInstanceOf(Promise);
    const tenant = await first;
    expect(tenant).toMatchObject({ id: created.id, name: 'Acme', status: 'active' });

    expect(sut.bySlug(created.slug)).toBe(tenant);
  });

  it('caches an unknown slug too', async () => {
    const missing = slug();

    await expect(sut.bySlug(missing)).resolves.toBeNull();

    expect(sut.bySlug(missing)).toBeNull();
  });

  it('answers concurrent reads of an uncached tenant with one query', async () => {
    const created = await sut.create({ slug: slug(), name: 'Acme' });

    const a = sut.bySlug(created.slug);
    const b = sut.bySlug(created.slug);

    expect(a).toBeInstanceOf(Promise);
    expect(b).toBe(a);
    expect((await a)?.id).toBe(created.id);
  });

  it('does not cache a read that was under way when the tenant changed on this node', async () => {
    // Reads through bySlug are held after the row is read, until the change is done.
    const tenants = dataSource.getRepository(TenantEntity);
    let release!: () => void;
    let reached!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const readDone = new Promise<void>((resolve) => (reached = resolve));
    const heldTenants = Object.create(tenants) as typeof tenants;
    heldTenants.findOneBy = async (where) => {
      const row = await tenants.findOneBy(where);
      reached();
      await held;
      return row;
    };
    const writer = sut;
    sut = new TenantService(
      heldTenants,
      dataSource.getRepository(BackendEntity),
      dataSource.getRepository(ToolPolicyEntity),
      dataSource.getRepository(RoleBindingEntity),
      dataSource.getRepository(VirtualServerEntity),
      new CredentialCipher([{ id: 'k1', key: randomBytes(32) }]),
    );
    const created = await writer.create({ slug: slug(), name: 'Before' });

    const inFlight = sut.bySlug(created.slug);
    await readDone;
    await sut.update(created, { name: 'After' });
    release();
    expect((await inFlight)?.name).toBe('Before');

    const next = sut.bySlug(created.slug);
    expect(next).toBeInstanceOf(Promise);
    expect((await next)?.name).toBe('After');
  });

  it('drops the cached copy when the tenant changes or goes', async () => {
    const created = await sut.create({ slug: slug(), name: 'Acme' });
    const cached = await sut.bySlug(created.slug);

    await sut.update(created, { status: 'suspended' });
    const changed = await sut.bySlug(created.slug);
    expect(changed).not.toBe(cached);
    expect(changed?.status).toBe('suspended');

    await sut.remove(created);
    await expect(sut.bySlug(created.slug)).resolves.toBeNull();
  });

  const serverRow = (name: string) => ({
    name,
    title: null,
    description: null,
    tools: ['crm_*'],
    prompts: [],
    resources: [],
    resourceTemplates: [],
  });

  it('finds a virtual server by name once per tenant revision, then synchronously', async () => {
    const tenant = await sut.create({ slug: slug(), name: 'Acme' });
    await sut.servers(tenant.id).insert(serverRow('crm'));
    await sut.changed(tenant);

    const first = sut.serverNamed(tenant, 'crm');
    expect(first).toBeInstanceOf(Promise);
    const crm = await first;
    expect(crm).toMatchObject({ name: 'crm', tools: ['crm_*'], tenantId: tenant.id });
    expect(sut.serverNamed(tenant, 'crm')).toBe(crm);
    expect(sut.serverNamed(tenant, 'other')).toBeNull();

    // A change of the tenant (a new server) is seen at its next revision.
    await sut.servers(tenant.id).insert(serverRow('other'));
    await sut.changed(tenant);
    const reread = sut.serverNamed(tenant, 'other');
    expect(reread).toBeInstanceOf(Promise);
    expect(await reread).toMatchObject({ name: 'other' });
  });

  it('answers names no server can have without a query', async () => {
    const tenant = await sut.create({ slug: slug(), name: 'Acme' });
    for (const name of ['sse', 'messages', 'Upper', '-dash', '', 'a/b']) {
      expect(sut.serverNamed(tenant, name)).toBeNull();
    }
  });

  it("removes a tenant's virtual servers with it, and keeps names unique per tenant", async () => {
    const a = await sut.create({ slug: slug(), name: 'A' });
    const b = await sut.create({ slug: slug(), name: 'B' });
    await sut.servers(a.id).insert(serverRow('crm'));
    await sut.servers(b.id).insert(serverRow('crm'));
    await expect(sut.servers(a.id).insert(serverRow('crm'))).rejects.toThrow(/unique|duplicate/i);

    await sut.remove(a);

    expect(await sut.servers(a.id).count()).toBe(0);
    expect(await sut.servers(b.id).count()).toBe(1);
  });
});

describe('assertSlug', () => {
  it('refuses route names and the anonymous endpoint metrics label as tenant slugs', () => {
    for (const slug of ['anonymous', 'sse', 'admin', 'metrics', 'well-known']) {
      expect(() => assertSlug(slug)).toThrow(TenantInputError);
    }
    expect(() => assertSlug('acme')).not.toThrow();
  });
});

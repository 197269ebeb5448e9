import { randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { loadConfig } from '@portico/config';
import { DATABASE_KINDS, DatabaseKind, testDatabaseEnv } from '@portico/testing';
import { dataSourceOptions, MIGRATIONS, openDataSource } from '../data-source';
import { TenantEntity } from '../entities/tenant.entity';
import { VirtualServerEntity } from '../entities/virtual-server.entity';
import { TenantScopedRepository } from '../tenant-scoped.repository';
import { VirtualServers1765000000000 } from './1765000000000-virtual-servers';

async function tables(dataSource: DataSource, names: string[]): Promise<string[]> {
  const runner = dataSource.createQueryRunner();
  try {
    return (await runner.getTables(names)).map((t) => t.name.split('.').pop()!).sort();
  } finally {
    await runner.release();
  }
}

async function tenant(dataSource: DataSource, slug: string): Promise<TenantEntity> {
  const repo = dataSource.getRepository(TenantEntity);
  const row = repo.create({
    id: randomUUID(),
    slug,
    name: slug,
    status: 'active',
    limits: {},
    auth: {},
    revision: 1,
    createdAt: new Date(),
    updatedAt: new Date(),
  });
  await repo.insert(row);
  return row;
}

const server = (name: string) => ({
  name,
  title: 'CRM',
  description: null,
  tools: ['crm_*', 'search'],
  prompts: [],
  resources: ['crm://accounts/*'],
  resourceTemplates: ['crm://accounts/{id}'],
});

describe.each(DATABASE_KINDS)(`${VirtualServers1765000000000.name} on %s`, (kind: DatabaseKind) => {
  let dataSource: DataSource;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    const db = await testDatabaseEnv(kind);
    cleanup = db.cleanup;
    ({ dataSource } = await openDataSource(dataSourceOptions(loadConfig(db.env).database), true));
  });

  afterAll(async () => {
    await dataSource?.destroy();
    await cleanup?.();
  });

  it('is registered after the initial schema', () => {
    expect(MIGRATIONS.map((m) => m.name)).toEqual([
      'InitialSchema1764000000000',
      'VirtualServers1765000000000',
    ]);
  });

  it('stores servers per tenant: JSON lists round-trip, names unique per tenant', async () => {
    const a = await tenant(dataSource, `vs-a-${kind}`);
    const b = await tenant(dataSource, `vs-b-${kind}`);
    const repo = dataSource.getRepository(VirtualServerEntity);
    const servers = new TenantScopedRepository(repo, a.id);
    const made = await servers.insert(server('crm'));
    await new TenantScopedRepository(repo, b.id).insert(server('crm'));
    await expect(servers.insert(server('crm'))).rejects.toThrow(/unique|duplicate/i);

    const read = await repo.findOneByOrFail({ id: made.id });
    expect(read).toMatchObject({ ...server('crm'), tenantId: a.id });
    expect(read.createdAt).toBeInstanceOf(Date);
  });

  it('goes with its tenant (foreign key, cascade)', async () => {
    const t = await tenant(dataSource, `vs-c-${kind}`);
    const servers = new TenantScopedRepository(dataSource.getRepository(VirtualServerEntity), t.id);
    await servers.insert(server('one'));
    await servers.insert(server('two'));
    await dataSource.getRepository(TenantEntity).delete({ id: t.id });
    expect(await servers.count()).toBe(0);
  });

  it('reverts to the initial schema and migrates up again', async () => {
    const fresh = await testDatabaseEnv(kind);
    const { dataSource: other } = await openDataSource(
      dataSourceOptions(loadConfig(fresh.env).database),
      true,
    );
    try {
      expect(await tables(other, ['tenants', 'virtual_servers'])).toEqual([
        'tenants',
        'virtual_servers',
      ]);
      await other.undoLastMigration();
      expect(await tables(other, ['tenants', 'virtual_servers'])).toEqual(['tenants']);
      expect((await other.runMigrations()).map((m) => m.name)).toEqual([
        'VirtualServers1765000000000',
      ]);
      expect(await tables(other, ['virtual_servers'])).toEqual(['virtual_servers']);
    } finally {
      await other.destroy();
      await fresh.cleanup();
    }
  });
});

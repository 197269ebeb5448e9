import { randomBytes, randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { loadConfig } from '@portico/config';
import { DATABASE_KINDS, DatabaseKind, testDatabaseEnv } from '@portico/testing';
import { CredentialCipher, CredentialCipherError } from './credential-cipher';
import { dataSourceOptions, isPoolTimeout, MIGRATIONS, openDataSource } from './data-source';
import { BackendEntity } from './entities/backend.entity';
import { TenantEntity } from './entities/tenant.entity';
import { TenantScopedRepository } from './tenant-scoped.repository';

const TABLES = [
  'tenants',
  'backends',
  'tool_policies',
  'api_keys',
  'role_bindings',
  'audit_events',
  'virtual_servers',
];

async function open(env: Record<string, string>, extra: Record<string, string> = {}) {
  const config = loadConfig({ ...env, ...extra });
  return openDataSource(dataSourceOptions(config.database), true);
}

async function tableNames(dataSource: DataSource): Promise<string[]> {
  const runner = dataSource.createQueryRunner();
  try {
    const tables = await runner.getTables(TABLES);
    return tables.map((t) => t.name.split('.').pop()!).sort();
  } finally {
    await runner.release();
  }
}

async function tenant(dataSource: DataSource, slug: string): Promise<TenantEntity> {
  const repo = dataSource.getRepository(TenantEntity);
  const row = repo.create({
    id: randomUUID(),
    slug,
    name: slug.toUpperCase(),
    status: 'active',
    limits: { maxSessions: 5 },
    auth: {},
    revision: 1,
    createdAt: new Date(),
    updatedAt: new Date(),
  });
  await repo.insert(row);
  return row;
}

describe.each(DATABASE_KINDS)('persistence on %s', (kind: DatabaseKind) => {
  let env: Record<string, string>;
  let cleanup: () => Promise<void>;
  let dataSource: DataSource;

  beforeAll(async () => {
    ({ env, cleanup } = await testDatabaseEnv(kind));
    // SQLite in memory lives as long as its connection: use a file-less database per suite.
    ({ dataSource } = await open(env));
  });

  afterAll(async () => {
    await dataSource?.destroy();
    await cleanup?.();
  });

  it('migrates up from empty, creating every table, and is idempotent', async () => {
    expect(await tableNames(dataSource)).toEqual([...TABLES].sort());
    const executed = await dataSource.query(
      `SELECT name FROM ${kind === 'postgres' ? `"${env.DATABASE_SCHEMA}".` : ''}portico_migrations`,
    );
    expect(executed.map((r: { name: string }) => r.name)).toEqual(MIGRATIONS.map((m) => m.name));
    expect(await dataSource.runMigrations()).toEqual([]);
  });

  it('round-trips JSON columns and instants', async () => {
    const row = await tenant(dataSource, `rt-${kind}`);
    const read = await dataSource.getRepository(TenantEntity).findOneByOrFail({ id: row.id });
    expect(read.limits).toEqual({ maxSessions: 5 });
    expect(read.createdAt).toBeInstanceOf(Date);
    expect(read.createdAt.getTime()).toBe(row.createdAt.getTime());
  });

  it('scopes every read, write and delete to one tenant', async () => {
    const a = await tenant(dataSource, `a-${kind}`);
    const b = await tenant(dataSource, `b-${kind}`);
    const repo = dataSource.getRepository(BackendEntity);
    const backendsA = new TenantScopedRepository(repo, a.id);
    const backendsB = new TenantScopedRepository(repo, b.id);
    const made = await backendsA.insert({
      name: 'files',
      kind: 'fixture',
      target: 'echo',
      settings: {},
      credentialsSealed: null,
    });
    expect(made.tenantId).toBe(a.id);
    await backendsB.insert({
      name: 'files',
      kind: 'fixture',
      target: 'echo',
      settings: {},
      credentialsSealed: null,
    });

    expect((await backendsA.find()).map((r) => r.id)).toEqual([made.id]);
    expect(await backendsB.findById(made.id)).toBeNull();
    expect(await backendsB.update(made.id, { target: 'stolen' })).toBeNull();
    expect(await backendsB.delete({ id: made.id })).toBe(0);
    expect((await backendsA.findById(made.id))?.target).toBe('echo');
    expect(() => backendsB.find({ tenantId: a.id })).toThrow('Cross-tenant query refused');

    const updated = await backendsA.update(made.id, { target: 'conformance' });
    expect(updated?.target).toBe('conformance');
    expect(await backendsA.delete({ id: made.id })).toBe(1);
    expect(await backendsA.count()).toBe(0);
    expect(await backendsB.count()).toBe(1);
  });

  it('enforces unique names per tenant and cascades a tenant delete', async () => {
    const t = await tenant(dataSource, `u-${kind}`);
    const backends = new TenantScopedRepository(dataSource.getRepository(BackendEntity), t.id);
    const values = {
      name: 'dup',
      kind: 'fixture' as const,
      target: 'echo',
      settings: {},
      credentialsSealed: null,
    };
    await backends.insert(values);
    await expect(backends.insert(values)).rejects.toThrow(/unique|duplicate/i);
    await dataSource.getRepository(TenantEntity).delete({ id: t.id });
    expect(await backends.count()).toBe(0);
  });

  it('reverts the schema with the down migration', async () => {
    const { dataSource: other } = await open(
      env,
      kind === 'postgres' ? {} : { DATABASE_PATH: ':memory:' },
    );
    try {
      if (kind === 'postgres') {
        // The suite's own schema is in use; down-migrate a second, fresh one.
        await other.destroy();
        const fresh = await testDatabaseEnv('postgres');
        const { dataSource: ds } = await open(fresh.env);
        for (let i = 0; i < MIGRATIONS.length; i++) {
          await ds.undoLastMigration();
        }
        expect(await tableNames(ds)).toEqual([]);
        await ds.destroy();
        await fresh.cleanup();
        return;
      }
      for (let i = 0; i < MIGRATIONS.length; i++) {
        await other.undoLastMigration();
      }
      expect(await tableNames(other)).toEqual([]);
    } finally {
      if (other.isInitialized) {
        await other.destroy();
      }
    }
  });

  if (kind === 'postgres') {
    it('fails a query clearly when the pool stays exhausted, instead of hanging', async () => {
      const { dataSource: small } = await open(env, {
        DATABASE_POOL_SIZE: '1',
        DATABASE_POOL_TIMEOUT_MS: '300',
      });
      const holder = small.createQueryRunner();
      await holder.connect();
      try {
        const started = Date.now();
        const error = await small.query('SELECT 1').then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(isPoolTimeout(error)).toBe(true);
        expect(Date.now() - started).toBeLessThan(5000);
      } finally {
        await holder.release();
        await small.destroy();
      }
    });
  }
});

describe(CredentialCipher.name, () => {
  const key = (id: string) => ({ id, key: randomBytes(32) });

  it('seals and opens, bound to its row', () => {
    const sut = new CredentialCipher([key('k1')]);
    const sealed = sut.seal('{"Authorization":"Bearer s3cret"}', 'tenant-a/backend-1');
    expect(sealed).not.toContain('s3cret');
    expect(CredentialCipher.keyIdOf(sealed)).toBe('k1');
    expect(sut.open(sealed, 'tenant-a/backend-1')).toBe('{"Authorization":"Bearer s3cret"}');
    expect(() => sut.open(sealed, 'tenant-b/backend-1')).toThrow(CredentialCipherError);
  });

  it('detects tampering and unknown keys', () => {
    const sut = new CredentialCipher([key('k1')]);
    const sealed = sut.seal('value', 'x');
    const parts = sealed.split('.');
    parts[4] = Buffer.from('other').toString('base64url');
    expect(() => sut.open(parts.join('.'), 'x')).toThrow('failed authentication');
    expect(() => new CredentialCipher([key('k2')]).open(sealed, 'x')).toThrow('unknown master key');
    expect(() => sut.open('garbage', 'x')).toThrow('Malformed');
  });

  it('rotates: the new key seals, old values still open until re-sealed', () => {
    const k1 = key('k1');
    const k2 = key('k2');
    const old = new CredentialCipher([k1]).seal('value', 'x');
    const rotated = new CredentialCipher([k2, k1]);
    expect(rotated.open(old, 'x')).toBe('value');
    const resealed = rotated.seal(rotated.open(old, 'x'), 'x');
    expect(CredentialCipher.keyIdOf(resealed)).toBe('k2');
    expect(new CredentialCipher([k2]).open(resealed, 'x')).toBe('value');
  });
});

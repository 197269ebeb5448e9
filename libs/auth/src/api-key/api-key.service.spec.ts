import { randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { ConfigService, loadConfig } from '@portico/config';
import {
  ApiKeyEntity,
  dataSourceOptions,
  openDataSource,
  TenantEntity,
} from '@portico/persistence';
import { DATABASE_KINDS, DatabaseKind, testDatabaseEnv } from '@portico/testing';
import { ApiKeyService, VerifiedApiKey } from './api-key.service';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(DATABASE_KINDS)(`${ApiKeyService.name} on %s`, (kind: DatabaseKind) => {
  let dataSource: DataSource;
  let cleanup: () => Promise<void>;
  let config: ConfigService;
  let tenantId: string;
  let sut: ApiKeyService;

  beforeAll(async () => {
    const db = await testDatabaseEnv(kind);
    cleanup = db.cleanup;
    config = new ConfigService(loadConfig({ ...db.env, API_KEY_CACHE_TTL_MS: '60000' }));
    ({ dataSource } = await openDataSource(dataSourceOptions(config.values.database), true));
    tenantId = randomUUID();
    await dataSource.getRepository(TenantEntity).insert({
      id: tenantId,
      slug: 'acme',
      name: 'Acme',
      status: 'active',
      limits: {},
      auth: {},
      revision: 1,
      createdAt: new Date(),
      updatedAt: new Date(),
    });
  });

  afterAll(async () => {
    await dataSource?.destroy();
    await cleanup?.();
  });

  beforeEach(() => {
    sut = new ApiKeyService(dataSource.getRepository(ApiKeyEntity), config);
  });

  const newKey = (expiresAt?: Date) =>
    sut.create(tenantId, {
      name: `k-${randomUUID()}`,
      roles: ['tool-user'],
      scopes: ['a'],
      expiresAt,
    });

  it('reads an uncached key from the database, then answers synchronously from the cache', async () => {
    const { entity, secret } = await newKey();

    const first = sut.lookup(secret);
    expect(first).toBeInstanceOf(Promise);
    const key = await first;
    expect(key).toMatchObject({ id: entity.id, tenantId, roles: ['tool-user'], scopes: ['a'] });

    const second = sut.lookup(secret);
    expect(second).not.toBeInstanceOf(Promise);
    expect(second).toBe(key);
    await expect(sut.verify(secret)).resolves.toBe(key);
  });

  it('answers from the cache alone, never the database, through cached()', async () => {
    const { entity, secret } = await newKey();
    expect(sut.cached(secret)).toBeUndefined();

    const key = await sut.lookup(secret);

    expect(sut.cached(secret)).toBe(key);
    await sut.revoke(tenantId, entity.id);
    expect(sut.cached(secret)).toBeUndefined();
  });

  it('shares one database read between concurrent lookups of an uncached key', async () => {
    const { entity, secret } = await newKey();

    const a = sut.lookup(secret);
    const b = sut.lookup(secret);

    expect(a).toBeInstanceOf(Promise);
    expect(b).toBe(a);
    expect(((await a) as VerifiedApiKey).id).toBe(entity.id);
  });

  it('refuses a cached key as soon as it is revoked on this node', async () => {
    const { entity, secret } = await newKey();
    await sut.lookup(secret);

    await sut.revoke(tenantId, entity.id);

    const after = sut.lookup(secret);
    expect(after).toBeInstanceOf(Promise);
    await expect(after).resolves.toBeUndefined();
  });

  it('does not cache a lookup that was under way when the key was revoked', async () => {
    const { entity, secret } = await newKey();
    // The lookup's read is held after the row is read, until the revocation is done.
    const keys = dataSource.getRepository(ApiKeyEntity);
    let release!: () => void;
    let reached!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const readDone = new Promise<void>((resolve) => (reached = resolve));
    const heldKeys = Object.create(keys) as typeof keys;
    heldKeys.find = async (options) => {
      const rows = await keys.find(options);
      reached();
      await held;
      return rows;
    };
    sut = new ApiKeyService(heldKeys, config);

    const inFlight = sut.lookup(secret);
    await readDone;
    await sut.revoke(tenantId, entity.id);
    release();
    expect(await inFlight).toBeDefined();

    await expect(sut.lookup(secret)).resolves.toBeUndefined();
  });

  it('stops accepting a cached key once the key itself expires', async () => {
    const { secret } = await newKey(new Date(Date.now() + 300));
    expect(await sut.lookup(secret)).toBeDefined();

    await sleep(350);

    expect(await sut.lookup(secret)).toBeUndefined();
  });

  it('reads the database again once the cache TTL is over', async () => {
    sut = new ApiKeyService(
      dataSource.getRepository(ApiKeyEntity),
      new ConfigService({
        ...config.values,
        security: { ...config.values.security, apiKeyCacheTtlMs: 100 },
      }),
    );
    const { secret } = await newKey();
    const key = await sut.lookup(secret);
    expect(sut.cached(secret)).toBe(key);

    await sleep(150);

    expect(sut.cached(secret)).toBeUndefined();
    const again = sut.lookup(secret);
    expect(again).toBeInstanceOf(Promise);
    expect((await again)?.id).toBe(key?.id);
  });

  it('answers at once for what is not an API key at all', () => {
    expect(sut.lookup('not-a-key')).toBeUndefined();
    expect(sut.lookup(`ptk_${'x'.repeat(10)}`)).toBeUndefined();
  });

  it('refuses an unknown key of the right format', async () => {
    await expect(sut.lookup(`ptk_${'A'.repeat(43)}`)).resolves.toBeUndefined();
  });
});

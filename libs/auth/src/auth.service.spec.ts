import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import type { DataSource } from 'typeorm';
import { ConfigService, loadConfig } from '@portico/config';
import {
  ApiKeyEntity,
  dataSourceOptions,
  openDataSource,
  RoleBindingEntity,
  TenantEntity,
} from '@portico/persistence';
import { DATABASE_KINDS, DatabaseKind, testDatabaseEnv } from '@portico/testing';
import { ApiKeyService } from './api-key/api-key.service';
import { AuthError } from './auth.errors';
import { AuthService } from './auth.service';
import { JwtVerifier } from './jwt/jwt-verifier';
import { AuthPrincipal } from './principal';

const ISSUER = 'https://issuer.portico.test/';
const AUDIENCE = 'portico-test';
const SECRET = 'an-hs256-secret-that-is-long-enough!!';

describe.each(DATABASE_KINDS)(`${AuthService.name} on %s`, (kind: DatabaseKind) => {
  let dataSource: DataSource;
  let cleanup: () => Promise<void>;
  let config: ConfigService;
  let apiKeys: ApiKeyService;
  let sut: AuthService;

  beforeAll(async () => {
    const db = await testDatabaseEnv(kind);
    cleanup = db.cleanup;
    config = new ConfigService(loadConfig({ ...db.env, API_KEY_CACHE_TTL_MS: '60000' }));
    ({ dataSource } = await openDataSource(dataSourceOptions(config.values.database), true));
  });

  afterAll(async () => {
    await dataSource?.destroy();
    await cleanup?.();
  });

  beforeEach(() => {
    apiKeys = new ApiKeyService(dataSource.getRepository(ApiKeyEntity), config);
    sut = new AuthService(
      apiKeys,
      new JwtVerifier(),
      dataSource.getRepository(RoleBindingEntity),
      config,
    );
  });

  async function newTenant(withJwt = true): Promise<TenantEntity> {
    const tenant = dataSource.getRepository(TenantEntity).create({
      id: randomUUID(),
      slug: `t-${randomUUID().slice(0, 8)}`,
      name: 'Tenant',
      status: 'active',
      limits: {},
      auth: withJwt
        ? {
            jwt: { issuer: ISSUER, audience: AUDIENCE, publicKey: SECRET, algorithms: ['HS256'] },
          }
        : {},
      revision: 1,
      createdAt: new Date(),
      updatedAt: new Date(),
    });
    await dataSource.getRepository(TenantEntity).insert(tenant);
    return tenant;
  }

  const jwt = (subject: string, claims: Record<string, unknown> = {}) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(subject)
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(SECRET));

  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  const bindRole = (tenant: TenantEntity, subject: string, role: string) =>
    dataSource.getRepository(RoleBindingEntity).insert({
      id: randomUUID(),
      tenantId: tenant.id,
      subject,
      role,
      declared: false,
      createdAt: new Date(),
    });

  async function refusal(result: unknown): Promise<AuthError> {
    expect(result).toBeInstanceOf(Promise);
    const error = await (result as Promise<unknown>).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(AuthError);
    return error as AuthError;
  }

  describe('API keys', () => {
    it('answers synchronously once the key is cached, with the same principal each time', async () => {
      const tenant = await newTenant();
      const { entity, secret } = await apiKeys.create(tenant.id, {
        name: 'k',
        roles: [],
        scopes: ['files:read'],
      });

      const first = sut.authenticate(bearer(secret), tenant);
      expect(first).toBeInstanceOf(Promise);
      const principal = await first;
      expect(principal).toMatchObject({
        id: `key:${entity.id}`,
        kind: 'api-key',
        tenant: tenant.id,
        roles: ['tool-user'],
        scopes: ['files:read'],
      });

      const again = sut.authenticate({ apiKeyHeader: secret }, tenant);
      expect(again).toBe(principal);
    });

    it("refuses another tenant's key like an unknown one", async () => {
      const owner = await newTenant();
      const other = await newTenant();
      const { secret } = await apiKeys.create(owner.id, { name: 'k', roles: [], scopes: [] });
      await sut.authenticate(bearer(secret), owner);

      const error = await refusal(sut.authenticate(bearer(secret), other));
      expect(error.message).toBe('Unknown, revoked or expired API key');
    });

    it('refuses a revoked key on the next request, cached or not', async () => {
      const tenant = await newTenant();
      const { entity, secret } = await apiKeys.create(tenant.id, {
        name: 'k',
        roles: [],
        scopes: [],
      });
      await sut.authenticate(bearer(secret), tenant);

      await apiKeys.revoke(tenant.id, entity.id);

      expect((await refusal(sut.authenticate(bearer(secret), tenant))).status).toBe(401);
    });
  });

  describe('refusals', () => {
    it('are rejected promises, never synchronous throws', async () => {
      const tenant = await newTenant(false);

      expect((await refusal(sut.authenticate({}, tenant))).error).toBeUndefined();
      expect((await refusal(sut.authenticate({ authorization: 'Basic abc' }, tenant))).error).toBe(
        'invalid_request',
      );
      expect(
        (await refusal(sut.authenticate({ ...bearer('x.y.z'), query: 'access_token=x' }, tenant)))
          .error,
      ).toBe('invalid_request');
      expect((await refusal(sut.authenticate(bearer('x.y.z'), tenant))).error).toBe(
        'invalid_token',
      );
      expect(
        (await refusal(sut.authenticate(bearer(`ptk_${'A'.repeat(43)}`), tenant))).status,
      ).toBe(401);
    });
  });

  describe('the Authorization header', () => {
    it('accepts the Bearer scheme in any case and with extra spaces, nothing else', async () => {
      const tenant = await newTenant();
      const { entity, secret } = await apiKeys.create(tenant.id, {
        name: 'k',
        roles: [],
        scopes: [],
      });
      const token = await jwt('erin');

      for (const value of [
        `Bearer ${secret}`,
        `bearer ${secret}`,
        `BEARER  ${secret}`,
        `Bearer ${secret}  `,
      ]) {
        expect((await sut.authenticate({ authorization: value }, tenant)).id).toBe(
          `key:${entity.id}`,
        );
      }
      for (const value of [`Bearer ${token}`, `bEaReR ${token}`, `Bearer   ${token} `]) {
        expect((await sut.authenticate({ authorization: value }, tenant)).id).toBe(
          `jwt:${tenant.id}:erin`,
        );
      }
      for (const value of [
        `Bearer\t${secret}`,
        `Bearerx ${secret}`,
        `Basic ${secret}`,
        `Bearer ${secret}\t`,
        `Bearer ${secret} x`,
        `Bearer ${secret.slice(0, 20)}\u00a0${secret.slice(20)}`,
        `Bearer ${token}\u2028`,
        `Bearer ${token.slice(0, 30)}\t${token.slice(30)}`,
        'Bearer ',
      ]) {
        const error = await refusal(sut.authenticate({ authorization: value }, tenant));
        expect([value, error.error, error.message]).toEqual([
          value,
          'invalid_request',
          'Authorization must use the Bearer scheme',
        ]);
      }
    });

    it('refuses credentials in the query string even with a valid header', async () => {
      const tenant = await newTenant();
      const { secret } = await apiKeys.create(tenant.id, { name: 'k', roles: [], scopes: [] });
      await sut.authenticate(bearer(secret), tenant);

      const error = await refusal(
        sut.authenticate({ ...bearer(secret), query: 'token=x' }, tenant),
      );

      expect(error.error).toBe('invalid_request');
    });
  });

  describe('JWTs', () => {
    it('verifies a token once, then answers synchronously with the same principal', async () => {
      const tenant = await newTenant();
      const token = await jwt('alice', { scope: 'files:read', roles: ['tenant-admin'] });

      const first = sut.authenticate(bearer(token), tenant);
      expect(first).toBeInstanceOf(Promise);
      const principal = await first;
      expect(principal).toBeInstanceOf(AuthPrincipal);
      expect(principal).toMatchObject({
        id: `jwt:${tenant.id}:alice`,
        kind: 'jwt',
        tenant: tenant.id,
        scopes: ['files:read'],
      });
      expect([...principal.roles].sort()).toEqual(['tenant-admin', 'tool-user']);

      expect(sut.authenticate(bearer(token), tenant)).toBe(principal);
    });

    it('verifies the same token again for another tenant and for a new settings revision', async () => {
      const first = await newTenant();
      const second = await newTenant();
      const token = await jwt('bob');
      const principal = await sut.authenticate(bearer(token), first);

      const elsewhere = sut.authenticate(bearer(token), second);
      expect(elsewhere).toBeInstanceOf(Promise);
      expect((await elsewhere).id).toBe(`jwt:${second.id}:bob`);
      expect(sut.authenticate(bearer(token), first)).toBe(principal);

      const revised = Object.assign(new TenantEntity(), first, { revision: 2 });
      const afterChange = sut.authenticate(bearer(token), revised);
      expect(afterChange).toBeInstanceOf(Promise);
      expect(await afterChange).not.toBe(principal);
    });

    it('never caches a refused token', async () => {
      const tenant = await newTenant();
      const forged = `${(await jwt('mallory')).slice(0, -4)}AAAA`;

      expect((await refusal(sut.authenticate(bearer(forged), tenant))).error).toBe('invalid_token');
      expect((await refusal(sut.authenticate(bearer(forged), tenant))).error).toBe('invalid_token');
    });

    it('rebuilds the principal after role bindings change, once for concurrent requests', async () => {
      const tenant = await newTenant();
      const token = await jwt('carol');
      const before = await sut.authenticate(bearer(token), tenant);
      expect(before.roles).toEqual(['tool-user']);

      await bindRole(tenant, 'carol', 'tenant-admin');
      sut.forgetBindings(tenant.id);

      const a = sut.authenticate(bearer(token), tenant);
      const b = sut.authenticate(bearer(token), tenant);
      expect(a).toBeInstanceOf(Promise);
      expect(b).toBe(a);
      const after = await a;
      expect([...after.roles].sort()).toEqual(['tenant-admin', 'tool-user']);
      expect(sut.authenticate(bearer(token), tenant)).toBe(after);
    });

    it('does not keep a principal whose build started before the bindings changed', async () => {
      // The role-binding read of the first build is held until the bindings have changed.
      const bindings = dataSource.getRepository(RoleBindingEntity);
      let release!: () => void;
      let reached!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      const readDone = new Promise<void>((resolve) => (reached = resolve));
      const heldBindings = Object.create(bindings) as typeof bindings;
      heldBindings.find = async (options) => {
        const rows = await bindings.find(options);
        reached();
        await held;
        return rows;
      };
      sut = new AuthService(apiKeys, new JwtVerifier(), heldBindings, config);
      const tenant = await newTenant();
      const token = await jwt('dave');

      const stale = sut.authenticate(bearer(token), tenant);
      await readDone;
      await bindRole(tenant, 'dave', 'tenant-operator');
      sut.forgetBindings(tenant.id);
      release();
      expect((await stale).roles).toEqual(['tool-user']);

      const current = await sut.authenticate(bearer(token), tenant);
      expect([...current.roles].sort()).toEqual(['tenant-operator', 'tool-user']);
    });
  });
});

import { createHash, timingSafeEqual } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { ConfigService } from '@portico/config';
import { RoleBindingEntity, TenantEntity } from '@portico/persistence';
import { ApiKeyService, isApiKeyFormat, VerifiedApiKey } from './api-key/api-key.service';
import { AuthError } from './auth.errors';
import { JwtSettings, JwtVerificationError, JwtVerifier, VerifiedToken } from './jwt/jwt-verifier';
import { AuthPrincipal } from './principal';
import { isRole, Role } from './roles';

/** Query parameters that would carry a credential; refused outright (URLs end up in logs). */
const QUERY_CREDENTIALS = ['access_token', 'api_key', 'apikey', 'token', 'key'];
const BINDING_CACHE_MS = 5_000;
/** A verified token is trusted again without re-checking its signature for at most this long. */
const TOKEN_CACHE_MS = 60_000;
const TOKEN_CACHE_MAX = 10_000;

export interface CredentialSource {
  readonly authorization?: string;
  readonly apiKeyHeader?: string;
  /** The raw query string (after `?`), checked only for smuggled credentials. */
  readonly query?: string;
}

/**
 * Turns a request's credentials into an AuthPrincipal for one tenant (its MCP endpoint or its
 * admin routes) or for the platform (admin routes only). Credentials come only from the
 * Authorization header (Bearer: API key or JWT) or X-API-Key; never from the query string.
 */
@Injectable()
export class AuthService {
  private readonly bootstrap?: Buffer;
  private readonly bindingCache = new Map<string, { roles: Role[]; until: number }>();
  /**
   * Verified tokens by tenant settings revision and token hash; the principal built from one is
   * kept too, for as long as role bindings may be cached (it includes bound roles).
   */
  private readonly tokenCache = new Map<
    string,
    { token: VerifiedToken; until: number; principal?: AuthPrincipal; principalUntil?: number }
  >();
  /** Verified keys are cached objects: their principal is built once per cache entry. */
  private readonly keyPrincipals = new WeakMap<VerifiedApiKey, AuthPrincipal>();

  constructor(
    private readonly apiKeys: ApiKeyService,
    private readonly jwt: JwtVerifier,
    @InjectRepository(RoleBindingEntity) private readonly bindings: Repository<RoleBindingEntity>,
    config: ConfigService,
  ) {
    const token = config.values.security.bootstrapAdminToken;
    this.bootstrap = token === undefined ? undefined : Buffer.from(token);
  }

  /** The bearer credential of a request, or undefined when none is present. */
  extract(source: CredentialSource): string | undefined {
    if (source.query && hasQueryCredential(source.query)) {
      throw AuthError.badRequest('Credentials are accepted only in the Authorization header');
    }
    const header = source.authorization;
    if (header !== undefined && header !== '') {
      const match = /^Bearer[ ]+([^\s]+)[ ]*$/i.exec(header);
      if (!match) {
        throw AuthError.badRequest('Authorization must use the Bearer scheme');
      }
      return match[1];
    }
    if (source.apiKeyHeader !== undefined && source.apiKeyHeader !== '') {
      return source.apiKeyHeader.trim();
    }
    return undefined;
  }

  /**
   * Authenticates for `tenant`'s endpoint. Platform-level credentials (bootstrap token,
   * platform keys) are accepted only where `allowPlatform` is set: the admin API.
   */
  async authenticate(
    source: CredentialSource,
    tenant: TenantEntity | null,
    options: { allowPlatform?: boolean } = {},
  ): Promise<AuthPrincipal> {
    const token = this.extract(source);
    if (token === undefined) {
      throw AuthError.missing();
    }
    if (this.isBootstrap(token)) {
      if (!options.allowPlatform) {
        throw AuthError.invalid('This credential is not valid for this endpoint');
      }
      return new AuthPrincipal(
        'bootstrap',
        'bootstrap',
        undefined,
        ['platform-admin'],
        [],
        'bootstrap',
      );
    }
    if (isApiKeyFormat(token)) {
      return this.fromApiKey(token, tenant, options.allowPlatform === true);
    }
    if (!tenant) {
      throw AuthError.invalid('Invalid credentials');
    }
    return this.fromJwt(token, tenant);
  }

  private isBootstrap(token: string): boolean {
    if (!this.bootstrap) {
      return false;
    }
    const given = Buffer.from(token);
    return given.length === this.bootstrap.length && timingSafeEqual(given, this.bootstrap);
  }

  private async fromApiKey(
    token: string,
    tenant: TenantEntity | null,
    allowPlatform: boolean,
  ): Promise<AuthPrincipal> {
    const key = await this.apiKeys.verify(token);
    if (!key) {
      throw AuthError.invalid('Unknown, revoked or expired API key');
    }
    if (key.tenantId === null) {
      if (!allowPlatform) {
        throw AuthError.invalid('This credential is not valid for this endpoint');
      }
    } else if (!tenant || key.tenantId !== tenant.id) {
      // Same answer as an unknown key: a key must not reveal which tenant it belongs to.
      throw AuthError.invalid('Unknown, revoked or expired API key');
    }
    let principal = this.keyPrincipals.get(key);
    if (!principal) {
      const roles = key.roles.length > 0 ? key.roles : (['tool-user'] as Role[]);
      principal = new AuthPrincipal(
        `key:${key.id}`,
        'api-key',
        key.tenantId ?? undefined,
        roles,
        key.scopes,
        key.id,
      );
      this.keyPrincipals.set(key, principal);
    }
    return principal;
  }

  private async fromJwt(token: string, tenant: TenantEntity): Promise<AuthPrincipal> {
    const settings = tenant.auth.jwt;
    if (!settings) {
      throw AuthError.invalid('Invalid credentials');
    }
    const cacheKey = `${tenant.id}@${tenant.revision}:${createHash('sha256').update(token).digest('base64')}`;
    const now = Date.now();
    const cached = this.tokenCache.get(cacheKey);
    if (cached?.principal && cached.principalUntil! > now) {
      return cached.principal;
    }
    const verified = await this.verifyJwt(cacheKey, token, tenant, settings);
    const principal = await this.jwtPrincipal(tenant, verified);
    const entry = this.tokenCache.get(cacheKey);
    if (entry) {
      entry.principal = principal;
      entry.principalUntil = Math.min(entry.until, now + BINDING_CACHE_MS);
    }
    return principal;
  }

  private async jwtPrincipal(
    tenant: TenantEntity,
    verified: VerifiedToken,
  ): Promise<AuthPrincipal> {
    const roles = new Set<Role>(['tool-user']);
    for (const role of verified.roles) {
      // A token cannot make itself platform admin: that role is granted by Portico only.
      if (isRole(role) && role !== 'platform-admin') {
        roles.add(role);
      }
    }
    for (const role of await this.boundRoles(tenant.id, verified.subject)) {
      roles.add(role);
    }
    return new AuthPrincipal(
      `jwt:${tenant.id}:${verified.subject}`,
      'jwt',
      tenant.id,
      [...roles],
      verified.scopes,
      verified.subject,
    );
  }

  /**
   * Signature checks (RS256 ≈ tens of µs) are cached per token bytes and tenant settings
   * revision, never past the token's own expiry.
   */
  private async verifyJwt(
    cacheKey: string,
    token: string,
    tenant: TenantEntity,
    settings: JwtSettings,
  ): Promise<VerifiedToken> {
    const now = Date.now();
    const cached = this.tokenCache.get(cacheKey);
    if (cached && cached.until > now) {
      return cached.token;
    }
    let verified: VerifiedToken;
    try {
      verified = await this.jwt.verify(token, `${tenant.id}@${tenant.revision}`, settings);
    } catch (err) {
      if (err instanceof JwtVerificationError) {
        throw AuthError.invalid(jwtMessage(err));
      }
      throw err;
    }
    if (verified.expiresAt === undefined) {
      throw AuthError.invalid('The token has no expiry');
    }
    if (this.tokenCache.size >= TOKEN_CACHE_MAX) {
      this.tokenCache.clear();
    }
    this.tokenCache.set(cacheKey, {
      token: verified,
      until: Math.min(now + TOKEN_CACHE_MS, verified.expiresAt * 1000),
    });
    return verified;
  }

  private async boundRoles(tenantId: string, subject: string): Promise<Role[]> {
    const cacheKey = `${tenantId}\u0000${subject}`;
    const now = Date.now();
    const cached = this.bindingCache.get(cacheKey);
    if (cached && cached.until > now) {
      return cached.roles;
    }
    const rows = await this.bindings.find({ where: { tenantId, subject } });
    const roles = rows.map((r) => r.role).filter(isRole);
    if (this.bindingCache.size > 10_000) {
      this.bindingCache.clear();
    }
    this.bindingCache.set(cacheKey, { roles, until: now + BINDING_CACHE_MS });
    return roles;
  }

  /** Role bindings changed for a tenant: drop what this node cached. */
  forgetBindings(tenantId: string): void {
    for (const [key, entry] of this.tokenCache) {
      if (key.startsWith(`${tenantId}@`)) {
        entry.principal = undefined;
      }
    }
    for (const key of this.bindingCache.keys()) {
      if (key.startsWith(`${tenantId}\u0000`)) {
        this.bindingCache.delete(key);
      }
    }
  }
}

function hasQueryCredential(query: string): boolean {
  const params = new URLSearchParams(query);
  return QUERY_CREDENTIALS.some((name) => params.has(name));
}

function jwtMessage(err: JwtVerificationError): string {
  switch (err.reason) {
    case 'expired':
      return 'The token has expired';
    case 'not-yet-valid':
      return 'The token is not valid yet';
    case 'issuer':
      return 'The token was issued by an untrusted issuer';
    case 'audience':
      return 'The token was not issued for this resource';
    case 'keys-unavailable':
      return 'The issuer keys could not be fetched';
    default:
      return 'Invalid token';
  }
}

import { timingSafeEqual } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { ConfigService } from '@portico/config';
import type { MaybePromise } from '@portico/mcp-protocol';
import { RoleBindingEntity, TenantEntity } from '@portico/persistence';
import {
  API_KEY_PREFIX,
  ApiKeyService,
  isApiKeyFormat,
  VerifiedApiKey,
} from './api-key/api-key.service';
import { AuthError } from './auth.errors';
import { JwtSettings, JwtVerificationError, JwtVerifier, VerifiedToken } from './jwt/jwt-verifier';
import { AuthPrincipal } from './principal';
import { isRole, Role } from './roles';

/** Query parameters that would carry a credential; refused outright (URLs end up in logs). */
const QUERY_CREDENTIALS = ['access_token', 'api_key', 'apikey', 'token', 'key'];
const BEARER = /^Bearer[ ]+([^\s]+)[ ]*$/i;
const WHITESPACE = /\s/;
const NOT_BEARER = 'Authorization must use the Bearer scheme';
const BEARER_LOWER = [...'bearer'].map((c) => c.charCodeAt(0));
const BINDING_CACHE_MS = 5_000;
/** A verified token is trusted again without re-checking its signature for at most this long. */
const TOKEN_CACHE_MS = 60_000;
const TOKEN_CACHE_MAX = 10_000;

interface TokenCacheEntry {
  /** The tenant revision whose JWT settings verified the token. */
  readonly revision: number;
  readonly token: VerifiedToken;
  readonly until: number;
  principal?: AuthPrincipal;
  principalUntil: number;
  /** The principal being rebuilt: concurrent requests share one role-binding lookup. */
  building?: Promise<AuthPrincipal>;
}

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
   * Verified tokens by tenant id, then the token itself (for the tenant's settings revision at
   * verification; see ApiKeyService for why not a digest); the principal built from one is kept
   * too, for as long as role bindings may be cached (it includes bound roles).
   */
  private readonly tokenCache = new Map<string, Map<string, TokenCacheEntry>>();
  private tokenCount = 0;
  /** Bumped when role bindings change: what was read before is not cached afterwards. */
  private bindingsVersion = 0;
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
      const match = BEARER.exec(header);
      if (!match) {
        throw AuthError.badRequest(NOT_BEARER);
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
   *
   * Answers synchronously when the credential's verification is cached (the request path of a
   * busy endpoint: no promise per call), through a promise otherwise. Refusals are always a
   * rejected promise (AuthError), never a synchronous throw.
   */
  authenticate(
    source: CredentialSource,
    tenant: TenantEntity | null,
    options: { allowPlatform?: boolean } = {},
  ): MaybePromise<AuthPrincipal> {
    try {
      return this.principalOf(source, tenant, options.allowPlatform === true);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private principalOf(
    source: CredentialSource,
    tenant: TenantEntity | null,
    allowPlatform: boolean,
  ): MaybePromise<AuthPrincipal> {
    // The usual `Bearer <token>` skips the strict parse: a token that is a cached API key, has
    // the API-key format or matches a verified JWT holds no whitespace, so the strict parse
    // would return it as is. Anything else (a JWT not verified yet, too) takes the strict path.
    const plain = source.query === undefined ? plainBearer(source.authorization) : undefined;
    if (plain !== undefined && !this.isBootstrap(plain)) {
      const key = plain.startsWith(API_KEY_PREFIX) ? this.apiKeys.cached(plain) : undefined;
      if (key !== undefined) {
        return this.keyPrincipal(key, tenant, allowPlatform);
      }
      if (isApiKeyFormat(plain)) {
        return this.fromApiKey(plain, tenant, allowPlatform);
      }
      if (tenant?.auth.jwt) {
        return this.fromJwt(plain, tenant, true);
      }
    }
    const token = this.extract(source);
    if (token === undefined) {
      throw AuthError.missing();
    }
    if (this.isBootstrap(token)) {
      if (!allowPlatform) {
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
      return this.fromApiKey(token, tenant, allowPlatform);
    }
    if (!tenant) {
      throw AuthError.invalid('Invalid credentials');
    }
    return this.fromJwt(token, tenant, false);
  }

  private fromApiKey(
    token: string,
    tenant: TenantEntity | null,
    allowPlatform: boolean,
  ): MaybePromise<AuthPrincipal> {
    const key = this.apiKeys.lookup(token);
    return key instanceof Promise
      ? key.then((found) => this.keyPrincipal(found, tenant, allowPlatform))
      : this.keyPrincipal(key, tenant, allowPlatform);
  }

  private isBootstrap(token: string): boolean {
    // A string has at most as many UTF-16 units as UTF-8 bytes: a longer one cannot match.
    if (!this.bootstrap || token.length > this.bootstrap.length) {
      return false;
    }
    const given = Buffer.from(token);
    return given.length === this.bootstrap.length && timingSafeEqual(given, this.bootstrap);
  }

  /** The principal of a verified key, built once per cache entry (the key object is cached). */
  private keyPrincipal(
    key: VerifiedApiKey | undefined,
    tenant: TenantEntity | null,
    allowPlatform: boolean,
  ): AuthPrincipal {
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

  /** `unparsed`: the token comes from the quick parse, its characters not checked yet. */
  private fromJwt(
    token: string,
    tenant: TenantEntity,
    unparsed: boolean,
  ): MaybePromise<AuthPrincipal> {
    const settings = tenant.auth.jwt;
    if (!settings) {
      throw AuthError.invalid('Invalid credentials');
    }
    const now = Date.now();
    const cached = this.tokenCache.get(tenant.id)?.get(token);
    if (cached !== undefined && cached.revision === tenant.revision && cached.until > now) {
      if (cached.principal !== undefined && cached.principalUntil > now) {
        return cached.principal;
      }
      return (cached.building ??= this.cachePrincipal(cached, tenant, now));
    }
    if (unparsed && WHITESPACE.test(token)) {
      // What the strict parse answers for such a header.
      throw AuthError.badRequest(NOT_BEARER);
    }
    return this.verifyJwt(token, tenant, settings, now).then((entry) =>
      this.cachePrincipal(entry, tenant, now),
    );
  }

  private async cachePrincipal(
    entry: TokenCacheEntry,
    tenant: TenantEntity,
    now: number,
  ): Promise<AuthPrincipal> {
    const version = this.bindingsVersion;
    try {
      const principal = await this.jwtPrincipal(tenant, entry.token);
      if (version === this.bindingsVersion) {
        entry.principal = principal;
        entry.principalUntil = Math.min(entry.until, now + BINDING_CACHE_MS);
      }
      return principal;
    } finally {
      // After a change, forgetBindings has cleared it already (and a newer build may be set).
      if (version === this.bindingsVersion) {
        entry.building = undefined;
      }
    }
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
    token: string,
    tenant: TenantEntity,
    settings: JwtSettings,
    now: number,
  ): Promise<TokenCacheEntry> {
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
    if (this.tokenCount >= TOKEN_CACHE_MAX) {
      for (const tokens of this.tokenCache.values()) {
        tokens.clear();
      }
      this.tokenCache.clear();
      this.tokenCount = 0;
    }
    let tokens = this.tokenCache.get(tenant.id);
    if (!tokens) {
      tokens = new Map();
      this.tokenCache.set(tenant.id, tokens);
    }
    const entry: TokenCacheEntry = {
      revision: tenant.revision,
      token: verified,
      until: Math.min(now + TOKEN_CACHE_MS, verified.expiresAt * 1000),
      principalUntil: 0,
    };
    if (!tokens.has(token)) {
      this.tokenCount += 1;
    }
    tokens.set(token, entry);
    const cache = tokens;
    setTimeout(() => {
      if (cache.get(token) === entry) {
        cache.delete(token);
        this.tokenCount -= 1;
      }
    }, entry.until - now).unref();
    return entry;
  }

  private async boundRoles(tenantId: string, subject: string): Promise<Role[]> {
    const cacheKey = `${tenantId}\u0000${subject}`;
    const now = Date.now();
    const cached = this.bindingCache.get(cacheKey);
    if (cached && cached.until > now) {
      return cached.roles;
    }
    const version = this.bindingsVersion;
    const rows = await this.bindings.find({ where: { tenantId, subject } });
    const roles = rows.map((r) => r.role).filter(isRole);
    if (version !== this.bindingsVersion) {
      return roles;
    }
    if (this.bindingCache.size > 10_000) {
      this.bindingCache.clear();
    }
    this.bindingCache.set(cacheKey, { roles, until: now + BINDING_CACHE_MS });
    return roles;
  }

  /** Role bindings changed for a tenant: drop what this node cached. */
  forgetBindings(tenantId: string): void {
    this.bindingsVersion += 1;
    for (const entry of this.tokenCache.get(tenantId)?.values() ?? []) {
      entry.principal = undefined;
      entry.building = undefined;
    }
    for (const key of this.bindingCache.keys()) {
      if (key.startsWith(`${tenantId}\u0000`)) {
        this.bindingCache.delete(key);
      }
    }
  }
}

/**
 * The token of `Bearer <token>` written the usual way (one space, nothing after the token), or
 * undefined for anything else; the token's characters are not checked.
 */
function plainBearer(header: string | undefined): string | undefined {
  if (
    header === undefined ||
    header.length < 8 ||
    header.charCodeAt(6) !== 32 ||
    header.charCodeAt(7) === 32 ||
    header.indexOf(' ', 8) !== -1
  ) {
    return undefined;
  }
  // "bearer", case-insensitive: ASCII letters with the 0x20 bit set are lower case.
  for (let i = 0; i < 6; i++) {
    if ((header.charCodeAt(i) | 0x20) !== BEARER_LOWER[i]) {
      return undefined;
    }
  }
  return header.slice(7);
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

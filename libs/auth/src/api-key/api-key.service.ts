import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { IsNull, Repository } from 'typeorm';
import { ConfigService } from '@portico/config';
import type { MaybePromise } from '@portico/mcp-protocol';
import { ApiKeyEntity, TenantScopedRepository, stamps } from '@portico/persistence';
import type { Role } from '../roles';

/** Every key starts with this, so scanners and people can recognise a leaked one. */
export const API_KEY_PREFIX = 'ptk_';
const LOOKUP_PREFIX_LENGTH = 12;
const KEY_PATTERN = /^ptk_[A-Za-z0-9_-]{32,200}$/;
/** last_used_at is written at most this often per key: a hot key must not write per call. */
const LAST_USED_RESOLUTION_MS = 60_000;

export interface NewApiKey {
  name: string;
  roles: Role[];
  scopes: string[];
  expiresAt?: Date | null;
  /** A caller-chosen secret (declarative config); generated when absent. */
  secret?: string;
  declared?: boolean;
}

export interface VerifiedApiKey {
  readonly id: string;
  readonly tenantId: string | null;
  readonly name: string;
  readonly roles: readonly Role[];
  readonly scopes: readonly string[];
}

interface CacheEntry {
  readonly key: VerifiedApiKey;
  readonly expiresAt: number | null;
  readonly until: number;
}

export function isApiKeyFormat(token: string): boolean {
  return KEY_PATTERN.test(token);
}

function hashKey(secret: string, salt: string): string {
  return createHmac('sha256', salt).update(secret).digest('hex');
}

/**
 * API keys: generated with 256 bits of randomness, shown once, stored as a salted HMAC-SHA256
 * (a slow password hash buys nothing for a random 256-bit secret and would cost every call).
 * Verified keys are cached for API_KEY_CACHE_TTL_MS; revocation on this node evicts at once,
 * other nodes see it within that TTL.
 */
@Injectable()
export class ApiKeyService {
  private readonly logger = new Logger(ApiKeyService.name);
  /**
   * Verified keys by the secret itself, as every request carries it: a SHA-256 digest per
   * request cost more than the rest of the lookup. An entry is dropped when its TTL ends.
   */
  private readonly cache = new Map<string, CacheEntry>();
  private readonly loading = new Map<string, Promise<VerifiedApiKey | undefined>>();
  /** Bumped by every eviction: a lookup that started before one must not fill the cache. */
  private evictions = 0;
  private readonly lastUsedWritten = new Map<string, number>();
  private readonly cacheTtlMs: number;

  constructor(
    @InjectRepository(ApiKeyEntity) private readonly keys: Repository<ApiKeyEntity>,
    config: ConfigService,
  ) {
    this.cacheTtlMs = config.values.security.apiKeyCacheTtlMs;
  }

  forTenant(tenantId: string): TenantScopedRepository<ApiKeyEntity> {
    return new TenantScopedRepository(this.keys, tenantId);
  }

  /** Creates a key; the returned secret is never stored and cannot be shown again. */
  async create(
    tenantId: string | null,
    input: NewApiKey,
  ): Promise<{ entity: ApiKeyEntity; secret: string }> {
    const secret = input.secret ?? API_KEY_PREFIX + randomBytes(32).toString('base64url');
    if (!isApiKeyFormat(secret)) {
      throw new Error(
        'API key secrets must match ptk_ followed by at least 32 URL-safe characters',
      );
    }
    const salt = randomBytes(16).toString('hex');
    const values = {
      name: input.name,
      prefix: secret.slice(0, LOOKUP_PREFIX_LENGTH),
      hash: hashKey(secret, salt),
      salt,
      roles: input.roles,
      scopes: input.scopes,
      expiresAt: input.expiresAt ?? null,
      revokedAt: null,
      lastUsedAt: null,
      declared: input.declared ?? false,
    };
    let entity: ApiKeyEntity;
    if (tenantId === null) {
      entity = this.keys.create({
        id: randomUUID(),
        ...stamps(this.keys, new Date()),
        ...values,
        tenantId: null,
      });
      await this.keys.insert(entity);
    } else {
      entity = await this.forTenant(tenantId).insert(values);
    }
    return { entity, secret };
  }

  /** Platform-level keys (no tenant), by name. */
  listPlatform(): Promise<ApiKeyEntity[]> {
    return this.keys.find({ where: { tenantId: IsNull() }, order: { name: 'ASC' } });
  }

  findPlatform(id: string): Promise<ApiKeyEntity | null> {
    return this.keys.findOne({ where: { id, tenantId: IsNull() } });
  }

  /** Marks a key revoked; false when the tenant has no such key. */
  async revoke(tenantId: string | null, id: string): Promise<boolean> {
    const where = { id, tenantId: tenantId ?? IsNull(), revokedAt: IsNull() };
    const result = await this.keys.update(where, { revokedAt: new Date() });
    this.evict(id);
    return (result.affected ?? 0) > 0;
  }

  /** Forgets cached verifications of a key (revoked, deleted or changed). */
  evict(id: string): void {
    this.evictions += 1;
    this.loading.clear();
    for (const [token, entry] of this.cache) {
      if (entry.key.id === id) {
        this.cache.delete(token);
      }
    }
  }

  /** The live key a secret belongs to, or undefined (unknown, revoked or expired). */
  async verify(secret: string): Promise<VerifiedApiKey | undefined> {
    return this.lookup(secret);
  }

  /**
   * Like {@link verify}, but answers synchronously when the verification is cached (the
   * request path: no promise per call); otherwise the database answers through a promise.
   */
  lookup(secret: string): MaybePromise<VerifiedApiKey | undefined> {
    const hit = this.cached(secret);
    if (hit !== undefined) {
      return hit;
    }
    if (!isApiKeyFormat(secret)) {
      return undefined;
    }
    const now = Date.now();
    // Concurrent requests with a key whose entry expired share one query and hash check.
    let loading = this.loading.get(secret);
    if (!loading) {
      const started = this.load(secret, now).finally(() => {
        if (this.loading.get(secret) === started) {
          this.loading.delete(secret);
        }
      });
      loading = started;
      this.loading.set(secret, loading);
    }
    return loading;
  }

  /**
   * The key of `secret` while its verification is cached and the key has not expired, else
   * undefined; never reads the database. Only well-formed secrets are ever cached.
   */
  cached(secret: string): VerifiedApiKey | undefined {
    const entry = this.cache.get(secret);
    if (entry === undefined) {
      return undefined;
    }
    const now = Date.now();
    if (entry.until <= now) {
      return undefined;
    }
    if (entry.expiresAt !== null && entry.expiresAt <= now) {
      this.cache.delete(secret);
      return undefined;
    }
    this.touch(entry.key.id, now);
    return entry.key;
  }

  private async load(secret: string, now: number): Promise<VerifiedApiKey | undefined> {
    const evictions = this.evictions;
    const candidates = await this.keys.find({
      where: { prefix: secret.slice(0, LOOKUP_PREFIX_LENGTH) },
    });
    for (const row of candidates) {
      const expected = Buffer.from(hashKey(secret, row.salt), 'hex');
      const stored = Buffer.from(row.hash, 'hex');
      if (stored.length !== expected.length || !timingSafeEqual(stored, expected)) {
        continue;
      }
      if (row.revokedAt !== null || (row.expiresAt !== null && row.expiresAt.getTime() <= now)) {
        return undefined;
      }
      const key: VerifiedApiKey = {
        id: row.id,
        tenantId: row.tenantId,
        name: row.name,
        roles: row.roles as Role[],
        scopes: row.scopes,
      };
      if (this.cacheTtlMs > 0 && evictions === this.evictions) {
        const entry = {
          key,
          expiresAt: row.expiresAt?.getTime() ?? null,
          until: now + this.cacheTtlMs,
        };
        this.cache.set(secret, entry);
        setTimeout(() => {
          if (this.cache.get(secret) === entry) {
            this.cache.delete(secret);
          }
        }, this.cacheTtlMs).unref();
      }
      this.touch(row.id, now, row.lastUsedAt?.getTime());
      return key;
    }
    return undefined;
  }

  private touch(id: string, now: number, stored?: number): void {
    const last = this.lastUsedWritten.get(id) ?? stored ?? 0;
    if (now - last < LAST_USED_RESOLUTION_MS) {
      return;
    }
    this.lastUsedWritten.set(id, now);
    this.keys.update({ id }, { lastUsedAt: new Date(now) }).catch((err: unknown) => {
      this.logger.warn(`Could not record last use of API key ${id}: ${String(err)}`);
    });
  }
}

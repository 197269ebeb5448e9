import { Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import Redis from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { ConfigService } from '@portico/config';
import type { TenantEntity } from '@portico/persistence';

/** Why a request was turned away, and when trying again makes sense. */
export class QuotaExceededError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs: number,
    readonly limit: 'tenant-rate' | 'key-rate' | 'concurrent-calls' | 'sessions',
  ) {
    super(message);
    this.name = 'QuotaExceededError';
  }

  /** Whole seconds for a Retry-After header (at least 1). */
  get retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.retryAfterMs / 1000));
  }
}

/** What a request is charged to: its tenant and, for API keys, the key. */
export interface QuotaSubject {
  readonly tenant: Pick<TenantEntity, 'id' | 'limits'>;
  /** The API key id when the caller used one (per-key limits). */
  readonly apiKeyId?: string;
}

const WINDOW_SECONDS = 60;

type Limiter = RateLimiterMemory | RateLimiterRedis;

/**
 * Per-tenant and per-key request rates (rate-limiter-flexible: in memory by default, in Redis
 * with REDIS_URL so every node counts together; if Redis fails, an in-memory limiter stands
 * in rather than letting traffic through unmetered or refusing it all), and per-tenant
 * concurrent tool calls (counted on this node).
 */
@Injectable()
export class QuotaService implements OnApplicationShutdown {
  private readonly logger = new Logger(QuotaService.name);
  private readonly limiters = new Map<string, Limiter>();
  private readonly inFlight = new Map<string, number>();
  private readonly redis?: Redis;
  private readonly keyPrefix: string;
  private readonly keyRate: number;

  constructor(config: ConfigService) {
    const redis = config.values.redis;
    this.keyPrefix = `${redis?.keyPrefix ?? 'portico:'}rl`;
    this.keyRate = config.values.security.apiKeyRequestsPerMinute;
    if (redis) {
      // No offline queue: a request must not wait on a reconnecting Redis.
      this.redis = new Redis(redis.url, {
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        lazyConnect: false,
      });
      this.redis.on('error', (err: Error) => this.logger.warn(`Redis: ${err.message}`));
    }
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.redis?.status === 'ready') {
      await this.redis.quit().catch(() => this.redis?.disconnect());
    } else {
      // Not connected (or reconnecting): stop the retry loop instead of queueing a QUIT.
      this.redis?.disconnect();
    }
  }

  /** Whether the shared Redis answers (undefined: no Redis configured). */
  async redisReachable(): Promise<boolean | undefined> {
    if (!this.redis) {
      return undefined;
    }
    try {
      return (await this.redis.ping()) === 'PONG';
    } catch {
      return false;
    }
  }

  /** Whether requests of this tenant (and key) are metered at all: the common case skips the limiter. */
  meters(tenant: Pick<TenantEntity, 'limits'>, withApiKey: boolean): boolean {
    return Boolean(tenant.limits.requestsPerMinute) || (withApiKey && this.keyRate > 0);
  }

  /** Charges one request; throws QuotaExceededError when the tenant or the key is over its rate. */
  async consumeRequest(subject: QuotaSubject): Promise<void> {
    const tenantRate = subject.tenant.limits.requestsPerMinute;
    if (tenantRate) {
      await this.consume('tenant', subject.tenant.id, tenantRate, 'tenant-rate');
    }
    if (subject.apiKeyId && this.keyRate > 0) {
      await this.consume('key', subject.apiKeyId, this.keyRate, 'key-rate');
    }
  }

  /**
   * Takes one of the tenant's concurrent tool-call slots; the returned function gives it back.
   * Throws QuotaExceededError when all are taken.
   */
  acquireCall(tenant: Pick<TenantEntity, 'id' | 'limits'>): () => void {
    const max = tenant.limits.maxConcurrentCalls;
    if (!max) {
      return () => undefined;
    }
    const current = this.inFlight.get(tenant.id) ?? 0;
    if (current >= max) {
      throw new QuotaExceededError(
        `Too many concurrent tool calls for this tenant (limit ${max})`,
        1000,
        'concurrent-calls',
      );
    }
    this.inFlight.set(tenant.id, current + 1);
    let released = false;
    return () => {
      if (released) {
        return;
      }
      released = true;
      const left = (this.inFlight.get(tenant.id) ?? 1) - 1;
      if (left > 0) {
        this.inFlight.set(tenant.id, left);
      } else {
        this.inFlight.delete(tenant.id);
      }
    };
  }

  private async consume(
    kind: 'tenant' | 'key',
    id: string,
    points: number,
    limit: QuotaExceededError['limit'],
  ): Promise<void> {
    try {
      await this.limiter(kind, points).consume(`${kind}:${id}`, 1);
    } catch (err) {
      if (err instanceof RateLimiterRes) {
        throw new QuotaExceededError(
          `Rate limit exceeded: ${points} requests per minute for this ${kind === 'tenant' ? 'tenant' : 'API key'}`,
          err.msBeforeNext,
          limit,
        );
      }
      throw err;
    }
  }

  /** One limiter per (kind, rate): tenants on the same plan share it, keyed by tenant id. */
  private limiter(kind: string, points: number): Limiter {
    const cacheKey = `${kind}:${points}`;
    let limiter = this.limiters.get(cacheKey);
    if (!limiter) {
      const options = {
        points,
        duration: WINDOW_SECONDS,
        keyPrefix: `${this.keyPrefix}:${kind}:${points}`,
      };
      limiter = this.redis
        ? new RateLimiterRedis({
            ...options,
            storeClient: this.redis,
            insuranceLimiter: new RateLimiterMemory(options),
          })
        : new RateLimiterMemory(options);
      this.limiters.set(cacheKey, limiter);
    }
    return limiter;
  }
}

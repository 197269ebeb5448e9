import { Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import Redis from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { ConfigService } from '@portico/config';
import type { MaybePromise } from '@portico/mcp-protocol';
import type { TenantEntity } from '@portico/persistence';
import { FixedWindowCounter } from './fixed-window';

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
/** The release of a call that took no slot (no concurrency limit). */
const NOTHING_TO_RELEASE = (): void => undefined;

type RateKind = 'tenant' | 'key';

/** A tenant's concurrent tool calls on this node (kept while the process runs: one per tenant). */
interface CallSlots {
  inFlight: number;
}

/**
 * Per-tenant and per-key request rates (in memory by default, counted synchronously with the
 * semantics of rate-limiter-flexible's memory limiter; with REDIS_URL, rate-limiter-flexible in
 * Redis so every node counts together, and if Redis fails an in-memory limiter stands in rather
 * than letting traffic through unmetered or refusing it all), and per-tenant concurrent tool
 * calls (counted on this node).
 */
@Injectable()
export class QuotaService implements OnApplicationShutdown {
  private readonly logger = new Logger(QuotaService.name);
  /** With Redis: one limiter per kind and rate. */
  private readonly limiters = new Map<string, RateLimiterRedis>();
  /** Without Redis: one counter per kind and rate (tenants on the same plan share one). */
  private readonly counters: Record<RateKind, Map<number, FixedWindowCounter>> = {
    tenant: new Map(),
    key: new Map(),
  };
  private readonly calls = new Map<string, CallSlots>();
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
    const refused = await this.charge(subject);
    if (refused) {
      throw refused;
    }
  }

  /**
   * Charges one request to its tenant's rate, then its key's: undefined when both allow it,
   * else why not (the key is not charged when the tenant refuses). Synchronous without Redis.
   */
  charge(subject: QuotaSubject): MaybePromise<QuotaExceededError | undefined> {
    if (this.redis) {
      return this.chargeShared(subject);
    }
    const tenantRate = subject.tenant.limits.requestsPerMinute;
    if (tenantRate) {
      const waitMs = this.counter('tenant', tenantRate).consume(subject.tenant.id);
      if (waitMs !== undefined) {
        return rateExceeded('tenant', tenantRate, waitMs);
      }
    }
    if (subject.apiKeyId && this.keyRate > 0) {
      const waitMs = this.counter('key', this.keyRate).consume(subject.apiKeyId);
      if (waitMs !== undefined) {
        return rateExceeded('key', this.keyRate, waitMs);
      }
    }
    return undefined;
  }

  /**
   * Takes one of the tenant's concurrent tool-call slots; the returned function gives it back.
   * Throws QuotaExceededError when all are taken.
   */
  acquireCall(tenant: Pick<TenantEntity, 'id' | 'limits'>): () => void {
    const max = tenant.limits.maxConcurrentCalls;
    if (!max) {
      return NOTHING_TO_RELEASE;
    }
    let slots = this.calls.get(tenant.id);
    if (slots === undefined) {
      slots = { inFlight: 0 };
      this.calls.set(tenant.id, slots);
    }
    if (slots.inFlight >= max) {
      throw new QuotaExceededError(
        `Too many concurrent tool calls for this tenant (limit ${max})`,
        1000,
        'concurrent-calls',
      );
    }
    slots.inFlight += 1;
    const taken = slots;
    let released = false;
    return () => {
      if (!released) {
        released = true;
        taken.inFlight -= 1;
      }
    };
  }

  private counter(kind: RateKind, points: number): FixedWindowCounter {
    let counter = this.counters[kind].get(points);
    if (!counter) {
      counter = new FixedWindowCounter(points, WINDOW_SECONDS * 1000);
      this.counters[kind].set(points, counter);
    }
    return counter;
  }

  private async chargeShared(subject: QuotaSubject): Promise<QuotaExceededError | undefined> {
    const tenantRate = subject.tenant.limits.requestsPerMinute;
    if (tenantRate) {
      const refused = await this.consumeShared('tenant', subject.tenant.id, tenantRate);
      if (refused) {
        return refused;
      }
    }
    if (subject.apiKeyId && this.keyRate > 0) {
      return this.consumeShared('key', subject.apiKeyId, this.keyRate);
    }
    return undefined;
  }

  private async consumeShared(
    kind: RateKind,
    id: string,
    points: number,
  ): Promise<QuotaExceededError | undefined> {
    try {
      await this.limiter(kind, points).consume(`${kind}:${id}`, 1);
      return undefined;
    } catch (err) {
      if (err instanceof RateLimiterRes) {
        return rateExceeded(kind, points, err.msBeforeNext);
      }
      throw err;
    }
  }

  /** One limiter per (kind, rate): tenants on the same plan share it, keyed by tenant id. */
  private limiter(kind: RateKind, points: number): RateLimiterRedis {
    const cacheKey = `${kind}:${points}`;
    let limiter = this.limiters.get(cacheKey);
    if (!limiter) {
      const options = {
        points,
        duration: WINDOW_SECONDS,
        keyPrefix: `${this.keyPrefix}:${kind}:${points}`,
      };
      limiter = new RateLimiterRedis({
        ...options,
        storeClient: this.redis,
        insuranceLimiter: new RateLimiterMemory(options),
      });
      this.limiters.set(cacheKey, limiter);
    }
    return limiter;
  }
}

function rateExceeded(kind: RateKind, points: number, waitMs: number): QuotaExceededError {
  return new QuotaExceededError(
    `Rate limit exceeded: ${points} requests per minute for this ${kind === 'tenant' ? 'tenant' : 'API key'}`,
    waitMs,
    kind === 'tenant' ? 'tenant-rate' : 'key-rate',
  );
}

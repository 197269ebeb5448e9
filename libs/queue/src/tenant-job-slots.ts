import type Redis from 'ioredis';
import { runningJobsKey } from './tool-job';

// Leases are scored in Redis server time, so workers with skewed clocks agree on expiry. The
// key expires with its last lease: a tenant that stops calling leaves nothing behind.
const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;
const EXPIRE_WITH_LAST_LEASE = `
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
`;

/**
 * KEYS[1] the tenant's running set; ARGV job id, cap, lease ms. 1 when the job holds a lease
 * (new, or renewed: a job handed to another worker after a stall keeps its own), 0 when the
 * tenant's live leases already reach the cap.
 */
const ACQUIRE = `${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
${EXPIRE_WITH_LAST_LEASE}
return 1
`;

/**
 * KEYS[1] the tenant's running set; ARGV job id, lease ms. The job is running whatever the
 * set says: a lease that lapsed (a stalled event loop) is taken back, over the cap if need be.
 */
const RENEW = `${NOW}
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
${EXPIRE_WITH_LAST_LEASE}
return 1
`;

/** KEYS[1] the tenant's running set. How many leases are live. */
const COUNT = `${NOW}
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
`;

interface SlotCommands {
  porticoAcquireJobSlot(key: string, jobId: string, cap: number, leaseMs: number): Promise<number>;
  porticoRenewJobSlot(key: string, jobId: string, leaseMs: number): Promise<number>;
  porticoCountJobSlots(key: string): Promise<number>;
}

/**
 * Each tenant's running queued jobs, counted across every worker: a job runs only while it
 * holds a lease on one of its tenant's slots. Leases expire unless renewed, so the slots of a
 * worker that dies come back on their own after one lease, without any cleanup. Acquiring is
 * one Lua script: two workers can never both take a tenant's last slot.
 */
export class TenantJobSlots {
  private readonly redis: Redis & SlotCommands;

  constructor(
    redis: Redis,
    /** The deployment's Redis key prefix (REDIS_KEY_PREFIX). */
    private readonly keyPrefix: string,
  ) {
    redis.defineCommand('porticoAcquireJobSlot', { numberOfKeys: 1, lua: ACQUIRE });
    redis.defineCommand('porticoRenewJobSlot', { numberOfKeys: 1, lua: RENEW });
    redis.defineCommand('porticoCountJobSlots', { numberOfKeys: 1, lua: COUNT });
    this.redis = redis as Redis & SlotCommands;
  }

  /** Takes a slot for `jobId` for `leaseMs`; false when the tenant's `cap` slots are taken. */
  async acquire(tenantId: string, jobId: string, cap: number, leaseMs: number): Promise<boolean> {
    const key = runningJobsKey(this.keyPrefix, tenantId);
    return (await this.redis.porticoAcquireJobSlot(key, jobId, cap, leaseMs)) === 1;
  }

  /** Extends the lease of a job still running to `leaseMs` from now. */
  async renew(tenantId: string, jobId: string, leaseMs: number): Promise<void> {
    await this.redis.porticoRenewJobSlot(runningJobsKey(this.keyPrefix, tenantId), jobId, leaseMs);
  }

  /** Gives the job's slot back (nothing happens when it holds none). */
  async release(tenantId: string, jobId: string): Promise<void> {
    await this.redis.zrem(runningJobsKey(this.keyPrefix, tenantId), jobId);
  }

  /** How many of the tenant's slots are taken now. */
  async running(tenantId: string): Promise<number> {
    return this.redis.porticoCountJobSlots(runningJobsKey(this.keyPrefix, tenantId));
  }
}

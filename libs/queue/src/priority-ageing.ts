import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import type Redis from 'ioredis';
import { MIN_QUEUE_PRIORITY } from './execution-settings';
import { priorityAgeingLockKey } from './tool-job';

export interface PriorityAgeingOptions {
  /** A job moves one step forward for each `ageingMs` it has waited. */
  readonly ageingMs: number;
  /** The most jobs one sweep looks at, from the back of the queue (default 500). */
  readonly batch?: number;
}

/** Releases the lock only if this sweeper still holds it (it may have lapsed meanwhile). */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`;

/**
 * Priority ageing for a BullMQ queue. BullMQ's priorities are strict (a lower number always
 * starts first), so a steady flood at a high priority would hold a low-priority job back
 * forever. A periodic sweep lowers the number of each waiting job by one step for every
 * `ageingMs` it has waited since it was queued, down to the highest priority: there it is
 * queued behind the jobs already at that priority, ahead of every later one, so its wait is
 * bounded.
 *
 * The target priority is computed from the job's enqueue time and the priority it was queued
 * with, so a sweep that runs late or twice does no harm. One sweep at a time across the cluster
 * (a Redis lock); each looks at a bounded batch from the back of the queue, where the starved
 * jobs are, and moves jobs with BullMQ's own atomic `changePriority`.
 */
export class PriorityAgeing {
  private timer?: NodeJS.Timeout;
  private sweeping?: Promise<unknown>;
  private readonly batch: number;
  private readonly lockKey: string;

  constructor(
    private readonly queue: Queue,
    private readonly redis: Redis,
    keyPrefix: string,
    private readonly options: PriorityAgeingOptions,
  ) {
    this.batch = options.batch ?? 500;
    this.lockKey = priorityAgeingLockKey(keyPrefix);
  }

  /** Sweeps every half ageing period until `stop`. */
  start(): void {
    if (this.timer || this.options.ageingMs <= 0) {
      return;
    }
    const every = Math.min(Math.max(10, Math.floor(this.options.ageingMs / 2)), 5000);
    this.timer = setInterval(() => {
      // A sweep still running (a slow Redis) is not doubled up.
      this.sweeping ??= this.sweep()
        .catch(() => undefined)
        .finally(() => (this.sweeping = undefined));
    }, every);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.sweeping;
  }

  /**
   * One sweep: resolves to how many jobs moved forward, or undefined when another node's sweep
   * held the lock.
   */
  async sweep(now = Date.now()): Promise<number | undefined> {
    const token = randomUUID();
    // Long enough for a batch on a slow Redis; released at once when done.
    const locked = await this.redis.set(this.lockKey, token, 'PX', 30_000, 'NX');
    if (locked !== 'OK') {
      return undefined;
    }
    try {
      return await this.age(now);
    } finally {
      await this.redis.eval(RELEASE, 1, this.lockKey, token);
    }
  }

  private async age(now: number): Promise<number> {
    const ids = await this.redis.zrevrange(this.queue.keys.prioritized, 0, this.batch - 1);
    if (ids.length === 0) {
      return 0;
    }
    const pipeline = this.redis.pipeline();
    for (const id of ids) {
      pipeline.hmget(this.queue.toKey(id), 'timestamp', 'priority', 'opts');
    }
    const rows = (await pipeline.exec()) ?? [];
    let moved = 0;
    for (const [i, [err, row]] of rows.entries()) {
      const [timestamp, priority, opts] = (err ? [] : row) as (string | null)[];
      const target = this.target(now, timestamp, opts);
      if (target !== undefined && target < Number(priority)) {
        // Atomic in BullMQ: a job started meanwhile is left where it is.
        await this.queue.backend.changePriority(ids[i], target);
        moved++;
      }
    }
    return moved;
  }

  private target(now: number, timestamp: string | null, opts: string | null): number | undefined {
    let queuedWith: unknown;
    try {
      queuedWith = (JSON.parse(opts ?? '{}') as { priority?: unknown }).priority;
    } catch {
      return undefined;
    }
    if (typeof queuedWith !== 'number' || timestamp === null) {
      return undefined;
    }
    const steps = Math.floor((now - Number(timestamp)) / this.options.ageingMs);
    return Math.max(MIN_QUEUE_PRIORITY, queuedWith - Math.max(0, steps));
  }
}

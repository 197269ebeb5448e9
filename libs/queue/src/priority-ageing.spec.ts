import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { Queue, Worker } from 'bullmq';
import Redis from 'ioredis';
import { PriorityAgeing } from './priority-ageing';
import { priorityAgeingLockKey } from './tool-job';

const REDIS = { host: '127.0.0.1', port: 6379 };
/** The flood's size: a bound, so a run without ageing ends (its low job then starts last). */
const FLOOD_JOBS = 150;
/** How long each flood job holds the only worker slot. */
const FLOOD_JOB_MS = 10;

describe(PriorityAgeing.name, () => {
  const redis = new Redis(REDIS.port, REDIS.host);
  let keyPrefix: string;
  let queue: Queue;
  let sut: PriorityAgeing | undefined;
  let worker: Worker | undefined;

  beforeEach(() => {
    keyPrefix = `portico-test-ageing-${randomBytes(4).toString('hex')}:`;
    queue = new Queue('ageing', {
      connection: { ...REDIS, maxRetriesPerRequest: null },
      prefix: `${keyPrefix}bull`,
    });
  });

  afterEach(async () => {
    await sut?.stop();
    sut = undefined;
    await worker?.close();
    worker = undefined;
    await queue.obliterate({ force: true });
    await queue.close();
    const keys = await redis.keys(`${keyPrefix}*`);
    if (keys.length > 0) {
      await redis.del(...keys);
    }
  });

  afterAll(async () => {
    await redis.quit();
  });

  /**
   * One worker slot; a steady flood at priority 1 (each flood job queues the next, up to
   * FLOOD_JOBS) and one job at priority 10 queued first. Resolves to the order jobs started.
   */
  async function runFlood(): Promise<string[]> {
    const started: string[] = [];
    let queued = 0;
    const flood = async (): Promise<void> => {
      queued++;
      await queue.add('flood', { n: queued }, { priority: 1 });
    };
    await queue.add('low', {}, { priority: 10 });
    await flood();
    await flood();
    const done = new Promise<void>((resolve) => {
      worker = new Worker(
        'ageing',
        async (job) => {
          started.push(job.name);
          if (job.name === 'flood' && queued < FLOOD_JOBS) {
            await flood();
          }
          await delay(FLOOD_JOB_MS);
          if (started.length === FLOOD_JOBS + 1) {
            resolve();
          }
        },
        {
          connection: { ...REDIS, maxRetriesPerRequest: null },
          prefix: `${keyPrefix}bull`,
          concurrency: 1,
        },
      );
    });
    await done;
    return started;
  }

  it('starts a low-priority job while a higher-priority flood is still queued', async () => {
    sut = new PriorityAgeing(queue, redis, keyPrefix, { ageingMs: 20 });
    sut.start();
    const started = await runFlood();
    const low = started.indexOf('low');
    // Flood jobs started after it: it did not wait for the flood to end.
    expect(low).toBeGreaterThanOrEqual(0);
    expect(started.slice(low + 1).filter((name) => name === 'flood').length).toBeGreaterThan(0);
  });

  it('leaves strict priorities alone when ageing is off', async () => {
    const started = await runFlood();
    expect(started.at(-1)).toBe('low');
  });

  it('moves a waiting job one step forward per ageing period, never past the top', async () => {
    sut = new PriorityAgeing(queue, redis, keyPrefix, { ageingMs: 1000 });
    const job = await queue.add('waiting', {}, { priority: 5 });
    const young = await queue.add('young', {}, { priority: 5 });
    const queuedAt = job.timestamp;
    expect(await sut.sweep(queuedAt + 999)).toBe(0);
    await sut.sweep(queuedAt + 2500);
    expect((await queue.getJob(job.id!))?.priority).toBe(3);
    // Computed from the enqueue time: sweeping again at the same moment changes nothing.
    expect(await sut.sweep(queuedAt + 2500)).toBe(0);
    await sut.sweep(queuedAt + 60_000);
    expect((await queue.getJob(job.id!))?.priority).toBe(1);
    expect((await queue.getJob(young.id!))?.priority).toBe(1);
    // Still queued by priority: the aged job is next.
    expect((await queue.getPrioritized()).map((j) => j.name)).toEqual(['waiting', 'young']);
  });

  it('sweeps on one node at a time', async () => {
    sut = new PriorityAgeing(queue, redis, keyPrefix, { ageingMs: 1000 });
    const job = await queue.add('waiting', {}, { priority: 5 });
    await redis.set(priorityAgeingLockKey(keyPrefix), 'another-node', 'PX', 30_000);
    expect(await sut.sweep(job.timestamp + 10_000)).toBeUndefined();
    expect((await queue.getJob(job.id!))?.priority).toBe(5);
    await redis.del(priorityAgeingLockKey(keyPrefix));
    expect(await sut.sweep(job.timestamp + 10_000)).toBe(1);
  });
});

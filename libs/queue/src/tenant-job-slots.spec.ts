import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { TenantJobSlots } from './tenant-job-slots';
import { runningJobsKey } from './tool-job';

const REDIS_URL = 'redis://127.0.0.1:6379';
const LONG = 60_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe(TenantJobSlots.name, () => {
  const prefix = `portico-test-${randomBytes(4).toString('hex')}:`;
  let redis: Redis;
  let sut: TenantJobSlots;

  beforeAll(() => {
    redis = new Redis(REDIS_URL);
    sut = new TenantJobSlots(redis, prefix);
  });

  afterAll(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) {
      await redis.del(...keys);
    }
    await redis.quit();
  });

  it('grants a tenant as many slots as its cap, and more once one is given back', async () => {
    expect(await sut.acquire('t1', 'a', 2, LONG)).toBe(true);
    expect(await sut.acquire('t1', 'b', 2, LONG)).toBe(true);
    expect(await sut.acquire('t1', 'c', 2, LONG)).toBe(false);
    expect(await sut.running('t1')).toBe(2);
    await sut.release('t1', 'a');
    expect(await sut.acquire('t1', 'c', 2, LONG)).toBe(true);
    expect(await sut.running('t1')).toBe(2);
  });

  it('counts each tenant on its own', async () => {
    expect(await sut.acquire('t2', 'a', 1, LONG)).toBe(true);
    expect(await sut.acquire('t3', 'a', 1, LONG)).toBe(true);
    expect(await sut.acquire('t2', 'b', 1, LONG)).toBe(false);
    expect(await sut.acquire('t3', 'b', 1, LONG)).toBe(false);
  });

  it('lets a job that already holds a slot take it again, even at the cap', async () => {
    // A job handed to another worker after a stall keeps the slot its first run took.
    expect(await sut.acquire('t4', 'a', 1, LONG)).toBe(true);
    expect(await sut.acquire('t4', 'a', 1, LONG)).toBe(true);
    expect(await sut.running('t4')).toBe(1);
  });

  it('never grants more than the cap to concurrent requests', async () => {
    const granted = await Promise.all(
      Array.from({ length: 20 }, (_, i) => sut.acquire('t5', `job-${i}`, 3, LONG)),
    );
    expect(granted.filter(Boolean)).toHaveLength(3);
    expect(await sut.running('t5')).toBe(3);
  });

  it('takes back the slots of leases nobody renewed (a dead worker’s)', async () => {
    expect(await sut.acquire('t6', 'dead', 1, 50)).toBe(true);
    expect(await sut.acquire('t6', 'other', 1, LONG)).toBe(false);
    await sleep(150);
    expect(await sut.running('t6')).toBe(0);
    expect(await sut.acquire('t6', 'other', 1, LONG)).toBe(true);
  });

  it('keeps a renewed lease past its first expiry', async () => {
    expect(await sut.acquire('t7', 'alive', 1, 100)).toBe(true);
    await sut.renew('t7', 'alive', LONG);
    await sleep(250);
    expect(await sut.acquire('t7', 'other', 1, LONG)).toBe(false);
    expect(await sut.running('t7')).toBe(1);
  });

  it('takes a lapsed lease back on renewal: the job is still running', async () => {
    expect(await sut.acquire('t8', 'slow', 1, 50)).toBe(true);
    await sleep(150);
    await sut.renew('t8', 'slow', LONG);
    expect(await sut.acquire('t8', 'other', 1, LONG)).toBe(false);
  });

  it('lets the key expire with its last lease, and removes it when the last slot is given back', async () => {
    await sut.acquire('t9', 'a', 2, 5_000);
    await sut.acquire('t9', 'b', 2, LONG);
    const ttl = await redis.pttl(runningJobsKey(prefix, 't9'));
    expect(ttl).toBeGreaterThan(5_000);
    expect(ttl).toBeLessThanOrEqual(LONG);
    await sut.release('t9', 'a');
    await sut.release('t9', 'b');
    expect(await redis.exists(runningJobsKey(prefix, 't9'))).toBe(0);
  });

  it('gives back nothing for a job that holds no slot', async () => {
    await sut.release('t10', 'never');
    expect(await sut.acquire('t10', 'a', 1, LONG)).toBe(true);
  });
});

import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import type { NewTask, TaskSignal } from '@portico/mcp-protocol';
import { RedisTaskStore, taskInputKey, taskKey } from './redis-task-store';

const REDIS_URL = 'redis://127.0.0.1:6379';

function newTask(taskId: string, extra: Partial<NewTask> = {}): NewTask {
  return {
    taskId,
    owner: 'key:1',
    tenant: 'tenant-1',
    createdAt: Date.now(),
    ttlMs: 60_000,
    pollIntervalMs: 500,
    ...extra,
  };
}

const ask = { method: 'elicitation/create', params: { message: 'ok?', requestedSchema: {} } };

async function until(probe: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await probe())) {
    if (Date.now() > deadline) {
      throw new Error(`${what}: not within 10 s`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe(RedisTaskStore.name, () => {
  const keyPrefix = `portico-test-tasks-${randomBytes(4).toString('hex')}:`;
  const redis = new Redis(REDIS_URL);
  /** Two nodes' stores over the same Redis. */
  let sut: RedisTaskStore;
  let other: RedisTaskStore;
  let seen: TaskSignal[];

  beforeEach(async () => {
    sut = new RedisTaskStore({ url: REDIS_URL, keyPrefix });
    other = new RedisTaskStore({ url: REDIS_URL, keyPrefix });
    seen = [];
    await other.subscribe((signal) => seen.push(signal));
  });

  afterEach(async () => {
    await sut.close();
    await other.close();
  });

  afterAll(async () => {
    const keys = await redis.keys(`${keyPrefix}*`);
    if (keys.length > 0) {
      await redis.del(...keys);
    }
    await redis.quit();
  });

  it('makes a created task readable from any node, expiring with its TTL', async () => {
    const task = newTask('t-create', { sessionId: 's-1' });
    await sut.create(task);
    expect(await other.get('t-create')).toEqual({
      ...task,
      status: 'working',
      lastUpdatedAt: task.createdAt,
      inputRequests: {},
    });
    const ttl = await redis.pttl(taskKey(keyPrefix, 't-create'));
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    expect(await other.get('t-unknown')).toBeUndefined();
  });

  it('is gone once the TTL has passed', async () => {
    await sut.create(newTask('t-short', { ttlMs: 300 }));
    expect(await sut.get('t-short')).toBeDefined();
    await until(async () => (await redis.exists(taskKey(keyPrefix, 't-short'))) === 0, 'expiry');
    expect(await other.get('t-short')).toBeUndefined();
  });

  it('keeps outstanding input keyed, takes partial answers and tells the running node', async () => {
    await sut.create(newTask('t-input'));
    expect(await sut.requestInput('t-input', { a: ask, b: ask })).toBe(true);
    const asking = await other.get('t-input');
    expect(asking).toMatchObject({ status: 'input_required', inputRequests: { a: ask, b: ask } });

    expect(
      await other.answer('t-input', { a: { action: 'accept', content: { n: [] } }, x: {} }),
    ).toEqual(['a']);
    const half = await sut.get('t-input');
    expect(half?.status).toBe('input_required');
    expect(Object.keys(half?.inputRequests ?? {})).toEqual(['b']);
    await until(() => seen.some((s) => s.type === 'input'), 'input signal');
    expect(seen.find((s) => s.type === 'input')).toEqual({
      type: 'input',
      taskId: 't-input',
      responses: { a: { action: 'accept', content: { n: [] } } },
    });

    expect(await other.answer('t-input', { b: { action: 'decline' } })).toEqual(['b']);
    expect(await sut.get('t-input')).toMatchObject({ status: 'working', inputRequests: {} });
    expect(await redis.exists(taskInputKey(keyPrefix, 't-input'))).toBe(0);
    expect(await sut.answer('t-unknown', { a: {} })).toBeUndefined();
  });

  it('stores the outcome as it was (empty arrays and objects included)', async () => {
    await sut.create(newTask('t-done'));
    const result = { content: [], structuredContent: { list: [], map: {} }, isError: false };
    expect(await sut.finish('t-done', { status: 'completed', result })).toBe(true);
    expect(await other.get('t-done')).toMatchObject({ status: 'completed', result });
  });

  it('never leaves a terminal status, whichever node races', async () => {
    await sut.create(newTask('t-race'));
    await sut.requestInput('t-race', { a: ask });
    const [cancelled, finished] = await Promise.all([
      other.cancel('t-race', 'The task was cancelled by request'),
      sut.finish('t-race', { status: 'completed', result: { content: [] } }),
    ]);
    const final = await sut.get('t-race');
    if (finished) {
      expect(final?.status).toBe('completed');
      expect(cancelled?.status).toBe('completed');
    } else {
      expect(final).toMatchObject({ status: 'cancelled', inputRequests: {} });
      expect(final?.result).toBeUndefined();
    }
    expect(await sut.finish('t-race', { status: 'failed', error: { code: 1, message: 'x' } })).toBe(
      false,
    );
    expect(await sut.requestInput('t-race', { b: ask })).toBe(false);
    expect((await sut.get('t-race'))?.status).toBe(final?.status);
  });

  it('tells the running node about a cancellation made on another', async () => {
    await other.create(newTask('t-cancel'));
    const mine: TaskSignal[] = [];
    await sut.subscribe((signal) => mine.push(signal));
    expect(await other.cancel('t-cancel', 'by request')).toMatchObject({
      status: 'cancelled',
      statusMessage: 'by request',
    });
    await until(() => mine.some((s) => s.type === 'cancel'), 'cancel signal');
    expect(mine).toContainEqual({ type: 'cancel', taskId: 't-cancel' });
    expect(await other.cancel('t-unknown', 'x')).toBeUndefined();
  });

  it('lists a session’s live tasks, newest first', async () => {
    const now = Date.now();
    await sut.create(newTask('t-s1', { sessionId: 'sess', createdAt: now - 2 }));
    await sut.create(newTask('t-s2', { sessionId: 'sess', createdAt: now - 1 }));
    await sut.create(newTask('t-s3', { sessionId: 'elsewhere' }));
    expect((await other.listBySession('sess')).map((t) => t.taskId)).toEqual(['t-s2', 't-s1']);
    await redis.del(taskKey(keyPrefix, 't-s1'));
    expect((await other.listBySession('sess')).map((t) => t.taskId)).toEqual(['t-s2']);
  });

  describe('leases', () => {
    /** Short: a lapse is awaited (never timed), and a renewed lease must outlive the checks. */
    const SHORT = { node: 'node-a', ms: 200 };
    const LONG = { node: 'node-a', ms: 60_000 };

    it('marks a live task whose lease lapsed as an orphan, and only that', async () => {
      await sut.create(newTask('t-lease'), SHORT);
      await sut.create(newTask('t-held'), LONG);
      await sut.create(newTask('t-unleased'));
      await sut.create(newTask('t-ended'), SHORT);
      await sut.finish('t-ended', { status: 'completed', result: {} });
      expect((await other.get('t-held'))?.orphaned).toBeUndefined();
      await until(async () => (await other.get('t-lease'))?.orphaned === true, 'lease lapsed');
      expect((await other.get('t-held'))?.orphaned).toBeUndefined();
      expect((await other.get('t-unleased'))?.orphaned).toBeUndefined();
      expect((await other.get('t-ended'))?.orphaned).toBeUndefined();
      // Renewed, it is held again.
      expect(await sut.renew(['t-lease'], LONG)).toEqual([]);
      expect((await other.get('t-lease'))?.orphaned).toBeUndefined();
    });

    it('lets exactly one of the nodes that claim an orphan at once take it over', async () => {
      await sut.create(newTask('t-claim'), SHORT);
      expect(await other.claim('t-claim', { node: 'node-b', ms: 60_000 })).toBe(false);
      await until(async () => (await other.get('t-claim'))?.orphaned === true, 'lease lapsed');
      const claims = await Promise.all(
        ['b', 'c', 'd', 'e', 'f', 'g'].map((n, i) =>
          (i % 2 === 0 ? sut : other).claim('t-claim', { node: `node-${n}`, ms: 60_000 }),
        ),
      );
      expect(claims.filter(Boolean)).toHaveLength(1);
      expect((await sut.get('t-claim'))?.orphaned).toBeUndefined();
      // The old node learns on its next renewal that another holds it now; the winner does not.
      const winner = `node-${['b', 'c', 'd', 'e', 'f', 'g'][claims.indexOf(true)]}`;
      expect(await sut.renew(['t-claim'], SHORT)).toEqual(['t-claim']);
      expect(await other.renew(['t-claim'], { node: winner, ms: 60_000 })).toEqual([]);
    });

    it('never hands over an ended task', async () => {
      await sut.create(newTask('t-done'), SHORT);
      await sut.cancel('t-done', 'by request');
      await new Promise((r) => setTimeout(r, SHORT.ms + 50));
      expect(await other.claim('t-done', { node: 'node-b', ms: 60_000 })).toBe(false);
      expect(await sut.renew(['t-done', 't-missing'], SHORT)).toEqual([]);
    });

    it('ends a node’s leases at once when it releases them', async () => {
      await sut.create(newTask('t-release'), LONG);
      await other.release(['t-release'], 'node-other');
      expect((await other.get('t-release'))?.orphaned).toBeUndefined();
      await sut.release(['t-release'], LONG.node);
      expect((await other.get('t-release'))?.orphaned).toBe(true);
      expect(await other.claim('t-release', { node: 'node-b', ms: 60_000 })).toBe(true);
    });

    it('records where a live task’s work runs', async () => {
      await sut.create(newTask('t-work'), LONG);
      expect(await sut.attachWork('t-work', { kind: 'job', id: 'j-1' })).toBe(true);
      expect((await other.get('t-work'))?.work).toEqual({ kind: 'job', id: 'j-1' });
      await sut.finish('t-work', { status: 'completed', result: {} });
      expect(await sut.attachWork('t-work', { kind: 'job', id: 'j-2' })).toBe(false);
      expect(await sut.attachWork('t-nowhere', { kind: 'job', id: 'j-3' })).toBe(false);
    });
  });
});

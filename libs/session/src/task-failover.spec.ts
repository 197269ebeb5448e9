import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import {
  Cancellation,
  type JsonObject,
  McpError,
  NODE_STOPPED_MESSAGE,
  TaskManager,
  type TaskRecord,
  type TaskWorkRef,
  type TaskWorkResumer,
} from '@portico/mcp-protocol';
import { RedisTaskStore } from './redis-task-store';

const REDIS_URL = 'redis://127.0.0.1:6379';
/** Short enough that a stopped node's tasks are orphaned soon; long enough to be renewed. */
const LEASE_MS = 600;
const principal = { id: 'key:1', tenant: 'tenant-1', scopes: [] };
const caller = { principal };

/** Work that another node can take over: settled by the test, recorded per take-over. */
class FakeResumer implements TaskWorkResumer {
  readonly resumed: { work: TaskWorkRef; cancellation: Cancellation }[] = [];
  private settle?: (result: JsonObject) => void;
  private fail?: (err: unknown) => void;

  resume(work: TaskWorkRef, cancellation: Cancellation): Promise<JsonObject> | undefined {
    if (work.kind !== 'fake-job') {
      return undefined;
    }
    this.resumed.push({ work, cancellation });
    return new Promise((resolve, reject) => {
      this.settle = resolve;
      this.fail = reject;
      cancellation.onCancel(reject);
    });
  }

  complete(result: JsonObject): void {
    this.settle?.(result);
  }

  error(err: unknown): void {
    this.fail?.(err);
  }
}

async function until(probe: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await probe())) {
    if (Date.now() > deadline) {
      throw new Error(`${what}: not within 15 s`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('task take-over between nodes', () => {
  const keyPrefix = `portico-test-failover-${randomBytes(4).toString('hex')}:`;
  const redis = new Redis(REDIS_URL);
  let storeA: RedisTaskStore;
  let nodeA: TaskManager;
  let nodeB: TaskManager;
  let nodeC: TaskManager;
  let resumer: FakeResumer;

  const manager = (store: RedisTaskStore, work?: TaskWorkResumer): TaskManager =>
    new TaskManager({ store, leaseMs: LEASE_MS, pollIntervalMs: 50, work });

  /** Starts a task on node A whose work runs until `work` settles; resolves to its record. */
  async function launchOnA(work: Promise<JsonObject>, attach?: TaskWorkRef): Promise<TaskRecord> {
    const launch = nodeA.prepare({
      era: 'modern',
      deferrable: false,
      preTask: { request: () => Promise.reject(new Error('no input here')) },
      requestCancellation: new Cancellation(),
      caller,
    });
    launch.decide();
    const record = await launch.begin();
    nodeA.track(launch, work);
    if (attach) {
      expect(await launch.attach(attach)).toBe(true);
    }
    return record;
  }

  /** Node A stops as a crashed node does: no renewal, no outcome written, nothing handed over. */
  async function killA(): Promise<void> {
    await storeA.close();
  }

  beforeEach(() => {
    storeA = new RedisTaskStore({ url: REDIS_URL, keyPrefix });
    resumer = new FakeResumer();
    nodeA = manager(storeA, new FakeResumer());
    nodeB = manager(new RedisTaskStore({ url: REDIS_URL, keyPrefix }), resumer);
    nodeC = manager(new RedisTaskStore({ url: REDIS_URL, keyPrefix }), resumer);
  });

  afterEach(async () => {
    await Promise.allSettled([nodeA.close(), nodeB.close(), nodeC.close()]);
  });

  afterAll(async () => {
    const keys = await redis.keys(`${keyPrefix}*`);
    if (keys.length > 0) {
      await redis.del(...keys);
    }
    await redis.quit();
  });

  it('keeps a task of a live node with that node, however long it runs', async () => {
    let finish!: (result: JsonObject) => void;
    const task = await launchOnA(new Promise((resolve) => (finish = resolve)));
    // Several lease periods: renewal keeps it from ever looking orphaned.
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, LEASE_MS / 2));
      expect((await nodeB.get(task.taskId, caller)).status).toBe('working');
    }
    expect(resumer.resumed).toEqual([]);
    finish({ content: [] });
    await until(
      async () => (await nodeB.get(task.taskId, caller)).status === 'completed',
      'completed by its own node',
    );
  });

  it('fails a task whose work died with its node, saying so', async () => {
    const task = await launchOnA(new Promise(() => undefined));
    await killA();
    await until(
      async () => (await nodeB.get(task.taskId, caller)).status !== 'working',
      'taken over',
    );
    const record = await nodeC.get(task.taskId, caller);
    expect(record).toMatchObject({
      status: 'failed',
      statusMessage: NODE_STOPPED_MESSAGE,
      error: { message: NODE_STOPPED_MESSAGE },
    });
  });

  it('waits for work that runs elsewhere on the node that takes it over', async () => {
    const task = await launchOnA(new Promise(() => undefined), { kind: 'fake-job', id: 'j-1' });
    await killA();
    // Two nodes read the orphan: exactly one takes it over.
    await until(async () => {
      await Promise.all([nodeB.get(task.taskId, caller), nodeC.get(task.taskId, caller)]);
      return resumer.resumed.length > 0;
    }, 'taken over');
    await Promise.all([nodeB.get(task.taskId, caller), nodeC.get(task.taskId, caller)]);
    expect(resumer.resumed.map((r) => r.work)).toEqual([{ kind: 'fake-job', id: 'j-1' }]);
    expect((await nodeC.get(task.taskId, caller)).status).toBe('working');
    resumer.complete({ content: [{ type: 'text', text: 'done elsewhere' }] });
    await until(
      async () => (await nodeC.get(task.taskId, caller)).status === 'completed',
      'completed',
    );
    expect((await nodeB.get(task.taskId, caller)).result).toEqual({
      content: [{ type: 'text', text: 'done elsewhere' }],
    });
  });

  it('fails a taken-over task with the error of its work', async () => {
    const task = await launchOnA(new Promise(() => undefined), { kind: 'fake-job', id: 'j-2' });
    await killA();
    await until(async () => {
      await nodeB.get(task.taskId, caller);
      return resumer.resumed.length > 0;
    }, 'taken over');
    resumer.error(new McpError(-32603, 'the job broke'));
    await until(async () => (await nodeB.get(task.taskId, caller)).status === 'failed', 'failed');
    expect((await nodeB.get(task.taskId, caller)).error).toMatchObject({
      code: -32603,
      message: 'the job broke',
    });
  });

  it('cancels taken-over work when the task is cancelled on any node', async () => {
    const task = await launchOnA(new Promise(() => undefined), { kind: 'fake-job', id: 'j-3' });
    await killA();
    await until(async () => {
      await nodeB.get(task.taskId, caller);
      return resumer.resumed.length > 0;
    }, 'taken over');
    expect((await nodeC.cancel(task.taskId, caller)).status).toBe('cancelled');
    await until(() => resumer.resumed[0].cancellation.cancelled, 'work cancelled');
    expect((await nodeB.get(task.taskId, caller)).status).toBe('cancelled');
  });

  it('fails work of a kind no reader can take over', async () => {
    const task = await launchOnA(new Promise(() => undefined), { kind: 'unknown', id: 'x' });
    await killA();
    await until(async () => (await nodeB.get(task.taskId, caller)).status === 'failed', 'failed');
    expect((await nodeB.get(task.taskId, caller)).statusMessage).toContain(NODE_STOPPED_MESSAGE);
  });

  it('hands tasks whose work runs elsewhere over when its node shuts down', async () => {
    const elsewhere = await launchOnA(new Promise(() => undefined), {
      kind: 'fake-job',
      id: 'j-4',
    });
    const inline = await launchOnA(new Promise(() => undefined));
    await nodeA.close();
    // No lease to wait for: the handed-over task is taken over by its next reader.
    expect((await nodeB.get(elsewhere.taskId, caller)).status).toBe('working');
    expect(resumer.resumed.map((r) => r.work.id)).toEqual(['j-4']);
    expect((await nodeB.get(inline.taskId, caller)).statusMessage).toBe(
      'The server shut down before the task finished',
    );
  });
});

import { MemoryTaskStore } from './memory-task.store';
import type { NewTask, TaskSignal } from './task.types';

function newTask(taskId: string, extra: Partial<NewTask> = {}): NewTask {
  return {
    taskId,
    owner: 'key:1',
    createdAt: Date.now(),
    ttlMs: 60_000,
    pollIntervalMs: 500,
    ...extra,
  };
}

const ask = { method: 'elicitation/create', params: { message: 'ok?' } };

describe(MemoryTaskStore.name, () => {
  let sut: MemoryTaskStore;
  let signals: TaskSignal[];

  beforeEach(async () => {
    sut = new MemoryTaskStore();
    signals = [];
    await sut.subscribe((signal) => signals.push(signal));
  });

  afterEach(() => sut.close());

  const settled = () => new Promise((resolve) => setImmediate(resolve));

  it('creates working tasks and hands out copies', async () => {
    const created = await sut.create(newTask('t1'));
    expect(created).toMatchObject({ taskId: 't1', status: 'working', inputRequests: {} });
    (created as { status: string }).status = 'completed';
    expect((await sut.get('t1'))?.status).toBe('working');
    expect(await sut.get('nope')).toBeUndefined();
  });

  it('drops a task once its TTL from creation has passed, whatever its status', async () => {
    await sut.create(newTask('old', { createdAt: Date.now() - 5000, ttlMs: 1000 }));
    expect(await sut.get('old')).toBeUndefined();
    expect(await sut.answer('old', {})).toBeUndefined();
  });

  it('moves to input_required and back to working once every key is answered', async () => {
    await sut.create(newTask('t1'));
    expect(await sut.requestInput('t1', { a: ask, b: ask })).toBe(true);
    expect(await sut.get('t1')).toMatchObject({ status: 'input_required' });

    expect(await sut.answer('t1', { a: { action: 'accept' }, zzz: { action: 'accept' } })).toEqual([
      'a',
    ]);
    const half = await sut.get('t1');
    expect(half?.status).toBe('input_required');
    expect(Object.keys(half?.inputRequests ?? {})).toEqual(['b']);

    expect(await sut.answer('t1', { a: { action: 'accept' } })).toEqual([]);
    expect(await sut.answer('t1', { b: { action: 'decline' } })).toEqual(['b']);
    expect(await sut.get('t1')).toMatchObject({ status: 'working', inputRequests: {} });

    await settled();
    expect(signals.filter((s) => s.type === 'input')).toEqual([
      { type: 'input', taskId: 't1', responses: { a: { action: 'accept' } } },
      { type: 'input', taskId: 't1', responses: { b: { action: 'decline' } } },
    ]);
  });

  it('never leaves a terminal status: a late result after a cancellation is dropped', async () => {
    await sut.create(newTask('t1'));
    await sut.requestInput('t1', { a: ask });
    const cancelled = await sut.cancel('t1', 'by request');
    expect(cancelled).toMatchObject({ status: 'cancelled', inputRequests: {} });
    expect(await sut.finish('t1', { status: 'completed', result: { content: [] } })).toBe(false);
    expect(await sut.requestInput('t1', { b: ask })).toBe(false);
    expect(await sut.answer('t1', { a: {} })).toEqual([]);
    expect(await sut.get('t1')).toMatchObject({ status: 'cancelled', statusMessage: 'by request' });
    expect((await sut.get('t1'))?.result).toBeUndefined();
    await settled();
    expect(signals).toContainEqual({ type: 'cancel', taskId: 't1' });
  });

  it('keeps the outcome of a finished task and ignores a later cancellation', async () => {
    await sut.create(newTask('t1'));
    const error = { code: -32603, message: 'broke' };
    expect(await sut.finish('t1', { status: 'failed', error, statusMessage: 'broke' })).toBe(true);
    expect(await sut.cancel('t1', 'too late')).toMatchObject({ status: 'failed', error });
    await settled();
    expect(signals.some((s) => s.type === 'cancel')).toBe(false);
  });

  it('lists the live tasks of a session, newest first', async () => {
    await sut.create(newTask('a', { sessionId: 's1' }));
    await sut.create(newTask('b', { sessionId: 's2' }));
    await sut.create(newTask('c', { sessionId: 's1' }));
    expect((await sut.listBySession('s1')).map((t) => t.taskId)).toEqual(['c', 'a']);
  });

  it('stops delivering signals to an unsubscribed listener', async () => {
    const late: TaskSignal[] = [];
    const unsubscribe = await sut.subscribe((signal) => late.push(signal));
    await unsubscribe();
    await sut.create(newTask('t1'));
    await sut.cancel('t1', 'x');
    await settled();
    expect(late).toEqual([]);
    expect(signals.length).toBeGreaterThan(0);
  });
});

import { Cancellation } from '../cancellation';
import { HandlerContext } from '../context';
import { MemoryTaskStore } from './memory-task.store';
import { taskContext } from './task-launch';
import { TaskManager } from './task-manager';

describe('task progress', () => {
  const caller = { principal: { id: 'key:1', tenant: 't', scopes: [] } };
  let sut: TaskManager;

  beforeEach(() => {
    sut = new TaskManager({ store: new MemoryTaskStore() });
  });

  afterEach(() => sut.close());

  function start() {
    const sent: unknown[] = [];
    const launch = sut.prepare({
      era: 'modern',
      deferrable: true,
      preTask: { request: () => Promise.reject(new Error('no input')) },
      requestCancellation: new Cancellation(),
      caller,
    });
    const original = new HandlerContext({
      era: 'modern',
      protocolVersion: '2026-07-28',
      requestId: 1,
      method: 'tools/call',
      clientCapabilities: {},
      cancellation: new Cancellation(),
      progressToken: 'p-1',
      logsEnabled: false,
      outbound: { send: (message) => void sent.push(message) },
      broker: { request: () => Promise.reject(new Error('no input')) },
    });
    return { launch, ctx: taskContext(original, launch), sent };
  }

  it('shows a running task’s progress as its statusMessage, the latest one winning', async () => {
    const { launch, ctx, sent } = start();
    launch.decide();
    const task = await launch.begin();
    await ctx.progress(1, 4, 'Fetched the first page');
    expect((await sut.get(task.taskId, caller)).statusMessage).toBe('Fetched the first page');
    await ctx.progress(2, 4);
    expect(await sut.get(task.taskId, caller)).toMatchObject({
      status: 'working',
      statusMessage: 'Progress: 2 of 4',
    });
    // The original request was answered with the handle: nothing goes there.
    expect(sent).toEqual([]);
  });

  it('sends progress on the original request while the call has not become a task', async () => {
    const { launch, ctx, sent } = start();
    expect(launch.defer()).toBe(true);
    launch.decide();
    await ctx.progress(1, undefined, 'Asking first');
    expect(sent).toEqual([
      {
        jsonrpc: '2.0',
        method: 'notifications/progress',
        params: { progressToken: 'p-1', progress: 1, message: 'Asking first' },
      },
    ]);
  });
});

import { InMemoryTransport, type JSONRPCMessage } from '@modelcontextprotocol/client';
import {
  Cancellation,
  ErrorCode,
  HandlerContext,
  McpError,
  TASKS_EXTENSION,
  type InputMethod,
  type JsonObject,
  type JsonRpcMessage,
} from '@portico/mcp-protocol';
import {
  followUpstreamTask,
  liftTaskResults,
  offersTasks,
  UPSTREAM_TASK_META,
  upstreamTaskOf,
  withTasksExtension,
  type UpstreamTaskMethods,
} from './upstream-tasks';

const LABEL = 'backend "slow"';

/** One step of a scripted upstream's tasks/get: a state, a failure, or a deferred answer. */
type GetStep = JsonObject | Error | ((signal: AbortSignal) => Promise<JsonObject>);

/**
 * An upstream's task methods answering tasks/get from a script, recording every call. A
 * script that runs out fails the follow at once (a final error), naming the cause.
 */
function scripted(steps: GetStep[]) {
  const calls = {
    get: [] as { taskId: string; signal: AbortSignal }[],
    update: [] as { taskId: string; inputResponses: JsonObject }[],
    cancel: [] as string[],
  };
  let onGet: (() => void) | undefined;
  const methods: UpstreamTaskMethods = {
    get: (taskId, signal) => {
      calls.get.push({ taskId, signal });
      onGet?.();
      const step = steps.shift();
      if (step === undefined) {
        return Promise.reject(new McpError(ErrorCode.InvalidParams, 'script exhausted'));
      }
      if (step instanceof Error) {
        return Promise.reject(step);
      }
      return typeof step === 'function' ? step(signal) : Promise.resolve(step);
    },
    update: (taskId, inputResponses) => {
      calls.update.push({ taskId, inputResponses });
      return Promise.resolve();
    },
    cancel: (taskId) => {
      calls.cancel.push(taskId);
      return Promise.resolve();
    },
  };
  /** Resolves once tasks/get has been called `n` times in all. */
  const getCalled = (n: number) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (calls.get.length >= n) {
          onGet = undefined;
          resolve();
        }
      };
      onGet = check;
      check();
    });
  return { methods, calls, getCalled };
}

/** A real request context whose broker answers input requests and records them. */
function context(
  answer: (method: InputMethod, cancellation: Cancellation) => Promise<JsonObject> = () =>
    Promise.resolve({ action: 'accept', content: { name: 'Ada' } }),
) {
  const cancellation = new Cancellation();
  const sent: JsonRpcMessage[] = [];
  const asked: { method: InputMethod; params: JsonObject; key?: string }[] = [];
  const ctx = new HandlerContext({
    era: 'modern',
    protocolVersion: '2026-07-28',
    requestId: 1,
    method: 'tools/call',
    clientCapabilities: { elicitation: {}, roots: {} },
    cancellation,
    progressToken: 'p-1',
    logsEnabled: false,
    outbound: { send: (message) => void sent.push(message) },
    broker: {
      request: (method, params, c, key) => {
        asked.push({ method, params, key });
        return answer(method, c);
      },
    },
  });
  return { ctx, cancellation, sent, asked };
}

/** The progress notifications a context sent: [progress, message]. */
function progressOf(sent: JsonRpcMessage[]): [unknown, unknown][] {
  return sent
    .filter((m) => 'method' in m && m.method === 'notifications/progress')
    .map((m) => {
      const params = (m as { params: JsonObject }).params;
      return [params.progress, params.message];
    });
}

/** The handle an upstream answers a tools/call with: short polls keep the specs quick. */
function handle(fields: JsonObject = {}): JsonObject {
  return { resultType: 'task', taskId: 'up-1', status: 'working', pollIntervalMs: 50, ...fields };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

/** A tools/call request with id `id`, as the SDK client sends it. */
function toolsCall(id: number): JSONRPCMessage {
  return { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 't', arguments: {} } };
}

describe(liftTaskResults.name, () => {
  /** The SDK's in-memory pair: `upstream` sends, `client` (lifted) receives. */
  function pair() {
    const [client, upstream] = InMemoryTransport.createLinkedPair();
    const received: { message: JSONRPCMessage; extra: unknown; self: unknown }[] = [];
    client.onmessage = function (this: unknown, message, extra) {
      received.push({ message, extra, self: this });
    };
    liftTaskResults(client);
    return { client, upstream, received };
  }

  it('delivers a task answer as a complete result carrying the handle', async () => {
    const { client, upstream, received } = pair();
    const created = {
      resultType: 'task',
      taskId: 'up-1',
      status: 'working',
      pollIntervalMs: 200,
    };
    const authInfo = { token: 't', clientId: 'c', scopes: [] };
    await client.send(toolsCall(3));
    await upstream.send({ jsonrpc: '2.0', id: 3, result: created }, { authInfo });

    expect(received).toHaveLength(1);
    expect(received[0].message).toEqual({
      jsonrpc: '2.0',
      id: 3,
      result: { resultType: 'complete', content: [], _meta: { [UPSTREAM_TASK_META]: created } },
    });
    // The original handler still runs as the transport's, with the transport's extra.
    expect(received[0].self).toBe(client);
    expect(received[0].extra).toEqual({ authInfo });
    const lifted = (received[0].message as { result: Record<string, unknown> }).result;
    expect(upstreamTaskOf(lifted)).toEqual(created);
  });

  it('lifts a 2025-11-25 CreateTaskResult ({ task }, no content) to its task', async () => {
    const { client, upstream, received } = pair();
    const task = { taskId: 'old-1', status: 'working', pollInterval: 100 };
    await client.send(toolsCall(4));
    await upstream.send({ jsonrpc: '2.0', id: 4, result: { task } });
    const lifted = (received[0].message as { result: Record<string, unknown> }).result;
    expect(lifted.resultType).toBe('complete');
    expect(upstreamTaskOf(lifted)).toEqual(task);
  });

  it('lifts only the answers to tools/call, once each', async () => {
    const { client, upstream, received } = pair();
    const created = { resultType: 'task', taskId: 'up-2', status: 'working' };
    await client.send({ jsonrpc: '2.0', id: 11, method: 'tasks/get', params: { taskId: 'x' } });
    await upstream.send({ jsonrpc: '2.0', id: 11, result: created });
    await client.send(toolsCall(12));
    await upstream.send({ jsonrpc: '2.0', id: 12, result: created });
    await upstream.send({ jsonrpc: '2.0', id: 12, result: created });
    expect(
      received.map((r) => upstreamTaskOf((r.message as { result: JsonObject }).result)),
    ).toEqual([undefined, created, undefined]);
  });

  it('passes every other message on unchanged, as the same object', async () => {
    const { client, upstream, received } = pair();
    for (const id of [5, 6, 8, 9, 10]) {
      await client.send(toolsCall(id));
    }
    const others: JSONRPCMessage[] = [
      { jsonrpc: '2.0', id: 7, method: 'elicitation/create', params: { message: 'Name?' } },
      { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'x' } },
      { jsonrpc: '2.0', id: 5, result: { content: [{ type: 'text', text: 'done' }] } },
      { jsonrpc: '2.0', id: 6, result: { resultType: 'complete', content: [] } },
      // A tool result that merely mentions a task is a result.
      { jsonrpc: '2.0', id: 8, result: { content: [], task: { taskId: 'x' } } },
      { jsonrpc: '2.0', id: 9, result: { task: { id: 'no-task-id' } } },
      { jsonrpc: '2.0', id: 10, error: { code: -32602, message: 'bad', data: { task: 1 } } },
    ];
    for (const message of others) {
      await upstream.send(message);
    }
    expect(received.map((r) => r.message)).toHaveLength(others.length);
    received.forEach((r, i) => expect(r.message).toBe(others[i]));
  });

  it('does nothing to a transport nobody listens to yet', async () => {
    const [client, upstream] = InMemoryTransport.createLinkedPair();
    liftTaskResults(client);
    expect(client.onmessage).toBeUndefined();

    // A handler set afterwards gets the upstream's answer as it came.
    const received: JSONRPCMessage[] = [];
    client.onmessage = (message) => void received.push(message);
    const answer: JSONRPCMessage = {
      jsonrpc: '2.0',
      id: 1,
      result: { resultType: 'task', taskId: 'up-1', status: 'working' },
    };
    await upstream.send(answer);
    expect(received).toEqual([answer]);
    expect(received[0]).toBe(answer);
  });
});

describe(upstreamTaskOf.name, () => {
  it('finds the handle a lifted result carries', () => {
    const task = { taskId: 'up-1', status: 'working' };
    expect(upstreamTaskOf({ content: [], _meta: { other: 1, [UPSTREAM_TASK_META]: task } })).toBe(
      task,
    );
  });

  it('finds none in a result without one, or with a malformed one', () => {
    expect(upstreamTaskOf({ content: [] })).toBeUndefined();
    expect(upstreamTaskOf({ content: [], _meta: null })).toBeUndefined();
    expect(upstreamTaskOf({ content: [], _meta: 'x' })).toBeUndefined();
    expect(upstreamTaskOf({ content: [], _meta: { other: { taskId: 'x' } } })).toBeUndefined();
    for (const bad of [null, 'up-1', 42, {}, { taskId: 7 }, { status: 'working' }]) {
      expect(upstreamTaskOf({ _meta: { [UPSTREAM_TASK_META]: bad } })).toBeUndefined();
    }
  });
});

describe(withTasksExtension.name, () => {
  it('declares the extension beside the other capabilities and extensions', () => {
    const caps = { sampling: {}, extensions: { 'example.com/other': { on: true } } };
    expect(withTasksExtension(caps)).toEqual({
      sampling: {},
      extensions: { 'example.com/other': { on: true }, [TASKS_EXTENSION]: {} },
    });
    // The caller's capabilities are left as they were.
    expect(caps).toEqual({ sampling: {}, extensions: { 'example.com/other': { on: true } } });
  });

  it('declares it alone where there were no (usable) extensions', () => {
    expect(withTasksExtension({})).toEqual({ extensions: { [TASKS_EXTENSION]: {} } });
    expect(withTasksExtension({ roots: {}, extensions: null })).toEqual({
      roots: {},
      extensions: { [TASKS_EXTENSION]: {} },
    });
    expect(withTasksExtension({ extensions: 'tasks' })).toEqual({
      extensions: { [TASKS_EXTENSION]: {} },
    });
  });

  it('yields capabilities that offersTasks recognises', () => {
    expect(offersTasks(withTasksExtension({ tools: {} }))).toBe(true);
  });
});

describe(offersTasks.name, () => {
  it('detects the extension among others', () => {
    expect(offersTasks({ tools: {}, extensions: { [TASKS_EXTENSION]: {} } })).toBe(true);
    expect(
      offersTasks({ extensions: { 'example.com/other': {}, [TASKS_EXTENSION]: { list: {} } } }),
    ).toBe(true);
  });

  it('rejects capabilities without it, and anything that is not an object', () => {
    expect(offersTasks({ tools: {} })).toBe(false);
    expect(offersTasks({ extensions: { 'example.com/other': {} } })).toBe(false);
    expect(offersTasks({ tasks: {} })).toBe(false);
    for (const declared of [true, 'yes', 1, null]) {
      expect(offersTasks({ extensions: { [TASKS_EXTENSION]: declared } })).toBe(false);
    }
    for (const extensions of [null, 'x', 3]) {
      expect(offersTasks({ extensions })).toBe(false);
    }
    for (const capabilities of [undefined, null, 'x', 42, true]) {
      expect(offersTasks(capabilities)).toBe(false);
    }
  });
});

describe(followUpstreamTask.name, () => {
  it('polls a working task until it completes and returns its result without the envelope', async () => {
    const { ctx } = context();
    const { methods, calls } = scripted([
      { taskId: 'up-1', status: 'working', pollIntervalMs: 0 },
      {
        taskId: 'up-1',
        status: 'completed',
        result: { resultType: 'complete', content: [{ type: 'text', text: '42' }], isError: false },
      },
    ]);

    const result = await followUpstreamTask(handle(), ctx, methods, LABEL);

    expect(result).toEqual({ content: [{ type: 'text', text: '42' }], isError: false });
    expect(calls.get.map((c) => c.taskId)).toEqual(['up-1', 'up-1']);
    expect(calls.get.every((c) => c.signal === ctx.signal)).toBe(true);
    expect(calls.update).toEqual([]);
    expect(calls.cancel).toEqual([]);
  });

  it('returns an empty tool result for a completed task without one', async () => {
    const { ctx } = context();
    const { methods } = scripted([{ status: 'completed' }]);
    await expect(followUpstreamTask(handle(), ctx, methods, LABEL)).resolves.toEqual({
      content: [],
    });
  });

  it('returns at once for a handle that is already complete, without polling', async () => {
    const { ctx } = context();
    const { methods, calls } = scripted([]);
    const done = handle({
      status: 'completed',
      result: { content: [{ type: 'text', text: 'x' }] },
    });
    await expect(followUpstreamTask(done, ctx, methods, LABEL)).resolves.toEqual({
      content: [{ type: 'text', text: 'x' }],
    });
    expect(calls.get).toEqual([]);
  });

  it('reports each distinct statusMessage once as progress, with increasing values', async () => {
    const { ctx, sent } = context();
    const { methods } = scripted([
      { status: 'working', statusMessage: 'Queued' },
      { status: 'working', statusMessage: 'Fetching' },
      { status: 'working' },
      { status: 'working', statusMessage: 'Fetching' },
      { status: 'completed', statusMessage: 'Done', result: { content: [] } },
    ]);

    await followUpstreamTask(handle({ statusMessage: 'Queued' }), ctx, methods, LABEL);

    expect(progressOf(sent)).toEqual([
      [1, 'Queued'],
      [2, 'Fetching'],
      [3, 'Done'],
    ]);
  });

  it('throws the error a failed task carries, as the upstream gave it', async () => {
    const { ctx } = context();
    const { methods, calls } = scripted([
      { status: 'failed', error: { code: -32050, message: 'Quota exceeded', data: { left: 0 } } },
    ]);

    const err = await rejection(followUpstreamTask(handle(), ctx, methods, LABEL));

    expect(err).toBeInstanceOf(McpError);
    expect(err).toMatchObject({ code: -32050, message: 'Quota exceeded', data: { left: 0 } });
    expect(calls.cancel).toEqual([]);
  });

  it('throws an internal error naming the backend for a failed task without an error', async () => {
    const { ctx } = context();
    const { methods } = scripted([
      { status: 'failed', statusMessage: 'disk full', error: { message: 'no code' } },
    ]);

    const err = await rejection(followUpstreamTask(handle(), ctx, methods, LABEL));

    expect(err).toBeInstanceOf(McpError);
    expect((err as McpError).code).toBe(ErrorCode.InternalError);
    expect((err as McpError).message).toContain(LABEL);
    expect((err as McpError).message).toContain('disk full');
  });

  it('throws when the upstream cancels the task itself, and cancels nothing', async () => {
    const { ctx } = context();
    const { methods, calls } = scripted([{ status: 'cancelled', statusMessage: 'operator' }]);

    const err = await rejection(followUpstreamTask(handle(), ctx, methods, LABEL));

    expect(err).toBeInstanceOf(McpError);
    expect((err as McpError).code).toBe(ErrorCode.InternalError);
    expect((err as McpError).message).toContain(LABEL);
    expect(calls.cancel).toEqual([]);
  });

  it('answers input requests under the upstream’s keys, each once, then follows to the end', async () => {
    const { ctx, asked } = context((method) =>
      Promise.resolve(
        method === 'roots/list'
          ? { roots: [{ uri: 'file:///w' }] }
          : { action: 'accept', content: { name: 'Ada' } },
      ),
    );
    const name = {
      method: 'elicitation/create',
      params: { message: 'Name?', requestedSchema: { type: 'object', properties: {} } },
    };
    const roots = { method: 'roots/list', params: {} };
    const { methods, calls } = scripted([
      { status: 'input_required', inputRequests: { 'ask-name': name } },
      // Not taken up yet: the key is still shown and must not be asked again.
      { status: 'input_required', inputRequests: { 'ask-name': name } },
      // A further request beside the one still shown: only the new key is asked.
      { status: 'input_required', inputRequests: { 'ask-name': name, 'ask-roots': roots } },
      { status: 'working', inputRequests: {} },
      { status: 'completed', result: { content: [{ type: 'text', text: 'hi Ada' }] } },
    ]);

    const result = await followUpstreamTask(handle(), ctx, methods, LABEL);

    expect(result).toEqual({ content: [{ type: 'text', text: 'hi Ada' }] });
    expect(asked).toEqual([
      { method: 'elicitation/create', params: name.params, key: 'ask-name' },
      { method: 'roots/list', params: {}, key: 'ask-roots' },
    ]);
    expect(calls.update).toEqual([
      {
        taskId: 'up-1',
        inputResponses: { 'ask-name': { action: 'accept', content: { name: 'Ada' } } },
      },
      { taskId: 'up-1', inputResponses: { 'ask-roots': { roots: [{ uri: 'file:///w' }] } } },
    ]);
    expect(calls.get).toHaveLength(5);
  });

  it('cancels the upstream task once when the caller’s context is cancelled while waiting', async () => {
    const { ctx, cancellation } = context();
    const { methods, calls, getCalled } = scripted([
      { status: 'working' },
      { status: 'working' },
      { status: 'working' },
    ]);
    const following = rejection(followUpstreamTask(handle(), ctx, methods, LABEL));

    await getCalled(1);
    const reason = new McpError(ErrorCode.RequestCancelled, 'tasks/cancel');
    cancellation.cancel(reason);

    await expect(following).resolves.toBe(reason);
    expect(calls.cancel).toEqual(['up-1']);
    expect(calls.get).toHaveLength(1);
  });

  it('cancels the upstream task once when cancelled during a tasks/get', async () => {
    const { ctx, cancellation } = context();
    const pending = (signal: AbortSignal) =>
      new Promise<JsonObject>((_, reject) =>
        signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true }),
      );
    const { methods, calls, getCalled } = scripted([pending]);
    const following = rejection(followUpstreamTask(handle(), ctx, methods, LABEL));

    await getCalled(1);
    cancellation.cancel();

    const err = await following;
    expect(err).toBeInstanceOf(McpError);
    expect((err as McpError).code).toBe(ErrorCode.RequestCancelled);
    expect(calls.cancel).toEqual(['up-1']);
    // A cancellation is no transient failure: tasks/get is not tried again.
    expect(calls.get).toHaveLength(1);
  });

  it('cancels the upstream task when cancelled while the client is asked for input', async () => {
    const { ctx, cancellation, asked } = context(
      (_method, c) => new Promise<JsonObject>((_, reject) => c.onCancel(reject)),
    );
    const { methods, calls, getCalled } = scripted([
      {
        status: 'input_required',
        inputRequests: { 'ask-name': { method: 'elicitation/create', params: { message: 'N?' } } },
      },
    ]);
    const following = rejection(followUpstreamTask(handle(), ctx, methods, LABEL));

    await getCalled(1);
    while (asked.length === 0) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    const reason = new Error('gone');
    cancellation.cancel(reason);

    await expect(following).resolves.toBe(reason);
    expect(calls.update).toEqual([]);
    expect(calls.cancel).toEqual(['up-1']);
  });

  it('survives a failing tasks/cancel of a cancelled follow', async () => {
    const { ctx, cancellation } = context();
    const { methods, getCalled } = scripted([{ status: 'working' }]);
    const cancel = jest.fn(() => Promise.reject(new Error('upstream down')));
    const following = rejection(followUpstreamTask(handle(), ctx, { ...methods, cancel }, LABEL));

    await getCalled(1);
    cancellation.cancel();

    expect(await following).toBeInstanceOf(McpError);
    expect(cancel).toHaveBeenCalledTimes(1);
  });

  it('retries transient tasks/get failures and goes on once one succeeds', async () => {
    const { ctx } = context();
    const { methods, calls } = scripted([
      new Error('socket hang up'),
      new McpError(ErrorCode.InternalError, 'upstream hiccup'),
      new Error('ECONNRESET'),
      new McpError(ErrorCode.InternalError, 'again'),
      { status: 'completed', result: { content: [{ type: 'text', text: 'ok' }] } },
    ]);

    await expect(followUpstreamTask(handle(), ctx, methods, LABEL)).resolves.toEqual({
      content: [{ type: 'text', text: 'ok' }],
    });
    expect(calls.get).toHaveLength(5);
  });

  it('gives up after five transient failures in a row, with the last one', async () => {
    const { ctx } = context();
    const last = new Error('still down');
    const { methods, calls } = scripted([
      new Error('down 1'),
      new Error('down 2'),
      new McpError(ErrorCode.InternalError, 'down 3'),
      new Error('down 4'),
      last,
      { status: 'completed' },
    ]);

    await expect(rejection(followUpstreamTask(handle(), ctx, methods, LABEL))).resolves.toBe(last);
    expect(calls.get).toHaveLength(5);
    expect(calls.cancel).toEqual([]);
  });

  it('counts only failures in a row: a success in between starts the count again', async () => {
    const { ctx } = context();
    const down = () => new Error('down');
    const { methods, calls } = scripted([
      down(),
      down(),
      down(),
      down(),
      { status: 'working' },
      down(),
      down(),
      down(),
      down(),
      { status: 'completed' },
    ]);

    await expect(followUpstreamTask(handle(), ctx, methods, LABEL)).resolves.toEqual({
      content: [],
    });
    expect(calls.get).toHaveLength(10);
  });

  it('stops at once on an answer of the upstream’s such as invalid params', async () => {
    const { ctx } = context();
    const final = new McpError(ErrorCode.InvalidParams, 'Unknown task');
    const { methods, calls } = scripted([final, { status: 'completed' }]);

    await expect(rejection(followUpstreamTask(handle(), ctx, methods, LABEL))).resolves.toBe(final);
    expect(calls.get).toHaveLength(1);
    expect(calls.cancel).toEqual([]);
  });
});

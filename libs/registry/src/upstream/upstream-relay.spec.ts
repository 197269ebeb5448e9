import { once } from 'node:events';
import { Readable } from 'node:stream';
import {
  Cancellation,
  ErrorCode,
  HandlerContext,
  McpError,
  type InputMethod,
  type JsonObject,
  type RequestContext,
} from '@portico/mcp-protocol';
import {
  answerInputRequests,
  inputCapabilities,
  INPUT_BATCH_MS,
  RELAY_META_KEY,
  RelayedCall,
  RelayedCalls,
  SseRelayTagger,
} from './upstream-relay';

/** Feeds `chunks` through a tagger and returns everything it wrote. */
async function tagged(token: string, chunks: (string | Buffer)[]): Promise<string> {
  const out: Buffer[] = [];
  const tagger = Readable.from(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : c)))
    .pipe(new SseRelayTagger(token))
    .on('data', (chunk: Buffer) => out.push(Buffer.from(chunk)));
  await once(tagger, 'end');
  return Buffer.concat(out).toString('utf8');
}

function event(message: object): string {
  return `event: message\ndata: ${JSON.stringify(message)}\n\n`;
}

/** The JSON messages of an SSE text, in order. */
function messages(sse: string): Record<string, unknown>[] {
  return sse
    .split('\n')
    .filter((line) => line.startsWith('data:'))
    .map((line) => JSON.parse(line.slice(5)) as Record<string, unknown>);
}

function fakeContext(overrides: Partial<RequestContext> = {}): RequestContext {
  return {
    era: 'modern',
    protocolVersion: '2026-07-28',
    requestId: 1,
    method: 'tools/call',
    clientCapabilities: {},
    signal: new AbortController().signal,
    progress: jest.fn(() => Promise.resolve()),
    log: jest.fn(() => Promise.resolve()),
    elicit: jest.fn(() => Promise.resolve({ action: 'accept', content: { name: 'Ada' } })),
    createMessage: jest.fn(() =>
      Promise.resolve({
        role: 'assistant',
        content: { type: 'text', text: 'hi' },
        model: 'm',
      }),
    ),
    listRoots: jest.fn(() => Promise.resolve({ roots: [] })),
    ...overrides,
  };
}

describe(SseRelayTagger.name, () => {
  const request = {
    jsonrpc: '2.0',
    id: 7,
    method: 'elicitation/create',
    params: { message: 'Name?', _meta: { keep: 1 } },
  };
  const log = {
    jsonrpc: '2.0',
    method: 'notifications/message',
    params: { level: 'info', data: 'é' },
  };
  const progress = {
    jsonrpc: '2.0',
    method: 'notifications/progress',
    params: { progressToken: 1, progress: 5 },
  };
  const response = { jsonrpc: '2.0', id: 3, result: { content: [] } };

  it('tags server requests and log messages with the call, keeping their own _meta', async () => {
    const out = messages(await tagged('42', [event(request), event(log)]));
    expect(out[0]).toEqual({
      ...request,
      params: { message: 'Name?', _meta: { keep: 1, [RELAY_META_KEY]: '42' } },
    });
    expect(out[1]).toEqual({
      ...log,
      params: { ...log.params, _meta: { [RELAY_META_KEY]: '42' } },
    });
  });

  it('leaves responses, progress, comments and event framing byte for byte', async () => {
    const text = `: keep-alive\n\nid: 1\nretry: 500\n${event(progress)}${event(response)}`;
    expect(await tagged('1', [text])).toBe(text);
  });

  it('finds messages split across chunks, inside a UTF-8 character too', async () => {
    const whole = Buffer.from(event(response) + event(log));
    const cut = whole.indexOf(Buffer.from('é')) + 1; // between the two bytes of é
    const out = await tagged('9', [
      whole.subarray(0, 30),
      whole.subarray(30, cut),
      whole.subarray(cut),
    ]);
    expect(messages(out)).toEqual([
      response,
      { ...log, params: { ...log.params, _meta: { [RELAY_META_KEY]: '9' } } },
    ]);
  });

  it('keeps CRLF line ends and passes an unterminated last line on at the end', async () => {
    const text = `data: ${JSON.stringify(log)}\r\n\r\ndata: ${JSON.stringify(response)}`;
    const out = await tagged('2', [text]);
    expect(out.split('\r\n')).toHaveLength(3);
    expect(out.endsWith(`data: ${JSON.stringify(response)}`)).toBe(true);
    expect(messages(out.replace(/\r/g, ''))[0]).toEqual({
      ...log,
      params: { ...log.params, _meta: { [RELAY_META_KEY]: '2' } },
    });
  });
});

describe(RelayedCalls.name, () => {
  it('routes a tagged message to its call and removes the tag', () => {
    const calls = new RelayedCalls();
    const a = calls.open(fakeContext());
    const b = calls.open(fakeContext());
    const tagged = { level: 'info', _meta: { [RELAY_META_KEY]: b.token, x: 1 } };
    const routed = calls.route(tagged, false);
    expect(routed.call).toBe(b);
    expect(routed.params).toEqual({ level: 'info', _meta: { x: 1 } });
    expect(calls.route({ _meta: { [RELAY_META_KEY]: a.token } }, false).params).toEqual({});
  });

  it('routes an untagged message nowhere unless told to take the only call in flight', () => {
    const calls = new RelayedCalls();
    const only = calls.open(fakeContext());
    expect(calls.route({ level: 'info' }, false).call).toBeUndefined();
    expect(calls.route({ level: 'info' }, true).call).toBe(only);
  });

  it('takes the only call in flight, when allowed, and none when in doubt', () => {
    const calls = new RelayedCalls();
    expect(calls.route({ level: 'info' }, true).call).toBeUndefined();
    const only = calls.open(fakeContext());
    expect(calls.route({ level: 'info' }, true).call).toBe(only);
    const other = calls.open(fakeContext());
    expect(calls.route({ level: 'info' }, true).call).toBeUndefined();
    calls.close(only);
    expect(calls.route({ level: 'info' }, true).call).toBe(other);
    // A tag of a call that has ended finds nothing, even with one call left.
    expect(calls.route({ _meta: { [RELAY_META_KEY]: only.token } }, true).call).toBeUndefined();
  });

  it('finds calls by progress token', () => {
    const calls = new RelayedCalls();
    const call = calls.open(fakeContext());
    expect(calls.get(call.token)).toBe(call);
    expect(calls.get(Number(call.token))).toBeUndefined();
  });

  it('gives up the upstream request of a call that must wait for its client', async () => {
    const call = new RelayedCalls().open(fakeContext());
    const reason = Symbol('input required');
    call.unwindFor(reason);
    call.unwindFor(Symbol('a later one'));
    await once(call.signal, 'abort');
    expect(call.unwoundBy).toEqual({ reason });
  });

  it("aborts with the caller's signal, and stops listening to it once closed", () => {
    const caller = new AbortController();
    const calls = new RelayedCalls();
    const first = calls.open(fakeContext({ signal: caller.signal }));
    caller.abort();
    expect(first.signal.aborted).toBe(true);
    const again = new AbortController();
    const second = calls.open(fakeContext({ signal: again.signal }));
    calls.close(second);
    again.abort();
    expect(second.signal.aborted).toBe(false);
  });
});

describe(answerInputRequests.name, () => {
  it("asks the caller's client for every input at once, under the upstream's keys", async () => {
    const ctx = fakeContext();
    const answers = await answerInputRequests(ctx, {
      who: { method: 'elicitation/create', params: { message: 'Name?' } },
      say: { method: 'sampling/createMessage', params: { messages: [], maxTokens: 5 } },
      where: { method: 'roots/list' },
    });
    expect(Object.keys(answers)).toEqual(['who', 'say', 'where']);
    expect(answers.where).toEqual({ roots: [] });
    expect(ctx.elicit).toHaveBeenCalledWith({ message: 'Name?' }, { key: 'who' });
    expect(ctx.createMessage).toHaveBeenCalledWith({ messages: [], maxTokens: 5 }, { key: 'say' });
    expect(ctx.listRoots).toHaveBeenCalledWith({ key: 'where' });
  });

  it('refuses an input request of a method it does not know', async () => {
    const failure = answerInputRequests(fakeContext(), { x: { method: 'tools/call' } });
    await expect(failure).rejects.toBeInstanceOf(McpError);
  });
});

describe(inputCapabilities.name, () => {
  it('keeps only what an upstream may ask the client for', () => {
    expect(
      inputCapabilities({
        sampling: { tools: {} },
        roots: { listChanged: true },
        extensions: { 'io.modelcontextprotocol/tasks': {} },
      }),
    ).toEqual({ sampling: { tools: {} }, roots: { listChanged: true } });
  });
});

describe('held calls', () => {
  /** What a 2026-07-28 context's broker throws when the client must answer first. */
  const INPUT_REQUIRED = Symbol('input-required');

  /**
   * A real 2026-07-28 request context whose broker answers from `answers` by key: an object
   * is the client's answer, an Error a failure; a key without an answer unwinds for an input
   * round (a non-Error, as the engine's replay broker does). Records what it was asked.
   */
  function context(answers: Record<string, JsonObject | Error> = {}) {
    const cancellation = new Cancellation();
    const asked: { method: InputMethod; params: JsonObject; key?: string }[] = [];
    const ctx = new HandlerContext({
      era: 'modern',
      protocolVersion: '2026-07-28',
      requestId: 1,
      method: 'tools/call',
      clientCapabilities: { elicitation: {}, sampling: {}, roots: {} },
      cancellation,
      logsEnabled: false,
      outbound: { send: () => undefined },
      broker: {
        request: (method, params, _c, key) => {
          asked.push({ method, params, key });
          const answer = key === undefined ? undefined : answers[key];
          if (answer === undefined) {
            return Promise.reject(INPUT_REQUIRED);
          }
          return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer);
        },
      },
    });
    return { ctx, cancellation, asked };
  }

  /** Where a promise stands once pending callbacks have run. */
  async function state(promise: Promise<unknown>): Promise<'pending' | 'resolved' | 'rejected'> {
    let seen: 'pending' | 'resolved' | 'rejected' = 'pending';
    promise.then(
      () => (seen = 'resolved'),
      () => (seen = 'rejected'),
    );
    await new Promise<void>((resolve) => setImmediate(resolve));
    return seen;
  }

  let calls: RelayedCalls;
  const opened: RelayedCall[] = [];

  /** A call in flight, closed after the test (its batch timer included). */
  function open(ctx: RequestContext): RelayedCall {
    const call = calls.open(ctx);
    opened.push(call);
    return call;
  }

  beforeEach(() => {
    calls = new RelayedCalls();
  });

  afterEach(() => {
    opened.splice(0).forEach((call) => calls.close(call));
  });

  const name = { message: 'Name?' };
  const sample = { messages: [], maxTokens: 5 };
  const accepted = { action: 'accept', content: { name: 'Ada' } };

  it('keys input requests by method, counting over the whole call', () => {
    const first = context();
    const call = open(first.ctx);
    expect(call.nextKey('elicitation/create')).toBe('elicitation-0');
    expect(call.nextKey('elicitation/create')).toBe('elicitation-1');
    expect(call.nextKey('sampling/createMessage')).toBe('sampling-2');
    call.detach();
    call.rebind(context().ctx);
    expect(call.nextKey('roots/list')).toBe('roots-3');
    expect(call.nextKey('tools/call')).toBe('input-4');
  });

  it('signals once, after the batch window, that input is needed, with the reason', async () => {
    const call = open(context().ctx);
    const needed = call.inputNeeded();
    const first = Symbol('first');
    const last = Symbol('last');
    void call.hold('elicitation/create', name, 'elicitation-0', first);
    expect(await state(needed)).toBe('pending');
    void call.hold('sampling/createMessage', sample, 'sampling-1', last);
    // Both requests arrived in one window: one signal, at the end of the window the last
    // request opened (an earlier signal would have carried the first reason).
    await expect(needed).resolves.toEqual({ reason: last });
    expect(call.inputNeeded()).toBe(needed);
  });

  it('signals to a caller that asks only after the window has passed', async () => {
    const call = open(context().ctx);
    const input = call.hold('elicitation/create', name, 'elicitation-0', INPUT_REQUIRED);
    // Timers fire in order of expiry: the window's has fired by the time this one does.
    await new Promise((resolve) => setTimeout(resolve, INPUT_BATCH_MS * 2));
    await expect(call.inputNeeded()).resolves.toEqual({ reason: INPUT_REQUIRED });
    expect(await state(input)).toBe('pending');
  });

  it("has the retry's context answer held inputs under their keys, holding the rest", async () => {
    const call = open(context().ctx);
    const who = call.hold('elicitation/create', name, 'elicitation-0', INPUT_REQUIRED);
    const say = call.hold('sampling/createMessage', sample, 'sampling-1', INPUT_REQUIRED);
    await call.inputNeeded();
    call.detach();

    const retry = context({ 'elicitation-0': accepted });
    call.rebind(retry.ctx);
    expect(retry.asked).toEqual([
      { method: 'elicitation/create', params: name, key: 'elicitation-0' },
      { method: 'sampling/createMessage', params: sample, key: 'sampling-1' },
    ]);
    await expect(who).resolves.toEqual(accepted);
    // The unanswered one waits for another round, which is signalled afresh.
    await expect(call.inputNeeded()).resolves.toEqual({ reason: INPUT_REQUIRED });
    expect(await state(say)).toBe('pending');

    const answer = { role: 'assistant', content: { type: 'text', text: 'hi' }, model: 'm' };
    const last = context({ 'sampling-1': answer });
    call.rebind(last.ctx);
    expect(last.asked.map((a) => a.key)).toEqual(['sampling-1']);
    await expect(say).resolves.toEqual(answer);
  });

  it('fails a held input the retry fails, and only that one', async () => {
    const call = open(context().ctx);
    const who = call.hold('elicitation/create', name, 'elicitation-0', INPUT_REQUIRED);
    const say = call.hold('sampling/createMessage', sample, 'sampling-1', INPUT_REQUIRED);
    await call.inputNeeded();
    call.detach();
    const refused = new McpError(ErrorCode.InvalidParams, 'the client refused');
    call.rebind(context({ 'elicitation-0': refused }).ctx);
    await expect(who).rejects.toBe(refused);
    expect(await state(say)).toBe('pending');
  });

  it('fails a held input the retry cannot ask for (a missing client capability)', async () => {
    const call = open(context().ctx);
    const roots = call.hold('roots/list', {}, 'roots-0', INPUT_REQUIRED);
    await call.inputNeeded();
    call.detach();
    const retry = new HandlerContext({
      era: 'modern',
      protocolVersion: '2026-07-28',
      requestId: 2,
      method: 'tools/call',
      clientCapabilities: {},
      cancellation: new Cancellation(),
      logsEnabled: false,
      outbound: { send: () => undefined },
      broker: { request: () => Promise.reject(INPUT_REQUIRED) },
    });
    call.rebind(retry);
    const err = await roots.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(McpError);
    expect((err as McpError).code).toBe(ErrorCode.MissingClientCapability);
  });

  it('leaves a held call out of routing by "the only call", until its retry takes it', () => {
    const heldCall = open(context().ctx);
    const other = open(context().ctx);
    expect(calls.route({ level: 'info' }, true).call).toBeUndefined();
    heldCall.detach();
    expect(heldCall.waitingForRetry).toBe(true);
    expect(calls.route({ level: 'info' }, true).call).toBe(other);
    // A tagged message still finds it.
    expect(calls.route({ _meta: { [RELAY_META_KEY]: heldCall.token } }, true).call).toBe(heldCall);
    heldCall.rebind(context().ctx);
    expect(heldCall.waitingForRetry).toBe(false);
    expect(calls.route({ level: 'info' }, true).call).toBeUndefined();
    calls.close(other);
    expect(calls.route({ level: 'info' }, true).call).toBe(heldCall);
  });

  it('routes to none when two calls are active beside a held one', () => {
    const heldCall = open(context().ctx);
    open(context().ctx);
    open(context().ctx);
    heldCall.detach();
    expect(calls.route({ level: 'info' }, true).call).toBeUndefined();
  });

  it("aborts with the caller's signal until held", () => {
    const first = context();
    const call = open(first.ctx);
    first.cancellation.cancel();
    expect(call.signal.aborted).toBe(true);
  });

  it('outlives the request that started it once held, and follows the retry that takes it', () => {
    const first = context();
    const call = open(first.ctx);
    call.detach();
    first.cancellation.cancel();
    expect(call.signal.aborted).toBe(false);

    const retry = context();
    call.rebind(retry.ctx);
    expect(call.ctx).toBe(retry.ctx);
    first.cancellation.cancel();
    expect(call.signal.aborted).toBe(false);
    retry.cancellation.cancel();
    expect(call.signal.aborted).toBe(true);
  });

  it('aborts at once when taken over by a retry that is already cancelled', () => {
    const call = open(context().ctx);
    call.detach();
    const retry = context();
    retry.cancellation.cancel();
    call.rebind(retry.ctx);
    expect(call.signal.aborted).toBe(true);
  });

  it('fails its held inputs when given up', async () => {
    const call = open(context().ctx);
    const who = call.hold('elicitation/create', name, 'elicitation-0', INPUT_REQUIRED);
    const reason = new McpError(ErrorCode.RequestCancelled, 'No retry came for the input round');
    call.abort(reason);
    expect(call.signal.reason).toBe(reason);
    await expect(who).rejects.toBe(reason);
  });
});

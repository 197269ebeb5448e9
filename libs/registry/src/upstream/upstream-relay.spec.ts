import { once } from 'node:events';
import { Readable } from 'node:stream';
import { McpError, type RequestContext } from '@portico/mcp-protocol';
import {
  answerInputRequests,
  inputCapabilities,
  RELAY_META_KEY,
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

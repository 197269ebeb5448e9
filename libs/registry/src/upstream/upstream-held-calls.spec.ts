import { once } from 'node:events';
import {
  Cancellation,
  ErrorCode,
  HandlerContext,
  McpError,
  type JsonObject,
} from '@portico/mcp-protocol';
import { HeldCalls, type HeldCall } from './upstream-held-calls';
import { RelayedCalls, type RelayedCall } from './upstream-relay';

/** Thrown by a 2026-07-28 context's broker when the client must answer first. */
const INPUT_REQUIRED = Symbol('input-required');

/** A real request context whose broker unwinds every input request for an input round. */
function context(): HandlerContext {
  return new HandlerContext({
    era: 'modern',
    protocolVersion: '2026-07-28',
    requestId: 1,
    method: 'tools/call',
    clientCapabilities: { elicitation: {} },
    cancellation: new Cancellation(),
    logsEnabled: false,
    outbound: { send: () => undefined },
    broker: { request: () => Promise.reject(INPUT_REQUIRED) },
  });
}

/** A promise settled from outside: how a held upstream request ends. */
function deferred() {
  let resolve!: (value: Record<string, unknown>) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<Record<string, unknown>>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A held call over a fresh relayed call, its upstream request's end in the caller's hands. */
function held(): { entry: HeldCall; call: RelayedCall; outcome: ReturnType<typeof deferred> } {
  const call = new RelayedCalls().open(context());
  const outcome = deferred();
  return { entry: HeldCalls.entry(call, outcome.promise), call, outcome };
}

/** An input request the upstream is waiting on while its call is held. */
function heldInput(call: RelayedCall, key = 'elicitation-0'): Promise<JsonObject> {
  return call.hold('elicitation/create', { message: 'Name?' }, key, INPUT_REQUIRED);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

/** Lets pending promise callbacks run. */
const settled = () => new Promise<void>((resolve) => setImmediate(resolve));

describe(HeldCalls.name, () => {
  let sut: HeldCalls;

  beforeEach(() => {
    sut = new HeldCalls();
  });

  afterEach(() => {
    sut.close();
  });

  it('gives each held call its own id', () => {
    const a = held().entry;
    const b = held().entry;
    expect(typeof a.id).toBe('string');
    expect(a.id).not.toBe(b.id);
  });

  it('hands a kept call to the retry that names it, once', () => {
    const { entry, call } = held();
    sut.keep(entry, 60_000);
    expect(sut.size).toBe(1);
    expect(sut.take(entry.id)).toBe(entry);
    expect(sut.size).toBe(0);
    expect(sut.take(entry.id)).toBeUndefined();
    expect(call.signal.aborted).toBe(false);
  });

  it('finds nothing for an unknown id or a retry that names none', () => {
    const { entry } = held();
    sut.keep(entry, 60_000);
    expect(sut.take('no-such-call')).toBeUndefined();
    expect(sut.take(undefined)).toBeUndefined();
    expect(sut.size).toBe(1);
  });

  it('gives up a call nobody takes in time: its upstream request and held inputs end', async () => {
    const { entry, call } = held();
    const input = heldInput(call);
    sut.keep(entry, 5);
    await once(call.signal, 'abort');
    expect(call.signal.reason).toBeInstanceOf(McpError);
    expect((call.signal.reason as McpError).code).toBe(ErrorCode.RequestCancelled);
    const err = await rejection(input);
    expect(err).toBeInstanceOf(McpError);
    expect((err as McpError).code).toBe(ErrorCode.RequestCancelled);
    expect(sut.size).toBe(0);
    expect(sut.take(entry.id)).toBeUndefined();
  });

  it('lets go of a call whose upstream request ends while held', async () => {
    const { entry, call, outcome } = held();
    sut.keep(entry, 60_000);
    outcome.resolve({ content: [] });
    await entry.outcome;
    await settled();
    expect(sut.size).toBe(0);
    expect(sut.take(entry.id)).toBeUndefined();
    expect(call.signal.aborted).toBe(false);
  });

  // Jest fails the test that leaves a rejection unhandled: no listener of our own is needed.
  it('lets go of a call whose upstream request fails while held, leaving nothing unhandled', async () => {
    const { entry, outcome } = held();
    sut.keep(entry, 60_000);
    outcome.reject(new McpError(ErrorCode.InternalError, 'upstream failed'));
    await settled();
    await settled();
    expect(sut.size).toBe(0);
  });

  it('leaves nothing unhandled when a held call ends before anyone keeps it', async () => {
    const { outcome } = held();
    outcome.reject(new Error('gone before the round ended'));
    await settled();
    await settled();
  });

  it('gives up every held call when the backend closes', async () => {
    const first = held();
    const second = held();
    const input = heldInput(second.call);
    sut.keep(first.entry, 60_000);
    sut.keep(second.entry, 60_000);
    sut.close();
    expect(sut.size).toBe(0);
    expect(first.call.signal.aborted).toBe(true);
    expect(second.call.signal.aborted).toBe(true);
    expect((second.call.signal.reason as McpError).code).toBe(ErrorCode.RequestCancelled);
    expect(((await rejection(input)) as McpError).code).toBe(ErrorCode.RequestCancelled);
    expect(sut.take(first.entry.id)).toBeUndefined();
  });

  it('keeps one timer for a call kept twice: the later keep decides', async () => {
    const { entry, call } = held();
    sut.keep(entry, 1);
    sut.keep(entry, 60_000);
    expect(sut.size).toBe(1);
    // Timers fire in order of expiry: the first keep's would have fired before this one.
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(call.signal.aborted).toBe(false);
    expect(sut.take(entry.id)).toBe(entry);
  });

  it('gives up a call kept again with a shorter time at the new time', async () => {
    const { entry, call } = held();
    sut.keep(entry, 60_000);
    sut.keep(entry, 1);
    await once(call.signal, 'abort');
    expect(sut.size).toBe(0);
  });
});

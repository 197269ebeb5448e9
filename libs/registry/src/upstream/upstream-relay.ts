import { Transform, type TransformCallback } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import {
  ErrorCode,
  McpError,
  type ClientCapabilities,
  type CreateMessageRequestParams,
  type ElicitRequestParams,
  type InputMethod,
  type JsonObject,
  type RequestContext,
  type TaskLaunchControl,
} from '@portico/mcp-protocol';

/*
 * What travels back from an upstream to the client request that caused it: log messages and,
 * from a 2025-era upstream, elicitation, sampling and roots requests. Such a message has to be
 * matched to one of the calls in flight on its upstream session, and is never guessed across
 * clients. Over Streamable HTTP a message that arrived on the response stream of one POST is
 * tagged by `upstream-fetch` with that call's token (RELAY_HEADER on the way out,
 * RELAY_META_KEY on the way in); an untagged one came on the standalone stream, which by the
 * transport's rules carries messages unrelated to any request. Elsewhere (stdio, WebSocket,
 * HTTP+SSE) nothing on the wire says which call a message belongs to: the only call in flight
 * is then taken, which the caller allows only where that cannot cross clients (see route()).
 */

/** Request header naming the call a POST belongs to; upstream-fetch removes it before sending. */
export const RELAY_HEADER = 'x-portico-upstream-call';
/** `_meta` key upstream-fetch adds to messages of a tagged POST's stream; removed on relay. */
export const RELAY_META_KEY = 'dev.portico/upstream-call';

/** How long a call keeps collecting input requests before it unwinds (see `unwindFor`). */
export const INPUT_BATCH_MS = 25;

/** An input request of the upstream that waits for the client's retry (a held call). */
interface HeldInput {
  readonly method: string;
  readonly params: JsonObject;
  readonly key: string;
  resolve(answer: JsonObject): void;
  reject(reason: unknown): void;
}

const KEY_PREFIX: Record<string, string> = {
  'elicitation/create': 'elicitation',
  'sampling/createMessage': 'sampling',
  'roots/list': 'roots',
};

/**
 * One client request being served by an upstream request (or several, across MRTR rounds).
 * A call that may be held (a 2026-07-28 client, a 2025-era upstream asking mid-call) outlives
 * the client request that started it: the upstream request stays open while the client
 * answers, and the client's retry takes the call over (`rebind`).
 */
export class RelayedCall {
  /** What the client's context threw when asked for input (a 2026-07-28 input round). */
  unwoundBy?: { reason: unknown };
  /** Input rounds hold the call open rather than abandon it (see hold). */
  holdable = false;
  /**
   * A call waiting to become a task (a 2025-11-25 upstream's task behind a 2026-07-28 client):
   * once the upstream's questions were answered on the request, it becomes one.
   */
  launch?: TaskLaunchControl;
  /** Headers of every upstream POST of this call: they tag its response stream. */
  readonly headers: Record<string, string>;
  private readonly controller = new AbortController();
  private readonly onCallerAbort = () => this.controller.abort();
  private current: RequestContext;
  private held: HeldInput[] = [];
  private inputIndex = 0;
  private waiting = false;
  private needed?: { promise: Promise<{ reason: unknown }>; resolve(v: { reason: unknown }): void };

  constructor(
    readonly token: string,
    ctx: RequestContext,
  ) {
    this.headers = { [RELAY_HEADER]: token };
    this.current = ctx;
    this.follow(ctx);
  }

  /** The client request the call serves now (the latest retry, for a held call). */
  get ctx(): RequestContext {
    return this.current;
  }

  /**
   * Aborted when the caller goes away, and to give up the upstream request when the client
   * must supply input first.
   */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /**
   * Records that the client must answer an input request first (the modern era's replay
   * broker unwinds a handler that way), then abandons the upstream request once no further
   * input request has arrived for INPUT_BATCH_MS: requests an upstream sends together (a
   * tool awaiting several inputs at once) then form one input round for the client.
   */
  unwindFor(reason: unknown): void {
    this.unwoundBy ??= { reason };
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.controller.abort(), INPUT_BATCH_MS);
  }

  /** The key of the call's next input request of `method`: the same in every round. */
  nextKey(method: string): string {
    return `${KEY_PREFIX[method] ?? 'input'}-${this.inputIndex++}`;
  }

  /**
   * Keeps an upstream input request waiting for the client's retry instead of abandoning the
   * upstream request; once no further one has arrived for INPUT_BATCH_MS, `inputNeeded`
   * resolves: the handler unwinds (the client gets an input round) and the call is held.
   */
  hold(method: string, params: JsonObject, key: string, reason: unknown): Promise<JsonObject> {
    if (this.signal.aborted) {
      // Given up already (no retry came, the backend closed): nothing will answer it.
      return Promise.reject(this.signal.reason);
    }
    return new Promise<JsonObject>((resolve, reject) => {
      this.held.push({ method, params, key, resolve, reject });
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.signalNeeded(reason), INPUT_BATCH_MS);
    });
  }

  /** Resolves when held input requests wait for the client (see hold). */
  inputNeeded(): Promise<{ reason: unknown }> {
    if (!this.needed) {
      let resolve!: (v: { reason: unknown }) => void;
      const promise = new Promise<{ reason: unknown }>((r) => (resolve = r));
      this.needed = { promise, resolve };
    }
    return this.needed.promise;
  }

  /**
   * The client's retry takes the held call over: from now on its messages go to `ctx`, and
   * `ctx` answers the held input requests (from its inputResponses, under the same keys).
   * Those it cannot answer yet stay held for the next round.
   */
  rebind(ctx: RequestContext): void {
    this.current.signal.removeEventListener('abort', this.onCallerAbort);
    this.waiting = false;
    this.current = ctx;
    this.needed = undefined;
    this.follow(ctx);
    const waiting = this.held;
    this.held = [];
    for (const input of waiting) {
      askClient(ctx, input.method, input.params, input.key).then(
        (answer) => input.resolve(answer),
        (err: unknown) => {
          if (err instanceof Error) {
            input.reject(err);
            return;
          }
          if (this.signal.aborted) {
            // Given up meanwhile: nothing will answer it.
            input.reject(this.signal.reason);
            return;
          }
          // Still unanswered: held for another round.
          this.held.push(input);
          clearTimeout(this.timer);
          this.timer = setTimeout(() => this.signalNeeded(err), INPUT_BATCH_MS);
        },
      );
    }
  }

  /** Held until a retry comes: the request that started it ends without stopping it. */
  detach(): void {
    this.current.signal.removeEventListener('abort', this.onCallerAbort);
    this.waiting = true;
  }

  /** Held, waiting for its client's retry (see detach). */
  get waitingForRetry(): boolean {
    return this.waiting;
  }

  /** Gives the upstream request up (a held call nobody came back for). */
  abort(reason: unknown): void {
    this.controller.abort(reason);
    const waiting = this.held;
    this.held = [];
    waiting.forEach((input) => input.reject(reason));
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.current.signal.removeEventListener('abort', this.onCallerAbort);
  }

  /** The caller going away aborts the upstream request (a listener: cheaper than any()). */
  private follow(ctx: RequestContext): void {
    if (ctx.signal.aborted) {
      this.controller.abort();
    } else {
      ctx.signal.addEventListener('abort', this.onCallerAbort, { once: true });
    }
  }

  private signalNeeded(reason: unknown): void {
    this.needed?.resolve({ reason });
    if (!this.needed) {
      this.needed = { promise: Promise.resolve({ reason }), resolve: () => undefined };
    }
  }

  private timer?: NodeJS.Timeout;
}

/** The calls in flight on one upstream connection. */
export class RelayedCalls {
  private readonly calls = new Map<string, RelayedCall>();
  private next = 0;

  open(ctx: RequestContext): RelayedCall {
    const call = new RelayedCall(String(++this.next), ctx);
    this.calls.set(call.token, call);
    return call;
  }

  close(call: RelayedCall): void {
    call.dispose();
    this.calls.delete(call.token);
  }

  /**
   * The one call that may be speaking, if there is exactly one: a held call waits for its
   * client's retry, its upstream request blocked on the input it asked for, so it is not
   * counted.
   */
  private onlyActive(): RelayedCall | undefined {
    let only: RelayedCall | undefined;
    for (const call of this.calls.values()) {
      if (call.waitingForRetry) {
        continue;
      }
      if (only) {
        return undefined;
      }
      only = call;
    }
    return only;
  }

  /** How many calls are in flight. */
  get size(): number {
    return this.calls.size;
  }

  /** The call of a token (a relay tag or a progress token). */
  get(token: unknown): RelayedCall | undefined {
    return typeof token === 'string' ? this.calls.get(token) : undefined;
  }

  /**
   * The call a message from the upstream belongs to, by the tag in its params' `_meta`; and
   * the params without the tag. An untagged message goes to the only call in flight when
   * `onlyCall` says so (a transport without tags), else to none.
   */
  route(params: unknown, onlyCall: boolean): { call?: RelayedCall; params: JsonObject } {
    const clean = withoutTag(params);
    if (clean.token !== undefined) {
      return { call: this.calls.get(clean.token), params: clean.params };
    }
    const only = onlyCall ? this.onlyActive() : undefined;
    return { call: only, params: clean.params };
  }
}

function withoutTag(params: unknown): { token?: string; params: JsonObject } {
  if (typeof params !== 'object' || params === null || Array.isArray(params)) {
    return { params: {} };
  }
  const out = params as JsonObject;
  const meta = out._meta;
  if (typeof meta !== 'object' || meta === null || !(RELAY_META_KEY in meta)) {
    return { params: out };
  }
  const { [RELAY_META_KEY]: token, ...rest } = meta as JsonObject;
  const next: JsonObject = { ...out };
  if (Object.keys(rest).length > 0) {
    next._meta = rest;
  } else {
    delete next._meta;
  }
  return { token: typeof token === 'string' ? token : undefined, params: next };
}

/** The client capabilities an upstream may use to ask for input: the caller's, nothing more. */
export function inputCapabilities(caps: ClientCapabilities): JsonObject {
  const out: JsonObject = {};
  for (const key of ['sampling', 'elicitation', 'roots'] as const) {
    const value = caps[key];
    if (value !== undefined) {
      out[key] = value;
    }
  }
  return out;
}

/** Asks the caller's client for one input through its request context (either era). */
export function askClient(
  ctx: RequestContext,
  method: string,
  params: JsonObject,
  key?: string,
): Promise<JsonObject> {
  const options = key === undefined ? undefined : { key };
  switch (method as InputMethod) {
    case 'elicitation/create':
      return ctx.elicit(params as unknown as ElicitRequestParams, options);
    case 'sampling/createMessage':
      return ctx.createMessage(params as unknown as CreateMessageRequestParams, options);
    case 'roots/list':
      return ctx.listRoots(options);
    default:
      return Promise.reject(
        new McpError(ErrorCode.InvalidParams, `Unsupported input request: ${method}`),
      );
  }
}

/**
 * Answers the `inputRequests` of an upstream's `input_required` result through the caller's
 * context, under the upstream's keys. All are asked at once, so a 2026-07-28 caller gets them
 * in one input round of its own.
 */
export async function answerInputRequests(
  ctx: RequestContext,
  inputRequests: unknown,
): Promise<JsonObject> {
  if (typeof inputRequests !== 'object' || inputRequests === null) {
    return {};
  }
  const entries = Object.entries(inputRequests as Record<string, unknown>);
  const answers = await Promise.all(
    entries.map(([key, entry]) => {
      const request = (entry ?? {}) as { method?: unknown; params?: unknown };
      const params =
        typeof request.params === 'object' && request.params !== null
          ? (request.params as JsonObject)
          : {};
      return askClient(ctx, String(request.method), params, key);
    }),
  );
  return Object.fromEntries(entries.map(([key], i) => [key, answers[i]]));
}

/**
 * Tags the JSON-RPC requests and notifications (progress excepted: the SDK matches those by
 * token) of an SSE stream with `token` under RELAY_META_KEY, leaving every other byte as it
 * came. Only `data:` lines holding a whole message are touched.
 */
export class SseRelayTagger extends Transform {
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';

  constructor(private readonly token: string) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.emit_(this.decoder.write(chunk), false);
    done();
  }

  override _flush(done: TransformCallback): void {
    this.emit_(this.decoder.end(), true);
    done();
  }

  private emit_(text: string, final: boolean): void {
    const data = this.partial + text;
    const end = final ? data.length : data.lastIndexOf('\n') + 1;
    this.partial = data.slice(end);
    if (end === 0) {
      return;
    }
    const complete = data.slice(0, end);
    // Responses and keep-alive comments (nearly everything) pass untouched.
    this.push(
      complete.includes('"method"')
        ? complete
            .split('\n')
            .map((line) => tagLine(line, this.token))
            .join('\n')
        : complete,
    );
  }
}

function tagLine(line: string, token: string): string {
  const cr = line.endsWith('\r') ? '\r' : '';
  const body = cr ? line.slice(0, -1) : line;
  if (!body.startsWith('data:') || !body.includes('"method"')) {
    return line;
  }
  let message: unknown;
  try {
    message = JSON.parse(body.slice(5));
  } catch {
    return line;
  }
  if (typeof message !== 'object' || message === null || Array.isArray(message)) {
    return line;
  }
  const m = message as JsonObject;
  if (typeof m.method !== 'string' || m.method === 'notifications/progress') {
    return line;
  }
  const params =
    typeof m.params === 'object' && m.params !== null && !Array.isArray(m.params)
      ? (m.params as JsonObject)
      : {};
  const meta =
    typeof params._meta === 'object' && params._meta !== null ? (params._meta as JsonObject) : {};
  m.params = { ...params, _meta: { ...meta, [RELAY_META_KEY]: token } };
  return `data: ${JSON.stringify(m)}${cr}`;
}

/*
 * The one handler API both eras share. A handler asks for progress, logs, elicitation,
 * sampling or roots through its RequestContext; the era decides how that travels:
 * mid-call requests on a 2025-era session, or an `input_required` round trip in 2026-07-28.
 */
import type { Cancellation } from './cancellation';
import { ErrorCode, LogLevel, logLevelRank } from './constants';
import { JsonObject, JsonRpcMessage, McpError, RequestId } from './jsonrpc';
import type { Principal } from './catalog';
import type {
  ClientCapabilities,
  CreateMessageRequestParams,
  CreateMessageResult,
  ElicitRequestParams,
  ElicitResult,
  Implementation,
  ListRootsResult,
} from './types';

export type Era = 'modern' | 'legacy';

export type InputMethod = 'elicitation/create' | 'sampling/createMessage' | 'roots/list';

/** What happens to a 2025-era client session that a source may follow (see ClientSession). */
export type ClientSessionEvent = 'closed' | 'roots-changed';

/**
 * The 2025-era client session a request arrived on, reachable after that request ended. A
 * source that keeps per-session state elsewhere (an upstream session of its own for this
 * client) needs it: to pass on what arrives outside any request (logs, roots/list), to
 * hear the client's roots/list_changed, and to release that state when the session closes.
 */
export interface ClientSession {
  readonly id: string;
  readonly closed: boolean;
  /** Sends notifications/message on the session's standalone stream when its level admits it. */
  log(level: LogLevel, data: unknown, logger?: string): void;
  /**
   * Asks the client on the session's standalone stream (the client capability is checked
   * first). Rejects when no standalone stream is open, on timeout, or when the session closes.
   */
  request(method: InputMethod, params: JsonObject, signal?: AbortSignal): Promise<JsonObject>;
  /** Calls `listener` on `event` until the returned function is called. */
  on(event: ClientSessionEvent, listener: () => void): () => void;
}

/** Per-input options; `key` names the input in a 2026-07-28 inputRequests map. */
export interface InputOptions {
  readonly key?: string;
}

export interface RequestContext {
  readonly era: Era;
  readonly protocolVersion: string;
  readonly requestId: RequestId;
  readonly method: string;
  readonly clientCapabilities: ClientCapabilities;
  readonly clientInfo?: Implementation;
  readonly principal?: Principal;
  readonly sessionId?: string;
  /** The 2025-era session the request arrived on (absent for 2026-07-28 requests). */
  readonly session?: ClientSession;
  /** Aborted when the client cancels or goes away. */
  readonly signal: AbortSignal;
  /**
   * The trace context (an OpenTelemetry Context, opaque to the protocol) work for this request
   * runs under; spans started for it use this as their parent. It travels explicitly, not in
   * async-local storage, whose promise hooks cost every request on Node 20 whether or not it
   * is traced. Undefined when tracing is off or the request is not sampled. The gateway moves
   * it to a child span's context around work it traces (see `withTrace`).
   */
  trace?: unknown;
  /** Sends notifications/progress when the request carried a progress token; otherwise no-op. */
  progress(progress: number, total?: number, message?: string): Promise<void>;
  /** Sends notifications/message when the client's level admits it; otherwise no-op. */
  log(level: LogLevel, data: unknown, logger?: string): Promise<void>;
  elicit(params: ElicitRequestParams, options?: InputOptions): Promise<ElicitResult>;
  createMessage(
    params: CreateMessageRequestParams,
    options?: InputOptions,
  ): Promise<CreateMessageResult>;
  listRoots(options?: InputOptions): Promise<ListRootsResult>;
}

/** Where a request's own messages (progress, logs, mid-call requests) go. */
export interface RequestOutbound {
  send(message: JsonRpcMessage): void | Promise<void>;
}

/** How a context obtains client input: era-specific. */
export interface InputBroker {
  request(
    method: InputMethod,
    params: JsonObject,
    cancellation: Cancellation,
    key?: string,
  ): Promise<JsonObject>;
  /**
   * 2026-07-28 input rounds only: what the handler carried into the requestState of the
   * round this request answers (see carryIntoRetry), and the slot it fills for the next.
   */
  readonly carried?: string;
  carry?: string;
}

export function requiredCapability(
  method: InputMethod,
  params: JsonObject,
  caps: ClientCapabilities,
): string | undefined {
  switch (method) {
    case 'elicitation/create': {
      if (!caps.elicitation) {
        return 'elicitation';
      }
      if (params.mode === 'url' && !caps.elicitation.url) {
        return 'elicitation.url';
      }
      if (params.mode !== 'url' && caps.elicitation.url && !caps.elicitation.form) {
        // A client that declared only URL mode cannot render forms.
        return 'elicitation.form';
      }
      return undefined;
    }
    case 'sampling/createMessage':
      if (!caps.sampling) {
        return 'sampling';
      }
      if ((params.tools !== undefined || params.toolChoice !== undefined) && !caps.sampling.tools) {
        return 'sampling.tools';
      }
      return undefined;
    case 'roots/list':
      return caps.roots ? undefined : 'roots';
  }
}

/** -32021 with `requiredCapabilities` as a ClientCapabilities object, e.g. `{ sampling: {} }`. */
export function missingCapabilityError(capability: string): McpError {
  const required: JsonObject = {};
  let cursor = required;
  for (const part of capability.split('.')) {
    const next: JsonObject = {};
    cursor[part] = next;
    cursor = next;
  }
  return new McpError(
    ErrorCode.MissingClientCapability,
    `Missing client capability: ${capability}`,
    {
      requiredCapabilities: required,
    },
  );
}

export interface ContextInit {
  era: Era;
  protocolVersion: string;
  requestId: RequestId;
  method: string;
  clientCapabilities: ClientCapabilities;
  clientInfo?: Implementation;
  principal?: Principal;
  sessionId?: string;
  session?: ClientSession;
  cancellation: Cancellation;
  progressToken?: string | number;
  /** Minimum level the client wants; undefined = no log messages (modern) or all (legacy). */
  logLevel?: LogLevel;
  logsEnabled: boolean;
  outbound: RequestOutbound;
  broker: InputBroker;
  trace?: unknown;
}

export class HandlerContext implements RequestContext {
  readonly era: Era;
  readonly protocolVersion: string;
  readonly requestId: RequestId;
  readonly method: string;
  readonly clientCapabilities: ClientCapabilities;
  readonly clientInfo?: Implementation;
  readonly principal?: Principal;
  readonly sessionId?: string;
  readonly session?: ClientSession;
  trace?: unknown;
  private readonly cancellation: Cancellation;
  private lastProgress = Number.NEGATIVE_INFINITY;

  /** Where this context's input requests go (see carryIntoRetry). */
  get inputBroker(): InputBroker {
    return this.init.broker;
  }

  constructor(private readonly init: ContextInit) {
    this.era = init.era;
    this.protocolVersion = init.protocolVersion;
    this.requestId = init.requestId;
    this.method = init.method;
    this.clientCapabilities = init.clientCapabilities;
    this.clientInfo = init.clientInfo;
    this.principal = init.principal;
    this.sessionId = init.sessionId;
    this.session = init.session;
    this.trace = init.trace;
    this.cancellation = init.cancellation;
  }

  get signal(): AbortSignal {
    return this.cancellation.signal;
  }

  get cancelled(): boolean {
    return this.cancellation.cancelled;
  }

  async progress(progress: number, total?: number, message?: string): Promise<void> {
    const token = this.init.progressToken;
    // Progress must increase; a handler that repeats a value is not worth an error.
    if (token === undefined || this.cancellation.cancelled || !(progress > this.lastProgress)) {
      return;
    }
    this.lastProgress = progress;
    const params: JsonObject = { progressToken: token, progress };
    if (total !== undefined) {
      params.total = total;
    }
    if (message !== undefined) {
      params.message = message;
    }
    await this.init.outbound.send({ jsonrpc: '2.0', method: 'notifications/progress', params });
  }

  async log(level: LogLevel, data: unknown, logger?: string): Promise<void> {
    if (!this.init.logsEnabled || this.cancellation.cancelled) {
      return;
    }
    const min = this.init.logLevel;
    if (min !== undefined && logLevelRank(level) < logLevelRank(min)) {
      return;
    }
    const params: JsonObject = { level, data };
    if (logger !== undefined) {
      params.logger = logger;
    }
    await this.init.outbound.send({ jsonrpc: '2.0', method: 'notifications/message', params });
  }

  elicit(params: ElicitRequestParams, options?: InputOptions): Promise<ElicitResult> {
    return this.ask('elicitation/create', params, options) as Promise<ElicitResult>;
  }

  createMessage(
    params: CreateMessageRequestParams,
    options?: InputOptions,
  ): Promise<CreateMessageResult> {
    return this.ask(
      'sampling/createMessage',
      params,
      options,
    ) as unknown as Promise<CreateMessageResult>;
  }

  listRoots(options?: InputOptions): Promise<ListRootsResult> {
    return this.ask('roots/list', {}, options) as unknown as Promise<ListRootsResult>;
  }

  private ask(
    method: InputMethod,
    params: JsonObject,
    options?: InputOptions,
  ): Promise<JsonObject> {
    const missing = requiredCapability(method, params, this.clientCapabilities);
    if (missing !== undefined) {
      return Promise.reject(missingCapabilityError(missing));
    }
    return this.init.broker.request(method, params, this.cancellation, options?.key);
  }
}

/**
 * For a handler that unwinds for a 2026-07-28 input round but leaves work running (an upstream
 * call held open): `value` is sealed into the round's requestState, and the client's retry
 * finds it in `carriedFromRound`. The requestState is bound to the principal, the method, the
 * target and the arguments, and used once, so only that retry sees it. False where the request
 * has no such rounds (other eras, tasks): the handler then cannot count on a retry reaching it.
 */
export function carryIntoRetry(ctx: RequestContext, value: string): boolean {
  const broker = ctx instanceof HandlerContext ? ctx.inputBroker : undefined;
  if (!broker || !('carry' in broker)) {
    return false;
  }
  broker.carry = value;
  return true;
}

/** What the round this request answers carried (carryIntoRetry), if anything. */
export function carriedFromRound(ctx: RequestContext): string | undefined {
  return ctx instanceof HandlerContext ? ctx.inputBroker.carried : undefined;
}

/** Whether input asked through `ctx` may unwind it for a 2026-07-28 input round. */
export function inputRoundsOf(ctx: RequestContext): boolean {
  return ctx instanceof HandlerContext && 'carry' in ctx.inputBroker;
}

/**
 * Moves `ctx` under another trace context (a child span's): what is started with it from now
 * on nests there. A request's context belongs to one call chain (the engine makes one per
 * request), so nothing outside that chain sees the change. An assignment, not a copy: a view
 * made with Object.create would turn every context into a prototype, which V8 deoptimises.
 */
export function withTrace<T extends RequestContext>(ctx: T, trace: unknown): T {
  ctx.trace = trace;
  return ctx;
}

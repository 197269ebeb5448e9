/*
 * The protocol engine: validates and dispatches MCP requests of both eras against a
 * CatalogProvider. Transports hand it decoded JSON-RPC messages and an outbound channel for the
 * request's own stream; the engine never touches sockets, HTTP or timers beyond its own.
 */
import {
  ErrorCode,
  INPUT_REQUIRED_METHODS,
  LEGACY_PROTOCOL_VERSIONS,
  LegacyProtocolVersion,
  META,
  MODERN_PROTOCOL_VERSION,
  SUPPORTED_PROTOCOL_VERSIONS,
  isLogLevel,
  LogLevel,
  logLevelRank,
} from './constants';
import type {
  CatalogEvent,
  CatalogProvider,
  CatalogScope,
  Principal,
  ResourceHandler,
  ResourceRelease,
  ResourceTemplateHandler,
  ToolHandler,
} from './catalog';
import { Cancellation } from './cancellation';
import {
  ClientSession,
  ClientSessionEvent,
  HandlerContext,
  InputBroker,
  InputMethod,
  missingCapabilityError,
  RequestOutbound,
  requiredCapability,
} from './context';
import {
  Classified,
  JsonObject,
  JsonRpcMessage,
  JsonRpcRequest,
  JsonRpcResponse,
  McpError,
  RequestId,
  errorResponse,
  resultResponse,
  toErrorObject,
} from './jsonrpc';
import { checkParamHeaders, decodeHeaderValue } from './http-headers';
import { Paginator } from './pagination';
import {
  MemoryNonceStore,
  NonceStore,
  RequestStateSealer,
  SealedStatePayload,
  digestJson,
} from './request-state';
import { SchemaValidator } from './schema-validator';
import { LegacySession } from './session';
import {
  MemoryTaskStore,
  TASKS_EXTENSION,
  TaskManager,
  isTerminalStatus,
  legacyCreateTaskResult,
  legacyTask,
  legacyTaskResult,
  modernCreateTaskResult,
  modernDetailedTask,
  taskContext,
  type PrepareInit,
  type TaskWorkResumer,
  type TaskCaller,
  type TaskRecord,
  type TaskStore,
} from './tasks';
import type {
  CallToolResult,
  ClientCapabilities,
  Implementation,
  ReadResourceResult,
  ServerCapabilities,
} from './types';

export interface EngineOptions {
  serverInfo: Implementation;
  instructions?: string;
  catalog: CatalogProvider;
  /** Key material for requestState sealing and cursor authentication (≥ 16 bytes). */
  secret: Buffer | string;
  pageSize?: number;
  /** How long a 2025-era client has to answer a server-to-client request. */
  clientRequestTimeoutMs?: number;
  /** Lifetime of a sealed requestState. */
  requestStateTtlMs?: number;
  /** `ttlMs` advertised on list and read results (2026-07-28). */
  listTtlMs?: number;
  nonceStore?: NonceStore;
  /**
   * Where tasks live (default: this process's memory; a cluster needs a shared store). The
   * engine closes it in `closeTasks`.
   */
  taskStore?: TaskStore;
  /** How long a task and its result are kept (default one hour). */
  taskTtlMs?: number;
  /** The longest TTL a 2025-era client may ask for a task (default one day). */
  taskMaxTtlMs?: number;
  /** The polling interval suggested for tasks (default one second). */
  taskPollIntervalMs?: number;
  /** How long a node's unrenewed lease on its running tasks lasts (default 15 s). */
  taskLeaseMs?: number;
  /**
   * The most resource URIs one client may follow at once: a 2025-era session's
   * resources/subscribe, one subscriptions/listen stream's `resourceSubscriptions` (default
   * 1000). Each is a claim on the resource's provider (for a federated resource, an upstream
   * subscription), so an unbounded list would let one client grow the gateway's state.
   */
  maxResourceSubscriptions?: number;
  /** Takes over queued work of tasks whose node stopped (the tool-call queue). */
  taskWork?: TaskWorkResumer;
  /** Wraps the handling of every request, both eras, every transport (tracing hooks in here). */
  observer?: RequestObserver;
}

/** One request as a RequestObserver sees it, before it is handled. */
export interface ObservedRequest {
  readonly request: JsonRpcRequest;
  /** The negotiated version (2025 era), or the one the `_meta` envelope names (modern). */
  readonly protocolVersion?: string;
  /** The 2025-era session the request belongs to. */
  readonly sessionId?: string;
  readonly principal?: Principal;
  /** The trace context the transport runs the request under (its RequestIo's `trace`). */
  readonly trace?: unknown;
}

/**
 * Runs around the handling of each request: `handle` resolves to the response (an error
 * response for a failed request) or undefined when nothing is sent. An observer must call
 * `handle` exactly once and return what it resolves to; the trace context it passes becomes
 * the handler context's `trace`.
 */
export interface RequestObserver {
  observe(
    request: ObservedRequest,
    handle: (trace?: unknown) => Promise<JsonRpcResponse | undefined>,
  ): Promise<JsonRpcResponse | undefined>;
}

/** A request's context as the transport knows it. */
export interface RequestIo {
  /** Messages related to this request (progress, logs, mid-call requests). */
  outbound: RequestOutbound;
  /** Cancelled when the client goes away (2026-07-28 over HTTP) or cancels. */
  cancellation?: Cancellation;
  principal?: Principal;
  /**
   * The trace context (an OpenTelemetry Context, opaque here) the request runs under. Passed
   * explicitly, never through async-local storage: see RequestContext.trace.
   */
  trace?: unknown;
}

function withIoTrace(io: RequestIo, trace: unknown): RequestIo {
  return trace === undefined || trace === io.trace ? io : { ...io, trace };
}

/** Thrown by the modern input broker to unwind a handler that needs client input. */
const INPUT_REQUIRED = Symbol('input-required');

interface PendingInput {
  key: string;
  method: InputMethod;
  params: JsonObject;
}

const INPUT_KEY_PREFIX: Record<InputMethod, string> = {
  'elicitation/create': 'elicitation',
  'sampling/createMessage': 'sampling',
  'roots/list': 'roots',
};

/** Replays earlier answers in order; records what is still missing. */
class ReplayBroker implements InputBroker {
  readonly pending: PendingInput[] = [];
  readonly used: { k: string; v: unknown }[] = [];
  /** Set by the handler: sealed into the next round's requestState. */
  carry: string | undefined = undefined;
  private index = 0;

  constructor(
    private readonly answers: ReadonlyMap<string, unknown>,
    /** What the handler carried into the round this request answers. */
    readonly carried?: string,
  ) {}

  request(
    method: InputMethod,
    params: JsonObject,
    _cancellation?: Cancellation,
    named?: string,
  ): Promise<JsonObject> {
    // The generated index advances either way so unnamed keys stay stable.
    const generated = `${INPUT_KEY_PREFIX[method]}-${this.index++}`;
    const key = named ?? generated;
    if (this.answers.has(key)) {
      const value = this.answers.get(key);
      this.used.push({ k: key, v: value });
      return Promise.resolve(value as JsonObject);
    }
    this.pending.push({ key, method, params });
    return Promise.reject(INPUT_REQUIRED);
  }
}

/** What serves a resource URI: its resource, or the first template it is an instance of. */
type ResourceProvider = ResourceHandler | ResourceTemplateHandler;

const NO_RELEASE: ResourceRelease = () => undefined;

/** One subscriber's claim on the handler serving one URI. */
class ResourceClaim {
  /** Settles once the handler listens or gave up (never rejects). */
  readonly ready: Promise<void>;
  private release?: ResourceRelease;
  private dropped = false;

  constructor(
    readonly handler: ResourceProvider | undefined,
    uri: string,
    session?: ClientSession,
  ) {
    this.ready = handler?.subscribe
      ? Promise.resolve()
          .then(() => handler.subscribe?.(uri, session) ?? NO_RELEASE)
          .then(
            (release) => {
              if (this.dropped) {
                release();
              } else {
                this.release = release;
              }
            },
            // The provider reports its own failures; the subscription stands without updates.
            () => undefined,
          )
      : Promise.resolve();
  }

  drop(): void {
    this.dropped = true;
    const release = this.release;
    this.release = undefined;
    release?.();
  }
}

/**
 * The resources one subscriber (a 2025-era session, or one subscriptions/listen stream) is
 * subscribed to, each claimed once on the handler that serves it, so that providers which
 * must ask for updates (upstream servers) keep asking while someone listens. URIs no handler
 * serves stay subscribed, unclaimed: `refresh` claims them once they appear.
 */
class ResourceInterest {
  private readonly claims = new Map<string, Promise<ResourceClaim>>();
  private closed = false;

  /** `session`: the 2025-era session subscribing, if the subscriber is one. */
  constructor(
    private readonly resolve: (uri: string) => Promise<ResourceProvider | undefined>,
    private readonly session?: ClientSession,
  ) {}

  /** Claims `uri` unless already claimed; settles once its handler listens or gave up. */
  add(uri: string): Promise<void> {
    if (this.closed) {
      return Promise.resolve();
    }
    let claim = this.claims.get(uri);
    if (!claim) {
      claim = this.claim(uri);
      this.claims.set(uri, claim);
    }
    return claim.then((c) => c.ready);
  }

  delete(uri: string): void {
    const claim = this.claims.get(uri);
    this.claims.delete(uri);
    void claim?.then((c) => c.drop());
  }

  /**
   * Claims each URI again on the handler that serves it now, then releases the old claim:
   * a rebuilt catalog or re-read lists serve it through other handlers (or through one at last).
   */
  async refresh(): Promise<void> {
    await Promise.all(
      [...this.claims].map(async ([uri, held]) => {
        const [previous, handler] = await Promise.all([
          held,
          this.resolve(uri).catch(() => undefined),
        ]);
        if (handler === previous.handler || this.claims.get(uri) !== held) {
          return;
        }
        const next = new ResourceClaim(handler, uri, this.session);
        this.claims.set(uri, Promise.resolve(next));
        previous.drop();
        await next.ready;
      }),
    );
  }

  /** Releases everything; later adds are ignored (the subscriber is gone). */
  clear(): void {
    this.closed = true;
    for (const uri of [...this.claims.keys()]) {
      this.delete(uri);
    }
  }

  private claim(uri: string): Promise<ResourceClaim> {
    return this.resolve(uri).then(
      (handler) => new ResourceClaim(handler, uri, this.session),
      () => new ResourceClaim(undefined, uri),
    );
  }
}

const VERSION_AT_LEAST = (version: string, min: string): boolean => version >= min;

const LIST_METHODS = new Set([
  'tools/list',
  'resources/list',
  'resources/templates/list',
  'prompts/list',
  'resources/read',
]);

/** Methods a 2025-era session accepts before `notifications/initialized`. */
const PRE_INITIALIZED = new Set(['ping', 'logging/setLevel']);

/** The task methods of the tasks extension (2026-07-28); their `Mcp-Name` is the task id. */
const MODERN_TASK_METHODS = new Set(['tasks/get', 'tasks/update', 'tasks/cancel']);

/** The experimental task methods of 2025-11-25. */
const LEGACY_TASK_METHODS = new Set(['tasks/get', 'tasks/result', 'tasks/list', 'tasks/cancel']);

/** The first 2025-era revision with (experimental) tasks. */
const TASKS_LEGACY_VERSION = '2025-11-25';

const LEGACY_TASK_CAPABILITY = { list: {}, cancel: {}, requests: { tools: { call: {} } } };

/** Results that are task handles, which the result decoration must leave alone. */
const CREATED_TASKS = new WeakSet<JsonObject>();

export class McpEngine {
  readonly capabilities: ServerCapabilities = {
    tools: { listChanged: true },
    resources: { subscribe: true, listChanged: true },
    prompts: { listChanged: true },
    logging: {},
    completions: {},
  };
  private readonly catalog: CatalogProvider;
  private readonly validator = new SchemaValidator();
  private readonly sealer: RequestStateSealer;
  private readonly paginator: Paginator;
  private readonly nonces: NonceStore;
  private readonly serverInfoMeta: JsonObject;
  private readonly clientRequestTimeoutMs: number;
  private readonly maxResourceSubscriptions: number;
  private readonly stateTtlMs: number;
  private readonly listTtlMs: number;
  private readonly listeners = new Set<() => void>();
  /** The resources each live 2025-era session subscribed to, claimed on their handlers. */
  private readonly sessionInterest = new WeakMap<LegacySession, ResourceInterest>();
  /** What handlers see of each live 2025-era session beyond their own request. */
  private readonly sessionViews = new WeakMap<LegacySession, LegacyClientSession>();
  private closing = false;
  /** Tool calls running as tasks, and the task methods of both eras. */
  private readonly tasks: TaskManager;

  constructor(private readonly options: EngineOptions) {
    this.catalog = options.catalog;
    const secret =
      typeof options.secret === 'string' ? Buffer.from(options.secret) : options.secret;
    this.sealer = new RequestStateSealer(secret);
    this.paginator = new Paginator(options.pageSize ?? 50, secret);
    this.nonces = options.nonceStore ?? new MemoryNonceStore();
    this.serverInfoMeta = { [META.serverInfo]: options.serverInfo };
    this.clientRequestTimeoutMs = options.clientRequestTimeoutMs ?? 60_000;
    this.maxResourceSubscriptions = options.maxResourceSubscriptions ?? 1000;
    this.stateTtlMs = options.requestStateTtlMs ?? 10 * 60_000;
    this.listTtlMs = options.listTtlMs ?? 0;
    this.tasks = new TaskManager({
      store: options.taskStore ?? new MemoryTaskStore(),
      ttlMs: options.taskTtlMs,
      maxTtlMs: options.taskMaxTtlMs,
      pollIntervalMs: options.taskPollIntervalMs,
      leaseMs: options.taskLeaseMs,
      work: options.taskWork,
    });
  }

  get serverInfo(): Implementation {
    return this.options.serverInfo;
  }

  /** Pre-compiles every tool's input schema so the first call pays nothing. */
  async warm(scope: CatalogScope = {}): Promise<void> {
    for (const tool of await this.catalog.listTools(scope)) {
      this.validator.compile(tool.definition.inputSchema);
      if (tool.definition.outputSchema) {
        this.validator.compile(tool.definition.outputSchema);
      }
    }
  }

  /** Ends open `subscriptions/listen` streams gracefully. */
  close(): void {
    this.closing = true;
    for (const listener of [...this.listeners]) {
      listener();
    }
  }

  /**
   * Stops running tasks: gives them up to `graceMs` to finish, then marks them failed, so their
   * clients stop polling work no node is doing; then closes the task store.
   */
  closeTasks(graceMs = 0): Promise<void> {
    return this.tasks.close(graceMs);
  }

  // ---------------------------------------------------------------------------------------
  // 2026-07-28: stateless requests

  /**
   * Serves one stateless request. Resolves to the response, or undefined when the request
   * was cancelled (its stream closed) and nothing must be sent.
   */
  handleModern(
    request: JsonRpcRequest,
    io: RequestIo,
    validated?: ModernEnvelope,
  ): Promise<JsonRpcResponse | undefined> {
    const observer = this.options.observer;
    if (!observer) {
      return this.serveModern(request, io, validated);
    }
    const meta = request.params?._meta as JsonObject | undefined;
    const version = validated?.protocolVersion ?? meta?.[META.protocolVersion];
    return observer.observe(
      {
        request,
        protocolVersion: typeof version === 'string' ? version : undefined,
        principal: io.principal,
        trace: io.trace,
      },
      (trace) => this.serveModern(request, withIoTrace(io, trace), validated),
    );
  }

  private async serveModern(
    request: JsonRpcRequest,
    io: RequestIo,
    validated?: ModernEnvelope,
  ): Promise<JsonRpcResponse | undefined> {
    const cancellation = io.cancellation ?? new Cancellation();
    try {
      let envelope = validated;
      if (!envelope) {
        envelope = this.readEnvelope(request);
        this.assertSupportedVersion(envelope);
      }
      const result = await untilCancelled(
        this.dispatchModern(request, envelope, io, cancellation),
        cancellation,
      );
      if (result === undefined || cancellation.cancelled) {
        return undefined;
      }
      return resultResponse(request.id, result);
    } catch (err) {
      if (cancellation.cancelled) {
        return undefined;
      }
      return errorResponse(request.id, toErrorObject(err));
    }
  }

  /**
   * Reads the `_meta` envelope of a 2026-07-28 request: required keys and their types (-32602).
   * The version itself is checked by `assertSupportedVersion`, after transports compared it with
   * their headers (the order the spec's validation rules require).
   */
  readEnvelope(request: JsonRpcRequest): ModernEnvelope {
    const meta = request.params?._meta;
    if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) {
      throw McpError.invalidParams(
        `Invalid params: missing _meta keys: ${META.protocolVersion}, ${META.clientCapabilities}`,
      );
    }
    const m = meta as JsonObject;
    const version = m[META.protocolVersion];
    const caps = m[META.clientCapabilities];
    const missing: string[] = [];
    if (typeof version !== 'string') {
      missing.push(META.protocolVersion);
    }
    if (typeof caps !== 'object' || caps === null || Array.isArray(caps)) {
      missing.push(META.clientCapabilities);
    }
    if (missing.length > 0) {
      throw McpError.invalidParams(`Invalid params: missing _meta keys: ${missing.join(', ')}`);
    }
    const info = m[META.clientInfo];
    if (info !== undefined && (typeof info !== 'object' || info === null || Array.isArray(info))) {
      throw McpError.invalidParams(`_meta["${META.clientInfo}"] must be an object`);
    }
    const logLevel = m[META.logLevel];
    if (logLevel !== undefined && !isLogLevel(logLevel)) {
      throw McpError.invalidParams(`_meta["${META.logLevel}"] is not a log level`);
    }
    return {
      protocolVersion: version as string,
      clientCapabilities: caps as ClientCapabilities,
      clientInfo: info as Implementation | undefined,
      logLevel,
      progressToken: progressTokenOf(m),
    };
  }

  /**
   * -32020 when a tools/call's `Mcp-Param-*` headers disagree with its arguments
   * (tools that declare `x-mcp-header`); undefined otherwise, including for unknown tools.
   */
  async checkParamHeaders(
    request: JsonRpcRequest,
    header: (lowerCaseName: string) => string | undefined,
    principal?: Principal,
  ): Promise<McpError | undefined> {
    if (MODERN_TASK_METHODS.has(request.method)) {
      return checkTaskNameHeader(request, header);
    }
    if (request.method !== 'tools/call' || typeof request.params?.name !== 'string') {
      return undefined;
    }
    const tool = await this.catalog.getTool(request.params.name, { principal });
    const args = request.params.arguments;
    if (!tool || typeof args !== 'object' || args === null || Array.isArray(args)) {
      return undefined;
    }
    return checkParamHeaders(tool.definition, args as JsonObject, header);
  }

  /** -32022 unless the envelope names the revision this engine serves statelessly. */
  assertSupportedVersion(envelope: ModernEnvelope): void {
    if (envelope.protocolVersion !== MODERN_PROTOCOL_VERSION) {
      throw new McpError(
        ErrorCode.UnsupportedProtocolVersion,
        `Unsupported protocol version: ${envelope.protocolVersion}`,
        { supported: [MODERN_PROTOCOL_VERSION], requested: envelope.protocolVersion },
      );
    }
  }

  private async dispatchModern(
    request: JsonRpcRequest,
    envelope: ModernEnvelope,
    io: RequestIo,
    cancellation: Cancellation,
  ): Promise<JsonObject | undefined> {
    const params = request.params ?? {};
    const method = request.method;
    if (method === 'server/discover') {
      return this.decorateModern(method, {
        supportedVersions: SUPPORTED_PROTOCOL_VERSIONS,
        capabilities: this.modernCapabilities(),
        ...(this.options.instructions ? { instructions: this.options.instructions } : {}),
        ttlMs: this.listTtlMs,
        cacheScope: 'private',
      });
    }
    if (method === 'subscriptions/listen') {
      return this.listen(request, io, cancellation, envelope);
    }
    if (MODERN_TASK_METHODS.has(method)) {
      return this.modernTaskMethod(method, params, envelope, io.principal);
    }
    if (!MODERN_METHODS.has(method)) {
      throw McpError.methodNotFound(method);
    }

    const answers = new Map<string, unknown>();
    let state: SealedStatePayload | undefined;
    const target = targetOf(method, params);
    if (
      INPUT_REQUIRED_METHODS.has(method) &&
      (params.requestState !== undefined || params.inputResponses !== undefined)
    ) {
      state = await this.openState(params, method, target, io.principal);
      for (const entry of state?.r ?? []) {
        answers.set(entry.k, entry.v);
      }
      const responses = params.inputResponses;
      if (responses !== undefined) {
        if (typeof responses !== 'object' || responses === null || Array.isArray(responses)) {
          throw McpError.invalidParams('inputResponses must be an object');
        }
        for (const [key, value] of Object.entries(responses as JsonObject)) {
          if (state && !state.q.includes(key)) {
            continue;
          }
          if (typeof value !== 'object' || value === null) {
            throw McpError.invalidParams(`inputResponses["${key}"] must be an object`);
          }
          answers.set(key, value);
        }
      }
    }
    const broker = new ReplayBroker(answers, state?.h);
    const ctx = new HandlerContext({
      era: 'modern',
      protocolVersion: envelope.protocolVersion,
      requestId: request.id,
      method,
      clientCapabilities: envelope.clientCapabilities,
      clientInfo: envelope.clientInfo,
      principal: io.principal,
      cancellation,
      progressToken: envelope.progressToken,
      logLevel: envelope.logLevel,
      logsEnabled: envelope.logLevel !== undefined,
      outbound: io.outbound,
      broker,
      trace: io.trace,
    });
    let result: JsonObject;
    try {
      result =
        method === 'tools/call'
          ? await this.callToolModern(params, ctx, envelope, cancellation, broker)
          : await this.execute(method, params, ctx);
    } catch (err) {
      if (err !== INPUT_REQUIRED && broker.pending.length === 0) {
        throw err;
      }
      result = {};
    }
    if (broker.pending.length > 0) {
      return this.inputRequired(broker, method, target, params, io.principal);
    }
    if (CREATED_TASKS.has(result)) {
      return result;
    }
    return this.decorateModern(method, result);
  }

  /** tasks/get, tasks/update and tasks/cancel (2026-07-28), for clients with the extension. */
  private async modernTaskMethod(
    method: string,
    params: JsonObject,
    envelope: ModernEnvelope,
    principal: Principal | undefined,
  ): Promise<JsonObject> {
    if (!declaresTasks(envelope.clientCapabilities)) {
      throw missingTasksExtension();
    }
    const caller: TaskCaller = { principal };
    switch (method) {
      case 'tasks/get':
        return this.decorateModern(
          method,
          modernDetailedTask(await this.tasks.get(params.taskId, caller)),
        );
      case 'tasks/update':
        // An acknowledgement only: the task's new state shows on the next tasks/get.
        await this.tasks.update(params.taskId, caller, params.inputResponses);
        return this.decorateModern(method, {});
      default:
        // Cancelling a terminal task is acknowledged the same way (idempotent).
        await this.tasks.cancel(params.taskId, caller);
        return this.decorateModern(method, {});
    }
  }

  /**
   * tools/call (2026-07-28): a task when the tool supports tasks and the request declares the
   * extension (the server decides; clients send no hint), synchronous otherwise.
   */
  private async callToolModern(
    params: JsonObject,
    ctx: HandlerContext,
    envelope: ModernEnvelope,
    cancellation: Cancellation,
    broker: ReplayBroker,
  ): Promise<JsonObject> {
    const call = await this.prepareToolCall(params, {
      principal: ctx.principal,
      trace: ctx.trace,
    });
    if ('result' in call) {
      return call.result;
    }
    const support = call.tool.definition.execution?.taskSupport;
    if (support !== 'optional' && support !== 'required') {
      return this.invokeTool(call.tool, call.args, ctx);
    }
    if (!declaresTasks(envelope.clientCapabilities)) {
      if (support === 'required') {
        throw missingTasksExtension();
      }
      return this.invokeTool(call.tool, call.args, ctx);
    }
    return this.runAsTask(call, ctx, {
      era: 'modern',
      deferrable: true,
      preTask: broker,
      requestCancellation: cancellation,
      caller: { principal: ctx.principal },
    });
  }

  /**
   * Starts a tool call that may become a task and answers with the task handle as soon as the
   * task exists; the call runs on detached from the request. A handler that gathers input
   * first (`beforeTask`) is answered like any call until it is ready, and may even finish
   * before that (then its result is the answer).
   */
  private async runAsTask(
    call: PreparedToolCall,
    ctx: HandlerContext,
    init: PrepareInit,
  ): Promise<JsonObject> {
    const launch = this.tasks.prepare(init);
    const work = this.invokeTool(call.tool, call.args, taskContext(ctx, launch));
    if (launch.decide()) {
      const first = await Promise.race([
        work.then(
          (result) => ({ result }),
          (error: unknown) => ({ error }),
        ),
        launch.begun.then(() => undefined),
      ]);
      if (first !== undefined && !launch.isTask) {
        launch.abandon();
        if ('error' in first) {
          throw first.error;
        }
        return first.result;
      }
    }
    let task: TaskRecord;
    try {
      task = await launch.begin();
    } catch (err) {
      work.catch(() => undefined);
      launch.abandon(err);
      throw err;
    }
    this.tasks.track(launch, work);
    const created =
      init.era === 'modern'
        ? { ...modernCreateTaskResult(task), _meta: this.serverInfoMeta }
        : legacyCreateTaskResult(task);
    CREATED_TASKS.add(created);
    return created;
  }

  private async openState(
    params: JsonObject,
    method: string,
    target: string,
    principal: Principal | undefined,
  ): Promise<SealedStatePayload | undefined> {
    if (params.requestState === undefined) {
      return undefined;
    }
    const state = this.sealer.open(params.requestState);
    if (
      state.p !== (principal?.id ?? '') ||
      state.m !== method ||
      state.t !== target ||
      state.a !== digestJson(argumentsOf(method, params))
    ) {
      throw McpError.invalidParams('Invalid requestState: it belongs to another request');
    }
    if (state.e < Date.now()) {
      throw McpError.invalidParams('Invalid requestState: expired');
    }
    if (!(await this.nonces.consume(state.n, state.e))) {
      throw McpError.invalidParams('Invalid requestState: already used');
    }
    return state;
  }

  private inputRequired(
    broker: ReplayBroker,
    method: string,
    target: string,
    params: JsonObject,
    principal: Principal | undefined,
  ): JsonObject {
    const inputRequests: JsonObject = {};
    for (const p of broker.pending) {
      inputRequests[p.key] = { method: p.method, params: p.params };
    }
    const payload: SealedStatePayload = {
      p: principal?.id ?? '',
      m: method,
      t: target,
      a: digestJson(argumentsOf(method, params)),
      e: Date.now() + this.stateTtlMs,
      n: digestJson([Date.now(), Math.random(), process.hrtime.bigint().toString()]),
      r: broker.used,
      q: broker.pending.map((p) => p.key),
      ...(broker.carry !== undefined && { h: broker.carry }),
    };
    return {
      resultType: 'input_required',
      inputRequests,
      requestState: this.sealer.seal(payload),
      _meta: this.serverInfoMeta,
    };
  }

  /**
   * Adds the 2026-07-28 result fields to a copy: handlers may return shared objects. A plain
   * loop, because object spread takes a slow path in V8 here (about 100x, measured).
   */
  private decorateModern(method: string, result: JsonObject): JsonObject {
    const decorated: JsonObject = { resultType: 'complete', _meta: this.serverInfoMeta };
    for (const key in result) {
      if (key !== '_meta' && key !== 'resultType') {
        decorated[key] = result[key];
      }
    }
    const meta = result._meta;
    if (typeof meta === 'object' && meta !== null) {
      decorated._meta = Object.assign({}, meta, this.serverInfoMeta);
    }
    if (LIST_METHODS.has(method)) {
      decorated.ttlMs ??= this.listTtlMs;
      decorated.cacheScope ??= 'private';
    }
    return decorated;
  }

  private listen(
    request: JsonRpcRequest,
    io: RequestIo,
    cancellation: Cancellation,
    envelope: ModernEnvelope,
    ownedTaskIds?: string[],
  ): Promise<JsonObject | undefined> {
    const filter = request.params?.notifications;
    if (typeof filter !== 'object' || filter === null || Array.isArray(filter)) {
      throw McpError.invalidParams('subscriptions/listen requires params.notifications');
    }
    const f = filter as JsonObject;
    if (f.taskIds !== undefined && ownedTaskIds === undefined) {
      // Task ids need an ownership check first; everything else is subscribed synchronously.
      return this.listenedTasks(f.taskIds, envelope, io.principal).then((owned) =>
        this.listen(request, io, cancellation, envelope, owned),
      );
    }
    const taskIds = ownedTaskIds ?? [];
    const uris = Array.isArray(f.resourceSubscriptions)
      ? [...new Set(f.resourceSubscriptions.filter((u): u is string => typeof u === 'string'))]
      : [];
    if (uris.length > this.maxResourceSubscriptions) {
      throw McpError.invalidParams(
        `notifications.resourceSubscriptions lists ${uris.length} URIs; ` +
          `at most ${this.maxResourceSubscriptions} may be followed on one stream`,
      );
    }
    const agreed: JsonObject = {};
    if (f.toolsListChanged === true) {
      agreed.toolsListChanged = true;
    }
    if (f.promptsListChanged === true) {
      agreed.promptsListChanged = true;
    }
    if (f.resourcesListChanged === true) {
      agreed.resourcesListChanged = true;
    }
    if (uris.length > 0) {
      agreed.resourceSubscriptions = uris;
    }
    if (taskIds.length > 0) {
      agreed.taskIds = taskIds;
    }
    const subscriptionId = request.id;
    const tag = { [META.subscriptionId]: subscriptionId };
    const emit = (method: string, params: JsonObject): void => {
      void Promise.resolve(
        io.outbound.send({ jsonrpc: '2.0', method, params: { ...params, _meta: tag } }),
      ).catch(() => undefined);
    };
    // The acknowledgement waits until the providers of the URIs listen, so that every update
    // after it arrives; whatever happens meanwhile is held back and follows it, in order.
    const interest = new ResourceInterest((uri) =>
      this.findResource(uri, { principal: io.principal }),
    );
    let held: (() => void)[] | undefined = uris.length > 0 ? [] : undefined;
    const send = (method: string, params: JsonObject): void => {
      if (held) {
        held.push(() => emit(method, params));
      } else {
        emit(method, params);
      }
    };
    const acknowledged = held
      ? Promise.all(uris.map((uri) => interest.add(uri))).then(() => {
          emit('notifications/subscriptions/acknowledged', { notifications: agreed });
          const pending = held ?? [];
          held = undefined;
          pending.forEach((flush) => flush());
        })
      : undefined;
    if (!acknowledged) {
      emit('notifications/subscriptions/acknowledged', { notifications: agreed });
    }
    const watched = new Set(uris);
    return new Promise<JsonObject | undefined>((resolve) => {
      const onEvent = (event: CatalogEvent): void => {
        if (event.type === 'resources-changed' && watched.size > 0) {
          void interest.refresh();
        }
        switch (event.type) {
          case 'tools-changed':
            if (agreed.toolsListChanged) {
              send('notifications/tools/list_changed', {});
            }
            break;
          case 'prompts-changed':
            if (agreed.promptsListChanged) {
              send('notifications/prompts/list_changed', {});
            }
            break;
          case 'resources-changed':
            if (agreed.resourcesListChanged) {
              send('notifications/resources/list_changed', {});
            }
            break;
          case 'resource-updated':
            if (watched.has(event.uri)) {
              send('notifications/resources/updated', { uri: event.uri });
            }
            break;
        }
      };
      const unwatch = this.catalog.watch(onEvent, { principal: io.principal });
      const unwatchTasks = taskIds.map((taskId) =>
        this.tasks.watch(taskId, (signal) => {
          if (signal.type === 'changed') {
            void this.pushTaskStatus(taskId, io.principal, send);
          }
        }),
      );
      const finish = (graceful: boolean): void => {
        unwatch();
        interest.clear();
        for (const unwatchTask of unwatchTasks) {
          unwatchTask();
        }
        this.listeners.delete(onClose);
        undoCancel();
        const result: JsonObject | undefined = graceful
          ? { resultType: 'complete', _meta: { ...this.serverInfoMeta, ...tag } }
          : undefined;
        // A graceful end still comes after the acknowledgement.
        resolve(acknowledged && graceful ? acknowledged.then(() => result) : result);
      };
      let undoCancel = (): void => undefined;
      const onClose = (): void => finish(true);
      if (cancellation.cancelled || this.closing) {
        return finish(!cancellation.cancelled);
      }
      undoCancel = cancellation.onCancel(() => finish(false));
      this.listeners.add(onClose);
    });
  }

  /**
   * The task ids a `subscriptions/listen` may follow: the caller's own (others are left out of
   * the acknowledgement, like unknown ones). Asking without the tasks extension is -32021.
   */
  private async listenedTasks(
    requested: unknown,
    envelope: ModernEnvelope,
    principal: Principal | undefined,
  ): Promise<string[]> {
    if (requested === undefined) {
      return [];
    }
    if (!Array.isArray(requested) || !requested.every((id) => typeof id === 'string')) {
      throw McpError.invalidParams('notifications.taskIds must be an array of task ids');
    }
    if (requested.length > 0 && !declaresTasks(envelope.clientCapabilities)) {
      throw missingTasksExtension();
    }
    const owned = await Promise.all(
      requested.map((taskId: string) =>
        this.tasks.get(taskId, { principal }).then(
          () => taskId,
          () => undefined,
        ),
      ),
    );
    return [...new Set(owned.filter((taskId) => taskId !== undefined))];
  }

  /** `notifications/tasks` on a listen stream: the task as tasks/get would show it now. */
  private async pushTaskStatus(
    taskId: string,
    principal: Principal | undefined,
    send: (method: string, params: JsonObject) => void,
  ): Promise<void> {
    const task = await this.tasks.get(taskId, { principal }).catch(() => undefined);
    if (task) {
      send('notifications/tasks', modernDetailedTask(task));
    }
  }

  // ---------------------------------------------------------------------------------------
  // 2025 era: sessions

  /** Negotiates a 2025-era `initialize`. Throws McpError for a malformed request. */
  initialize(
    request: JsonRpcRequest,
    sessionId: string,
    principal?: Principal,
  ): { session: LegacySession; result: JsonObject } {
    const params = request.params ?? {};
    const requested = params.protocolVersion;
    if (typeof requested !== 'string') {
      throw McpError.invalidParams('initialize requires protocolVersion');
    }
    const caps = params.capabilities;
    if (typeof caps !== 'object' || caps === null || Array.isArray(caps)) {
      throw McpError.invalidParams('initialize requires capabilities');
    }
    const info = params.clientInfo;
    if (typeof info !== 'object' || info === null || Array.isArray(info)) {
      throw McpError.invalidParams('initialize requires clientInfo');
    }
    const version: LegacyProtocolVersion = (LEGACY_PROTOCOL_VERSIONS as readonly string[]).includes(
      requested,
    )
      ? (requested as LegacyProtocolVersion)
      : LEGACY_PROTOCOL_VERSIONS[0];
    const session = new LegacySession({
      id: sessionId,
      protocolVersion: version,
      clientCapabilities: caps as ClientCapabilities,
      clientInfo: info as Implementation,
      principal,
    });
    const result: JsonObject = {
      protocolVersion: version,
      capabilities: this.legacyCapabilities(version),
      serverInfo: this.options.serverInfo,
    };
    if (this.options.instructions) {
      result.instructions = this.options.instructions;
    }
    return { session, result };
  }

  private legacyCapabilities(version: string): ServerCapabilities {
    if (VERSION_AT_LEAST(version, TASKS_LEGACY_VERSION)) {
      return { ...this.capabilities, tasks: LEGACY_TASK_CAPABILITY };
    }
    if (VERSION_AT_LEAST(version, '2025-03-26')) {
      return this.capabilities;
    }
    const { completions: _omit, ...rest } = this.capabilities;
    return rest;
  }

  /** 2026-07-28 advertises tasks as an extension, never as the 2025-era `tasks` capability. */
  private modernCapabilities(): ServerCapabilities {
    return {
      ...this.capabilities,
      extensions: { ...this.capabilities.extensions, [TASKS_EXTENSION]: {} },
    };
  }

  /**
   * Serves one message on an established 2025-era session. Resolves to the response for a
   * request, or undefined for notifications, responses and cancelled requests.
   */
  async handleSession(
    session: LegacySession,
    classified: Classified,
    io: RequestIo,
  ): Promise<JsonRpcResponse | undefined> {
    switch (classified.kind) {
      case 'invalid':
        if (classified.responseTo !== undefined) {
          // A malformed answer to one of our requests: fail that request now, answer nothing.
          if (classified.responseTo !== null) {
            session.resolveResponse(
              errorResponse(classified.responseTo, {
                code: ErrorCode.InvalidRequest,
                message: `Malformed response from the client: ${classified.error.message}`,
              }),
            );
          }
          return undefined;
        }
        return errorResponse(classified.id, classified.error);
      case 'response':
        session.resolveResponse(classified.message);
        return undefined;
      case 'notification':
        this.sessionNotification(
          session,
          classified.message.method,
          classified.message.params ?? {},
        );
        return undefined;
      case 'request': {
        const observer = this.options.observer;
        const request = classified.message;
        if (!observer) {
          return this.sessionRequest(session, request, io);
        }
        return observer.observe(
          {
            request,
            protocolVersion: session.protocolVersion,
            sessionId: session.id,
            principal: session.principal,
            trace: io.trace,
          },
          (trace) => this.sessionRequest(session, request, withIoTrace(io, trace)),
        );
      }
    }
  }

  private sessionNotification(session: LegacySession, method: string, params: JsonObject): void {
    session.lastActivity = Date.now();
    if (method === 'notifications/initialized') {
      session.initialized = true;
    } else if (method === 'notifications/cancelled') {
      const id = params.requestId;
      if (typeof id === 'string' || typeof id === 'number') {
        session.cancel(id, typeof params.reason === 'string' ? params.reason : undefined);
      }
    } else if (method === 'notifications/roots/list_changed') {
      // Sources that keep state for this session upstream pass the change on.
      this.sessionViews.get(session)?.emit('roots-changed');
    }
    // Other client notifications (progress) need no answer here.
  }

  private async sessionRequest(
    session: LegacySession,
    request: JsonRpcRequest,
    io: RequestIo,
  ): Promise<JsonRpcResponse | undefined> {
    let cancellation: Cancellation;
    try {
      cancellation = session.begin(request.id);
    } catch (err) {
      return errorResponse(request.id, toErrorObject(err));
    }
    const unlink = io.cancellation?.onCancel((reason) => cancellation.cancel(reason));
    try {
      const result = await untilCancelled(
        this.dispatchLegacy(session, request, io, cancellation),
        cancellation,
      );
      if (result === undefined || cancellation.cancelled) {
        return undefined;
      }
      return resultResponse(request.id, result);
    } catch (err) {
      if (cancellation.cancelled) {
        return undefined;
      }
      return errorResponse(request.id, toErrorObject(err));
    } finally {
      unlink?.();
      session.end(request.id, cancellation);
    }
  }

  private async dispatchLegacy(
    session: LegacySession,
    request: JsonRpcRequest,
    io: RequestIo,
    cancellation: Cancellation,
  ): Promise<JsonObject> {
    const method = request.method;
    const params = request.params ?? {};
    if (method === 'ping') {
      return {};
    }
    if (method === 'initialize') {
      throw McpError.invalidRequest('Session already initialized');
    }
    if (!session.initialized && !PRE_INITIALIZED.has(method)) {
      throw McpError.invalidRequest(
        'Session not initialized: send notifications/initialized first',
      );
    }
    switch (method) {
      case 'logging/setLevel': {
        if (!isLogLevel(params.level)) {
          throw McpError.invalidParams('level must be a log level');
        }
        session.logLevel = params.level;
        return {};
      }
      case 'resources/subscribe':
      case 'resources/unsubscribe': {
        if (typeof params.uri !== 'string') {
          throw McpError.invalidParams('uri must be a string');
        }
        // Answered once the URI's provider listens, so that updates from then on arrive.
        if (method === 'resources/subscribe') {
          if (
            !session.subscriptions.has(params.uri) &&
            session.subscriptions.size >= this.maxResourceSubscriptions
          ) {
            throw McpError.invalidParams(
              `This session already follows ${session.subscriptions.size} resources, the most ` +
                'allowed: unsubscribe from one first',
            );
          }
          session.subscriptions.add(params.uri);
          await this.interestOf(session).add(params.uri);
        } else {
          session.subscriptions.delete(params.uri);
          this.interestOf(session).delete(params.uri);
        }
        return {};
      }
    }
    const tasksOn = VERSION_AT_LEAST(session.protocolVersion, TASKS_LEGACY_VERSION);
    if (tasksOn && LEGACY_TASK_METHODS.has(method)) {
      return this.legacyTaskMethod(session, method, params, io, cancellation);
    }
    if (!LEGACY_METHODS.has(method)) {
      throw McpError.methodNotFound(method);
    }
    const outbound = io.outbound;
    const ctx = new HandlerContext({
      era: 'legacy',
      protocolVersion: session.protocolVersion,
      requestId: request.id,
      method,
      clientCapabilities: session.clientCapabilities,
      clientInfo: session.clientInfo,
      principal: session.principal,
      sessionId: session.id,
      session: this.sessionView(session),
      cancellation,
      progressToken: progressTokenOf(params._meta),
      logLevel: session.logLevel,
      logsEnabled: true,
      outbound,
      trace: io.trace,
      broker: {
        request: (inputMethod, inputParams, inputSignal, key) => {
          if (
            inputMethod === 'elicitation/create' &&
            !VERSION_AT_LEAST(session.protocolVersion, '2025-06-18')
          ) {
            return Promise.reject(
              McpError.invalidRequest(
                `Elicitation needs protocol 2025-06-18 or later (session: ${session.protocolVersion})`,
              ),
            );
          }
          return session.request(
            inputMethod,
            key === undefined ? inputParams : withInputKey(inputParams, key),
            (message) => outbound.send(message),
            inputSignal,
            this.clientRequestTimeoutMs,
          );
        },
      },
    });
    const result =
      method === 'tools/call' && tasksOn
        ? await this.callToolLegacy(session, params, ctx, cancellation)
        : await this.execute(method, params, ctx);
    return VERSION_AT_LEAST(session.protocolVersion, '2025-06-18')
      ? result
      : stripNewerFields(method, result);
  }

  /**
   * tools/call on a 2025-11-25 session: a task when the request carries `task` (and the tool
   * allows it); a tool that requires a task refuses plain calls (-32601).
   */
  private async callToolLegacy(
    session: LegacySession,
    params: JsonObject,
    ctx: HandlerContext,
    cancellation: Cancellation,
  ): Promise<JsonObject> {
    const call = await this.prepareToolCall(params, {
      principal: ctx.principal,
      trace: ctx.trace,
    });
    if ('result' in call) {
      return call.result;
    }
    const name = call.tool.definition.name;
    const support = call.tool.definition.execution?.taskSupport;
    const task = params.task;
    if (task === undefined) {
      if (support === 'required') {
        throw new McpError(
          ErrorCode.MethodNotFound,
          `Tool ${name} must be called as a task (params.task)`,
        );
      }
      return this.invokeTool(call.tool, call.args, ctx);
    }
    if (typeof task !== 'object' || task === null || Array.isArray(task)) {
      throw McpError.invalidParams('task must be an object');
    }
    if (support !== 'optional' && support !== 'required') {
      throw new McpError(ErrorCode.MethodNotFound, `Tool ${name} does not support tasks`);
    }
    const ttl = (task as JsonObject).ttl;
    if (ttl !== undefined && ttl !== null && (typeof ttl !== 'number' || !(ttl >= 0))) {
      throw McpError.invalidParams('task.ttl must be a non-negative number of milliseconds');
    }
    const progressToken = progressTokenOf(params._meta);
    return this.runAsTask(call, ctx, {
      era: 'legacy',
      deferrable: false,
      preTask: NO_INPUT,
      requestCancellation: cancellation,
      caller: { principal: session.principal, sessionId: session.id },
      requestedTtlMs: typeof ttl === 'number' ? ttl : undefined,
      progressAfterBegin:
        progressToken === undefined
          ? undefined
          : (taskId, progress) => {
              if (!session.closed) {
                session.sendStandalone(
                  notification('notifications/progress', {
                    progressToken,
                    ...progress,
                    _meta: { [META.relatedTask]: { taskId } },
                  }),
                );
              }
            },
    });
  }

  /** tasks/get, tasks/result, tasks/list and tasks/cancel (2025-11-25). */
  private async legacyTaskMethod(
    session: LegacySession,
    method: string,
    params: JsonObject,
    io: RequestIo,
    cancellation: Cancellation,
  ): Promise<JsonObject> {
    const caller: TaskCaller = { principal: session.principal, sessionId: session.id };
    switch (method) {
      case 'tasks/get':
        return legacyTask(await this.tasks.get(params.taskId, caller));
      case 'tasks/list': {
        const page = this.paginator.page(await this.tasks.list(caller), 'tasks', params.cursor);
        return withCursor({ tasks: page.items.map(legacyTask) }, page.nextCursor);
      }
      case 'tasks/cancel': {
        const task = await this.tasks.get(params.taskId, caller);
        if (isTerminalStatus(task.status)) {
          throw McpError.invalidParams(
            `Cannot cancel task: already in terminal status '${task.status}'`,
          );
        }
        return legacyTask(await this.tasks.cancel(task.taskId, caller));
      }
      default:
        return this.legacyTaskOutcome(session, params.taskId, caller, io, cancellation);
    }
  }

  /**
   * tasks/result (2025-11-25): waits for the task to end and answers with its outcome. While
   * the task needs input, its requests go to the client as ordinary server-to-client requests
   * on this request's stream (tagged with the task), and the answers go to the task through the
   * store, wherever it runs.
   */
  private async legacyTaskOutcome(
    session: LegacySession,
    taskId: unknown,
    caller: TaskCaller,
    io: RequestIo,
    cancellation: Cancellation,
  ): Promise<JsonObject> {
    const relayed = new Set<string>();
    for (;;) {
      const task = await this.tasks.get(taskId, caller);
      if (isTerminalStatus(task.status)) {
        return legacyTaskResult(task);
      }
      for (const [key, input] of Object.entries(task.inputRequests)) {
        if (relayed.has(key)) {
          continue;
        }
        relayed.add(key);
        const meta = input.params._meta;
        const params: JsonObject = {
          ...input.params,
          _meta: {
            ...(typeof meta === 'object' && meta !== null ? meta : {}),
            [META.relatedTask]: { taskId: task.taskId },
            // The task's key for this input, as a mid-call request names it (withInputKey).
            [META.inputKey]: key,
          },
        };
        void session
          .request(
            input.method,
            params,
            (message) => io.outbound.send(message),
            cancellation,
            this.clientRequestTimeoutMs,
          )
          .then((answer) => this.tasks.update(task.taskId, caller, { [key]: answer }))
          // Unanswered input stays outstanding: the next tasks/result asks again.
          .catch(() => undefined);
      }
      await this.tasks.waitForChange(task.taskId, cancellation);
      if (cancellation.cancelled) {
        throw cancellation.reason;
      }
    }
  }

  /**
   * Wires a session to catalog change events; returns the unsubscribe function. The
   * subscriptions a session already holds (taken over from another node) are claimed here.
   */
  watchSession(session: LegacySession): () => void {
    const interest = this.interestOf(session);
    for (const uri of session.subscriptions) {
      void interest.add(uri);
    }
    const unwatch = this.catalog.watch(
      (event) => {
        if (event.type === 'resources-changed') {
          void interest.refresh();
        }
        if (!session.initialized || session.closed) {
          return;
        }
        switch (event.type) {
          case 'tools-changed':
            session.sendStandalone(notification('notifications/tools/list_changed'));
            break;
          case 'prompts-changed':
            session.sendStandalone(notification('notifications/prompts/list_changed'));
            break;
          case 'resources-changed':
            session.sendStandalone(notification('notifications/resources/list_changed'));
            break;
          case 'resource-updated':
            if (session.subscriptions.has(event.uri)) {
              session.sendStandalone(
                notification('notifications/resources/updated', { uri: event.uri }),
              );
            }
            break;
        }
      },
      { principal: session.principal },
    );
    session.onClose(unwatch);
    return unwatch;
  }

  /** The session as handlers may keep it (see ClientSession); one per session. */
  private sessionView(session: LegacySession): LegacyClientSession {
    let view = this.sessionViews.get(session);
    if (!view) {
      const created = new LegacyClientSession(session, this.clientRequestTimeoutMs);
      this.sessionViews.set(session, created);
      if (session.closed) {
        created.emit('closed');
      } else {
        session.onClose(() => created.emit('closed'));
      }
      view = created;
    }
    return view;
  }

  /** The session's claims on resource handlers, released when it closes. */
  private interestOf(session: LegacySession): ResourceInterest {
    let interest = this.sessionInterest.get(session);
    if (!interest) {
      const scope: CatalogScope = { principal: session.principal };
      interest = new ResourceInterest(
        (uri) => this.findResource(uri, scope),
        this.sessionView(session),
      );
      this.sessionInterest.set(session, interest);
      if (session.closed) {
        interest.clear();
      } else {
        session.onClose(() => interest?.clear());
      }
    }
    return interest;
  }

  /** The handler serving `uri` in `scope`: its resource, else the first template matching it. */
  private async findResource(
    uri: string,
    scope: CatalogScope,
  ): Promise<ResourceProvider | undefined> {
    const resource = await this.catalog.getResource(uri, scope);
    if (resource) {
      return resource;
    }
    for (const template of await this.catalog.listResourceTemplates(scope)) {
      if (template.match(uri)) {
        return template;
      }
    }
    return undefined;
  }

  // ---------------------------------------------------------------------------------------
  // Shared: the feature methods, identical in both eras

  private async execute(
    method: string,
    params: JsonObject,
    ctx: HandlerContext,
  ): Promise<JsonObject> {
    const scope: CatalogScope = { principal: ctx.principal, trace: ctx.trace };
    switch (method) {
      case 'tools/list': {
        const tools = await this.catalog.listTools(scope);
        const page = this.paginator.page(tools, 'tools', params.cursor);
        return withCursor({ tools: page.items.map((t) => t.definition) }, page.nextCursor);
      }
      case 'tools/call':
        return this.callTool(params, ctx, scope);
      case 'resources/list': {
        const resources = await this.catalog.listResources(scope);
        const page = this.paginator.page(resources, 'resources', params.cursor);
        return withCursor({ resources: page.items.map((r) => r.definition) }, page.nextCursor);
      }
      case 'resources/templates/list': {
        const templates = await this.catalog.listResourceTemplates(scope);
        const page = this.paginator.page(templates, 'templates', params.cursor);
        return withCursor(
          { resourceTemplates: page.items.map((t) => t.definition) },
          page.nextCursor,
        );
      }
      case 'resources/read':
        return this.readResource(params, ctx, scope);
      case 'prompts/list': {
        const prompts = await this.catalog.listPrompts(scope);
        const page = this.paginator.page(prompts, 'prompts', params.cursor);
        return withCursor({ prompts: page.items.map((p) => p.definition) }, page.nextCursor);
      }
      case 'prompts/get':
        return this.getPrompt(params, ctx, scope);
      case 'completion/complete':
        return this.complete(params, scope);
      default:
        throw McpError.methodNotFound(method);
    }
  }

  private async callTool(
    params: JsonObject,
    ctx: HandlerContext,
    scope: CatalogScope,
  ): Promise<JsonObject> {
    const call = await this.prepareToolCall(params, scope);
    return 'result' in call ? call.result : this.invokeTool(call.tool, call.args, ctx);
  }

  /** The tool and its checked arguments, or the tool-error result for invalid arguments. */
  private async prepareToolCall(
    params: JsonObject,
    scope: CatalogScope,
  ): Promise<PreparedToolCall | { result: JsonObject }> {
    const name = params.name;
    if (typeof name !== 'string') {
      throw McpError.invalidParams('tools/call requires a tool name');
    }
    const tool = await this.catalog.getTool(name, scope);
    if (!tool) {
      throw McpError.invalidParams(`Unknown tool: ${name}`);
    }
    const args = params.arguments ?? {};
    if (typeof args !== 'object' || args === null || Array.isArray(args)) {
      throw McpError.invalidParams('arguments must be an object');
    }
    const input = this.validator.check(tool.definition.inputSchema, args);
    if (!input.valid) {
      return {
        result: toolError(`Invalid arguments for tool ${name}: ${input.message ?? 'invalid'}`),
      };
    }
    return { tool, args: args as JsonObject };
  }

  /**
   * Runs the handler. It is called synchronously, before this returns its promise: a handler's
   * first synchronous steps (`beforeTask`) are seen by the caller at once.
   */
  private async invokeTool(
    tool: ToolHandler,
    args: JsonObject,
    ctx: HandlerContext,
  ): Promise<JsonObject> {
    let result: CallToolResult;
    try {
      result = await tool.call(args, ctx);
    } catch (err) {
      if (err === INPUT_REQUIRED || err instanceof McpError || ctx.cancelled) {
        throw err;
      }
      return toolError(err instanceof Error ? err.message : 'Tool failed');
    }
    this.checkOutput(tool, result);
    return result;
  }

  private checkOutput(tool: ToolHandler, result: CallToolResult): void {
    const schema = tool.definition.outputSchema;
    if (!schema || result.isError) {
      return;
    }
    if (result.structuredContent === undefined) {
      throw new McpError(
        ErrorCode.InternalError,
        `Tool ${tool.definition.name} returned no structuredContent`,
      );
    }
    const check = this.validator.check(schema, result.structuredContent);
    if (!check.valid) {
      throw new McpError(
        ErrorCode.InternalError,
        `Tool ${tool.definition.name} returned structuredContent that does not match its outputSchema: ${check.message ?? ''}`,
      );
    }
  }

  private async readResource(
    params: JsonObject,
    ctx: HandlerContext,
    scope: CatalogScope,
  ): Promise<JsonObject> {
    const uri = params.uri;
    if (typeof uri !== 'string') {
      throw McpError.invalidParams('resources/read requires a uri');
    }
    const resource = await this.catalog.getResource(uri, scope);
    let result: ReadResourceResult | undefined;
    if (resource) {
      result = await resource.read(ctx);
    } else {
      for (const template of await this.catalog.listResourceTemplates(scope)) {
        const vars = template.match(uri);
        if (vars) {
          result = await template.read(uri, vars, ctx);
          break;
        }
      }
    }
    if (!result) {
      throw new McpError(
        ctx.era === 'modern' ? ErrorCode.InvalidParams : ErrorCode.ResourceNotFound,
        `Resource not found: ${uri}`,
        { uri },
      );
    }
    return result;
  }

  private async getPrompt(
    params: JsonObject,
    ctx: HandlerContext,
    scope: CatalogScope,
  ): Promise<JsonObject> {
    const name = params.name;
    if (typeof name !== 'string') {
      throw McpError.invalidParams('prompts/get requires a prompt name');
    }
    const prompt = await this.catalog.getPrompt(name, scope);
    if (!prompt) {
      throw McpError.invalidParams(`Unknown prompt: ${name}`);
    }
    const raw = params.arguments ?? {};
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw McpError.invalidParams('arguments must be an object');
    }
    const args: Record<string, string> = {};
    for (const [key, value] of Object.entries(raw as JsonObject)) {
      if (typeof value !== 'string') {
        throw McpError.invalidParams(`Argument ${key} must be a string`);
      }
      args[key] = value;
    }
    for (const declared of prompt.definition.arguments ?? []) {
      if (declared.required && args[declared.name] === undefined) {
        throw McpError.invalidParams(`Missing required argument: ${declared.name}`);
      }
    }
    return await prompt.get(args, ctx);
  }

  private async complete(params: JsonObject, scope: CatalogScope): Promise<JsonObject> {
    const ref = params.ref as JsonObject | undefined;
    const argument = params.argument as JsonObject | undefined;
    if (!ref || typeof ref !== 'object' || !argument || typeof argument.name !== 'string') {
      throw McpError.invalidParams('completion/complete requires ref and argument.name');
    }
    const value = typeof argument.value === 'string' ? argument.value : '';
    const contextArgs = ((params.context as JsonObject | undefined)?.arguments ?? {}) as Record<
      string,
      string
    >;
    const request = { argument: argument.name, value, context: contextArgs };
    let completion: { values: string[]; total?: number; hasMore?: boolean } | undefined;
    if (ref.type === 'ref/prompt') {
      const prompt =
        typeof ref.name === 'string' ? await this.catalog.getPrompt(ref.name, scope) : undefined;
      if (!prompt) {
        throw McpError.invalidParams(`Unknown prompt: ${describe(ref.name)}`);
      }
      completion = prompt.complete ? await prompt.complete(request) : undefined;
    } else if (ref.type === 'ref/resource') {
      const uri = ref.uri;
      const template = (await this.catalog.listResourceTemplates(scope)).find(
        (t) => t.definition.uriTemplate === uri,
      );
      if (!template) {
        if (typeof uri === 'string' && (await this.catalog.getResource(uri, scope))) {
          return { completion: { values: [], total: 0, hasMore: false } };
        }
        throw McpError.invalidParams(`Unknown resource template: ${describe(uri)}`);
      }
      completion = template.complete ? await template.complete(request) : undefined;
    } else {
      throw McpError.invalidParams('ref.type must be ref/prompt or ref/resource');
    }
    const values = (completion?.values ?? []).slice(0, 100);
    return {
      completion: {
        values,
        total: completion?.total ?? completion?.values.length ?? 0,
        hasMore: completion?.hasMore ?? (completion?.values.length ?? 0) > 100,
      },
    };
  }
}

export interface ModernEnvelope {
  protocolVersion: string;
  clientCapabilities: ClientCapabilities;
  clientInfo?: Implementation;
  logLevel?: import('./constants').LogLevel;
  progressToken?: string | number;
}

const SHARED_METHODS = [
  'tools/list',
  'tools/call',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'prompts/list',
  'prompts/get',
  'completion/complete',
];
const MODERN_METHODS = new Set(SHARED_METHODS);
const LEGACY_METHODS = new Set(SHARED_METHODS);

interface PreparedToolCall {
  readonly tool: ToolHandler;
  readonly args: JsonObject;
}

/** Input for a 2025-era task is asked through the task itself, never before it exists. */
const NO_INPUT: InputBroker = {
  request: () =>
    Promise.reject(new McpError(ErrorCode.InternalError, 'No client input before the task')),
};

function declaresTasks(caps: ClientCapabilities): boolean {
  const extensions = caps.extensions;
  const declared =
    typeof extensions === 'object' && extensions !== null ? extensions[TASKS_EXTENSION] : undefined;
  return typeof declared === 'object' && declared !== null;
}

/** A 2025-era mid-call request's params naming the input's key in `_meta` (META.inputKey). */
function withInputKey(params: JsonObject, key: string): JsonObject {
  const meta = params._meta;
  return {
    ...params,
    _meta: {
      ...(typeof meta === 'object' && meta !== null ? meta : {}),
      [META.inputKey]: key,
    },
  };
}

/** -32021 naming the tasks extension as the missing client capability. */
function missingTasksExtension(): McpError {
  return new McpError(
    ErrorCode.MissingClientCapability,
    `Missing required client capability: extension ${TASKS_EXTENSION}`,
    { requiredCapabilities: { extensions: { [TASKS_EXTENSION]: {} } } },
  );
}

/** tasks/get, tasks/update and tasks/cancel carry the task id in Mcp-Name (2026-07-28). */
function checkTaskNameHeader(
  request: JsonRpcRequest,
  header: (lowerCaseName: string) => string | undefined,
): McpError | undefined {
  const raw = header('mcp-name');
  if (raw === undefined) {
    return new McpError(ErrorCode.HeaderMismatch, 'Mcp-Name header is required');
  }
  const taskId = request.params?.taskId;
  if (typeof taskId === 'string' && decodeHeaderValue(raw) !== taskId) {
    return new McpError(ErrorCode.HeaderMismatch, 'Mcp-Name header does not match params.taskId');
  }
  return undefined;
}

/** A client-supplied value in an error message: strings as they are, anything else by type. */
function describe(value: unknown): string {
  return typeof value === 'string' ? value : `(${value === null ? 'null' : typeof value})`;
}

function progressTokenOf(meta: unknown): string | number | undefined {
  if (typeof meta !== 'object' || meta === null) {
    return undefined;
  }
  const token = (meta as JsonObject).progressToken;
  return typeof token === 'string' || typeof token === 'number' ? token : undefined;
}

function targetOf(method: string, params: JsonObject): string {
  const value = method === 'resources/read' ? params.uri : params.name;
  return typeof value === 'string' ? value : '';
}

function argumentsOf(method: string, params: JsonObject): unknown {
  return method === 'resources/read' ? null : (params.arguments ?? {});
}

function withCursor(result: JsonObject, nextCursor: string | undefined): JsonObject {
  if (nextCursor !== undefined) {
    result.nextCursor = nextCursor;
  }
  return result;
}

function toolError(text: string): JsonObject {
  return { content: [{ type: 'text', text }], isError: true };
}

/**
 * A 2025-era session as a handler may keep it after its request ended: messages go on the
 * session's standalone stream (the only one that outlives a request).
 */
class LegacyClientSession implements ClientSession {
  private readonly listeners = new Map<ClientSessionEvent, Set<() => void>>();

  constructor(
    private readonly session: LegacySession,
    private readonly timeoutMs: number,
  ) {}

  get id(): string {
    return this.session.id;
  }

  get closed(): boolean {
    return this.session.closed;
  }

  log(level: LogLevel, data: unknown, logger?: string): void {
    const min = this.session.logLevel;
    if (this.session.closed || (min !== undefined && logLevelRank(level) < logLevelRank(min))) {
      return;
    }
    this.session.sendStandalone(
      notification('notifications/message', {
        level,
        data: data as JsonObject,
        ...(logger !== undefined && { logger }),
      }),
    );
  }

  request(method: InputMethod, params: JsonObject, signal?: AbortSignal): Promise<JsonObject> {
    const missing = requiredCapability(method, params, this.session.clientCapabilities);
    if (missing !== undefined) {
      return Promise.reject(missingCapabilityError(missing));
    }
    const cancellation = new Cancellation();
    if (signal?.aborted) {
      cancellation.cancel(signal.reason);
    }
    const onAbort = (): void => cancellation.cancel(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const send = (message: JsonRpcMessage): void => {
      if (!this.session.sendStandalone(message)) {
        throw new McpError(
          ErrorCode.InternalError,
          'The client has no stream open for requests outside a call',
        );
      }
    };
    return this.session
      .request(method, params, send, cancellation, this.timeoutMs)
      .finally(() => signal?.removeEventListener('abort', onAbort));
  }

  on(event: ClientSessionEvent, listener: () => void): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener);
    return () => set.delete(listener);
  }

  emit(event: ClientSessionEvent): void {
    for (const listener of [...(this.listeners.get(event) ?? [])]) {
      listener();
    }
    if (event === 'closed') {
      this.listeners.clear();
    }
  }
}

function notification(method: string, params?: JsonObject): JsonRpcMessage {
  return params ? { jsonrpc: '2.0', method, params } : { jsonrpc: '2.0', method };
}

/** Drops fields a pre-2025-06-18 client does not know (copies: results may be shared). */
function stripNewerFields(method: string, result: JsonObject): JsonObject {
  if (method === 'tools/call' && result.structuredContent !== undefined) {
    const { structuredContent: _dropped, ...rest } = result;
    return rest;
  }
  if (method === 'tools/list') {
    return {
      ...result,
      tools: (result.tools as JsonObject[]).map((tool) => {
        if (tool.outputSchema === undefined) {
          return tool;
        }
        const { outputSchema: _dropped, ...rest } = tool;
        return rest;
      }),
    };
  }
  return result;
}

/**
 * Settles with the work, or with undefined as soon as the request is cancelled: a cancelled
 * request is answered (with nothing) at once, even if its handler ignores the cancellation.
 */
function untilCancelled<T>(work: Promise<T>, cancellation: Cancellation): Promise<T | undefined> {
  if (cancellation.cancelled) {
    work.catch(() => undefined);
    return Promise.resolve(undefined);
  }
  return new Promise<T | undefined>((resolve, reject) => {
    const undo = cancellation.onCancel(() => resolve(undefined));
    work.then(
      (value) => {
        undo();
        resolve(value);
      },
      (err: unknown) => {
        undo();
        reject(err);
      },
    );
  });
}

export type { RequestId };

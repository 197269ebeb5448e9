import { Logger } from '@nestjs/common';
import {
  Client,
  ProtocolError,
  type ClientCapabilities as SdkClientCapabilities,
  type ListChangedOptions,
  type RequestOptions,
  type StandardSchemaV1,
  type Transport,
} from '@modelcontextprotocol/client';
import {
  BackendUnavailableError,
  CallToolResult,
  CatalogEvent,
  ClientSession,
  CatalogListener,
  CompleteResult,
  CompletionRequest,
  ErrorCode,
  GetPromptResult,
  InputMethod,
  isLogLevel,
  JsonObject,
  McpError,
  attachTaskWork,
  Cancellation,
  NODE_STOPPED_MESSAGE,
  type TaskProgress,
  carriedFromRound,
  carryIntoRetry,
  inputRoundsOf,
  META,
  PromptHandler,
  ReadResourceResult,
  RequestContext,
  ResourceHandler,
  ResourceTemplateHandler,
  taskLaunchOf,
  ToolHandler,
  type TaskLaunchControl,
  uriTemplateMatcher,
  type Prompt,
  type Resource,
  type ResourceTemplate,
  type Tool,
} from '@portico/mcp-protocol';
import type { BackendMetrics, GatewayMetrics, Tracing } from '@portico/observability';
import type { BackendContext, BackendSource } from './backend-source';
import { StdioUnavailableError } from './stdio-supervisor';
import { TargetRefusedError } from './target-guard';
import { NameMap } from './upstream-names';
import { HeldCalls, type HeldCall } from './upstream-held-calls';
import {
  answerInputRequests,
  askClient,
  inputCapabilities,
  RelayedCalls,
  type RelayedCall,
} from './upstream-relay';
import { ClientUpstreamSession, ClientUpstreamSessions, releaseClient } from './upstream-session';
import {
  executeAlone,
  policyRefusal,
  refusedByPolicy,
  UncountedFailure,
  UpstreamResilience,
} from './upstream-resilience';
import type { UpstreamSettings } from './upstream-settings';
import {
  adoptedTaskContext,
  followLegacyUpstreamTask,
  followUpstreamTask,
  liftTaskResults,
  offersTasks,
  upstreamTaskOf,
  upstreamTaskWork,
  withTasksExtension,
  type LegacyUpstreamTaskMethods,
  type UpstreamTaskMethods,
} from './upstream-tasks';
import { traceUpstream } from './upstream-tracing';
import { UpstreamSubscriptions } from './upstream-subscriptions';
import type { UpstreamConnector } from './upstream-transports';

const CLIENT_INFO = { name: 'portico-gateway', version: '0.1.0' };
/**
 * What the pooled client declares: an upstream may ask for any input, and each request is
 * passed to the client whose call it belongs to, which may refuse it (-32021). A 2026-07-28
 * upstream sees the calling client's own capabilities on every call instead (`_meta`).
 */
const CLIENT_CAPABILITIES: SdkClientCapabilities = {
  sampling: { tools: {} },
  elicitation: { form: {}, url: {} },
  roots: {},
};
/** Envelope fields of the upstream's own reply that must not leak into ours. */
const UPSTREAM_ENVELOPE = ['resultType', 'ttlMs', 'cacheScope'];
const RESERVED_META_PREFIX = 'io.modelcontextprotocol/';
const META_CLIENT_CAPABILITIES = 'io.modelcontextprotocol/clientCapabilities';
const META_LOG_LEVEL = 'io.modelcontextprotocol/logLevel';
/** input_required rounds one call may take with an upstream before it is given up. */
const MAX_INPUT_ROUNDS = 10;
/** The TTL asked of a 2025-11-25 upstream's task (it may grant less). */
const UPSTREAM_TASK_TTL_MS = 3_600_000;

/** A result schema taking any object: the SDK has none for the tasks extension's methods. */
const ANY_RESULT: StandardSchemaV1<JsonObject> = {
  '~standard': {
    version: 1,
    vendor: 'portico',
    validate: (value) =>
      typeof value === 'object' && value !== null && !Array.isArray(value)
        ? { value: value as JsonObject }
        : { issues: [{ message: 'expected an object' }] },
  },
};

type ListKind = 'tools' | 'prompts' | 'resources';

/** A request made after close(): never sent. */
class BackendClosedError extends Error {
  constructor() {
    super('backend closed');
    this.name = 'BackendClosedError';
  }
}

/**
 * Where what an upstream session sends on its own goes: its calls in flight (matched by tag,
 * else see `onlyCall`), and for a client's own upstream session that client session.
 */
interface Relay {
  readonly calls: RelayedCalls;
  /** An untagged message may go to the only call in flight (see RelayedCalls.route). */
  readonly onlyCall: boolean;
  /** The client session the upstream session serves alone. */
  readonly session?: ClientSession;
}

/** An upstream session requests run on: the pooled one, or a client's own. */
interface Lane {
  readonly calls: RelayedCalls;
  connected(): Promise<Client>;
  drop(client: Client): Promise<void>;
}

interface Lists {
  tools: Map<string, ToolHandler>;
  prompts: Map<string, PromptHandler>;
  resources: Map<string, ResourceHandler>;
  templates: ResourceTemplateHandler[];
}

/**
 * One upstream MCP server as a catalog source, over whichever transport its connector opens
 * (Streamable HTTP, HTTP+SSE, WebSocket, stdio): its tools and prompts under namespaced names,
 * its resources and templates under their own URIs. One pooled SDK client per backend (era
 * chosen by the SDK's negotiation: server/discover, else initialize), dropped and rebuilt after
 * a transport failure (for stdio: a new child process). It serves the lists and every
 * stateless (2026-07-28) request; a 2025-era client session gets an upstream session of its
 * own (`sessions: 'per-client'`, see upstream-session), so that the upstream's per-session
 * state and what it sends outside calls stay that client's. Lists are cached and refreshed on
 * the upstream's list_changed notifications; every request goes through the backend's
 * resilience policies and comes back as a result or an McpError. What the upstream sends
 * while it serves a call (progress, logs, input requests or input_required rounds) is relayed
 * to the client that made the call, in that client's era (see exchange() and upstream-relay);
 * and what it sends outside calls goes to the client session its upstream session serves, if
 * any (else logs are dropped and input requests refused). Completions are asked of the
 * upstream. Clients' resource subscriptions are passed upstream: on a client's own upstream
 * session, else on the pooled one counted per URI (see upstream-subscriptions); the upstream's
 * resource updates reach this source's watchers.
 */
export class McpUpstreamSource implements BackendSource {
  private readonly logger = new Logger(McpUpstreamSource.name);
  private readonly listeners = new Set<CatalogListener>();
  private readonly resilience: UpstreamResilience;
  private readonly label: string;
  /** This backend's series (request durations, reachability, circuit state), if metered. */
  private readonly metrics?: BackendMetrics;
  private readonly stopWatchingCircuit: () => void;
  private lists: Lists = {
    tools: new Map(),
    prompts: new Map(),
    resources: new Map(),
    templates: [],
  };
  private client?: Promise<Client>;
  /** Calls in flight on the pooled client, to which its logs and input requests are relayed. */
  private readonly calls = new RelayedCalls();
  /** Calls held open across their 2026-07-28 client's input rounds (see upstream-held-calls). */
  private readonly heldCalls = new HeldCalls();
  /**
   * How the pooled client relays. Only Streamable HTTP tags a call's messages; elsewhere the
   * only call in flight is the one way a 2026-07-28 caller hears its call's logs and input
   * requests. 2025-era sessions have their own upstream sessions, so that cannot hand one
   * client's session state to another; an upstream that sends messages of its own accord on
   * the pooled session over such a transport may still reach the one call then in flight.
   */
  private readonly pooledRelay: Relay;
  /** The upstream sessions of 2025-era client sessions (`sessions: 'per-client'`). */
  private readonly clientSessions: ClientUpstreamSessions;
  /** Clients' interest in resources, and the upstream subscription serving it. */
  private readonly subscriptions: UpstreamSubscriptions;
  /** Whether a client was ever connected: a later connect is a reconnect, so lists are re-read. */
  private connectedOnce = false;
  /** Set by a reconnect: the next successful request re-reads the lists. */
  private listsStale = false;
  /** The upstream speaks 2026-07-28 (as last negotiated): it keeps no sessions to separate. */
  private upstreamModern = false;
  /** The upstream offers the tasks extension (2026-07-28): it may answer a call with a task. */
  private upstreamTasks = false;
  /** A 2025-11-25 upstream that runs tools/call as (experimental) tasks when asked to. */
  private upstreamLegacyTasks = false;
  private closed = false;

  private constructor(
    private readonly context: BackendContext,
    private readonly settings: UpstreamSettings,
    private readonly connector: UpstreamConnector,
    metrics?: Pick<GatewayMetrics, 'backend'>,
    private readonly tracing?: Tracing,
  ) {
    this.resilience = new UpstreamResilience(settings);
    this.label = `Backend ${context.backend.name}`;
    this.metrics = metrics?.backend(context.tenantSlug, context.backend.name);
    const watch = this.resilience.onCircuitChange((state) => this.metrics?.circuit(state));
    this.stopWatchingCircuit = () => watch.dispose();
    this.subscriptions = new UpstreamSubscriptions({
      label: this.label,
      timeoutMs: settings.timeoutMs,
      connect: () => this.connected(),
    });
    this.pooledRelay = { calls: this.calls, onlyCall: context.backend.kind !== 'mcp-http' };
    this.clientSessions = new ClientUpstreamSessions(
      {
        label: this.label,
        timeoutMs: settings.timeoutMs,
        connect: (own) => this.connectClientSession(own),
      },
      settings.sessions === 'per-client' ? settings.maxClientSessions : 0,
      () =>
        this.logger.warn(
          `${this.label}: ${settings.maxClientSessions} client sessions have upstream sessions ` +
            'of their own (maxClientSessions); another one shares the pooled session',
        ),
    );
    connector.attach?.({ reconnect: () => this.connected().then(() => undefined) });
  }

  /**
   * Connects through `connector` and reads every list; throws when the target is refused or
   * unreachable. `metrics`: where this backend's requests, reachability and circuit state are
   * recorded.
   */
  static async connect(
    context: BackendContext,
    settings: UpstreamSettings,
    connector: UpstreamConnector,
    metrics?: Pick<GatewayMetrics, 'backend'>,
    tracing?: Tracing,
  ): Promise<McpUpstreamSource> {
    // Refused targets fail here, plainly, before any policy counts them as outages.
    await connector.check();
    const source = new McpUpstreamSource(
      context,
      settings,
      connector,
      metrics,
      tracing?.enabled ? tracing : undefined,
    );
    try {
      source.lists = await source.readLists();
    } catch (err) {
      await source.close();
      throw err;
    }
    return source;
  }

  listTools(): readonly ToolHandler[] {
    return [...this.lists.tools.values()];
  }
  getTool(name: string): ToolHandler | undefined {
    return this.lists.tools.get(name);
  }
  listResources(): readonly ResourceHandler[] {
    return [...this.lists.resources.values()];
  }
  getResource(uri: string): ResourceHandler | undefined {
    return this.lists.resources.get(uri);
  }
  listResourceTemplates(): readonly ResourceTemplateHandler[] {
    return this.lists.templates;
  }
  listPrompts(): readonly PromptHandler[] {
    return [...this.lists.prompts.values()];
  }
  getPrompt(name: string): PromptHandler | undefined {
    return this.lists.prompts.get(name);
  }

  watch(listener: CatalogListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Calls in flight on this backend (tools/call, prompts/get, resources/read). */
  get inFlight(): number {
    let count = this.calls.size;
    for (const own of this.clientSessions.values()) {
      count += own.calls.size;
    }
    return count;
  }

  /** Upstream sessions of client sessions open on this backend (see upstream-session). */
  get clientSessionCount(): number {
    return this.clientSessions.size;
  }

  /**
   * A health probe: `ping` on the pooled client (connecting first if needed), outside the
   * resilience policies so that a probe neither counts as traffic nor is refused by an open
   * circuit. Rejects when the upstream does not answer within `timeoutMs`.
   */
  async ping(timeoutMs: number): Promise<void> {
    const client = await this.connected();
    const options = { timeout: timeoutMs, signal: AbortSignal.timeout(timeoutMs) };
    // 2026-07-28 has no ping (the SDK refuses it locally): server/discover is its probe.
    await (client.getProtocolEra() === 'modern' ? client.discover(options) : client.ping(options));
  }

  /** The URIs this node's clients are subscribed to on this backend. */
  get subscribedUris(): string[] {
    const uris = new Set(this.subscriptions.uris);
    for (const own of this.clientSessions.values()) {
      own.subscribedUris.forEach((uri) => uris.add(uri));
    }
    return [...uris].sort();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.heldCalls.close();
    this.subscriptions.close();
    await this.clientSessions.close();
    this.connector.detach?.();
    this.listeners.clear();
    this.stopWatchingCircuit();
    this.metrics?.remove();
    await this.dropClient();
  }

  // ---------------------------------------------------------------------------------------
  // Lists

  private async readLists(): Promise<Lists> {
    const list = <T>(fn: (client: Client, signal: AbortSignal) => T | Promise<T>) =>
      this.request(this.resilience.list, async (client, signal) => fn(client, signal));
    const [tools, prompts, resources, templates] = await Promise.all([
      list((c, signal) =>
        offers(c, 'tools')
          ? c.listTools(undefined, { signal, cacheMode: 'refresh' })
          : { tools: [] },
      ),
      list((c, signal) =>
        offers(c, 'prompts')
          ? c.listPrompts(undefined, { signal, cacheMode: 'bypass' })
          : { prompts: [] },
      ),
      list((c, signal) =>
        offers(c, 'resources')
          ? c.listResources(undefined, { signal, cacheMode: 'bypass' })
          : { resources: [] },
      ),
      list((c, signal) =>
        offers(c, 'resources')
          ? c.listResourceTemplates(undefined, { signal, cacheMode: 'bypass' })
          : { resourceTemplates: [] },
      ),
    ]);
    const toolNames = new NameMap(this.settings);
    const promptNames = new NameMap(this.settings);
    const next: Lists = {
      tools: new Map(),
      prompts: new Map(),
      resources: new Map(),
      templates: [],
    };
    for (const tool of tools.tools as unknown as Tool[]) {
      const exposed = toolNames.add(tool.name);
      if (exposed !== undefined) {
        next.tools.set(exposed, this.toolHandler(tool, exposed));
      }
    }
    for (const prompt of prompts.prompts as unknown as Prompt[]) {
      const exposed = promptNames.add(prompt.name);
      if (exposed !== undefined) {
        next.prompts.set(exposed, this.promptHandler(prompt, exposed));
      }
    }
    for (const resource of resources.resources as unknown as Resource[]) {
      if (!next.resources.has(resource.uri)) {
        next.resources.set(resource.uri, this.resourceHandler(resource));
      }
    }
    for (const template of templates.resourceTemplates as unknown as ResourceTemplate[]) {
      next.templates.push(this.templateHandler(template));
    }
    return next;
  }

  /**
   * Re-reads the lists and tells watchers which of them changed. `announced`: the list the
   * upstream said changed, passed on even when it reads the same (the upstream knows what
   * changed, e.g. behind the definitions; the client re-reads, which is all it costs).
   */
  private async refresh(announced?: ListKind): Promise<void> {
    if (this.closed) {
      return;
    }
    let next: Lists;
    try {
      next = await this.readLists();
    } catch (err) {
      if (this.closed) {
        return;
      }
      this.listsStale = true;
      this.logger.warn(`${this.label}: refreshing its lists failed: ${describe(err)}`);
      return;
    }
    if (this.closed) {
      return;
    }
    const previous = this.lists;
    this.lists = next;
    const events: CatalogEvent[] = [];
    if (announced === 'tools' || !sameDefinitions(previous.tools, next.tools)) {
      events.push({ type: 'tools-changed' });
    }
    if (announced === 'prompts' || !sameDefinitions(previous.prompts, next.prompts)) {
      events.push({ type: 'prompts-changed' });
    }
    if (
      announced === 'resources' ||
      !sameDefinitions(previous.resources, next.resources) ||
      JSON.stringify(previous.templates.map((t) => t.definition)) !==
        JSON.stringify(next.templates.map((t) => t.definition))
    ) {
      events.push({ type: 'resources-changed' });
    }
    for (const event of events) {
      this.listeners.forEach((listener) => listener(event));
    }
  }

  // ---------------------------------------------------------------------------------------
  // Handlers

  /**
   * A tool of the upstream. Of an upstream with the tasks extension, every tool may become a
   * task (the upstream decides per call): the gateway lists it so (`taskSupport: optional`,
   * which 2025-11-25 clients see) and lets the call wait for the upstream's answer before its
   * own task exists (taskLaunchOf), so a call the upstream answers at once is answered so.
   */
  private toolHandler(tool: Tool, exposed: string): ToolHandler {
    const upstreamName = tool.name;
    const tasks = this.upstreamTasks;
    // A 2025-11-25 tool that only runs as a task is called as one (and followed).
    const legacyTask =
      this.upstreamLegacyTasks && tool.execution?.taskSupport === 'required'
        ? { task: { ttl: UPSTREAM_TASK_TTL_MS } }
        : undefined;
    const mayDefer = tasks || legacyTask !== undefined;
    return {
      definition: tasks
        ? { ...tool, name: exposed, execution: { taskSupport: 'optional' } }
        : { ...tool, name: exposed },
      call: (args: JsonObject, ctx: RequestContext) =>
        this.exchange(
          'tools/call',
          upstreamName,
          { name: upstreamName, arguments: args, ...legacyTask },
          ctx,
          (client, params, options) =>
            client.callTool(params as Parameters<Client['callTool']>[0], options),
          mayDefer ? taskLaunchOf(ctx) : undefined,
        ) as Promise<CallToolResult>,
    };
  }

  private promptHandler(prompt: Prompt, exposed: string): PromptHandler {
    const upstreamName = prompt.name;
    return {
      definition: { ...prompt, name: exposed },
      get: (args: Record<string, string>, ctx: RequestContext) =>
        this.exchange(
          'prompts/get',
          upstreamName,
          { name: upstreamName, arguments: args },
          ctx,
          (client, params, options) =>
            client.getPrompt(params as Parameters<Client['getPrompt']>[0], options),
        ) as Promise<GetPromptResult>,
      complete: (request) => this.complete({ type: 'ref/prompt', name: upstreamName }, request),
    };
  }

  private resourceHandler(resource: Resource): ResourceHandler {
    return {
      definition: resource,
      read: (ctx: RequestContext) => this.read(resource.uri, ctx),
      subscribe: (uri: string, session?: ClientSession) => this.subscribe(uri, session),
    };
  }

  private templateHandler(template: ResourceTemplate): ResourceTemplateHandler {
    return {
      definition: template,
      match: uriTemplateMatcher(template.uriTemplate),
      read: (uri: string, _variables: Record<string, string>, ctx: RequestContext) =>
        this.read(uri, ctx),
      complete: (request) =>
        this.complete({ type: 'ref/resource', uri: template.uriTemplate }, request),
      subscribe: (uri: string, session?: ClientSession) => this.subscribe(uri, session),
    };
  }

  /** A client's subscription: on its own upstream session if it has one, else counted. */
  private subscribe(uri: string, session?: ClientSession): Promise<() => void> {
    const own = session && !this.upstreamModern ? this.ownSession(session) : undefined;
    return own ? own.subscribe(uri) : this.subscriptions.claim(uri);
  }

  /** The upstream session of its own a 2025-era client session uses, if any. */
  private ownSession(session: ClientSession): ClientUpstreamSession | undefined {
    const choice = this.clientSessions.of(session);
    return choice.kind === 'own' ? choice.session : undefined;
  }

  /**
   * Where a client request runs: on the caller's own upstream session, else the pooled one.
   * When its own cannot be opened for want of room (the gateway's bound on stdio children),
   * the client session is served by the pooled session from then on, if that one runs: a
   * request served with shared upstream state beats a refused one. Other connect failures
   * are the request's (it connects again under the backend's policies).
   */
  private async laneOf(ctx: RequestContext): Promise<Lane> {
    const own =
      ctx.era === 'legacy' && ctx.session && !this.upstreamModern
        ? this.ownSession(ctx.session)
        : undefined;
    if (!own) {
      return this.pooledLane;
    }
    try {
      await own.connected();
    } catch (err) {
      if (err instanceof StdioUnavailableError) {
        if (!this.client) {
          throw this.toMcpError(err);
        }
        this.logger.warn(
          `${this.label}: no room for an upstream session of client session ` +
            `${own.session.id.slice(0, 8)}… (${err.message}); it shares the pooled session`,
        );
        this.clientSessions.demote(own.session);
        return this.pooledLane;
      }
    }
    return {
      calls: own.calls,
      connected: () => own.connected(),
      drop: (client) => own.drop(client),
    };
  }

  private readonly pooledLane: Lane = {
    calls: this.calls,
    connected: () => this.connected(),
    drop: (client) => this.dropClient(client),
  };

  private read(uri: string, ctx: RequestContext): Promise<ReadResourceResult> {
    return this.exchange('resources/read', uri, { uri }, ctx, (client, params, options) =>
      client.readResource(params as Parameters<Client['readResource']>[0], {
        ...options,
        cacheMode: 'bypass',
      }),
    ).then(
      (result) => result as ReadResourceResult,
      (err: unknown) => {
        throw notFoundInEra(err, uri, ctx);
      },
    );
  }

  /**
   * One client request served by the upstream: tools/call, prompts/get or resources/read.
   * While it runs, the upstream's logs and input requests reach the caller (see
   * upstream-relay). A 2026-07-28 upstream gets the caller's capabilities and a log level in
   * `_meta`, and its `input_required` results are answered through the caller's context and
   * retried with the answers and its requestState, under its own keys. When the caller has
   * to answer first (a 2026-07-28 client: its context unwinds this handler), the upstream
   * request is given up and the unwinding carries on to the engine, which asks the client;
   * the client's retry runs this again from the start with the answers at hand.
   */
  private async exchange(
    method: string,
    target: string,
    params: JsonObject,
    ctx: RequestContext,
    send: (client: Client, params: JsonObject, options: RequestOptions) => Promise<unknown>,
    launch?: TaskLaunchControl,
  ): Promise<Record<string, unknown>> {
    const held = this.heldCalls.take(carriedFromRound(ctx));
    if (held) {
      // The retry of an input round: the upstream request is still open, waiting for it.
      held.call.rebind(ctx);
      return this.settleHeld(held, ctx);
    }
    const lane = await this.laneOf(ctx);
    const call = lane.calls.open(ctx);
    // A 2025-era upstream asks mid-call; a 2026-07-28 client answers with a retry.
    call.holdable = !this.upstreamModern && inputRoundsOf(ctx);
    call.launch = launch?.deferred ? launch : undefined;
    const outcome = this.rounds(method, target, params, call, lane, send, launch);
    return call.holdable ? this.settleHeld(HeldCalls.entry(call, outcome), ctx) : outcome;
  }

  /**
   * The answer of a call that may be held: its upstream request's end, or, when the upstream
   * asks the client for input first, the client's input round (the handler unwinds) with the
   * call held for the retry, whose id goes into the round's requestState.
   */
  private async settleHeld(held: HeldCall, ctx: RequestContext): Promise<Record<string, unknown>> {
    const first = await Promise.race([
      held.outcome.then(
        (result) => ({ result }),
        (error: unknown) => ({ error }),
      ),
      held.call.inputNeeded(),
    ]);
    if ('result' in first) {
      return first.result;
    }
    if ('error' in first) {
      throw first.error;
    }
    held.call.detach();
    if (carryIntoRetry(ctx, held.id)) {
      this.heldCalls.keep(held, this.settings.timeoutMs);
    } else {
      held.call.abort(first.reason);
    }
    throw first.reason;
  }

  /**
   * The upstream request(s) of one call, to its end: input_required rounds of a 2026-07-28
   * upstream are answered and retried, and a task it makes is followed. The call's context
   * is read afresh each time: a held call passes from request to retry.
   */
  private async rounds(
    method: string,
    target: string,
    params: JsonObject,
    call: RelayedCall,
    lane: Lane,
    send: (client: Client, params: JsonObject, options: RequestOptions) => Promise<unknown>,
    launch?: TaskLaunchControl,
  ): Promise<Record<string, unknown>> {
    try {
      let leg = params;
      for (let round = 1; ; round++) {
        const result = (await this.traced(method, target, call.ctx.trace, (meta) =>
          this.request(
            this.resilience.call,
            (client, signal) =>
              send(client, withRequestMeta(client, leg, call.ctx, call.token, meta, !!launch), {
                signal,
                timeout: this.sdkTimeout(),
                allowInputRequired: true,
                headers: call.headers,
              }),
            call.signal,
            lane,
          ),
        )) as Record<string, unknown>;
        if (result.resultType !== 'input_required') {
          const task = upstreamTaskOf(result);
          if (task) {
            // The upstream made the call a task: so does the gateway, which follows it. A
            // 2025-11-25 task that asks for input first gets it on the request (below).
            if (this.upstreamModern || !launch?.deferred) {
              await launch?.begin();
            }
            if (this.upstreamModern) {
              // Another node can follow it on if this one stops (stateless upstream tasks).
              await attachTaskWork(
                call.ctx,
                upstreamTaskWork({
                  tenantId: this.context.tenantId,
                  backend: this.context.backend.name,
                  taskId: task.taskId as string,
                }),
              ).catch(() => false);
            }
            return this.upstreamModern
              ? await followUpstreamTask(task, call.ctx, this.taskMethods(lane), this.label)
              : await followLegacyUpstreamTask(
                  task,
                  call.ctx,
                  this.legacyTaskMethods(lane, call),
                  call.launch,
                );
          }
          return withoutEnvelope(result);
        }
        if (round >= MAX_INPUT_ROUNDS) {
          throw new McpError(
            ErrorCode.InternalError,
            `${this.label}: ${method} still required input after ${MAX_INPUT_ROUNDS} rounds`,
          );
        }
        const inputResponses = await answerInputRequests(call.ctx, result.inputRequests);
        leg = {
          ...params,
          ...(Object.keys(inputResponses).length > 0 && { inputResponses }),
          ...(typeof result.requestState === 'string' && { requestState: result.requestState }),
        };
      }
    } catch (err) {
      // The caller's own input round outranks whatever the abandoned request ended with.
      if (call.unwoundBy) {
        throw call.unwoundBy.reason;
      }
      throw err;
    } finally {
      lane.calls.close(call);
    }
  }

  /**
   * Follows an upstream task of this backend that a gateway task followed on a node that
   * stopped (see upstreamTaskWork): to its result or error; `cancellation` is the gateway
   * task's. Only a 2026-07-28 upstream's tasks can be taken over: they belong to no session.
   */
  resumeTask(
    taskId: string,
    cancellation: Cancellation,
    progress?: (progress: TaskProgress) => void,
  ): Promise<JsonObject> | undefined {
    if (this.closed) {
      return undefined;
    }
    const ctx = adoptedTaskContext(cancellation, progress);
    return this.connected().then(() => {
      if (!this.upstreamModern) {
        throw new McpError(
          ErrorCode.InternalError,
          `${NODE_STOPPED_MESSAGE}, and ${this.label}'s task cannot be followed from another node`,
        );
      }
      return followUpstreamTask(
        { taskId, status: 'working' },
        ctx,
        this.taskMethods(this.pooledLane),
        this.label,
      );
    });
  }

  /**
   * tasks/get, tasks/update and tasks/cancel on the lane a task was created on, each under the
   * backend's call policies (timeout, breaker, bulkhead) and declaring the extension.
   */
  private taskMethods(lane: Lane): UpstreamTaskMethods {
    const meta = { [META_CLIENT_CAPABILITIES]: withTasksExtension({}) };
    const send = (method: string, params: JsonObject, signal?: AbortSignal) =>
      this.request(
        this.resilience.call,
        (client, deadline) =>
          client.request({ method, params: { ...params, _meta: meta } } as never, ANY_RESULT, {
            signal: deadline,
            timeout: this.sdkTimeout(),
          }),
        signal,
        lane,
      );
    return {
      get: (taskId, signal) => send('tasks/get', { taskId }, signal),
      update: (taskId, inputResponses, signal) =>
        send('tasks/update', { taskId, inputResponses }, signal).then(() => undefined),
      cancel: (taskId) => send('tasks/cancel', { taskId }).then(() => undefined),
    };
  }

  /**
   * tasks/get, tasks/result and tasks/cancel of a 2025-11-25 upstream, on the lane the task was
   * created on. tasks/result carries the call's relay headers: the input requests on its
   * stream reach the call they belong to.
   */
  private legacyTaskMethods(lane: Lane, call: RelayedCall): LegacyUpstreamTaskMethods {
    const send = (
      method: string,
      params: JsonObject,
      signal?: AbortSignal,
      options?: Pick<RequestOptions, 'headers'>,
    ) =>
      this.request(
        this.resilience.call,
        (client, deadline) =>
          client.request({ method, params } as never, ANY_RESULT, {
            signal: deadline,
            timeout: this.sdkTimeout(),
            ...options,
          }),
        signal,
        lane,
      );
    // The call's signal: it follows the caller's, and ends the wait of tasks/result when the
    // client has to answer first (an input round unwinds the call).
    return {
      get: (taskId) => send('tasks/get', { taskId }, call.signal),
      result: (taskId) => send('tasks/result', { taskId }, call.signal, { headers: call.headers }),
      cancel: (taskId) => send('tasks/cancel', { taskId }).then(() => undefined),
    };
  }

  /** completion/complete, when the upstream offers completions; otherwise no suggestions. */
  private async complete(
    ref: JsonObject,
    request: CompletionRequest,
  ): Promise<CompleteResult['completion']> {
    const result = await this.request(this.resilience.call, (client, signal) =>
      offers(client, 'completions')
        ? client.complete(
            {
              ref,
              argument: { name: request.argument, value: request.value },
              ...(Object.keys(request.context).length > 0 && {
                context: { arguments: { ...request.context } },
              }),
            } as Parameters<Client['complete']>[0],
            { signal, timeout: this.sdkTimeout() },
          )
        : Promise.resolve({ completion: { values: [] } }),
    );
    const completion = (result as { completion?: CompleteResult['completion'] }).completion;
    return completion ?? { values: [] };
  }

  /**
   * An input request of a 2025-era upstream, passed to the call it belongs to, else to the
   * client session the upstream session serves alone. On the pooled session a request that
   * belongs to no call is refused, roots/list included: an empty list would be a false answer
   * the upstream caches as the client's roots, an error tells it that no client answered
   * (it may ask again, e.g. during a call).
   */
  private async relayInput(relay: Relay, method: string, params: unknown): Promise<JsonObject> {
    const { call, params: tagged } = relay.calls.route(params, relay.onlyCall);
    const { params: asked, key } = takeInputKey(tagged);
    if (!call) {
      if (relay.session && !relay.session.closed) {
        return relay.session.request(method as InputMethod, asked);
      }
      throw new McpError(
        ErrorCode.InvalidRequest,
        `${method} can only be answered during a request from the gateway`,
      );
    }
    const named = key ?? (call.holdable ? call.nextKey(method) : undefined);
    try {
      const answer = await askClient(call.ctx, method, asked, named);
      // Input gathered before the task exists: the call is worth its task now.
      void call.launch?.begin().catch(() => undefined);
      return answer;
    } catch (err) {
      if (err instanceof Error) {
        // The client refused or failed (a missing capability, a timeout): the upstream hears so.
        throw err;
      }
      if (call.holdable && named !== undefined) {
        // The client answers in its retry: the upstream request waits for it.
        return call.hold(method, asked, named, err);
      }
      call.unwindFor(err);
      throw new McpError(ErrorCode.RequestCancelled, 'The client is asked first; retry later');
    }
  }

  /**
   * A progress notification of the upstream, passed to the call whose token it carries. The
   * calls carry their own tokens rather than the SDK's (onprogress): the SDK forgets a
   * request's token when its response arrives, before it dispatches a notification read just
   * ahead of that response (one stdio chunk), which would then be lost.
   */
  private relayProgress(relay: Relay, params: unknown): void {
    const p = (params ?? {}) as JsonObject;
    const call = relay.calls.get(p.progressToken);
    if (!call || typeof p.progress !== 'number') {
      return;
    }
    const total = typeof p.total === 'number' ? p.total : undefined;
    const message = typeof p.message === 'string' ? p.message : undefined;
    void call.ctx.progress(p.progress, total, message).catch(() => undefined);
  }

  /**
   * A log message of the upstream, passed to the call it belongs to, else to the client
   * session the upstream session serves alone (at that session's level), else dropped.
   */
  private relayLog(relay: Relay, params: unknown): void {
    const { call, params: message } = relay.calls.route(params, relay.onlyCall);
    if (!isLogLevel(message.level)) {
      return;
    }
    const logger = typeof message.logger === 'string' ? message.logger : undefined;
    if (call) {
      void call.ctx.log(message.level, message.data, logger).catch(() => undefined);
    } else if (relay.session) {
      relay.session.log(message.level, message.data, logger);
    } else {
      this.logger.debug(`${this.label}: a log message of no request in progress was dropped`);
    }
  }

  /**
   * A resource update of the upstream (on a subscriptions/listen stream, or unsolicited from a
   * 2025-era upstream), passed to the watchers: the engine tells the subscribed clients.
   */
  private relayUpdate(params: unknown): void {
    const uri = (params as { uri?: unknown } | undefined)?.uri;
    if (this.closed || typeof uri !== 'string') {
      return;
    }
    const event: CatalogEvent = { type: 'resource-updated', uri };
    this.listeners.forEach((listener) => listener(event));
  }

  /** See `traceUpstream`: a CLIENT span, and the trace context for the request's `_meta`. */
  private traced<T>(
    method: string,
    target: string,
    trace: unknown,
    send: (meta?: Record<string, string>) => Promise<T>,
  ): Promise<T> {
    const peer = {
      tenant: this.context.tenantSlug,
      backend: this.context.backend.name,
      url: this.connector.url,
    };
    return traceUpstream(this.tracing, peer, method, target, trace, send, this.connector.peer);
  }

  /** The SDK's own timer stays behind ours, so the policy's clearer error is the one seen. */
  private sdkTimeout(): number {
    return this.settings.timeoutMs + 1_000;
  }

  // ---------------------------------------------------------------------------------------
  // Requests

  /**
   * Runs `fn` against the pooled client under `policy`. `callerSignal` (the client request's)
   * and the policy's timeout both abort the upstream request. Upstream JSON-RPC errors keep
   * their code and message; everything else becomes -32603 "Backend <name> unavailable: …".
   */
  private async request<T>(
    policy: UpstreamResilience['call'],
    fn: (client: Client, signal: AbortSignal) => Promise<T>,
    callerSignal?: AbortSignal,
    lane: Lane = this.pooledLane,
  ): Promise<T> {
    let result: T;
    try {
      result = await executeAlone(policy, async ({ signal: deadline }) => {
        const started = performance.now();
        try {
          const value = await this.attempt(lane, fn, deadline, callerSignal);
          this.metrics?.request('success', secondsSince(started));
          this.metrics?.contact(true);
          return value;
        } catch (err) {
          this.recordFailure(err, started);
          throw err;
        }
      });
    } catch (err) {
      if (refusedByPolicy(err)) {
        this.metrics?.request('refused', 0);
      }
      throw this.toMcpError(err, callerSignal);
    }
    if (this.listsStale) {
      this.listsStale = false;
      void this.refresh();
    }
    return result;
  }

  /** One attempt, inside the policies: the lane's client and the request on it. */
  private async attempt<T>(
    lane: Lane,
    fn: (client: Client, signal: AbortSignal) => Promise<T>,
    deadline: AbortSignal,
    callerSignal?: AbortSignal,
  ): Promise<T> {
    const signal = callerSignal ? AbortSignal.any([deadline, callerSignal]) : deadline;
    const client = await lane.connected();
    try {
      return await fn(client, signal);
    } catch (err) {
      // An upstream JSON-RPC error, our caller leaving or our own shutdown: no outage.
      if (err instanceof ProtocolError || callerSignal?.aborted || this.closed) {
        throw new UncountedFailure(err);
      }
      if (!deadline.aborted) {
        // The connection itself failed: the next request builds a fresh one.
        void lane.drop(client);
      }
      throw err;
    }
  }

  /** Metrics of a failed attempt: what the breaker counts is a failed contact too. */
  private recordFailure(err: unknown, started: number): void {
    if (!this.metrics) {
      return;
    }
    if (err instanceof TargetRefusedError || err instanceof BackendClosedError) {
      this.metrics.request('refused', 0);
      if (err instanceof TargetRefusedError) {
        this.metrics.contact(false);
      }
      return;
    }
    this.metrics.request('error', secondsSince(started));
    if (err instanceof UncountedFailure) {
      if (err.failure instanceof ProtocolError) {
        // The upstream answered, with an error: it is reachable.
        this.metrics.contact(true);
      }
      return;
    }
    this.metrics.contact(false);
  }

  private toMcpError(err: unknown, callerSignal?: AbortSignal): McpError {
    const failure = err instanceof UncountedFailure ? err.failure : err;
    if (failure instanceof McpError) {
      return failure;
    }
    if (failure instanceof ProtocolError) {
      return new McpError(failure.code, failure.message, failure.data);
    }
    if (callerSignal?.aborted) {
      return new McpError(ErrorCode.RequestCancelled, 'Request cancelled');
    }
    const reason = policyRefusal(failure, this.settings.timeoutMs) ?? describe(failure);
    return new BackendUnavailableError(`${this.label} unavailable: ${reason}`);
  }

  private connected(): Promise<Client> {
    if (this.closed) {
      return Promise.reject(new BackendClosedError());
    }
    if (!this.client) {
      const connecting = this.connectClient();
      this.client = connecting;
      // A failed connect is not kept: the next request tries again.
      connecting.catch(() => {
        if (this.client === connecting) {
          this.client = undefined;
        }
      });
    }
    return this.client;
  }

  /** The pooled client: lists, 2026-07-28 requests, and sessions without one of their own. */
  private async connectClient(): Promise<Client> {
    const { client, transport } = await this.openClient(this.pooledRelay);
    client.onclose = () => {
      this.logClosed(transport);
      void this.dropClient(client);
    };
    this.upstreamModern = client.getProtocolEra() === 'modern';
    this.upstreamTasks = this.upstreamModern && offersTasks(client.getServerCapabilities());
    this.upstreamLegacyTasks =
      !this.upstreamModern && offersLegacyToolTasks(client.getServerCapabilities());
    // The upstream may have restarted with other lists and owes us no list_changed for that.
    // Re-read them once a request succeeds (now they would meet a half-open circuit).
    this.listsStale = this.connectedOnce;
    this.connectedOnce = true;
    if (this.closed) {
      await client.close();
      throw new BackendClosedError();
    }
    // A new upstream session (or process) knows nothing of earlier subscriptions.
    this.subscriptions.attach(client);
    return client;
  }

  /**
   * The upstream client of one client session (for stdio its own child, counted in the
   * gateway's bound). Its list_changed notifications re-read the backend's lists (on the
   * pooled client) and are passed on, as the pooled client's are. After a loss (a crash, an
   * idle stop) the next request of that session connects again.
   */
  private async connectClientSession(own: ClientUpstreamSession): Promise<Client> {
    if (this.closed) {
      throw new BackendClosedError();
    }
    const relay: Relay = { calls: own.calls, onlyCall: true, session: own.session };
    const { client, transport } = await this.openClient(relay);
    client.onclose = () => {
      this.logClosed(transport);
      void own.drop(client);
    };
    return client;
  }

  /**
   * A new SDK client on a new transport, relaying through `relay`, initialised. The
   * upstream's list_changed notifications refresh the backend's lists.
   */
  private async openClient(relay: Relay): Promise<{ client: Client; transport: Transport }> {
    const transport = await this.connector.open();
    const onChanged = <T>(kind: ListKind): ListChangedOptions<T> => ({
      autoRefresh: false,
      onChanged: (error) => {
        if (error) {
          // The notification channel failed (e.g. the upstream went away): nothing changed.
          this.logger.debug(`${this.label}: ${kind} change feed: ${describe(error)}`);
          return;
        }
        void this.refresh(kind);
      },
    });
    const client = new Client(CLIENT_INFO, {
      capabilities: CLIENT_CAPABILITIES,
      versionNegotiation: { mode: 'auto' },
      // input_required results are answered by the caller, per call (see exchange()).
      inputRequired: { autoFulfill: false },
      listChanged: {
        tools: onChanged('tools'),
        prompts: onChanged('prompts'),
        resources: onChanged('resources'),
      },
    });
    client.onerror = (err) => this.logger.debug(`${this.label}: ${describe(err)}`);
    // The answer is the caller's client's, checked by the SDK against the method's schema.
    const input = (request: { method: string; params?: unknown }) =>
      this.relayInput(relay, request.method, request.params) as Promise<never>;
    client.setRequestHandler('elicitation/create', input);
    client.setRequestHandler('sampling/createMessage', input);
    client.setRequestHandler('roots/list', input);
    client.setNotificationHandler('notifications/progress', (notification) =>
      this.relayProgress(relay, notification.params),
    );
    client.setNotificationHandler('notifications/message', (notification) =>
      this.relayLog(relay, notification.params),
    );
    client.setNotificationHandler('notifications/resources/updated', (notification) =>
      this.relayUpdate(notification.params),
    );
    try {
      await client.connect(transport, { timeout: this.settings.timeoutMs });
      liftTaskResults(transport);
      if (client.getProtocolEra() !== 'modern' && offers(client, 'logging')) {
        // 2025-era logs are per session: take them all and filter per client (each call's
        // context, or the client session's own level). The level a client sets stays with
        // its session here, so a new upstream session needs nothing replayed.
        // An upstream that refuses still serves; it keeps its own level.
        await client
          .setLoggingLevel('debug', { timeout: this.settings.timeoutMs })
          .catch((err: unknown) =>
            this.logger.debug(`${this.label}: logging/setLevel: ${describe(err)}`),
          );
      }
    } catch (err) {
      // A stdio child or socket started before the handshake failed must not outlive it.
      await transport.close().catch(() => undefined);
      throw err;
    }
    return { client, transport };
  }

  /** Says why an upstream connection closed, unless it was our own doing. */
  private logClosed(transport: Transport): void {
    if (this.closed) {
      // Our own close: nothing to say.
    } else if (this.connector.closedOnPurpose?.(transport)) {
      this.logger.debug(`${this.label}: stopped while idle; started again on the next request`);
    } else {
      // For stdio the process is gone: the next request starts a new one.
      this.logger.warn(`${this.label}: connection closed; reconnecting on the next request`);
    }
  }

  /** Forgets the pooled client (only `which`, when given) and closes it in the background. */
  private dropClient(which?: Client): Promise<void> {
    return releaseClient(
      () => this.client,
      () => (this.client = undefined),
      this.subscriptions,
      which,
    );
  }
}

/**
 * The params of one upstream request with its `_meta`: the call's progress token, the trace
 * context, and for a 2026-07-28 upstream the caller's input capabilities (so it asks only for
 * what the caller can answer) and a log level (the caller's context filters by its own).
 */
function withRequestMeta(
  client: Client,
  params: JsonObject,
  ctx: RequestContext,
  progressToken: string,
  trace?: Record<string, string>,
  tasks = false,
): JsonObject {
  const modern = client.getProtocolEra() === 'modern';
  const capabilities = inputCapabilities(ctx.clientCapabilities);
  return {
    ...params,
    _meta: {
      ...trace,
      progressToken,
      ...(modern && {
        [META_CLIENT_CAPABILITIES]: tasks ? withTasksExtension(capabilities) : capabilities,
        [META_LOG_LEVEL]: 'debug',
      }),
    },
  };
}

/**
 * An upstream's resource-not-found (-32002, or -32602 naming the URI in `data.uri`: the codes
 * of the two eras) in the code of the caller's era, with `data.uri`; other errors as they are.
 */
function notFoundInEra(err: unknown, uri: string, ctx: RequestContext): unknown {
  if (!(err instanceof McpError)) {
    return err;
  }
  const data =
    typeof err.data === 'object' && err.data !== null ? (err.data as Record<string, unknown>) : {};
  const notFound =
    err.code === ErrorCode.ResourceNotFound ||
    (err.code === ErrorCode.InvalidParams && data.uri === uri);
  if (!notFound) {
    return err;
  }
  const code = ctx.era === 'modern' ? ErrorCode.InvalidParams : ErrorCode.ResourceNotFound;
  return new McpError(code, err.message, { ...data, uri });
}

/**
 * An input request's params without the key its server named in `_meta` (META.inputKey, which
 * Portico sends its 2025-era clients), and that key: a 2026-07-28 caller is asked under it.
 * The upstream's related-task `_meta` goes too.
 */
function takeInputKey(params: JsonObject): { params: JsonObject; key?: string } {
  const meta = params._meta;
  if (
    typeof meta !== 'object' ||
    meta === null ||
    !(META.inputKey in meta || META.relatedTask in meta)
  ) {
    return { params };
  }
  // The upstream's own task (a 2025-11-25 task's question) means nothing to the caller.
  const { [META.inputKey]: named, [META.relatedTask]: _task, ...rest } = meta as JsonObject;
  const clean: JsonObject = { ...params };
  if (Object.keys(rest).length > 0) {
    clean._meta = rest;
  } else {
    delete clean._meta;
  }
  const key =
    typeof named === 'string' && named.length > 0 && named.length <= 128 ? named : undefined;
  return { params: clean, key };
}

/** The upstream's result without its own protocol envelope (our engine adds ours). */
function withoutEnvelope<T extends object>(result: T): Record<string, unknown> {
  const out: Record<string, unknown> = { ...(result as Record<string, unknown>) };
  for (const key of UPSTREAM_ENVELOPE) {
    delete out[key];
  }
  const meta = out._meta;
  if (meta && typeof meta === 'object') {
    const kept = Object.fromEntries(
      Object.entries(meta).filter(([key]) => !key.startsWith(RESERVED_META_PREFIX)),
    );
    if (Object.keys(kept).length > 0) {
      out._meta = kept;
    } else {
      delete out._meta;
    }
  }
  return out;
}

function sameDefinitions(
  a: ReadonlyMap<string, { definition: unknown }>,
  b: ReadonlyMap<string, { definition: unknown }>,
): boolean {
  if (a.size !== b.size) {
    return false;
  }
  for (const [key, value] of a) {
    const other = b.get(key);
    if (!other || JSON.stringify(other.definition) !== JSON.stringify(value.definition)) {
      return false;
    }
  }
  return true;
}

/** Whether the upstream announced `capability` (lists it does not offer are not asked for). */
function offers(
  client: Client,
  capability: 'tools' | 'prompts' | 'resources' | 'completions' | 'logging',
): boolean {
  return client.getServerCapabilities()?.[capability] !== undefined;
}

/** A 2025-11-25 server's `tasks` capability covers tools/call. */
function offersLegacyToolTasks(capabilities: unknown): boolean {
  const tasks = (capabilities as { tasks?: { requests?: { tools?: { call?: unknown } } } })?.tasks;
  return typeof tasks?.requests?.tools?.call === 'object' && tasks.requests.tools.call !== null;
}

function secondsSince(started: number): number {
  return (performance.now() - started) / 1000;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

import { Logger } from '@nestjs/common';
import {
  CatalogEvent,
  CatalogListener,
  CompletionRequest,
  type ClientSession,
  ErrorCode,
  McpError,
  type MaybePromise,
  type PromptHandler,
  type ResourceRelease,
  type ResourceHandler,
  type ResourceTemplateHandler,
  type ToolHandler,
} from '@portico/mcp-protocol';
import type {
  BackendMetrics,
  BreakerState,
  GatewayMetrics,
  ReplicatedBackendMetrics,
  Tracing,
} from '@portico/observability';
import type { BackendContext, BackendSource } from './backend-source';
import { McpUpstreamSource } from './mcp-upstream.source';
import { Replica, ReplicaSet, replicaName } from './replica-set';
import { TargetRefusedError } from './target-guard';
import type { UpstreamSettings } from './upstream-settings';
import {
  upstreamConnector,
  type UpstreamConnector,
  type UpstreamMcpKind,
} from './upstream-transports';

type Member = McpUpstreamSource;

/** The catalog as exposed: the lists of one replica, with handlers that pick a replica per call. */
interface View {
  readonly tools: Map<string, ToolHandler>;
  readonly prompts: Map<string, PromptHandler>;
  readonly resources: Map<string, ResourceHandler>;
  readonly templates: ResourceTemplateHandler[];
}

const EMPTY_VIEW: View = {
  tools: new Map(),
  prompts: new Map(),
  resources: new Map(),
  templates: [],
};

/** A replica without the tool, prompt or resource asked for: nothing was sent, another may serve. */
class NotServedHere extends Error {
  constructor(readonly what: string) {
    super(`${what} is not offered by this replica`);
    this.name = 'NotServedHere';
  }
}

/**
 * An upstream MCP backend with replicas (settings.replicas): one McpUpstreamSource per
 * replica, each with its own connection, circuit breaker and bulkhead, so one replica's
 * failures never open another's circuit. Replicas are assumed to serve the same catalog: the
 * lists come from one replica in rotation (the last to announce a change, since a list_changed
 * from any replica means the catalog moved), and each call goes to a replica in rotation chosen
 * by `loadBalancing`. A replica leaves rotation when its health probes (`ping`) fail, when a
 * call cannot reach it or its circuit opens, and returns after `healthyAfter` good probes;
 * replicas down at registration are connected by the health checks once they answer.
 *
 * A call that failed because its replica could not be reached is sent to another replica when
 * repeating it is harmless: resources/read, prompts/get, completions, and tools annotated
 * read-only or idempotent. Other tool calls fail as they would without replicas.
 */
export class ReplicatedUpstreamSource implements BackendSource {
  private readonly logger = new Logger(ReplicatedUpstreamSource.name);
  private readonly listeners = new Set<CatalogListener>();
  private readonly set: ReplicaSet<Member>;
  private readonly label: string;
  /** The replica whose lists are exposed. */
  private lister?: Replica<Member>;
  private view: View = EMPTY_VIEW;
  private readonly unwatch = new Map<Replica<Member>, () => void>();
  private closed = false;

  private constructor(
    private readonly context: BackendContext,
    private readonly settings: UpstreamSettings,
    private readonly connectors: readonly UpstreamConnector[],
    private readonly metrics: ReplicatedBackendMetrics | undefined,
    private readonly tracing: Tracing | undefined,
  ) {
    this.label = `Backend ${context.backend.name}`;
    const targets = [context.backend.target, ...settings.replicas];
    this.set = new ReplicaSet<Member>(
      targets.map((target, index) => new Replica<Member>(index, replicaName(target))),
      {
        label: this.label,
        loadBalancing: settings.loadBalancing,
        healthCheck: settings.healthCheck,
        probe: (replica) => this.probe(replica),
        onChange: (replica) => this.rotationChanged(replica),
      },
    );
  }

  /**
   * Connects every replica (target first, then settings.replicas); resolves once each has
   * connected or failed, when at least one did. Throws when a replica's target is refused
   * (a settings error, not an outage) or when none could be reached.
   */
  static async connect(
    kind: Exclude<UpstreamMcpKind, 'mcp-stdio'>,
    context: BackendContext,
    settings: UpstreamSettings,
    metrics?: GatewayMetrics,
    tracing?: Tracing,
  ): Promise<ReplicatedUpstreamSource> {
    const targets = [context.backend.target, ...settings.replicas];
    const connectors = targets.map((target, index) => {
      const replicaContext = { ...context, backend: { ...context.backend, target } };
      try {
        return upstreamConnector(kind, replicaContext, settings, tracing);
      } catch (err) {
        throw index === 0 ? err : replicaError(context, index, err);
      }
    });
    // Every target passes the SSRF guard before anything is sent to any of them.
    await Promise.all(
      connectors.map((connector, index) =>
        connector.check().catch((err: unknown) => {
          // A name that does not resolve (yet) is an outage; a refused address is not.
          if (err instanceof TargetRefusedError) {
            throw replicaError(context, index, err);
          }
        }),
      ),
    );
    const source = new ReplicatedUpstreamSource(
      context,
      settings,
      connectors,
      metrics?.replicatedBackend(context.tenantSlug, context.backend.name, targets.length),
      tracing,
    );
    const failures = await Promise.all(
      source.set.replicas.map((replica) =>
        source.join(replica).then(
          // It has just answered every list request: in rotation at once.
          () => source.set.admit(replica),
          (err: unknown) => `replica ${replica.index}: ${describe(err)}`,
        ),
      ),
    );
    if (source.set.healthy().length === 0) {
      await source.close();
      throw new Error(`${source.label}: no replica could be reached (${failures.join('; ')})`);
    }
    source.set.start();
    return source;
  }

  listTools(): readonly ToolHandler[] {
    return [...this.view.tools.values()];
  }
  getTool(name: string): ToolHandler | undefined {
    return this.view.tools.get(name);
  }
  listResources(): readonly ResourceHandler[] {
    return [...this.view.resources.values()];
  }
  getResource(uri: string): ResourceHandler | undefined {
    return this.view.resources.get(uri);
  }
  listResourceTemplates(): readonly ResourceTemplateHandler[] {
    return this.view.templates;
  }
  listPrompts(): readonly PromptHandler[] {
    return [...this.view.prompts.values()];
  }
  getPrompt(name: string): PromptHandler | undefined {
    return this.view.prompts.get(name);
  }

  watch(listener: CatalogListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.set.close();
    this.listeners.clear();
    for (const stop of this.unwatch.values()) {
      stop();
    }
    this.unwatch.clear();
    await Promise.all(
      this.set.replicas.map((replica) =>
        replica.member ? replica.member.close().catch(() => undefined) : Promise.resolve(),
      ),
    );
    this.metrics?.remove();
  }

  // ---------------------------------------------------------------------------------------
  // Replicas

  /** Connects `replica` and reads its lists; rejects when it cannot be reached. */
  private async join(replica: Replica<Member>): Promise<void> {
    // What a connection attempt that fails reports (its breaker opening) is no verdict.
    let joined = false;
    const member = await McpUpstreamSource.connect(
      this.context,
      this.settings,
      this.connectors[replica.index],
      this.observed(replica, () => joined),
      this.tracing,
    );
    if (this.closed) {
      await member.close();
      return;
    }
    replica.member = member;
    joined = true;
    this.unwatch.set(
      replica,
      member.watch((event) => this.replicaEvent(replica, event)),
    );
  }

  /** A health probe: ping a connected replica, connect one that never was. */
  private async probe(replica: Replica<Member>): Promise<void> {
    if (!replica.member) {
      await this.join(replica);
      return;
    }
    await replica.member.ping(this.settings.healthCheck.timeoutMs);
  }

  /**
   * What McpUpstreamSource reports through its backend series reaches the replica set too: a
   * failed contact is a request that could not reach the replica, an open circuit one that
   * refuses calls. Both take it out of rotation without waiting for the next probe. (The
   * source asks the gateway's metrics for its series by backend name; each replica gets a
   * view that answers with the replica's share of the backend's series.)
   */
  private observed(
    replica: Replica<Member>,
    joined: () => boolean,
  ): Pick<GatewayMetrics, 'backend'> {
    const view: Pick<GatewayMetrics, 'backend'> = {
      backend: () => {
        const series: BackendMetrics | undefined = this.metrics?.replica(replica.index);
        return {
          request: (outcome, seconds) => series?.request(outcome, seconds),
          contact: (ok) => {
            series?.contact(ok);
            if (!ok && joined()) {
              this.set.markDown(replica, 'a request could not reach it');
            }
          },
          circuit: (state: BreakerState) => {
            series?.circuit(state);
            if (state === 'open' && joined()) {
              this.set.markDown(replica, 'its circuit opened', this.settings.breakerResetMs);
            }
          },
          remove: () => series?.remove(),
        };
      },
    };
    return view;
  }

  private rotationChanged(replica: Replica<Member>): void {
    this.metrics?.health(replica.index, replica.up);
    if (replica.up && (!this.lister || !this.lister.up)) {
      this.useLists(replica);
    } else if (!replica.up && replica === this.lister) {
      const next = this.set.healthy()[0];
      if (next) {
        this.useLists(next);
      }
    }
  }

  /** A list change of any replica: its lists, just re-read, become the exposed ones. */
  private replicaEvent(replica: Replica<Member>, event: CatalogEvent): void {
    if (this.closed) {
      return;
    }
    if (event.type !== 'resource-updated' && (replica.up || !this.lister?.up)) {
      this.useLists(replica, event);
      return;
    }
    this.emit(event);
  }

  /**
   * Exposes the lists of `replica`. Watchers hear of every list that differs from the ones
   * exposed so far, and of `announced` (what the replica said changed) in any case.
   */
  private useLists(replica: Replica<Member>, announced?: CatalogEvent): void {
    const member = replica.member;
    if (!member || this.closed) {
      return;
    }
    const previous = this.view;
    this.lister = replica;
    this.view = {
      tools: new Map(member.listTools().map((h) => [h.definition.name, this.tool(h)])),
      prompts: new Map(member.listPrompts().map((h) => [h.definition.name, this.prompt(h)])),
      resources: new Map(member.listResources().map((h) => [h.definition.uri, this.resource(h)])),
      templates: member.listResourceTemplates().map((h) => this.template(h)),
    };
    if (previous === EMPTY_VIEW) {
      return;
    }
    const changed = new Set<CatalogEvent['type']>();
    if (announced) {
      changed.add(announced.type);
    }
    if (differ(previous.tools, this.view.tools)) {
      changed.add('tools-changed');
    }
    if (differ(previous.prompts, this.view.prompts)) {
      changed.add('prompts-changed');
    }
    if (
      differ(previous.resources, this.view.resources) ||
      JSON.stringify(previous.templates.map((t) => t.definition)) !==
        JSON.stringify(this.view.templates.map((t) => t.definition))
    ) {
      changed.add('resources-changed');
    }
    for (const type of changed) {
      if (type !== 'resource-updated') {
        this.emit({ type });
      }
    }
  }

  private emit(event: CatalogEvent): void {
    this.listeners.forEach((listener) => listener(event));
  }

  // ---------------------------------------------------------------------------------------
  // Handlers: each call goes to a replica chosen then

  private tool(handler: ToolHandler): ToolHandler {
    const name = handler.definition.name;
    const annotations = handler.definition.annotations;
    const harmless = annotations?.readOnlyHint === true || annotations?.idempotentHint === true;
    return {
      definition: handler.definition,
      call: (args, ctx) =>
        this.dispatch(`Tool ${name}`, harmless, (member) => member.getTool(name)?.call(args, ctx)),
    };
  }

  private prompt(handler: PromptHandler): PromptHandler {
    const name = handler.definition.name;
    return {
      definition: handler.definition,
      get: (args, ctx) =>
        this.dispatch(`Prompt ${name}`, true, (member) => member.getPrompt(name)?.get(args, ctx)),
      complete: (request: CompletionRequest) =>
        this.dispatch(`Prompt ${name}`, true, (member) => {
          const prompt = member.getPrompt(name);
          return prompt && (prompt.complete?.(request) ?? { values: [] });
        }),
    };
  }

  private resource(handler: ResourceHandler): ResourceHandler {
    const uri = handler.definition.uri;
    return {
      definition: handler.definition,
      read: (ctx) =>
        this.dispatch(`Resource ${uri}`, true, (member) => member.getResource(uri)?.read(ctx)),
      ...(handler.subscribe && {
        subscribe: (claimed: string, session?: ClientSession) =>
          this.subscribe(claimed, (member) => member.getResource(uri), session),
      }),
    };
  }

  private template(handler: ResourceTemplateHandler): ResourceTemplateHandler {
    const uriTemplate = handler.definition.uriTemplate;
    const find = (member: Member) =>
      member.listResourceTemplates().find((t) => t.definition.uriTemplate === uriTemplate);
    return {
      definition: handler.definition,
      match: (uri) => handler.match(uri),
      read: (uri, variables, ctx) =>
        this.dispatch(`Resource template ${uriTemplate}`, true, (member) =>
          find(member)?.read(uri, variables, ctx),
        ),
      complete: (request) =>
        this.dispatch(`Resource template ${uriTemplate}`, true, (member) => {
          const template = find(member);
          return template && (template.complete?.(request) ?? { values: [] });
        }),
      ...(handler.subscribe && {
        subscribe: (uri: string, session?: ClientSession) => this.subscribe(uri, find, session),
      }),
    };
  }

  /**
   * A client's subscription to `uri`, claimed at the replica whose lists are exposed: its
   * updates reach watchers like any replica's. It stays with that replica until released.
   */
  private subscribe(
    uri: string,
    find: (
      member: Member,
    ) =>
      | { subscribe?(uri: string, session?: ClientSession): MaybePromise<ResourceRelease> }
      | undefined,
    session?: ClientSession,
  ): MaybePromise<ResourceRelease> {
    const member = this.lister?.member;
    const handler = member && find(member);
    return handler?.subscribe ? handler.subscribe(uri, session) : () => undefined;
  }

  /**
   * Runs `send` on a replica in rotation. It is sent to another one when the chosen replica
   * does not offer `what` (nothing was sent), or when it could not be reached and the request
   * is `harmless` to repeat.
   */
  private async dispatch<R>(
    what: string,
    harmless: boolean,
    send: (member: Member) => R | Promise<R> | undefined,
  ): Promise<R> {
    try {
      return await this.set.run(
        async (replica) => {
          const answer = send(replica.member!);
          if (answer === undefined) {
            throw new NotServedHere(what);
          }
          return await answer;
        },
        (err, replica) =>
          err instanceof NotServedHere ||
          (harmless &&
            !replica.up &&
            err instanceof McpError &&
            err.code === ErrorCode.InternalError),
      );
    } catch (err) {
      if (err instanceof NotServedHere) {
        throw new McpError(ErrorCode.InvalidParams, `${what} is not offered by ${this.label}`);
      }
      throw err;
    }
  }
}

function replicaError(context: BackendContext, index: number, err: unknown): Error {
  const where = index === 0 ? 'target' : `settings.replicas[${index - 1}]`;
  const error = new Error(`Backend ${context.backend.name}: ${where}: ${describe(err)}`);
  error.name = err instanceof Error ? err.name : 'Error';
  return error;
}

function differ(
  a: ReadonlyMap<string, { definition: unknown }>,
  b: ReadonlyMap<string, { definition: unknown }>,
): boolean {
  if (a.size !== b.size) {
    return true;
  }
  for (const [key, value] of a) {
    const other = b.get(key);
    if (!other || JSON.stringify(other.definition) !== JSON.stringify(value.definition)) {
      return true;
    }
  }
  return false;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

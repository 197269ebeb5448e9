import { Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import {
  CatalogEvent,
  CatalogListener,
  CatalogProvider,
  CatalogScope,
  ErrorCode,
  MaybePromise,
  McpError,
  NODE_STOPPED_MESSAGE,
  StaticCatalog,
  ToolHandler,
  type Cancellation,
  type JsonObject,
  type TaskProgress,
  type TaskWorkRef,
  type TaskWorkResumer,
} from '@portico/mcp-protocol';
import { SpanKind } from '@opentelemetry/api';
import type { PinoLogger } from 'nestjs-pino';
import type { Logger as PinoInstance } from 'pino';
import {
  failSpan,
  ownFieldsLogger,
  SpanAttr,
  type BackendMetrics,
  type GatewayMetrics,
  type Tracing,
} from '@portico/observability';
import type { BackendEntity, TenantEntity, VirtualServerEntity } from '@portico/persistence';
import {
  AuditService,
  CompiledExposure,
  QuotaExceededError,
  QuotaService,
  TenantService,
} from '@portico/tenancy';
import { createConformanceCatalog, echoTool } from '@portico/testing';
import {
  CallHooks,
  CatalogCollision,
  CatalogListing,
  compareNames,
  GovernedCatalog,
  NamedSource,
  ObservedCatalog,
  ToolAccess,
  ToolCallRecord,
  ToolPolicy,
  type SourceCounts,
} from './governed-catalog';
import { ServerCatalogView } from './server-catalog-view';
import { serverOfScope } from './server-principal';
import type { BackendSource } from '../upstream/backend-source';
import { parseUpstreamTaskWork } from '../upstream/upstream-tasks';
import { UpstreamSourceFactory } from '../upstream/upstream-source.factory';
import { ExecutionPlan } from '../execution/execution-plan';
import { ExecutorSource } from '../execution/executor-source';
import type { ToolCallQueue, ToolJobData } from '@portico/queue';

export {
  bindToServer,
  serverOfPrincipal,
  serverOfScope,
  type ServerBoundPrincipal,
} from './server-principal';
export { ServerCatalogView } from './server-catalog-view';

/**
 * How a backend fared when its tenant's catalog was built: `connected` (its lists are in the
 * catalog), `failed` (unreachable or refused; left out until the next build) or `unsupported`
 * (a kind this process does not serve).
 */
export type BackendStatus = 'connected' | 'failed' | 'unsupported';

export interface BackendState {
  readonly name: string;
  readonly kind: string;
  readonly status: BackendStatus;
  /** Why it failed: the error's message only, URL credentials and queries removed. */
  readonly error?: string;
}

/** A tenant's catalog as an operator sees it: its backends, what it serves, its collisions. */
export interface TenantCatalogReport extends Omit<CatalogListing, 'counts'> {
  /** In catalog order (by name), which decides collisions: the first backend wins. */
  readonly backends: (BackendState & SourceCounts)[];
}

const NO_ITEMS: SourceCounts = { tools: 0, prompts: 0, resources: 0, resourceTemplates: 0 };

/**
 * One tenant's catalog as built, with a view per virtual server: the servers' definitions are
 * read with the catalog and replaced with it, so a view never outlives the catalog it filters.
 */
class TenantCatalog {
  private none?: ServerCatalogView;

  constructor(
    readonly catalog: GovernedCatalog,
    private readonly views: ReadonlyMap<string, ServerCatalogView>,
    readonly backends: readonly BackendState[],
  ) {}

  static of(
    catalog: GovernedCatalog,
    servers: readonly VirtualServerEntity[],
    backends: readonly BackendState[],
  ): TenantCatalog {
    return new TenantCatalog(
      catalog,
      new Map(
        servers.map((server) => [
          server.name,
          new ServerCatalogView(catalog, new CompiledExposure(server)),
        ]),
      ),
      backends,
    );
  }

  /** What `server` sees; a server this catalog does not know (deleted since) sees nothing. */
  view(server: string): ServerCatalogView {
    return (
      this.views.get(server) ??
      (this.none ??= new ServerCatalogView(this.catalog, CompiledExposure.NONE))
    );
  }

  provider(server: string | undefined): CatalogProvider {
    return server === undefined ? this.catalog : this.view(server);
  }

  access(name: string, scope: CatalogScope): ToolAccess {
    const server = serverOfScope(scope);
    return server === undefined
      ? this.catalog.access(name, scope)
      : this.view(server).access(name, scope);
  }

  requiredScopes(server: string | undefined): string[] {
    return server === undefined
      ? this.catalog.requiredScopes()
      : this.view(server).requiredScopes();
  }
}

interface Entry {
  built: Promise<TenantCatalog>;
  /** Set once built: the hot path then answers without a promise. */
  ready?: TenantCatalog;
  readonly listeners: Set<CatalogListener>;
  unwatch?: () => void;
}

const CHANGE_EVENTS: CatalogEvent[] = [
  { type: 'tools-changed' },
  { type: 'prompts-changed' },
  { type: 'resources-changed' },
];

/**
 * The CatalogProvider the engine sees: it routes every call to the catalog of the caller's
 * tenant (principal.tenant), built from the tenant's backends and tool policies, cached per
 * node and rebuilt when the tenant changes; connected clients then get list_changed. A call
 * through a virtual server (the scope's or the principal's `server`) sees that server's view
 * of the same catalog. A caller without a tenant sees the anonymous development catalog (or
 * nothing).
 */
@Injectable()
export class TenantCatalogRouter implements CatalogProvider, TaskWorkResumer, OnModuleDestroy {
  private readonly logger = new Logger(TenantCatalogRouter.name);
  private readonly entries = new Map<string, Entry>();
  /** Each tenant's backend sources as built, before the queue wraps them: what workers call. */
  private readonly direct = new Map<string, Map<string, BackendSource>>();
  private readonly stopListening: () => void;

  private readonly anonymous: CatalogProvider;

  constructor(
    private readonly tenants: TenantService,
    anonymous: CatalogProvider,
    private readonly audit?: AuditService,
    private readonly quotas?: QuotaService,
    private readonly upstreams?: UpstreamSourceFactory,
    private readonly metrics?: GatewayMetrics,
    private readonly queue?: ToolCallQueue | null,
    private readonly tracing?: Tracing,
    private readonly pino?: PinoLogger,
    private readonly redactPaths: readonly string[] = [],
  ) {
    this.stopListening = tenants.onChange((tenant) => this.invalidate(tenant));
    // Every tools/call is audited, anonymous development calls too (tenant null).
    const hooks = this.callHooks(null, 'anonymous');
    this.anonymous =
      hooks.onCall || hooks.tracing ? new ObservedCatalog(anonymous, hooks) : anonymous;
  }

  private toolCallLog?: PinoInstance;

  /** The `tool call` lines' logger, created on first use (once pino is set up). */
  private callLog(): PinoInstance | undefined {
    if (!this.pino) {
      return undefined;
    }
    return (this.toolCallLog ??= ownFieldsLogger(this.pino.logger, this.redactPaths));
  }

  /**
   * What surrounds each tool call of one tenant (null: the anonymous endpoint): audit, metrics
   * and log line (`slug` labels them), a span, and for tenants the concurrency gate.
   */
  private callHooks(tenantId: string | null, slug: string, gate?: () => () => void): CallHooks {
    return {
      onCall: this.auditCalls(tenantId, slug),
      gate,
      tracing: this.tracing?.enabled ? this.tracing : undefined,
    };
  }

  private auditCalls(
    tenantId: string | null,
    slug: string,
  ): ((call: ToolCallRecord) => void) | undefined {
    const { audit, metrics } = this;
    const log = this.callLog();
    if (!audit && !metrics && !log) {
      return undefined;
    }
    return (call) => {
      metrics?.toolCall(slug, call.tool, call.outcome, call.durationMs / 1000);
      if (log?.isLevelEnabled('info')) {
        log.info(
          {
            tenant: slug,
            principal: call.principalId,
            tool: call.tool,
            backend: call.backend,
            server: call.server,
            outcome: call.outcome,
            rpcId: call.requestId,
            traceId: call.traceId,
            durationMs: Math.round(call.durationMs * 100) / 100,
            error: call.error?.slice(0, 500),
          },
          'tool call',
        );
      }
      audit?.record({
        tenantId,
        actor: call.principalId,
        action: 'tools/call',
        target: call.tool,
        outcome: call.outcome,
        durationMs: call.durationMs,
        requestId: String(call.requestId),
        details: callDetails(call),
      });
    };
  }

  async onModuleDestroy(): Promise<void> {
    this.stopListening();
    const closing: Promise<void>[] = [];
    for (const entry of this.entries.values()) {
      entry.unwatch?.();
      closing.push(entry.built.then((built) => built.catalog.close()).catch(() => undefined));
    }
    this.entries.clear();
    await Promise.all(closing);
  }

  /** Whether the caller may call `name`, and if not, why (HTTP answers 403 for scopes). */
  toolAccess(name: string, scope: CatalogScope): MaybePromise<ToolAccess> {
    const tenant = scope.principal?.tenant;
    if (tenant === undefined) {
      return Promise.resolve(this.anonymous.getTool(name, scope)).then((tool) =>
        tool ? { allowed: true } : { allowed: false, reason: 'unknown' },
      );
    }
    const entry = this.entry(tenant, scope.trace);
    return entry.ready
      ? entry.ready.access(name, scope)
      : entry.built.then((built) => built.access(name, scope));
  }

  /**
   * Every scope some tool of the tenant requires, or with `server` some tool of that virtual
   * server (advertised in resource metadata and challenges).
   */
  async scopesOf(tenantId: string, server?: string): Promise<string[]> {
    return (await this.entry(tenantId).built).requiredScopes(server);
  }

  /**
   * The tenant's catalog as this node built it (building it now if nobody has asked yet):
   * every backend's state and counts, every list as policies make it, and the collisions.
   */
  async describe(tenantId: string): Promise<TenantCatalogReport> {
    const built = await this.entry(tenantId).built;
    const { counts, ...listing } = await built.catalog.describe();
    return {
      backends: built.backends.map((backend) => ({
        ...backend,
        ...(counts.get(backend.name) ?? NO_ITEMS),
      })),
      ...listing,
    };
  }

  listTools(scope: CatalogScope) {
    return this.via(scope, (c) => c.listTools(scope));
  }
  getTool(name: string, scope: CatalogScope): MaybePromise<ToolHandler | undefined> {
    const catalog = this.route(scope);
    if (!(catalog instanceof Promise)) {
      // A map lookup in a built catalog: far cheaper than a span would be.
      return catalog.getTool(name, scope);
    }
    const parent = this.tracing?.parent(scope.trace);
    if (!this.tracing || !parent) {
      return catalog.then((c) => c.getTool(name, scope));
    }
    // The tenant's catalog is being built (backends connected, lists read): worth a span.
    const span = this.tracing.start(
      'portico.catalog.lookup',
      {
        kind: SpanKind.INTERNAL,
        attributes: {
          [SpanAttr.toolName]: name.slice(0, 128),
          [SpanAttr.tenant]: scope.principal?.tenant ?? '',
        },
      },
      parent,
    );
    return catalog.then(
      async (c) => {
        const handler = await c.getTool(name, scope);
        span.setAttribute('portico.tool.found', handler !== undefined);
        span.end();
        return handler;
      },
      (err: unknown) => {
        failSpan(span, err);
        span.end();
        throw err;
      },
    );
  }

  listResources(scope: CatalogScope) {
    return this.via(scope, (c) => c.listResources(scope));
  }
  getResource(uri: string, scope: CatalogScope) {
    return this.via(scope, (c) => c.getResource(uri, scope));
  }
  listResourceTemplates(scope: CatalogScope) {
    return this.via(scope, (c) => c.listResourceTemplates(scope));
  }
  listPrompts(scope: CatalogScope) {
    return this.via(scope, (c) => c.listPrompts(scope));
  }
  getPrompt(name: string, scope: CatalogScope) {
    return this.via(scope, (c) => c.getPrompt(name, scope));
  }

  watch(listener: CatalogListener, scope?: CatalogScope): () => void {
    const tenant = scope?.principal?.tenant;
    if (tenant === undefined) {
      return this.anonymous.watch(listener, scope);
    }
    const server = serverOfScope(scope);
    const forward = server === undefined ? listener : this.serverListener(tenant, server, listener);
    const entry = this.entry(tenant);
    entry.listeners.add(forward);
    // A rebuild moves listeners to the tenant's next entry: remove it from wherever it is now.
    return () => {
      entry.listeners.delete(forward);
      this.entries.get(tenant)?.listeners.delete(forward);
    };
  }

  /**
   * A virtual server's client hears of every list change (a spurious list_changed only costs a
   * re-list), but of resource updates only for URIs the server exposes.
   */
  private serverListener(tenant: string, server: string, listener: CatalogListener) {
    return (event: CatalogEvent): void => {
      if (event.type !== 'resource-updated') {
        listener(event);
        return;
      }
      const view = this.entries.get(tenant)?.ready?.view(server);
      const exposed = view?.exposesResource(event.uri) ?? false;
      if (exposed instanceof Promise) {
        exposed.then(
          (yes) => yes && listener(event),
          () => undefined,
        );
      } else if (exposed) {
        listener(event);
      }
    };
  }

  /** Calls `fn` on the caller's catalog: synchronously once it is built, else after the build. */
  private via<U>(
    scope: CatalogScope,
    fn: (catalog: CatalogProvider) => MaybePromise<U>,
  ): MaybePromise<U> {
    const catalog = this.route(scope);
    return catalog instanceof Promise ? catalog.then((c) => fn(c)) : fn(catalog);
  }

  private route(scope: CatalogScope): CatalogProvider | Promise<CatalogProvider> {
    const tenant = scope.principal?.tenant;
    if (tenant === undefined) {
      return this.anonymous;
    }
    const entry = this.entry(tenant, scope.trace);
    const server = serverOfScope(scope);
    return entry.ready
      ? entry.ready.provider(server)
      : entry.built.then((built) => built.provider(server));
  }

  /** The tenant's entry; building it is traced as a child of `trace` (the first caller's). */
  private entry(tenantId: string, trace?: unknown): Entry {
    let entry = this.entries.get(tenantId);
    if (!entry) {
      const listeners = new Set<CatalogListener>();
      // Building connects the tenant's backends and reads their lists: traced when on, as a
      // child of the request that needed it.
      const built = this.tracing?.parent(trace)
        ? this.tracing.span(
            'portico.catalog.build',
            { kind: SpanKind.INTERNAL, attributes: { [SpanAttr.tenant]: tenantId } },
            trace,
            () => this.build(tenantId, listeners),
          )
        : this.build(tenantId, listeners);
      const created: Entry = { listeners, built };
      created.built.then(
        (ready) => {
          created.ready = ready;
          created.unwatch = ready.catalog.watch((event) => listeners.forEach((l) => l(event)));
        },
        () => this.entries.delete(tenantId),
      );
      entry = created;
      this.entries.set(tenantId, entry);
    }
    return entry;
  }

  private invalidate(tenant: TenantEntity): void {
    const entry = this.entries.get(tenant.id);
    if (!entry) {
      return;
    }
    this.entries.delete(tenant.id);
    entry.unwatch?.();
    // The old catalog's upstream connections go once nobody can reach it any more.
    entry.built.then(
      (built) => built.catalog.close(),
      () => undefined,
    );
    if (entry.listeners.size === 0) {
      return;
    }
    // Rebuild now for the connected clients, move them over, then tell them the lists changed.
    const next = this.entry(tenant.id);
    for (const listener of entry.listeners) {
      next.listeners.add(listener);
    }
    next.built.then(
      () => CHANGE_EVENTS.forEach((event) => next.listeners.forEach((l) => l(event))),
      (err: unknown) => this.logger.error(`Catalog of tenant ${tenant.slug}: ${String(err)}`),
    );
  }

  /**
   * Connects the tenant's backends one after the other in name order (by code unit, whatever
   * the database's collation): that order decides name collisions, so the same backend wins
   * on every build and every node, however long each connection takes.
   */
  private async build(tenantId: string, _listeners: Set<CatalogListener>): Promise<TenantCatalog> {
    const tenant = await this.tenants.byId(tenantId);
    const backends = (
      await this.tenants.backends(tenantId).find({}, { order: { name: 'ASC' } })
    ).sort((a, b) => compareNames(a.name, b.name));
    const policies = await this.tenants.policies(tenantId).find();
    const servers = await this.tenants.servers(tenantId).find();
    const slug = tenant?.slug ?? tenantId;
    const sources: NamedSource[] = [];
    const states: BackendState[] = [];
    const direct = new Map<string, BackendSource>();
    this.direct.set(tenantId, direct);
    for (const backend of backends) {
      const state = { name: backend.name, kind: backend.kind };
      try {
        const source = await this.sourceFor(backend, tenant);
        if (source) {
          direct.set(backend.name, source);
          sources.push({
            name: backend.name,
            source: this.executorFor(backend, source, tenant),
          });
        }
        states.push({ ...state, status: source ? 'connected' : 'unsupported' });
      } catch (err) {
        // One unreachable backend must not take the tenant's whole catalog down.
        this.logger.warn(`Backend ${backend.name} of tenant ${slug} left out: ${publicError(err)}`);
        states.push({ ...state, status: 'failed', error: publicError(err) });
        if (this.metrics) {
          // Shown as down (not missing) until this catalog is replaced.
          sources.push({
            name: backend.name,
            source: new UnreachableBackend(
              this.metrics.backend(tenant?.slug ?? tenantId, backend.name),
            ),
          });
        }
      }
    }
    const catalog = new GovernedCatalog(
      sources,
      new Map<string, ToolPolicy>(policies.map((p) => [p.tool, p])),
      this.callHooks(
        tenantId,
        slug,
        tenant && this.quotas ? this.callGate(tenant, this.quotas) : undefined,
      ),
      (collision) => this.logger.warn(`Catalog of tenant ${slug}: ${describeCollision(collision)}`),
    );
    await catalog.load();
    return TenantCatalog.of(catalog, servers, states);
  }

  /** Concurrent tools/call slots of the tenant; over the limit, a JSON-RPC error with a retry hint. */
  private callGate(tenant: TenantEntity, quotas: QuotaService): () => () => void {
    return () => {
      try {
        return quotas.acquireCall(tenant);
      } catch (err) {
        if (err instanceof QuotaExceededError) {
          throw new McpError(ErrorCode.QuotaExceeded, err.message, {
            retryAfterMs: err.retryAfterMs,
          });
        }
        throw err;
      }
    };
  }

  /**
   * The handler a queued job names, straight from its backend's source (never the queue
   * again). Policies and scopes were enforced where the call was accepted.
   */
  async resolveJob(job: ToolJobData): Promise<ToolHandler | undefined> {
    await this.entry(job.tenantId).built;
    const source = this.direct.get(job.tenantId)?.get(job.backend);
    return source?.getTool(job.tool, {
      principal: {
        id: job.principal.id,
        tenant: job.principal.tenant,
        scopes: job.principal.scopes,
      },
    });
  }

  /**
   * Follows on the upstream task a gateway task followed on a node that stopped
   * (TaskWorkResumer for UPSTREAM_TASK_WORK records); undefined for other work, or when the
   * backend is gone or cannot resume tasks.
   */
  resume(
    work: TaskWorkRef,
    cancellation: Cancellation,
    progress?: (progress: TaskProgress) => void,
  ): Promise<JsonObject> | undefined {
    const named = parseUpstreamTaskWork(work);
    if (!named) {
      return undefined;
    }
    return this.entry(named.tenantId).built.then(() => {
      const source = this.direct.get(named.tenantId)?.get(named.backend);
      const resumed = source?.resumeTask?.(named.taskId, cancellation, progress);
      if (!resumed) {
        throw new McpError(
          ErrorCode.InternalError,
          `${NODE_STOPPED_MESSAGE}, and its backend ${named.backend} cannot follow its task here`,
        );
      }
      return resumed;
    });
  }

  /**
   * Inline by default; through the queue for the tools whose backend (or own entry under
   * `settings.tools`) says `executor: queued`, when REDIS_URL is set.
   */
  private executorFor(
    backend: BackendEntity,
    source: BackendSource,
    tenant: TenantEntity | null,
  ): BackendSource {
    const plan = new ExecutionPlan(backend);
    if (plan.mayQueue && !this.queue) {
      this.logger.warn(
        `Backend ${backend.name} asks for queued execution but REDIS_URL is not set: running inline`,
      );
    }
    if (!(plan.mayQueue && this.queue) && !plan.hasToolTimeouts) {
      return source;
    }
    return new ExecutorSource(source, plan, this.queue ?? null, {
      tenantId: backend.tenantId,
      backend: backend.name,
      limits: tenant?.limits,
    });
  }

  /** Built-in fixtures directly; every other kind through the upstream source factory. */
  private async sourceFor(
    backend: BackendEntity,
    tenant: TenantEntity | null,
  ): Promise<BackendSource | undefined> {
    if (backend.kind === 'fixture') {
      return backend.target === 'conformance'
        ? createConformanceCatalog()
        : new StaticCatalog({ tools: [echoTool] });
    }
    if (!this.upstreams || !tenant) {
      return undefined;
    }
    return this.upstreams.create({
      tenantId: backend.tenantId,
      tenantSlug: tenant.slug,
      backend,
      credentials: () => this.tenants.openCredentials(backend),
    });
  }
}

/** One log line per collision: which backend is served, which are hidden. */
function describeCollision(collision: CatalogCollision): string {
  const renamed = collision.renamedFrom
    ? ` (renamed by policy from ${collision.renamedFrom.join(', ')})`
    : '';
  return (
    `${collision.kind} "${collision.name}"${renamed} is offered by several backends: ` +
    `${collision.winner} is served, ${collision.shadowed.join(', ')} shadowed`
  );
}

const URL_IN_TEXT = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/?#@]*@)?([^\s?#]*)(\?[^\s#]*)?(#\S*)?/gi;
const MAX_ERROR_LENGTH = 300;

/**
 * What the admin API may show of a connection error: the message's first line, without URL
 * credentials, queries or fragments (tokens hide there), and never a stack.
 */
export function publicError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const line = message.split('\n', 1)[0].replace(URL_IN_TEXT, '$1$3');
  return line.length > MAX_ERROR_LENGTH ? `${line.slice(0, MAX_ERROR_LENGTH - 1)}…` : line;
}

/** The audit details of a tool call: its error, and the virtual server it came through. */
function callDetails(call: ToolCallRecord): Record<string, unknown> | null {
  if (!call.error && call.server === undefined) {
    return null;
  }
  const details: Record<string, unknown> = {};
  if (call.error) {
    details.error = call.error.slice(0, 500);
  }
  if (call.server !== undefined) {
    details.server = call.server;
  }
  return details;
}

/**
 * A backend left out of its catalog because it could not be reached when the catalog was
 * built: no tools, and its metrics read down until the catalog is closed.
 */
class UnreachableBackend extends StaticCatalog implements BackendSource {
  constructor(private readonly metrics: BackendMetrics) {
    super();
    metrics.contact(false);
  }

  close(): Promise<void> {
    this.metrics.remove();
    return Promise.resolve();
  }
}

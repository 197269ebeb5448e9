import type {
  CatalogEvent,
  CatalogListener,
  CatalogProvider,
  CatalogScope,
  MaybePromise,
  PromptHandler,
  ResourceHandler,
  ResourceTemplateHandler,
  ToolHandler,
} from '@portico/mcp-protocol';
import { withTrace } from '@portico/mcp-protocol';
import { type Attributes, SpanKind } from '@opentelemetry/api';
import { failSpan, SpanAttr, type Tracing } from '@portico/observability';
import { serverOfPrincipal } from './server-principal';

/** A tenant's override for one tool (from the tool_policies table or portico.yaml). */
export interface ToolPolicy {
  readonly tool: string;
  readonly requiredScopes: readonly string[];
  readonly disabled: boolean;
  readonly description?: string | null;
  readonly rename?: string | null;
  readonly annotations?: Record<string, unknown> | null;
}

/** One finished tools/call, for the audit trail, metrics and the tool-call log line. */
export interface ToolCallRecord {
  readonly tool: string;
  /** The backend that served it (undefined outside a tenant catalog). */
  readonly backend?: string;
  /** The virtual server the call came through (undefined on the tenant's own endpoint). */
  readonly server?: string;
  readonly principalId: string;
  readonly requestId: string | number;
  readonly outcome: 'success' | 'error';
  readonly durationMs: number;
  readonly error?: string;
  /** The trace the call ran in, when tracing is on. */
  readonly traceId?: string;
}

/** What happens around every tool call of a catalog. */
export interface CallHooks {
  /** Reports each finished call (audit, metrics, logs). */
  readonly onCall?: (record: ToolCallRecord) => void;
  /** Takes a concurrency slot for a call (throws when none is free); returns its release. */
  readonly gate?: () => () => void;
  /** A span per tool execution when tracing is on. */
  readonly tracing?: Tracing;
}

/** A tenant backend's source, by the backend's name. */
export interface NamedSource {
  readonly name: string;
  readonly source: CatalogProvider & { close?(): Promise<void> };
}

/** The outcome of asking whether a principal may call a tool. */
export type ToolAccess =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly reason: 'unknown' }
  | { readonly allowed: false; readonly reason: 'scope'; readonly requiredScopes: string[] };

/** What a catalog item is: the four lists a client can read. */
export type CatalogItemKind = 'tool' | 'prompt' | 'resource' | 'resourceTemplate';

/**
 * Several backends offering the same name (a tool or prompt name as clients see it, after
 * policies), resource URI or URI template: only `winner`'s item is served.
 */
export interface CatalogCollision {
  readonly kind: CatalogItemKind;
  readonly name: string;
  /** The backend whose item is served. */
  readonly winner: string;
  /** The backends whose items are hidden, in catalog order (a backend twice: two of its items). */
  readonly shadowed: readonly string[];
  /** Tools only: the original names a rename policy moved onto `name`. */
  readonly renamedFrom?: readonly string[];
}

/** One item of a catalog listing, with the backend that serves it. */
export interface CatalogItem {
  /** The name clients see (tools: after policies). */
  readonly name: string;
  readonly backend: string;
  readonly title?: string;
  readonly description?: string;
}

export interface CatalogToolItem extends CatalogItem {
  /** The name before a rename policy, when one applies. */
  readonly renamedFrom?: string;
  readonly requiredScopes: readonly string[];
}

export interface CatalogResourceItem extends CatalogItem {
  readonly uri: string;
  readonly mimeType?: string;
}

export interface CatalogTemplateItem extends CatalogItem {
  readonly uriTemplate: string;
  readonly mimeType?: string;
}

/** How many items one backend offers, before policies and collisions. */
export interface SourceCounts {
  readonly tools: number;
  readonly prompts: number;
  readonly resources: number;
  readonly resourceTemplates: number;
}

/** What a catalog serves and why, for operators: every list by name, with its collisions. */
export interface CatalogListing {
  readonly tools: CatalogToolItem[];
  readonly prompts: CatalogItem[];
  readonly resources: CatalogResourceItem[];
  readonly resourceTemplates: CatalogTemplateItem[];
  readonly collisions: CatalogCollision[];
  /** By backend name; a backend whose lists could not be read counts nothing. */
  readonly counts: ReadonlyMap<string, SourceCounts>;
}

/** Orders names by UTF-16 code unit: the same everywhere, whatever a database's collation. */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

interface ToolEntry {
  readonly handler: ToolHandler;
  readonly required: string[];
  readonly backend: string;
  readonly renamedFrom?: string;
}

/**
 * The union of several catalogs (a tenant's backends) with the tenant's tool policies applied:
 * disabled tools vanish, renamed tools answer to their new name only, and a tool whose required
 * scopes the caller lacks is neither listed nor callable.
 *
 * Name collisions are resolved by position: the source listed first wins (the router lists a
 * tenant's backends by name), then the item its source lists first, so a rename policy onto a
 * name that is already taken loses to an earlier backend and wins over a later one. Every
 * collision is recorded (`collisions()`) and reported once per catalog to `onCollision`.
 */
export class GovernedCatalog implements CatalogProvider {
  private tools = new Map<string, ToolEntry>();
  private toolCollisions: CatalogCollision[] = [];
  private listCollisions: CatalogCollision[] = [];
  private readonly reported = new Set<string>();

  constructor(
    private readonly sources: readonly NamedSource[],
    private readonly policies: ReadonlyMap<string, ToolPolicy>,
    private readonly hooks: CallHooks = {},
    private readonly onCollision?: (collision: CatalogCollision) => void,
  ) {}

  /**
   * Resolves the visible tool table once and records the collisions of every list; call again
   * after a source announces tools-changed. The new table replaces the old one whole, so calls
   * during a reload see one or the other, never a half-built one.
   */
  async load(): Promise<void> {
    const claims = new Claims<ToolEntry>('tool');
    for (const { name: backend, source } of this.sources) {
      for (const handler of await source.listTools({})) {
        const original = handler.definition.name;
        const policy = this.policies.get(original);
        if (policy?.disabled) {
          continue;
        }
        const governed = policy ? applyPolicy(handler, policy) : handler;
        const name = governed.definition.name;
        const renamedFrom = name === original ? undefined : original;
        claims.claim(name, backend, renamedFrom, () => ({
          handler: observeTool(governed, this.hooks, backend),
          required: [...(policy?.requiredScopes ?? [])],
          backend,
          renamedFrom,
        }));
      }
    }
    this.tools = claims.winners();
    this.toolCollisions = claims.collisions();
    await this.inspect();
  }

  /** Every name served by more than one backend (or twice by one), by kind then name. */
  collisions(): CatalogCollision[] {
    return [...this.toolCollisions, ...this.listCollisions];
  }

  /**
   * The catalog as policies make it (disabled tools absent, renamed ones under their new
   * name), every list sorted by name, regardless of scopes: what an operator needs to see.
   */
  async describe(): Promise<CatalogListing> {
    const lists = await this.inspect();
    const tools: CatalogToolItem[] = [...this.tools].map(([name, entry]) => ({
      ...describeItem(name, entry.backend, entry.handler.definition),
      renamedFrom: entry.renamedFrom,
      requiredScopes: [...entry.required],
    }));
    return {
      tools: tools.sort((a, b) => compareNames(a.name, b.name)),
      prompts: lists.prompts,
      resources: lists.resources,
      resourceTemplates: lists.resourceTemplates,
      collisions: this.collisions(),
      counts: lists.counts,
    };
  }

  access(name: string, scope: CatalogScope): ToolAccess {
    const entry = this.tools.get(name);
    if (!entry) {
      return { allowed: false, reason: 'unknown' };
    }
    const held = scope.principal?.scopes ?? [];
    const missing = entry.required.filter((s) => !held.includes(s));
    return missing.length === 0
      ? { allowed: true }
      : { allowed: false, reason: 'scope', requiredScopes: entry.required };
  }

  /** Closes the sources that hold connections (upstream sessions, child processes). */
  async close(): Promise<void> {
    await Promise.all(
      this.sources.map(async ({ source }) => {
        await source.close?.().catch(() => undefined);
      }),
    );
  }

  /** Every scope some tool requires; with `exposed`, only the tools it accepts count. */
  requiredScopes(exposed?: (tool: string) => boolean): string[] {
    const all = new Set<string>();
    for (const [name, entry] of this.tools) {
      if (!exposed || exposed(name)) {
        entry.required.forEach((s) => all.add(s));
      }
    }
    return [...all].sort();
  }

  listTools(scope: CatalogScope): readonly ToolHandler[] {
    const out: ToolHandler[] = [];
    for (const [name, entry] of this.tools) {
      if (this.access(name, scope).allowed) {
        out.push(entry.handler);
      }
    }
    return out;
  }

  getTool(name: string, scope: CatalogScope): ToolHandler | undefined {
    return this.access(name, scope).allowed ? this.tools.get(name)?.handler : undefined;
  }

  async listResources(scope: CatalogScope): Promise<readonly ResourceHandler[]> {
    return this.merge(
      (s) => s.listResources(scope),
      (r) => r.definition.uri,
    );
  }

  async getResource(uri: string, scope: CatalogScope): Promise<ResourceHandler | undefined> {
    return this.first((s) => s.getResource(uri, scope));
  }

  async listResourceTemplates(scope: CatalogScope): Promise<readonly ResourceTemplateHandler[]> {
    return this.merge(
      (s) => s.listResourceTemplates(scope),
      (t) => t.definition.uriTemplate,
    );
  }

  async listPrompts(scope: CatalogScope): Promise<readonly PromptHandler[]> {
    return this.merge(
      (s) => s.listPrompts(scope),
      (p) => p.definition.name,
    );
  }

  async getPrompt(name: string, scope: CatalogScope): Promise<PromptHandler | undefined> {
    return this.first((s) => s.getPrompt(name, scope));
  }

  watch(listener: CatalogListener): () => void {
    const stops = this.sources.map(({ source }) =>
      source.watch((event: CatalogEvent) => {
        if (event.type === 'tools-changed') {
          void this.load().then(() => listener(event));
          return;
        }
        if (event.type === 'prompts-changed' || event.type === 'resources-changed') {
          // Collisions of the changed lists are found (and reported) again in the background.
          this.inspect().catch(() => undefined);
        }
        listener(event);
      }),
    );
    return () => stops.forEach((stop) => stop());
  }

  /**
   * Reads the prompt, resource and template lists of every source (scope-free), records their
   * collisions, reports the ones not reported yet, and returns the winners sorted by name.
   * A source whose list cannot be read offers nothing here (its calls fail on their own).
   */
  private async inspect(): Promise<Omit<CatalogListing, 'tools' | 'collisions'>> {
    const prompts = new Claims<CatalogItem>('prompt');
    const resources = new Claims<CatalogResourceItem>('resource');
    const templates = new Claims<CatalogTemplateItem>('resourceTemplate');
    const counts = new Map<string, SourceCounts>();
    for (const { name: backend, source } of this.sources) {
      const [tools, promptList, resourceList, templateList] = await Promise.all([
        listed(() => source.listTools({})),
        listed(() => source.listPrompts({})),
        listed(() => source.listResources({})),
        listed(() => source.listResourceTemplates({})),
      ]);
      counts.set(backend, {
        tools: tools.length,
        prompts: promptList.length,
        resources: resourceList.length,
        resourceTemplates: templateList.length,
      });
      for (const { definition } of promptList) {
        prompts.claim(definition.name, backend, undefined, () =>
          describeItem(definition.name, backend, definition),
        );
      }
      for (const { definition } of resourceList) {
        resources.claim(definition.uri, backend, undefined, () => ({
          ...describeItem(definition.name, backend, definition),
          uri: definition.uri,
          mimeType: definition.mimeType,
        }));
      }
      for (const { definition } of templateList) {
        templates.claim(definition.uriTemplate, backend, undefined, () => ({
          ...describeItem(definition.name, backend, definition),
          uriTemplate: definition.uriTemplate,
          mimeType: definition.mimeType,
        }));
      }
    }
    this.listCollisions = [
      ...prompts.collisions(),
      ...resources.collisions(),
      ...templates.collisions(),
    ];
    this.report();
    const sorted = <T>(claims: Claims<T>) =>
      [...claims.winners()].sort(([a], [b]) => compareNames(a, b)).map(([, item]) => item);
    return {
      prompts: sorted(prompts),
      resources: sorted(resources),
      resourceTemplates: sorted(templates),
      counts,
    };
  }

  /** Tells `onCollision` of each collision once per catalog, however often lists are read. */
  private report(): void {
    if (!this.onCollision) {
      return;
    }
    for (const collision of this.collisions()) {
      const key = JSON.stringify([
        collision.kind,
        collision.name,
        collision.winner,
        collision.shadowed,
        collision.renamedFrom,
      ]);
      if (!this.reported.has(key)) {
        this.reported.add(key);
        this.onCollision(collision);
      }
    }
  }

  private async merge<T>(
    list: (source: CatalogProvider) => MaybePromise<readonly T[]>,
    key: (item: T) => string,
  ): Promise<T[]> {
    if (this.sources.length === 1) {
      return [...(await list(this.sources[0].source))];
    }
    const seen = new Map<string, T>();
    for (const { source } of this.sources) {
      for (const item of await list(source)) {
        if (!seen.has(key(item))) {
          seen.set(key(item), item);
        }
      }
    }
    return [...seen.values()];
  }

  private async first<T>(
    get: (source: CatalogProvider) => MaybePromise<T | undefined>,
  ): Promise<T | undefined> {
    for (const { source } of this.sources) {
      const found = await get(source);
      if (found) {
        return found;
      }
    }
    return undefined;
  }
}

/**
 * Wraps a tool so each call takes a concurrency slot (`gate`, which throws when none is free),
 * runs in its own span (`tracing`) and reports its outcome and duration (`onCall`). Without any
 * of them, the handler itself.
 */
export function observeTool(handler: ToolHandler, hooks: CallHooks, backend?: string): ToolHandler {
  const { onCall, gate } = hooks;
  const tracing = hooks.tracing?.enabled ? hooks.tracing : undefined;
  if (!onCall && !gate && !tracing) {
    return handler;
  }
  const tool = handler.definition.name;
  const spanName = `execute_tool ${tool}`;
  const attributes: Attributes = {
    [SpanAttr.toolName]: tool,
    [SpanAttr.operationName]: 'execute_tool',
  };
  if (backend !== undefined) {
    attributes[SpanAttr.backend] = backend;
  }
  return {
    definition: handler.definition,
    call: async (args, ctx) => {
      const started = performance.now();
      const release = gate?.();
      const parent = tracing?.parent(ctx.trace);
      const span =
        parent &&
        tracing?.start(
          spanName,
          {
            kind: SpanKind.INTERNAL,
            attributes,
          },
          parent,
        );
      const record = (outcome: 'success' | 'error', error?: string) =>
        onCall?.({
          tool,
          backend,
          server: serverOfPrincipal(ctx.principal),
          principalId: ctx.principal?.id ?? 'anonymous',
          requestId: ctx.requestId,
          outcome,
          durationMs: performance.now() - started,
          error,
          traceId: span?.spanContext().traceId,
        });
      try {
        const result = await (span && tracing
          ? handler.call(args, withTrace(ctx, tracing.under(span, parent)))
          : handler.call(args, ctx));
        if (result.isError && span) {
          failSpan(span, 'tool_error', 'tool_error');
        }
        record(result.isError ? 'error' : 'success');
        return result;
      } catch (err) {
        if (span) {
          failSpan(span, err);
        }
        record('error', err instanceof Error ? err.message : String(err));
        throw err;
      } finally {
        span?.end();
        release?.();
      }
    },
  };
}

/**
 * A catalog whose tool calls are observed (audited) without changing anything else: lookups
 * go straight to the wrapped catalog, and each handler is wrapped once.
 */
export class ObservedCatalog implements CatalogProvider {
  private readonly wrapped = new WeakMap<ToolHandler, ToolHandler>();

  constructor(
    private readonly inner: CatalogProvider,
    private readonly hooks: CallHooks,
  ) {}

  getTool(name: string, scope: CatalogScope): MaybePromise<ToolHandler | undefined> {
    const found = this.inner.getTool(name, scope);
    return found instanceof Promise ? found.then((h) => this.observe(h)) : this.observe(found);
  }

  private observe(handler: ToolHandler | undefined): ToolHandler | undefined {
    if (!handler) {
      return undefined;
    }
    let observed = this.wrapped.get(handler);
    if (!observed) {
      observed = observeTool(handler, this.hooks);
      this.wrapped.set(handler, observed);
    }
    return observed;
  }

  listTools(scope: CatalogScope) {
    return this.inner.listTools(scope);
  }
  listResources(scope: CatalogScope) {
    return this.inner.listResources(scope);
  }
  getResource(uri: string, scope: CatalogScope) {
    return this.inner.getResource(uri, scope);
  }
  listResourceTemplates(scope: CatalogScope) {
    return this.inner.listResourceTemplates(scope);
  }
  listPrompts(scope: CatalogScope) {
    return this.inner.listPrompts(scope);
  }
  getPrompt(name: string, scope: CatalogScope) {
    return this.inner.getPrompt(name, scope);
  }
  watch(listener: CatalogListener, scope?: CatalogScope) {
    return this.inner.watch(listener, scope);
  }
}

function applyPolicy(handler: ToolHandler, policy: ToolPolicy): ToolHandler {
  if (!policy.rename && !policy.description && !policy.annotations) {
    return handler;
  }
  const definition = {
    ...handler.definition,
    name: policy.rename ?? handler.definition.name,
    description: policy.description ?? handler.definition.description,
    annotations: policy.annotations
      ? { ...handler.definition.annotations, ...policy.annotations }
      : handler.definition.annotations,
  };
  return { definition, call: (args, ctx) => handler.call(args, ctx) };
}

/**
 * Who asked for each name of one kind, in catalog order: the first claimant wins it and the
 * others are recorded as shadowed.
 */
class Claims<T> {
  private readonly won = new Map<string, T>();
  private readonly claimants = new Map<string, { backends: string[]; renamedFrom: string[] }>();

  constructor(private readonly kind: CatalogItemKind) {}

  /** `make` runs only for the winner, so losers cost nothing (no wrapping, no copies). */
  claim(name: string, backend: string, renamedFrom: string | undefined, make: () => T): void {
    let claimants = this.claimants.get(name);
    if (!claimants) {
      claimants = { backends: [], renamedFrom: [] };
      this.claimants.set(name, claimants);
      this.won.set(name, make());
    }
    claimants.backends.push(backend);
    if (renamedFrom !== undefined && !claimants.renamedFrom.includes(renamedFrom)) {
      claimants.renamedFrom.push(renamedFrom);
    }
  }

  winners(): Map<string, T> {
    return this.won;
  }

  collisions(): CatalogCollision[] {
    const out: CatalogCollision[] = [];
    for (const [name, { backends, renamedFrom }] of this.claimants) {
      if (backends.length > 1) {
        out.push({
          kind: this.kind,
          name,
          winner: backends[0],
          shadowed: backends.slice(1),
          ...(renamedFrom.length > 0 ? { renamedFrom } : {}),
        });
      }
    }
    return out.sort((a, b) => compareNames(a.name, b.name));
  }
}

/** A source's list, or nothing when the source cannot give it. */
async function listed<T>(list: () => MaybePromise<readonly T[]>): Promise<readonly T[]> {
  try {
    return await list();
  } catch {
    return [];
  }
}

function describeItem(
  name: string,
  backend: string,
  definition: { title?: string; description?: string },
): CatalogItem {
  return {
    name,
    backend,
    ...(definition.title !== undefined ? { title: definition.title } : {}),
    ...(definition.description !== undefined ? { description: definition.description } : {}),
  };
}

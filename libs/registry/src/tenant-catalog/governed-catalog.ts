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

/**
 * The union of several catalogs (a tenant's backends) with the tenant's tool policies applied:
 * disabled tools vanish, renamed tools answer to their new name only, and a tool whose required
 * scopes the caller lacks is neither listed nor callable. Earlier sources win name collisions.
 */
export class GovernedCatalog implements CatalogProvider {
  private readonly tools = new Map<string, { handler: ToolHandler; required: string[] }>();

  constructor(
    private readonly sources: readonly NamedSource[],
    private readonly policies: ReadonlyMap<string, ToolPolicy>,
    private readonly hooks: CallHooks = {},
  ) {}

  /** Resolves the visible tool table once; call again after a source announces tools-changed. */
  async load(): Promise<void> {
    this.tools.clear();
    for (const { name: backend, source } of this.sources) {
      for (const handler of await source.listTools({})) {
        const policy = this.policies.get(handler.definition.name);
        if (policy?.disabled) {
          continue;
        }
        const governed = observeTool(
          policy ? applyPolicy(handler, policy) : handler,
          this.hooks,
          backend,
        );
        if (!this.tools.has(governed.definition.name)) {
          this.tools.set(governed.definition.name, {
            handler: governed,
            required: [...(policy?.requiredScopes ?? [])],
          });
        }
      }
    }
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
        listener(event);
      }),
    );
    return () => stops.forEach((stop) => stop());
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

/*
 * The port through which the engine reaches tools, resources and prompts. The registry
 * implements it per tenant; tests and the embedded default use fixture providers.
 */
import type { JsonObject } from './jsonrpc';
import type { ClientSession, RequestContext } from './context';
import type {
  CallToolResult,
  CompleteResult,
  GetPromptResult,
  Prompt,
  ReadResourceResult,
  Resource,
  ResourceTemplate,
  Tool,
} from './types';

export type MaybePromise<T> = T | Promise<T>;

/** Who is asking; the auth layer fills it, the engine only binds state to `id`. */
export interface Principal {
  readonly id: string;
  readonly tenant?: string;
  readonly scopes?: readonly string[];
}

export interface CatalogScope {
  readonly principal?: Principal;
  /**
   * The virtual server (a named subset of the tenant's catalog) the request came through;
   * absent on the tenant's own endpoint. Providers without virtual servers ignore it.
   */
  readonly server?: string;
  /** The caller's trace context (RequestContext.trace), for spans of lookups that do work. */
  readonly trace?: unknown;
}

export interface ToolHandler {
  readonly definition: Tool;
  call(args: JsonObject, ctx: RequestContext): MaybePromise<CallToolResult>;
}

/** Ends one claim of interest in a resource (see ResourceHandler.subscribe). Idempotent. */
export type ResourceRelease = () => void;

export interface ResourceHandler {
  readonly definition: Resource;
  read(ctx: RequestContext): MaybePromise<ReadResourceResult>;
  /**
   * A client subscribed to `uri`. A provider that hears of changes only when it asks for them
   * (an upstream server) starts listening here, and publishes each change as a
   * `resource-updated` catalog event. Resolves once it listens, or gave up trying (updates then
   * do not come, the subscription still stands), to the release of this claim. The engine
   * claims a URI once per subscriber (a 2025-era session, a subscriptions/listen stream) and
   * releases it when the subscriber unsubscribes or goes away; providers count the claims.
   * Providers that publish their changes anyway leave it out. `session`: the 2025-era
   * session subscribing (absent for a subscriptions/listen stream), for a provider that keeps
   * per-session state (see RequestContext.session).
   */
  subscribe?(uri: string, session?: ClientSession): MaybePromise<ResourceRelease>;
}

export interface CompletionRequest {
  readonly argument: string;
  readonly value: string;
  readonly context: Readonly<Record<string, string>>;
}

export interface ResourceTemplateHandler {
  readonly definition: ResourceTemplate;
  /** Returns the template variables when `uri` is an instance of this template. */
  match(uri: string): Record<string, string> | undefined;
  read(
    uri: string,
    variables: Record<string, string>,
    ctx: RequestContext,
  ): MaybePromise<ReadResourceResult>;
  complete?(request: CompletionRequest): MaybePromise<CompleteResult['completion']>;
  /** As ResourceHandler.subscribe, for an instance of this template. */
  subscribe?(uri: string, session?: ClientSession): MaybePromise<ResourceRelease>;
}

export interface PromptHandler {
  readonly definition: Prompt;
  get(args: Record<string, string>, ctx: RequestContext): MaybePromise<GetPromptResult>;
  complete?(request: CompletionRequest): MaybePromise<CompleteResult['completion']>;
}

export type CatalogEvent =
  | { readonly type: 'tools-changed' | 'prompts-changed' | 'resources-changed' }
  | { readonly type: 'resource-updated'; readonly uri: string };

export type CatalogListener = (event: CatalogEvent) => void;

export interface CatalogProvider {
  listTools(scope: CatalogScope): MaybePromise<readonly ToolHandler[]>;
  getTool(name: string, scope: CatalogScope): MaybePromise<ToolHandler | undefined>;
  listResources(scope: CatalogScope): MaybePromise<readonly ResourceHandler[]>;
  getResource(uri: string, scope: CatalogScope): MaybePromise<ResourceHandler | undefined>;
  listResourceTemplates(scope: CatalogScope): MaybePromise<readonly ResourceTemplateHandler[]>;
  listPrompts(scope: CatalogScope): MaybePromise<readonly PromptHandler[]>;
  getPrompt(name: string, scope: CatalogScope): MaybePromise<PromptHandler | undefined>;
  /**
   * Subscribes to changes of the catalog `scope` sees (a tenant's, for a tenant principal);
   * returns the unsubscribe function.
   */
  watch(listener: CatalogListener, scope?: CatalogScope): () => void;
}

/**
 * An in-memory catalog built from handler lists. Lookups are map hits; `notify` lets the
 * owner publish changes (list_changed, resource updates) to every watcher.
 */
export class StaticCatalog implements CatalogProvider {
  private readonly tools = new Map<string, ToolHandler>();
  private readonly resources = new Map<string, ResourceHandler>();
  private readonly prompts = new Map<string, PromptHandler>();
  private templates: ResourceTemplateHandler[] = [];
  private readonly listeners = new Set<CatalogListener>();

  constructor(
    init: {
      tools?: readonly ToolHandler[];
      resources?: readonly ResourceHandler[];
      resourceTemplates?: readonly ResourceTemplateHandler[];
      prompts?: readonly PromptHandler[];
    } = {},
  ) {
    for (const tool of init.tools ?? []) {
      this.addTool(tool, false);
    }
    for (const resource of init.resources ?? []) {
      this.addResource(resource, false);
    }
    for (const prompt of init.prompts ?? []) {
      this.addPrompt(prompt, false);
    }
    this.templates = [...(init.resourceTemplates ?? [])];
  }

  addTool(tool: ToolHandler, announce = true): void {
    if (this.tools.has(tool.definition.name) && !announce) {
      throw new Error(`Duplicate tool name: ${tool.definition.name}`);
    }
    this.tools.set(tool.definition.name, tool);
    if (announce) {
      this.notify({ type: 'tools-changed' });
    }
  }

  removeTool(name: string): boolean {
    const removed = this.tools.delete(name);
    if (removed) {
      this.notify({ type: 'tools-changed' });
    }
    return removed;
  }

  addResource(resource: ResourceHandler, announce = true): void {
    this.resources.set(resource.definition.uri, resource);
    if (announce) {
      this.notify({ type: 'resources-changed' });
    }
  }

  addPrompt(prompt: PromptHandler, announce = true): void {
    this.prompts.set(prompt.definition.name, prompt);
    if (announce) {
      this.notify({ type: 'prompts-changed' });
    }
  }

  listTools(): readonly ToolHandler[] {
    return [...this.tools.values()];
  }
  getTool(name: string): ToolHandler | undefined {
    return this.tools.get(name);
  }
  listResources(): readonly ResourceHandler[] {
    return [...this.resources.values()];
  }
  getResource(uri: string): ResourceHandler | undefined {
    return this.resources.get(uri);
  }
  listResourceTemplates(): readonly ResourceTemplateHandler[] {
    return this.templates;
  }
  listPrompts(): readonly PromptHandler[] {
    return [...this.prompts.values()];
  }
  getPrompt(name: string): PromptHandler | undefined {
    return this.prompts.get(name);
  }

  watch(listener: CatalogListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  notify(event: CatalogEvent): void {
    for (const listener of this.listeners) {
      listener(event);
    }
  }
}

/**
 * Builds a `match` function for a level-1 RFC 6570 template such as `test://template/{id}/data`.
 * Each `{var}` matches one path segment (no `/`).
 */
export function uriTemplateMatcher(
  template: string,
): (uri: string) => Record<string, string> | undefined {
  const names: string[] = [];
  const pattern = template
    .replace(/[.*+?^${}()|[\]\\]/g, (ch) => `\\${ch}`)
    .replace(/\\\{([A-Za-z0-9_]+)\\\}/g, (_m, name: string) => {
      names.push(name);
      return '([^/]+)';
    });
  const regex = new RegExp(`^${pattern}$`);
  return (uri: string) => {
    const match = regex.exec(uri);
    if (!match) {
      return undefined;
    }
    const vars: Record<string, string> = {};
    try {
      names.forEach((name, i) => {
        vars[name] = decodeURIComponent(match[i + 1]);
      });
    } catch {
      return undefined; // a malformed escape names no resource
    }
    return vars;
  };
}

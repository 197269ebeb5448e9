import type {
  CatalogListener,
  CatalogProvider,
  CatalogScope,
  MaybePromise,
  PromptHandler,
  ResourceHandler,
  ResourceTemplateHandler,
  ToolHandler,
} from '@portico/mcp-protocol';
import { CompiledExposure } from '@portico/tenancy';
import type { GovernedCatalog, ToolAccess } from './governed-catalog';

const UNKNOWN: ToolAccess = Object.freeze({ allowed: false, reason: 'unknown' });

/**
 * A virtual server's window on its tenant's built catalog: the same handlers, policies, scope
 * checks, quotas and audit, with everything outside the server's lists answered exactly as if
 * it did not exist (not listed, `undefined` on lookup, `unknown` on access). Nothing is built
 * or connected per server.
 */
export class ServerCatalogView implements CatalogProvider {
  constructor(
    private readonly catalog: GovernedCatalog,
    readonly exposure: CompiledExposure,
  ) {}

  access(name: string, scope: CatalogScope): ToolAccess {
    return this.exposure.tools(name) ? this.catalog.access(name, scope) : UNKNOWN;
  }

  /** The scopes the server's tools require (advertised in its resource metadata). */
  requiredScopes(): string[] {
    return this.catalog.requiredScopes(this.exposure.tools);
  }

  listTools(scope: CatalogScope): readonly ToolHandler[] {
    const tools = this.exposure.tools;
    return this.catalog.listTools(scope).filter((tool) => tools(tool.definition.name));
  }

  getTool(name: string, scope: CatalogScope): ToolHandler | undefined {
    return this.exposure.tools(name) ? this.catalog.getTool(name, scope) : undefined;
  }

  async listResources(scope: CatalogScope): Promise<readonly ResourceHandler[]> {
    const resources = this.exposure.resources;
    return (await this.catalog.listResources(scope)).filter((r) => resources(r.definition.uri));
  }

  getResource(uri: string, scope: CatalogScope): MaybePromise<ResourceHandler | undefined> {
    return this.exposure.resources(uri) ? this.catalog.getResource(uri, scope) : undefined;
  }

  /**
   * Only the exposed templates: the engine reads a URI through the templates it is given, so
   * an instance of a template outside the server is "not found" like any unknown URI.
   */
  async listResourceTemplates(scope: CatalogScope): Promise<readonly ResourceTemplateHandler[]> {
    const templates = this.exposure.resourceTemplates;
    return (await this.catalog.listResourceTemplates(scope)).filter((t) =>
      templates(t.definition.uriTemplate),
    );
  }

  async listPrompts(scope: CatalogScope): Promise<readonly PromptHandler[]> {
    const prompts = this.exposure.prompts;
    return (await this.catalog.listPrompts(scope)).filter((p) => prompts(p.definition.name));
  }

  getPrompt(name: string, scope: CatalogScope): MaybePromise<PromptHandler | undefined> {
    return this.exposure.prompts(name) ? this.catalog.getPrompt(name, scope) : undefined;
  }

  /**
   * Whether a client of this server may hear about changes of `uri`: an exposed resource, or
   * an instance of an exposed template.
   */
  exposesResource(uri: string): MaybePromise<boolean> {
    if (this.exposure.resources(uri)) {
      return true;
    }
    return this.listResourceTemplates({}).then((templates) =>
      templates.some((t) => t.match(uri) !== undefined),
    );
  }

  /** The router tells a server's clients of changes itself (TenantCatalogRouter.watch). */
  watch(listener: CatalogListener): () => void {
    return this.catalog.watch(listener);
  }
}

import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { Injectable } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { AuthError, AuthPrincipal, AuthService } from '@portico/auth';
import { ConfigService } from '@portico/config';
import { ErrorCode, JsonRpcErrorObject, MaybePromise } from '@portico/mcp-protocol';
import { AuthFailureReason, GatewayMetrics } from '@portico/observability';
import type { TenantEntity, VirtualServerEntity } from '@portico/persistence';
import { bindToServer, TenantCatalogRouter, ToolAccess } from '@portico/registry';
import { TenantService } from '@portico/tenancy';

/** A refusal before any protocol work: HTTP status, headers and a JSON-RPC error body. */
export class AccessDenied extends Error {
  constructor(
    readonly status: number,
    readonly error: JsonRpcErrorObject,
    readonly headers: Record<string, string> = {},
  ) {
    super(error.message);
  }
}

export interface McpCaller {
  readonly tenant?: TenantEntity;
  /**
   * Undefined only on the anonymous development endpoint. On a virtual server's endpoint it is
   * bound to the server (`bindToServer`): the catalog, sessions and tasks see only its subset.
   */
  readonly principal?: AuthPrincipal;
  /** The virtual server of a `/mcp/{tenant}/{server}` route. */
  readonly server?: VirtualServerEntity;
}

/** The caller on the anonymous development endpoint: no tenant, no principal. */
const ANONYMOUS: McpCaller = Object.freeze({});

/** What access is decided on, whatever the transport: the tenant slug and the request's headers. */
export interface AccessTarget {
  /** The tenant slug of a tenant route, undefined on the anonymous endpoint. */
  readonly slug?: string;
  /** The virtual server name of a server route (`{path}/{tenant}/{server}`). */
  readonly server?: string;
  readonly headers: IncomingHttpHeaders;
  /** The request target (path and query). */
  readonly url: string;
  /**
   * Scheme and authority the challenge's metadata URL is built on (`https://host`); a function
   * because only refusals need it.
   */
  readonly baseUrl: () => string;
}

/**
 * Who is calling a tenant's MCP endpoint: the tenant from the path (unknown → 404, suspended →
 * 403, both before any protocol work), on a server route the tenant's virtual server (unknown
 * → 404, like a tenant), then the principal from the Authorization header (401 with a
 * WWW-Authenticate challenge pointing at the RFC 9728 metadata when missing or bad). A server
 * accepts the tenant's credentials; its principal is bound to it.
 *
 * Answers synchronously when the tenant and the credential are cached, which is every request
 * of a busy endpoint but the first few per cache period; refusals are rejected promises
 * (AccessDenied), never synchronous throws.
 */
@Injectable()
export class McpAccess {
  private readonly mcpPath: string;
  private readonly publicUrl?: string;

  constructor(
    private readonly tenants: TenantService,
    private readonly auth: AuthService,
    private readonly catalogs: TenantCatalogRouter,
    config: ConfigService,
    private readonly metrics: GatewayMetrics,
  ) {
    this.mcpPath = config.values.mcp.path;
    this.publicUrl = config.values.security.publicUrl;
  }

  /** The tenant slug of a tenant route, undefined on the anonymous endpoint. */
  slugOf(request: FastifyRequest): string | undefined {
    return (request.params as { tenant?: string } | undefined)?.tenant;
  }

  /** The virtual server name of a server route, undefined on the tenant's own endpoint. */
  serverOf(request: FastifyRequest): string | undefined {
    return (request.params as { server?: string } | undefined)?.server;
  }

  resolve(request: FastifyRequest): MaybePromise<McpCaller> {
    const slug = this.slugOf(request);
    if (slug === undefined) {
      return ANONYMOUS;
    }
    return this.admit(slug, this.serverOf(request), request.headers, request.url, request);
  }

  /** The access target of a Fastify request (Streamable HTTP, HTTP+SSE). */
  targetOf(request: FastifyRequest): AccessTarget {
    return {
      slug: this.slugOf(request),
      server: this.serverOf(request),
      headers: request.headers,
      url: request.url,
      baseUrl: () => this.baseUrl(request),
    };
  }

  /**
   * The access target of a raw Node request (a WebSocket upgrade) to the given tenant slug and,
   * on a server route, virtual server.
   */
  upgradeTargetOf(
    request: IncomingMessage,
    slug: string | undefined,
    server?: string,
  ): AccessTarget {
    const secure = (request.socket as Partial<TLSSocket>).encrypted === true;
    return {
      slug,
      server,
      headers: request.headers,
      url: request.url ?? '/',
      baseUrl: () =>
        this.publicUrl ?? `${secure ? 'https' : 'http'}://${request.headers.host ?? ''}`,
    };
  }

  resolveTarget(target: AccessTarget): MaybePromise<McpCaller> {
    if (target.slug === undefined) {
      return ANONYMOUS;
    }
    return this.admit(target.slug, target.server, target.headers, target.url, target);
  }

  /** `origin` gives the base URL of a challenge, needed only when refusing. */
  private admit(
    slug: string,
    serverName: string | undefined,
    headers: IncomingHttpHeaders,
    url: string,
    origin: FastifyRequest | AccessTarget,
  ): MaybePromise<McpCaller> {
    const tenant = this.tenants.bySlug(slug);
    return tenant instanceof Promise
      ? tenant.then((found) => this.findServer(found, slug, serverName, headers, url, origin))
      : this.findServer(tenant, slug, serverName, headers, url, origin);
  }

  /** The tenant's checks, then (on a server route) the server's, then the credentials. */
  private findServer(
    tenant: TenantEntity | null,
    slug: string,
    serverName: string | undefined,
    headers: IncomingHttpHeaders,
    url: string,
    origin: FastifyRequest | AccessTarget,
  ): MaybePromise<McpCaller> {
    if (!tenant) {
      return Promise.reject(
        new AccessDenied(404, { code: ErrorCode.InvalidRequest, message: 'Unknown tenant' }),
      );
    }
    if (tenant.status !== 'active') {
      return Promise.reject(
        new AccessDenied(403, { code: ErrorCode.InvalidRequest, message: 'Tenant suspended' }),
      );
    }
    if (serverName === undefined) {
      return this.authenticate(tenant, slug, undefined, headers, url, origin);
    }
    const server = this.tenants.serverNamed(tenant, serverName);
    return server instanceof Promise
      ? server.then((found) => this.serverFound(tenant, slug, found, headers, url, origin))
      : this.serverFound(tenant, slug, server, headers, url, origin);
  }

  private serverFound(
    tenant: TenantEntity,
    slug: string,
    server: VirtualServerEntity | null,
    headers: IncomingHttpHeaders,
    url: string,
    origin: FastifyRequest | AccessTarget,
  ): MaybePromise<McpCaller> {
    if (!server) {
      return Promise.reject(
        new AccessDenied(404, { code: ErrorCode.InvalidRequest, message: 'Unknown server' }),
      );
    }
    return this.authenticate(tenant, slug, server, headers, url, origin);
  }

  private authenticate(
    tenant: TenantEntity,
    slug: string,
    server: VirtualServerEntity | undefined,
    headers: IncomingHttpHeaders,
    url: string,
    origin: FastifyRequest | AccessTarget,
  ): MaybePromise<McpCaller> {
    const authorization = header(headers, 'authorization');
    const principal = this.auth.authenticate(
      {
        authorization,
        // Read only where it counts: an Authorization header takes precedence.
        apiKeyHeader: authorization ? undefined : header(headers, 'x-api-key'),
        query: queryOf(url),
      },
      tenant,
    );
    if (principal instanceof Promise) {
      return principal.then(
        (found) => this.admitted(tenant, found, slug, server, origin),
        (err: unknown) => this.refuse(err, tenant, slug, server, origin),
      );
    }
    return this.admitted(tenant, principal, slug, server, origin);
  }

  private admitted(
    tenant: TenantEntity,
    principal: AuthPrincipal,
    slug: string,
    server: VirtualServerEntity | undefined,
    origin: FastifyRequest | AccessTarget,
  ): MaybePromise<McpCaller> {
    if (!principal.can('mcp:use')) {
      return this.refuse(
        AuthError.forbidden('This credential may not use the MCP endpoint'),
        tenant,
        slug,
        server,
        origin,
      );
    }
    if (server) {
      return { tenant, principal: bindToServer(principal, server.name), server };
    }
    return { tenant, principal };
  }

  private async refuse(
    err: unknown,
    tenant: TenantEntity,
    slug: string,
    server: VirtualServerEntity | undefined,
    origin: FastifyRequest | AccessTarget,
  ): Promise<never> {
    if (!(err instanceof AuthError)) {
      throw err;
    }
    this.metrics.authFailure(failureReason(err));
    // The challenge names the scopes the endpoint's tools use (RFC 6750 §3, MCP SHOULD).
    const scopes = err.status === 401 ? await this.catalogs.scopesOf(tenant.id, server?.name) : [];
    const baseUrl = isAccessTarget(origin) ? origin.baseUrl() : this.baseUrl(origin);
    throw this.denied(baseUrl, endpointPath(slug, server?.name), err, scopes);
  }

  /**
   * 403 insufficient_scope when a tool needs scopes the caller lacks (HTTP step-up); settled
   * synchronously once the tenant's catalog is built.
   */
  checkToolCall(
    request: FastifyRequest,
    caller: McpCaller,
    tool: unknown,
    trace?: unknown,
  ): MaybePromise<void> {
    if (!caller.principal || !caller.tenant || typeof tool !== 'string') {
      return;
    }
    const endpoint = endpointPath(caller.tenant.slug, caller.server?.name);
    const found = this.catalogs.toolAccess(tool, {
      principal: caller.principal,
      server: caller.server?.name,
      trace,
    });
    if (found instanceof Promise) {
      return found.then((access) => this.checkAccess(request, endpoint, access));
    }
    try {
      this.checkAccess(request, endpoint, found);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private checkAccess(request: FastifyRequest, endpoint: string, access: ToolAccess): void {
    if (!access.allowed && access.reason === 'scope') {
      this.metrics.authFailure('scope');
      throw this.denied(
        this.baseUrl(request),
        endpoint,
        AuthError.insufficientScope(access.requiredScopes),
      );
    }
  }

  /**
   * RFC 9728 metadata of a tenant endpoint, or with `serverName` of one of its virtual servers
   * (its own `resource`, the tenant's authorization servers, the scopes of its tools);
   * undefined for an unknown or suspended tenant or an unknown server.
   */
  async protectedResourceMetadata(
    request: FastifyRequest,
    slug: string,
    serverName?: string,
  ): Promise<Record<string, unknown> | undefined> {
    const tenant = await this.tenants.bySlug(slug);
    if (!tenant || tenant.status !== 'active') {
      return undefined;
    }
    const server =
      serverName === undefined ? undefined : await this.tenants.serverNamed(tenant, serverName);
    if (server === null) {
      return undefined;
    }
    const servers =
      tenant.auth.authorizationServers ?? (tenant.auth.jwt ? [tenant.auth.jwt.issuer] : []);
    const scopes = await this.catalogs.scopesOf(tenant.id, server?.name);
    return {
      resource: this.resourceUrl(request, slug, server?.name),
      ...(servers.length > 0 ? { authorization_servers: servers } : {}),
      ...(scopes.length > 0 ? { scopes_supported: scopes } : {}),
      bearer_methods_supported: ['header'],
      resource_name: server ? `${tenant.name}: ${server.title ?? server.name}` : tenant.name,
    };
  }

  /**
   * The resource identifier of a tenant endpoint, or of one of its virtual servers
   * (RFC 8707 / RFC 9728 `resource`).
   */
  resourceUrl(request: FastifyRequest, slug: string, server?: string): string {
    return `${this.baseUrl(request)}${this.mcpPath}/${endpointPath(slug, server)}`;
  }

  metadataUrl(request: FastifyRequest, slug: string, server?: string): string {
    return this.metadataUrlAt(this.baseUrl(request), endpointPath(slug, server));
  }

  /** `endpoint` is the path below the MCP path: `{slug}` or `{slug}/{server}`. */
  private metadataUrlAt(baseUrl: string, endpoint: string): string {
    return `${baseUrl}/.well-known/oauth-protected-resource${this.mcpPath}/${endpoint}`;
  }

  private baseUrl(request: FastifyRequest): string {
    return this.publicUrl ?? `${request.protocol}://${request.host}`;
  }

  private denied(
    baseUrl: string,
    endpoint: string,
    err: AuthError,
    defaultScopes: readonly string[] = [],
  ): AccessDenied {
    return new AccessDenied(
      err.status,
      {
        code: ErrorCode.InvalidRequest,
        message: err.message,
        ...(err.scopes.length > 0 ? { data: { requiredScopes: [...err.scopes] } } : {}),
      },
      {
        'www-authenticate': err.challenge(this.metadataUrlAt(baseUrl, endpoint), defaultScopes),
      },
    );
  }
}

/** The endpoint's path below the MCP path: `{slug}`, or `{slug}/{server}` for a server. */
function endpointPath(slug: string, server: string | undefined): string {
  return server === undefined ? slug : `${slug}/${server}`;
}

function isAccessTarget(origin: FastifyRequest | AccessTarget): origin is AccessTarget {
  return typeof (origin as Partial<AccessTarget>).baseUrl === 'function';
}

function failureReason(err: AuthError): AuthFailureReason {
  if (err.status === 401) {
    return err.error === undefined ? 'missing' : 'invalid';
  }
  return err.error === 'insufficient_scope' ? 'scope' : 'forbidden';
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function queryOf(url: string): string | undefined {
  const at = url.indexOf('?');
  return at < 0 ? undefined : url.slice(at + 1);
}

import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { Injectable } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { AuthError, AuthPrincipal, AuthService } from '@portico/auth';
import { ConfigService } from '@portico/config';
import { ErrorCode, JsonRpcErrorObject, MaybePromise } from '@portico/mcp-protocol';
import { AuthFailureReason, GatewayMetrics } from '@portico/observability';
import type { TenantEntity } from '@portico/persistence';
import { TenantCatalogRouter, ToolAccess } from '@portico/registry';
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
  /** Undefined only on the anonymous development endpoint. */
  readonly principal?: AuthPrincipal;
}

/** The caller on the anonymous development endpoint: no tenant, no principal. */
const ANONYMOUS: McpCaller = Object.freeze({});

/** What access is decided on, whatever the transport: the tenant slug and the request's headers. */
export interface AccessTarget {
  /** The tenant slug of a tenant route, undefined on the anonymous endpoint. */
  readonly slug?: string;
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
 * 403, both before any protocol work), then the principal from the Authorization header (401
 * with a WWW-Authenticate challenge pointing at the RFC 9728 metadata when missing or bad).
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

  resolve(request: FastifyRequest): MaybePromise<McpCaller> {
    const slug = this.slugOf(request);
    if (slug === undefined) {
      return ANONYMOUS;
    }
    return this.admit(slug, request.headers, request.url, request);
  }

  /** The access target of a Fastify request (Streamable HTTP, HTTP+SSE). */
  targetOf(request: FastifyRequest): AccessTarget {
    return {
      slug: this.slugOf(request),
      headers: request.headers,
      url: request.url,
      baseUrl: () => this.baseUrl(request),
    };
  }

  /** The access target of a raw Node request (a WebSocket upgrade) to the given tenant slug. */
  upgradeTargetOf(request: IncomingMessage, slug: string | undefined): AccessTarget {
    const secure = (request.socket as Partial<TLSSocket>).encrypted === true;
    return {
      slug,
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
    return this.admit(target.slug, target.headers, target.url, target);
  }

  /** `origin` gives the base URL of a challenge, needed only when refusing. */
  private admit(
    slug: string,
    headers: IncomingHttpHeaders,
    url: string,
    origin: FastifyRequest | AccessTarget,
  ): MaybePromise<McpCaller> {
    const tenant = this.tenants.bySlug(slug);
    return tenant instanceof Promise
      ? tenant.then((found) => this.authenticate(found, slug, headers, url, origin))
      : this.authenticate(tenant, slug, headers, url, origin);
  }

  private authenticate(
    tenant: TenantEntity | null,
    slug: string,
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
        (found) => this.admitted(tenant, found, slug, origin),
        (err: unknown) => this.refuse(err, tenant, slug, origin),
      );
    }
    return this.admitted(tenant, principal, slug, origin);
  }

  private admitted(
    tenant: TenantEntity,
    principal: AuthPrincipal,
    slug: string,
    origin: FastifyRequest | AccessTarget,
  ): MaybePromise<McpCaller> {
    if (!principal.can('mcp:use')) {
      return this.refuse(
        AuthError.forbidden('This credential may not use the MCP endpoint'),
        tenant,
        slug,
        origin,
      );
    }
    return { tenant, principal };
  }

  private async refuse(
    err: unknown,
    tenant: TenantEntity,
    slug: string,
    origin: FastifyRequest | AccessTarget,
  ): Promise<never> {
    if (!(err instanceof AuthError)) {
      throw err;
    }
    this.metrics.authFailure(failureReason(err));
    // The challenge names the scopes the tenant's tools use (RFC 6750 §3, MCP SHOULD).
    const scopes = err.status === 401 ? await this.catalogs.scopesOf(tenant.id) : [];
    const baseUrl = isAccessTarget(origin) ? origin.baseUrl() : this.baseUrl(origin);
    throw this.denied(baseUrl, slug, err, scopes);
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
    const slug = caller.tenant.slug;
    const found = this.catalogs.toolAccess(tool, { principal: caller.principal, trace });
    if (found instanceof Promise) {
      return found.then((access) => this.checkAccess(request, slug, access));
    }
    try {
      this.checkAccess(request, slug, found);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private checkAccess(request: FastifyRequest, slug: string, access: ToolAccess): void {
    if (!access.allowed && access.reason === 'scope') {
      this.metrics.authFailure('scope');
      throw this.denied(
        this.baseUrl(request),
        slug,
        AuthError.insufficientScope(access.requiredScopes),
      );
    }
  }

  /** RFC 9728 metadata of a tenant endpoint; undefined for an unknown or suspended tenant. */
  async protectedResourceMetadata(
    request: FastifyRequest,
    slug: string,
  ): Promise<Record<string, unknown> | undefined> {
    const tenant = await this.tenants.bySlug(slug);
    if (!tenant || tenant.status !== 'active') {
      return undefined;
    }
    const servers =
      tenant.auth.authorizationServers ?? (tenant.auth.jwt ? [tenant.auth.jwt.issuer] : []);
    const scopes = await this.catalogs.scopesOf(tenant.id);
    return {
      resource: this.resourceUrl(request, slug),
      ...(servers.length > 0 ? { authorization_servers: servers } : {}),
      ...(scopes.length > 0 ? { scopes_supported: scopes } : {}),
      bearer_methods_supported: ['header'],
      resource_name: tenant.name,
    };
  }

  /** The resource identifier of a tenant endpoint (RFC 8707 / RFC 9728 `resource`). */
  resourceUrl(request: FastifyRequest, slug: string): string {
    return `${this.baseUrl(request)}${this.mcpPath}/${slug}`;
  }

  metadataUrl(request: FastifyRequest, slug: string): string {
    return this.metadataUrlAt(this.baseUrl(request), slug);
  }

  private metadataUrlAt(baseUrl: string, slug: string): string {
    return `${baseUrl}/.well-known/oauth-protected-resource${this.mcpPath}/${slug}`;
  }

  private baseUrl(request: FastifyRequest): string {
    return this.publicUrl ?? `${request.protocol}://${request.host}`;
  }

  private denied(
    baseUrl: string,
    slug: string,
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
        'www-authenticate': err.challenge(this.metadataUrlAt(baseUrl, slug), defaultScopes),
      },
    );
  }
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

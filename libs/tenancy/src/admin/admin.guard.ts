import { CanActivate, ExecutionContext, Injectable, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import {
  ApiKeyService,
  AuthError,
  AuthPrincipal,
  AuthService,
  CredentialSource,
  isApiKeyFormat,
} from '@portico/auth';
import type { TenantEntity } from '@portico/persistence';
import { AuditService } from '../audit/audit.service';
import { TenantService } from '../tenant/tenant.service';
import { AUDIT_ACTION } from './admin-audit.interceptor';
import { AdminError } from './admin.errors';
import { attachAdminContext } from './admin-context';

/** `platform`: tenant management, platform admins only. `tenant`: routes under /tenants/{slug}. */
export type AdminScope = 'platform' | 'tenant';
export const ADMIN_SCOPE = Symbol('portico.admin-scope');
export const AdminScopeOf = (scope: AdminScope) => SetMetadata(ADMIN_SCOPE, scope);

const READ_METHODS = new Set(['GET', 'HEAD']);

/**
 * Authenticates every admin request and decides access. A tenant credential asking about a
 * tenant other than its own gets the same 404 as a tenant that does not exist, so credentials
 * cannot be used to discover which slugs are taken.
 */
@Injectable()
export class AdminGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly auth: AuthService,
    private readonly apiKeys: ApiKeyService,
    private readonly tenants: TenantService,
    private readonly audit: AuditService,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const scope = this.reflector.getAllAndOverride<AdminScope | undefined>(ADMIN_SCOPE, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (scope === undefined) {
      throw new Error('Admin controller without an AdminScope');
    }
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    const source: CredentialSource = {
      authorization: header(request, 'authorization'),
      apiKeyHeader: header(request, 'x-api-key'),
      query: request.url.includes('?') ? request.url.slice(request.url.indexOf('?') + 1) : '',
    };
    // Missing or malformed credentials are refused before any lookup reveals anything.
    if (this.auth.extract(source) === undefined) {
      throw AuthError.missing();
    }
    let tenant: TenantEntity | null = null;
    if (scope === 'tenant') {
      const slug = (request.params as { slug?: string }).slug ?? '';
      tenant = await this.tenants.bySlug(slug);
    }
    const principal = await this.principal(source, tenant, scope);
    if (scope === 'tenant') {
      if (!tenant || (principal.tenant !== undefined && principal.tenant !== tenant.id)) {
        throw AdminError.notFound('Tenant');
      }
      const needed = READ_METHODS.has(request.method) ? 'tenant:read' : 'tenant:write';
      if (!principal.can(needed)) {
        this.recordDenied(context, request, principal, tenant.id);
        throw AuthError.forbidden(`This credential lacks ${needed}`);
      }
    } else if (!principal.can('platform:manage')) {
      this.recordDenied(context, request, principal, null);
      throw AuthError.forbidden('Only platform administrators may manage tenants');
    }
    attachAdminContext(request, {
      principal,
      requestId: request.id,
      tenant: tenant ?? undefined,
      audit: {},
    });
    return true;
  }

  /**
   * A known caller trying a change its role does not allow is worth a trace; unauthenticated
   * noise and reads are not (the guard runs before the audit interceptor, hence this here).
   */
  private recordDenied(
    context: ExecutionContext,
    request: FastifyRequest,
    principal: AuthPrincipal,
    tenantId: string | null,
  ): void {
    const action = this.reflector.get<string | undefined>(AUDIT_ACTION, context.getHandler());
    if (READ_METHODS.has(request.method) || action === undefined) {
      return;
    }
    const params = request.params as { id?: string; slug?: string };
    this.audit.record({
      tenantId,
      actor: principal.id,
      action,
      target: params.id ?? params.slug ?? null,
      outcome: 'denied',
      requestId: request.id,
    });
  }

  private async principal(
    source: CredentialSource,
    tenant: TenantEntity | null,
    scope: AdminScope,
  ): Promise<AuthPrincipal> {
    try {
      return await this.auth.authenticate(source, tenant, { allowPlatform: true });
    } catch (err) {
      // AuthService answers "invalid" for a live key of another tenant; here that key is
      // genuine, so the answer is "no such tenant" (tenant routes) or "not allowed" (platform).
      const token = err instanceof AuthError && err.status === 401 && this.auth.extract(source);
      if (token && isApiKeyFormat(token)) {
        const key = await this.apiKeys.verify(token);
        if (key?.tenantId) {
          throw scope === 'tenant'
            ? AdminError.notFound('Tenant')
            : AuthError.forbidden('Only platform administrators may manage tenants');
        }
      }
      throw err;
    }
  }
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

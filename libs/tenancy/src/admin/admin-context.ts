import { createParamDecorator, ExecutionContext } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import type { AuthPrincipal } from '@portico/auth';
import type { TenantEntity } from '@portico/persistence';

/** Who is calling and, on tenant routes, which tenant: set by AdminGuard. */
export interface AdminContext {
  readonly principal: AuthPrincipal;
  readonly requestId: string;
  /** Present on every `/tenants/{slug}/...` route. */
  readonly tenant?: TenantEntity;
  /** What the audit event of this mutation names; handlers fill it in when they know better. */
  audit: { tenantId?: string | null; target?: string | null; details?: Record<string, unknown> };
}

const CONTEXT = Symbol('portico.admin-context');

type WithContext = FastifyRequest & { [CONTEXT]?: AdminContext };

export function attachAdminContext(request: FastifyRequest, context: AdminContext): void {
  (request as WithContext)[CONTEXT] = context;
}

export function adminContextOf(request: FastifyRequest): AdminContext {
  const context = (request as WithContext)[CONTEXT];
  if (!context) {
    // Only reachable when a controller forgot @AdminController: fail loudly, never run unguarded.
    throw new Error('Admin route reached without AdminGuard');
  }
  return context;
}

/** The caller's AdminContext. */
export const Admin = createParamDecorator((_data: unknown, ctx: ExecutionContext) =>
  adminContextOf(ctx.switchToHttp().getRequest<FastifyRequest>()),
);

/** Like Admin, for tenant routes: the tenant is guaranteed present. */
export interface TenantAdminContext extends AdminContext {
  readonly tenant: TenantEntity;
}

export const TenantAdmin = createParamDecorator(
  (_data: unknown, ctx: ExecutionContext): TenantAdminContext => {
    const context = adminContextOf(ctx.switchToHttp().getRequest<FastifyRequest>());
    if (!context.tenant) {
      throw new Error('TenantAdmin used on a route without a tenant');
    }
    return context as TenantAdminContext;
  },
);

import { Injectable } from '@nestjs/common';
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
import { SLUG_PATTERN, TenantService } from '@portico/tenancy';
import type { ViewerScope } from './dashboard-model';
import { DashboardError } from './dashboard.errors';

/** An authenticated dashboard viewer and what it may see. */
export interface DashboardViewer {
  readonly principal: AuthPrincipal;
  readonly scope: ViewerScope;
  /** The id of the tenant the view is limited to. */
  readonly tenantId?: string;
}

/** What a stream request presented: kept to check the credential again while it streams. */
export interface DashboardCredentials {
  readonly source: CredentialSource;
  /** `?tenant=`: which tenant a JWT belongs to, or the one tenant a platform admin focuses on. */
  readonly tenant?: string;
}

export function credentialsOf(request: FastifyRequest): DashboardCredentials {
  const url = request.url;
  const source: CredentialSource = {
    authorization: header(request, 'authorization'),
    apiKeyHeader: header(request, 'x-api-key'),
    query: url.includes('?') ? url.slice(url.indexOf('?') + 1) : '',
  };
  const tenant = (request.query as Record<string, unknown> | undefined)?.tenant;
  if (tenant === undefined) {
    return { source };
  }
  if (typeof tenant !== 'string' || !SLUG_PATTERN.test(tenant)) {
    throw DashboardError.invalidInput('The tenant parameter must be one tenant slug');
  }
  return { source, tenant };
}

/**
 * Admin credentials as the admin API takes them (bootstrap token, platform or tenant API
 * keys, tenant JWTs), in the Authorization or X-API-Key header only. Viewers need
 * `tenant:read`: platform administrators see every tenant, everyone else their own tenant,
 * and naming a tenant that is not theirs gets the same 404 as a tenant that does not exist.
 */
@Injectable()
export class DashboardAccess {
  constructor(
    private readonly auth: AuthService,
    private readonly apiKeys: ApiKeyService,
    private readonly tenants: TenantService,
  ) {}

  async authorize({ source, tenant: slug }: DashboardCredentials): Promise<DashboardViewer> {
    const token = this.auth.extract(source);
    if (token === undefined) {
      throw AuthError.missing();
    }
    let tenant: TenantEntity | null = null;
    if (slug !== undefined) {
      tenant = await this.tenants.bySlug(slug);
    } else if (isApiKeyFormat(token)) {
      // A tenant's key carries its tenant; platform keys and unknown keys have none.
      const key = await this.apiKeys.verify(token);
      if (key?.tenantId) {
        tenant = await this.tenants.byId(key.tenantId);
      }
    }
    const principal = await this.authenticate(source, token, tenant, slug !== undefined);
    if (principal.tenant !== undefined && principal.tenant !== tenant?.id) {
      throw DashboardError.notFound('Tenant');
    }
    if (slug !== undefined && !tenant) {
      throw DashboardError.notFound('Tenant');
    }
    if (!principal.can('tenant:read')) {
      throw AuthError.forbidden('This credential lacks tenant:read');
    }
    return {
      principal,
      scope: { tenant: tenant?.slug ?? null, platform: principal.tenant === undefined },
      tenantId: tenant?.id,
    };
  }

  private async authenticate(
    source: CredentialSource,
    token: string,
    tenant: TenantEntity | null,
    named: boolean,
  ): Promise<AuthPrincipal> {
    try {
      return await this.auth.authenticate(source, tenant, { allowPlatform: true });
    } catch (err) {
      if (!(err instanceof AuthError) || err.status !== 401) {
        throw err;
      }
      if (isApiKeyFormat(token)) {
        // A live key of another tenant than the one named: as if that tenant did not exist.
        if (named && (await this.apiKeys.verify(token))?.tenantId) {
          throw DashboardError.notFound('Tenant');
        }
      } else if (!tenant) {
        throw AuthError.invalid('Unknown credential (a tenant JWT needs ?tenant=<slug>)');
      }
      throw err;
    }
  }
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { ApiKeyService, Role } from '@portico/auth';
import type { TenantAuthSettings, TenantEntity } from '@portico/persistence';
import { TenantService } from '@portico/tenancy';

export interface SeededTenant {
  tenant: TenantEntity;
  /** A tool-user API key of this tenant (the secret, usable as a Bearer token). */
  apiKey: string;
}

/**
 * Creates a tenant straight through the services (no admin API), with fixture backends, tool
 * policies and one API key, for suites that exercise the MCP endpoint.
 */
export async function seedTenant(
  app: NestFastifyApplication,
  options: {
    slug: string;
    fixtures?: ('conformance' | 'echo')[];
    policies?: { tool: string; requiredScopes?: string[]; disabled?: boolean; rename?: string }[];
    auth?: TenantAuthSettings;
    roles?: Role[];
    scopes?: string[];
  },
): Promise<SeededTenant> {
  const tenants = app.get(TenantService);
  const tenant = await tenants.create({
    slug: options.slug,
    name: `Tenant ${options.slug}`,
    auth: options.auth,
  });
  for (const fixture of options.fixtures ?? ['conformance']) {
    await tenants.backends(tenant.id).insert({
      name: fixture,
      kind: 'fixture',
      target: fixture,
      settings: {},
      credentialsSealed: null,
    });
  }
  for (const policy of options.policies ?? []) {
    await tenants.policies(tenant.id).insert({
      tool: policy.tool,
      requiredScopes: policy.requiredScopes ?? [],
      disabled: policy.disabled ?? false,
      description: null,
      rename: policy.rename ?? null,
      annotations: null,
    });
  }
  await tenants.changed(tenant);
  const { secret } = await app.get(ApiKeyService).create(tenant.id, {
    name: 'default',
    roles: options.roles ?? ['tool-user'],
    scopes: options.scopes ?? [],
  });
  return { tenant, apiKey: secret };
}

/** Another API key for an existing tenant. */
export async function createApiKey(
  app: NestFastifyApplication,
  tenantId: string | null,
  options: { name: string; roles?: Role[]; scopes?: string[]; expiresAt?: Date },
): Promise<{ id: string; secret: string }> {
  const { entity, secret } = await app.get(ApiKeyService).create(tenantId, {
    name: options.name,
    roles: options.roles ?? ['tool-user'],
    scopes: options.scopes ?? [],
    expiresAt: options.expiresAt,
  });
  return { id: entity.id, secret };
}

/** A virtual server of a tenant, made straight through the services (no admin API). */
export async function createVirtualServer(
  app: NestFastifyApplication,
  tenant: TenantEntity,
  server: {
    name: string;
    title?: string;
    tools?: string[];
    prompts?: string[];
    resources?: string[];
    resourceTemplates?: string[];
  },
): Promise<void> {
  const tenants = app.get(TenantService);
  await tenants.servers(tenant.id).insert({
    name: server.name,
    title: server.title ?? null,
    description: null,
    tools: server.tools ?? [],
    prompts: server.prompts ?? [],
    resources: server.resources ?? [],
    resourceTemplates: server.resourceTemplates ?? [],
  });
  await tenants.changed(tenant);
}

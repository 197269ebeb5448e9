import { Injectable, Logger } from '@nestjs/common';
import { ApiKeyService, AuthService } from '@portico/auth';
import type {
  ApiKeyEntity,
  BackendEntity,
  TenantAuthSettings,
  TenantEntity,
  TenantScopedRepository,
  ToolPolicyEntity,
  VirtualServerEntity,
} from '@portico/persistence';
import type { FindOptionsWhere } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import { TenantService } from '../tenant/tenant.service';
import type { DeclarativeConfig, DeclaredTenant } from './declarative-config';

/** What an apply changed, as `kind:name` entries; empty lists mean nothing was out of date. */
export interface ApplyReport {
  created: string[];
  updated: string[];
  deleted: string[];
}

/**
 * Makes the database match a validated portico.yaml. For each declared tenant the file is the
 * source of truth for its settings, backends, tool policies and virtual servers (extra ones
 * are removed), and
 * for the keys and role bindings it declares (marked `declared`; keys and bindings made through
 * the admin API are left alone). Tenants the file does not mention are untouched. Applying the
 * same file twice changes nothing the second time.
 */
@Injectable()
export class DeclarativeApplyService {
  private readonly logger = new Logger(DeclarativeApplyService.name);

  constructor(
    private readonly tenants: TenantService,
    private readonly apiKeys: ApiKeyService,
    private readonly auth: AuthService,
    private readonly audit: AuditService,
  ) {}

  async apply(config: DeclarativeConfig, actor = 'config-apply'): Promise<ApplyReport> {
    const report: ApplyReport = { created: [], updated: [], deleted: [] };
    for (const declared of config.tenants) {
      await this.applyTenant(declared, report);
    }
    const changes = report.created.length + report.updated.length + report.deleted.length;
    if (changes > 0) {
      this.audit.record({
        tenantId: null,
        actor,
        action: 'config.apply',
        target: config.tenants.map((t) => t.slug).join(','),
        outcome: 'success',
        details: { ...report },
      });
      this.logger.log(
        `Declarative config applied: ${report.created.length} created, ` +
          `${report.updated.length} updated, ${report.deleted.length} deleted`,
      );
    }
    return report;
  }

  private async applyTenant(declared: DeclaredTenant, report: ApplyReport): Promise<void> {
    const auth = toAuthSettings(declared);
    let tenant = await this.tenants.findBySlugUncached(declared.slug);
    let changed = false;
    if (!tenant) {
      tenant = await this.tenants.create({
        slug: declared.slug,
        name: declared.name,
        status: declared.status,
        limits: declared.limits,
        auth,
      });
      report.created.push(`tenant:${declared.slug}`);
    } else if (
      tenant.name !== declared.name ||
      tenant.status !== declared.status ||
      !sameJson(tenant.limits, declared.limits) ||
      !sameJson(tenant.auth, auth)
    ) {
      Object.assign(tenant, {
        name: declared.name,
        status: declared.status,
        limits: declared.limits,
        auth,
      });
      report.updated.push(`tenant:${declared.slug}`);
      changed = true;
    }
    const at = (kind: string, name: string) => `${kind}:${declared.slug}/${name}`;

    changed = (await this.syncBackends(tenant, declared, report, at)) || changed;
    changed = (await this.syncPolicies(tenant, declared, report, at)) || changed;
    changed = (await this.syncServers(tenant, declared, report, at)) || changed;
    await this.syncApiKeys(tenant, declared, report, at);
    if (await this.syncRoleBindings(tenant, declared, report, at)) {
      this.auth.forgetBindings(tenant.id);
    }
    if (changed) {
      await this.tenants.changed(tenant);
    }
  }

  private async syncBackends(
    tenant: TenantEntity,
    declared: DeclaredTenant,
    report: ApplyReport,
    at: (kind: string, name: string) => string,
  ): Promise<boolean> {
    const values = (backend: DeclaredTenant['backends'][number]): Partial<BackendEntity> => ({
      kind: backend.kind,
      target: backend.target,
      settings: backend.settings,
      credentialsSealed:
        Object.keys(backend.credentials).length > 0
          ? this.tenants.sealCredentials(tenant.id, backend.name, backend.credentials)
          : null,
    });
    return syncByKey({
      repo: this.tenants.backends(tenant.id),
      declared: declared.backends,
      keyOf: (row) => row.name,
      declaredKey: (backend) => backend.name,
      // Credentials compare by their opened value: sealing is randomised.
      same: (row, backend) =>
        row.kind === backend.kind &&
        row.target === backend.target &&
        sameJson(row.settings, backend.settings) &&
        sameJson(this.openQuietly(row), backend.credentials),
      create: (backend) => ({ name: backend.name, ...values(backend) }),
      change: values,
      report,
      label: (name) => at('backend', name),
    });
  }

  private async syncPolicies(
    tenant: TenantEntity,
    declared: DeclaredTenant,
    report: ApplyReport,
    at: (kind: string, name: string) => string,
  ): Promise<boolean> {
    const values = (policy: DeclaredTenant['policies'][number]): Partial<ToolPolicyEntity> => ({
      requiredScopes: policy.requiredScopes,
      disabled: policy.disabled,
      description: policy.description ?? null,
      rename: policy.rename ?? null,
      annotations: null,
    });
    return syncByKey({
      repo: this.tenants.policies(tenant.id),
      declared: declared.policies,
      keyOf: (row) => row.tool,
      declaredKey: (policy) => policy.tool,
      same: (row, policy) => samePolicy(row, values(policy)),
      create: (policy) => ({ tool: policy.tool, ...values(policy) }),
      change: values,
      report,
      label: (tool) => at('policy', tool),
    });
  }

  private async syncServers(
    tenant: TenantEntity,
    declared: DeclaredTenant,
    report: ApplyReport,
    at: (kind: string, name: string) => string,
  ): Promise<boolean> {
    const values = (server: DeclaredTenant['servers'][number]): Partial<VirtualServerEntity> => ({
      title: server.title ?? null,
      description: server.description ?? null,
      tools: server.tools,
      prompts: server.prompts,
      resources: server.resources,
      resourceTemplates: server.resourceTemplates,
    });
    return syncByKey({
      repo: this.tenants.servers(tenant.id),
      declared: declared.servers,
      keyOf: (row) => row.name,
      declaredKey: (server) => server.name,
      same: (row, server) => {
        const wanted = values(server);
        return (
          row.title === wanted.title &&
          row.description === wanted.description &&
          sameJson(row.tools, wanted.tools) &&
          sameJson(row.prompts, wanted.prompts) &&
          sameJson(row.resources, wanted.resources) &&
          sameJson(row.resourceTemplates, wanted.resourceTemplates)
        );
      },
      create: (server) => ({ name: server.name, ...values(server) }),
      change: values,
      report,
      label: (name) => at('server', name),
    });
  }

  private async syncApiKeys(
    tenant: TenantEntity,
    declared: DeclaredTenant,
    report: ApplyReport,
    at: (kind: string, name: string) => string,
  ): Promise<void> {
    const repo = this.apiKeys.forTenant(tenant.id);
    const existing = new Map((await repo.find()).map((k) => [k.name, k]));
    for (const key of declared.apiKeys) {
      const current = existing.get(key.name);
      existing.delete(key.name);
      const expiresAt = key.expiresAt ? new Date(key.expiresAt) : null;
      if (current && !current.declared) {
        throw new Error(
          `API key "${key.name}" of tenant ${tenant.slug} was created through the admin API; ` +
            'rename the declared key or delete the existing one',
        );
      }
      if (current && current.revokedAt === null && (await this.matches(current, key.secret))) {
        if (
          !sameJson([...current.roles].sort(), [...key.roles].sort()) ||
          !sameJson([...current.scopes].sort(), [...key.scopes].sort()) ||
          (current.expiresAt?.getTime() ?? null) !== (expiresAt?.getTime() ?? null)
        ) {
          await repo.update(current.id, { roles: key.roles, scopes: key.scopes, expiresAt });
          this.apiKeys.evict(current.id);
          report.updated.push(at('api-key', key.name));
        }
        continue;
      }
      if (current) {
        // The secret changed (or the key was revoked): replace the row.
        await repo.delete({ id: current.id });
        this.apiKeys.evict(current.id);
      }
      await this.apiKeys.create(tenant.id, {
        name: key.name,
        roles: key.roles,
        scopes: key.scopes,
        expiresAt,
        secret: key.secret,
        declared: true,
      });
      report[current ? 'updated' : 'created'].push(at('api-key', key.name));
    }
    for (const stale of existing.values()) {
      if (stale.declared && stale.revokedAt === null) {
        await this.apiKeys.revoke(tenant.id, stale.id);
        report.deleted.push(at('api-key', stale.name));
      }
    }
  }

  private async syncRoleBindings(
    tenant: TenantEntity,
    declared: DeclaredTenant,
    report: ApplyReport,
    at: (kind: string, name: string) => string,
  ): Promise<boolean> {
    const repo = this.tenants.roleBindings(tenant.id);
    const key = (subject: string, role: string) => `${subject}\u0000${role}`;
    const existing = new Map(
      (await repo.find({ declared: true })).map((b) => [key(b.subject, b.role), b]),
    );
    let changed = false;
    for (const binding of declared.roleBindings) {
      if (existing.delete(key(binding.subject, binding.role))) {
        continue;
      }
      const clash = await repo.findOne({ subject: binding.subject, role: binding.role });
      if (clash) {
        continue; // granted through the admin API already
      }
      await repo.insert({ subject: binding.subject, role: binding.role, declared: true });
      report.created.push(at('role-binding', `${binding.subject}:${binding.role}`));
      changed = true;
    }
    for (const stale of existing.values()) {
      await repo.delete({ id: stale.id });
      report.deleted.push(at('role-binding', `${stale.subject}:${stale.role}`));
      changed = true;
    }
    return changed;
  }

  private async matches(current: ApiKeyEntity, secret: string): Promise<boolean> {
    const verified = await this.apiKeys.verify(secret);
    return verified?.id === current.id;
  }

  private openQuietly(backend: BackendEntity): Record<string, string> | undefined {
    try {
      return this.tenants.openCredentials(backend);
    } catch {
      return undefined; // unreadable (key gone): re-seal with the declared value
    }
  }
}

/**
 * Makes a tenant's rows of one kind match the declared list, matched by key: missing ones
 * inserted, differing ones updated, undeclared ones deleted. Returns whether anything changed.
 */
async function syncByKey<Row extends { id: string; tenantId: string | null }, Item>(sync: {
  repo: TenantScopedRepository<Row>;
  declared: readonly Item[];
  keyOf: (row: Row) => string;
  declaredKey: (item: Item) => string;
  same: (row: Row, item: Item) => boolean;
  create: (item: Item) => Omit<Partial<Row>, 'tenantId'>;
  change: (item: Item) => Omit<Partial<Row>, 'tenantId' | 'id'>;
  report: ApplyReport;
  label: (key: string) => string;
}): Promise<boolean> {
  const existing = new Map((await sync.repo.find()).map((row) => [sync.keyOf(row), row]));
  let changed = false;
  for (const item of sync.declared) {
    const key = sync.declaredKey(item);
    const current = existing.get(key);
    existing.delete(key);
    if (!current) {
      await sync.repo.insert(sync.create(item));
      sync.report.created.push(sync.label(key));
      changed = true;
    } else if (!sync.same(current, item)) {
      await sync.repo.update(current.id, sync.change(item));
      sync.report.updated.push(sync.label(key));
      changed = true;
    }
  }
  for (const [key, stale] of existing) {
    await sync.repo.delete({ id: stale.id } as FindOptionsWhere<Row>);
    sync.report.deleted.push(sync.label(key));
    changed = true;
  }
  return changed;
}

function toAuthSettings(declared: DeclaredTenant): TenantAuthSettings {
  const auth: TenantAuthSettings = {};
  const jwt = declared.auth?.jwt;
  if (jwt) {
    auth.jwt = {
      issuer: jwt.issuer,
      audience: jwt.audience.length === 1 ? jwt.audience[0] : jwt.audience,
      algorithms: jwt.algorithms,
      ...(jwt.jwksUri ? { jwksUri: jwt.jwksUri } : {}),
      ...(jwt.publicKey ? { publicKey: jwt.publicKey } : {}),
      ...(jwt.rolesClaim ? { rolesClaim: jwt.rolesClaim } : {}),
      ...(jwt.scopesClaim ? { scopesClaim: jwt.scopesClaim } : {}),
    };
  }
  if (declared.auth && declared.auth.authorizationServers.length > 0) {
    auth.authorizationServers = declared.auth.authorizationServers;
  }
  return auth;
}

function samePolicy(current: ToolPolicyEntity, values: Partial<ToolPolicyEntity>): boolean {
  return (
    sameJson(current.requiredScopes, values.requiredScopes) &&
    current.disabled === values.disabled &&
    current.description === values.description &&
    current.rename === values.rename
  );
}

/** Structural equality for plain JSON values, insensitive to key order. */
function sameJson(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) {
    return `[${value.map(canonical).join(',')}]`;
  }
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

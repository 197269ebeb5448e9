import { randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import type { MaybePromise } from '@portico/mcp-protocol';
import {
  BackendEntity,
  CredentialCipher,
  RoleBindingEntity,
  TenantAuthSettings,
  TenantEntity,
  TenantLimits,
  TenantScopedRepository,
  TenantStatus,
  ToolPolicyEntity,
  VirtualServerEntity,
} from '@portico/persistence';
import { serverNameProblem } from '../virtual-server/virtual-server-exposure';

/**
 * Slugs that would collide with routes under the MCP path, or with the `tenant` label the
 * metrics give the anonymous development endpoint.
 */
export const RESERVED_SLUGS = new Set([
  'anonymous',
  'sse',
  'messages',
  'admin',
  'health',
  'metrics',
  'dashboard',
  'well-known',
]);
export const SLUG_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$/;

/** How long a node trusts its cached copy of a tenant changed on another node. */
const TENANT_CACHE_MS = 2_000;

export class TenantConflictError extends Error {}

/** A tenant field the caller must correct (reserved or malformed slug). */
export class TenantInputError extends Error {}

export interface TenantInput {
  slug: string;
  name: string;
  status?: TenantStatus;
  limits?: TenantLimits;
  auth?: TenantAuthSettings;
}

type ChangeListener = (tenant: TenantEntity) => void;

/** A tenant's virtual servers by name, as read at one revision of the tenant. */
interface ServerTable {
  readonly revision: number;
  readonly byName: ReadonlyMap<string, VirtualServerEntity>;
}

/**
 * Tenants and everything they own. Reads on the request path hit a per-node cache; every write
 * bumps the tenant's revision, which invalidates catalogs and JWT settings derived from it.
 */
@Injectable()
export class TenantService {
  private readonly cache = new Map<string, { tenant: TenantEntity | null; until: number }>();
  private readonly loading = new Map<string, Promise<TenantEntity | null>>();
  /** Bumped by every local change: a read that started before one must not fill the cache. */
  private changes = 0;
  private readonly listeners = new Set<ChangeListener>();
  private readonly serverTables = new Map<string, ServerTable>();
  private readonly serverLoads = new Map<
    string,
    { revision: number; table: Promise<ServerTable> }
  >();

  constructor(
    @InjectRepository(TenantEntity) private readonly tenants: Repository<TenantEntity>,
    @InjectRepository(BackendEntity) private readonly backendRows: Repository<BackendEntity>,
    @InjectRepository(ToolPolicyEntity) private readonly policyRows: Repository<ToolPolicyEntity>,
    @InjectRepository(RoleBindingEntity)
    private readonly bindingRows: Repository<RoleBindingEntity>,
    @InjectRepository(VirtualServerEntity)
    private readonly serverRows: Repository<VirtualServerEntity>,
    readonly cipher: CredentialCipher,
  ) {}

  /**
   * The tenant served at `slug`, cached briefly; null when there is none. Synchronous while
   * cached (the request path: no promise per call), through a promise when it must be read.
   */
  bySlug(slug: string): MaybePromise<TenantEntity | null> {
    const cached = this.cache.get(slug);
    const now = Date.now();
    if (cached && cached.until > now) {
      return cached.tenant;
    }
    // Concurrent requests for an expired entry share one query.
    let loading = this.loading.get(slug);
    if (!loading) {
      const started = this.load(slug, cached?.tenant, now).finally(() => {
        if (this.loading.get(slug) === started) {
          this.loading.delete(slug);
        }
      });
      loading = started;
      this.loading.set(slug, loading);
    }
    return loading;
  }

  private async load(
    slug: string,
    previous: TenantEntity | null | undefined,
    now: number,
  ): Promise<TenantEntity | null> {
    const changes = this.changes;
    const tenant = SLUG_PATTERN.test(slug) ? await this.tenants.findOneBy({ slug }) : null;
    if (changes !== this.changes) {
      return tenant;
    }
    if (this.cache.size > 10_000) {
      this.cache.clear();
    }
    this.cache.set(slug, { tenant, until: now + TENANT_CACHE_MS });
    if (tenant && previous && previous.revision !== tenant.revision) {
      this.emit(tenant);
    }
    return tenant;
  }

  /** The tenant at `slug` straight from the database (writers must not act on a cached copy). */
  findBySlugUncached(slug: string): Promise<TenantEntity | null> {
    return this.tenants.findOneBy({ slug });
  }

  byId(id: string): Promise<TenantEntity | null> {
    return this.tenants.findOneBy({ id });
  }

  list(options: { skip: number; take: number }): Promise<[TenantEntity[], number]> {
    return this.tenants.findAndCount({ order: { slug: 'ASC' }, ...options });
  }

  async create(input: TenantInput): Promise<TenantEntity> {
    assertSlug(input.slug);
    if (await this.tenants.existsBy({ slug: input.slug })) {
      throw new TenantConflictError(`A tenant with slug "${input.slug}" already exists`);
    }
    const now = new Date();
    const tenant = this.tenants.create({
      id: randomUUID(),
      slug: input.slug,
      name: input.name,
      status: input.status ?? 'active',
      limits: input.limits ?? {},
      auth: input.auth ?? {},
      revision: 1,
      createdAt: now,
      updatedAt: now,
    });
    try {
      await this.tenants.insert(tenant);
    } catch (err) {
      if (/unique|duplicate/i.test(String(err))) {
        throw new TenantConflictError(`A tenant with slug "${input.slug}" already exists`);
      }
      throw err;
    }
    this.forget(tenant.slug);
    return tenant;
  }

  async update(
    tenant: TenantEntity,
    patch: Partial<Pick<TenantEntity, 'name' | 'status' | 'limits' | 'auth'>>,
  ): Promise<TenantEntity> {
    Object.assign(tenant, patch);
    return this.changed(tenant);
  }

  async remove(tenant: TenantEntity): Promise<void> {
    // Its backends, policies, bindings, keys and virtual servers go with it (foreign keys).
    await this.tenants.delete({ id: tenant.id });
    this.forget(tenant.slug);
    this.serverTables.delete(tenant.id);
    this.serverLoads.delete(tenant.id);
    tenant.status = 'suspended';
    this.emit(tenant);
  }

  /** Records that something the tenant owns changed: new revision, caches dropped, listeners told. */
  async changed(tenant: TenantEntity): Promise<TenantEntity> {
    tenant.revision += 1;
    tenant.updatedAt = new Date();
    await this.tenants.save(tenant);
    this.forget(tenant.slug);
    this.emit(tenant);
    return tenant;
  }

  /** Called with the tenant after any change seen by this node. */
  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  backends(tenantId: string): TenantScopedRepository<BackendEntity> {
    return new TenantScopedRepository(this.backendRows, tenantId);
  }

  policies(tenantId: string): TenantScopedRepository<ToolPolicyEntity> {
    return new TenantScopedRepository(this.policyRows, tenantId);
  }

  roleBindings(tenantId: string): TenantScopedRepository<RoleBindingEntity> {
    return new TenantScopedRepository(this.bindingRows, tenantId);
  }

  servers(tenantId: string): TenantScopedRepository<VirtualServerEntity> {
    return new TenantScopedRepository(this.serverRows, tenantId);
  }

  /**
   * The tenant's virtual server called `name`, or null: the request path's lookup, read once
   * per revision of the tenant (every change of a server bumps it) and then answered
   * synchronously. A name that cannot be a server's is null without a query.
   */
  serverNamed(tenant: TenantEntity, name: string): MaybePromise<VirtualServerEntity | null> {
    if (serverNameProblem(name) !== undefined) {
      return null;
    }
    const table = this.serverTables.get(tenant.id);
    // A table read at a later revision than this (briefly cached) copy of the tenant is newer.
    if (table && table.revision >= tenant.revision) {
      return table.byName.get(name) ?? null;
    }
    return this.serverTable(tenant).then((loaded) => loaded.byName.get(name) ?? null);
  }

  private serverTable(tenant: TenantEntity): Promise<ServerTable> {
    const { id, revision } = tenant;
    const loading = this.serverLoads.get(id);
    if (loading && loading.revision === revision) {
      return loading.table;
    }
    const table = this.serverRows.find({ where: { tenantId: id } }).then((rows): ServerTable => {
      const loaded = { revision, byName: new Map(rows.map((row) => [row.name, row])) };
      const current = this.serverTables.get(id);
      // A slower read of an older revision must not replace a newer table.
      if (!current || current.revision <= revision) {
        if (this.serverTables.size > 10_000) {
          this.serverTables.clear();
        }
        this.serverTables.set(id, loaded);
      }
      return loaded;
    });
    const entry = { revision, table };
    this.serverLoads.set(id, entry);
    const done = () => {
      if (this.serverLoads.get(id) === entry) {
        this.serverLoads.delete(id);
      }
    };
    table.then(done, done);
    return table;
  }

  /** Seals a backend's credentials, bound to the tenant and backend name. */
  sealCredentials(
    tenantId: string,
    backendName: string,
    credentials: Record<string, string>,
  ): string {
    return this.cipher.seal(JSON.stringify(credentials), `${tenantId}/${backendName}`);
  }

  /** Opens a backend's credentials: only at call time, never for the API. */
  openCredentials(backend: BackendEntity): Record<string, string> {
    if (!backend.credentialsSealed) {
      return {};
    }
    return JSON.parse(
      this.cipher.open(backend.credentialsSealed, `${backend.tenantId}/${backend.name}`),
    ) as Record<string, string>;
  }

  /** Drops this node's cached copy of a tenant and any read of it still under way. */
  private forget(slug: string): void {
    this.changes += 1;
    this.cache.delete(slug);
    this.loading.delete(slug);
  }

  private emit(tenant: TenantEntity): void {
    for (const listener of this.listeners) {
      listener(tenant);
    }
  }
}

export function assertSlug(slug: string): void {
  if (!SLUG_PATTERN.test(slug) || RESERVED_SLUGS.has(slug)) {
    throw new TenantInputError(`"${slug}" is not an allowed tenant slug`);
  }
}

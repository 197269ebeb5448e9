import { Column, Entity, PrimaryColumn } from 'typeorm';
import { epochMs } from './epoch-ms';

export type TenantStatus = 'active' | 'suspended';

/** Quotas a tenant's plan grants; unset = no limit beyond the gateway's own. */
export interface TenantLimits {
  maxSessions?: number;
  maxConcurrentCalls?: number;
  requestsPerMinute?: number;
  /**
   * Queued tool calls of the tenant running at once on all workers together; further ones
   * wait in the queue while the workers serve other tenants.
   */
  maxConcurrentJobs?: number;
  /** Queue priority of the tenant's calls, 1 (soonest) to 10; a tool's own priority wins. */
  queuePriority?: number;
}

/** How a tenant's own identity provider issues tokens for its endpoint. */
export interface TenantJwtSettings {
  issuer: string;
  audience: string | string[];
  jwksUri?: string;
  publicKey?: string;
  algorithms: string[];
  rolesClaim?: string;
  scopesClaim?: string;
}

export interface TenantAuthSettings {
  jwt?: TenantJwtSettings;
  /** Advertised in RFC 9728 protected resource metadata. */
  authorizationServers?: string[];
}

@Entity('tenants')
export class TenantEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id!: string;

  @Column({ type: 'varchar', length: 48, unique: true })
  slug!: string;

  @Column({ type: 'varchar', length: 200 })
  name!: string;

  @Column({ type: 'varchar', length: 16, default: 'active' })
  status!: TenantStatus;

  @Column({ type: 'simple-json' })
  limits!: TenantLimits;

  @Column({ type: 'simple-json' })
  auth!: TenantAuthSettings;

  /** Bumped on every change of the tenant or anything it owns: cache invalidation. */
  @Column({ type: 'integer', default: 1 })
  revision!: number;

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMs() })
  createdAt!: Date;

  @Column({ name: 'updated_at', type: 'bigint', transformer: epochMs() })
  updatedAt!: Date;
}

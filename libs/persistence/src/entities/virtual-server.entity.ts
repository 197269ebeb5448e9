import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { epochMs } from './epoch-ms';

/**
 * A named subset of a tenant's catalog, served at its own endpoint (`/mcp/{tenant}/{name}`).
 * Each list holds exposed names (tools, prompts), URIs (resources) or URI templates, exactly or
 * as `*` globs; an empty list exposes nothing of that kind.
 */
@Entity('virtual_servers')
@Index(['tenantId', 'name'], { unique: true })
export class VirtualServerEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id!: string;

  @Column({ name: 'tenant_id', type: 'varchar', length: 36 })
  tenantId!: string;

  /** The endpoint's last path segment: slug rules, unique within the tenant. */
  @Column({ type: 'varchar', length: 48 })
  name!: string;

  @Column({ type: 'varchar', length: 200, nullable: true })
  title!: string | null;

  @Column({ type: 'text', nullable: true })
  description!: string | null;

  @Column({ type: 'simple-json' })
  tools!: string[];

  @Column({ type: 'simple-json' })
  prompts!: string[];

  @Column({ type: 'simple-json' })
  resources!: string[];

  @Column({ name: 'resource_templates', type: 'simple-json' })
  resourceTemplates!: string[];

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMs() })
  createdAt!: Date;

  @Column({ name: 'updated_at', type: 'bigint', transformer: epochMs() })
  updatedAt!: Date;
}

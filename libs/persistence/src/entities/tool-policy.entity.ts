import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { epochMs } from './epoch-ms';

/** A per-tool override: visibility, required scopes, presentation. */
@Entity('tool_policies')
@Index(['tenantId', 'tool'], { unique: true })
export class ToolPolicyEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id!: string;

  @Column({ name: 'tenant_id', type: 'varchar', length: 36 })
  tenantId!: string;

  @Column({ type: 'varchar', length: 128 })
  tool!: string;

  @Column({ name: 'required_scopes', type: 'simple-json' })
  requiredScopes!: string[];

  @Column({ type: 'boolean', default: false })
  disabled!: boolean;

  @Column({ type: 'text', nullable: true })
  description!: string | null;

  @Column({ type: 'varchar', length: 128, nullable: true })
  rename!: string | null;

  @Column({ type: 'simple-json', nullable: true })
  annotations!: Record<string, unknown> | null;

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMs() })
  createdAt!: Date;

  @Column({ name: 'updated_at', type: 'bigint', transformer: epochMs() })
  updatedAt!: Date;
}

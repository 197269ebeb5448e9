import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { epochMs } from './epoch-ms';

/** Grants a role in a tenant to a token subject (JWT `sub`). */
@Entity('role_bindings')
@Index(['tenantId', 'subject', 'role'], { unique: true })
export class RoleBindingEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id!: string;

  @Column({ name: 'tenant_id', type: 'varchar', length: 36 })
  tenantId!: string;

  @Column({ type: 'varchar', length: 255 })
  subject!: string;

  @Column({ type: 'varchar', length: 32 })
  role!: string;

  @Column({ type: 'boolean', default: false })
  declared!: boolean;

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMs() })
  createdAt!: Date;
}

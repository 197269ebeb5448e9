import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { epochMs } from './epoch-ms';

export type AuditOutcome = 'success' | 'error' | 'denied';

/** Append-only: the application never updates or deletes these rows. */
@Entity('audit_events')
@Index(['tenantId', 'at'])
export class AuditEventEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id!: string;

  @Column({ name: 'tenant_id', type: 'varchar', length: 36, nullable: true })
  tenantId!: string | null;

  @Column({ type: 'bigint', transformer: epochMs() })
  at!: Date;

  /** Principal id: `key:<id>`, `jwt:<sub>`, `bootstrap`. */
  @Column({ type: 'varchar', length: 300 })
  actor!: string;

  /** `tools/call`, `tenant.create`, `api-key.revoke`, ... */
  @Column({ type: 'varchar', length: 64 })
  action!: string;

  @Column({ type: 'varchar', length: 300, nullable: true })
  target!: string | null;

  @Column({ type: 'varchar', length: 16 })
  outcome!: AuditOutcome;

  @Column({ name: 'duration_ms', type: 'integer', nullable: true })
  durationMs!: number | null;

  @Column({ name: 'request_id', type: 'varchar', length: 100, nullable: true })
  requestId!: string | null;

  @Column({ type: 'simple-json', nullable: true })
  details!: Record<string, unknown> | null;
}

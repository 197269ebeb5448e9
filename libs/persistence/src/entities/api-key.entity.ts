import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { epochMs } from './epoch-ms';

/**
 * An API key: only a salted hash of the secret is stored; `prefix` (the first characters of
 * the key) finds the row and lets people recognise a key in listings.
 */
@Entity('api_keys')
@Index(['tenantId', 'name'], { unique: true })
export class ApiKeyEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id!: string;

  /** Null only for platform-level keys (platform-admin role). */
  @Column({ name: 'tenant_id', type: 'varchar', length: 36, nullable: true })
  tenantId!: string | null;

  @Column({ type: 'varchar', length: 100 })
  name!: string;

  @Index()
  @Column({ type: 'varchar', length: 16 })
  prefix!: string;

  @Column({ type: 'varchar', length: 64 })
  hash!: string;

  @Column({ type: 'varchar', length: 32 })
  salt!: string;

  @Column({ type: 'simple-json' })
  roles!: string[];

  @Column({ type: 'simple-json' })
  scopes!: string[];

  @Column({ name: 'expires_at', type: 'bigint', nullable: true, transformer: epochMs() })
  expiresAt!: Date | null;

  @Column({ name: 'revoked_at', type: 'bigint', nullable: true, transformer: epochMs() })
  revokedAt!: Date | null;

  @Column({ name: 'last_used_at', type: 'bigint', nullable: true, transformer: epochMs() })
  lastUsedAt!: Date | null;

  /** Set when the key was declared in portico.yaml (config apply owns it). */
  @Column({ type: 'boolean', default: false })
  declared!: boolean;

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMs() })
  createdAt!: Date;
}

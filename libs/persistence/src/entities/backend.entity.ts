import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { epochMs } from './epoch-ms';

export const BACKEND_KINDS = [
  'fixture',
  'mcp-http',
  'mcp-sse',
  'mcp-ws',
  'mcp-stdio',
  'openapi',
] as const;
export type BackendKind = (typeof BACKEND_KINDS)[number];

@Entity('backends')
@Index(['tenantId', 'name'], { unique: true })
export class BackendEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id!: string;

  @Column({ name: 'tenant_id', type: 'varchar', length: 36 })
  tenantId!: string;

  @Column({ type: 'varchar', length: 64 })
  name!: string;

  @Column({ type: 'varchar', length: 16 })
  kind!: BackendKind;

  /** URL, command line or fixture name, by kind. */
  @Column({ type: 'text' })
  target!: string;

  @Column({ type: 'simple-json' })
  settings!: Record<string, unknown>;

  /** Sealed with the credential cipher (AES-256-GCM, key id inside); never returned by the API. */
  @Column({ name: 'credentials_sealed', type: 'text', nullable: true })
  credentialsSealed!: string | null;

  @Column({ name: 'created_at', type: 'bigint', transformer: epochMs() })
  createdAt!: Date;

  @Column({ name: 'updated_at', type: 'bigint', transformer: epochMs() })
  updatedAt!: Date;
}

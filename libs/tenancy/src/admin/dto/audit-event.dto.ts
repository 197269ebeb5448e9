import { ApiProperty } from '@nestjs/swagger';
import type { AuditEventEntity, AuditOutcome } from '@portico/persistence';
import { AUDIT_OUTCOMES } from './audit-query.dto';

export class AuditEventDto {
  @ApiProperty({ format: 'uuid' })
  id!: string;

  @ApiProperty()
  at!: Date;

  @ApiProperty()
  actor!: string;

  @ApiProperty()
  action!: string;

  @ApiProperty({ type: String, nullable: true })
  target!: string | null;

  @ApiProperty({ enum: AUDIT_OUTCOMES })
  outcome!: AuditOutcome;

  @ApiProperty({ type: Number, nullable: true })
  durationMs!: number | null;

  @ApiProperty({ type: String, nullable: true })
  requestId!: string | null;

  @ApiProperty({ type: 'object', additionalProperties: true, nullable: true })
  details!: Record<string, unknown> | null;

  static from(row: AuditEventEntity): AuditEventDto {
    return {
      id: row.id,
      at: row.at,
      actor: row.actor,
      action: row.action,
      target: row.target,
      outcome: row.outcome,
      durationMs: row.durationMs,
      requestId: row.requestId,
      details: row.details,
    };
  }
}

export class AuditPageDto {
  @ApiProperty({ type: [AuditEventDto] })
  items!: AuditEventDto[];

  @ApiProperty()
  total!: number;

  @ApiProperty()
  offset!: number;

  @ApiProperty()
  limit!: number;
}

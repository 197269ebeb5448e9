import { randomUUID } from 'node:crypto';
import { BeforeApplicationShutdown, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Between, FindOptionsWhere, LessThanOrEqual, MoreThanOrEqual, Repository } from 'typeorm';
import { ConfigService } from '@portico/config';
import { AuditEventEntity, AuditOutcome } from '@portico/persistence';

export interface AuditRecord {
  tenantId: string | null;
  actor: string;
  action: string;
  target?: string | null;
  outcome: AuditOutcome;
  durationMs?: number | null;
  requestId?: string | null;
  details?: Record<string, unknown> | null;
}

export interface AuditQuery {
  action?: string;
  actor?: string;
  outcome?: AuditOutcome;
  from?: Date;
  to?: Date;
  skip: number;
  take: number;
}

/** Column order of AuditRow; must match the audit_events table (migration). */
const AUDIT_COLUMNS = [
  'id',
  'tenant_id',
  'at',
  'actor',
  'action',
  'target',
  'outcome',
  'duration_ms',
  'request_id',
  'details',
] as const;

type AuditRow = [
  id: string,
  tenantId: string | null,
  at: number,
  actor: string,
  action: string,
  target: string | null,
  outcome: AuditOutcome,
  durationMs: number | null,
  requestId: string | null,
  details: string | null,
];

/** Events kept in memory at most while the database is unreachable; beyond this, oldest drop. */
const MAX_BUFFERED = 100_000;

/**
 * The audit trail: `record` only appends to a buffer (the request path never waits on the
 * database); a timer writes batches. Shutdown flushes what is left, so a graceful stop loses
 * nothing. A failed batch is kept and retried on the next tick.
 */
@Injectable()
export class AuditService implements OnModuleInit, BeforeApplicationShutdown {
  private readonly logger = new Logger(AuditService.name);
  private buffer: AuditRow[] = [];
  private insertSql?: { rows: number; sql: string };
  private timer?: NodeJS.Timeout;
  private flushing?: Promise<void>;
  private dropped = 0;
  private readonly flushMs: number;
  private readonly batchSize: number;

  constructor(
    @InjectRepository(AuditEventEntity) private readonly events: Repository<AuditEventEntity>,
    config: ConfigService,
  ) {
    this.flushMs = config.values.audit.flushMs;
    this.batchSize = config.values.audit.batchSize;
  }

  onModuleInit(): void {
    this.timer = setInterval(() => void this.flush(), this.flushMs);
    this.timer.unref();
  }

  // Before the database connection closes (TypeORM closes it on application shutdown).
  async beforeApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }

  record(event: AuditRecord): void {
    if (this.buffer.length >= MAX_BUFFERED) {
      this.buffer.shift();
      this.dropped += 1;
    }
    this.buffer.push([
      randomUUID(),
      event.tenantId,
      Date.now(),
      event.actor.slice(0, 300),
      event.action.slice(0, 64),
      event.target?.slice(0, 300) ?? null,
      event.outcome,
      event.durationMs === undefined || event.durationMs === null
        ? null
        : Math.round(event.durationMs),
      event.requestId?.slice(0, 100) ?? null,
      event.details ? JSON.stringify(event.details) : null,
    ]);
    if (this.buffer.length >= this.batchSize) {
      void this.flush();
    }
  }

  /** Writes everything buffered so far (also used by tests to observe the trail). */
  async flush(): Promise<void> {
    while (this.flushing) {
      await this.flushing;
    }
    if (this.buffer.length === 0) {
      return;
    }
    this.flushing = this.writeAll().finally(() => {
      this.flushing = undefined;
    });
    await this.flushing;
  }

  private async writeAll(): Promise<void> {
    while (this.buffer.length > 0) {
      const batch = this.buffer.slice(0, this.batchSize);
      try {
        await this.insertRows(batch);
      } catch (err) {
        this.logger.error(`Audit batch of ${batch.length} not written yet: ${String(err)}`);
        return;
      }
      this.buffer.splice(0, batch.length);
    }
    if (this.dropped > 0) {
      this.logger.error(`${this.dropped} audit events were dropped while the database was down`);
      this.dropped = 0;
    }
  }

  /**
   * One multi-row INSERT per batch, the statement text built once per batch size. TypeORM's
   * insert builder costs tens of µs per row in parameter bookkeeping; on a busy gateway with
   * one audit row per tools/call that was a sixth of the CPU.
   */
  private async insertRows(rows: AuditRow[]): Promise<void> {
    if (this.insertSql?.rows !== rows.length) {
      const driver = this.events.manager.connection.driver;
      const table = this.events.metadata.tablePath
        .split('.')
        .map((part) => driver.escape(part))
        .join('.');
      let index = 0;
      const tuples = rows.map(
        () => `(${AUDIT_COLUMNS.map(() => driver.createParameter('p', index++)).join(', ')})`,
      );
      this.insertSql = {
        rows: rows.length,
        sql: `INSERT INTO ${table} (${AUDIT_COLUMNS.map((c) => driver.escape(c)).join(', ')}) VALUES ${tuples.join(', ')}`,
      };
    }
    await this.events.query(this.insertSql.sql, rows.flat());
  }

  /** One tenant's trail (null: platform events), newest first. */
  async query(tenantId: string | null, q: AuditQuery): Promise<[AuditEventEntity[], number]> {
    await this.flush();
    const where: FindOptionsWhere<AuditEventEntity> = {};
    if (tenantId !== null) {
      where.tenantId = tenantId;
    }
    if (q.action) {
      where.action = q.action;
    }
    if (q.actor) {
      where.actor = q.actor;
    }
    if (q.outcome) {
      where.outcome = q.outcome;
    }
    if (q.from && q.to) {
      where.at = Between(q.from, q.to);
    } else if (q.from) {
      where.at = MoreThanOrEqual(q.from);
    } else if (q.to) {
      where.at = LessThanOrEqual(q.to);
    }
    return this.events.findAndCount({
      where,
      order: { at: 'DESC', id: 'DESC' },
      skip: q.skip,
      take: q.take,
    });
  }
}

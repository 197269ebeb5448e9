import { BeforeApplicationShutdown, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Between, FindOptionsWhere, LessThanOrEqual, MoreThanOrEqual, Repository } from 'typeorm';
import { ConfigService } from '@portico/config';
import { AuditEventEntity, AuditOutcome } from '@portico/persistence';
import { TimeOrderedIds } from './audit-id';

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

/** Column order of the values `record` buffers; must match the audit_events table (migration). */
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
const COLUMN_COUNT = AUDIT_COLUMNS.length;
/** Distinct batch sizes whose INSERT text is kept (full batches, plus the odd timer flush). */
const INSERT_SQL_CACHE = 8;

/** Events kept in memory at most while the database is unreachable; beyond this, oldest drop. */
const MAX_BUFFERED = 100_000;

/**
 * The audit trail: `record` only appends to a buffer (the request path never waits on the
 * database); full batches are written at once, the rest by a timer. Shutdown flushes what is
 * left, so a graceful stop loses nothing. A failed batch is kept and retried on the next tick.
 *
 * The buffer is a list of chunks of at most `batchSize` rows, each the flat parameter list of
 * its INSERT: recording allocates no per-row object, a batch is written without copying, and
 * dropping the oldest row (database down, buffer full) never shifts the whole buffer.
 */
@Injectable()
export class AuditService implements OnModuleInit, BeforeApplicationShutdown {
  private readonly logger = new Logger(AuditService.name);
  private chunks: unknown[][] = [];
  /** The chunk being written, taken out of `chunks`; `dropped` of its oldest rows are given up. */
  private writing?: { readonly values: unknown[]; readonly rows: number; dropped: number };
  /** Rows not known to be written: in `chunks` and in `writing` (less its given-up rows). */
  private buffered = 0;
  private readonly ids = new TimeOrderedIds();
  private readonly insertSql = new Map<number, string>();
  private timer?: NodeJS.Timeout;
  private flushing?: Promise<void>;
  /** A write failed: further attempts wait for the timer instead of following every record. */
  private failing = false;
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
    if (this.buffered >= MAX_BUFFERED) {
      this.dropOldest();
    }
    let open = this.chunks[this.chunks.length - 1];
    if (open === undefined || open.length >= this.batchSize * COLUMN_COUNT) {
      open = [];
      this.chunks.push(open);
    }
    const now = Date.now();
    open.push(
      this.ids.next(now),
      event.tenantId,
      now,
      event.actor.slice(0, 300),
      event.action.slice(0, 64),
      event.target?.slice(0, 300) ?? null,
      event.outcome,
      event.durationMs === undefined || event.durationMs === null
        ? null
        : Math.round(event.durationMs),
      event.requestId?.slice(0, 100) ?? null,
      event.details ? JSON.stringify(event.details) : null,
    );
    this.buffered += 1;
    // A full batch goes out now, unless a write is under way: that one carries on with it.
    if (this.buffered >= this.batchSize && !this.flushing && !this.failing) {
      void this.write(false);
    }
  }

  /** Writes everything buffered so far (also used by tests to observe the trail). */
  async flush(): Promise<void> {
    while (this.flushing) {
      await this.flushing;
    }
    if (this.buffered > 0) {
      await this.write(true);
    }
  }

  /** Writes full batches, and with `all` the last partial one too; one writer at a time. */
  private write(all: boolean): Promise<void> {
    this.flushing = this.writeChunks(all).finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async writeChunks(all: boolean): Promise<void> {
    const full = this.batchSize * COLUMN_COUNT;
    for (;;) {
      const values = this.chunks[0];
      if (values === undefined || (!all && values.length < full)) {
        break;
      }
      // Taken out while written: new rows go to a new chunk.
      this.chunks.shift();
      const writing = { values, rows: values.length / COLUMN_COUNT, dropped: 0 };
      this.writing = writing;
      try {
        await this.insertRows(values, writing.rows);
      } catch (err) {
        // Rows given up while the write was under way go now; the rest wait for the next try.
        values.splice(0, writing.dropped * COLUMN_COUNT);
        if (values.length > 0) {
          this.chunks.unshift(values);
        }
        this.failing = true;
        this.logger.error(`Audit batch of ${writing.rows} not written yet: ${String(err)}`);
        return;
      } finally {
        this.writing = undefined;
      }
      // Written after all, given-up rows included.
      this.buffered -= writing.rows - writing.dropped;
      this.dropped -= writing.dropped;
      this.failing = false;
    }
    if (this.dropped > 0) {
      this.logger.error(`${this.dropped} audit events were dropped while the database was down`);
      this.dropped = 0;
    }
  }

  /** Gives up the oldest row: first those of the chunk being written (if its write fails). */
  private dropOldest(): void {
    this.buffered -= 1;
    this.dropped += 1;
    const writing = this.writing;
    if (writing && writing.dropped < writing.rows) {
      writing.dropped += 1;
      return;
    }
    const oldest = this.chunks[0];
    oldest.splice(0, COLUMN_COUNT);
    if (oldest.length === 0) {
      this.chunks.shift();
    }
  }

  /**
   * One multi-row INSERT per batch, the statement text built once per batch size. TypeORM's
   * insert builder costs tens of µs per row in parameter bookkeeping; on a busy gateway with
   * one audit row per tools/call that was a sixth of the CPU.
   */
  private async insertRows(values: unknown[], rows: number): Promise<void> {
    let sql = this.insertSql.get(rows);
    if (sql === undefined) {
      const driver = this.events.manager.connection.driver;
      const table = this.events.metadata.tablePath
        .split('.')
        .map((part) => driver.escape(part))
        .join('.');
      let index = 0;
      const tuples = Array.from(
        { length: rows },
        () => `(${AUDIT_COLUMNS.map(() => driver.createParameter('p', index++)).join(', ')})`,
      );
      sql = `INSERT INTO ${table} (${AUDIT_COLUMNS.map((c) => driver.escape(c)).join(', ')}) VALUES ${tuples.join(', ')}`;
      if (this.insertSql.size >= INSERT_SQL_CACHE) {
        this.insertSql.clear();
      }
      this.insertSql.set(rows, sql);
    }
    await this.events.query(sql, values);
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

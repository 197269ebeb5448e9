import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import type { DataSource, Repository } from 'typeorm';
import { ConfigService, loadConfig } from '@portico/config';
import { AuditEventEntity, dataSourceOptions, openDataSource } from '@portico/persistence';
import { DATABASE_KINDS, DatabaseKind, testDatabaseEnv } from '@portico/testing';
import { AuditRecord, AuditService } from './audit.service';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
/** What the service keeps while the database is down (audit.service.ts). */
const MAX_BUFFERED = 100_000;

/** Polls `check` until it holds; fails after `ms`. */
async function eventually(check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) {
      throw new Error('condition not reached');
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe.each(DATABASE_KINDS)(`${AuditService.name} on %s`, (kind: DatabaseKind) => {
  let dataSource: DataSource;
  let cleanup: () => Promise<void>;
  let env: Record<string, string>;
  let events: Repository<AuditEventEntity>;
  let tenantId: string;
  let sut: AuditService;
  let errors: jest.SpyInstance;

  const service = (batchSize: number) =>
    new AuditService(
      events,
      new ConfigService(
        // The timer is never started (no onModuleInit): only batches and flush() write.
        loadConfig({ ...env, AUDIT_BATCH_SIZE: String(batchSize), AUDIT_FLUSH_MS: '600000' }),
      ),
    );

  const event = (overrides: Partial<AuditRecord> = {}): AuditRecord => ({
    tenantId,
    actor: 'key:1',
    action: 'tools/call',
    target: 'echo',
    outcome: 'success',
    durationMs: 1.4,
    requestId: '7',
    ...overrides,
  });

  const count = () => events.countBy({ tenantId });

  /** Makes inserts fail (the table is renamed away) until `restore` is called. */
  async function breakTable(): Promise<() => Promise<void>> {
    const driver = dataSource.driver;
    const [table, ...schema] = events.metadata.tablePath.split('.').reverse();
    const qualified = (name: string) =>
      [...schema.reverse(), name].map((part) => driver.escape(part)).join('.');
    await dataSource.query(`ALTER TABLE ${qualified(table)} RENAME TO ${driver.escape('off')}`);
    return async () => {
      await dataSource.query(`ALTER TABLE ${qualified('off')} RENAME TO ${driver.escape(table)}`);
    };
  }

  beforeAll(async () => {
    const db = await testDatabaseEnv(kind);
    env = db.env;
    cleanup = db.cleanup;
    ({ dataSource } = await openDataSource(dataSourceOptions(loadConfig(env).database), true));
    events = dataSource.getRepository(AuditEventEntity);
  });

  afterAll(async () => {
    await dataSource?.destroy();
    await cleanup?.();
  });

  beforeEach(() => {
    tenantId = randomUUID();
    errors = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
  });

  afterEach(() => {
    errors.mockRestore();
  });

  it('writes a full batch at once and the rest on flush', async () => {
    sut = service(5);

    for (let i = 0; i < 5; i++) {
      sut.record(event({ requestId: String(i) }));
    }
    await eventually(async () => (await count()) === 5);

    for (let i = 5; i < 8; i++) {
      sut.record(event({ requestId: String(i) }));
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await count()).toBe(5);

    await sut.flush();
    expect(await count()).toBe(8);
  });

  it('stores every field, with time-ordered ids, newest first when queried', async () => {
    sut = service(100);
    sut.record(event({ actor: 'a'.repeat(400), requestId: '1', durationMs: 2.6 }));
    sut.record(
      event({
        requestId: '2',
        outcome: 'error',
        target: null,
        durationMs: null,
        details: { error: 'boom' },
      }),
    );
    await sut.flush();

    const [rows, total] = await sut.query(tenantId, { skip: 0, take: 10 });

    expect(total).toBe(2);
    expect(rows.map((r) => r.requestId)).toEqual(['2', '1']);
    expect(rows[1]).toMatchObject({
      tenantId,
      actor: 'a'.repeat(300),
      action: 'tools/call',
      target: 'echo',
      outcome: 'success',
      durationMs: 3,
      details: null,
    });
    expect(rows[0]).toMatchObject({ outcome: 'error', target: null, durationMs: null });
    expect(rows[0].details).toEqual({ error: 'boom' });
    for (const row of rows) {
      expect(row.id).toMatch(UUID_V7);
    }
    expect(rows[1].id < rows[0].id).toBe(true);
  });

  it('keeps a batch the database refused and writes it once the database answers', async () => {
    sut = service(2);
    const restore = await breakTable();
    try {
      sut.record(event({ requestId: 'a' }));
      sut.record(event({ requestId: 'b' }));
      sut.record(event({ requestId: 'c' }));
      await sut.flush();
      expect(errors).toHaveBeenCalledWith(expect.stringContaining('not written yet'));
    } finally {
      await restore();
    }

    await sut.flush();

    const rows = await events.findBy({ tenantId });
    expect(rows.map((r) => r.requestId).sort()).toEqual(['a', 'b', 'c']);
  });

  it('drops the oldest events beyond its buffer while the database is down', async () => {
    sut = service(1000);
    const extra = 5;
    const restore = await breakTable();
    try {
      for (let i = 0; i < MAX_BUFFERED + extra; i++) {
        sut.record(event({ requestId: String(i) }));
      }
      await sut.flush();
    } finally {
      await restore();
    }

    await sut.flush();

    expect(await count()).toBe(MAX_BUFFERED);
    const dropped = await events.findBy(
      Array.from({ length: extra + 1 }, (_, i) => ({ tenantId, requestId: String(i) })),
    );
    expect(dropped.map((r) => r.requestId)).toEqual([String(extra)]);
    expect(await events.countBy({ tenantId, requestId: String(MAX_BUFFERED + extra - 1) })).toBe(1);
    expect(errors).toHaveBeenCalledWith(
      `${extra} audit events were dropped while the database was down`,
    );
  });
});

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DataSource, DataSourceOptions } from 'typeorm';
import type { PorticoConfig } from '@portico/config';
import { ApiKeyEntity } from './entities/api-key.entity';
import { AuditEventEntity } from './entities/audit-event.entity';
import { BackendEntity } from './entities/backend.entity';
import { RoleBindingEntity } from './entities/role-binding.entity';
import { TenantEntity } from './entities/tenant.entity';
import { ToolPolicyEntity } from './entities/tool-policy.entity';
import { VirtualServerEntity } from './entities/virtual-server.entity';
import { InitialSchema1764000000000 } from './migrations/1764000000000-initial-schema';
import { VirtualServers1765000000000 } from './migrations/1765000000000-virtual-servers';

export const ENTITIES = [
  TenantEntity,
  BackendEntity,
  ToolPolicyEntity,
  ApiKeyEntity,
  RoleBindingEntity,
  AuditEventEntity,
  VirtualServerEntity,
];

/** Listed explicitly (no globs): the same list in the gateway, the CLI and the tests. */
export const MIGRATIONS = [InitialSchema1764000000000, VirtualServers1765000000000];

/** TypeORM options for the configured database: PostgreSQL when DATABASE_URL is set, else SQLite. */
export function dataSourceOptions(database: PorticoConfig['database']): DataSourceOptions {
  const common = {
    entities: ENTITIES,
    migrations: MIGRATIONS,
    migrationsTableName: 'portico_migrations',
    synchronize: false,
    migrationsRun: false,
    // Failed queries reach their callers as errors; logging them here too would only duplicate.
    logging: false,
  };
  if (database.type === 'postgres') {
    return {
      ...common,
      type: 'postgres',
      url: database.url,
      schema: database.schema,
      poolSize: database.poolSize,
      extra: {
        max: database.poolSize,
        // A query waiting longer than this for a pooled connection fails instead of hanging.
        connectionTimeoutMillis: database.poolTimeoutMs,
        statement_timeout: database.statementTimeoutMs,
        options: `-c search_path=${database.schema}`,
        application_name: 'portico',
      },
    };
  }
  if (database.path !== ':memory:') {
    mkdirSync(dirname(database.path), { recursive: true });
  }
  return {
    ...common,
    type: 'better-sqlite3',
    database: database.path,
    prepareDatabase: (db: { pragma(source: string): unknown }) => {
      db.pragma('journal_mode = WAL');
      // WAL + NORMAL: durable across crashes of the process, no fsync per commit.
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 5000');
      db.pragma('foreign_keys = ON');
    },
  };
}

/**
 * Opens the database, creating the PostgreSQL schema when missing, and runs pending
 * migrations when asked. Returns the names of the migrations applied.
 */
export async function openDataSource(
  options: DataSourceOptions,
  migrate: boolean,
): Promise<{ dataSource: DataSource; applied: string[] }> {
  const dataSource = new DataSource(options);
  await dataSource.initialize();
  try {
    const schema = options.type === 'postgres' ? options.schema : undefined;
    if (schema && schema !== 'public') {
      await dataSource.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    }
    const applied = migrate
      ? (await dataSource.runMigrations({ transaction: 'each' })).map((m) => m.name)
      : [];
    return { dataSource, applied };
  } catch (err) {
    await dataSource.destroy();
    throw err;
  }
}

/** True when the error means "no pooled connection became free in time". */
export function isPoolTimeout(err: unknown): boolean {
  const message = err instanceof Error ? err.message : '';
  return /timeout exceeded when trying to connect|Connection terminated due to connection timeout/i.test(
    message,
  );
}

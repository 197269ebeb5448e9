import { MigrationInterface, QueryRunner, Table, TableColumnOptions, TableIndex } from 'typeorm';

/**
 * The first schema. Written with TypeORM's schema builder rather than raw SQL so one migration
 * runs on SQLite and PostgreSQL alike; instants are epoch milliseconds in bigint columns.
 */
export class InitialSchema1764000000000 implements MigrationInterface {
  name = 'InitialSchema1764000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(
      new Table({
        name: 'tenants',
        columns: [
          id(),
          { name: 'slug', type: 'varchar', length: '48', isUnique: true },
          { name: 'name', type: 'varchar', length: '200' },
          { name: 'status', type: 'varchar', length: '16', default: "'active'" },
          { name: 'limits', type: 'text' },
          { name: 'auth', type: 'text' },
          { name: 'revision', type: 'integer', default: 1 },
          instant('created_at'),
          instant('updated_at'),
        ],
      }),
    );
    await queryRunner.createTable(
      new Table({
        name: 'backends',
        columns: [
          id(),
          tenantRef(),
          { name: 'name', type: 'varchar', length: '64' },
          { name: 'kind', type: 'varchar', length: '16' },
          { name: 'target', type: 'text' },
          { name: 'settings', type: 'text' },
          { name: 'credentials_sealed', type: 'text', isNullable: true },
          instant('created_at'),
          instant('updated_at'),
        ],
        foreignKeys: [tenantForeignKey()],
        indices: [unique('UQ_backends_tenant_name', ['tenant_id', 'name'])],
      }),
    );
    await queryRunner.createTable(
      new Table({
        name: 'tool_policies',
        columns: [
          id(),
          tenantRef(),
          { name: 'tool', type: 'varchar', length: '128' },
          { name: 'required_scopes', type: 'text' },
          { name: 'disabled', type: 'boolean', default: false },
          { name: 'description', type: 'text', isNullable: true },
          { name: 'rename', type: 'varchar', length: '128', isNullable: true },
          { name: 'annotations', type: 'text', isNullable: true },
          instant('created_at'),
          instant('updated_at'),
        ],
        foreignKeys: [tenantForeignKey()],
        indices: [unique('UQ_tool_policies_tenant_tool', ['tenant_id', 'tool'])],
      }),
    );
    await queryRunner.createTable(
      new Table({
        name: 'api_keys',
        columns: [
          id(),
          { ...tenantRef(), isNullable: true },
          { name: 'name', type: 'varchar', length: '100' },
          { name: 'prefix', type: 'varchar', length: '16' },
          { name: 'hash', type: 'varchar', length: '64' },
          { name: 'salt', type: 'varchar', length: '32' },
          { name: 'roles', type: 'text' },
          { name: 'scopes', type: 'text' },
          instant('expires_at', true),
          instant('revoked_at', true),
          instant('last_used_at', true),
          { name: 'declared', type: 'boolean', default: false },
          instant('created_at'),
        ],
        foreignKeys: [tenantForeignKey()],
        indices: [
          unique('UQ_api_keys_tenant_name', ['tenant_id', 'name']),
          new TableIndex({ name: 'IDX_api_keys_prefix', columnNames: ['prefix'] }),
        ],
      }),
    );
    await queryRunner.createTable(
      new Table({
        name: 'role_bindings',
        columns: [
          id(),
          tenantRef(),
          { name: 'subject', type: 'varchar', length: '255' },
          { name: 'role', type: 'varchar', length: '32' },
          { name: 'declared', type: 'boolean', default: false },
          instant('created_at'),
        ],
        foreignKeys: [tenantForeignKey()],
        indices: [unique('UQ_role_bindings_tenant_subject_role', ['tenant_id', 'subject', 'role'])],
      }),
    );
    // No foreign key: audit rows outlive the tenant they describe.
    await queryRunner.createTable(
      new Table({
        name: 'audit_events',
        columns: [
          id(),
          { ...tenantRef(), isNullable: true },
          instant('at'),
          { name: 'actor', type: 'varchar', length: '300' },
          { name: 'action', type: 'varchar', length: '64' },
          { name: 'target', type: 'varchar', length: '300', isNullable: true },
          { name: 'outcome', type: 'varchar', length: '16' },
          { name: 'duration_ms', type: 'integer', isNullable: true },
          { name: 'request_id', type: 'varchar', length: '100', isNullable: true },
          { name: 'details', type: 'text', isNullable: true },
        ],
        indices: [
          new TableIndex({ name: 'IDX_audit_events_tenant_at', columnNames: ['tenant_id', 'at'] }),
        ],
      }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    for (const table of [
      'audit_events',
      'role_bindings',
      'api_keys',
      'tool_policies',
      'backends',
      'tenants',
    ]) {
      await queryRunner.dropTable(table);
    }
  }
}

function id(): TableColumnOptions {
  return { name: 'id', type: 'varchar', length: '36', isPrimary: true };
}

function tenantRef(): TableColumnOptions {
  return { name: 'tenant_id', type: 'varchar', length: '36' };
}

function instant(name: string, nullable = false): TableColumnOptions {
  return { name, type: 'bigint', isNullable: nullable };
}

function tenantForeignKey() {
  return {
    columnNames: ['tenant_id'],
    referencedTableName: 'tenants',
    referencedColumnNames: ['id'],
    onDelete: 'CASCADE',
  };
}

function unique(name: string, columnNames: string[]): TableIndex {
  return new TableIndex({ name, columnNames, isUnique: true });
}

import { MigrationInterface, QueryRunner, Table, TableIndex } from 'typeorm';

/**
 * Virtual servers: named subsets of a tenant's catalog. Schema builder only (no raw SQL), so
 * the migration runs on SQLite and PostgreSQL alike; the rows go with their tenant (cascade).
 */
export class VirtualServers1765000000000 implements MigrationInterface {
  name = 'VirtualServers1765000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(
      new Table({
        name: 'virtual_servers',
        columns: [
          { name: 'id', type: 'varchar', length: '36', isPrimary: true },
          { name: 'tenant_id', type: 'varchar', length: '36' },
          { name: 'name', type: 'varchar', length: '48' },
          { name: 'title', type: 'varchar', length: '200', isNullable: true },
          { name: 'description', type: 'text', isNullable: true },
          // simple-json lists of exposed names, URIs and URI templates (exact or `*` globs).
          { name: 'tools', type: 'text' },
          { name: 'prompts', type: 'text' },
          { name: 'resources', type: 'text' },
          { name: 'resource_templates', type: 'text' },
          { name: 'created_at', type: 'bigint' },
          { name: 'updated_at', type: 'bigint' },
        ],
        foreignKeys: [
          {
            columnNames: ['tenant_id'],
            referencedTableName: 'tenants',
            referencedColumnNames: ['id'],
            onDelete: 'CASCADE',
          },
        ],
        indices: [
          new TableIndex({
            name: 'UQ_virtual_servers_tenant_name',
            columnNames: ['tenant_id', 'name'],
            isUnique: true,
          }),
        ],
      }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('virtual_servers');
  }
}

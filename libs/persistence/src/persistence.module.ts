import { Global, Logger, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ConfigService } from '@portico/config';
import { CredentialCipher } from './credential-cipher';
import { dataSourceOptions, ENTITIES, openDataSource } from './data-source';
import { resolveMasterKeys } from './master-keys';

const logger = new Logger('Persistence');

/**
 * The database (SQLite file by default, PostgreSQL with DATABASE_URL), migrated at boot unless
 * DATABASE_MIGRATE=false, plus the credential cipher. Global: repositories are injected where
 * they are used, through the tenant-scoped wrapper for tenant-owned rows.
 */
@Global()
@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      inject: [ConfigService],
      useFactory: (config: ConfigService) => ({
        ...dataSourceOptions(config.values.database),
        retryAttempts: 2,
        retryDelay: 1000,
        // Carried through to dataSourceFactory below.
        migrationsRun: config.values.database.migrate,
      }),
      dataSourceFactory: async (options) => {
        if (!options) {
          throw new Error('Database options missing');
        }
        const { dataSource, applied } = await openDataSource(
          { ...options, migrationsRun: false },
          options.migrationsRun === true,
        );
        if (applied.length > 0) {
          logger.log(`Applied migrations: ${applied.join(', ')}`);
        }
        return dataSource;
      },
    }),
    TypeOrmModule.forFeature(ENTITIES),
  ],
  providers: [
    {
      provide: CredentialCipher,
      inject: [ConfigService],
      useFactory: (config: ConfigService) =>
        new CredentialCipher(resolveMasterKeys(config.values.security)),
    },
  ],
  exports: [TypeOrmModule, CredentialCipher],
})
export class PersistenceModule {}

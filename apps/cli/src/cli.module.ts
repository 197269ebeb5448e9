import { DynamicModule, Module } from '@nestjs/common';
import { AuthModule } from '@portico/auth';
import { ConfigModule, PorticoConfig } from '@portico/config';
import { LoggingModule, TracingModule } from '@portico/observability';
import { PersistenceModule } from '@portico/persistence';
import { CatalogModule, McpEngineModule } from '@portico/registry';
import { QueueModule } from '@portico/queue';
import { TenancyModule } from '@portico/tenancy';

/** What the command-line entry points need: configuration, the database, tenants, the engine. */
@Module({})
export class CliModule {
  static forRoot(config: PorticoConfig): DynamicModule {
    return {
      module: CliModule,
      imports: [
        ConfigModule.forRoot(config),
        TracingModule.forRoot('portico-stdio'),
        // Tool-call lines and errors as JSON on stderr: stdout carries the protocol.
        LoggingModule.forRoot([], 'stderr'),
        PersistenceModule,
        AuthModule,
        TenancyModule,
        QueueModule,
        CatalogModule.forRoot(),
        McpEngineModule,
      ],
      exports: [McpEngineModule],
    };
  }
}

import { DynamicModule, Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { AuthModule } from '@portico/auth';
import { ConfigModule, PorticoConfig } from '@portico/config';
import { LoggingModule } from '@portico/observability';
import { PersistenceModule } from '@portico/persistence';
import { QueueModule } from '@portico/queue';
import { CatalogModule } from '@portico/registry';
import { TenancyModule } from '@portico/tenancy';
import { WorkerHealthController } from './worker-health.controller';
import { WorkerLifecycle } from './worker-lifecycle';

/**
 * A worker process: the same configuration, database and registry as the gateway, no MCP
 * endpoints; it consumes the tool-call queue and serves its health.
 */
@Module({})
export class WorkerModule {
  static forRoot(config: PorticoConfig): DynamicModule {
    return {
      module: WorkerModule,
      imports: [
        ConfigModule.forRoot(config),
        LoggingModule.forRoot(['/health/live', '/health/ready']),
        PersistenceModule,
        AuthModule,
        TenancyModule,
        QueueModule,
        CatalogModule.forRoot(),
        TerminusModule.forRoot({ errorLogStyle: 'json' }),
      ],
      controllers: [WorkerHealthController],
      providers: [WorkerLifecycle],
    };
  }
}

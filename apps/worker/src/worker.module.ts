import { DynamicModule, Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { AuthModule } from '@portico/auth';
import { ConfigModule, PorticoConfig } from '@portico/config';
import { LoggingModule, MetricsModule, TracingModule } from '@portico/observability';
import { PersistenceModule } from '@portico/persistence';
import { QueueModule } from '@portico/queue';
import { CatalogModule } from '@portico/registry';
import { TenancyModule } from '@portico/tenancy';
import { WorkerHealthController } from './worker-health.controller';
import { WorkerLifecycle } from './worker-lifecycle';

/**
 * A worker process: the same configuration, database and registry as the gateway, no MCP
 * endpoints; it consumes the tool-call queue and serves its health and /metrics (its process,
 * queue, job and backend series; METRICS_ENABLED and METRICS_TOKEN as on the gateway) and
 * its spans (the queue wait and run of each job, continuing the dispatcher's trace).
 */
@Module({})
export class WorkerModule {
  static forRoot(config: PorticoConfig): DynamicModule {
    return {
      module: WorkerModule,
      imports: [
        ConfigModule.forRoot(config),
        LoggingModule.forRoot(['/health/live', '/health/ready', '/metrics']),
        MetricsModule.forRoot(),
        TracingModule.forRoot('portico-worker'),
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

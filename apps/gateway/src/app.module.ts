import { DynamicModule, Module } from '@nestjs/common';
import { AuthModule } from '@portico/auth';
import { ConfigModule, PorticoConfig } from '@portico/config';
import type { CatalogProvider } from '@portico/mcp-protocol';
import { LoggingModule, MetricsModule, TracingModule } from '@portico/observability';
import { PersistenceModule } from '@portico/persistence';
import { CatalogModule } from '@portico/registry';
import { QueueModule } from '@portico/queue';
import { TenancyModule } from '@portico/tenancy';
import { DeclarativeConfigLoader } from './declarative-config.loader';
import { GatewayAdminModule } from './admin/gateway-admin.module';
import { DashboardModule } from './dashboard/dashboard.module';
import { HealthModule } from './health/health.module';
import { McpModule } from './mcp/mcp.module';
import { EmbeddedWorker } from './worker/embedded-worker';

@Module({})
export class AppModule {
  static forRoot(config?: PorticoConfig, catalog?: CatalogProvider): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        LoggingModule.forRoot([
          config?.mcp.path ?? '/mcp',
          `${config?.mcp.path ?? '/mcp'}/*tenant`,
          // Scraped every few seconds: a log line each would drown the useful ones.
          '/metrics',
        ]),
        MetricsModule.forRoot(),
        TracingModule.forRoot('portico-gateway'),
        PersistenceModule,
        AuthModule,
        TenancyModule,
        QueueModule,
        CatalogModule.forRoot(catalog),
        HealthModule,
        McpModule,
        GatewayAdminModule,
        DashboardModule,
      ],
      providers: [DeclarativeConfigLoader, EmbeddedWorker],
    };
  }
}

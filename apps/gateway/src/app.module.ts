import { DynamicModule, Module } from '@nestjs/common';
import { AuthModule } from '@portico/auth';
import { ConfigModule, PorticoConfig } from '@portico/config';
import type { CatalogProvider } from '@portico/mcp-protocol';
import { LoggingModule } from '@portico/observability';
import { PersistenceModule } from '@portico/persistence';
import { CatalogModule } from '@portico/registry';
import { TenancyModule } from '@portico/tenancy';
import { DeclarativeConfigLoader } from './declarative-config.loader';
import { GatewayAdminModule } from './admin/gateway-admin.module';
import { HealthModule } from './health/health.module';
import { McpModule } from './mcp/mcp.module';

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
        ]),
        PersistenceModule,
        AuthModule,
        TenancyModule,
        CatalogModule.forRoot(catalog),
        HealthModule,
        McpModule,
        GatewayAdminModule,
      ],
      providers: [DeclarativeConfigLoader],
    };
  }
}

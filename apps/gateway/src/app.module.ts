import { DynamicModule, Module } from '@nestjs/common';
import { ConfigModule, PorticoConfig } from '@portico/config';
import { LoggingModule } from '@portico/observability';
import { HealthModule } from './health/health.module';
import { McpModule } from './mcp/mcp.module';

@Module({})
export class AppModule {
  static forRoot(config?: PorticoConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [ConfigModule.forRoot(config), LoggingModule.forRoot(), HealthModule, McpModule],
    };
  }
}

import { DynamicModule, Module } from '@nestjs/common';
import { ConfigModule, PorticoConfig } from '@portico/config';
import { CatalogModule, McpEngineModule } from '@portico/registry';

/** What the command-line entry points need: configuration, the catalog and the engine. */
@Module({})
export class CliModule {
  static forRoot(config: PorticoConfig): DynamicModule {
    return {
      module: CliModule,
      imports: [ConfigModule.forRoot(config), CatalogModule.forRoot(), McpEngineModule],
      exports: [McpEngineModule],
    };
  }
}

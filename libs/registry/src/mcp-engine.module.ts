import { Module, OnModuleDestroy } from '@nestjs/common';
import { ConfigService } from '@portico/config';
import { CatalogProvider, McpEngine } from '@portico/mcp-protocol';
import { CATALOG_PROVIDER } from './catalog.module';

export const SERVER_INFO = { name: 'portico', title: 'Portico MCP Gateway', version: '0.1.0' };

/** The protocol engine over the catalog: one per process, shared by every transport. */
@Module({
  providers: [
    {
      provide: McpEngine,
      inject: [ConfigService, CATALOG_PROVIDER],
      useFactory: (config: ConfigService, catalog: CatalogProvider) => {
        const mcp = config.values.mcp;
        return new McpEngine({
          serverInfo: SERVER_INFO,
          catalog,
          secret: mcp.secret,
          pageSize: mcp.pageSize,
          clientRequestTimeoutMs: mcp.clientRequestTimeoutMs,
          requestStateTtlMs: mcp.requestStateTtlMs,
        });
      },
    },
  ],
  exports: [McpEngine],
})
export class McpEngineModule implements OnModuleDestroy {
  constructor(private readonly engine: McpEngine) {}

  /** Ends open subscription streams gracefully before transports close. */
  onModuleDestroy(): void {
    this.engine.close();
  }
}

import { Module, OnModuleDestroy } from '@nestjs/common';
import { ConfigService, PORTICO_VERSION } from '@portico/config';
import { CatalogProvider, McpEngine } from '@portico/mcp-protocol';
import { McpRequestTracer } from '@portico/observability';
import { CATALOG_PROVIDER } from './catalog.module';

export const SERVER_INFO = {
  name: 'portico',
  title: 'Portico MCP Gateway',
  version: PORTICO_VERSION,
};

/** The protocol engine over the catalog: one per process, shared by every transport. */
@Module({
  providers: [
    {
      provide: McpEngine,
      inject: [ConfigService, CATALOG_PROVIDER, { token: McpRequestTracer, optional: true }],
      useFactory: (
        config: ConfigService,
        catalog: CatalogProvider,
        tracer: McpRequestTracer | undefined,
      ) => {
        const mcp = config.values.mcp;
        return new McpEngine({
          serverInfo: SERVER_INFO,
          catalog,
          secret: mcp.secret,
          pageSize: mcp.pageSize,
          clientRequestTimeoutMs: mcp.clientRequestTimeoutMs,
          requestStateTtlMs: mcp.requestStateTtlMs,
          // A span per request when tracing is on; no per-request hook at all when it is off.
          observer: tracer?.enabled ? tracer : undefined,
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

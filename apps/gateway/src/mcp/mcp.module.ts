import { Module, OnModuleDestroy } from '@nestjs/common';
import { ConfigService } from '@portico/config';
import { CatalogProvider, McpEngine } from '@portico/mcp-protocol';
import {
  EVENT_STORE,
  MESSAGE_BUS,
  MemoryEventStore,
  MemoryMessageBus,
  MemorySessionStore,
  SESSION_STORE,
} from '@portico/session';
import { CATALOG_PROVIDER } from '../catalog/catalog.module';
import { HttpGuard } from './http-guard';
import { SessionRegistry } from './session-registry.service';
import { StreamableHttpTransport } from './streamable-http.transport';

const SERVER_INFO = { name: 'portico', title: 'Portico MCP Gateway', version: '0.1.0' };

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
    { provide: SESSION_STORE, useClass: MemorySessionStore },
    {
      provide: EVENT_STORE,
      inject: [ConfigService],
      useFactory: (config: ConfigService) =>
        new MemoryEventStore(config.values.mcp.eventStoreMaxEvents),
    },
    { provide: MESSAGE_BUS, useClass: MemoryMessageBus },
    HttpGuard,
    SessionRegistry,
    StreamableHttpTransport,
  ],
  exports: [McpEngine, StreamableHttpTransport, SessionRegistry],
})
export class McpModule implements OnModuleDestroy {
  constructor(private readonly engine: McpEngine) {}

  /** Ends open subscription streams gracefully before the HTTP server closes. */
  onModuleDestroy(): void {
    this.engine.close();
  }
}

import { Module } from '@nestjs/common';
import { ConfigService } from '@portico/config';
import { McpEngineModule } from '@portico/registry';
import {
  EVENT_STORE,
  MESSAGE_BUS,
  MemoryEventStore,
  MemoryMessageBus,
  MemorySessionStore,
  SESSION_STORE,
} from '@portico/session';
import { ConnectionLimiter } from './connection-limiter';
import { HttpGuard } from './http-guard';
import { McpAccess } from './mcp-access.service';
import { LegacySseTransport } from './legacy-sse.transport';
import { SessionRegistry } from './session-registry.service';
import { StreamableHttpTransport } from './streamable-http.transport';
import { McpWebSocketGateway } from './websocket/mcp-ws.gateway';

@Module({
  imports: [McpEngineModule],
  providers: [
    { provide: SESSION_STORE, useClass: MemorySessionStore },
    {
      provide: EVENT_STORE,
      inject: [ConfigService],
      useFactory: (config: ConfigService) =>
        new MemoryEventStore(config.values.mcp.eventStoreMaxEvents),
    },
    { provide: MESSAGE_BUS, useClass: MemoryMessageBus },
    HttpGuard,
    McpAccess,
    ConnectionLimiter,
    SessionRegistry,
    StreamableHttpTransport,
    McpWebSocketGateway,
    LegacySseTransport,
  ],
  exports: [StreamableHttpTransport, SessionRegistry, McpWebSocketGateway, LegacySseTransport],
})
export class McpModule {}

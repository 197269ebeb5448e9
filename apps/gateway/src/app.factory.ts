import { randomUUID } from 'node:crypto';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { Logger } from 'nestjs-pino';
import { ConfigService, PorticoConfig } from '@portico/config';
import type { CatalogProvider } from '@portico/mcp-protocol';
import { AppModule } from './app.module';
import { LegacySseTransport } from './mcp/legacy-sse.transport';
import { StreamableHttpTransport } from './mcp/streamable-http.transport';
import { McpWsAdapter } from './mcp/websocket/mcp-ws.adapter';

/** Builds the gateway application (not yet listening): used by main.ts and the e2e suites. */
export interface GatewayAppOptions {
  /** Serve this catalog instead of the configured fixture catalog (tests, embedding). */
  catalog?: CatalogProvider;
}

export async function createGatewayApp(
  config?: PorticoConfig,
  options: GatewayAppOptions = {},
): Promise<NestFastifyApplication> {
  const adapter = new FastifyAdapter({
    bodyLimit: config?.http.maxBodyBytes ?? 4 * 1024 * 1024,
    // Slow-client defences; the values are deliberately generous for long tool calls.
    connectionTimeout: 0,
    keepAliveTimeout: 72_000,
    requestTimeout: 0,
    return503OnClosing: true,
    trustProxy: false,
    // Request ids: the caller's X-Request-Id when sent, else a random UUID.
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
  });
  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.forRoot(config, options.catalog),
    adapter,
    {
      bufferLogs: true,
      abortOnError: false,
    },
  );
  app.useLogger(app.get(Logger));
  const values = app.get(ConfigService).values;
  // WebSocket upgrades on the MCP path itself: ws://host/mcp with subprotocol "mcp".
  app.useWebSocketAdapter(new McpWsAdapter(app, values.mcp.path, values.http.maxBodyBytes));
  const fastify = app.getHttpAdapter().getInstance();
  app.get(StreamableHttpTransport).register(fastify, values.mcp.path, values.http.maxBodyBytes);
  app.get(LegacySseTransport).register(fastify, values.mcp.path, values.http.maxBodyBytes);
  return app;
}

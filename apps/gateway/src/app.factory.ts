import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { Logger } from 'nestjs-pino';
import { ConfigService, loadConfig, PorticoConfig } from '@portico/config';
import type { CatalogProvider } from '@portico/mcp-protocol';
import { AdminModule, setupAdminApi } from '@portico/tenancy';
import { GatewayAdminModule } from './admin/gateway-admin.module';
import { AppModule } from './app.module';
import { LifecycleService } from './health/lifecycle.service';
import { LegacySseTransport } from './mcp/legacy-sse.transport';
import { StreamableHttpTransport } from './mcp/streamable-http.transport';
import { McpWsAdapter } from './mcp/websocket/mcp-ws.adapter';

/** Builds the gateway application (not yet listening): used by main.ts and the e2e suites. */
export interface GatewayAppOptions {
  /** Serve this catalog instead of the configured fixture catalog (tests, embedding). */
  catalog?: CatalogProvider;
}

export async function createGatewayApp(
  given?: PorticoConfig,
  options: GatewayAppOptions = {},
): Promise<NestFastifyApplication> {
  const config = given ?? loadConfig();
  const adapter = new FastifyAdapter({
    ...listenerOptions(config),
    bodyLimit: config.http.maxBodyBytes,
    // Socket idle timeouts would cut long SSE streams; slow clients are bounded by the header,
    // request and keep-alive timeouts of the Node server instead (see listenerOptions).
    connectionTimeout: 0,
    keepAliveTimeout: config.http.keepAliveTimeoutMs,
    requestTimeout: config.http.requestTimeoutMs,
    return503OnClosing: true,
    // request.ip and the scheme come from X-Forwarded-* only when the peer is a trusted proxy.
    trustProxy: config.http.trustedProxies.length > 0 ? [...config.http.trustedProxies] : false,
    // Request ids: the caller's X-Request-Id when sent, else a random UUID.
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    clientErrorHandler,
  } as ConstructorParameters<typeof FastifyAdapter>[0]);
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
  // WebSocket upgrades (subprotocol "mcp") at ws://host/mcp/{tenant}, and ws://host/mcp when
  // anonymous; authenticated during the upgrade.
  app.useWebSocketAdapter(new McpWsAdapter(app, values.mcp.path, values.http.maxBodyBytes));
  const fastify = app.getHttpAdapter().getInstance();
  if (values.http.maxConnections > 0) {
    fastify.server.maxConnections = values.http.maxConnections;
  }
  // While draining, HTTP/1.1 clients are told to take their next request elsewhere.
  const lifecycle = app.get(LifecycleService);
  fastify.addHook('onSend', (request, reply, payload, done) => {
    if (lifecycle.draining && request.raw.httpVersionMajor === 1) {
      void reply.header('connection', 'close');
    }
    done(null, payload);
  });
  app.get(StreamableHttpTransport).register(fastify, values.mcp.path, values.http.maxBodyBytes);
  app.get(LegacySseTransport).register(fastify, values.mcp.path, values.http.maxBodyBytes);
  setupAdminApi(app, [AdminModule, GatewayAdminModule]);
  return app;
}

/**
 * HTTP/1.1 by default; HTTPS when a certificate is configured (minimum TLS version from
 * config); HTTP/2 when HTTP2 is on: negotiated by ALPN next to HTTP/1.1 over TLS (WebSocket
 * and older clients keep working), or cleartext h2c without TLS.
 */
function listenerOptions(config: PorticoConfig): Record<string, unknown> {
  const { tls, http2 } = config.http;
  // Node checks the header and request timeouts on this interval (30 s by default).
  const server = {
    headersTimeout: config.http.headersTimeoutMs,
    requestTimeout: config.http.requestTimeoutMs,
    connectionsCheckingInterval: Math.min(1000, config.http.headersTimeoutMs),
  };
  const https = tls
    ? { cert: tls.cert, key: tls.key, minVersion: tls.minVersion, allowHTTP1: true, ...server }
    : undefined;
  if (http2) {
    return https ? { http2: true, https } : { http2: true, http: server };
  }
  return https ? { https } : { http: server };
}

/**
 * Requests Node cannot even parse (header overflow, malformed HTTP, timeouts) get a JSON-RPC
 * error body like every other rejection, and the connection is closed explicitly so a
 * keep-alive client does not send its next request into a dead socket.
 */
function clientErrorHandler(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const [status, reason] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout']
        : [400, 'Bad Request'];
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: null,
    error: { code: -32600, message: `Invalid HTTP request: ${reason}` },
  });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

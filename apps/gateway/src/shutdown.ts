import type { LoggerService } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { PorticoConfig } from '@portico/config';
import { McpEngine } from '@portico/mcp-protocol';
import { LifecycleService } from './health/lifecycle.service';
import { LegacySseTransport } from './mcp/legacy-sse.transport';
import { SessionRegistry } from './mcp/session-registry.service';
import { McpWebSocketGateway } from './mcp/websocket/mcp-ws.gateway';

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Stops a gateway node without losing work, in the order a load balancer needs:
 * 1. readiness turns 503 and responses carry `Connection: close` (HTTP/1.1);
 * 2. for SHUTDOWN_DRAIN_DELAY_MS the node keeps serving while health checks notice;
 * 3. the listener closes (no new connections; idle keep-alive ones close at once), and the
 *    long-lived streams end: subscription and standalone GET streams at once, WebSocket and
 *    HTTP+SSE connections once their in-flight requests are answered;
 * 4. in-flight requests get SHUTDOWN_GRACE_MS to finish; whatever is left is cut;
 * 5. only then do the modules shut down (upstream connections, queue, database, telemetry).
 * Resolves true when everything finished within the grace period.
 */
export async function shutDownGracefully(
  app: NestFastifyApplication,
  config: PorticoConfig,
  logger: LoggerService,
): Promise<boolean> {
  app.get(LifecycleService).startDraining();
  await delay(config.shutdownDrainDelayMs);
  const deadline = Date.now() + config.shutdownGraceMs;
  const server = app.getHttpServer();
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections?.();
  app.get(McpEngine).close();
  app.get(SessionRegistry).endStandaloneStreams();
  const streams = Promise.all([
    app.get(McpWebSocketGateway).drain(deadline),
    app.get(LegacySseTransport).drain(deadline),
  ]);
  const finished = await Promise.race([
    Promise.all([closed, streams]).then(() => true),
    delay(Math.max(0, deadline - Date.now())).then(() => false),
  ]);
  if (!finished) {
    logger.warn?.(`Grace period over: closing the connections still open`);
    server.closeAllConnections?.();
  }
  await app.close();
  return finished;
}

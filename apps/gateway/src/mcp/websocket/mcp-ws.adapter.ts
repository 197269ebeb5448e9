import type { INestApplicationContext } from '@nestjs/common';
import { WsAdapter } from '@nestjs/platform-ws';
import type { WebSocket as WsSocket, WebSocketServer as WsServer } from 'ws';

/**
 * The ws adapter with two MCP-specific changes: the gateway's path comes from configuration
 * (decorator metadata is static), and Nest's `{event, data}` message routing is switched
 * off because every frame is a JSON-RPC message that the MCP gateway reads itself.
 */
export class McpWsAdapter extends WsAdapter {
  constructor(
    app: INestApplicationContext,
    private readonly path: string,
    private readonly maxPayload: number,
  ) {
    super(app, { messageParser: () => undefined });
  }

  /**
   * Frame errors (oversized, invalid UTF-8) are the client's doing and already end with a close
   * code; logging each at error level would let any client flood the log.
   */
  override bindErrorHandler(server: WsServer): WsServer {
    server.on('connection', (ws: WsSocket) =>
      ws.on('error', (err: Error) => this.logger.debug(`WebSocket client error: ${err.message}`)),
    );
    server.on('error', (err: Error) => this.logger.error(err));
    return server;
  }

  override create(port: number, options: Record<string, unknown> = {}): unknown {
    // ws closes a connection whose frame exceeds maxPayload with 1009 (message too big).
    return super.create(port, { ...options, path: this.path, maxPayload: this.maxPayload });
  }
}

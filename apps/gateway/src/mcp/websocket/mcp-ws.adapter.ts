import { STATUS_CODES } from 'node:http';
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import type { INestApplicationContext } from '@nestjs/common';
import { WsAdapter } from '@nestjs/platform-ws';
import { WebSocketServer } from 'ws';
import type { WebSocket as WsSocket, WebSocketServer as WsServer } from 'ws';
import { McpWebSocketGateway } from './mcp-ws.gateway';

type UpgradeListener = (request: IncomingMessage, socket: Duplex, head: Buffer) => void;

/**
 * The ws adapter with MCP-specific changes: the gateway's paths come from configuration
 * (decorator metadata is static), Nest's `{event, data}` message routing is switched off
 * because every frame is a JSON-RPC message that the MCP gateway reads itself, and upgrades are
 * routed and authenticated here rather than by Nest's exact-path matching: `{path}` (the
 * anonymous development endpoint), `{path}/{tenant}` and `{path}/{tenant}/{server}` (a virtual
 * server) are admitted by the gateway before the handshake completes, so a refusal is a plain
 * HTTP response (401 with WWW-Authenticate, 403, 404) instead of a socket that opens and closes.
 */
export class McpWsAdapter extends WsAdapter {
  private readonly listeners: { server: HttpServer; listener: UpgradeListener }[] = [];

  constructor(
    private readonly context: INestApplicationContext,
    private readonly path: string,
    private readonly maxPayload: number,
  ) {
    super(context, { messageParser: () => undefined });
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
    const httpServer = this.httpServer as HttpServer | undefined;
    if (port !== 0 || !httpServer) {
      return super.create(port, { ...options, path: this.path, maxPayload: this.maxPayload });
    }
    const { path: _path, server: _server, namespace: _namespace, ...wsOptions } = options;
    const gateway = this.context.get(McpWebSocketGateway);
    const wss = this.bindErrorHandler(
      new WebSocketServer({
        ...wsOptions,
        noServer: true,
        // ws closes a connection whose frame exceeds maxPayload with 1009 (message too big).
        maxPayload: this.maxPayload,
        verifyClient: (info: { req: IncomingMessage }, done: VerifyCallback) => {
          gateway.admit(info.req).then(
            (refusal) =>
              refusal
                ? done(false, refusal.status, refusal.body, {
                    ...refusal.headers,
                    'Content-Type': 'application/json',
                  })
                : done(true),
            (err: unknown) => {
              this.logger.error(err);
              done(false, 500);
            },
          );
        },
      }),
    );
    const listener: UpgradeListener = (request, socket, head) => {
      const pathname = (request.url ?? '/').split('?')[0];
      if (pathname !== this.path && !pathname.startsWith(`${this.path}/`)) {
        refuse(socket, 404, 'Not found');
        return;
      }
      wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
    };
    httpServer.on('upgrade', listener);
    this.listeners.push({ server: httpServer, listener });
    return wss;
  }

  override async dispose(): Promise<void> {
    for (const { server, listener } of this.listeners.splice(0)) {
      server.off('upgrade', listener);
    }
    await super.dispose();
  }
}

type VerifyCallback = (
  verified: boolean,
  code?: number,
  message?: string,
  headers?: Record<string, string>,
) => void;

/** An HTTP refusal of an upgrade outside the MCP paths, with a JSON-RPC error body. */
function refuse(socket: Duplex, status: number, message: string): void {
  const body = JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32600, message } });
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

import type { IncomingMessage } from 'node:http';
import { Logger, OnModuleDestroy } from '@nestjs/common';
import { OnGatewayConnection, WebSocketGateway } from '@nestjs/websockets';
import type { RawData, WebSocket } from 'ws';
import { ConfigService } from '@portico/config';
import {
  JsonRpcMessage,
  JsonRpcResponse,
  McpConnection,
  McpEngine,
  PARSE_ERROR,
} from '@portico/mcp-protocol';
import { ConnectionLimiter } from '../connection-limiter';
import { HttpGuard } from '../http-guard';

/** Close codes (RFC 6455 §7.4.1) this gateway uses, each saying why. */
export const WS_CLOSE = {
  normal: 1000,
  goingAway: 1001,
  unsupportedData: 1003,
  /** Sent by ws itself for a text frame that is not valid UTF-8. */
  invalidPayload: 1007,
  policyViolation: 1008,
  tooBig: 1009,
  internalError: 1011,
  tryAgainLater: 1013,
} as const;

const SUBPROTOCOL = 'mcp';

/**
 * MCP over WebSocket (subprotocol `mcp`): one JSON-RPC message per text frame, either era on
 * any connection (2026-07-28 requests statelessly; `initialize` starts a 2025-era session for
 * the connection). Liveness by ping/pong; a reader too slow to keep up is disconnected instead
 * of growing the send buffer without bound.
 */
@WebSocketGateway({
  handleProtocols: (protocols: Set<string>) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
})
export class McpWebSocketGateway implements OnGatewayConnection<WebSocket>, OnModuleDestroy {
  private readonly logger = new Logger(McpWebSocketGateway.name);
  private readonly connections = new Map<WebSocket, McpConnection>();
  private readonly heartbeat: NodeJS.Timeout;
  private readonly alive = new WeakSet<WebSocket>();

  constructor(
    private readonly engine: McpEngine,
    private readonly guard: HttpGuard,
    private readonly limiter: ConnectionLimiter,
    private readonly config: ConfigService,
  ) {
    this.heartbeat = setInterval(() => this.ping(), config.values.mcp.wsPingIntervalMs);
    this.heartbeat.unref();
  }

  handleConnection(socket: WebSocket, request: IncomingMessage): void {
    const problem = this.guard.checkHeaders(request.headers);
    if (problem) {
      socket.close(WS_CLOSE.policyViolation, problem.message.slice(0, 120));
      return;
    }
    const release = this.limiter.acquire(request.socket.remoteAddress ?? 'unknown');
    if (!release) {
      socket.close(WS_CLOSE.tryAgainLater, 'Too many connections from this address');
      return;
    }
    socket.once('close', release);
    const limits = this.config.values.mcp;
    const connection = new McpConnection(this.engine, {
      send: (message) => this.send(socket, message, limits.wsMaxBufferedBytes),
    });
    this.connections.set(socket, connection);
    this.alive.add(socket);
    socket.on('pong', () => this.alive.add(socket));
    socket.on('message', (data: RawData, isBinary: boolean) => {
      if (isBinary) {
        socket.close(WS_CLOSE.unsupportedData, 'MCP frames are text');
        return;
      }
      let value: unknown;
      try {
        value = JSON.parse(rawText(data));
      } catch {
        value = PARSE_ERROR;
      }
      void connection.receive(value);
    });
    socket.on('close', () => {
      connection.close();
      this.connections.delete(socket);
    });
    socket.on('error', (err) => this.logger.debug(`WebSocket error: ${err.message}`));
  }

  onModuleDestroy(): void {
    clearInterval(this.heartbeat);
    for (const [socket, connection] of this.connections) {
      connection.close();
      socket.close(WS_CLOSE.goingAway, 'Server shutting down');
    }
    this.connections.clear();
  }

  get size(): number {
    return this.connections.size;
  }

  private send(
    socket: WebSocket,
    message: JsonRpcMessage | JsonRpcResponse[],
    maxBuffered: number,
  ): void {
    if (socket.readyState !== socket.OPEN) {
      return;
    }
    if (socket.bufferedAmount > maxBuffered) {
      // The client does not read: drop it rather than buffer without bound. It will not read
      // the close frame either, so the socket is destroyed shortly after.
      this.connections.get(socket)?.close();
      this.connections.delete(socket);
      socket.close(WS_CLOSE.tryAgainLater, 'Client too slow: send buffer full');
      setTimeout(() => socket.terminate(), 1000).unref();
      return;
    }
    socket.send(JSON.stringify(message));
  }

  private ping(): void {
    for (const socket of this.connections.keys()) {
      if (!this.alive.has(socket)) {
        socket.terminate();
        continue;
      }
      this.alive.delete(socket);
      socket.ping();
    }
  }
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) {
    return Buffer.concat(data).toString('utf8');
  }
  return Buffer.from(data as ArrayBuffer).toString('utf8');
}

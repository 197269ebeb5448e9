import proxyAddr from '@fastify/proxy-addr';
import type { IncomingMessage } from 'node:http';
import { Logger, OnModuleDestroy } from '@nestjs/common';
import { OnGatewayConnection, WebSocketGateway } from '@nestjs/websockets';
import type { RawData, WebSocket } from 'ws';
import { ConfigService } from '@portico/config';
import { GatewayMetrics, mcpMethodOf } from '@portico/observability';
import { QuotaService } from '@portico/tenancy';
import {
  ErrorCode,
  errorResponse,
  JsonRpcErrorObject,
  JsonRpcMessage,
  JsonRpcResponse,
  McpConnection,
  McpEngine,
  PARSE_ERROR,
} from '@portico/mcp-protocol';
import { ConnectionLimiter } from '../connection-limiter';
import { HttpGuard } from '../http-guard';
import { AccessDenied, AccessTarget, McpAccess, McpCaller } from '../mcp-access.service';
import { chargeRequest } from '../request-charge';

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

/** Why an upgrade is refused before the handshake: an HTTP status, headers and a JSON body. */
export interface UpgradeRefusal {
  status: number;
  headers: Record<string, string>;
  /** A JSON-RPC error response. */
  body: string;
}

function refusal(
  status: number,
  error: JsonRpcErrorObject,
  headers: Record<string, string> = {},
): UpgradeRefusal {
  return { status, headers, body: JSON.stringify(errorResponse(null, error)) };
}

/**
 * MCP over WebSocket (subprotocol `mcp`): one JSON-RPC message per text frame, either era on
 * any connection (2026-07-28 requests statelessly; `initialize` starts a 2025-era session for
 * the connection). Liveness by ping/pong; a reader too slow to keep up is disconnected instead
 * of growing the send buffer without bound.
 *
 * Tenants are served at `ws://host{path}/{tenant}` and their virtual servers at
 * `ws://host{path}/{tenant}/{server}`, with the access rules of Streamable HTTP:
 * the upgrade request is authenticated (Authorization: Bearer, or X-API-Key) before the
 * handshake completes, and refused with a plain HTTP 401 (WWW-Authenticate), 403 or 404. Browsers
 * cannot set those headers on a WebSocket: this is a server-to-server transport. `{path}` itself
 * is the anonymous development endpoint, served only while a fixture catalog is configured.
 */
@WebSocketGateway({
  handleProtocols: (protocols: Set<string>) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
})
export class McpWebSocketGateway implements OnGatewayConnection<WebSocket>, OnModuleDestroy {
  private readonly logger = new Logger(McpWebSocketGateway.name);
  private readonly connections = new Map<WebSocket, McpConnection>();
  private readonly heartbeat: NodeJS.Timeout;
  private readonly alive = new WeakSet<WebSocket>();
  /** Callers admitted at the upgrade, until their connection is set up. */
  private readonly admitted = new WeakMap<
    IncomingMessage,
    { caller: McpCaller; target: AccessTarget }
  >();
  private readonly anonymousEnabled: boolean;
  private readonly trustProxy?: (address: string, hop: number) => boolean;

  constructor(
    private readonly engine: McpEngine,
    private readonly guard: HttpGuard,
    private readonly limiter: ConnectionLimiter,
    private readonly access: McpAccess,
    private readonly quotas: QuotaService,
    private readonly config: ConfigService,
    private readonly metrics: GatewayMetrics,
  ) {
    this.heartbeat = setInterval(() => this.ping(), config.values.mcp.wsPingIntervalMs);
    const proxies = config.values.http.trustedProxies;
    this.trustProxy = proxies.length > 0 ? proxyAddr.compile([...proxies]) : undefined;
    this.heartbeat.unref();
    this.anonymousEnabled = config.values.mcp.fixtureCatalog !== 'none';
    metrics.trackSessions('websocket', () => this.connections.size);
  }

  /**
   * Decides an upgrade request before the handshake: `{path}` (anonymous, when enabled),
   * `{path}/{tenant}` or `{path}/{tenant}/{server}` with credentials the tenant accepts.
   * Undefined admits it.
   */
  async admit(request: IncomingMessage): Promise<UpgradeRefusal | undefined> {
    const base = this.config.values.mcp.path;
    const pathname = (request.url ?? '/').split('?')[0];
    let slug: string | undefined;
    let server: string | undefined;
    if (pathname !== base) {
      const rest = pathname.startsWith(`${base}/`) ? pathname.slice(base.length + 1) : '';
      const segments = rest.split('/').map(decodeSegment);
      if (
        segments.length > 2 ||
        segments.some((segment) => segment === undefined || segment === '')
      ) {
        return refusal(404, { code: ErrorCode.InvalidRequest, message: 'Not found' });
      }
      [slug, server] = segments as string[];
    } else if (!this.anonymousEnabled) {
      return refusal(404, {
        code: ErrorCode.InvalidRequest,
        message: `Not found: use ${base}/{tenant}`,
      });
    }
    try {
      const target = this.access.upgradeTargetOf(request, slug, server);
      const caller = await this.access.resolveTarget(target);
      this.admitted.set(request, { caller, target });
      return undefined;
    } catch (err) {
      if (err instanceof AccessDenied) {
        return refusal(err.status, err.error, err.headers);
      }
      throw err;
    }
  }

  handleConnection(socket: WebSocket, request: IncomingMessage): void {
    const admitted = this.admitted.get(request);
    this.admitted.delete(request);
    if (!admitted) {
      socket.close(WS_CLOSE.policyViolation, 'Not admitted');
      return;
    }
    const { caller } = admitted;
    const problem = this.guard.checkHeaders(request.headers);
    if (problem) {
      socket.close(WS_CLOSE.policyViolation, problem.message.slice(0, 120));
      return;
    }
    const release = this.limiter.acquire(this.clientAddress(request));
    if (!release) {
      socket.close(WS_CLOSE.tryAgainLater, 'Too many connections from this address');
      return;
    }
    socket.once('close', release);
    const limits = this.config.values.mcp;
    const connection = new McpConnection(this.engine, {
      send: (message) => this.send(socket, message, limits.wsMaxBufferedBytes),
      principal: caller.principal,
    });
    this.connections.set(socket, connection);
    this.alive.add(socket);
    let metered: Promise<void> = Promise.resolve();
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
      const started = performance.now();
      const count = (outcome: 'ok' | 'rejected'): void =>
        this.metrics.mcpRequest(
          'websocket',
          mcpMethodOf(value),
          outcome,
          (performance.now() - started) / 1000,
        );
      if (!caller.tenant) {
        void connection.receive(value).then(() => count('ok'));
        return;
      }
      // Tenant traffic is metered: every frame passes through one chain so a notification
      // (say, a cancellation) never overtakes the request it refers to; a refused request is
      // answered here and never runs.
      const message = value;
      metered = metered
        .then(async () => {
          if (isRequest(message) && !(await this.stillAdmitted(socket, admitted.target, message))) {
            count('rejected');
            return;
          }
          const refused = isRequest(message)
            ? await chargeRequest(this.quotas, caller, this.metrics)
            : undefined;
          if (refused && isRequest(message)) {
            count('rejected');
            this.send(socket, errorResponse(message.id, refused.error), limits.wsMaxBufferedBytes);
          } else {
            void connection.receive(message).then(() => count('ok'));
          }
        })
        .catch((err: unknown) => this.logger.error(err));
    });
    socket.on('close', () => {
      connection.close();
      this.connections.delete(socket);
    });
    socket.on('error', (err) => this.logger.debug(`WebSocket error: ${err.message}`));
  }

  /**
   * A connection outlives the credential check of its upgrade: each request re-checks it
   * (cached, so cheap), and a revoked key or suspended tenant ends the connection.
   */
  private async stillAdmitted(
    socket: WebSocket,
    target: AccessTarget,
    request: { id: string | number },
  ): Promise<boolean> {
    try {
      await this.access.resolveTarget(target);
      return true;
    } catch (err) {
      if (!(err instanceof AccessDenied)) {
        throw err;
      }
      this.send(
        socket,
        errorResponse(request.id, err.error),
        this.config.values.mcp.wsMaxBufferedBytes,
      );
      socket.close(WS_CLOSE.policyViolation, 'Credentials no longer accepted');
      return false;
    }
  }

  /** The client's address: X-Forwarded-For counts only through TRUSTED_PROXIES. */
  private clientAddress(request: IncomingMessage): string {
    return this.trustProxy
      ? proxyAddr(request, this.trustProxy)
      : (request.socket.remoteAddress ?? 'unknown');
  }

  /**
   * Graceful shutdown: each connection finishes its in-flight requests (until `deadline`,
   * epoch ms), then closes with 1001 so its client reconnects to another node.
   */
  async drain(deadline: number): Promise<void> {
    await Promise.all(
      [...this.connections].map(async ([socket, connection]) => {
        await connection.drain(Math.max(0, deadline - Date.now()));
        connection.close();
        socket.close(WS_CLOSE.goingAway, 'Server shutting down');
        this.connections.delete(socket);
      }),
    );
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

/** A decoded path segment; undefined when its escapes are malformed. */
function decodeSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) {
    return Buffer.concat(data).toString('utf8');
  }
  return Buffer.from(data as ArrayBuffer).toString('utf8');
}

/** A JSON-RPC request (has a method and a usable id): what quotas charge for. */
function isRequest(value: unknown): value is { id: string | number; method: string } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return false;
  }
  const { id, method } = value as { id?: unknown; method?: unknown };
  return typeof method === 'string' && (typeof id === 'string' || typeof id === 'number');
}

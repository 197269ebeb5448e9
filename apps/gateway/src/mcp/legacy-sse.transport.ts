import { randomBytes } from 'node:crypto';
import { Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ConfigService } from '@portico/config';
import { GatewayMetrics, mcpMethodOf } from '@portico/observability';
import { QuotaService } from '@portico/tenancy';
import { ErrorCode, McpConnection, McpEngine, errorResponse } from '@portico/mcp-protocol';
import { ConnectionLimiter } from './connection-limiter';
import { HttpGuard } from './http-guard';
import { SseWriter } from './sse-writer';
import { AccessDenied, McpAccess, McpCaller } from './mcp-access.service';
import { chargeRequest } from './request-charge';

interface LegacyStream {
  connection: McpConnection;
  writer: SseWriter;
  /** The tenant and principal that opened the stream (none on the anonymous endpoint). */
  tenantId?: string;
  principalId?: string;
  /** The virtual server it was opened on (none on the tenant's own endpoint). */
  server?: string;
}

/**
 * The HTTP+SSE transport of protocol 2024-11-05, for clients that predate Streamable HTTP:
 * GET `{path}/{tenant}/sse` opens a stream whose first event (`endpoint`) names the URI to
 * POST messages to (`{path}/{tenant}/messages?sessionId=…`); every answer travels back on the
 * stream as a `message` event. A virtual server has the same pair below its own endpoint
 * (`{path}/{tenant}/{server}/sse`, `…/{server}/messages`). The stream is one McpConnection, so
 * it serves either era like stdio and WebSocket do. Both requests are authenticated like
 * Streamable HTTP (McpAccess), and a POST must come from the principal that opened the stream,
 * on the same endpoint: a session id is not a credential.
 * `{path}/sse` and `{path}/messages` are the anonymous development endpoint, served only while
 * a fixture catalog is configured.
 */
@Injectable()
export class LegacySseTransport implements OnModuleDestroy {
  private readonly logger = new Logger(LegacySseTransport.name);
  private readonly streams = new Map<string, LegacyStream>();
  private readonly keepAliveMs: number;
  private readonly anonymousEnabled: boolean;

  constructor(
    private readonly engine: McpEngine,
    private readonly guard: HttpGuard,
    private readonly limiter: ConnectionLimiter,
    private readonly access: McpAccess,
    private readonly quotas: QuotaService,
    config: ConfigService,
    private readonly metrics: GatewayMetrics,
  ) {
    this.keepAliveMs = config.values.mcp.sseKeepAliveMs;
    this.anonymousEnabled = config.values.mcp.fixtureCatalog !== 'none';
    metrics.trackSessions('sse', () => this.streams.size);
  }

  get size(): number {
    return this.streams.size;
  }

  register(app: FastifyInstance, path: string, bodyLimit: number): void {
    void app.register((scope, _opts, done) => {
      scope.removeContentTypeParser('application/json');
      scope.addContentTypeParser(
        'application/json',
        { parseAs: 'string', bodyLimit },
        (_req, body, next) => next(null, body),
      );
      scope.setErrorHandler((error: { statusCode?: number }, _request, reply) => {
        const status = error.statusCode ?? 500;
        if (status >= 500) {
          this.logger.error(error);
        }
        this.reject(
          reply,
          status,
          status === 413 ? `Request body exceeds ${bodyLimit} bytes` : 'Invalid HTTP request',
        );
      });
      // The anonymous development endpoint, every tenant's and every virtual server's (`sse`
      // and `messages` are reserved slugs and server names).
      for (const base of [path, `${path}/:tenant`, `${path}/:tenant/:server`]) {
        scope.get(`${base}/sse`, (request, reply) =>
          this.guarded(request, reply, (caller) => this.open(request, reply, path, caller)),
        );
        scope.post(`${base}/messages`, (request, reply) => {
          this.countRefusal(request, reply);
          return this.guarded(request, reply, (caller) => this.message(request, reply, caller));
        });
      }
      done();
    });
  }

  /**
   * Graceful shutdown: each stream's in-flight requests finish (their answers travel on the
   * stream) until `deadline` (epoch ms); then the stream ends.
   */
  async drain(deadline: number): Promise<void> {
    await Promise.all(
      [...this.streams].map(async ([id, stream]) => {
        await stream.connection.drain(Math.max(0, deadline - Date.now()));
        stream.connection.close();
        stream.writer.end();
        this.streams.delete(id);
      }),
    );
  }

  onModuleDestroy(): void {
    for (const stream of this.streams.values()) {
      stream.connection.close();
      stream.writer.end();
    }
    this.streams.clear();
  }

  /**
   * A POST refused (4xx/5xx) is counted when its response ends; an accepted one when its
   * message has been handled (`message`).
   */
  private countRefusal(request: FastifyRequest, reply: FastifyReply): void {
    const started = performance.now();
    reply.raw.once('close', () => {
      const status = reply.raw.statusCode;
      if (status < 400) {
        return;
      }
      let method = 'invalid';
      try {
        method = mcpMethodOf(JSON.parse(request.body as string));
      } catch {
        // Not JSON: counted as `invalid`.
      }
      this.metrics.mcpRequest(
        'sse',
        method,
        status < 500 ? 'rejected' : 'error',
        (performance.now() - started) / 1000,
      );
    });
  }

  /** Origin/Host checks, then the tenant and principal (or the anonymous endpoint, if enabled). */
  private async guarded(
    request: FastifyRequest,
    reply: FastifyReply,
    run: (caller: McpCaller) => void,
  ): Promise<void> {
    const problem = this.guard.check(request);
    if (problem) {
      return this.reject(reply, problem.status, problem.message);
    }
    if (this.access.slugOf(request) === undefined && !this.anonymousEnabled) {
      return this.reject(reply, 404, 'Not found: use /mcp/{tenant}/sse');
    }
    let caller: McpCaller;
    try {
      caller = await this.access.resolve(request);
    } catch (err) {
      if (err instanceof AccessDenied) {
        void reply
          .code(err.status)
          .headers(err.headers)
          .type('application/json')
          .send(JSON.stringify(errorResponse(null, err.error)));
        return;
      }
      throw err;
    }
    const refused = await chargeRequest(this.quotas, caller, this.metrics);
    if (refused) {
      void reply
        .code(429)
        .header('retry-after', String(refused.retryAfterSeconds))
        .type('application/json')
        .send(JSON.stringify(errorResponse(null, refused.error)));
      return;
    }
    run(caller);
  }

  private open(
    request: FastifyRequest,
    reply: FastifyReply,
    path: string,
    caller: McpCaller,
  ): void {
    const accept = request.headers.accept ?? '';
    if (!accept.includes('text/event-stream') && !accept.includes('*/*')) {
      return this.reject(reply, 406, 'Accept must list text/event-stream');
    }
    const release = this.limiter.acquire(request.ip);
    if (!release) {
      void reply.header('retry-after', '1');
      return this.reject(reply, 429, 'Too many open streams from this address');
    }
    const sessionId = randomBytes(24).toString('base64url');
    reply.hijack();
    const streamClosed = this.metrics.streamOpened('sse');
    const writer = new SseWriter(reply.raw, {}, this.keepAliveMs, () => {
      streamClosed();
      release();
      const stream = this.streams.get(sessionId);
      stream?.connection.close();
      this.streams.delete(sessionId);
    });
    const connection = new McpConnection(this.engine, {
      send: (message) => writer.event(JSON.stringify(message)),
      principal: caller.principal,
    });
    this.streams.set(sessionId, {
      connection,
      writer,
      tenantId: caller.tenant?.id,
      principalId: caller.principal?.id,
      server: caller.server?.name,
    });
    const tenantBase = caller.tenant ? `${path}/${caller.tenant.slug}` : path;
    const base = caller.server ? `${tenantBase}/${caller.server.name}` : tenantBase;
    writer.named('endpoint', `${base}/messages?sessionId=${sessionId}`);
  }

  private message(request: FastifyRequest, reply: FastifyReply, caller: McpCaller): void {
    const sessionId = (request.query as { sessionId?: unknown }).sessionId;
    const found = typeof sessionId === 'string' ? this.streams.get(sessionId) : undefined;
    // Another tenant's, principal's or endpoint's stream is "unknown", exactly like a bad id.
    const stream =
      found &&
      found.tenantId === caller.tenant?.id &&
      found.principalId === caller.principal?.id &&
      found.server === caller.server?.name
        ? found
        : undefined;
    if (!stream) {
      return this.reject(reply, 404, 'Unknown or closed SSE session');
    }
    const type = (request.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (type !== 'application/json') {
      return this.reject(reply, 415, 'Content-Type must be application/json');
    }
    let value: unknown;
    try {
      value = JSON.parse(request.body as string);
    } catch {
      void reply
        .code(400)
        .type('application/json')
        .send(
          JSON.stringify(
            errorResponse(null, {
              code: ErrorCode.ParseError,
              message: 'Parse error: invalid JSON',
            }),
          ),
        );
      return;
    }
    const started = performance.now();
    void stream.connection
      .receive(value)
      .then(() =>
        this.metrics.mcpRequest(
          'sse',
          mcpMethodOf(value),
          'ok',
          (performance.now() - started) / 1000,
        ),
      );
    void reply.code(202).type('text/plain').send('Accepted');
  }

  private reject(reply: FastifyReply, status: number, message: string): void {
    void reply
      .code(status)
      .type('application/json')
      .send(JSON.stringify(errorResponse(null, { code: ErrorCode.InvalidRequest, message })));
  }
}

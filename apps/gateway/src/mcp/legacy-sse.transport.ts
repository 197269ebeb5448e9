import { randomBytes } from 'node:crypto';
import { Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ConfigService } from '@portico/config';
import { ErrorCode, McpConnection, McpEngine, errorResponse } from '@portico/mcp-protocol';
import { ConnectionLimiter } from './connection-limiter';
import { HttpGuard } from './http-guard';
import { SseWriter } from './sse-writer';

interface LegacyStream {
  connection: McpConnection;
  writer: SseWriter;
}

/**
 * The HTTP+SSE transport of protocol 2024-11-05, for clients that predate Streamable HTTP:
 * GET `{path}/sse` opens a stream whose first event (`endpoint`) names the URI to POST
 * messages to; every answer travels back on the stream as a `message` event. The stream is
 * one McpConnection, so it serves either era like stdio and WebSocket do.
 */
@Injectable()
export class LegacySseTransport implements OnModuleDestroy {
  private readonly logger = new Logger(LegacySseTransport.name);
  private readonly streams = new Map<string, LegacyStream>();
  private readonly keepAliveMs: number;

  constructor(
    private readonly engine: McpEngine,
    private readonly guard: HttpGuard,
    private readonly limiter: ConnectionLimiter,
    config: ConfigService,
  ) {
    this.keepAliveMs = config.values.mcp.sseKeepAliveMs;
  }

  get size(): number {
    return this.streams.size;
  }

  register(app: FastifyInstance, path: string, bodyLimit: number): void {
    const ssePath = `${path}/sse`;
    const messagesPath = `${path}/messages`;
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
      scope.get(ssePath, (request, reply) => this.open(request, reply, messagesPath));
      scope.post(messagesPath, (request, reply) => this.message(request, reply));
      done();
    });
  }

  onModuleDestroy(): void {
    for (const stream of this.streams.values()) {
      stream.connection.close();
      stream.writer.end();
    }
    this.streams.clear();
  }

  private open(request: FastifyRequest, reply: FastifyReply, messagesPath: string): void {
    const problem = this.guard.check(request);
    if (problem) {
      return this.reject(reply, problem.status, problem.message);
    }
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
    const writer = new SseWriter(reply.raw, {}, this.keepAliveMs, () => {
      release();
      const stream = this.streams.get(sessionId);
      stream?.connection.close();
      this.streams.delete(sessionId);
    });
    const connection = new McpConnection(this.engine, {
      send: (message) => writer.event(JSON.stringify(message)),
    });
    this.streams.set(sessionId, { connection, writer });
    writer.named('endpoint', `${messagesPath}?sessionId=${sessionId}`);
  }

  private message(request: FastifyRequest, reply: FastifyReply): void {
    const problem = this.guard.check(request);
    if (problem) {
      return this.reject(reply, problem.status, problem.message);
    }
    const sessionId = (request.query as { sessionId?: unknown }).sessionId;
    const stream = typeof sessionId === 'string' ? this.streams.get(sessionId) : undefined;
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
    void stream.connection.receive(value);
    void reply.code(202).type('text/plain').send('Accepted');
  }

  private reject(reply: FastifyReply, status: number, message: string): void {
    void reply
      .code(status)
      .type('application/json')
      .send(JSON.stringify(errorResponse(null, { code: ErrorCode.InvalidRequest, message })));
  }
}

import { Inject, Injectable, Logger } from '@nestjs/common';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { PinoLogger } from 'nestjs-pino';
import { ConfigService } from '@portico/config';
import {
  Cancellation,
  Classified,
  ErrorCode,
  JsonRpcErrorObject,
  JsonRpcMessage,
  JsonRpcRequest,
  JsonRpcResponse,
  McpEngine,
  META,
  MODERN_PROTOCOL_VERSION,
  McpError,
  NAMED_METHODS,
  LEGACY_PROTOCOL_VERSIONS,
  DEFAULT_LEGACY_HTTP_VERSION,
  classify,
  decodeHeaderValue,
  errorResponse,
} from '@portico/mcp-protocol';
import {
  type Context,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
} from '@opentelemetry/api';
import {
  GatewayMetrics,
  McpOutcome,
  mcpMethodOf,
  failSpan,
  SpanAttr,
  Tracing,
  hasTraceContext,
  ownFieldsLogger,
} from '@portico/observability';
import type { Logger as PinoInstance } from 'pino';
import { EVENT_STORE, EventStore } from '@portico/session';
import { LiveSession, SessionLimitError, SessionRegistry } from './session-registry.service';
import { SessionStream } from './session-stream';
import { SseWriter } from './sse-writer';
import { ConnectionLimiter } from './connection-limiter';
import { isPoolTimeout } from '@portico/persistence';
import { serverOfPrincipal } from '@portico/registry';
import { QuotaExceededError, QuotaService } from '@portico/tenancy';
import { HttpGuard } from './http-guard';
import { chargeRequest, quotaError } from './request-charge';
import { AccessDenied, McpAccess, McpCaller } from './mcp-access.service';

const SESSION_HEADER = 'mcp-session-id';
const VERSION_HEADER = 'mcp-protocol-version';
const METHOD_HEADER = 'mcp-method';
const NAME_HEADER = 'mcp-name';

/** What the end-of-request hook learns while the request is served. */
interface Observed {
  caller: McpCaller | undefined;
  span: Span | undefined;
}

/**
 * The trace context of each traced HTTP request (its SERVER span), handed to the engine as
 * RequestIo.trace. A side table rather than a request decoration: only traced requests pay.
 */
const requestTraces = new WeakMap<FastifyRequest, Context>();

/** Thrown when a body could not be parsed as JSON; answered with -32700. */
const PARSE_FAILED = Symbol('parse-failed');

class HttpRejection extends Error {
  constructor(
    readonly status: number,
    readonly error: JsonRpcErrorObject,
    readonly id: string | number | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(error.message);
  }
}

function reject(status: number, code: number, message: string, data?: unknown): HttpRejection {
  return new HttpRejection(
    status,
    data === undefined ? { code, message } : { code, message, data },
  );
}

/**
 * The MCP Streamable HTTP endpoint for both eras. A POST whose request carries the 2026-07-28
 * `_meta` envelope is served statelessly; `initialize` starts a 2025-era session and later
 * messages of that session carry Mcp-Session-Id. Raw Fastify routes keep the hot path free
 * of framework layers the protocol does not need.
 */
@Injectable()
export class StreamableHttpTransport {
  private readonly logger = new Logger(StreamableHttpTransport.name);
  private readonly keepAliveMs: number;
  private readonly retryMs: number;
  private readonly anonymousEnabled: boolean;
  private readonly redactPaths: readonly string[];
  /** The `mcp request` lines' logger (created on first use, once pino is set up). */
  private requestLog?: PinoInstance;

  constructor(
    private readonly engine: McpEngine,
    private readonly sessions: SessionRegistry,
    private readonly guard: HttpGuard,
    private readonly limiter: ConnectionLimiter,
    private readonly access: McpAccess,
    private readonly quotas: QuotaService,
    private readonly pino: PinoLogger,
    @Inject(EVENT_STORE) private readonly events: EventStore,
    config: ConfigService,
    private readonly metrics: GatewayMetrics,
    private readonly tracing: Tracing,
  ) {
    this.keepAliveMs = config.values.mcp.sseKeepAliveMs;
    this.anonymousEnabled = config.values.mcp.fixtureCatalog !== 'none';
    this.retryMs = config.values.mcp.sseRetryMs;
    this.redactPaths = config.values.log.redactPaths;
  }

  register(app: FastifyInstance, path: string, bodyLimit: number): void {
    void app.register((scope, _opts, done) => {
      // Our own JSON parser: a malformed body is a JSON-RPC parse error, not a framework 400.
      scope.removeContentTypeParser('application/json');
      scope.addContentTypeParser(
        'application/json',
        { parseAs: 'string', bodyLimit },
        (_req, body, next) => {
          try {
            next(null, JSON.parse(body as string));
          } catch {
            next(null, PARSE_FAILED);
          }
        },
      );
      scope.setErrorHandler((error: { statusCode?: number; code?: string }, _request, reply) => {
        const status = error.statusCode ?? 500;
        if (status === 413) {
          return this.send(
            reply,
            reject(413, ErrorCode.InvalidRequest, `Request body exceeds ${bodyLimit} bytes`),
          );
        }
        if (status === 415 || error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
          return this.send(
            reply,
            reject(415, ErrorCode.InvalidRequest, 'Content-Type must be application/json'),
          );
        }
        if (status >= 400 && status < 500) {
          return this.send(reply, reject(status, ErrorCode.InvalidRequest, 'Invalid HTTP request'));
        }
        this.logger.error(error);
        return this.send(reply, reject(500, ErrorCode.InternalError, 'Internal error'));
      });
      // RFC 9728 protected resource metadata for each tenant endpoint and each virtual
      // server's: public, cacheable.
      const metadata = async (request: FastifyRequest, reply: FastifyReply) => {
        const slug = this.access.slugOf(request) ?? '';
        const server = this.access.serverOf(request);
        const found = await this.access.protectedResourceMetadata(request, slug, server);
        if (!found) {
          return reply
            .code(404)
            .type('application/json')
            .send(
              JSON.stringify({
                error: 'not_found',
                error_description: server === undefined ? 'Unknown tenant' : 'Unknown server',
              }),
            );
        }
        return reply
          .header('access-control-allow-origin', '*')
          .header('cache-control', 'public, max-age=300')
          .type('application/json')
          .send(JSON.stringify(found));
      };
      scope.get(`/.well-known/oauth-protected-resource${path}/:tenant`, metadata);
      scope.get(`/.well-known/oauth-protected-resource${path}/:tenant/:server`, metadata);
      // The anonymous development endpoint at `path`, every tenant's at `path/{tenant}`, and
      // every virtual server's at `path/{tenant}/{server}` (`sse` and `messages` there belong
      // to the legacy HTTP+SSE transport, hence reserved server names).
      for (const route of [path, `${path}/:tenant`, `${path}/:tenant/:server`]) {
        scope.post(route, (request, reply) =>
          this.guarded(request, reply, (caller) => this.post(request, reply, caller)),
        );
        scope.get(route, (request, reply) =>
          this.guarded(request, reply, (caller) => this.get(request, reply, caller)),
        );
        scope.delete(route, (request, reply) =>
          this.guarded(request, reply, (caller) => this.delete(request, reply, caller)),
        );
      }
      done();
    });
  }

  /** One MCP HTTP request: traced (when tracing is on), measured, logged, then served. */
  private guarded(
    request: FastifyRequest,
    reply: FastifyReply,
    run: (caller: McpCaller) => Promise<void>,
  ): Promise<void> {
    const observed: Observed = { caller: undefined, span: undefined };
    if (this.tracing.enabled) {
      observed.span = this.startSpan(request);
      requestTraces.set(request, this.tracing.under(observed.span));
    }
    const log = (this.requestLog ??= ownFieldsLogger(this.pino.logger, this.redactPaths));
    const logged = log.isLevelEnabled('info');
    const started = performance.now();
    // One metric sample, one span end and (at info level) one log line per MCP request, when
    // the response (or its stream) ends.
    reply.raw.once('close', () => {
      const status = reply.raw.statusCode;
      const durationMs = performance.now() - started;
      const method = methodLabel(request);
      this.metrics.mcpRequest('streamable-http', method, outcomeOf(status), durationMs / 1000);
      const span = observed.span;
      if (span) {
        span.setAttribute(SpanAttr.httpStatus, status);
        if (status >= 500) {
          span.setStatus({ code: SpanStatusCode.ERROR });
          span.setAttribute(SpanAttr.errorType, String(status));
        }
        span.end();
      }
      if (logged) {
        const body = request.body as
          { method?: unknown; id?: unknown; params?: { name?: unknown } } | undefined;
        const rpcMethod = typeof body?.method === 'string' ? body.method : undefined;
        const tool = rpcMethod === 'tools/call' ? body?.params?.name : undefined;
        log.info(
          {
            reqId: request.id,
            httpMethod: request.method,
            status,
            rpcMethod,
            rpcId: body?.id,
            tool: typeof tool === 'string' ? tool.slice(0, 128) : undefined,
            sessionId: headerValue(request.headers[SESSION_HEADER])?.slice(0, 8),
            tenant: observed.caller?.tenant?.slug,
            server: observed.caller?.server?.name,
            principal: observed.caller?.principal?.id,
            traceId: span?.spanContext().traceId,
            durationMs: Math.round(durationMs * 100) / 100,
          },
          'mcp request',
        );
      }
    });
    return this.serve(request, reply, run, observed);
  }

  /**
   * The HTTP request's SERVER span. Its parent is the trace context the JSON-RPC request
   * carries in `_meta` (SEP-414), else the `traceparent` header.
   */
  private startSpan(request: FastifyRequest): Span {
    const body = request.body as { params?: { _meta?: unknown } } | undefined;
    const meta = body?.params?._meta as Record<string, unknown> | undefined;
    const headers = request.headers as Record<string, unknown>;
    // No trace context or baggage to continue (the usual case): a new trace, without running
    // the propagators over the headers.
    const carrier = hasTraceContext(meta)
      ? meta
      : typeof headers.traceparent === 'string' || typeof headers.baggage === 'string'
        ? headers
        : undefined;
    const route = request.routeOptions.url ?? request.url;
    return this.tracing.start(
      `${request.method} ${route}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          [SpanAttr.httpMethod]: request.method,
          [SpanAttr.httpRoute]: route,
          [SpanAttr.transport]: 'streamable-http',
        },
      },
      carrier ? this.tracing.extract(carrier, ROOT_CONTEXT) : ROOT_CONTEXT,
    );
  }

  /**
   * Resolves the caller of a traced tenant request, with a `portico.auth` span when the check
   * did work (a credential looked up, a signature verified) or refused the request. A check
   * answered from the credential caches takes about a microsecond: a span would cost more
   * than what it measures.
   */
  private async tracedResolve(request: FastifyRequest, span: Span): Promise<McpCaller> {
    const startTime = performance.timeOrigin + performance.now();
    let caller: McpCaller | undefined;
    try {
      const resolved = this.access.resolve(request);
      if (!(resolved instanceof Promise)) {
        return resolved;
      }
      caller = await resolved;
      return caller;
    } catch (err) {
      this.authSpan(span, startTime, undefined, err);
      throw err;
    } finally {
      if (caller) {
        this.authSpan(span, startTime, caller);
      }
    }
  }

  private authSpan(
    parent: Span,
    startTime: number,
    caller: McpCaller | undefined,
    err?: unknown,
  ): void {
    const span = this.tracing.start(
      'portico.auth',
      { kind: SpanKind.INTERNAL, startTime },
      this.tracing.under(parent),
    );
    if (caller) {
      span.setAttribute(SpanAttr.tenant, caller.tenant?.slug ?? '');
      span.setAttribute(SpanAttr.principal, caller.principal?.id ?? '');
    } else {
      failSpan(span, err);
    }
    span.end();
  }

  private async serve(
    request: FastifyRequest,
    reply: FastifyReply,
    run: (caller: McpCaller) => Promise<void>,
    observed: Observed,
  ): Promise<void> {
    try {
      const problem = this.guard.check(request);
      if (problem) {
        throw reject(problem.status, ErrorCode.InvalidRequest, problem.message);
      }
      if (this.access.slugOf(request) === undefined && !this.anonymousEnabled) {
        throw reject(404, ErrorCode.InvalidRequest, 'Not found: use /mcp/{tenant}');
      }
      let caller: McpCaller;
      try {
        caller =
          observed.span?.isRecording() === true && this.access.slugOf(request) !== undefined
            ? await this.tracedResolve(request, observed.span)
            : await this.access.resolve(request);
      } catch (err) {
        if (err instanceof AccessDenied) {
          throw new HttpRejection(err.status, err.error, null, err.headers);
        }
        throw err;
      }
      observed.caller = caller;
      if (caller.tenant) {
        observed.span?.setAttribute(SpanAttr.tenant, caller.tenant.slug);
      }
      if (caller.tenant && request.method === 'POST') {
        await this.chargeRequest(caller);
      }
      // Every open request or stream holds a slot of its client address and session.
      const release = this.limiter.acquire(
        request.ip,
        headerValue(request.headers[SESSION_HEADER]),
      );
      if (!release) {
        throw new HttpRejection(
          429,
          { code: ErrorCode.InvalidRequest, message: 'Too many open requests or streams' },
          null,
          { 'retry-after': '1' },
        );
      }
      reply.raw.once('close', release);
      await run(caller);
    } catch (err) {
      if (reply.sent || reply.raw.headersSent) {
        return;
      }
      if (err instanceof HttpRejection) {
        return this.send(reply, err);
      }
      if (isPoolTimeout(err)) {
        // Saturated, not broken: tell the client to come back instead of failing it for good.
        return this.send(
          reply,
          new HttpRejection(
            503,
            { code: ErrorCode.InternalError, message: 'Database busy, retry shortly' },
            null,
            { 'retry-after': '1' },
          ),
        );
      }
      this.logger.error(err);
      this.send(reply, reject(500, ErrorCode.InternalError, 'Internal error'));
    }
  }

  private send(reply: FastifyReply, rejection: HttpRejection): void {
    void reply
      .code(rejection.status)
      .headers(rejection.headers)
      .type('application/json')
      .send(JSON.stringify(errorResponse(rejection.id, rejection.error)));
  }

  // ---------------------------------------------------------------------------------------
  // POST

  private async post(
    request: FastifyRequest,
    reply: FastifyReply,
    caller: McpCaller,
  ): Promise<void> {
    const accept = request.headers.accept ?? '';
    if (!accepts(accept, 'application/json') || !accepts(accept, 'text/event-stream')) {
      throw reject(
        406,
        ErrorCode.InvalidRequest,
        'Accept must list application/json and text/event-stream',
      );
    }
    if (!isJsonContentType(request.headers['content-type'])) {
      throw reject(415, ErrorCode.InvalidRequest, 'Content-Type must be application/json');
    }
    const body = request.body;
    if (body === PARSE_FAILED) {
      throw reject(400, ErrorCode.ParseError, 'Parse error: invalid JSON');
    }
    if (body === undefined || body === null) {
      throw reject(400, ErrorCode.InvalidRequest, 'Empty request body');
    }

    if (Array.isArray(body)) {
      return this.postBatch(request, reply, body, caller);
    }

    const classified = classify(body);
    if (classified.kind === 'invalid') {
      if (classified.responseTo !== undefined) {
        // A malformed answer to a server-to-client request fails that request at once.
        const sessionId = headerValue(request.headers[SESSION_HEADER]);
        const live = sessionId === undefined ? undefined : await this.sessions.find(sessionId);
        if (live && ownedBy(live, caller)) {
          await this.engine.handleSession(live.session, classified, {
            outbound: { send: () => undefined },
          });
        }
      }
      throw new HttpRejection(400, classified.error, classified.id);
    }
    const isToolCall = classified.kind === 'request' && classified.message.method === 'tools/call';
    if (isModern(classified, request)) {
      if (isToolCall) {
        await this.checkToolCall(request, caller, classified.message);
      }
      return this.postModern(request, reply, classified, caller);
    }
    if (classified.kind === 'request' && classified.message.method === 'initialize') {
      return this.initialize(request, reply, classified.message, caller);
    }
    const live = await this.requireSession(request, caller);
    if (isToolCall) {
      await this.checkToolCall(request, caller, classified.message);
    }
    const versionProblem = checkLegacyVersionHeader(request, live);
    if (versionProblem) {
      throw versionProblem;
    }
    return this.postLegacy(request, reply, live, [classified]);
  }

  /** Tenant and API-key request rates, both eras: over the limit, 429 with Retry-After. */
  private async chargeRequest(caller: McpCaller): Promise<void> {
    const refused = await chargeRequest(this.quotas, caller, this.metrics);
    if (refused) {
      throw new HttpRejection(429, refused.error, null, {
        'retry-after': String(refused.retryAfterSeconds),
      });
    }
  }

  private async checkToolCall(
    request: FastifyRequest,
    caller: McpCaller,
    message: JsonRpcRequest,
  ): Promise<void> {
    try {
      await this.access.checkToolCall(
        request,
        caller,
        message.params?.name,
        requestTraces.get(request),
      );
    } catch (err) {
      if (err instanceof AccessDenied) {
        throw new HttpRejection(err.status, err.error, message.id, err.headers);
      }
      throw err;
    }
  }

  private async postModern(
    request: FastifyRequest,
    reply: FastifyReply,
    classified: Classified,
    caller: McpCaller,
  ): Promise<void> {
    if (classified.kind !== 'request') {
      // Modern clients send notifications only over stdio; accept and ignore.
      void reply.code(202).send();
      return;
    }
    const message = classified.message;
    // The order of these checks is the spec's: envelope, headers, version, method.
    let envelope;
    try {
      envelope = this.engine.readEnvelope(message);
    } catch (err) {
      throw new HttpRejection(400, (err as McpError).toJson(), message.id);
    }
    const headerError = checkModernHeaders(request, message, envelope.protocolVersion);
    if (headerError) {
      throw new HttpRejection(400, headerError.toJson(), message.id);
    }
    try {
      this.engine.assertSupportedVersion(envelope);
    } catch (err) {
      throw new HttpRejection(400, (err as McpError).toJson(), message.id);
    }
    if (!MODERN_HTTP_METHODS.has(message.method)) {
      throw new HttpRejection(404, McpError.methodNotFound(message.method).toJson(), message.id);
    }
    // Against the caller's catalog: a tenant tool's declared headers, not a namesake's.
    const paramError = await this.engine.checkParamHeaders(
      message,
      (name) => headerValue(request.headers[name]),
      caller.principal,
    );
    if (paramError) {
      throw new HttpRejection(400, paramError.toJson(), message.id);
    }

    const cancellation = new Cancellation();
    const exchange = new PostExchange(
      request,
      reply,
      this.keepAliveMs,
      () => cancellation.cancel(),
      undefined,
      () => this.metrics.streamOpened('streamable-http'),
    );
    if (message.method === 'subscriptions/listen') {
      exchange.upgrade();
    }
    const response = await this.engine.handleModern(
      message,
      {
        outbound: { send: (m) => exchange.send(m) },
        cancellation,
        principal: caller.principal,
        trace: requestTraces.get(request),
      },
      envelope,
    );
    exchange.finish(response ? [response] : [], modernStatus(response));
  }

  private async initialize(
    request: FastifyRequest,
    reply: FastifyReply,
    message: JsonRpcRequest,
    caller: McpCaller,
  ): Promise<void> {
    const maxSessions = caller.tenant?.limits.maxSessions;
    if (
      caller.tenant &&
      maxSessions &&
      this.sessions.listByTenant(caller.tenant.id).length >= maxSessions
    ) {
      this.metrics.rateLimited('sessions');
      throw quotaRejection(
        new QuotaExceededError(
          `Too many open sessions for this tenant (limit ${maxSessions})`,
          5000,
          'sessions',
        ),
        message.id,
      );
    }
    let created;
    try {
      created = await this.sessions.create(message, caller.principal);
    } catch (err) {
      if (err instanceof McpError) {
        throw new HttpRejection(400, err.toJson(), message.id);
      }
      if (err instanceof SessionLimitError) {
        throw new HttpRejection(
          503,
          { code: ErrorCode.InternalError, message: err.message },
          message.id,
          {
            'retry-after': '5',
          },
        );
      }
      throw err;
    }
    void reply
      .code(200)
      .header(SESSION_HEADER, created.live.id)
      .type('application/json')
      .send(JSON.stringify(created.result));
  }

  private async postBatch(
    request: FastifyRequest,
    reply: FastifyReply,
    body: unknown[],
    caller: McpCaller,
  ): Promise<void> {
    const live = await this.requireSession(request, caller);
    if (live.session.protocolVersion !== '2025-03-26') {
      throw reject(
        400,
        ErrorCode.InvalidRequest,
        `Batches are not supported in protocol ${live.session.protocolVersion}`,
      );
    }
    if (body.length === 0) {
      throw reject(400, ErrorCode.InvalidRequest, 'Empty batch');
    }
    const messages = body.map(classify);
    if (messages.some((m) => m.kind === 'request' && m.message.method === 'initialize')) {
      throw reject(400, ErrorCode.InvalidRequest, 'initialize cannot be part of a batch');
    }
    for (const m of messages) {
      if (m.kind === 'request' && m.message.method === 'tools/call') {
        await this.checkToolCall(request, caller, m.message);
      }
    }
    return this.postLegacy(request, reply, live, messages);
  }

  private async postLegacy(
    request: FastifyRequest,
    reply: FastifyReply,
    live: LiveSession,
    messages: Classified[],
  ): Promise<void> {
    const requests = messages.filter(
      (m) => m.kind === 'request' || (m.kind === 'invalid' && m.responseTo === undefined),
    );
    if (requests.length === 0) {
      // Notifications and responses only: acknowledge before processing completes.
      for (const m of messages) {
        if (m.kind === 'response') {
          await this.sessions.deliverResponse(live, m.message);
        } else {
          await this.engine.handleSession(live.session, m, { outbound: { send: () => undefined } });
        }
      }
      if (messages.some((m) => m.kind === 'notification')) {
        await this.sessions.persist(live);
      } else {
        await this.sessions.touch(live);
      }
      void reply.code(202).header(SESSION_HEADER, live.id).send();
      return;
    }
    const exchange = new PostExchange(
      request,
      reply,
      this.keepAliveMs,
      undefined,
      {
        live,
        events: this.events,
        primeRetryMs: live.session.protocolVersion >= '2025-11-25' ? this.retryMs : undefined,
      },
      () => this.metrics.streamOpened('streamable-http'),
    );
    const responses = await Promise.all(
      messages.map(async (m) => {
        if (m.kind === 'response') {
          await this.sessions.deliverResponse(live, m.message);
          return undefined;
        }
        return this.engine.handleSession(live.session, m, {
          outbound: { send: (msg) => exchange.send(msg) },
          trace: requestTraces.get(request),
        });
      }),
    );
    const out = responses.filter((r): r is JsonRpcResponse => r !== undefined);
    if (messages.some((m) => m.kind === 'request' && STATEFUL_METHODS.has(m.message.method))) {
      await this.sessions.persist(live);
    } else {
      await this.sessions.touch(live);
    }
    exchange.finish(out, 200, Array.isArray(request.body));
  }

  // ---------------------------------------------------------------------------------------
  // GET and DELETE (2025 era only)

  private async get(
    request: FastifyRequest,
    reply: FastifyReply,
    caller: McpCaller,
  ): Promise<void> {
    if (request.headers[VERSION_HEADER] === MODERN_PROTOCOL_VERSION) {
      throw reject(
        405,
        ErrorCode.InvalidRequest,
        'GET is not supported in protocol 2026-07-28',
        undefined,
      );
    }
    if (!accepts(request.headers.accept ?? '', 'text/event-stream')) {
      throw reject(406, ErrorCode.InvalidRequest, 'Accept must list text/event-stream');
    }
    const live = await this.requireSession(request, caller);
    const versionProblem = checkLegacyVersionHeader(request, live);
    if (versionProblem) {
      throw versionProblem;
    }
    const lastEventId = headerValue(request.headers['last-event-id']);
    if (lastEventId !== undefined) {
      return this.resume(request, reply, live, lastEventId);
    }

    if (live.standalone?.attached) {
      throw reject(409, ErrorCode.InvalidRequest, 'A GET stream is already open for this session');
    }
    const stream = live.standalone ?? new SessionStream(live.standaloneStreamId, this.events, true);
    live.standalone = stream;
    reply.hijack();
    const streamClosed = this.metrics.streamOpened('streamable-http');
    const writer = new SseWriter(reply.raw, { [SESSION_HEADER]: live.id }, this.keepAliveMs, () => {
      streamClosed();
      stream.detach(writer);
    });
    stream.attach(writer);
    if (live.session.protocolVersion >= '2025-11-25') {
      writer.prime(`${stream.id}:0`, this.retryMs);
    }
    live.session.attachStandalone((message) => {
      void stream.send(message);
      return true;
    });
  }

  private async resume(
    request: FastifyRequest,
    reply: FastifyReply,
    live: LiveSession,
    lastEventId: string,
  ): Promise<void> {
    // Event ids are `<session>.<stream>:<seq>`: a client can only resume its own session's streams.
    if (!lastEventId.startsWith(`${live.id}.`)) {
      throw reject(400, ErrorCode.InvalidRequest, 'Last-Event-ID does not belong to this session');
    }
    const replay = await this.events.replayAfter(lastEventId);
    if (!replay) {
      throw reject(400, ErrorCode.InvalidRequest, 'Unknown Last-Event-ID');
    }
    const stream =
      replay.streamId === live.standaloneStreamId
        ? live.standalone
        : live.streams.get(replay.streamId);
    reply.hijack();
    const streamClosed = this.metrics.streamOpened('streamable-http');
    const writer = new SseWriter(reply.raw, { [SESSION_HEADER]: live.id }, this.keepAliveMs, () => {
      streamClosed();
      stream?.detach(writer);
    });
    for (const event of replay.events) {
      writer.event(JSON.stringify(event.message), event.id);
    }
    if (stream && !stream.finished) {
      stream.attach(writer);
    } else {
      writer.end();
    }
  }

  private async delete(
    request: FastifyRequest,
    reply: FastifyReply,
    caller: McpCaller,
  ): Promise<void> {
    if (request.headers[VERSION_HEADER] === MODERN_PROTOCOL_VERSION) {
      throw reject(405, ErrorCode.InvalidRequest, 'DELETE is not supported in protocol 2026-07-28');
    }
    const id = headerValue(request.headers[SESSION_HEADER]);
    if (id === undefined) {
      throw reject(400, ErrorCode.InvalidRequest, 'Mcp-Session-Id header is required');
    }
    const live = await this.sessions.find(id);
    if (!live || !ownedBy(live, caller) || !(await this.sessions.terminate(id))) {
      throw reject(404, ErrorCode.InvalidRequest, 'Session not found');
    }
    void reply.code(200).send();
  }

  private async requireSession(request: FastifyRequest, caller: McpCaller): Promise<LiveSession> {
    const id = headerValue(request.headers[SESSION_HEADER]);
    if (id === undefined) {
      throw reject(400, ErrorCode.InvalidRequest, 'Bad Request: Mcp-Session-Id header is required');
    }
    const live = await this.sessions.find(id);
    // Another principal's session is "not found": a session id is not a credential.
    if (!live || !ownedBy(live, caller)) {
      throw reject(404, ErrorCode.InvalidRequest, 'Session not found');
    }
    return live;
  }
}

function quotaRejection(err: QuotaExceededError, id: string | number | null = null): HttpRejection {
  return new HttpRejection(429, quotaError(err), id, {
    'retry-after': String(err.retryAfterSeconds),
  });
}

/**
 * A session belongs to the principal that initialized it (anonymous ones to nobody), through
 * the endpoint it was opened on: a session of a virtual server is unknown on the tenant's
 * endpoint and on every other server, and the tenant's sessions are unknown on its servers.
 */
function ownedBy(live: LiveSession, caller: McpCaller): boolean {
  const principal = live.session.principal;
  return (
    (principal?.id ?? '') === (caller.principal?.id ?? '') &&
    serverOfPrincipal(principal) === caller.server?.name
  );
}

/** Methods whose handling changes saved session state. */
const STATEFUL_METHODS = new Set([
  'logging/setLevel',
  'resources/subscribe',
  'resources/unsubscribe',
]);

const MODERN_HTTP_METHODS = new Set([
  'server/discover',
  'subscriptions/listen',
  'tools/list',
  'tools/call',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'prompts/list',
  'prompts/get',
  'completion/complete',
  // The tasks extension (io.modelcontextprotocol/tasks); the engine refuses them to a request
  // that did not declare it.
  'tasks/get',
  'tasks/update',
  'tasks/cancel',
]);

interface LegacyStreamOptions {
  live: LiveSession;
  events: EventStore;
  primeRetryMs?: number;
}

/**
 * The answer to one POST: plain JSON when the handler finished without sending anything
 * first, otherwise an SSE stream that carries the request's messages and then its response.
 */
class PostExchange {
  private writer?: SseWriter;
  private stream?: SessionStream;
  private done = false;

  constructor(
    private readonly request: FastifyRequest,
    private readonly reply: FastifyReply,
    private readonly keepAliveMs: number,
    private readonly onClientGone?: () => void,
    private readonly legacy?: LegacyStreamOptions,
    /** Counts the SSE stream this exchange may upgrade to; returns the uncount. */
    private readonly streamOpened?: () => () => void,
  ) {
    if (onClientGone) {
      reply.raw.on('close', () => {
        if (!this.done) {
          onClientGone();
        }
      });
    }
  }

  upgrade(): void {
    if (this.writer || this.done) {
      return;
    }
    this.reply.hijack();
    const headers: Record<string, string> = {};
    const legacy = this.legacy;
    if (legacy) {
      headers[SESSION_HEADER] = legacy.live.id;
    }
    const streamClosed = this.streamOpened?.();
    const writer = new SseWriter(this.reply.raw, headers, this.keepAliveMs, () => {
      streamClosed?.();
      this.stream?.detach(writer);
    });
    this.writer = writer;
    if (legacy) {
      const stream = new SessionStream(legacy.live.newStreamId(), legacy.events, true);
      legacy.live.streams.set(stream.id, stream);
      stream.attach(writer);
      this.stream = stream;
      if (legacy.primeRetryMs !== undefined) {
        writer.prime(`${stream.id}:0`, legacy.primeRetryMs);
      }
    }
  }

  send(message: JsonRpcMessage): Promise<void> | void {
    if (this.done) {
      return;
    }
    this.upgrade();
    if (this.stream) {
      return this.stream.send(message);
    }
    this.writer?.event(JSON.stringify(message));
  }

  finish(responses: JsonRpcResponse[], status: number, asArray = false): void {
    if (this.done) {
      return;
    }
    if (!this.writer && responses.length === 0) {
      // A request that was cancelled gets no response, but a POST that carried a request
      // must still be answered with JSON or SSE: an SSE stream that ends empty says both.
      if (this.reply.raw.destroyed) {
        this.done = true;
        return;
      }
      this.upgrade();
    }
    if (!this.writer) {
      this.done = true;
      if (this.reply.raw.destroyed) {
        return;
      }
      const payload = asArray ? responses : responses[0];
      if (this.legacy) {
        this.reply.header(SESSION_HEADER, this.legacy.live.id);
      }
      void this.reply.code(status).type('application/json').send(JSON.stringify(payload));
      return;
    }
    const stream = this.stream;
    if (stream) {
      for (const response of responses) {
        void stream.send(response);
      }
      void stream.flushed().then(() => {
        this.done = true;
        stream.close();
        this.legacy?.live.streams.delete(stream.id);
      });
    } else {
      for (const response of responses) {
        this.writer.event(JSON.stringify(response));
      }
      this.done = true;
      this.writer.end();
    }
  }
}

/**
 * Picks the era of a POST: a 2026-07-28 request names its version in `_meta` (and a
 * non-2025 MCP-Protocol-Version header means a client of a newer revision); everything else
 * is a 2025-era message. Mcp-Session-Id does not decide: modern clients ignore sessions.
 */
function isModern(classified: Classified, request: FastifyRequest): boolean {
  if (classified.kind === 'response') {
    return false;
  }
  const header = headerValue(request.headers[VERSION_HEADER]);
  if (header !== undefined && !(LEGACY_PROTOCOL_VERSIONS as readonly string[]).includes(header)) {
    return true;
  }
  if (classified.kind === 'invalid') {
    return false;
  }
  const meta = classified.message.params?._meta;
  return typeof meta === 'object' && meta !== null && META.protocolVersion in meta;
}

function modernStatus(response: JsonRpcResponse | undefined): number {
  if (!response || !('error' in response)) {
    return 200;
  }
  switch (response.error.code) {
    case ErrorCode.MethodNotFound:
      return 404;
    case ErrorCode.HeaderMismatch:
    case ErrorCode.MissingClientCapability:
    case ErrorCode.UnsupportedProtocolVersion:
    case ErrorCode.InvalidRequest:
    case ErrorCode.InvalidParams:
      return 400;
    default:
      return 200;
  }
}

/** Checks MCP-Protocol-Version, Mcp-Method and Mcp-Name against the body (2026-07-28). */
function checkModernHeaders(
  request: FastifyRequest,
  message: JsonRpcRequest,
  version: string,
): McpError | undefined {
  const headerVersion = headerValue(request.headers[VERSION_HEADER]);
  if (headerVersion !== version) {
    return new McpError(
      ErrorCode.HeaderMismatch,
      headerVersion === undefined
        ? 'MCP-Protocol-Version header is required'
        : `MCP-Protocol-Version header (${headerVersion}) does not match _meta (${version})`,
    );
  }
  const method = headerValue(request.headers[METHOD_HEADER]);
  if (method !== message.method) {
    return new McpError(
      ErrorCode.HeaderMismatch,
      method === undefined
        ? 'Mcp-Method header is required'
        : `Mcp-Method header (${method}) does not match the body`,
    );
  }
  const nameField = NAMED_METHODS[message.method];
  if (nameField) {
    const raw = headerValue(request.headers[NAME_HEADER]);
    const expected = message.params?.[nameField];
    if (raw === undefined) {
      return new McpError(ErrorCode.HeaderMismatch, 'Mcp-Name header is required');
    }
    const name = decodeHeaderValue(raw);
    if (name !== expected) {
      return new McpError(
        ErrorCode.HeaderMismatch,
        `Mcp-Name header does not match params.${nameField}`,
      );
    }
  }
  return undefined;
}

function checkLegacyVersionHeader(
  request: FastifyRequest,
  live: LiveSession,
): HttpRejection | undefined {
  const header = headerValue(request.headers[VERSION_HEADER]);
  if (header === undefined) {
    return undefined;
  } // 2025-03-26 clients and older send none
  if (!(LEGACY_PROTOCOL_VERSIONS as readonly string[]).includes(header)) {
    return reject(400, ErrorCode.InvalidRequest, `Unsupported MCP-Protocol-Version: ${header}`, {
      supported: LEGACY_PROTOCOL_VERSIONS,
      requested: header,
    });
  }
  if (header !== live.session.protocolVersion && header !== DEFAULT_LEGACY_HTTP_VERSION) {
    return reject(
      400,
      ErrorCode.InvalidRequest,
      `MCP-Protocol-Version ${header} does not match the session's ${live.session.protocolVersion}`,
    );
  }
  return undefined;
}

/** The method label of a request: the JSON-RPC method of a POST, else the HTTP verb. */
function methodLabel(request: FastifyRequest): string {
  switch (request.method) {
    case 'GET':
      return 'get';
    case 'DELETE':
      return 'delete';
    default:
      return mcpMethodOf(request.body);
  }
}

/** 4xx are refusals (auth, quota, protocol checks); 5xx are the gateway's own failures. */
function outcomeOf(status: number): McpOutcome {
  return status < 400 ? 'ok' : status < 500 ? 'rejected' : 'error';
}

function headerValue(value: string | string[] | undefined): string | undefined {
  if (Array.isArray(value)) {
    return value[0];
  }
  return value === undefined || value === '' ? undefined : value;
}

function accepts(accept: string, type: string): boolean {
  if (accept.includes(type) || accept.includes('*/*')) {
    return true;
  }
  const major = type.slice(0, type.indexOf('/'));
  return accept.includes(`${major}/*`);
}

function isJsonContentType(value: string | undefined): boolean {
  if (!value) {
    return false;
  }
  return value.split(';')[0].trim().toLowerCase() === 'application/json';
}

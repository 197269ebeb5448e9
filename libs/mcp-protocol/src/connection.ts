/*
 * A bidirectional message stream (stdio, WebSocket) speaking either era. Before `initialize`
 * each request with the 2026-07-28 envelope is served statelessly; `initialize` selects the
 * 2025 era for the rest of the connection. Cancellation is `notifications/cancelled` in both
 * eras here, since there is no per-request stream to close.
 */
import { randomBytes } from 'node:crypto';
import { Cancellation } from './cancellation';
import { ErrorCode, META } from './constants';
import type { Principal } from './catalog';
import type { McpEngine } from './engine';
import {
  Classified,
  JsonObject,
  JsonRpcMessage,
  JsonRpcResponse,
  McpError,
  PARSE_ERROR_RESPONSE,
  RequestId,
  classify,
  errorResponse,
  toErrorObject,
} from './jsonrpc';
import type { LegacySession } from './session';

export interface ConnectionOptions {
  /** Writes one message to the peer; may apply backpressure by returning a promise. */
  send: (message: JsonRpcMessage | JsonRpcResponse[]) => void | Promise<void>;
  principal?: Principal;
}

/** Marks a frame that was not valid JSON; `receive(PARSE_ERROR)` answers -32700. */
export const PARSE_ERROR = Symbol('parse-error');

export class McpConnection {
  private session?: LegacySession;
  private readonly modern = new Map<RequestId, Cancellation>();
  private closed = false;
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly engine: McpEngine,
    private readonly options: ConnectionOptions,
  ) {}

  /** The 2025-era session, once `initialize` selected it. */
  get legacySession(): LegacySession | undefined {
    return this.session;
  }

  /** Requests still being served. */
  get inFlight(): number {
    return this.modern.size + (this.session?.inFlightCount ?? 0);
  }

  /**
   * Handles one decoded frame (or PARSE_ERROR). Resolves when its answer, if any, was sent;
   * callers need not await it: messages are served concurrently, like any MCP peer expects.
   */
  receive(value: unknown): Promise<void> {
    const work = this.handle(value).catch(() => undefined);
    this.pending.add(work);
    void work.finally(() => this.pending.delete(work));
    return work;
  }

  /** Waits for in-flight requests to finish (for a graceful shutdown), up to `timeoutMs`. */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.pending.size > 0 && Date.now() < deadline) {
      await Promise.race([
        Promise.all([...this.pending]),
        new Promise((r) => setTimeout(r, Math.max(1, deadline - Date.now()))),
      ]);
    }
    return this.pending.size === 0;
  }

  /** Cancels everything still running; later frames are ignored. */
  close(): void {
    if (this.closed) {
      return;
    }
    this.closed = true;
    for (const cancellation of this.modern.values()) {
      cancellation.cancel(new McpError(ErrorCode.RequestCancelled, 'Connection closed'));
    }
    this.modern.clear();
    this.session?.close();
  }

  private async handle(value: unknown): Promise<void> {
    if (this.closed) {
      return;
    }
    if (value === PARSE_ERROR) {
      return this.send(PARSE_ERROR_RESPONSE);
    }
    if (Array.isArray(value)) {
      return this.batch(value);
    }
    const response = await this.dispatch(classify(value));
    if (response) {
      await this.send(response);
    }
  }

  private async batch(values: unknown[]): Promise<void> {
    if (!this.session || this.session.protocolVersion !== '2025-03-26') {
      return this.send(
        errorResponse(null, {
          code: ErrorCode.InvalidRequest,
          message: 'Batches are only supported in protocol 2025-03-26',
        }),
      );
    }
    if (values.length === 0) {
      return this.send(
        errorResponse(null, { code: ErrorCode.InvalidRequest, message: 'Empty batch' }),
      );
    }
    const responses = await Promise.all(values.map((v) => this.dispatch(classify(v))));
    const out = responses.filter((r): r is JsonRpcResponse => r !== undefined);
    if (out.length > 0 && !this.closed) {
      await this.options.send(out);
    }
  }

  private async dispatch(classified: Classified): Promise<JsonRpcResponse | undefined> {
    const outbound = { send: (message: JsonRpcMessage) => this.send(message) };
    if (this.session) {
      if (classified.kind === 'request' && classified.message.method === 'initialize') {
        return errorResponse(classified.message.id, {
          code: ErrorCode.InvalidRequest,
          message: 'Already initialized',
        });
      }
      return this.engine.handleSession(this.session, classified, { outbound });
    }
    switch (classified.kind) {
      case 'invalid':
        return classified.responseTo !== undefined
          ? undefined
          : errorResponse(classified.id, classified.error);
      case 'response':
        return undefined; // the modern era has no server-to-client requests to answer
      case 'notification': {
        if (classified.message.method === 'notifications/cancelled') {
          const id = classified.message.params?.requestId;
          if (typeof id === 'string' || typeof id === 'number') {
            this.modern.get(id)?.cancel();
          }
        }
        return undefined;
      }
      case 'request':
        break;
    }
    const request = classified.message;
    if (request.method === 'initialize') {
      try {
        const id = randomBytes(16).toString('base64url');
        const { session, result } = this.engine.initialize(request, id, this.options.principal);
        this.session = session;
        this.engine.watchSession(session);
        session.attachStandalone((message) => {
          void this.send(message);
          return true;
        });
        return { jsonrpc: '2.0', id: request.id, result };
      } catch (err) {
        return errorResponse(request.id, toErrorObject(err));
      }
    }
    if (!hasEnvelope(request.params) && request.method !== 'server/discover') {
      return errorResponse(request.id, {
        code: ErrorCode.InvalidRequest,
        message: `Send initialize first, or the ${META.protocolVersion} _meta envelope`,
      });
    }
    if (this.modern.has(request.id)) {
      return errorResponse(request.id, {
        code: ErrorCode.InvalidRequest,
        message: `Request id ${JSON.stringify(request.id)} is already in flight`,
      });
    }
    const cancellation = new Cancellation();
    this.modern.set(request.id, cancellation);
    try {
      return await this.engine.handleModern(request, {
        outbound,
        cancellation,
        principal: this.options.principal,
      });
    } finally {
      if (this.modern.get(request.id) === cancellation) {
        this.modern.delete(request.id);
      }
    }
  }

  private async send(message: JsonRpcMessage): Promise<void> {
    if (!this.closed) {
      await this.options.send(message);
    }
  }
}

function hasEnvelope(params: JsonObject | undefined): boolean {
  const meta = params?._meta;
  return typeof meta === 'object' && meta !== null && META.protocolVersion in meta;
}

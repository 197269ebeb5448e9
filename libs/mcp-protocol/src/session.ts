/*
 * The node-local runtime of one 2025-era session: negotiated version and capabilities, the
 * requests in flight (for duplicate-id detection and cancellation) and the server-to-client
 * requests awaiting an answer. Serialisable facts live in `SessionInfo` so a shared store can
 * hold them; the rest is the behaviour of a live session on this node.
 */
import { Cancellation } from './cancellation';
import { ErrorCode, LegacyProtocolVersion, LogLevel } from './constants';
import { JsonObject, JsonRpcMessage, JsonRpcResponse, McpError, RequestId } from './jsonrpc';
import type { Principal } from './catalog';
import type { ClientCapabilities, Implementation } from './types';

export interface SessionInfo {
  id: string;
  protocolVersion: LegacyProtocolVersion;
  clientCapabilities: ClientCapabilities;
  clientInfo?: Implementation;
  principal?: Principal;
  initialized: boolean;
  logLevel?: LogLevel;
  subscriptions: string[];
  createdAt: number;
}

/** Delivers messages that belong to no request (list_changed, resource updates). */
export type StandaloneSink = (message: JsonRpcMessage) => boolean;

interface PendingOutbound {
  resolve: (result: JsonObject) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
  undoCancel: () => void;
}

export class LegacySession {
  readonly id: string;
  readonly protocolVersion: LegacyProtocolVersion;
  readonly clientCapabilities: ClientCapabilities;
  readonly clientInfo?: Implementation;
  readonly principal?: Principal;
  readonly createdAt: number;
  initialized = false;
  logLevel?: LogLevel;
  readonly subscriptions = new Set<string>();
  lastActivity = Date.now();
  closed = false;
  private readonly inFlight = new Map<RequestId, Cancellation>();
  private readonly pending = new Map<RequestId, PendingOutbound>();
  private nextOutboundId = 0;
  private standalone?: StandaloneSink;
  private readonly closeListeners = new Set<() => void>();

  constructor(info: Omit<SessionInfo, 'initialized' | 'subscriptions' | 'createdAt'>) {
    this.id = info.id;
    this.protocolVersion = info.protocolVersion;
    this.clientCapabilities = info.clientCapabilities;
    this.clientInfo = info.clientInfo;
    this.principal = info.principal;
    this.logLevel = info.logLevel;
    this.createdAt = Date.now();
  }

  toInfo(): SessionInfo {
    return {
      id: this.id,
      protocolVersion: this.protocolVersion,
      clientCapabilities: this.clientCapabilities,
      clientInfo: this.clientInfo,
      principal: this.principal,
      initialized: this.initialized,
      logLevel: this.logLevel,
      subscriptions: [...this.subscriptions],
      createdAt: this.createdAt,
    };
  }

  /** Registers a request; throws when its id is already in flight on this session. */
  begin(id: RequestId): Cancellation {
    if (this.inFlight.has(id)) {
      throw McpError.invalidRequest(`Request id ${JSON.stringify(id)} is already in flight`);
    }
    const cancellation = new Cancellation();
    this.inFlight.set(id, cancellation);
    this.lastActivity = Date.now();
    return cancellation;
  }

  end(id: RequestId, cancellation: Cancellation): void {
    if (this.inFlight.get(id) === cancellation) {
      this.inFlight.delete(id);
    }
    this.lastActivity = Date.now();
  }

  cancel(id: RequestId, reason?: string): boolean {
    const cancellation = this.inFlight.get(id);
    if (!cancellation) {
      return false;
    }
    cancellation.cancel(new McpError(ErrorCode.RequestCancelled, reason ?? 'Request cancelled'));
    return true;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Sends a server-to-client request through `send` and waits for the client's response. */
  request(
    method: string,
    params: JsonObject,
    send: (message: JsonRpcMessage) => void | Promise<void>,
    cancellation: Cancellation,
    timeoutMs: number,
  ): Promise<JsonObject> {
    if (this.closed) {
      return Promise.reject(new McpError(ErrorCode.InternalError, 'Session closed'));
    }
    if (cancellation.cancelled) {
      return Promise.reject(cancellation.reason);
    }
    const id = `portico-${this.nextOutboundId++}`;
    return new Promise<JsonObject>((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(entry.timer);
        entry.undoCancel();
        this.pending.delete(id);
      };
      const entry: PendingOutbound = {
        resolve: (result) => {
          cleanup();
          resolve(result);
        },
        reject: (error) => {
          cleanup();
          reject(error);
        },
        timer: setTimeout(() => {
          entry.reject(
            new McpError(
              ErrorCode.InternalError,
              `Client did not answer ${method} within ${timeoutMs} ms`,
            ),
          );
        }, timeoutMs),
        undoCancel: noop,
      };
      entry.undoCancel = cancellation.onCancel((reason) => entry.reject(reason as Error));
      this.pending.set(id, entry);
      Promise.resolve(send({ jsonrpc: '2.0', id, method, params })).catch((err: unknown) =>
        entry.reject(err instanceof Error ? err : new Error(String(err))),
      );
    });
  }

  /** Delivers a client's response to a server-to-client request; false when unknown. */
  resolveResponse(response: JsonRpcResponse): boolean {
    if (response.id === null) {
      return false;
    }
    const entry = this.pending.get(response.id);
    if (!entry) {
      return false;
    }
    if ('error' in response) {
      entry.reject(new McpError(response.error.code, response.error.message, response.error.data));
    } else {
      entry.resolve(response.result);
    }
    this.lastActivity = Date.now();
    return true;
  }

  attachStandalone(sink: StandaloneSink): () => void {
    this.standalone = sink;
    return () => {
      if (this.standalone === sink) {
        this.standalone = undefined;
      }
    };
  }

  get hasStandalone(): boolean {
    return this.standalone !== undefined;
  }

  sendStandalone(message: JsonRpcMessage): boolean {
    return this.standalone ? this.standalone(message) : false;
  }

  onClose(listener: () => void): void {
    this.closeListeners.add(listener);
  }

  close(): void {
    if (this.closed) {
      return;
    }
    this.closed = true;
    for (const cancellation of this.inFlight.values()) {
      cancellation.cancel(new McpError(ErrorCode.RequestCancelled, 'Session closed'));
    }
    this.inFlight.clear();
    for (const entry of [...this.pending.values()]) {
      entry.reject(new McpError(ErrorCode.InternalError, 'Session closed'));
    }
    for (const listener of this.closeListeners) {
      listener();
    }
    this.closeListeners.clear();
    this.standalone = undefined;
  }
}

function noop(): void {}

/*
 * MCP over WebSocket for the SDK clients in Node: one JSON-RPC message per text frame,
 * subprotocol `mcp`, on the `ws` package (Node 20 has no global WebSocket).
 *
 * Message timing follows the browser's WebSocket, where each message event is its own task.
 * `ws` emits every frame of a network chunk synchronously, one after another; both SDK majors
 * settle a response synchronously but run notification handlers a microtask later, so a
 * notifications/progress that shares a chunk with its response would reach a progress handler
 * the response has already removed (the notification is then reported as "unknown token").
 */
import {
  parseJSONRPCMessage,
  type JSONRPCMessage,
  type Transport,
} from '@modelcontextprotocol/client';
import WebSocket from 'ws';

export const MCP_SUBPROTOCOL = 'mcp';

/** `ws` with browser timing: each message (and the close after them) is dispatched as a task. */
export class TaskPerMessageWebSocket extends WebSocket {
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event !== 'message' && event !== 'close') {
      return super.emit(event, ...args);
    }
    setImmediate(() => super.emit(event, ...args));
    return this.listenerCount(event) > 0;
  }
}

/**
 * Installs TaskPerMessageWebSocket as the global WebSocket, which SDK v1's
 * WebSocketClientTransport constructs; returns the undo.
 */
export function installGlobalWebSocket(): () => void {
  const globals = globalThis as { WebSocket?: unknown };
  const previous = globals.WebSocket;
  globals.WebSocket = TaskPerMessageWebSocket;
  return () => {
    globals.WebSocket = previous;
  };
}

/**
 * The client transport SDK v2 lacks (@modelcontextprotocol/client ships Streamable HTTP, legacy
 * SSE, stdio and in-memory ones). The socket is one shared channel, so `hasPerRequestStream`
 * stays unset and the client cancels with notifications/cancelled in both eras.
 */
export class WebSocketClientTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  private socket?: WebSocket;

  constructor(
    private readonly url: URL,
    private readonly options: WebSocket.ClientOptions = {},
  ) {}

  /** The subprotocol the server selected (empty before the handshake). */
  get protocol(): string {
    return this.socket?.protocol ?? '';
  }

  start(): Promise<void> {
    if (this.socket) {
      throw new Error('WebSocketClientTransport already started');
    }
    const socket = new TaskPerMessageWebSocket(this.url, [MCP_SUBPROTOCOL], this.options);
    this.socket = socket;
    socket.on('message', (data: WebSocket.RawData, isBinary: boolean) =>
      this.receive(data, isBinary),
    );
    socket.on('close', () => this.onclose?.());
    return new Promise<void>((resolve, reject) => {
      socket.once('open', () => {
        socket.off('error', reject);
        socket.on('error', (err) => this.onerror?.(err));
        resolve();
      });
      socket.once('error', reject);
    });
  }

  send(message: JSONRPCMessage): Promise<void> {
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error('WebSocket is not open'));
    }
    return new Promise<void>((resolve, reject) =>
      socket.send(JSON.stringify(message), (err) => (err ? reject(err) : resolve())),
    );
  }

  async close(): Promise<void> {
    const socket = this.socket;
    if (!socket || socket.readyState === WebSocket.CLOSED) {
      return;
    }
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.close(1000, 'Client closed');
    await closed;
  }

  private receive(data: WebSocket.RawData, isBinary: boolean): void {
    if (isBinary) {
      this.onerror?.(new Error('Unexpected binary frame'));
      return;
    }
    let message: JSONRPCMessage;
    try {
      message = parseJSONRPCMessage(JSON.parse(rawText(data)));
    } catch (err) {
      this.onerror?.(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.onmessage?.(message);
  }
}

function rawText(data: WebSocket.RawData): string {
  return Array.isArray(data)
    ? Buffer.concat(data).toString('utf8')
    : Buffer.from(data as ArrayBuffer).toString('utf8');
}

import {
  parseJSONRPCMessage,
  type JSONRPCMessage,
  type Transport,
} from '@modelcontextprotocol/client';
import WebSocket from 'ws';

/** The WebSocket subprotocol of MCP (the SDK v1 transport's and Portico's own endpoint's). */
export const MCP_WS_SUBPROTOCOL = 'mcp';

export interface WebSocketClientTransportOptions {
  /** Sent on the upgrade request (credentials): never logged. */
  readonly headers?: Record<string, string>;
  /** Budget for the TCP connect, TLS and upgrade. */
  readonly handshakeTimeoutMs: number;
  /** Largest message accepted from the server, in bytes. */
  readonly maxPayload: number;
}

/**
 * MCP over one WebSocket (subprotocol `mcp`, one JSON-RPC message per text frame), with
 * headers on the upgrade request, which the SDK's own WebSocket transport cannot send.
 */
export class WebSocketClientTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  private socket?: WebSocket;

  constructor(
    private readonly url: URL,
    private readonly options: WebSocketClientTransportOptions,
  ) {}

  start(): Promise<void> {
    if (this.socket) {
      throw new Error('WebSocketClientTransport already started');
    }
    return new Promise((resolve, reject) => {
      let open = false;
      const socket = new WebSocket(this.url, MCP_WS_SUBPROTOCOL, {
        headers: this.options.headers,
        handshakeTimeout: this.options.handshakeTimeoutMs,
        maxPayload: this.options.maxPayload,
        followRedirects: false,
        perMessageDeflate: false,
      });
      this.socket = socket;
      // ws itself fails the handshake when the server does not choose the subprotocol.
      socket.on('open', () => {
        open = true;
        resolve();
      });
      socket.on('error', (err) => {
        if (!open) {
          // ws quotes the status line only ("Unexpected server response: 401"), no headers.
          reject(err);
          return;
        }
        this.onerror?.(err);
      });
      socket.on('message', (data, isBinary) => this.receive(data, isBinary));
      socket.on('close', () => {
        if (this.socket === socket) {
          this.socket = undefined;
        }
        if (open) {
          this.onclose?.();
        }
      });
    });
  }

  send(message: JSONRPCMessage): Promise<void> {
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error('WebSocket not connected'));
    }
    return new Promise((resolve, reject) => {
      socket.send(JSON.stringify(message), (err) => (err ? reject(err) : resolve()));
    });
  }

  close(): Promise<void> {
    const socket = this.socket;
    if (!socket || socket.readyState === WebSocket.CLOSED) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      // A peer that never completes the closing handshake is cut off after a short grace.
      const grace = setTimeout(() => socket.terminate(), 1000);
      grace.unref();
      socket.once('close', () => {
        clearTimeout(grace);
        resolve();
      });
      if (socket.readyState === WebSocket.CONNECTING) {
        socket.terminate();
      } else {
        socket.close(1000);
      }
    });
  }

  private receive(data: WebSocket.RawData, isBinary: boolean): void {
    if (isBinary) {
      this.onerror?.(new Error('unexpected binary WebSocket frame'));
      return;
    }
    let message: JSONRPCMessage;
    try {
      const bytes = Array.isArray(data)
        ? Buffer.concat(data)
        : Buffer.isBuffer(data)
          ? data
          : Buffer.from(data);
      const text = bytes.toString('utf8');
      message = parseJSONRPCMessage(JSON.parse(text));
    } catch (err) {
      this.onerror?.(new Error(`invalid JSON-RPC message: ${(err as Error).message}`));
      return;
    }
    this.onmessage?.(message);
  }
}

import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import {
  JsonRpcMessage,
  JsonRpcResponse,
  McpConnection,
  McpEngine,
  PARSE_ERROR,
  Principal,
} from '@portico/mcp-protocol';

export interface StdioServerOptions {
  input: Readable;
  output: Writable;
  /** Longest accepted line in bytes; longer frames get -32600 and are dropped. */
  maxLineBytes: number;
  /** How long in-flight calls may take to finish once input ends or a signal arrives. */
  graceMs: number;
  log: (level: 'info' | 'warn' | 'error', message: string) => void;
  /** The authenticated caller (`portico stdio --tenant`); absent on the anonymous catalog. */
  principal?: Principal;
}

/**
 * MCP over stdio: newline-delimited JSON-RPC on stdin/stdout. stdout carries protocol messages
 * only; everything else goes through `log` (stderr). Writes honour backpressure and keep order.
 */
export class StdioServer {
  private readonly connection: McpConnection;
  private tail: Promise<void> = Promise.resolve();
  private stopping?: Promise<void>;

  constructor(
    engine: McpEngine,
    private readonly options: StdioServerOptions,
  ) {
    this.connection = new McpConnection(engine, {
      send: (m) => this.write(m),
      principal: options.principal,
    });
  }

  /** Serves until input ends or `stop()` is called; resolves when everything was written. */
  async run(): Promise<void> {
    const lines = createInterface({ input: this.options.input, crlfDelay: Infinity });
    lines.on('line', (line) => this.onLine(line));
    await new Promise<void>((resolve) => lines.once('close', resolve));
    await this.stop('stdin closed');
  }

  /** Finishes (or, after the grace period, cancels) in-flight calls, then flushes output. */
  stop(reason: string): Promise<void> {
    this.stopping ??= (async () => {
      const inFlight = this.connection.inFlight;
      if (inFlight > 0) {
        this.options.log('info', `${reason}: waiting for ${inFlight} call(s) to finish`);
      }
      const finished = await this.connection.drain(this.options.graceMs);
      if (!finished) {
        this.options.log(
          'warn',
          `${reason}: cancelling calls still running after ${this.options.graceMs} ms`,
        );
      }
      this.connection.close();
      await this.tail;
    })();
    return this.stopping;
  }

  private onLine(line: string): void {
    if (line.trim() === '') {
      return;
    }
    if (Buffer.byteLength(line) > this.options.maxLineBytes) {
      void this.write({
        jsonrpc: '2.0',
        id: null,
        error: { code: -32600, message: `Message exceeds ${this.options.maxLineBytes} bytes` },
      });
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      value = PARSE_ERROR;
    }
    if (this.stopping && isRequest(value)) {
      // Draining: in-flight calls may still get their answers (responses, cancellations),
      // but no new work starts.
      void this.write({
        jsonrpc: '2.0',
        id: value.id,
        error: { code: -32603, message: 'Server is shutting down' },
      });
      return;
    }
    void this.connection.receive(value);
  }

  private write(message: JsonRpcMessage | JsonRpcResponse[]): Promise<void> {
    const frame = `${JSON.stringify(message)}\n`;
    this.tail = this.tail.then(
      () =>
        new Promise<void>((resolve) => {
          const output = this.options.output;
          if (output.destroyed || output.writableEnded) {
            resolve();
            return;
          }
          if (output.write(frame)) {
            resolve();
          } else {
            output.once('drain', resolve);
          }
        }),
    );
    return this.tail;
  }
}

function isRequest(value: unknown): value is { id: string | number } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return false;
  }
  const v = value as { method?: unknown; id?: unknown };
  return typeof v.method === 'string' && (typeof v.id === 'string' || typeof v.id === 'number');
}

import type { ServerResponse } from 'node:http';

export const SSE_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  // Proxies such as nginx buffer responses unless told otherwise.
  'x-accel-buffering': 'no',
} as const;

/**
 * Server-Sent Events over one HTTP response: events, comments as keep-alives, and a clean end.
 * Writes after the peer went away are dropped; `closed` tells the owner.
 */
export class SseWriter {
  private keepAlive?: NodeJS.Timeout;
  private ended = false;

  constructor(
    private readonly raw: ServerResponse,
    headers: Record<string, string>,
    keepAliveMs: number,
    onClose: () => void,
  ) {
    // HTTP/2 forbids connection-specific headers such as Connection.
    const base: Record<string, string> = { ...SSE_HEADERS };
    if (raw.req?.httpVersionMajor === 2) {
      delete base.connection;
    }
    raw.writeHead(200, { ...base, ...headers });
    raw.flushHeaders();
    raw.on('close', () => {
      this.stop();
      onClose();
    });
    this.keepAlive = setInterval(() => this.write(': keep-alive\n\n'), keepAliveMs);
    this.keepAlive.unref();
  }

  get closed(): boolean {
    return this.ended || this.raw.destroyed || this.raw.writableEnded;
  }

  event(data: string, id?: string, retryMs?: number): void {
    let frame = '';
    if (id !== undefined) {
      frame += `id: ${id}\n`;
    }
    if (retryMs !== undefined) {
      frame += `retry: ${retryMs}\n`;
    }
    frame += `event: message\ndata: ${data}\n\n`;
    this.write(frame);
  }

  /** An event of another type than `message` (the legacy transport's `endpoint`). */
  named(event: string, data: string): void {
    this.write(`event: ${event}\ndata: ${data}\n\n`);
  }

  /** A priming event: an id the client can resume from, and no data. */
  prime(id: string, retryMs: number): void {
    this.write(`id: ${id}\nretry: ${retryMs}\ndata: \n\n`);
  }

  end(): void {
    if (this.ended) {
      return;
    }
    this.stop();
    this.ended = true;
    if (!this.raw.destroyed) {
      this.raw.end();
    }
  }

  private write(chunk: string): void {
    if (this.closed) {
      return;
    }
    this.raw.write(chunk);
  }

  private stop(): void {
    if (this.keepAlive) {
      clearInterval(this.keepAlive);
    }
    this.keepAlive = undefined;
  }
}

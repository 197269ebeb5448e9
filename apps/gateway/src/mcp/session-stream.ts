import type { JsonRpcMessage } from '@portico/mcp-protocol';
import type { EventStore } from '@portico/session';
import type { SseWriter } from './sse-writer';

/**
 * One logical SSE stream of a 2025-era session: a POST's response stream or the GET stream.
 * Its events are kept in the EventStore so a client that lost the connection can resume with
 * Last-Event-ID; while no connection is attached, events are only stored.
 */
export class SessionStream {
  private writer?: SseWriter;
  private tail: Promise<void> = Promise.resolve();
  finished = false;

  constructor(
    readonly id: string,
    private readonly events: EventStore,
    readonly resumable: boolean,
  ) {}

  get attached(): boolean {
    return this.writer !== undefined && !this.writer.closed;
  }

  attach(writer: SseWriter): void {
    this.writer = writer;
  }

  detach(writer: SseWriter): void {
    if (this.writer === writer) {
      this.writer = undefined;
    }
  }

  /** Sends in order; storing an event never reorders the stream. */
  send(message: JsonRpcMessage): Promise<void> {
    this.tail = this.tail.then(async () => {
      const data = JSON.stringify(message);
      const eventId = this.resumable ? await this.events.append(this.id, message) : undefined;
      this.writer?.event(data, eventId);
    });
    return this.tail;
  }

  /** Resolves when everything sent so far has been written or stored. */
  flushed(): Promise<void> {
    return this.tail;
  }

  close(): void {
    this.finished = true;
    this.writer?.end();
    this.writer = undefined;
  }
}

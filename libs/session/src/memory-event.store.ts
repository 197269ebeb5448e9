import type { JsonRpcMessage } from '@portico/mcp-protocol';
import type { EventStore, StoredEvent } from './session.ports';

/** A bounded ring of events per stream; the oldest are dropped first. */
export class MemoryEventStore implements EventStore {
  private readonly streams = new Map<string, { seq: number; events: StoredEvent[] }>();

  constructor(private readonly maxEventsPerStream = 1000) {}

  append(streamId: string, message: JsonRpcMessage): Promise<string> {
    let stream = this.streams.get(streamId);
    if (!stream) {
      stream = { seq: 0, events: [] };
      this.streams.set(streamId, stream);
    }
    const id = `${streamId}:${++stream.seq}`;
    stream.events.push({ id, message });
    if (stream.events.length > this.maxEventsPerStream) {
      stream.events.shift();
    }
    return Promise.resolve(id);
  }

  replayAfter(
    lastEventId: string,
  ): Promise<{ streamId: string; events: StoredEvent[] } | undefined> {
    const sep = lastEventId.lastIndexOf(':');
    if (sep <= 0) {
      return Promise.resolve(undefined);
    }
    const streamId = lastEventId.slice(0, sep);
    const seq = Number(lastEventId.slice(sep + 1));
    const stream = this.streams.get(streamId);
    if (!stream || !Number.isSafeInteger(seq) || seq > stream.seq) {
      return Promise.resolve(undefined);
    }
    const events = stream.events.filter((e) => Number(e.id.slice(sep + 1)) > seq);
    return Promise.resolve({ streamId, events });
  }

  deleteStream(streamId: string): Promise<void> {
    this.streams.delete(streamId);
    return Promise.resolve();
  }
}

/*
 * Ports for state that outlives one HTTP request. The memory implementations serve a single
 * node; Redis implementations (cluster) slot in behind the same interfaces.
 */
import type { JsonRpcMessage, SessionInfo } from '@portico/mcp-protocol';

export const SESSION_STORE = Symbol('SESSION_STORE');
export const EVENT_STORE = Symbol('EVENT_STORE');
export const MESSAGE_BUS = Symbol('MESSAGE_BUS');

/** The serialisable facts of 2025-era sessions, shared by every node. */
export interface SessionStore {
  get(id: string): Promise<SessionInfo | undefined>;
  save(info: SessionInfo, ttlMs: number): Promise<void>;
  touch(id: string, ttlMs: number): Promise<void>;
  delete(id: string): Promise<void>;
  count(): Promise<number>;
}

export interface StoredEvent {
  id: string;
  message: JsonRpcMessage;
}

/**
 * SSE events kept for resumption (Last-Event-ID). Event ids encode their stream, so a replay
 * never crosses streams.
 */
export interface EventStore {
  append(streamId: string, message: JsonRpcMessage): Promise<string>;
  /** Events of the stream `lastEventId` belongs to, after it; undefined when unknown. */
  replayAfter(
    lastEventId: string,
  ): Promise<{ streamId: string; events: StoredEvent[] } | undefined>;
  deleteStream(streamId: string): Promise<void>;
}

export type BusHandler = (message: unknown) => void;

/** Delivers messages to whichever node holds a session or stream. */
export interface MessageBus {
  publish(channel: string, message: unknown): Promise<void>;
  subscribe(channel: string, handler: BusHandler): Promise<() => Promise<void>>;
}

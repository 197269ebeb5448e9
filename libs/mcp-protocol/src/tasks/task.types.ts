/*
 * Tasks: a tools/call answered at once with a handle while the call runs on; the client polls
 * (`tasks/get`), answers the task's input requests (`tasks/update`, 2026-07-28) and may cancel
 * it. The same record serves the `io.modelcontextprotocol/tasks` extension (2026-07-28) and the
 * experimental tasks of 2025-11-25; only the wire shapes differ (task-wire.ts).
 */
import type { Era } from '../context';
import type { JsonObject, JsonRpcErrorObject } from '../jsonrpc';

/** The extension identifier in `capabilities.extensions` (2026-07-28). */
export const TASKS_EXTENSION = 'io.modelcontextprotocol/tasks';

export const TASK_STATUSES = [
  'working',
  'input_required',
  'completed',
  'failed',
  'cancelled',
] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

export type TerminalTaskStatus = Extract<TaskStatus, 'completed' | 'failed' | 'cancelled'>;

export function isTerminalStatus(status: TaskStatus): status is TerminalTaskStatus {
  return status === 'completed' || status === 'failed' || status === 'cancelled';
}

/** A server-to-client request the task waits for (an `inputRequests` entry). */
export interface TaskInputRequest {
  readonly method: string;
  readonly params: JsonObject;
}

/** What a task is created with; never changes afterwards. */
export interface NewTask {
  /** Random, unguessable: the id is all a caller needs besides its credentials. */
  readonly taskId: string;
  /** The principal id the task belongs to ('' for anonymous callers). */
  readonly owner: string;
  readonly tenant?: string;
  /** The 2025-era session that created it; 2026-07-28 tasks have none. */
  readonly sessionId?: string;
  /** Epoch milliseconds. */
  readonly createdAt: number;
  /** How long the task (and its result) is kept, from `createdAt`. */
  readonly ttlMs: number;
  /** The polling interval suggested to clients. */
  readonly pollIntervalMs: number;
  /** The era of the call: how its result settles the task (a 2025-era tool error fails it). */
  readonly era?: Era;
}

/**
 * Work of a task that lives outside the node running it (a queued job), recorded so another
 * node can take over waiting for it when that node stops.
 */
export interface TaskWorkRef {
  /** Which TaskWorkResumer knows this work. */
  readonly kind: string;
  readonly id: string;
}

/**
 * A node's claim on the tasks it runs: it renews the lease while it runs them; a live task
 * whose lease lapsed is an orphan, which the next node that reads it takes over.
 */
export interface TaskLease {
  /** The node's id, random per process. */
  readonly node: string;
  /** How long the lease lasts unrenewed. */
  readonly ms: number;
}

export interface TaskRecord extends NewTask {
  readonly status: TaskStatus;
  readonly statusMessage?: string;
  /** Epoch milliseconds. */
  readonly lastUpdatedAt: number;
  /** The underlying request's result (completed tasks; failed 2025-era tool errors). */
  readonly result?: JsonObject;
  /** The JSON-RPC error the underlying request ended with (failed tasks). */
  readonly error?: JsonRpcErrorObject;
  /** Outstanding input requests by key (input_required tasks); empty otherwise. */
  readonly inputRequests: Readonly<Record<string, TaskInputRequest>>;
  /** Where the task's work runs, when outside its node's memory (see TaskWorkRef). */
  readonly work?: TaskWorkRef;
  /** True for a live task whose node stopped renewing its lease: no node runs it any more. */
  readonly orphaned?: boolean;
}

/** How a task ended. */
export interface TaskOutcome {
  readonly status: TerminalTaskStatus;
  readonly statusMessage?: string;
  readonly result?: JsonObject;
  readonly error?: JsonRpcErrorObject;
}

/**
 * What a store tells every node: a task changed (anyone waiting on it looks again), its
 * cancellation was requested (the node running it stops the work), or input arrived for it
 * (the node running it resumes the handler).
 */
export type TaskSignal =
  | { readonly type: 'changed'; readonly taskId: string }
  | { readonly type: 'cancel'; readonly taskId: string }
  | {
      readonly type: 'input';
      readonly taskId: string;
      readonly responses: Readonly<Record<string, JsonObject>>;
    };

import type { JsonObject } from '../jsonrpc';
import type { NewTask, TaskInputRequest, TaskOutcome, TaskRecord, TaskSignal } from './task.types';

/**
 * Where tasks live. Every node of a cluster must see the same tasks (a task created on one
 * node is polled, updated and cancelled on any other), so a clustered deployment uses a shared
 * implementation (Redis); the memory one serves a single node. Each record expires `ttlMs`
 * after its creation, whatever its status.
 *
 * Status changes are atomic and never leave a terminal status: a result arriving after a
 * cancellation is dropped, a cancellation after the result is a no-op.
 */
export interface TaskStore {
  /** Stores a new working task; resolves once any node can read it. */
  create(task: NewTask): Promise<TaskRecord>;

  /** The task, or undefined when unknown or expired. */
  get(taskId: string): Promise<TaskRecord | undefined>;

  /**
   * Adds outstanding input requests and moves a live task to `input_required`. False when the
   * task is gone or terminal (nobody will answer).
   */
  requestInput(
    taskId: string,
    requests: Readonly<Record<string, TaskInputRequest>>,
  ): Promise<boolean>;

  /**
   * Takes the responses whose keys are outstanding (others are ignored), removes those keys,
   * moves the task back to `working` once none is left, and sends the accepted responses to
   * the node running the task (an `input` signal). Resolves to the accepted keys, or undefined
   * when the task is unknown.
   */
  answer(
    taskId: string,
    responses: Readonly<Record<string, JsonObject>>,
  ): Promise<string[] | undefined>;

  /** Ends a live task with `outcome`; false when it was already terminal or is gone. */
  finish(taskId: string, outcome: TaskOutcome): Promise<boolean>;

  /**
   * Moves a live task to `cancelled` and tells the node running it to stop (a `cancel`
   * signal). Resolves to the task as it is afterwards (unchanged when it was already
   * terminal), or undefined when unknown.
   */
  cancel(taskId: string, statusMessage: string): Promise<TaskRecord | undefined>;

  /** The live tasks a 2025-era session created, newest first. */
  listBySession(sessionId: string): Promise<TaskRecord[]>;

  /** Receives every node's signals; resolves once subscribed, to the unsubscribe function. */
  subscribe(listener: (signal: TaskSignal) => void): Promise<() => Promise<void>>;

  /** Releases connections and timers. */
  close(): Promise<void>;
}

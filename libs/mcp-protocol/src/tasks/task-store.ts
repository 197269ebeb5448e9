import type { JsonObject } from '../jsonrpc';
import type {
  NewTask,
  TaskInputRequest,
  TaskLease,
  TaskOutcome,
  TaskRecord,
  TaskSignal,
  TaskWorkRef,
} from './task.types';

/**
 * Where tasks live. Every node of a cluster must see the same tasks (a task created on one
 * node is polled, updated and cancelled on any other), so a clustered deployment uses a shared
 * implementation (Redis); the memory one serves a single node. Each record expires `ttlMs`
 * after its creation, whatever its status.
 *
 * Status changes are atomic and never leave a terminal status: a result arriving after a
 * cancellation is dropped, a cancellation after the result is a no-op.
 *
 * A shared store also tracks which node runs each live task (TaskLease), so that a task whose
 * node stopped is taken over by exactly one other node instead of staying `working` until it
 * expires. A single node's store has nothing to track: its tasks live and die with it.
 */
export interface TaskStore {
  /** Stores a new working task, leased to `lease.node`; resolves once any node can read it. */
  create(task: NewTask, lease?: TaskLease): Promise<TaskRecord>;

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

  /**
   * Sets a live task's `statusMessage` (its progress, as a client polling or listening sees
   * it); false when the task is gone or terminal.
   */
  report(taskId: string, statusMessage: string): Promise<boolean>;

  /** Ends a live task with `outcome`; false when it was already terminal or is gone. */
  finish(taskId: string, outcome: TaskOutcome): Promise<boolean>;

  /**
   * Moves a live task to `cancelled` and tells the node running it to stop (a `cancel`
   * signal). Resolves to the task as it is afterwards (unchanged when it was already
   * terminal), or undefined when unknown.
   */
  cancel(taskId: string, statusMessage: string): Promise<TaskRecord | undefined>;

  /** Records where a live task's work runs (see TaskWorkRef); false when it is gone or ended. */
  attachWork(taskId: string, work: TaskWorkRef): Promise<boolean>;

  /**
   * Extends `lease.node`'s lease on these tasks; resolves to the ids of the live ones another
   * node holds now (it took them over: this node's lease had lapsed).
   */
  renew(taskIds: readonly string[], lease: TaskLease): Promise<string[]>;

  /**
   * Takes over an orphaned task (live, its lease lapsed) for `lease.node`. True for exactly one
   * of the nodes that try at once; false when the task is not an orphan.
   */
  claim(taskId: string, lease: TaskLease): Promise<boolean>;

  /** Ends `node`'s leases on these tasks at once: the next node to read them takes them over. */
  release(taskIds: readonly string[], node: string): Promise<void>;

  /** The live tasks a 2025-era session created, newest first. */
  listBySession(sessionId: string): Promise<TaskRecord[]>;

  /** Receives every node's signals; resolves once subscribed, to the unsubscribe function. */
  subscribe(listener: (signal: TaskSignal) => void): Promise<() => Promise<void>>;

  /** Releases connections and timers. */
  close(): Promise<void>;
}

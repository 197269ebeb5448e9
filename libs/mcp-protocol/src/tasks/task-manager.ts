import type { Cancellation } from '../cancellation';
import type { Principal } from '../catalog';
import { ErrorCode } from '../constants';
import type { InputMethod } from '../context';
import { McpError, type JsonObject } from '../jsonrpc';
import { type LaunchHost, type LaunchInit, TaskLaunch } from './task-launch';
import type { TaskStore } from './task-store';
import type { TaskOutcome, TaskRecord, TaskSignal } from './task.types';

export interface TaskManagerOptions {
  readonly store: TaskStore;
  /** How long a task is kept when its client asked for nothing else (default one hour). */
  readonly ttlMs?: number;
  /** The longest a 2025-era client may ask a task to be kept (default one day). */
  readonly maxTtlMs?: number;
  /** The polling interval suggested to clients (default one second). */
  readonly pollIntervalMs?: number;
}

/** Who asks about a task: tasks belong to a principal (and tenant), anonymous ones to a session. */
export interface TaskCaller {
  readonly principal?: Principal;
  readonly sessionId?: string;
}

export interface PrepareInit extends LaunchInit {
  readonly caller: TaskCaller;
  /** The TTL the client asked for (2025-era `task.ttl`), clamped to the maximum. */
  readonly requestedTtlMs?: number;
}

const MIN_TTL_MS = 1000;

/**
 * Runs calls as tasks and answers the task methods of both eras over a TaskStore. The node that
 * launched a task runs it; `tasks/get`, `tasks/update` and `tasks/cancel` work on any node
 * because they only touch the store, whose signals reach the running node.
 */
export class TaskManager {
  readonly ttlMs: number;
  readonly maxTtlMs: number;
  readonly pollIntervalMs: number;
  private readonly store: TaskStore;
  /** Tasks this node runs, by id. */
  private readonly running = new Map<string, { launch: TaskLaunch; done: Promise<void> }>();
  /** Local listeners of tasks' signals (tasks/result, task status notifications). */
  private readonly watchers = new Map<string, Set<(signal: TaskSignal) => void>>();
  private subscription?: Promise<() => Promise<void>>;
  private closed = false;

  constructor(options: TaskManagerOptions) {
    this.store = options.store;
    this.ttlMs = options.ttlMs ?? 3_600_000;
    this.maxTtlMs = Math.max(options.maxTtlMs ?? 86_400_000, this.ttlMs);
    this.pollIntervalMs = options.pollIntervalMs ?? 1000;
  }

  /** Prepares running one call as a task (see TaskLaunch). */
  prepare(init: PrepareInit): TaskLaunch {
    const host: LaunchHost = {
      create: (launch) => this.create(launch),
      requestInput: (launch, key, method, params) => this.requestInput(launch, key, method, params),
      finish: (launch, outcome) => this.finish(launch, outcome),
    };
    return new TaskLaunch(host, init);
  }

  /** Records the outcome of a launched task's work when it settles. */
  track(launch: TaskLaunch, work: Promise<JsonObject>): void {
    const entry = this.running.get(launch.taskId);
    const done = launch.settle(work).finally(() => {
      if (this.running.get(launch.taskId)?.launch === launch) {
        this.running.delete(launch.taskId);
      }
    });
    if (entry) {
      entry.done = done;
    }
  }

  /** The caller's task, or -32602 (unknown, expired or someone else's: indistinguishable). */
  async get(taskId: unknown, caller: TaskCaller): Promise<TaskRecord> {
    if (typeof taskId !== 'string' || taskId.length === 0) {
      throw McpError.invalidParams('taskId must be a non-empty string');
    }
    const record = await this.store.get(taskId);
    if (!record || !belongsTo(record, caller)) {
      throw McpError.invalidParams('Failed to retrieve task: Task not found');
    }
    return record;
  }

  /** Answers outstanding input requests; unknown or already answered keys are ignored. */
  async update(taskId: unknown, caller: TaskCaller, responses: unknown): Promise<string[]> {
    if (typeof responses !== 'object' || responses === null || Array.isArray(responses)) {
      throw McpError.invalidParams('inputResponses must be an object');
    }
    for (const [key, value] of Object.entries(responses as JsonObject)) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw McpError.invalidParams(`inputResponses["${key}"] must be an object`);
      }
    }
    const task = await this.get(taskId, caller);
    return (await this.store.answer(task.taskId, responses as Record<string, JsonObject>)) ?? [];
  }

  /** Cancels the caller's task (no-op when terminal); resolves to the task afterwards. */
  async cancel(taskId: unknown, caller: TaskCaller): Promise<TaskRecord> {
    const task = await this.get(taskId, caller);
    const after = await this.store.cancel(task.taskId, 'The task was cancelled by request');
    if (!after) {
      throw McpError.invalidParams('Failed to retrieve task: Task not found');
    }
    return after;
  }

  /** The caller's tasks in its 2025-era session. */
  async list(caller: TaskCaller): Promise<TaskRecord[]> {
    if (caller.sessionId === undefined) {
      return [];
    }
    const tasks = await this.store.listBySession(caller.sessionId);
    return tasks.filter((task) => belongsTo(task, caller));
  }

  /**
   * Calls `listener` with every signal about the task, from any node, until the returned
   * function is called. Signals are best effort: a listener that must not miss a change also
   * looks again from time to time.
   */
  watch(taskId: string, listener: (signal: TaskSignal) => void): () => void {
    void this.subscribed();
    let set = this.watchers.get(taskId);
    if (!set) {
      set = new Set();
      this.watchers.set(taskId, set);
    }
    const listeners = set;
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0 && this.watchers.get(taskId) === listeners) {
        this.watchers.delete(taskId);
      }
    };
  }

  /**
   * Resolves when the task changes, after `timeoutMs` (signals are best effort: look again
   * anyway), or when `cancellation` fires.
   */
  async waitForChange(
    taskId: string,
    cancellation: Cancellation,
    timeoutMs = this.pollIntervalMs,
  ): Promise<void> {
    await this.subscribed();
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        undoCancel();
        unwatch();
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      const undoCancel = cancellation.onCancel(done);
      const unwatch = this.watch(taskId, done);
    });
  }

  /**
   * Stops taking tasks; gives running ones up to `graceMs` to finish, then fails them (their
   * clients learn it from tasks/get instead of polling a task nobody runs), and closes the
   * store.
   */
  async close(graceMs = 0): Promise<void> {
    this.closed = true;
    if (this.running.size > 0 && graceMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...this.running.values()].map((entry) => entry.done)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs))),
      ]);
      clearTimeout(timer);
    }
    const error = new McpError(
      ErrorCode.InternalError,
      'The server shut down before the task finished',
    );
    await Promise.allSettled(
      [...this.running.values()].map(async ({ launch }) => {
        await this.store.finish(launch.taskId, {
          status: 'failed',
          statusMessage: error.message,
          error: error.toJson(),
        });
        launch.stop(error);
      }),
    );
    const unsubscribe = await this.subscription?.catch(() => undefined);
    this.subscription = undefined;
    await unsubscribe?.();
    await this.store.close();
  }

  private async create(launch: TaskLaunch): Promise<TaskRecord> {
    if (this.closed) {
      throw new McpError(ErrorCode.InternalError, 'The server is shutting down');
    }
    const init = launch.init as PrepareInit;
    const caller = init.caller;
    await this.subscribed();
    this.running.set(launch.taskId, { launch, done: Promise.resolve() });
    try {
      return await this.store.create({
        taskId: launch.taskId,
        owner: caller.principal?.id ?? '',
        ...(caller.principal?.tenant !== undefined && { tenant: caller.principal.tenant }),
        ...(caller.sessionId !== undefined && { sessionId: caller.sessionId }),
        createdAt: Date.now(),
        ttlMs: this.ttlFor(init.requestedTtlMs),
        pollIntervalMs: this.pollIntervalMs,
      });
    } catch (err) {
      this.running.delete(launch.taskId);
      throw err;
    }
  }

  private requestInput(
    launch: TaskLaunch,
    key: string,
    method: InputMethod,
    params: JsonObject,
  ): Promise<boolean> {
    return this.store.requestInput(launch.taskId, { [key]: { method, params } });
  }

  private async finish(launch: TaskLaunch, outcome: TaskOutcome): Promise<void> {
    // A store that cannot be reached leaves the task to expire; nothing else can be done here.
    await this.store.finish(launch.taskId, outcome).catch(() => false);
  }

  private ttlFor(requested: number | undefined): number {
    if (requested === undefined || !Number.isFinite(requested)) {
      return this.ttlMs;
    }
    return Math.round(Math.min(Math.max(requested, MIN_TTL_MS), this.maxTtlMs));
  }

  private subscribed(): Promise<unknown> {
    if (!this.subscription) {
      const subscription = this.store.subscribe((signal) => this.onSignal(signal));
      this.subscription = subscription;
      // A failed subscription is retried by the next caller.
      subscription.catch(() => {
        if (this.subscription === subscription) {
          this.subscription = undefined;
        }
      });
    }
    return this.subscription;
  }

  private onSignal(signal: TaskSignal): void {
    const entry = this.running.get(signal.taskId);
    if (signal.type === 'cancel') {
      entry?.launch.stop();
    } else if (signal.type === 'input') {
      entry?.launch.deliver(signal.responses);
    }
    const watchers = this.watchers.get(signal.taskId);
    if (watchers) {
      for (const watcher of [...watchers]) {
        watcher(signal);
      }
    }
  }
}

function belongsTo(task: TaskRecord, caller: TaskCaller): boolean {
  const owner = caller.principal?.id ?? '';
  if (task.owner !== owner || task.tenant !== caller.principal?.tenant) {
    return false;
  }
  // Anonymous tasks of a 2025-era session stay with that session.
  return owner !== '' || task.sessionId === undefined || task.sessionId === caller.sessionId;
}

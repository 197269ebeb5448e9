import { randomUUID } from 'node:crypto';
import { Cancellation } from '../cancellation';
import type { Principal } from '../catalog';
import { ErrorCode } from '../constants';
import type { InputMethod } from '../context';
import { McpError, type JsonObject } from '../jsonrpc';
import {
  statusText,
  TaskLaunch,
  taskOutcome,
  type LaunchHost,
  type LaunchInit,
  type TaskProgress,
} from './task-launch';
import type { TaskStore } from './task-store';
import type { TaskLease, TaskOutcome, TaskRecord, TaskSignal, TaskWorkRef } from './task.types';

/**
 * Takes over waiting for a task's work that runs outside the node that started it (a queued
 * job), when that node stopped. The executor that records TaskWorkRefs of a kind (see
 * attachTaskWork) implements it for that kind.
 */
export interface TaskWorkResumer {
  /**
   * The work's outcome: resolves to the call's result, rejects with its error; `cancellation`
   * fires when the task is cancelled; `progress` hears the work's progress from now on (it
   * becomes the task's statusMessage). Undefined for a kind this node cannot take over.
   */
  resume(
    work: TaskWorkRef,
    cancellation: Cancellation,
    progress?: (progress: TaskProgress) => void,
  ): Promise<JsonObject> | undefined;
}

export interface TaskManagerOptions {
  readonly store: TaskStore;
  /** How long a task is kept when its client asked for nothing else (default one hour). */
  readonly ttlMs?: number;
  /** The longest a 2025-era client may ask a task to be kept (default one day). */
  readonly maxTtlMs?: number;
  /** The polling interval suggested to clients (default one second). */
  readonly pollIntervalMs?: number;
  /**
   * How long this node's claim on the tasks it runs lasts unrenewed (default 15 s; renewed
   * every third of it). A node that stops renewing is presumed gone after this long, and the
   * next node that reads one of its tasks takes it over.
   */
  readonly leaseMs?: number;
  /** Takes over queued work of tasks whose node stopped (none: such tasks fail). */
  readonly work?: TaskWorkResumer;
}

/** The failure of a task whose work was lost with its node. */
export const NODE_STOPPED_MESSAGE = 'The gateway node running this task stopped';

/**
 * What a task's local work is stopped with when another node took the task over (this node
 * lost its lease, or shut down and handed it over): the work itself goes on elsewhere, so the
 * executor must not cancel it (a queued job, an upstream's task), only stop waiting for it.
 */
export class TaskHandedOverError extends McpError {
  constructor() {
    super(ErrorCode.InternalError, 'The task was handed over to another gateway node');
    this.name = 'TaskHandedOverError';
  }
}

/** What this node runs for a task: its own launch, or work it took over from another node. */
interface RunningTask {
  readonly taskId: string;
  readonly work: TaskWorkRef | undefined;
  stop(reason?: McpError): void;
  deliver(responses: Readonly<Record<string, JsonObject>>): void;
}

/** A task taken over from a stopped node: this node only waits for its work. */
class AdoptedTask implements RunningTask {
  readonly cancellation = new Cancellation();

  constructor(
    readonly taskId: string,
    readonly work: TaskWorkRef,
  ) {}

  stop(reason: McpError = new McpError(ErrorCode.RequestCancelled, 'Task cancelled')): void {
    this.cancellation.cancel(reason);
  }

  deliver(): void {
    // The work runs elsewhere and asks for nothing here.
  }
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
 *
 * The running node renews a lease on its tasks. A reader on any node that finds a live task
 * whose lease lapsed (its node stopped) takes it over, exactly one node winning the claim:
 * work that runs elsewhere (a queued job) is waited for here from then on; work that ran in the
 * stopped node is lost, and the task fails saying so instead of staying `working` until it
 * expires.
 */
export class TaskManager {
  readonly ttlMs: number;
  readonly maxTtlMs: number;
  readonly pollIntervalMs: number;
  readonly leaseMs: number;
  private readonly store: TaskStore;
  private readonly resumer?: TaskWorkResumer;
  /** This node's lease on the tasks it runs. */
  private readonly lease: TaskLease;
  /** Tasks this node runs, by id. */
  private readonly running = new Map<string, { launch: RunningTask; done: Promise<void> }>();
  /** Tasks another node holds now: their outcome is that node's to record, not this one's. */
  private readonly handedOver = new Set<string>();
  private heartbeat?: NodeJS.Timeout;
  /** Progress writes in flight, with the latest message waiting behind each. */
  private readonly reports = new Map<string, { next?: string }>();
  /** Local listeners of tasks' signals (tasks/result, task status notifications). */
  private readonly watchers = new Map<string, Set<(signal: TaskSignal) => void>>();
  private subscription?: Promise<() => Promise<void>>;
  private closed = false;

  constructor(options: TaskManagerOptions) {
    this.store = options.store;
    this.ttlMs = options.ttlMs ?? 3_600_000;
    this.maxTtlMs = Math.max(options.maxTtlMs ?? 86_400_000, this.ttlMs);
    this.pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.leaseMs = options.leaseMs ?? 15_000;
    this.resumer = options.work;
    this.lease = { node: randomUUID(), ms: this.leaseMs };
  }

  /** Prepares running one call as a task (see TaskLaunch). */
  prepare(init: PrepareInit): TaskLaunch {
    const host: LaunchHost = {
      create: (launch) => this.create(launch),
      requestInput: (launch, key, method, params) => this.requestInput(launch, key, method, params),
      finish: (launch, outcome) => this.finish(launch.taskId, outcome),
      attachWork: (launch, work) => this.store.attachWork(launch.taskId, work),
      report: (launch, statusMessage) => this.report(launch.taskId, statusMessage),
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
    let record = await this.store.get(taskId);
    if (!record || !belongsTo(record, caller)) {
      throw McpError.invalidParams('Failed to retrieve task: Task not found');
    }
    if (record.orphaned) {
      await this.takeOver(record);
      record = (await this.store.get(taskId)) ?? record;
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
    const tasks = (await this.store.listBySession(caller.sessionId)).filter((task) =>
      belongsTo(task, caller),
    );
    if (!tasks.some((task) => task.orphaned)) {
      return tasks;
    }
    return Promise.all(
      tasks.map(async (task) => {
        if (!task.orphaned) {
          return task;
        }
        await this.takeOver(task);
        return (await this.store.get(task.taskId)) ?? task;
      }),
    );
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
   * Stops taking tasks; gives running ones up to `graceMs` to finish. Then hands the ones whose
   * work runs elsewhere (queued jobs) over to the other nodes (their leases end now, the next
   * reader takes them over), fails the others (their clients learn it from tasks/get instead of
   * polling a task nobody runs), and closes the store.
   */
  async close(graceMs = 0): Promise<void> {
    this.closed = true;
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    if (this.running.size > 0 && graceMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...this.running.values()].map((entry) => entry.done)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs))),
      ]);
      clearTimeout(timer);
    }
    const elsewhere = [...this.running.values()]
      .filter(({ launch }) => launch.work !== undefined)
      .map(({ launch }) => launch);
    for (const launch of elsewhere) {
      this.running.delete(launch.taskId);
      this.handedOver.add(launch.taskId);
    }
    // A store that cannot be reached lets the leases lapse on their own: same outcome, later.
    await this.store
      .release(
        elsewhere.map((launch) => launch.taskId),
        this.lease.node,
      )
      .catch(() => undefined);
    // This node stops waiting for that work; the node that takes each task over goes on.
    elsewhere.forEach((launch) => launch.stop(new TaskHandedOverError()));
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
      const record = await this.store.create(
        {
          taskId: launch.taskId,
          owner: caller.principal?.id ?? '',
          ...(caller.principal?.tenant !== undefined && { tenant: caller.principal.tenant }),
          ...(caller.sessionId !== undefined && { sessionId: caller.sessionId }),
          createdAt: Date.now(),
          ttlMs: this.ttlFor(init.requestedTtlMs),
          pollIntervalMs: this.pollIntervalMs,
          era: init.era,
        },
        this.lease,
      );
      this.beat();
      return record;
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

  /**
   * Writes a task's progress, coalesced: while one write is in flight only the latest message
   * waits, so a handler reporting fast costs the store one write per round trip.
   */
  private report(taskId: string, statusMessage: string): Promise<void> {
    const pending = this.reports.get(taskId);
    if (pending) {
      pending.next = statusMessage;
      return Promise.resolve();
    }
    const entry: { next?: string } = {};
    this.reports.set(taskId, entry);
    const write = async (message: string): Promise<void> => {
      // Best effort: progress that cannot be written is superseded by the next or the outcome.
      await this.store.report(taskId, message).catch(() => false);
      const next = entry.next;
      entry.next = undefined;
      if (next !== undefined) {
        await write(next);
      }
    };
    return write(statusMessage).finally(() => this.reports.delete(taskId));
  }

  private async finish(taskId: string, outcome: TaskOutcome): Promise<void> {
    if (this.handedOver.delete(taskId)) {
      return;
    }
    // A store that cannot be reached leaves the task to its lease: another node takes it over.
    await this.store.finish(taskId, outcome).catch(() => false);
  }

  /**
   * Takes over an orphaned task, unless another node claims it first: waits for its work when
   * that runs elsewhere and this node can resume it, else fails it (the work died with its
   * node).
   */
  private async takeOver(record: TaskRecord): Promise<void> {
    const taskId = record.taskId;
    if (this.closed || this.running.has(taskId)) {
      return;
    }
    // Subscribed before the claim: a cancellation right after it still reaches this node.
    await this.subscribed();
    if (!(await this.store.claim(taskId, this.lease).catch(() => false))) {
      return;
    }
    const work = record.work;
    const task = work && new AdoptedTask(taskId, work);
    const resumed =
      task &&
      this.resumer?.resume(task.work, task.cancellation, (p) => {
        void this.report(taskId, statusText(p.progress, p.total, p.message)).catch(() => undefined);
      });
    if (!task || !resumed) {
      const message = work
        ? `${NODE_STOPPED_MESSAGE}, and no node here can take over its ${work.kind} work`
        : NODE_STOPPED_MESSAGE;
      const error = new McpError(ErrorCode.InternalError, message);
      await this.store
        .finish(taskId, { status: 'failed', statusMessage: message, error: error.toJson() })
        .catch(() => false);
      return;
    }
    const done = taskOutcome(resumed, record.era, task.cancellation)
      .then((outcome) => this.finish(taskId, outcome))
      .finally(() => {
        if (this.running.get(taskId)?.launch === task) {
          this.running.delete(taskId);
        }
      });
    this.running.set(taskId, { launch: task, done });
    this.beat();
  }

  /** Renews this node's leases while it runs tasks. */
  private beat(): void {
    if (this.heartbeat || this.closed) {
      return;
    }
    this.heartbeat = setInterval(
      () => void this.renewLeases(),
      Math.max(10, Math.floor(this.leaseMs / 3)),
    );
    this.heartbeat.unref();
  }

  private async renewLeases(): Promise<void> {
    if (this.running.size === 0) {
      clearInterval(this.heartbeat);
      this.heartbeat = undefined;
      return;
    }
    let lost: string[];
    try {
      lost = await this.store.renew([...this.running.keys()], this.lease);
    } catch {
      // Unreachable store: the next beat tries again; the leases may lapse meanwhile.
      return;
    }
    for (const taskId of lost) {
      const entry = this.running.get(taskId);
      if (!entry) {
        continue;
      }
      // This node was presumed gone and another took the task over: its outcome is theirs.
      this.running.delete(taskId);
      this.handedOver.add(taskId);
      entry.launch.stop(
        entry.launch.work === undefined
          ? new McpError(ErrorCode.InternalError, NODE_STOPPED_MESSAGE)
          : new TaskHandedOverError(),
      );
    }
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

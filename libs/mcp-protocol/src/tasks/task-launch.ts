import { randomUUID } from 'node:crypto';
import { Cancellation } from '../cancellation';
import { ErrorCode } from '../constants';
import {
  HandlerContext,
  type Era,
  type InputBroker,
  type InputMethod,
  type RequestContext,
} from '../context';
import { McpError, toErrorObject, type JsonObject, type JsonRpcMessage } from '../jsonrpc';
import type { TaskOutcome, TaskRecord, TaskWorkRef } from './task.types';

/** What a launch needs from the manager that owns it. */
export interface LaunchHost {
  /** Stores the task and starts routing its signals here; resolves once readable anywhere. */
  create(launch: TaskLaunch): Promise<TaskRecord>;
  requestInput(
    launch: TaskLaunch,
    key: string,
    method: InputMethod,
    params: JsonObject,
  ): Promise<boolean>;
  finish(launch: TaskLaunch, outcome: TaskOutcome): Promise<void>;
  attachWork(launch: TaskLaunch, work: TaskWorkRef): Promise<boolean>;
  /** Publishes the task's progress as its statusMessage. */
  report(launch: TaskLaunch, statusMessage: string): Promise<void>;
}

export interface LaunchInit {
  readonly era: Era;
  /**
   * Whether the handler may gather input on the original request before the task exists
   * (`beforeTask`): 2026-07-28 only, whose input_required rounds make that possible.
   */
  readonly deferrable: boolean;
  /** Answers input asked for before the task exists (the request's own broker). */
  readonly preTask: InputBroker;
  /** The request's cancellation; it stops the work only until the task exists. */
  readonly requestCancellation: Cancellation;
  /**
   * Progress once the task exists, besides its statusMessage: 2025-11-25 keeps the request's
   * progress token valid for the task's life, and the notifications travel on the session's
   * standalone stream (the request's own has ended with the handle).
   */
  readonly progressAfterBegin?: (taskId: string, progress: TaskProgress) => void;
}

/** One progress notification of a task's handler. */
export interface TaskProgress {
  readonly progress: number;
  readonly total?: number;
  readonly message?: string;
}

type Phase = 'undecided' | 'deferred' | 'task' | 'abandoned';

const INPUT_KEY_PREFIX: Record<InputMethod, string> = {
  'elicitation/create': 'elicitation',
  'sampling/createMessage': 'sampling',
  'roots/list': 'roots',
};

interface Waiter {
  resolve(value: JsonObject): void;
  reject(reason: unknown): void;
}

/**
 * One tools/call on its way to becoming a task. The engine starts the handler with this
 * launch's context, then decides: a task at once, or (when the handler called `beforeTask`
 * first) only once the handler has its input, so that input is gathered on the original
 * request. From `begin` on, the handler runs detached from the request: its result goes to the
 * store, its input requests surface on `tasks/get` (or `tasks/result`) and are answered through
 * the store, and `tasks/cancel` from any node cancels its context.
 */
export class TaskLaunch {
  readonly taskId = randomUUID();
  /** The handler's cancellation: the task's own once it begins. */
  readonly cancellation = new Cancellation();
  readonly broker: InputBroker;
  /** Resolves when the task exists; never rejects. */
  readonly begun: Promise<TaskRecord>;
  private phase: Phase = 'undecided';
  private deferRequested = false;
  private created?: Promise<TaskRecord>;
  private resolveBegun!: (record: TaskRecord) => void;
  private readonly decision: Promise<void>;
  private resolveDecision!: () => void;
  private unlinkRequest: () => void;
  private inputIndex = 0;
  private readonly usedKeys = new Set<string>();
  private readonly waiting = new Map<string, Waiter>();
  private attached?: TaskWorkRef;

  constructor(
    private readonly host: LaunchHost,
    readonly init: LaunchInit,
  ) {
    this.begun = new Promise((resolve) => (this.resolveBegun = resolve));
    this.decision = new Promise((resolve) => (this.resolveDecision = resolve));
    this.unlinkRequest = init.requestCancellation.onCancel((reason) =>
      this.cancellation.cancel(reason),
    );
    this.broker = {
      request: (method, params, cancellation, key) => this.route(method, params, cancellation, key),
    };
  }

  get isTask(): boolean {
    return this.phase === 'task';
  }

  /** Where the task's work runs, once the executor recorded it (see attachTaskWork). */
  get work(): TaskWorkRef | undefined {
    return this.attached;
  }

  /** Asks to gather input before the task exists; true when that is how this call runs. */
  defer(): boolean {
    if (this.phase === 'undecided' && this.init.deferrable) {
      this.deferRequested = true;
    }
    return this.deferRequested && this.phase !== 'task' && this.phase !== 'abandoned';
  }

  /**
   * Called by the engine right after starting the handler: from here on, `defer` is refused.
   * True when the handler deferred the task (the engine then waits for `begun`).
   */
  decide(): boolean {
    if (this.phase === 'undecided') {
      this.phase = this.deferRequested ? 'deferred' : 'task';
      this.resolveDecision();
    }
    return this.phase === 'deferred';
  }

  /** Creates the task (once); resolves when any node can read it. */
  begin(): Promise<TaskRecord> {
    if (!this.created) {
      this.phase = 'task';
      this.resolveDecision();
      this.unlinkRequest();
      this.created = this.host.create(this);
      this.created.then(this.resolveBegun, () => undefined);
    }
    return this.created;
  }

  /** The call ended without becoming a task (a result, an error or input_required). */
  abandon(reason?: unknown): void {
    if (this.phase !== 'task') {
      this.phase = 'abandoned';
    }
    this.resolveDecision();
    this.unlinkRequest();
    if (reason !== undefined) {
      this.cancellation.cancel(reason);
    }
  }

  /** Records how the handler ended, once the task exists. */
  settle(work: Promise<JsonObject>): Promise<void> {
    return taskOutcome(work, this.init.era, this.cancellation).then((outcome) =>
      this.host.finish(this, outcome),
    );
  }

  /**
   * Records where the task's work runs (see TaskWorkRef), once the task exists. False when the
   * call is not running as a task (nothing to record), or the task ended meanwhile.
   */
  async attach(work: TaskWorkRef): Promise<boolean> {
    await this.decision;
    if (this.phase !== 'task') {
      return false;
    }
    await this.begin();
    this.attached = work;
    return this.host.attachWork(this, work);
  }

  /**
   * A progress notification of the handler. Once the task exists it becomes the task's
   * `statusMessage` (the request it came with has been answered: tasks/get and listen streams
   * are how the client sees it); before that, while the call gathers input on its original
   * request, it goes there.
   */
  progress(message: JsonRpcMessage, original: HandlerContext): Promise<void> {
    if (!('method' in message) || message.method !== 'notifications/progress') {
      return Promise.resolve();
    }
    const params = (message.params ?? {}) as {
      progress?: number;
      total?: number;
      message?: string;
    };
    if (typeof params.progress !== 'number') {
      return Promise.resolve();
    }
    if (this.phase === 'task') {
      // Once the task is stored (and its handle on its way): in order, without holding the
      // handler up (creating the task may fail; the handler is then cancelled).
      const progress: TaskProgress = {
        progress: params.progress,
        ...(params.total !== undefined && { total: params.total }),
        ...(params.message !== undefined && { message: params.message }),
      };
      void this.begun.then(() => {
        this.init.progressAfterBegin?.(this.taskId, progress);
        return this.host.report(
          this,
          statusText(progress.progress, progress.total, progress.message),
        );
      });
      return Promise.resolve();
    }
    if (this.phase === 'deferred' || this.phase === 'abandoned') {
      return original.progress(params.progress, params.total, params.message);
    }
    // Reported before the engine decided (the handler's first synchronous steps): handled as
    // soon as it has.
    return this.decision.then(() => this.progress(message, original));
  }

  /** Input for this task arrived (from any node). */
  deliver(responses: Readonly<Record<string, JsonObject>>): void {
    for (const [key, value] of Object.entries(responses)) {
      const waiter = this.waiting.get(key);
      if (waiter) {
        this.waiting.delete(key);
        waiter.resolve(value);
      }
    }
  }

  /** Someone cancelled the task (from any node). */
  stop(reason: McpError = new McpError(ErrorCode.RequestCancelled, 'Task cancelled')): void {
    this.cancellation.cancel(reason);
  }

  private route(
    method: InputMethod,
    params: JsonObject,
    cancellation: Cancellation,
    key?: string,
  ): Promise<JsonObject> {
    switch (this.phase) {
      case 'undecided':
        // Asked synchronously, before the engine decided: answer once it has.
        return this.decision.then(() => this.route(method, params, cancellation, key));
      case 'deferred':
      case 'abandoned':
        return this.init.preTask.request(method, params, cancellation, key);
      case 'task':
        return this.ask(method, params, cancellation, key);
    }
  }

  private ask(
    method: InputMethod,
    params: JsonObject,
    cancellation: Cancellation,
    named?: string,
  ): Promise<JsonObject> {
    const key = this.uniqueKey(named ?? `${INPUT_KEY_PREFIX[method]}-${this.inputIndex++}`);
    if (cancellation.cancelled) {
      return Promise.reject(cancellation.reason);
    }
    return new Promise<JsonObject>((resolve, reject) => {
      const undo = cancellation.onCancel((reason) => {
        this.waiting.delete(key);
        reject(reason);
      });
      const waiter: Waiter = {
        resolve: (value) => {
          undo();
          resolve(value);
        },
        reject: (reason) => {
          undo();
          this.waiting.delete(key);
          reject(reason);
        },
      };
      this.waiting.set(key, waiter);
      this.begin()
        .then(() => this.host.requestInput(this, key, method, params))
        .then(
          (accepted) => {
            if (!accepted) {
              waiter.reject(new McpError(ErrorCode.InternalError, 'The task is no longer running'));
            }
          },
          (err: unknown) => waiter.reject(err),
        );
    });
  }

  /** Keys are unique over a task's lifetime, even when a handler reuses a name. */
  private uniqueKey(wanted: string): string {
    let key = wanted;
    for (let n = 2; this.usedKeys.has(key); n++) {
      key = `${wanted}-${n}`;
    }
    this.usedKeys.add(key);
    return key;
  }
}

/**
 * How a task ends when its work settles: a cancelled task stays cancelled; 2025-11-25 counts a
 * tool error as a failed task, 2026-07-28 as a completed one; an error fails it.
 */
export function taskOutcome(
  work: Promise<JsonObject>,
  era: Era | undefined,
  cancellation: Cancellation,
): Promise<TaskOutcome> {
  return work.then(
    (result): TaskOutcome => {
      if (cancellation.cancelled) {
        return cancelledOutcome();
      }
      const failed = era === 'legacy' && result.isError === true;
      return failed
        ? { status: 'failed', statusMessage: 'The tool returned an error', result }
        : { status: 'completed', result };
    },
    (err: unknown): TaskOutcome => {
      if (cancellation.cancelled) {
        return cancelledOutcome();
      }
      const error = toErrorObject(err);
      return { status: 'failed', statusMessage: error.message, error };
    },
  );
}

/** A task's statusMessage for a progress update: the handler's message, else the figures. */
export function statusText(progress: number, total?: number, message?: string): string {
  if (message !== undefined && message.length > 0) {
    return message;
  }
  return total !== undefined ? `Progress: ${progress} of ${total}` : `Progress: ${progress}`;
}

function cancelledOutcome(): TaskOutcome {
  return { status: 'cancelled', statusMessage: 'The task was cancelled' };
}

const launches = new WeakMap<object, TaskLaunch>();

/** The progress token of a task's own context: its progress always counts (statusMessage). */
const TASK_PROGRESS_TOKEN = 'io.modelcontextprotocol/task';

/**
 * The handler context of a call that may run as a task: the original request's facts with the
 * launch's cancellation and input broker. Progress becomes the task's statusMessage once the
 * task exists (see TaskLaunch.progress); log notifications have no stream to go to once the
 * task is detached from the request, so they are off.
 */
export function taskContext(ctx: HandlerContext, launch: TaskLaunch): HandlerContext {
  const taskCtx = new HandlerContext({
    era: ctx.era,
    protocolVersion: ctx.protocolVersion,
    requestId: ctx.requestId,
    method: ctx.method,
    clientCapabilities: ctx.clientCapabilities,
    clientInfo: ctx.clientInfo,
    principal: ctx.principal,
    sessionId: ctx.sessionId,
    cancellation: launch.cancellation,
    logsEnabled: false,
    progressToken: TASK_PROGRESS_TOKEN,
    outbound: { send: (message) => launch.progress(message, ctx) },
    broker: launch.broker,
    trace: ctx.trace,
  });
  launches.set(taskCtx, launch);
  return taskCtx;
}

function launchOf(ctx: RequestContext): TaskLaunch | undefined {
  // Wrappers derive contexts with Object.create (a replaced signal or trace): walk up to ours.
  for (let o: object | null = ctx; o !== null; o = Object.getPrototypeOf(o) as object | null) {
    const launch = launches.get(o);
    if (launch) {
      return launch;
    }
  }
  return undefined;
}

/**
 * For an executor that runs a call's work outside this process (a queued job): records where,
 * when the call runs as a task, so that another node can take over waiting for the work if
 * this node stops (see TaskWorkResumer). Resolves to whether it was recorded; a call that is
 * not a task has nothing to record.
 */
export function attachTaskWork(ctx: RequestContext, work: TaskWorkRef): Promise<boolean> {
  return launchOf(ctx)?.attach(work) ?? Promise.resolve(false);
}

/** What a handler that decides itself whether its call becomes a task holds (taskLaunchOf). */
export interface TaskLaunchControl {
  /**
   * The call waits for `begin` (2026-07-28): until then input is gathered with input_required
   * rounds on the request, and ending without `begin` answers it like any call.
   */
  readonly deferred: boolean;
  /** Makes the call a task now (a no-op once it is one); resolves when any node can read it. */
  begin(): Promise<void>;
}

/**
 * For a handler that learns only while it runs whether its call is worth a task (a call
 * forwarded to a server that decides, as the tasks extension has it): call it first thing in
 * the handler, synchronously. Undefined when the call cannot become a task. Otherwise the call
 * waits for the handler: `begin` makes it a task; a handler that ends without calling it
 * answers the request like any call (2026-07-28). Where the task was made before the handler
 * ran (a 2025-11-25 `task` request), `begin` is a no-op and the handler's end ends the task.
 */
export function taskLaunchOf(ctx: RequestContext): TaskLaunchControl | undefined {
  const launch = launchOf(ctx);
  if (!launch) {
    return undefined;
  }
  const deferred = launch.defer();
  return { deferred, begin: () => launch.begin().then(() => undefined) };
}

/**
 * For a task-supporting tool that needs input before it is worth a task: call it first thing
 * in the handler, synchronously (before any `await`). When the call may become a task
 * (2026-07-28, the client declared the tasks extension), the input `gather` asks for is
 * collected with `input_required` rounds on the original request, and the task is created
 * once `gather` resolves; the handler then goes on as the task. Anywhere else it simply runs
 * `gather`.
 */
export async function beforeTask<T>(ctx: RequestContext, gather: () => Promise<T>): Promise<T> {
  const launch = launchOf(ctx);
  if (!launch?.defer()) {
    return gather();
  }
  const value = await gather();
  await launch.begin();
  return value;
}

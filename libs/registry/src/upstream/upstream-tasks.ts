/*
 * The tasks extension (`io.modelcontextprotocol/tasks`, 2026-07-28) toward upstreams. A call
 * that may become a task on the gateway (its client declared the extension, or sent a
 * 2025-11-25 `task`) is forwarded declaring the extension too, and the upstream decides. When
 * it answers with a task, the gateway's own task stands for it: the gateway follows the
 * upstream task (tasks/get at its poll interval), mirrors its statusMessage, answers its
 * input requests through the caller's context (the gateway task asks its client under the
 * same keys) with tasks/update, ends with its result or error, and cancels it upstream when
 * its own task is cancelled. The client never sees the upstream's task id.
 *
 * A 2025-11-25 upstream's experimental tasks are followed the same way where its tool requires
 * them: the call carries `task`, tasks/get is polled, and once the task asks for input or
 * ends, tasks/result takes its input requests (relayed like any mid-call request) and its
 * outcome.
 */
import {
  Cancellation,
  ErrorCode,
  HandlerContext,
  McpError,
  MODERN_PROTOCOL_VERSION,
  NODE_STOPPED_MESSAGE,
  TaskHandedOverError,
  TASKS_EXTENSION,
  type JsonObject,
  type RequestContext,
  type TaskLaunchControl,
  type TaskProgress,
  type TaskWorkRef,
} from '@portico/mcp-protocol';
import type { Transport } from '@modelcontextprotocol/client';
import { setTimeout as delay } from 'node:timers/promises';
import { answerInputRequests } from './upstream-relay';

/**
 * Where a lifted task handle travels inside a complete tools/call result (liftTaskResults);
 * the key is Portico's own and never leaves the upstream source.
 */
export const UPSTREAM_TASK_META = 'dev.portico/upstream-task';

/** The TaskWorkRef kind of a gateway task that follows an upstream's task. */
export const UPSTREAM_TASK_WORK = 'upstream-task';

/** What a node taking a task over needs to follow its upstream task (see upstreamTaskWork). */
export interface UpstreamTaskWork {
  readonly tenantId: string;
  /** The backend's name (unique within its tenant). */
  readonly backend: string;
  readonly taskId: string;
}

/** The work record of a gateway task following `work`'s upstream task (2026-07-28). */
export function upstreamTaskWork(work: UpstreamTaskWork): TaskWorkRef {
  return {
    kind: UPSTREAM_TASK_WORK,
    id: JSON.stringify({ t: work.tenantId, b: work.backend, u: work.taskId }),
  };
}

/** The upstream task a work record names; undefined for another kind or a malformed one. */
export function parseUpstreamTaskWork(ref: TaskWorkRef): UpstreamTaskWork | undefined {
  if (ref.kind !== UPSTREAM_TASK_WORK) {
    return undefined;
  }
  try {
    const { t, b, u } = JSON.parse(ref.id) as Record<string, unknown>;
    return typeof t === 'string' && typeof b === 'string' && typeof u === 'string'
      ? { tenantId: t, backend: b, taskId: u }
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The context a node that took a task over follows its upstream task with: the task's
 * cancellation, its progress to `progress`; no client to ask (the request that started the
 * task was answered by the node that stopped), so input the upstream asks for fails the task
 * with a clear message.
 */
export function adoptedTaskContext(
  cancellation: Cancellation,
  progress?: (progress: TaskProgress) => void,
): RequestContext {
  return new HandlerContext({
    era: 'modern',
    protocolVersion: MODERN_PROTOCOL_VERSION,
    requestId: 'adopted-task',
    method: 'tools/call',
    // Every input reaches the broker, which says why it cannot be answered.
    clientCapabilities: { elicitation: { form: {}, url: {} }, sampling: {}, roots: {} },
    cancellation,
    progressToken: 'adopted-task',
    logsEnabled: false,
    outbound: {
      send: (message) => {
        const params = ('method' in message && message.params) as Partial<TaskProgress> | false;
        if (params && typeof params.progress === 'number') {
          progress?.({ progress: params.progress, total: params.total, message: params.message });
        }
      },
    },
    broker: {
      request: () =>
        Promise.reject(
          new McpError(
            ErrorCode.InternalError,
            `${NODE_STOPPED_MESSAGE}; its upstream task then asked for client input, which no ` +
              'client can give here: call the tool again',
          ),
        ),
    },
  });
}

/** The bounds on the poll interval an upstream asks for. */
const MIN_POLL_MS = 50;
const MAX_POLL_MS = 5_000;
const DEFAULT_POLL_MS = 500;

/** tools/call ids awaiting their answer that liftTaskResults keeps at most. */
const MAX_TRACKED_CALLS = 10_000;

/** When a deferred call first looks at a 2025-11-25 upstream task it created. */
const FIRST_LOOK_MS = 100;

/** Failed tasks/get in a row before the gateway gives up following a task. */
const MAX_POLL_FAILURES = 5;

/**
 * The SDK v2 client has no runtime for the tasks extension: its 2026-07-28 codec refuses a
 * tools/call answered with `resultType: "task"`. This lifts such an answer, as it arrives,
 * into a complete result (no content) carrying the task handle under UPSTREAM_TASK_META,
 * which the source takes out again (upstreamTaskOf). Call it once the client is connected:
 * the SDK sets the transport's `onmessage` while connecting.
 */
export function liftTaskResults(transport: Transport): void {
  const deliver = transport.onmessage;
  if (!deliver) {
    return;
  }
  // Only the answers to tools/call are lifted: the ids of those in flight.
  const calls = new Set<unknown>();
  const send = transport.send.bind(transport);
  transport.send = (message, options) => {
    const m = message as { id?: unknown; method?: unknown };
    if (m.method === 'tools/call' && m.id !== undefined) {
      calls.add(m.id);
      if (calls.size > MAX_TRACKED_CALLS) {
        // Answers that never came (timed out, connection lost): forget the oldest.
        calls.delete(calls.values().next().value);
      }
    }
    return send(message, options);
  };
  transport.onmessage = (message, extra) => {
    const m = message as { id?: unknown; method?: unknown; result?: unknown; error?: unknown };
    if (m.method !== undefined || !calls.delete(m.id)) {
      deliver.call(transport, message, extra);
      return;
    }
    const handle = taskHandleOf(m.result);
    if (handle) {
      const lifted = {
        ...message,
        result: { resultType: 'complete', content: [], _meta: { [UPSTREAM_TASK_META]: handle } },
      };
      deliver.call(transport, lifted, extra);
      return;
    }
    deliver.call(transport, message, extra);
  };
}

/**
 * The task a tools/call result stands for: a 2026-07-28 CreateTaskResult (`resultType:
 * "task"`, the task's fields beside it) or a 2025-11-25 one (`{ task }`, no content).
 */
function taskHandleOf(result: unknown): JsonObject | undefined {
  if (typeof result !== 'object' || result === null) {
    return undefined;
  }
  const r = result as Record<string, unknown>;
  if (r.resultType === 'task') {
    return r;
  }
  const task = r.task;
  if (
    r.content === undefined &&
    typeof task === 'object' &&
    task !== null &&
    typeof (task as Record<string, unknown>).taskId === 'string'
  ) {
    return task as JsonObject;
  }
  return undefined;
}

/** The upstream task handle a lifted result carries, if any. */
export function upstreamTaskOf(result: Record<string, unknown>): JsonObject | undefined {
  const meta = result._meta;
  if (typeof meta !== 'object' || meta === null) {
    return undefined;
  }
  const task = (meta as Record<string, unknown>)[UPSTREAM_TASK_META];
  if (
    typeof task !== 'object' ||
    task === null ||
    typeof (task as JsonObject).taskId !== 'string'
  ) {
    return undefined;
  }
  return task as JsonObject;
}

/** Client capabilities that declare the tasks extension, besides `caps`. */
export function withTasksExtension(caps: JsonObject): JsonObject {
  const extensions =
    typeof caps.extensions === 'object' && caps.extensions !== null
      ? (caps.extensions as JsonObject)
      : {};
  return { ...caps, extensions: { ...extensions, [TASKS_EXTENSION]: {} } };
}

/** Whether an upstream's capabilities (server/discover) offer the tasks extension. */
export function offersTasks(capabilities: unknown): boolean {
  const extensions = (capabilities as { extensions?: unknown } | undefined)?.extensions;
  if (typeof extensions !== 'object' || extensions === null) {
    return false;
  }
  const declared = (extensions as Record<string, unknown>)[TASKS_EXTENSION];
  return typeof declared === 'object' && declared !== null;
}

/** The task methods of the upstream, bound to one backend's client and policies. */
export interface UpstreamTaskMethods {
  get(taskId: string, signal: AbortSignal): Promise<JsonObject>;
  update(taskId: string, inputResponses: JsonObject, signal: AbortSignal): Promise<void>;
  cancel(taskId: string): Promise<void>;
}

/**
 * Follows an upstream task to its end and returns its result (a tools/call result), or throws
 * its error. Runs as long as the caller's context lives: the gateway task's, whose
 * cancellation (tasks/cancel on any node, or the node's shutdown) cancels the upstream task.
 */
export async function followUpstreamTask(
  handle: JsonObject,
  ctx: RequestContext,
  methods: UpstreamTaskMethods,
  label: string,
): Promise<JsonObject> {
  const taskId = handle.taskId as string;
  const signal = ctx.signal;
  const answered = new Set<string>();
  const status = new StatusMirror(ctx);
  let task = handle;
  let failures = 0;
  return cancellingUpstream(taskId, signal, methods, async () => {
    for (;;) {
      await status.mirror(task);
      let asked = false;
      switch (task.status) {
        case 'completed':
          return completedResult(task);
        case 'failed':
          throw failedError(task, label);
        case 'cancelled':
          throw new McpError(
            ErrorCode.InternalError,
            `${label}: the upstream cancelled the task${status.last ? ` (${status.last})` : ''}`,
          );
        case 'input_required':
          asked = await answerNew(task, ctx, methods, answered, signal);
          break;
      }
      if (!asked) {
        await delay(pollInterval(task, handle), undefined, { signal });
      }
      try {
        task = { taskId, ...(await methods.get(taskId, signal)) };
        failures = 0;
      } catch (err) {
        if (signal.aborted || ++failures >= MAX_POLL_FAILURES || !transient(err)) {
          throw err;
        }
      }
    }
  });
}

/** Mirrors an upstream task's statusMessage as the caller's progress, once per message. */
class StatusMirror {
  last?: string;
  private step = 0;

  constructor(private readonly ctx: RequestContext) {}

  async mirror(task: JsonObject): Promise<void> {
    if (typeof task.statusMessage === 'string' && task.statusMessage !== this.last) {
      this.last = task.statusMessage;
      await this.ctx.progress(++this.step, undefined, this.last);
    }
  }
}

/**
 * Runs `follow`; when it ends because the gateway's task was cancelled (or its node stops),
 * the upstream's task is cancelled too, and the cancellation is what the follow ends with.
 */
async function cancellingUpstream<T>(
  taskId: string,
  signal: AbortSignal,
  methods: { cancel(taskId: string): Promise<void> },
  follow: () => Promise<T>,
): Promise<T> {
  try {
    return await follow();
  } catch (err) {
    if (signal.aborted) {
      // Handed over to another node, the upstream task goes on there; else it is cancelled.
      if (!(signal.reason instanceof TaskHandedOverError)) {
        void methods.cancel(taskId).catch(() => undefined);
      }
      throw signal.reason ?? err;
    }
    throw err;
  }
}

/** The experimental task methods of a 2025-11-25 upstream, bound to one backend. */
export interface LegacyUpstreamTaskMethods {
  get(taskId: string, signal: AbortSignal): Promise<JsonObject>;
  /** Waits for the task's end, relaying its input requests meanwhile; its result or error. */
  result(taskId: string, signal: AbortSignal): Promise<JsonObject>;
  cancel(taskId: string): Promise<void>;
}

/** The statuses after which a 2025-11-25 task's tasks/result answers (or asks for input). */
const LEGACY_RESULT_READY = new Set(['input_required', 'completed', 'failed', 'cancelled']);

/**
 * Follows a 2025-11-25 upstream task: tasks/get at its poll interval until it asks for input
 * or ends, then tasks/result, whose stream carries the input requests (they reach the caller
 * as any mid-call request of the call does) and ends with the outcome. A tasks/result cut
 * short (the backend's timeout while the task still works) goes back to polling.
 */
export async function followLegacyUpstreamTask(
  handle: JsonObject,
  ctx: RequestContext,
  methods: LegacyUpstreamTaskMethods,
  launch?: TaskLaunchControl,
): Promise<JsonObject> {
  const taskId = handle.taskId as string;
  const signal = ctx.signal;
  const status = new StatusMirror(ctx);
  let task = handle;
  let failures = 0;
  return cancellingUpstream(taskId, signal, methods, async () => {
    if (launch?.deferred) {
      // A 2025-11-25 task exists from the call on, and asks its questions through tasks/result.
      // A 2026-07-28 client may answer questions before the gateway's task exists (input_required
      // rounds): one early look tells whether the task asks first; if so, tasks/result below
      // relays the questions to the request, and the call becomes a task once they are answered
      // (relayInput); if not, it becomes one now.
      await delay(FIRST_LOOK_MS, undefined, { signal });
      task = { ...task, ...(await methods.get(taskId, signal)) };
      if (task.status !== 'input_required') {
        await launch.begin();
      }
    }
    for (;;) {
      await status.mirror(task);
      try {
        if (LEGACY_RESULT_READY.has(task.status as string)) {
          const result = { ...(await methods.result(taskId, signal)) };
          delete result.resultType;
          return result;
        }
        await delay(legacyPollInterval(task, handle), undefined, { signal });
        task = { ...task, ...(await methods.get(taskId, signal)) };
        failures = 0;
      } catch (err) {
        if (signal.aborted || ++failures >= MAX_POLL_FAILURES || !transient(err)) {
          throw err;
        }
        // Poll again before asking for the result again.
        task = { ...task, status: 'working' };
      }
    }
  });
}

function legacyPollInterval(task: JsonObject, handle: JsonObject): number {
  const asked = task.pollInterval ?? handle.pollInterval;
  return pollInterval({ pollIntervalMs: asked }, {});
}

/** Answers the input requests not answered yet; true when it sent any. */
async function answerNew(
  task: JsonObject,
  ctx: RequestContext,
  methods: UpstreamTaskMethods,
  answered: Set<string>,
  signal: AbortSignal,
): Promise<boolean> {
  const requests =
    typeof task.inputRequests === 'object' && task.inputRequests !== null
      ? (task.inputRequests as Record<string, unknown>)
      : {};
  // A key the upstream no longer shows was taken; it may use it again for a new question.
  for (const key of answered) {
    if (!(key in requests)) {
      answered.delete(key);
    }
  }
  const fresh = Object.fromEntries(Object.entries(requests).filter(([key]) => !answered.has(key)));
  if (Object.keys(fresh).length === 0) {
    return false;
  }
  const inputResponses = await answerInputRequests(ctx, fresh);
  await methods.update(task.taskId as string, inputResponses, signal);
  Object.keys(fresh).forEach((key) => answered.add(key));
  return true;
}

/** A completed task's inlined result, without the upstream's envelope. */
function completedResult(task: JsonObject): JsonObject {
  const result: JsonObject =
    typeof task.result === 'object' && task.result !== null
      ? { ...(task.result as JsonObject) }
      : { content: [] };
  delete result.resultType;
  return result;
}

/** A failed task's error, as the upstream gave it. */
function failedError(task: JsonObject, label: string): McpError {
  const error = task.error as { code?: unknown; message?: unknown; data?: unknown } | undefined;
  if (error && typeof error.code === 'number' && typeof error.message === 'string') {
    return new McpError(error.code, error.message, error.data);
  }
  const why = typeof task.statusMessage === 'string' ? `: ${task.statusMessage}` : '';
  return new McpError(ErrorCode.InternalError, `${label}: the upstream task failed${why}`);
}

function pollInterval(task: JsonObject, handle: JsonObject): number {
  const asked = task.pollIntervalMs ?? handle.pollIntervalMs;
  const ms = typeof asked === 'number' && Number.isFinite(asked) ? asked : DEFAULT_POLL_MS;
  return Math.min(MAX_POLL_MS, Math.max(MIN_POLL_MS, ms));
}

/** A failed poll worth another try: not an answer of the upstream's (those are final). */
function transient(err: unknown): boolean {
  return !(err instanceof McpError) || err.code === ErrorCode.InternalError;
}

/*
 * Task records on the wire. 2026-07-28 (the io.modelcontextprotocol/tasks extension): flat
 * `CreateTaskResult` (`resultType: "task"`), `ttlMs`/`pollIntervalMs`, and `tasks/get` inlining
 * the outcome (a DetailedTask). 2025-11-25 (experimental tasks): `{ task }` on creation,
 * `ttl`/`pollInterval`, the outcome through `tasks/result` tagged with the related-task `_meta`.
 */
import { ErrorCode, META } from '../constants';
import { McpError, type JsonObject, type JsonRpcErrorObject } from '../jsonrpc';
import type { TaskRecord } from './task.types';

function iso(epochMs: number): string {
  return new Date(epochMs).toISOString();
}

/** The Task fields of 2026-07-28. */
export function modernTask(task: TaskRecord): JsonObject {
  const wire: JsonObject = {
    taskId: task.taskId,
    status: task.status,
    createdAt: iso(task.createdAt),
    lastUpdatedAt: iso(task.lastUpdatedAt),
    ttlMs: task.ttlMs,
    pollIntervalMs: task.pollIntervalMs,
  };
  if (task.statusMessage !== undefined) {
    wire.statusMessage = task.statusMessage;
  }
  return wire;
}

/** The answer to a tools/call that became a task (2026-07-28). */
export function modernCreateTaskResult(task: TaskRecord): JsonObject {
  return { resultType: 'task', ...modernTask(task) };
}

/** `tasks/get` (2026-07-28): the task with its pending input, result or error inlined. */
export function modernDetailedTask(task: TaskRecord): JsonObject {
  const wire = modernTask(task);
  switch (task.status) {
    case 'input_required':
      wire.inputRequests = { ...task.inputRequests };
      break;
    case 'completed':
      wire.result = { resultType: 'complete', ...(task.result ?? { content: [] }) };
      break;
    case 'failed':
      wire.error = { ...(task.error ?? internalError()) };
      break;
  }
  return wire;
}

/** The Task object of 2025-11-25. */
export function legacyTask(task: TaskRecord): JsonObject {
  const wire: JsonObject = {
    taskId: task.taskId,
    status: task.status,
    createdAt: iso(task.createdAt),
    lastUpdatedAt: iso(task.lastUpdatedAt),
    ttl: task.ttlMs,
    pollInterval: task.pollIntervalMs,
  };
  if (task.statusMessage !== undefined) {
    wire.statusMessage = task.statusMessage;
  }
  return wire;
}

/** The answer to a task-augmented tools/call (2025-11-25). */
export function legacyCreateTaskResult(task: TaskRecord): JsonObject {
  return { task: legacyTask(task) };
}

/**
 * `tasks/result` of a terminal task (2025-11-25): exactly what the call would have returned, a
 * result tagged with the task, or its JSON-RPC error thrown as it was.
 */
export function legacyTaskResult(task: TaskRecord): JsonObject {
  if (task.result !== undefined) {
    const meta = task.result._meta;
    return {
      ...task.result,
      _meta: {
        ...(typeof meta === 'object' && meta !== null ? meta : {}),
        [META.relatedTask]: { taskId: task.taskId },
      },
    };
  }
  const error: JsonRpcErrorObject =
    task.error ??
    (task.status === 'cancelled'
      ? { code: ErrorCode.InternalError, message: 'The task was cancelled' }
      : internalError());
  throw new McpError(error.code, error.message, error.data);
}

function internalError(): JsonRpcErrorObject {
  return { code: ErrorCode.InternalError, message: 'Internal error' };
}

import { EventEmitter } from 'node:events';
import type { JsonObject } from '../jsonrpc';
import type { TaskStore } from './task-store';
import {
  isTerminalStatus,
  type NewTask,
  type TaskInputRequest,
  type TaskOutcome,
  type TaskRecord,
  type TaskSignal,
  type TaskWorkRef,
} from './task.types';

interface Entry {
  record: TaskRecord;
  timer: NodeJS.Timeout;
}

const SIGNAL = 'signal';

/**
 * Tasks in this process: the embedded default, and a single node's store. Records are copied
 * in and out, so callers never share state with the store. Leases are trivial here: the only
 * node that can read a task is the one running it, so no task is ever an orphan.
 */
export class MemoryTaskStore implements TaskStore {
  private readonly tasks = new Map<string, Entry>();
  private readonly signals = new EventEmitter().setMaxListeners(0);

  create(task: NewTask): Promise<TaskRecord> {
    const record: TaskRecord = {
      ...task,
      status: 'working',
      lastUpdatedAt: task.createdAt,
      inputRequests: {},
    };
    const expiresIn = Math.max(0, task.createdAt + task.ttlMs - Date.now());
    // Long TTLs exceed what one timer can wait; such tasks are also dropped when read late.
    const timer = setTimeout(
      () => this.tasks.delete(task.taskId),
      Math.min(expiresIn, 2 ** 31 - 1),
    );
    timer.unref();
    this.tasks.set(task.taskId, { record, timer });
    return Promise.resolve(structuredClone(record));
  }

  get(taskId: string): Promise<TaskRecord | undefined> {
    const record = this.live(taskId);
    return Promise.resolve(record && structuredClone(record));
  }

  requestInput(
    taskId: string,
    requests: Readonly<Record<string, TaskInputRequest>>,
  ): Promise<boolean> {
    const record = this.live(taskId);
    if (!record || isTerminalStatus(record.status)) {
      return Promise.resolve(false);
    }
    this.replace(taskId, {
      ...record,
      status: 'input_required',
      lastUpdatedAt: Date.now(),
      inputRequests: { ...record.inputRequests, ...structuredClone(requests) },
    });
    return Promise.resolve(true);
  }

  answer(
    taskId: string,
    responses: Readonly<Record<string, JsonObject>>,
  ): Promise<string[] | undefined> {
    const record = this.live(taskId);
    if (!record) {
      return Promise.resolve(undefined);
    }
    const accepted = isTerminalStatus(record.status)
      ? []
      : Object.keys(responses).filter((key) => Object.hasOwn(record.inputRequests, key));
    if (accepted.length === 0) {
      return Promise.resolve([]);
    }
    const remaining = { ...record.inputRequests };
    const delivered: Record<string, JsonObject> = {};
    for (const key of accepted) {
      delete remaining[key];
      delivered[key] = structuredClone(responses[key]);
    }
    this.replace(taskId, {
      ...record,
      status: Object.keys(remaining).length === 0 ? 'working' : 'input_required',
      lastUpdatedAt: Date.now(),
      inputRequests: remaining,
    });
    this.emit({ type: 'input', taskId, responses: delivered });
    return Promise.resolve(accepted);
  }

  report(taskId: string, statusMessage: string): Promise<boolean> {
    const record = this.live(taskId);
    if (!record || isTerminalStatus(record.status)) {
      return Promise.resolve(false);
    }
    this.replace(taskId, { ...record, statusMessage, lastUpdatedAt: Date.now() });
    return Promise.resolve(true);
  }

  finish(taskId: string, outcome: TaskOutcome): Promise<boolean> {
    const record = this.live(taskId);
    if (!record || isTerminalStatus(record.status)) {
      return Promise.resolve(false);
    }
    const { status, statusMessage, result, error } = structuredClone(outcome);
    this.replace(taskId, {
      ...withoutOutcome(record),
      status,
      lastUpdatedAt: Date.now(),
      inputRequests: {},
      ...(statusMessage !== undefined && { statusMessage }),
      ...(result !== undefined && { result }),
      ...(error !== undefined && { error }),
    });
    return Promise.resolve(true);
  }

  cancel(taskId: string, statusMessage: string): Promise<TaskRecord | undefined> {
    const record = this.live(taskId);
    if (!record) {
      return Promise.resolve(undefined);
    }
    if (isTerminalStatus(record.status)) {
      return Promise.resolve(structuredClone(record));
    }
    const cancelled: TaskRecord = {
      ...withoutOutcome(record),
      status: 'cancelled',
      statusMessage,
      lastUpdatedAt: Date.now(),
      inputRequests: {},
    };
    this.replace(taskId, cancelled);
    this.emit({ type: 'cancel', taskId });
    return Promise.resolve(structuredClone(cancelled));
  }

  attachWork(taskId: string, work: TaskWorkRef): Promise<boolean> {
    const record = this.live(taskId);
    if (!record || isTerminalStatus(record.status)) {
      return Promise.resolve(false);
    }
    this.tasks.get(taskId)!.record = { ...record, work: { ...work } };
    return Promise.resolve(true);
  }

  renew(): Promise<string[]> {
    return Promise.resolve([]);
  }

  claim(): Promise<boolean> {
    return Promise.resolve(false);
  }

  release(): Promise<void> {
    return Promise.resolve();
  }

  listBySession(sessionId: string): Promise<TaskRecord[]> {
    const found: TaskRecord[] = [];
    for (const taskId of this.tasks.keys()) {
      const record = this.live(taskId);
      if (record?.sessionId === sessionId) {
        found.push(structuredClone(record));
      }
    }
    return Promise.resolve(found.reverse());
  }

  subscribe(listener: (signal: TaskSignal) => void): Promise<() => Promise<void>> {
    const handler = (signal: TaskSignal): void => listener(structuredClone(signal));
    this.signals.on(SIGNAL, handler);
    return Promise.resolve(() => {
      this.signals.off(SIGNAL, handler);
      return Promise.resolve();
    });
  }

  close(): Promise<void> {
    for (const entry of this.tasks.values()) {
      clearTimeout(entry.timer);
    }
    this.tasks.clear();
    this.signals.removeAllListeners();
    return Promise.resolve();
  }

  private live(taskId: string): TaskRecord | undefined {
    const entry = this.tasks.get(taskId);
    if (!entry) {
      return undefined;
    }
    if (entry.record.createdAt + entry.record.ttlMs <= Date.now()) {
      clearTimeout(entry.timer);
      this.tasks.delete(taskId);
      return undefined;
    }
    return entry.record;
  }

  private replace(taskId: string, record: TaskRecord): void {
    const entry = this.tasks.get(taskId);
    if (entry) {
      entry.record = record;
      this.emit({ type: 'changed', taskId });
    }
  }

  private emit(signal: TaskSignal): void {
    // Asynchronous like a real bus: listeners never run inside the store's own call.
    queueMicrotask(() => this.signals.emit(SIGNAL, signal));
  }
}

function withoutOutcome(record: TaskRecord): TaskRecord {
  const { statusMessage: _m, result: _r, error: _e, ...rest } = record;
  return rest;
}

import { EventEmitter } from 'node:events';
import Redis, { type ChainableCommander, type RedisOptions } from 'ioredis';
import {
  isTerminalStatus,
  TASK_STATUSES,
  type JsonObject,
  type NewTask,
  type TaskInputRequest,
  type TaskLease,
  type TaskOutcome,
  type TaskRecord,
  type TaskSignal,
  type TaskStatus,
  type TaskStore,
  type TaskWorkRef,
} from '@portico/mcp-protocol';
import { keepSubscribed } from './redis-subscriber';

/**
 * A task's state: a hash (meta, status, updated, expires, message, result, error; work, the
 * JSON TaskWorkRef; node and lease, who runs it and until when, in Redis's clock).
 */
export const taskKey = (prefix: string, taskId: string): string => `${prefix}task:${taskId}`;
/** A task's outstanding input requests: a hash of key → JSON request. */
export const taskInputKey = (prefix: string, taskId: string): string =>
  `${prefix}task:${taskId}:input`;
/** The tasks a 2025-era session created: a sorted set of task ids by creation time. */
export const sessionTasksKey = (prefix: string, sessionId: string): string =>
  `${prefix}tasks:session:${sessionId}`;
/** Where every node's task signals (changed, cancel, input) are published. */
export const taskSignalChannel = (prefix: string): string => `${prefix}task-signals`;

const TERMINAL = `
local function terminal(status)
  return status == 'completed' or status == 'failed' or status == 'cancelled'
end
`;

/** Lease expiries are in Redis's clock, the one clock every node shares. */
const NOW = `
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

/** KEYS task; ARGV node, lease ms. Leases a new task to its node. */
const LEASE = `${NOW}
redis.call('HSET', KEYS[1], 'node', ARGV[1], 'lease', now() + tonumber(ARGV[2]))
return 1
`;

/**
 * KEYS the tasks; ARGV node, lease ms. Extends the node's leases; returns the (1-based)
 * positions of the live tasks another node holds.
 */
const RENEW = `${TERMINAL}${NOW}
local lost = {}
local expiry = now() + tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  local status = redis.call('HGET', key, 'status')
  if status and not terminal(status) then
    if redis.call('HGET', key, 'node') == ARGV[1] then
      redis.call('HSET', key, 'lease', expiry)
    else
      table.insert(lost, i)
    end
  end
end
return lost
`;

/**
 * KEYS task; ARGV node, lease ms. 1 when the task was live with a lapsed lease and is now the
 * node's; 0 otherwise. A task without a lease is never an orphan.
 */
const CLAIM = `${TERMINAL}${NOW}
local status = redis.call('HGET', KEYS[1], 'status')
if not status or terminal(status) then
  return 0
end
local lease = tonumber(redis.call('HGET', KEYS[1], 'lease'))
local t = now()
if not lease or lease >= t then
  return 0
end
redis.call('HSET', KEYS[1], 'node', ARGV[1], 'lease', t + tonumber(ARGV[2]))
return 1
`;

/** KEYS the tasks; ARGV node. Lets the node's leases lapse now. */
const RELEASE = `
for _, key in ipairs(KEYS) do
  if redis.call('HGET', key, 'node') == ARGV[1] then
    redis.call('HSET', key, 'lease', 0)
  end
end
return 1
`;

/** KEYS task; ARGV now, message. 1 when set, 0 when the task is gone or terminal. */
const REPORT = `${TERMINAL}
local status = redis.call('HGET', KEYS[1], 'status')
if not status or terminal(status) then
  return 0
end
redis.call('HSET', KEYS[1], 'message', ARGV[2], 'updated', ARGV[1])
return 1
`;

/** KEYS task; ARGV work (JSON). 1 when recorded, 0 when the task is gone or terminal. */
const ATTACH = `${TERMINAL}
local status = redis.call('HGET', KEYS[1], 'status')
if not status or terminal(status) then
  return 0
end
redis.call('HSET', KEYS[1], 'work', ARGV[1])
return 1
`;

/** KEYS task, inputs; ARGV now, then key/JSON pairs. 1 when added, 0 when gone or terminal. */
const REQUEST_INPUT = `${TERMINAL}
local status = redis.call('HGET', KEYS[1], 'status')
if not status or terminal(status) then
  return 0
end
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIREAT', KEYS[2], redis.call('HGET', KEYS[1], 'expires'))
redis.call('HSET', KEYS[1], 'status', 'input_required', 'updated', ARGV[1])
return 1
`;

/**
 * KEYS task, inputs; ARGV now, then the answered keys. The keys that were outstanding (now
 * removed), or false for an unknown task. Working again once nothing is outstanding.
 */
const ANSWER = `${TERMINAL}
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return false
end
local accepted = {}
if terminal(status) then
  return accepted
end
for i = 2, #ARGV do
  if redis.call('HDEL', KEYS[2], ARGV[i]) == 1 then
    table.insert(accepted, ARGV[i])
  end
end
if #accepted > 0 then
  local next = 'input_required'
  if redis.call('HLEN', KEYS[2]) == 0 then
    next = 'working'
  end
  redis.call('HSET', KEYS[1], 'status', next, 'updated', ARGV[1])
end
return accepted
`;

/**
 * KEYS task, inputs; ARGV now, status, message, result, error (JSON, '' for none). 1 when the
 * task ended now, 0 when it was already terminal or is gone. Outstanding input is dropped.
 */
const FINISH = `${TERMINAL}
local status = redis.call('HGET', KEYS[1], 'status')
if not status or terminal(status) then
  return 0
end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'updated', ARGV[1])
redis.call('HDEL', KEYS[1], 'message', 'result', 'error')
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'message', ARGV[3])
end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'result', ARGV[4])
end
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'error', ARGV[5])
end
redis.call('DEL', KEYS[2])
return 1
`;

/**
 * KEYS the session's task set; ARGV creation time (the score and now), task id, expiry (epoch
 * ms). The set is kept as long as its longest-lived task.
 */
const INDEX = `
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local expires = tonumber(ARGV[3])
if redis.call('PTTL', KEYS[1]) < expires - tonumber(ARGV[1]) then
  redis.call('PEXPIREAT', KEYS[1], expires)
end
return 1
`;

interface IndexInTransaction {
  porticoTaskIndex(key: string, score: number, taskId: string, expires: number): ChainableCommander;
  porticoTaskLease(key: string, node: string, ms: number): ChainableCommander;
}

interface TaskCommands {
  porticoTaskRequestInput(
    task: string,
    inputs: string,
    ...args: (string | number)[]
  ): Promise<number>;
  porticoTaskAnswer(
    task: string,
    inputs: string,
    ...args: (string | number)[]
  ): Promise<string[] | null>;
  porticoTaskFinish(task: string, inputs: string, ...args: (string | number)[]): Promise<number>;
  porticoTaskIndex(key: string, score: number, taskId: string, expires: number): Promise<number>;
  porticoTaskRenew(numberOfKeys: number, ...args: (string | number)[]): Promise<number[]>;
  porticoTaskClaim(task: string, node: string, ms: number): Promise<number>;
  porticoTaskRelease(numberOfKeys: number, ...args: string[]): Promise<number>;
  porticoTaskAttach(task: string, work: string): Promise<number>;
  porticoTaskReport(task: string, now: number, message: string): Promise<number>;
}

export interface RedisTaskStoreOptions {
  readonly url: string;
  /** Prefix of every key and channel (REDIS_KEY_PREFIX). */
  readonly keyPrefix: string;
}

const SIGNAL = 'signal';

/**
 * Tasks in Redis, shared by every node: each task is a hash (plus a hash of its outstanding
 * input requests) that expires with the task's TTL; status changes are Lua scripts, so a
 * terminal status is never left; signals travel on one pub/sub channel. Keys and channel are
 * named above and nowhere else.
 */
export class RedisTaskStore implements TaskStore {
  private client?: Redis & TaskCommands;
  private subscriber?: Redis;
  private subscribing?: Promise<void>;
  private readonly signals = new EventEmitter().setMaxListeners(0);
  private readonly prefix: string;
  private closed = false;

  constructor(private readonly options: RedisTaskStoreOptions) {
    this.prefix = options.keyPrefix;
  }

  /** Connected on first use: processes that never run a task open no connection. */
  private get redis(): Redis & TaskCommands {
    if (this.closed) {
      throw new Error('The task store is closed');
    }
    if (!this.client) {
      const client = this.connection() as Redis & TaskCommands;
      client.defineCommand('porticoTaskRequestInput', { numberOfKeys: 2, lua: REQUEST_INPUT });
      client.defineCommand('porticoTaskAnswer', { numberOfKeys: 2, lua: ANSWER });
      client.defineCommand('porticoTaskFinish', { numberOfKeys: 2, lua: FINISH });
      client.defineCommand('porticoTaskIndex', { numberOfKeys: 1, lua: INDEX });
      client.defineCommand('porticoTaskLease', { numberOfKeys: 1, lua: LEASE });
      // Variadic keys: the number of keys comes first in each call.
      client.defineCommand('porticoTaskRenew', { lua: RENEW });
      client.defineCommand('porticoTaskClaim', { numberOfKeys: 1, lua: CLAIM });
      client.defineCommand('porticoTaskRelease', { lua: RELEASE });
      client.defineCommand('porticoTaskAttach', { numberOfKeys: 1, lua: ATTACH });
      client.defineCommand('porticoTaskReport', { numberOfKeys: 1, lua: REPORT });
      this.client = client;
    }
    return this.client;
  }

  async create(task: NewTask, lease?: TaskLease): Promise<TaskRecord> {
    const key = taskKey(this.prefix, task.taskId);
    const expires = task.createdAt + task.ttlMs;
    const multi = this.redis
      .multi()
      .hset(key, {
        meta: JSON.stringify(task),
        status: 'working',
        updated: task.createdAt,
        expires,
      })
      .pexpireat(key, expires);
    if (lease) {
      (multi as ChainableCommander & IndexInTransaction).porticoTaskLease(
        key,
        lease.node,
        lease.ms,
      );
    }
    if (task.sessionId !== undefined) {
      (multi as ChainableCommander & IndexInTransaction).porticoTaskIndex(
        sessionTasksKey(this.prefix, task.sessionId),
        task.createdAt,
        task.taskId,
        expires,
      );
    }
    // Acknowledged by Redis before the caller hands out the id: any node can read it then.
    await execOrThrow(multi.exec());
    return { ...task, status: 'working', lastUpdatedAt: task.createdAt, inputRequests: {} };
  }

  async get(taskId: string): Promise<TaskRecord | undefined> {
    const results = await execOrThrow(
      this.redis
        .multi()
        .hgetall(taskKey(this.prefix, taskId))
        .hgetall(taskInputKey(this.prefix, taskId))
        .time()
        .exec(),
    );
    const [seconds, micros] = results[2] as [string, string];
    return toRecord(
      results[0] as Record<string, string>,
      results[1] as Record<string, string>,
      Number(seconds) * 1000 + Math.floor(Number(micros) / 1000),
    );
  }

  async requestInput(
    taskId: string,
    requests: Readonly<Record<string, TaskInputRequest>>,
  ): Promise<boolean> {
    const pairs = Object.entries(requests).flatMap(([key, request]) => [
      key,
      JSON.stringify(request),
    ]);
    const added = await this.redis.porticoTaskRequestInput(
      taskKey(this.prefix, taskId),
      taskInputKey(this.prefix, taskId),
      Date.now(),
      ...pairs,
    );
    if (added === 1) {
      await this.publish({ type: 'changed', taskId });
    }
    return added === 1;
  }

  async answer(
    taskId: string,
    responses: Readonly<Record<string, JsonObject>>,
  ): Promise<string[] | undefined> {
    const keys = Object.keys(responses);
    const accepted = await this.redis.porticoTaskAnswer(
      taskKey(this.prefix, taskId),
      taskInputKey(this.prefix, taskId),
      Date.now(),
      ...keys,
    );
    if (accepted === null) {
      return undefined;
    }
    if (accepted.length > 0) {
      const delivered: Record<string, JsonObject> = {};
      for (const key of accepted) {
        delivered[key] = responses[key];
      }
      await this.publish({ type: 'changed', taskId });
      await this.publish({ type: 'input', taskId, responses: delivered });
    }
    return accepted;
  }

  async report(taskId: string, statusMessage: string): Promise<boolean> {
    const set = await this.redis.porticoTaskReport(
      taskKey(this.prefix, taskId),
      Date.now(),
      statusMessage,
    );
    if (set === 1) {
      await this.publish({ type: 'changed', taskId });
    }
    return set === 1;
  }

  async finish(taskId: string, outcome: TaskOutcome): Promise<boolean> {
    const ended = await this.end(taskId, outcome);
    if (ended) {
      await this.publish({ type: 'changed', taskId });
    }
    return ended;
  }

  async cancel(taskId: string, statusMessage: string): Promise<TaskRecord | undefined> {
    if (await this.end(taskId, { status: 'cancelled', statusMessage })) {
      await this.publish({ type: 'changed', taskId });
      await this.publish({ type: 'cancel', taskId });
    }
    return this.get(taskId);
  }

  async attachWork(taskId: string, work: TaskWorkRef): Promise<boolean> {
    const attached = await this.redis.porticoTaskAttach(
      taskKey(this.prefix, taskId),
      JSON.stringify({ kind: work.kind, id: work.id }),
    );
    return attached === 1;
  }

  async renew(taskIds: readonly string[], lease: TaskLease): Promise<string[]> {
    if (taskIds.length === 0) {
      return [];
    }
    const keys = taskIds.map((id) => taskKey(this.prefix, id));
    const lost = await this.redis.porticoTaskRenew(keys.length, ...keys, lease.node, lease.ms);
    return lost.map((position) => taskIds[position - 1]);
  }

  async claim(taskId: string, lease: TaskLease): Promise<boolean> {
    const claimed = await this.redis.porticoTaskClaim(
      taskKey(this.prefix, taskId),
      lease.node,
      lease.ms,
    );
    return claimed === 1;
  }

  async release(taskIds: readonly string[], node: string): Promise<void> {
    if (taskIds.length > 0) {
      const keys = taskIds.map((id) => taskKey(this.prefix, id));
      await this.redis.porticoTaskRelease(keys.length, ...keys, node);
    }
  }

  async listBySession(sessionId: string): Promise<TaskRecord[]> {
    const index = sessionTasksKey(this.prefix, sessionId);
    const ids = await this.redis.zrevrange(index, 0, -1);
    const records = await Promise.all(ids.map((id) => this.get(id)));
    const gone = ids.filter((_, i) => records[i] === undefined);
    if (gone.length > 0) {
      await this.redis.zrem(index, ...gone);
    }
    return records.filter((record): record is TaskRecord => record !== undefined);
  }

  async subscribe(listener: (signal: TaskSignal) => void): Promise<() => Promise<void>> {
    this.signals.on(SIGNAL, listener);
    try {
      await this.listen();
    } catch (err) {
      this.signals.off(SIGNAL, listener);
      throw err;
    }
    return () => {
      this.signals.off(SIGNAL, listener);
      return Promise.resolve();
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.signals.removeAllListeners();
    const clients = [this.client, this.subscriber].filter((c): c is Redis => c !== undefined);
    await Promise.allSettled(
      clients.map((client) => client.quit().catch(() => client.disconnect())),
    );
  }

  private end(taskId: string, outcome: TaskOutcome): Promise<boolean> {
    return this.redis
      .porticoTaskFinish(
        taskKey(this.prefix, taskId),
        taskInputKey(this.prefix, taskId),
        Date.now(),
        outcome.status,
        outcome.statusMessage ?? '',
        outcome.result === undefined ? '' : JSON.stringify(outcome.result),
        outcome.error === undefined ? '' : JSON.stringify(outcome.error),
      )
      .then((ended) => ended === 1);
  }

  private async publish(signal: TaskSignal): Promise<void> {
    await this.redis.publish(taskSignalChannel(this.prefix), JSON.stringify(signal));
  }

  /** One subscriber connection per store, shared by every local listener. */
  private listen(): Promise<void> {
    if (!this.subscribing) {
      const subscriber = this.connection({ autoResubscribe: false });
      this.subscriber = subscriber;
      subscriber.on('message', (_channel: string, message: string) => {
        let signal: TaskSignal;
        try {
          signal = JSON.parse(message) as TaskSignal;
        } catch {
          return;
        }
        this.signals.emit(SIGNAL, signal);
      });
      const subscribing = keepSubscribed(subscriber, taskSignalChannel(this.prefix));
      this.subscribing = subscribing;
      subscribing.catch(() => {
        // Retried by the next subscriber.
        if (this.subscribing === subscribing) {
          this.subscribing = undefined;
          subscriber.disconnect();
        }
      });
    }
    return this.subscribing;
  }

  private connection(extra: RedisOptions = {}): Redis {
    const client = new Redis(this.options.url, {
      ...extra,
      // A task call fails promptly while Redis is down instead of waiting in memory for it.
      maxRetriesPerRequest: 2,
      retryStrategy: (times) => (this.closed ? null : Math.min(times * 200, 2000)),
    });
    client.on('error', () => undefined);
    return client;
  }
}

async function execOrThrow(pending: Promise<[Error | null, unknown][] | null>): Promise<unknown[]> {
  const results = await pending;
  if (!results) {
    throw new Error('Redis transaction aborted');
  }
  return results.map(([err, value]) => {
    if (err) {
      throw err;
    }
    return value;
  });
}

function toRecord(
  hash: Record<string, string>,
  inputs: Record<string, string>,
  redisNow: number,
): TaskRecord | undefined {
  if (!hash.meta || !isStatus(hash.status)) {
    return undefined;
  }
  const task = JSON.parse(hash.meta) as NewTask;
  if (task.createdAt + task.ttlMs <= Date.now()) {
    return undefined;
  }
  const inputRequests: Record<string, TaskInputRequest> = {};
  const live = !isTerminalStatus(hash.status);
  if (live) {
    for (const [key, json] of Object.entries(inputs)) {
      inputRequests[key] = JSON.parse(json) as TaskInputRequest;
    }
  }
  return {
    ...task,
    status: hash.status,
    lastUpdatedAt: Number(hash.updated),
    inputRequests,
    ...(hash.message !== undefined && { statusMessage: hash.message }),
    ...(hash.result !== undefined && { result: JSON.parse(hash.result) as JsonObject }),
    ...(hash.error !== undefined && {
      error: JSON.parse(hash.error) as NonNullable<TaskRecord['error']>,
    }),
    ...(hash.work !== undefined && { work: JSON.parse(hash.work) as TaskWorkRef }),
    ...(live && hash.lease !== undefined && Number(hash.lease) < redisNow && { orphaned: true }),
  };
}

function isStatus(value: string | undefined): value is TaskStatus {
  return (TASK_STATUSES as readonly string[]).includes(value ?? '');
}

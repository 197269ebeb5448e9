import { EventEmitter } from 'node:events';
import Redis, { type ChainableCommander } from 'ioredis';
import {
  isTerminalStatus,
  TASK_STATUSES,
  type JsonObject,
  type NewTask,
  type TaskInputRequest,
  type TaskOutcome,
  type TaskRecord,
  type TaskSignal,
  type TaskStatus,
  type TaskStore,
} from '@portico/mcp-protocol';

/** A task's state: a hash (meta, status, updated, expires, message, result, error). */
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
      this.client = client;
    }
    return this.client;
  }

  async create(task: NewTask): Promise<TaskRecord> {
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
        .exec(),
    );
    return toRecord(results[0] as Record<string, string>, results[1] as Record<string, string>);
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
      const subscriber = this.connection();
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
      const subscribing = subscriber
        .subscribe(taskSignalChannel(this.prefix))
        .then(() => undefined);
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

  private connection(): Redis {
    const client = new Redis(this.options.url, {
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
): TaskRecord | undefined {
  if (!hash.meta || !isStatus(hash.status)) {
    return undefined;
  }
  const task = JSON.parse(hash.meta) as NewTask;
  if (task.createdAt + task.ttlMs <= Date.now()) {
    return undefined;
  }
  const inputRequests: Record<string, TaskInputRequest> = {};
  if (!isTerminalStatus(hash.status)) {
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
  };
}

function isStatus(value: string | undefined): value is TaskStatus {
  return (TASK_STATUSES as readonly string[]).includes(value ?? '');
}

import { Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { DelayedError, Job, Queue, QueueEvents, UnrecoverableError, Worker } from 'bullmq';
import type { QueueBase } from 'bullmq';
import Redis, { RedisOptions } from 'ioredis';
import { ConfigService } from '@portico/config';
import { keepSubscribed } from '@portico/session';
import { ROOT_CONTEXT, type Span, SpanKind } from '@opentelemetry/api';
import {
  failSpan,
  GatewayMetrics,
  SpanAttr,
  Tracing,
  QUEUE_JOB_STATES,
  QueueJobState,
  QueueWorkerMetrics,
  WorkerJobOutcome,
} from '@portico/observability';
import {
  attachTaskWork,
  BackendUnavailableError,
  type Cancellation,
  type CreateMessageResult,
  type ElicitResult,
  ErrorCode,
  type InputMethod,
  type InputOptions,
  isLogLevel,
  type JsonObject,
  type ListRootsResult,
  McpError,
  NODE_STOPPED_MESSAGE,
  RequestContext,
  TaskHandedOverError,
  type TaskProgress,
  type TaskWorkRef,
  type TaskWorkResumer,
  ToolHandler,
} from '@portico/mcp-protocol';
import type { RetrySettings } from './execution-settings';
import { PriorityAgeing } from './priority-ageing';
import { TenantJobSlots } from './tenant-job-slots';
import { ToolJobError } from './tool-job.errors';
import {
  type JobInput,
  type JobInputRequest,
  needsInput,
  tenantOfToolJob,
  TOOL_CALL_CANCEL_CHANNEL,
  TOOL_CALL_JOB,
  TOOL_CALL_QUEUE,
  TOOL_CALL_WORK,
  toolJobId,
  ToolJobData,
  ToolJobProgress,
  ToolJobResult,
} from './tool-job';

/** Finds the handler a job names (the tenant's backend source, bypassing the queue). */
export type ToolJobResolver = (job: ToolJobData) => Promise<ToolHandler | undefined>;

/** How long a job's lock lasts without renewal before another worker may take it over. */
export const DEFAULT_LOCK_MS = 30_000;

/** Failure messages the gateway turns back into JSON-RPC errors, code and message intact. */
const MCP_ERROR_PREFIX = 'mcp-error:';

/** How long failed jobs are kept for inspection (admin API) before BullMQ drops them. */
export const FAILED_JOB_RETENTION_S = 24 * 3600;

/**
 * How long a completed job of a task is kept: long enough that a node taking the task over
 * after its node stopped still finds the result (other jobs' results are read at once).
 */
const TASK_JOB_RETENTION_S = 3600;

/** How long an admin operation waits for Redis before answering that the queue is unavailable. */
const ADMIN_READY_MS = 2000;

/**
 * How long a job of a tenant at its cap waits before a worker looks at it again: the first
 * deferral, doubled on each one after, up to the maximum (then jittered, so a flood's jobs do
 * not all come back at once). Short enough that the tenant's own calls follow soon after a slot
 * frees, long enough that its waiting jobs do not keep the workers busy deferring them.
 */
const FIRST_DEFERRAL_MS = 100;
const MAX_DEFERRAL_MS = 1000;

/** How a call is put on the queue. */
export interface DispatchOptions {
  /** The call's identity (tenant, session, request id): the job id derives from it. */
  readonly callKey: string;
  /** Retries of retryable failures, for idempotent tools only; none when absent. */
  readonly retry?: RetrySettings;
  /** BullMQ priority (see jobPriority): lower starts sooner. */
  readonly priority?: number;
}

/** A failed job as operators see it: never its arguments (they may hold secrets). */
export interface FailedToolJob {
  readonly id: string;
  readonly backend: string;
  readonly tool: string;
  readonly principalId: string;
  readonly idempotent: boolean;
  /** The JSON-RPC error code of the failure, when it was one. */
  readonly errorCode?: number;
  readonly failedReason: string;
  readonly attemptsMade: number;
  readonly createdAt: Date;
  readonly processedAt?: Date;
  readonly failedAt?: Date;
}

export interface FailedToolJobPage {
  readonly total: number;
  readonly items: FailedToolJob[];
}

/** A job stopped before it could finish: its deadline passed, or its caller cancelled it. */
class JobStopped extends Error {
  constructor(
    readonly outcome: Extract<WorkerJobOutcome, 'cancelled' | 'timed_out'>,
    message: string,
  ) {
    super(`${MCP_ERROR_PREFIX}${ErrorCode.InternalError}:${message}`);
  }
}

/**
 * Tool calls through BullMQ on Redis. The gateway side `dispatch`es a call and waits for its
 * result, relaying progress and forwarding cancellation; the worker side (`startWorker`, in a
 * worker process or embedded in the gateway) runs jobs with the registry's own handlers.
 * Queue, job and channel names live in tool-job.ts, nowhere else.
 *
 * A call running as a task records its job in the task (attachTaskWork): if the gateway node
 * waiting for the job stops, the node that takes the task over waits for the job instead
 * (`resume`).
 */
@Injectable()
export class ToolCallQueue implements OnApplicationShutdown, TaskWorkResumer {
  private readonly logger = new Logger(ToolCallQueue.name);
  private readonly prefix: string;
  private readonly url: string;
  private readonly keyPrefix: string;
  private queue?: Queue<ToolJobData, ToolJobResult>;
  /** The producer's connection, also used for the admin API's scans of the failed set. */
  private producerClient?: Redis;
  private events?: QueueEvents;
  private publisher?: Redis;
  private subscriber?: Redis;
  private worker?: Worker<ToolJobData, ToolJobResult>;
  /** Tenants' running-job slots, once this node consumes. */
  private slots?: TenantJobSlots;
  /** How long a slot lease lasts unrenewed: the worker's lock duration. */
  private leaseMs = DEFAULT_LOCK_MS;
  /** Progress listeners of the calls this node is waiting on, by job id. */
  private readonly watchers = new Map<string, (progress: ToolJobProgress) => void>();
  /** The calls this node is waiting on, by job id: settled by the queue's events. */
  private readonly waiters = new Map<string, JobWaiter>();
  /** Set once the event reader exists and knows where in the event stream to start. */
  private eventsReady?: Promise<QueueEvents>;
  /** Abort controllers of the jobs this node is running, by job id. */
  private readonly running = new Map<string, AbortController>();
  /** Wait, run and outcome series of this node's worker, once it consumes. */
  private jobMetrics?: QueueWorkerMetrics;

  private readonly graceMs: number;
  /** How long a job waits per step forward in priority (0: strict priorities). */
  private readonly priorityAgeingMs: number;
  /** The ageing sweeper, on nodes that consume. */
  private ageing?: PriorityAgeing;
  private stopping = false;
  /** Every Redis connection this node opened, dropped at shutdown. */
  private readonly clients: Redis[] = [];

  constructor(
    config: ConfigService,
    private readonly metrics?: GatewayMetrics,
    private readonly tracing?: Tracing,
  ) {
    this.graceMs = config.values.shutdownGraceMs;
    this.priorityAgeingMs = config.values.worker.priorityAgeingMs;
    const redis = config.values.redis;
    if (!redis) {
      throw new Error('ToolCallQueue needs REDIS_URL');
    }
    this.url = redis.url;
    this.keyPrefix = redis.keyPrefix;
    this.prefix = `${redis.keyPrefix}bull`;
    metrics?.trackQueue(TOOL_CALL_QUEUE, () => this.jobCounts());
  }

  private connection(options: RedisOptions = { maxRetriesPerRequest: null }): Redis {
    // BullMQ needs maxRetriesPerRequest null on connections it blocks on. Reconnection stops
    // once the node shuts down; BullMQ's duplicates of this connection inherit that.
    const client = new Redis(this.url, {
      ...options,
      retryStrategy: (times) => (this.stopping ? null : Math.min(times * 200, 2000)),
    });
    client.on('error', () => undefined);
    this.clients.push(client);
    return client;
  }

  private jobsQueue(): Queue<ToolJobData, ToolJobResult> {
    if (!this.queue) {
      const producer = this.connection({ maxRetriesPerRequest: 1, enableOfflineQueue: false });
      this.producerClient = producer;
      this.queue = new Queue<ToolJobData, ToolJobResult>(TOOL_CALL_QUEUE, {
        // Adding a job (or counting them) fails at once while Redis is down instead of
        // queueing in memory.
        connection: producer,
        prefix: this.prefix,
      });
      // BullMQ's own waits listen for the queue closing, one listener each (admin operations).
      this.queue.setMaxListeners(0);
    }
    return this.queue;
  }

  /**
   * The queue and its event reader. The reader starts at the stream's last event as of now
   * (not at whatever is last when its first read happens), so no event of a job added after
   * this resolves can be missed. One listener per event type settles the waiting calls: the
   * progress of a job always reaches its caller before its result, as the stream orders them.
   */
  private producer(): Promise<QueueEvents> {
    this.eventsReady ??= this.openEvents().catch((err: unknown) => {
      this.eventsReady = undefined;
      throw err;
    });
    return this.eventsReady;
  }

  private async openEvents(): Promise<QueueEvents> {
    const queue = this.jobsQueue();
    // Connected first: the producer's connection queues nothing while it is down.
    await queue.waitUntilReady();
    const [last] = await this.producerClient!.xrevrange(queue.keys.events, '+', '-', 'COUNT', 1);
    const events = new QueueEvents(TOOL_CALL_QUEUE, {
      connection: this.connection(),
      prefix: this.prefix,
      lastEventId: last?.[0] ?? '0-0',
    });
    this.events = events;
    events.on('progress', ({ jobId, data }) => {
      this.watchers.get(jobId)?.(data as ToolJobProgress);
    });
    events.on('completed', (args: { jobId: string; returnvalue: unknown }) => {
      this.waiters.get(args.jobId)?.settle(args.returnvalue as ToolJobResult);
    });
    events.on('failed', ({ jobId, failedReason }) => {
      this.waiters.get(jobId)?.fail(new Error(failedReason));
    });
    events.on('removed', ({ jobId }) => {
      this.waiters.get(jobId)?.fail(new JobStopped('cancelled', 'Cancelled'));
    });
    // A repeated delivery of a call whose job exists: it may have finished already.
    events.on('duplicated', ({ jobId }) => {
      if (this.waiters.has(jobId)) {
        void this.settleFinished(jobId);
      }
    });
    this.publisher = this.connection();
    await events.waitUntilReady();
    return events;
  }

  /** Settles the wait for a job that may already have finished (no event will come). */
  private async settleFinished(jobId: string): Promise<void> {
    try {
      const job = await this.queue?.getJob(jobId);
      const waiter = this.waiters.get(jobId);
      if (!job || !waiter) {
        return;
      }
      if (job.finishedOn && job.failedReason && (await job.isFailed())) {
        waiter.fail(new Error(job.failedReason));
      } else if (job.finishedOn && (await job.isCompleted())) {
        waiter.settle(job.returnvalue);
      }
    } catch (err) {
      this.logger.warn(`Could not read job ${jobId}: ${String(err)}`);
    }
  }

  /** The queue's job counts by state (for metrics); rejects while Redis is unreachable. */
  async jobCounts(): Promise<Partial<Record<QueueJobState, number>>> {
    if (this.stopping) {
      throw new Error('The tool queue is shutting down');
    }
    // BullMQ keys the answer by the state names asked for.
    return this.jobsQueue().getJobCounts(...QUEUE_JOB_STATES);
  }

  /**
   * Runs a call on the queue and resolves to its result. The job id derives from the call's
   * identity, so a repeated delivery never creates a second job for the same call (nor runs
   * the tool twice).
   */
  async dispatch(
    data: ToolJobData,
    ctx: RequestContext,
    options: DispatchOptions,
  ): Promise<ToolJobResult> {
    const tracing = this.tracing;
    const parent = tracing?.parent(ctx.trace);
    if (!tracing || !parent) {
      return this.publish(data, ctx, options);
    }
    // A PRODUCER span from enqueue to result; its context travels in the job to the worker.
    const span = tracing.start(
      `publish ${TOOL_CALL_QUEUE}`,
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          [SpanAttr.messagingSystem]: 'bullmq',
          [SpanAttr.queue]: TOOL_CALL_QUEUE,
          [SpanAttr.toolName]: data.tool,
          [SpanAttr.backend]: data.backend,
        },
      },
      parent,
    );
    try {
      const trace = tracing.inject({}, tracing.under(span, parent));
      return await this.publish({ ...data, trace }, ctx, options, span);
    } catch (err) {
      failSpan(span, err);
      throw err;
    } finally {
      span.end();
    }
  }

  private async publish(
    data: ToolJobData,
    ctx: RequestContext,
    options: DispatchOptions,
    span?: Span,
  ): Promise<ToolJobResult> {
    const ready = await within(
      this.producer().then(() => true),
      Math.max(1, data.deadline - Date.now()),
    );
    if (ready !== true) {
      throw new McpError(ErrorCode.InternalError, `The tool queue is unavailable (Redis)`);
    }
    const queue = this.jobsQueue();
    const jobId = toolJobId(data.tenantId, options.callKey);
    span?.setAttribute(SpanAttr.messageId, jobId);
    if (data.wantsProgress) {
      this.watchers.set(jobId, (p) => void relay(ctx, p));
    }
    // Waiting before the job exists: its events cannot come before anyone listens.
    const waiter = new JobWaiter(Math.max(1, data.deadline - Date.now()));
    this.waiters.set(jobId, waiter);
    const onAbort = () => {
      if (ctx.signal.reason instanceof TaskHandedOverError) {
        // Another node waits for the job now: stop waiting here, the job goes on.
        waiter.fail(ctx.signal.reason);
        return;
      }
      void this.cancel(jobId);
    };
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    try {
      // Recorded before the job exists: a node that takes the task over never misses its job.
      // Unrecorded (task store unreachable), the call still runs; only a takeover is lost.
      const ofTask = await attachTaskWork(ctx, { kind: TOOL_CALL_WORK, id: jobId }).catch(
        () => false,
      );
      const retry = data.idempotent ? options.retry : undefined;
      await queue.add(TOOL_CALL_JOB, data, {
        jobId,
        ...(options.priority !== undefined && { priority: options.priority }),
        attempts: retry?.attempts ?? 1,
        ...(retry && { backoff: { type: 'exponential', delay: retry.backoffMs } }),
        removeOnComplete: ofTask ? { age: TASK_JOB_RETENTION_S } : { age: 60, count: 1000 },
        // Failed jobs stay for inspection (and retry or discard through the admin API).
        removeOnFail: { age: FAILED_JOB_RETENTION_S },
      });
      try {
        return await waiter.result;
      } catch (err) {
        throw toMcpError(err, data);
      }
    } finally {
      waiter.dispose();
      ctx.signal.removeEventListener('abort', onAbort);
      this.watchers.delete(jobId);
      if (this.waiters.get(jobId) === waiter) {
        this.waiters.delete(jobId);
      }
    }
  }

  /**
   * Waits for the job of a task whose gateway node stopped (TaskWorkResumer): its result, or its
   * error as the node that queued it would have reported it. Cancelling the task cancels the job.
   */
  resume(
    work: TaskWorkRef,
    cancellation: Cancellation,
    progress?: (progress: TaskProgress) => void,
  ): Promise<JsonObject> | undefined {
    if (work.kind !== TOOL_CALL_WORK || this.stopping) {
      return undefined;
    }
    return this.adopt(work.id, cancellation, progress);
  }

  private async adopt(
    jobId: string,
    cancellation: Cancellation,
    progress?: (progress: TaskProgress) => void,
  ): Promise<JsonObject> {
    await this.producer();
    // Waiting before the job is read: an event of it finishing meanwhile still settles this.
    const waiter = new JobWaiter();
    this.waiters.set(jobId, waiter);
    // The job's progress from now on becomes the task's statusMessage (logs have no stream).
    const watcher = (p: ToolJobProgress): void => {
      if (p.kind === 'progress') {
        progress?.({ progress: p.progress, total: p.total, message: p.message });
      }
    };
    this.watchers.set(jobId, watcher);
    const undoCancel = cancellation.onCancel(() => void this.cancel(jobId));
    try {
      const job = await this.jobsQueue().getJob(jobId);
      if (!job) {
        throw new McpError(
          ErrorCode.InternalError,
          `${NODE_STOPPED_MESSAGE}, and its queued job is gone (never queued, or its result expired)`,
        );
      }
      const state = await job.getState();
      if (state === 'completed') {
        waiter.settle(job.returnvalue);
      } else if (state === 'failed') {
        waiter.fail(new Error(job.failedReason));
      } else {
        // The worker fails the job at its deadline; past that (and a lock's time), stop waiting.
        waiter.limit(Math.max(1, job.data.deadline - Date.now()) + this.leaseMs);
      }
      let result: ToolJobResult;
      try {
        result = await waiter.result;
      } catch (err) {
        throw toMcpError(err, job.data);
      }
      if (needsInput(result)) {
        throw new McpError(
          ErrorCode.InternalError,
          `${job.data.tool} asked for client input after the gateway node running the task ` +
            'stopped; call the tool again',
        );
      }
      return result;
    } finally {
      undoCancel();
      waiter.dispose();
      if (this.waiters.get(jobId) === waiter) {
        this.waiters.delete(jobId);
      }
      if (this.watchers.get(jobId) === watcher) {
        this.watchers.delete(jobId);
      }
    }
  }

  /** Removes a waiting job, or tells the node running it to abort. */
  private async cancel(jobId: string): Promise<void> {
    try {
      const job = await this.queue?.getJob(jobId);
      const state = await job?.getState();
      if (job && (state === 'waiting' || state === 'delayed' || state === 'prioritized')) {
        await job.remove();
        // It will never finish: the call stops waiting now (its caller has gone).
        this.waiters.get(jobId)?.fail(new JobStopped('cancelled', 'Cancelled'));
        return;
      }
      await this.publisher?.publish(`${this.prefix}:${TOOL_CALL_CANCEL_CHANNEL}`, jobId);
    } catch (err) {
      this.logger.warn(`Could not cancel job ${jobId}: ${String(err)}`);
    }
  }

  /** Whether Redis answers a PING within `timeoutMs` (readiness). */
  async reachable(timeoutMs: number): Promise<boolean> {
    const client = this.publisher ?? (this.publisher = this.connection());
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        client.ping().then((pong) => pong === 'PONG'),
        new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), timeoutMs);
        }),
      ]);
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Starts consuming tool-call jobs on this node. */
  async startWorker(
    resolve: ToolJobResolver,
    concurrency: number,
    lockMs = DEFAULT_LOCK_MS,
  ): Promise<void> {
    // Nothing here waits for Redis: a node must boot (and report unready) while Redis is down;
    // BullMQ and ioredis connect, and reconnect, on their own.
    this.jobMetrics = this.metrics?.trackWorker(TOOL_CALL_QUEUE);
    this.subscriber = this.connection({ maxRetriesPerRequest: null, autoResubscribe: false });
    const warn = (err: unknown) => this.logger.warn(`Cancel channel: ${String(err)}`);
    keepSubscribed(this.subscriber, `${this.prefix}:${TOOL_CALL_CANCEL_CHANNEL}`, warn).catch(warn);
    this.subscriber.on('error', () => undefined);
    this.subscriber.on('message', (_channel: string, jobId: string) => {
      this.running.get(jobId)?.abort();
    });
    this.leaseMs = lockMs;
    this.slots = new TenantJobSlots(this.connection(), this.keyPrefix);
    this.worker = new Worker<ToolJobData, ToolJobResult>(
      TOOL_CALL_QUEUE,
      async (job, token) => {
        const release = await this.takeSlot(job, token);
        try {
          return await this.process(job, resolve);
        } finally {
          await release?.();
        }
      },
      {
        connection: this.connection(),
        prefix: this.prefix,
        concurrency,
        // A worker that dies mid-job stops renewing its lock; after lockMs another worker's
        // stall check hands the job back (once), see `process`.
        lockDuration: lockMs,
        stalledInterval: Math.max(500, Math.floor(lockMs / 2)),
        maxStalledCount: 1,
      },
    );
    this.worker.on('error', (err) => this.logger.warn(`Worker: ${err.message}`));
    if (this.priorityAgeingMs > 0) {
      // Every consuming node runs the sweeper; a Redis lock lets one sweep at a time.
      this.ageing = new PriorityAgeing(this.jobsQueue(), this.connection(), this.keyPrefix, {
        ageingMs: this.priorityAgeingMs,
      });
      this.ageing.start();
    }
  }

  /**
   * A slot of the job's tenant, when the tenant has a cap on its running jobs; the returned
   * function gives it back. A tenant at its cap does not get this worker's slot: the job goes
   * back to the delayed set (never past its deadline; once that passes it fails with the
   * deadline error) and the worker takes the next job, another tenant's or a later one.
   */
  private async takeSlot(
    job: Job<ToolJobData, ToolJobResult>,
    token: string | undefined,
  ): Promise<(() => Promise<void>) | undefined> {
    const { tenantId, maxConcurrentJobs: cap, deadline } = job.data;
    const slots = this.slots;
    // A job past its deadline takes no slot: `run` fails it at once.
    if (!cap || !slots || deadline <= Date.now()) {
      return undefined;
    }
    const jobId = job.id!;
    if (await slots.acquire(tenantId, jobId, cap, this.leaseMs)) {
      const renewal = setInterval(() => {
        slots
          .renew(tenantId, jobId, this.leaseMs)
          .catch((err: unknown) => this.logger.warn(`Slot lease of ${jobId}: ${String(err)}`));
      }, this.leaseMs / 2);
      renewal.unref();
      return async () => {
        clearInterval(renewal);
        // A lease that cannot be given back lapses on its own.
        await slots
          .release(tenantId, jobId)
          .catch((err: unknown) => this.logger.warn(`Slot of ${jobId}: ${String(err)}`));
      };
    }
    await job.moveToDelayed(Math.min(Date.now() + deferralMs(job), deadline), token);
    throw new DelayedError();
  }

  /** Runs one job and records how long it waited, how long it ran and how it ended. */
  private process(
    job: Job<ToolJobData, ToolJobResult>,
    resolve: ToolJobResolver,
  ): Promise<ToolJobResult> {
    const tracing = this.tracing;
    if (!tracing?.enabled) {
      return this.measured(job, resolve);
    }
    // The dispatcher's trace continues here: a span for the time the job waited in the queue,
    // then the run, under which the backend call's spans nest.
    const parent = tracing.extract(job.data.trace ?? {}, ROOT_CONTEXT);
    const attributes = {
      [SpanAttr.messagingSystem]: 'bullmq',
      [SpanAttr.queue]: TOOL_CALL_QUEUE,
      [SpanAttr.messageId]: job.id ?? '',
      [SpanAttr.toolName]: job.data.tool,
      [SpanAttr.backend]: job.data.backend,
    };
    const startedAt = job.processedOn ?? Date.now();
    tracing
      .start(
        'portico.queue.wait',
        { kind: SpanKind.INTERNAL, attributes, startTime: job.timestamp },
        parent,
      )
      .end(Math.max(job.timestamp, startedAt));
    const span = tracing.start(
      `process ${TOOL_CALL_QUEUE}`,
      {
        kind: SpanKind.CONSUMER,
        attributes: { ...attributes, 'messaging.retry_count': job.stalledCounter },
      },
      parent,
    );
    return this.measured(job, resolve, tracing.under(span, parent)).then(
      (result) => {
        if (!needsInput(result) && result.isError) {
          failSpan(span, 'tool_error', 'tool_error');
        }
        span.end();
        return result;
      },
      (err: unknown) => {
        failSpan(span, err);
        span.end();
        throw err;
      },
    );
  }

  private async measured(
    job: Job<ToolJobData, ToolJobResult>,
    resolve: ToolJobResolver,
    trace?: unknown,
  ): Promise<ToolJobResult> {
    const started = performance.now();
    // Enqueued (producer's clock) to moved to active (this worker's): clamped at 0 for skew.
    this.jobMetrics?.jobStarted(((job.processedOn ?? Date.now()) - job.timestamp) / 1000);
    let outcome: WorkerJobOutcome = 'failed';
    try {
      const result = await this.run(job, resolve, trace);
      outcome = 'completed';
      return result;
    } catch (err) {
      if (err instanceof JobStopped) {
        outcome = err.outcome;
        throw new UnrecoverableError(err.message);
      }
      throw err;
    } finally {
      this.jobMetrics?.jobFinished(outcome, (performance.now() - started) / 1000);
    }
  }

  private async run(
    job: Job<ToolJobData, ToolJobResult>,
    resolve: ToolJobResolver,
    trace: unknown,
  ): Promise<ToolJobResult> {
    if (job.name !== TOOL_CALL_JOB) {
      throw new UnrecoverableError(`No handler for job ${job.name}`);
    }
    const data = job.data;
    const remaining = data.deadline - Date.now();
    if (remaining <= 0) {
      throw new JobStopped('timed_out', 'Deadline passed before the call started');
    }
    const handler = await resolve(data);
    if (
      handler &&
      job.stalledCounter > (data.stallsAccepted ?? 0) &&
      !data.idempotent &&
      handler.definition.annotations?.idempotentHint !== true
    ) {
      // The first run may have had effects: a tool not known to be idempotent is not run twice.
      throw new UnrecoverableError(
        `${MCP_ERROR_PREFIX}${ErrorCode.InternalError}:The worker running this call stopped, and ` +
          `${data.tool} is not idempotent, so it was not run again`,
      );
    }
    if (!handler) {
      throw new UnrecoverableError(
        `${MCP_ERROR_PREFIX}${ErrorCode.InvalidParams}:Unknown tool: ${data.tool}`,
      );
    }
    const controller = new AbortController();
    this.running.set(job.id!, controller);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, remaining);
    // A question no replayed answer covers stops the run: the gateway asks the client.
    const inputs = new InputReplay(data.inputs, () => controller.abort());
    try {
      const result = await handler.call(
        data.arguments,
        workerContext(job, controller.signal, trace, inputs),
      );
      return inputs.pending.length > 0 ? { inputRequired: inputs.pending } : result;
    } catch (err) {
      if (inputs.pending.length > 0) {
        return { inputRequired: inputs.pending };
      }
      // Checked first: a handler may answer its abort with an McpError of its own.
      if (controller.signal.aborted) {
        throw timedOut
          ? new JobStopped('timed_out', 'Deadline exceeded')
          : new JobStopped('cancelled', 'Cancelled');
      }
      if (err instanceof McpError) {
        const reason = `${MCP_ERROR_PREFIX}${err.code}:${err.message}`;
        // A plain Error lets BullMQ retry (with backoff) if the job has attempts left.
        throw retryAllowed(job, err) ? new Error(reason) : new UnrecoverableError(reason);
      }
      throw new UnrecoverableError(err instanceof Error ? err.message : String(err));
    } finally {
      clearTimeout(timer);
      this.running.delete(job.id!);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Failed jobs (admin API). Every method is scoped to one tenant: a job of another tenant is
  // answered exactly like a missing one.

  /** The tenant's failed jobs, newest first. */
  async failedJobs(tenantId: string, offset: number, limit: number): Promise<FailedToolJobPage> {
    const queue = await this.adminQueue();
    const client = this.producerClient!;
    const key = queue.toKey('failed');
    // The failed set spans all tenants; job ids start with the tenant id (toolJobId), so Redis
    // filters the scan and only this page's jobs are read.
    const pattern = `${tenantId.replace(/[*?[\]\\]/g, '\\$&')}.*`;
    const scores = new Map<string, number>();
    await this.redisOp(async () => {
      let cursor = '0';
      do {
        const [next, flat] = await client.zscan(key, cursor, 'MATCH', pattern, 'COUNT', 1000);
        for (let i = 0; i + 1 < flat.length; i += 2) {
          scores.set(flat[i], Number(flat[i + 1]));
        }
        cursor = next;
      } while (cursor !== '0');
    });
    const ids = [...scores.entries()]
      .sort(([a, x], [b, y]) => y - x || (a < b ? 1 : -1))
      .map(([id]) => id);
    const page = ids.slice(offset, offset + limit);
    const jobs = await this.redisOp(() => Promise.all(page.map((id) => queue.getJob(id))));
    return {
      total: ids.length,
      items: jobs
        .filter((job): job is Job<ToolJobData, ToolJobResult> => job?.data?.tenantId === tenantId)
        .map(failedToolJob),
    };
  }

  /** One failed job of the tenant. */
  async failedJob(tenantId: string, jobId: string): Promise<FailedToolJob> {
    return failedToolJob(await this.failedJobOf(tenantId, jobId));
  }

  /**
   * Runs a failed job again, with a fresh deadline and all its attempts. A tool not known to
   * be idempotent may already have had its effect, so it needs `force`.
   */
  async retryFailed(tenantId: string, jobId: string, force: boolean): Promise<FailedToolJob> {
    const job = await this.failedJobOf(tenantId, jobId);
    if (!job.data.idempotent && !force) {
      throw new ToolJobError(
        'not-idempotent',
        `${job.data.tool} is not known to be idempotent and may already have had its effect; ` +
          'retry with force=true to run it again anyway',
      );
    }
    const summary = failedToolJob(job);
    const timeoutMs = job.data.timeoutMs ?? Math.max(1, job.data.deadline - job.timestamp);
    await this.redisOp(async () => {
      await job.updateData({
        ...job.data,
        timeoutMs,
        deadline: Date.now() + timeoutMs,
        stallsAccepted: job.stalledCounter,
      });
      try {
        await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
      } catch (err) {
        // Retried or removed meanwhile (another operator, or its retention ended).
        if (!(await job.isFailed().catch(() => true))) {
          throw new ToolJobError('not-found', 'Failed job not found');
        }
        throw err;
      }
    });
    return summary;
  }

  /** Removes a failed job for good. */
  async discardFailed(tenantId: string, jobId: string): Promise<FailedToolJob> {
    const job = await this.failedJobOf(tenantId, jobId);
    const summary = failedToolJob(job);
    await this.redisOp(() => job.remove());
    return summary;
  }

  private async failedJobOf(
    tenantId: string,
    jobId: string,
  ): Promise<Job<ToolJobData, ToolJobResult>> {
    const notFound = new ToolJobError('not-found', 'Failed job not found');
    const queue = await this.adminQueue();
    // Checked before the job is read: another tenant's id reveals nothing, not even existence.
    if (tenantOfToolJob(jobId) !== tenantId) {
      throw notFound;
    }
    const job = await this.redisOp(() => queue.getJob(jobId));
    if (!job || job.data?.tenantId !== tenantId || !(await this.redisOp(() => job.isFailed()))) {
      throw notFound;
    }
    return job;
  }

  private async adminQueue(): Promise<Queue<ToolJobData, ToolJobResult>> {
    if (this.stopping) {
      throw new ToolJobError('unavailable', 'The tool queue is shutting down');
    }
    const queue = this.jobsQueue();
    const ready = await within(
      queue.waitUntilReady().then(() => this.producerClient?.status === 'ready'),
      ADMIN_READY_MS,
    );
    if (ready !== true) {
      throw new ToolJobError('unavailable', 'The tool queue is unavailable (Redis unreachable)');
    }
    return queue;
  }

  /** A Redis operation whose failure means the queue is unavailable, not a bug. */
  private async redisOp<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      if (err instanceof ToolJobError) {
        throw err;
      }
      this.logger.warn(`Tool queue operation failed: ${String(err)}`);
      throw new ToolJobError('unavailable', 'The tool queue is unavailable (Redis unreachable)');
    }
  }

  /**
   * Stops taking jobs and lets running ones finish (within the shutdown grace), then closes
   * every connection; a connection that cannot close cleanly (Redis gone) is dropped.
   */
  async onApplicationShutdown(): Promise<void> {
    this.stopping = true;
    await within(this.ageing?.stop(), 1000);
    for (const waiter of this.waiters.values()) {
      waiter.fail(new Error('The gateway is shutting down'));
    }
    const closes: [QueueBase | undefined, number][] = [
      [this.worker, this.graceMs],
      [this.events, 1000],
      [this.queue, 1000],
    ];
    for (const [part, ms] of closes) {
      if (
        part &&
        (await within(
          part.close().then(() => true),
          ms,
        )) !== true
      ) {
        // Redis is gone or a job would not finish: drop the connections, or their reconnect
        // loops would keep the process alive.
        await within(part.disconnect(), 1000);
      }
    }
    for (const client of this.clients) {
      client.disconnect();
    }
  }
}

/**
 * One call waiting for its job: settled by the job's completed or failed event (or a removal,
 * or shutdown), or failed when its deadline passes first.
 */
class JobWaiter {
  readonly result: Promise<ToolJobResult>;
  settle!: (result: ToolJobResult) => void;
  fail!: (err: Error) => void;
  private timer?: NodeJS.Timeout;

  /** Without `ttlMs`, the wait is unbounded until `limit` bounds it. */
  constructor(ttlMs?: number) {
    this.result = new Promise<ToolJobResult>((resolve, reject) => {
      this.settle = resolve;
      this.fail = reject;
    });
    // Settled by a read rather than awaited yet: no unhandled rejection meanwhile.
    this.result.catch(() => undefined);
    if (ttlMs !== undefined) {
      this.limit(ttlMs);
    }
  }

  limit(ttlMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(
      () => this.fail(new Error(`Job wait timed out: no result after ${ttlMs} ms`)),
      ttlMs,
    );
  }

  dispose(): void {
    clearTimeout(this.timer);
  }
}

/**
 * The jittered backoff of a deferred job. Every move to active counts as a started attempt,
 * so the starts beyond its attempts (failures) are its deferrals (and stalls) so far.
 */
function deferralMs(job: Job<ToolJobData, ToolJobResult>): number {
  const deferrals = Math.max(0, job.attemptsStarted - job.attemptsMade - 1);
  const ceiling = Math.min(MAX_DEFERRAL_MS, FIRST_DEFERRAL_MS * 2 ** Math.min(deferrals, 10));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

/** `promise`'s value, or undefined once `ms` have passed (or it rejected). */
async function within<T>(promise: Promise<T> | undefined, ms: number): Promise<T | undefined> {
  if (!promise) {
    return undefined;
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), ms);
      }),
    ]);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

async function relay(ctx: RequestContext, p: ToolJobProgress): Promise<void> {
  if (p.kind === 'progress') {
    await ctx.progress(p.progress, p.total, p.message);
  } else if (isLogLevel(p.level)) {
    await ctx.log(p.level, p.data, p.logger);
  }
}

/**
 * Whether a failed attempt may be retried: the job has attempts left, the next attempt (after
 * its exponential backoff) starts before the deadline, and the failure is the backend being
 * unreachable, refusing (circuit open, saturated) or one attempt timing out. An answer from the
 * upstream (a JSON-RPC error), a cancellation or a passed deadline never is.
 */
function retryAllowed(job: Job<ToolJobData, ToolJobResult>, err: McpError): boolean {
  const attempts = job.opts.attempts ?? 1;
  if (job.attemptsMade + 1 >= attempts || !isRetryableFailure(err, job.data.backend)) {
    return false;
  }
  const backoff = job.opts.backoff;
  const base = typeof backoff === 'number' ? backoff : (backoff?.delay ?? 0);
  const delay = Math.round(2 ** job.attemptsMade * base);
  return Date.now() + delay < job.data.deadline;
}

/**
 * A failure a retry may cure: the backend could not serve the call (BackendUnavailableError:
 * unreachable, circuit open, bulkhead full, attempt timed out). Errors the backend answered
 * itself keep their code and would only repeat. `backend`: the job's own backend (a job only
 * calls that one; an upstream gateway's "unavailable" arrives as a plain McpError).
 */
export function isRetryableFailure(err: unknown, backend: string): boolean {
  return err instanceof BackendUnavailableError && err.message.startsWith(`Backend ${backend} `);
}

/** The operator's view of a failed job (arguments left out). */
function failedToolJob(job: Job<ToolJobData, ToolJobResult>): FailedToolJob {
  const reason = job.failedReason ?? '';
  const parsed = parseReason(reason);
  return {
    id: job.id!,
    backend: job.data.backend,
    tool: job.data.tool,
    principalId: job.data.principal.id,
    idempotent: job.data.idempotent === true,
    ...(parsed.code !== undefined && { errorCode: parsed.code }),
    failedReason: parsed.message,
    attemptsMade: job.attemptsMade,
    createdAt: new Date(job.timestamp),
    ...(job.processedOn && { processedAt: new Date(job.processedOn) }),
    ...(job.finishedOn && { failedAt: new Date(job.finishedOn) }),
  };
}

function parseReason(reason: string): { code?: number; message: string } {
  const at = reason.indexOf(MCP_ERROR_PREFIX);
  if (at < 0) {
    return { message: reason };
  }
  const rest = reason.slice(at + MCP_ERROR_PREFIX.length);
  const colon = rest.indexOf(':');
  const code = Number(rest.slice(0, colon));
  return Number.isInteger(code) ? { code, message: rest.slice(colon + 1) } : { message: reason };
}

/** A failed job's reason back into the JSON-RPC error the handler threw, where it was one. */
function toMcpError(err: unknown, data: ToolJobData): McpError {
  const message = err instanceof Error ? err.message : String(err);
  const parsed = parseReason(message);
  if (parsed.code !== undefined) {
    return new McpError(parsed.code, parsed.message);
  }
  if (/timed out|ttl/i.test(message)) {
    return new McpError(
      ErrorCode.InternalError,
      `Tool ${data.tool} did not finish before its deadline`,
    );
  }
  return new McpError(
    ErrorCode.InternalError,
    `Tool ${data.tool} failed on the worker: ${message}`,
  );
}

/**
 * Client input for a run on a worker: the answers earlier runs of the call collected, replayed
 * in order. Questions beyond them are recorded as `pending` (all those asked together) and
 * stop the run: the gateway asks the client and queues the call again (ToolJobData.inputs).
 */
class InputReplay {
  readonly pending: JobInputRequest[] = [];
  private next = 0;

  constructor(
    private readonly answers: readonly JobInput[] = [],
    private readonly stop: () => void,
  ) {}

  ask(method: InputMethod, params: JsonObject, options?: InputOptions): Promise<JsonObject> {
    const answer = this.pending.length === 0 ? this.answers[this.next++] : undefined;
    if (answer?.method === method) {
      return Promise.resolve(answer.result);
    }
    if (answer) {
      // The tool asks differently than in the run the answers came from.
      return Promise.reject(
        new McpError(
          ErrorCode.InternalError,
          `The tool asked for ${method} where its earlier run asked for ${answer.method}`,
        ),
      );
    }
    this.pending.push({ method, params, ...(options?.key !== undefined && { key: options.key }) });
    if (this.pending.length === 1) {
      // Stopped after the current turn: questions asked together (Promise.all) still register.
      queueMicrotask(this.stop);
    }
    return Promise.reject(new McpError(ErrorCode.InternalError, 'Waiting for client input'));
  }
}

/** The RequestContext a queued call runs with: progress and logs travel as job progress. */
function workerContext(
  job: Job<ToolJobData, ToolJobResult>,
  signal: AbortSignal,
  trace: unknown,
  inputs: InputReplay,
): RequestContext {
  const data = job.data;
  let last = Number.NEGATIVE_INFINITY;
  return {
    era: data.era ?? 'modern',
    protocolVersion: data.protocolVersion,
    requestId: data.requestId,
    method: 'tools/call',
    clientCapabilities: data.clientCapabilities ?? {},
    principal: {
      id: data.principal.id,
      tenant: data.principal.tenant,
      scopes: data.principal.scopes,
    },
    signal,
    trace,
    progress: async (progress, total, message) => {
      if (!data.wantsProgress || !(progress > last)) {
        return;
      }
      last = progress;
      const update: ToolJobProgress = { kind: 'progress', progress, total, message };
      await job.updateProgress(update);
    },
    log: async (level, payload, logger) => {
      const update: ToolJobProgress = { kind: 'log', level, data: payload, logger };
      await job.updateProgress(update);
    },
    elicit: (params, options) =>
      inputs.ask(
        'elicitation/create',
        params,
        options,
      ) as Promise<unknown> as Promise<ElicitResult>,
    createMessage: (params, options) =>
      inputs.ask(
        'sampling/createMessage',
        params,
        options,
      ) as Promise<unknown> as Promise<CreateMessageResult>,
    listRoots: (options) =>
      inputs.ask('roots/list', {}, options) as Promise<unknown> as Promise<ListRootsResult>,
  };
}

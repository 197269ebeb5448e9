import { createHash } from 'node:crypto';
import { Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { Job, Queue, QueueEvents, UnrecoverableError, Worker } from 'bullmq';
import type { QueueBase } from 'bullmq';
import Redis, { RedisOptions } from 'ioredis';
import { ConfigService } from '@portico/config';
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
  ErrorCode,
  isLogLevel,
  McpError,
  RequestContext,
  ToolHandler,
} from '@portico/mcp-protocol';
import {
  TOOL_CALL_CANCEL_CHANNEL,
  TOOL_CALL_JOB,
  TOOL_CALL_QUEUE,
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
 */
@Injectable()
export class ToolCallQueue implements OnApplicationShutdown {
  private readonly logger = new Logger(ToolCallQueue.name);
  private readonly prefix: string;
  private readonly url: string;
  private queue?: Queue<ToolJobData, ToolJobResult>;
  private events?: QueueEvents;
  private publisher?: Redis;
  private subscriber?: Redis;
  private worker?: Worker<ToolJobData, ToolJobResult>;
  /** Progress listeners of the calls this node is waiting on, by job id. */
  private readonly watchers = new Map<string, (progress: ToolJobProgress) => void>();
  /** Abort controllers of the jobs this node is running, by job id. */
  private readonly running = new Map<string, AbortController>();
  /** Wait, run and outcome series of this node's worker, once it consumes. */
  private jobMetrics?: QueueWorkerMetrics;

  private readonly graceMs: number;
  private stopping = false;
  /** Every Redis connection this node opened, dropped at shutdown. */
  private readonly clients: Redis[] = [];

  constructor(
    config: ConfigService,
    private readonly metrics?: GatewayMetrics,
    private readonly tracing?: Tracing,
  ) {
    this.graceMs = config.values.shutdownGraceMs;
    const redis = config.values.redis;
    if (!redis) {
      throw new Error('ToolCallQueue needs REDIS_URL');
    }
    this.url = redis.url;
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
      this.queue = new Queue<ToolJobData, ToolJobResult>(TOOL_CALL_QUEUE, {
        // Adding a job (or counting them) fails at once while Redis is down instead of
        // queueing in memory.
        connection: producer,
        prefix: this.prefix,
      });
    }
    return this.queue;
  }

  private producer(): { queue: Queue<ToolJobData, ToolJobResult>; events: QueueEvents } {
    const queue = this.jobsQueue();
    if (!this.events) {
      this.events = new QueueEvents(TOOL_CALL_QUEUE, {
        connection: this.connection(),
        prefix: this.prefix,
      });
      this.events.on('progress', ({ jobId, data }) => {
        this.watchers.get(jobId)?.(data as ToolJobProgress);
      });
      this.publisher = this.connection();
    }
    return { queue, events: this.events };
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
   * identity, so a repeated delivery never creates a second job for the same call.
   */
  async dispatch(data: ToolJobData, ctx: RequestContext, callKey: string): Promise<ToolJobResult> {
    if (!this.tracing?.enabled) {
      return this.publish(data, ctx, callKey);
    }
    // A PRODUCER span from enqueue to result; its context travels in the job to the worker.
    const tracing = this.tracing;
    const span = tracing.start(`publish ${TOOL_CALL_QUEUE}`, {
      kind: SpanKind.PRODUCER,
      attributes: {
        [SpanAttr.messagingSystem]: 'bullmq',
        [SpanAttr.queue]: TOOL_CALL_QUEUE,
        [SpanAttr.toolName]: data.tool,
        [SpanAttr.backend]: data.backend,
      },
    });
    try {
      return await tracing.within(span, () =>
        this.publish({ ...data, trace: tracing.inject({}) }, ctx, callKey, span),
      );
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
    callKey: string,
    span?: Span,
  ): Promise<ToolJobResult> {
    const { queue, events } = this.producer();
    const ready = await within(
      events.waitUntilReady().then(() => true),
      Math.max(1, data.deadline - Date.now()),
    );
    if (ready !== true) {
      throw new McpError(ErrorCode.InternalError, `The tool queue is unavailable (Redis)`);
    }
    const jobId = createHash('sha256').update(callKey).digest('hex');
    span?.setAttribute(SpanAttr.messageId, jobId);
    if (data.wantsProgress) {
      this.watchers.set(jobId, (p) => void relay(ctx, p));
    }
    const onAbort = () => void this.cancel(jobId);
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    try {
      const job = await queue.add(TOOL_CALL_JOB, data, {
        jobId,
        attempts: 1,
        removeOnComplete: { age: 60, count: 1000 },
        // Failed jobs stay for inspection (admin API, later) for a day.
        removeOnFail: { age: 24 * 3600 },
      });
      const ttl = Math.max(1, data.deadline - Date.now());
      try {
        return await job.waitUntilFinished(events, ttl);
      } catch (err) {
        throw toMcpError(err, data);
      }
    } finally {
      ctx.signal.removeEventListener('abort', onAbort);
      this.watchers.delete(jobId);
    }
  }

  /** Removes a waiting job, or tells the node running it to abort. */
  private async cancel(jobId: string): Promise<void> {
    try {
      const job = await this.queue?.getJob(jobId);
      const state = await job?.getState();
      if (job && (state === 'waiting' || state === 'delayed' || state === 'prioritized')) {
        await job.remove();
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
    this.subscriber = this.connection();
    this.subscriber
      .subscribe(`${this.prefix}:${TOOL_CALL_CANCEL_CHANNEL}`)
      .catch((err: unknown) => this.logger.warn(`Cancel channel: ${String(err)}`));
    this.subscriber.on('error', () => undefined);
    this.subscriber.on('message', (_channel: string, jobId: string) => {
      this.running.get(jobId)?.abort();
    });
    this.worker = new Worker<ToolJobData, ToolJobResult>(
      TOOL_CALL_QUEUE,
      async (job) => this.process(job, resolve),
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
    return tracing
      .within(span, () => this.measured(job, resolve))
      .then(
        (result) => {
          if (result.isError) {
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
  ): Promise<ToolJobResult> {
    const started = performance.now();
    // Enqueued (producer's clock) to moved to active (this worker's): clamped at 0 for skew.
    this.jobMetrics?.jobStarted(((job.processedOn ?? Date.now()) - job.timestamp) / 1000);
    let outcome: WorkerJobOutcome = 'failed';
    try {
      const result = await this.run(job, resolve);
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
      job.stalledCounter > 0 &&
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
    try {
      return await handler.call(data.arguments, workerContext(job, controller.signal));
    } catch (err) {
      // Checked first: a handler may answer its abort with an McpError of its own.
      if (controller.signal.aborted) {
        throw timedOut
          ? new JobStopped('timed_out', 'Deadline exceeded')
          : new JobStopped('cancelled', 'Cancelled');
      }
      if (err instanceof McpError) {
        throw new UnrecoverableError(`${MCP_ERROR_PREFIX}${err.code}:${err.message}`);
      }
      throw err;
    } finally {
      clearTimeout(timer);
      this.running.delete(job.id!);
    }
  }

  /**
   * Stops taking jobs and lets running ones finish (within the shutdown grace), then closes
   * every connection; a connection that cannot close cleanly (Redis gone) is dropped.
   */
  async onApplicationShutdown(): Promise<void> {
    this.stopping = true;
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

/** A failed job's reason back into the JSON-RPC error the handler threw, where it was one. */
function toMcpError(err: unknown, data: ToolJobData): McpError {
  const message = err instanceof Error ? err.message : String(err);
  const at = message.indexOf(MCP_ERROR_PREFIX);
  if (at >= 0) {
    const rest = message.slice(at + MCP_ERROR_PREFIX.length);
    const colon = rest.indexOf(':');
    return new McpError(Number(rest.slice(0, colon)), rest.slice(colon + 1));
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

/** The RequestContext a queued call runs with: progress and logs travel as job progress. */
function workerContext(job: Job<ToolJobData, ToolJobResult>, signal: AbortSignal): RequestContext {
  const data = job.data;
  const unsupported = (): Promise<never> =>
    Promise.reject(
      new McpError(ErrorCode.InternalError, 'Client input is not available to queued tools yet'),
    );
  let last = Number.NEGATIVE_INFINITY;
  return {
    era: 'modern',
    protocolVersion: data.protocolVersion,
    requestId: data.requestId,
    method: 'tools/call',
    clientCapabilities: {},
    principal: {
      id: data.principal.id,
      tenant: data.principal.tenant,
      scopes: data.principal.scopes,
    },
    signal,
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
    elicit: unsupported,
    createMessage: unsupported,
    listRoots: unsupported,
  };
}

import { Module, OnModuleDestroy } from '@nestjs/common';
import { ConfigService, PORTICO_VERSION, type PorticoConfig } from '@portico/config';
import {
  CatalogProvider,
  McpEngine,
  MemoryTaskStore,
  type TaskStore,
  type TaskWorkResumer,
} from '@portico/mcp-protocol';
import { McpRequestTracer } from '@portico/observability';
import { ToolCallQueue } from '@portico/queue';
import { RedisTaskStore } from '@portico/session';
import { CATALOG_PROVIDER } from './catalog.module';

export const SERVER_INFO = {
  name: 'portico',
  title: 'Portico MCP Gateway',
  version: PORTICO_VERSION,
};

/** The protocol engine over the catalog: one per process, shared by every transport. */
@Module({
  providers: [
    {
      provide: McpEngine,
      inject: [
        ConfigService,
        CATALOG_PROVIDER,
        { token: McpRequestTracer, optional: true },
        { token: ToolCallQueue, optional: true },
      ],
      useFactory: (
        config: ConfigService,
        catalog: CatalogProvider,
        tracer: McpRequestTracer | undefined,
        queue: ToolCallQueue | null | undefined,
      ) => {
        const mcp = config.values.mcp;
        return new McpEngine({
          serverInfo: SERVER_INFO,
          catalog,
          secret: mcp.secret,
          pageSize: mcp.pageSize,
          clientRequestTimeoutMs: mcp.clientRequestTimeoutMs,
          maxResourceSubscriptions: mcp.maxResourceSubscriptions,
          requestStateTtlMs: mcp.requestStateTtlMs,
          taskStore: taskStoreFor(config.values),
          taskTtlMs: mcp.taskTtlMs,
          taskMaxTtlMs: mcp.taskMaxTtlMs,
          taskPollIntervalMs: mcp.taskPollIntervalMs,
          taskLeaseMs: mcp.taskLeaseMs,
          // A task whose node stopped is taken over: waiting for its queued job, or following
          // its upstream's task.
          taskWork: eitherResumer(queue ?? undefined, catalog),
          // A span per request when tracing is on; no per-request hook at all when it is off.
          observer: tracer?.enabled ? tracer : undefined,
        });
      },
    },
  ],
  exports: [McpEngine],
})
export class McpEngineModule implements OnModuleDestroy {
  constructor(
    private readonly engine: McpEngine,
    private readonly config: ConfigService,
  ) {}

  /**
   * Ends open subscription streams gracefully before transports close; gives tasks running on
   * this node the shutdown grace to finish (then they are marked failed) and closes the task
   * store.
   */
  async onModuleDestroy(): Promise<void> {
    this.engine.close();
    await this.engine.closeTasks(this.config.values.shutdownGraceMs);
  }
}

/**
 * Tasks must be visible to every node that may receive a client's next request: with Redis
 * configured (a cluster, or a queue), they live there; otherwise in this process.
 */
function taskStoreFor(config: PorticoConfig): TaskStore {
  return config.redis
    ? new RedisTaskStore({ url: config.redis.url, keyPrefix: config.redis.keyPrefix })
    : new MemoryTaskStore();
}

/** The first of `resumers` that knows a task's work (each answers undefined for others). */
function eitherResumer(...resumers: unknown[]): TaskWorkResumer | undefined {
  const known = resumers.filter(
    (r): r is TaskWorkResumer =>
      typeof (r as Partial<TaskWorkResumer> | undefined)?.resume === 'function',
  );
  if (known.length === 0) {
    return undefined;
  }
  return {
    resume: (work, cancellation, progress) => {
      for (const resumer of known) {
        const resumed = resumer.resume(work, cancellation, progress);
        if (resumed) {
          return resumed;
        }
      }
      return undefined;
    },
  };
}

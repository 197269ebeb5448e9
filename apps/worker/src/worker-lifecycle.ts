import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { ConfigService } from '@portico/config';
import { ToolCallQueue } from '@portico/queue';
import { TenantCatalogRouter } from '@portico/registry';

/** Starts consuming queued tool calls at boot; readiness follows it. */
@Injectable()
export class WorkerLifecycle implements OnApplicationBootstrap {
  private readonly logger = new Logger(WorkerLifecycle.name);
  consuming = false;

  constructor(
    @Inject(ToolCallQueue) private readonly queue: ToolCallQueue | null,
    private readonly router: TenantCatalogRouter,
    private readonly config: ConfigService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    if (!this.queue) {
      throw new Error('REDIS_URL must be set for a worker process');
    }
    const { concurrency } = this.config.values.worker;
    await this.queue.startWorker(
      (job) => this.router.resolveJob(job),
      concurrency,
      this.config.values.worker.lockMs,
    );
    this.consuming = true;
    this.logger.log(`Consuming queued tool calls (concurrency ${concurrency})`);
  }

  /** Stops being ready at once; the queue's shutdown then lets running jobs finish. */
  stop(): void {
    this.consuming = false;
  }
}

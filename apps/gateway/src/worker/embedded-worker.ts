import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { ConfigService } from '@portico/config';
import { ToolCallQueue } from '@portico/queue';
import { TenantCatalogRouter } from '@portico/registry';

/**
 * Single-node deployments with Redis: the gateway consumes the tool-call queue itself
 * (WORKER_EMBEDDED, on by default), so queued backends work without a worker process.
 */
@Injectable()
export class EmbeddedWorker implements OnApplicationBootstrap {
  private readonly logger = new Logger(EmbeddedWorker.name);

  constructor(
    @Inject(ToolCallQueue) private readonly queue: ToolCallQueue | null,
    private readonly router: TenantCatalogRouter,
    private readonly config: ConfigService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const { embedded, concurrency } = this.config.values.worker;
    if (!this.queue || !embedded) {
      return;
    }
    await this.queue.startWorker(
      (job) => this.router.resolveJob(job),
      concurrency,
      this.config.values.worker.lockMs,
    );
    this.logger.log(`Embedded worker consuming queued tool calls (concurrency ${concurrency})`);
  }
}

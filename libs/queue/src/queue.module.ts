import { Global, Module } from '@nestjs/common';
import { ConfigService } from '@portico/config';
import { GatewayMetrics, Tracing } from '@portico/observability';
import { ToolCallQueue } from './tool-call.queue';

/**
 * The tool-call queue when REDIS_URL is set; `null` otherwise (everything runs inline), so
 * consumers inject it and check. With a MetricsModule loaded, the queue's depth and its
 * worker's jobs are part of /metrics.
 */
@Global()
@Module({
  providers: [
    {
      provide: ToolCallQueue,
      // Metrics are optional: the CLI loads no MetricsModule.
      inject: [
        ConfigService,
        { token: GatewayMetrics, optional: true },
        { token: Tracing, optional: true },
      ],
      useFactory: (config: ConfigService, metrics?: GatewayMetrics, tracing?: Tracing) =>
        config.values.redis ? new ToolCallQueue(config, metrics, tracing) : null,
    },
  ],
  exports: [ToolCallQueue],
})
export class QueueModule {}

import { Global, Module } from '@nestjs/common';
import { ConfigService } from '@portico/config';
import { ToolCallQueue } from './tool-call.queue';

/**
 * The tool-call queue when REDIS_URL is set; `null` otherwise (everything runs inline), so
 * consumers inject it and check.
 */
@Global()
@Module({
  providers: [
    {
      provide: ToolCallQueue,
      inject: [ConfigService],
      useFactory: (config: ConfigService) =>
        config.values.redis ? new ToolCallQueue(config) : null,
    },
  ],
  exports: [ToolCallQueue],
})
export class QueueModule {}

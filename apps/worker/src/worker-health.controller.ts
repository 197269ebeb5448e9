import { Controller, Get, Inject } from '@nestjs/common';
import {
  HealthCheck,
  HealthCheckService,
  HealthIndicatorService,
  TypeOrmHealthIndicator,
} from '@nestjs/terminus';
import { ConfigService } from '@portico/config';
import { ToolCallQueue } from '@portico/queue';
import { WorkerLifecycle } from './worker-lifecycle';

/** The worker's own health: live while it runs; ready while it consumes and its stores answer. */
@Controller('health')
export class WorkerHealthController {
  private readonly timeoutMs: number;

  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly database: TypeOrmHealthIndicator,
    @Inject(ToolCallQueue) private readonly queue: ToolCallQueue | null,
    private readonly lifecycle: WorkerLifecycle,
    config: ConfigService,
  ) {
    this.timeoutMs = config.values.healthCheckTimeoutMs;
  }

  @Get('live')
  @HealthCheck()
  live() {
    return this.health.check([() => this.indicators.check('process').up()]);
  }

  @Get('ready')
  @HealthCheck()
  ready() {
    return this.health.check([
      () => {
        const consuming = this.indicators.check('worker');
        return this.lifecycle.consuming ? consuming.up() : consuming.down({ message: 'stopped' });
      },
      () => this.database.pingCheck('database').withTimeout(this.timeoutMs),
      async () => {
        const redis = this.indicators.check('redis');
        return (await this.queue?.reachable(this.timeoutMs)) ? redis.up() : redis.down();
      },
    ]);
  }
}

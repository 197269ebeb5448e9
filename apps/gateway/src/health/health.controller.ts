import { Controller, Get } from '@nestjs/common';
import {
  HealthCheck,
  HealthCheckService,
  HealthIndicatorResult,
  HealthIndicatorService,
  TypeOrmHealthIndicator,
} from '@nestjs/terminus';
import { ConfigService } from '@portico/config';
import { QuotaService } from '@portico/tenancy';
import { LifecycleService } from './lifecycle.service';

@Controller('health')
export class HealthController {
  private readonly timeoutMs: number;

  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly database: TypeOrmHealthIndicator,
    private readonly quotas: QuotaService,
    private readonly lifecycle: LifecycleService,
    config: ConfigService,
  ) {
    this.timeoutMs = config.values.healthCheckTimeoutMs;
  }

  /** The process answers: nothing else is checked, so a slow dependency never restarts it. */
  @Get('live')
  @HealthCheck()
  live() {
    return this.health.check([
      () => this.indicators.check('process').up({ uptimeSeconds: Math.round(process.uptime()) }),
    ]);
  }

  /**
   * Ready for traffic: not draining (turns 503 as soon as a graceful shutdown starts), the
   * database answers, and Redis answers when one is configured; each check with its own
   * timeout (HEALTH_CHECK_TIMEOUT_MS).
   */
  @Get('ready')
  @HealthCheck()
  ready() {
    return this.health.check([
      () => {
        const lifecycle = this.indicators.check('lifecycle');
        return this.lifecycle.draining ? lifecycle.down({ message: 'draining' }) : lifecycle.up();
      },
      () => this.database.pingCheck('database').withTimeout(this.timeoutMs),
      () => this.redis(),
    ]);
  }

  private async redis(): Promise<HealthIndicatorResult> {
    const indicator = this.indicators.check('redis');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), this.timeoutMs);
    });
    try {
      const reachable = await Promise.race([this.quotas.redisReachable(), timedOut]);
      if (reachable === undefined) {
        return indicator.up({ configured: false });
      }
      return reachable ? indicator.up() : indicator.down({ message: 'unreachable' });
    } finally {
      clearTimeout(timer);
    }
  }
}

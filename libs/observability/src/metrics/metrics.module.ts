import { DynamicModule, Module } from '@nestjs/common';
import { PrometheusModule } from '@willsoto/nestjs-prometheus';
import { Registry } from 'prom-client';
import { ConfigService } from '@portico/config';
import { GatewayMetrics } from './gateway-metrics.service';
import { MetricsController } from './metrics.controller';

/**
 * Prometheus metrics for one application (the gateway or a worker): process and Node.js
 * metrics (event-loop lag included) plus GatewayMetrics, served at /metrics. Global, so
 * transports and libraries inject GatewayMetrics without importing this module.
 */
@Module({})
export class MetricsModule {
  static forRoot(): DynamicModule {
    // A registry per application instance: prom-client's default registry is per process, and
    // a second gateway in the same process (the e2e suites boot many) would collide with the
    // first's metric names.
    const registry = new Registry();
    return {
      module: MetricsModule,
      global: true,
      imports: [
        PrometheusModule.registerAsync({
          controller: MetricsController,
          inject: [ConfigService],
          useFactory: (...args: unknown[]) => {
            const config = args[0] as ConfigService;
            return {
              defaultMetrics: {
                enabled: config.values.metrics.enabled,
                config: { register: registry },
              },
            };
          },
        }),
      ],
      providers: [
        {
          provide: GatewayMetrics,
          inject: [ConfigService],
          useFactory: (config: ConfigService) =>
            new GatewayMetrics(registry, {
              maxToolLabels: config.values.metrics.maxToolLabels,
              // Reading queue depths from Redis is a dependency probe like the health checks.
              collectTimeoutMs: config.values.healthCheckTimeoutMs,
            }),
        },
      ],
      exports: [GatewayMetrics],
    };
  }
}

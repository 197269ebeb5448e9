import { DynamicModule, Injectable, Module, OnApplicationShutdown } from '@nestjs/common';
import { ConfigService, PORTICO_VERSION } from '@portico/config';
import { McpRequestTracer } from './mcp-request-observer';
import { Tracing } from './tracing';

/** Exports buffered spans when the application stops. */
@Injectable()
class TracingShutdown implements OnApplicationShutdown {
  constructor(private readonly tracing: Tracing) {}

  async onApplicationShutdown(): Promise<void> {
    await this.tracing.shutdown();
  }
}

/**
 * OpenTelemetry tracing for one application (gateway, worker, CLI), configured by the
 * standard OTEL_* variables (libs/config validates them); off unless OTEL_TRACES_EXPORTER=otlp.
 * Global, so transports and libraries inject Tracing without importing this module.
 */
@Module({})
export class TracingModule {
  /** `serviceName`: the default service.name (OTEL_SERVICE_NAME overrides it). */
  static forRoot(serviceName: string): DynamicModule {
    return {
      module: TracingModule,
      global: true,
      providers: [
        {
          provide: Tracing,
          inject: [ConfigService],
          useFactory: (config: ConfigService) =>
            new Tracing({
              enabled: config.values.tracing.enabled,
              protocol: config.values.tracing.protocol,
              serviceName: config.values.tracing.serviceName ?? serviceName,
              serviceVersion: PORTICO_VERSION,
              endpoint: config.values.tracing.endpoint,
            }),
        },
        {
          provide: McpRequestTracer,
          inject: [Tracing],
          useFactory: (tracing: Tracing) => new McpRequestTracer(tracing),
        },
        TracingShutdown,
      ],
      exports: [Tracing, McpRequestTracer],
    };
  }
}

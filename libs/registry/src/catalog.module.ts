import { DynamicModule, Module } from '@nestjs/common';
import { ConfigService } from '@portico/config';
import { CatalogProvider, StaticCatalog } from '@portico/mcp-protocol';
import { PinoLogger } from 'nestjs-pino';
import { GatewayMetrics, Tracing } from '@portico/observability';
import { ToolCallQueue } from '@portico/queue';
import { AuditService, QuotaService, TenantService } from '@portico/tenancy';
import { createConformanceCatalog } from '@portico/testing';
import { TenantCatalogRouter } from './tenant-catalog/tenant-catalog.router';
import { UpstreamOptions } from './upstream/upstream-options';
import { UpstreamSourceFactory } from './upstream/upstream-source.factory';

/** The CatalogProvider port the engine reads: the tenant router over the tenants' catalogs. */
export const CATALOG_PROVIDER = Symbol('CATALOG_PROVIDER');

@Module({})
export class CatalogModule {
  /**
   * `anonymous` (tests) replaces the catalog served without credentials at MCP_PATH, which is
   * otherwise the fixture named by FIXTURE_CATALOG (none in production).
   */
  static forRoot(anonymous?: CatalogProvider): DynamicModule {
    return {
      module: CatalogModule,
      global: true,
      providers: [
        {
          provide: TenantCatalogRouter,
          inject: [
            ConfigService,
            TenantService,
            AuditService,
            QuotaService,
            UpstreamSourceFactory,
            // Optional: the CLI serves catalogs without a MetricsModule.
            { token: GatewayMetrics, optional: true },
            // Null without REDIS_URL; absent where no QueueModule is loaded.
            { token: ToolCallQueue, optional: true },
            { token: Tracing, optional: true },
            // The tool-call log line; absent in the CLI (stdio keeps stdout for the protocol).
            { token: PinoLogger, optional: true },
          ],
          useFactory: (
            config: ConfigService,
            tenants: TenantService,
            audit: AuditService,
            quotas: QuotaService,
            upstreams: UpstreamSourceFactory,
            metrics?: GatewayMetrics,
            queue?: ToolCallQueue | null,
            tracing?: Tracing,
            pino?: PinoLogger,
          ) =>
            new TenantCatalogRouter(
              tenants,
              anonymous ??
                (config.values.mcp.fixtureCatalog === 'conformance'
                  ? createConformanceCatalog()
                  : new StaticCatalog()),
              audit,
              quotas,
              upstreams,
              metrics,
              queue,
              tracing,
              pino,
              config.values.log.redactPaths,
            ),
        },
        UpstreamSourceFactory,
        {
          provide: UpstreamOptions,
          inject: [ConfigService],
          useFactory: (config: ConfigService) =>
            new UpstreamOptions({
              stdioEnabled: config.values.upstream.stdioEnabled,
              stdioMaxChildren: config.values.upstream.stdioMaxChildren,
            }),
        },
        { provide: CATALOG_PROVIDER, useExisting: TenantCatalogRouter },
      ],
      exports: [CATALOG_PROVIDER, TenantCatalogRouter],
    };
  }
}

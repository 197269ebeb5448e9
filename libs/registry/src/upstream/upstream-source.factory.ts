import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { GatewayMetrics, Tracing } from '@portico/observability';
import type { BackendContext, BackendSource } from './backend-source';
import { McpUpstreamSource } from './mcp-upstream.source';
import { OpenApiSource } from '../openapi/openapi.source';
import { ReplicatedUpstreamSource } from './replicated-upstream.source';
import { UpstreamOptions } from './upstream-options';
import { upstreamSettings } from './upstream-settings';
import { upstreamConnector, type UpstreamMcpKind } from './upstream-transports';

/**
 * Connects non-fixture backends (upstream MCP servers, OpenAPI services) as catalog sources.
 * Returns undefined for a kind it cannot serve (yet); may throw when the upstream is down or
 * its target is refused (the router then leaves that backend out).
 */
@Injectable()
export class UpstreamSourceFactory {
  private readonly logger = new Logger(UpstreamSourceFactory.name);
  private readonly options: UpstreamOptions;

  constructor(
    // Absent where no MetricsModule is loaded (the CLI).
    @Optional() @Inject(GatewayMetrics) private readonly metrics?: GatewayMetrics,
    @Optional() @Inject(Tracing) private readonly tracing?: Tracing,
    @Optional() @Inject(UpstreamOptions) options?: UpstreamOptions,
  ) {
    this.options = options ?? new UpstreamOptions();
  }

  async create(context: BackendContext): Promise<BackendSource | undefined> {
    switch (context.backend.kind) {
      case 'mcp-http':
      case 'mcp-sse':
      case 'mcp-ws':
      case 'mcp-stdio':
        return this.mcp(context.backend.kind, context);
      case 'openapi':
        return OpenApiSource.connect(context, this.metrics, this.tracing);
      default:
        this.logger.warn(
          `Backend ${context.backend.name} (${context.backend.kind}) of tenant ` +
            `${context.tenantSlug}: this backend kind is not connected yet`,
        );
        return undefined;
    }
  }

  private mcp(kind: UpstreamMcpKind, context: BackendContext): Promise<BackendSource> {
    if (kind === 'mcp-stdio' && !this.options.stdioEnabled) {
      // Refused before anything is spawned: the command is the tenant's choice.
      return Promise.reject(
        new Error(
          `Backend ${context.backend.name}: mcp-stdio backends are disabled on this gateway ` +
            '(UPSTREAM_STDIO_ENABLED)',
        ),
      );
    }
    const settings = upstreamSettings(context.backend);
    const tracing = this.tracing?.enabled ? this.tracing : undefined;
    if (kind !== 'mcp-stdio' && settings.replicas.length > 0) {
      return ReplicatedUpstreamSource.connect(kind, context, settings, this.metrics, tracing);
    }
    const connector = upstreamConnector(
      kind,
      context,
      settings,
      tracing,
      this.options.stdioChildren,
    );
    return McpUpstreamSource.connect(context, settings, connector, this.metrics, tracing);
  }
}

import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { GatewayMetrics, Tracing } from '@portico/observability';
import type { BackendContext, BackendSource } from './backend-source';
import { McpUpstreamSource } from './mcp-upstream.source';

/**
 * Connects non-fixture backends (upstream MCP servers, OpenAPI services) as catalog sources.
 * Returns undefined for a kind it cannot serve (yet); may throw when the upstream is down or
 * its target is refused (the router then leaves that backend out).
 */
@Injectable()
export class UpstreamSourceFactory {
  private readonly logger = new Logger(UpstreamSourceFactory.name);

  constructor(
    // Absent where no MetricsModule is loaded (the CLI).
    @Optional() @Inject(GatewayMetrics) private readonly metrics?: GatewayMetrics,
    @Optional() @Inject(Tracing) private readonly tracing?: Tracing,
  ) {}

  async create(context: BackendContext): Promise<BackendSource | undefined> {
    switch (context.backend.kind) {
      case 'mcp-http':
        return McpUpstreamSource.connect(context, this.metrics, this.tracing);
      default:
        this.logger.warn(
          `Backend ${context.backend.name} (${context.backend.kind}) of tenant ` +
            `${context.tenantSlug}: this backend kind is not connected yet`,
        );
        return undefined;
    }
  }
}

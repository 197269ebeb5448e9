import { Injectable, Logger } from '@nestjs/common';
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

  async create(context: BackendContext): Promise<BackendSource | undefined> {
    switch (context.backend.kind) {
      case 'mcp-http':
        return McpUpstreamSource.connect(context);
      default:
        this.logger.warn(
          `Backend ${context.backend.name} (${context.backend.kind}) of tenant ` +
            `${context.tenantSlug}: this backend kind is not connected yet`,
        );
        return undefined;
    }
  }
}

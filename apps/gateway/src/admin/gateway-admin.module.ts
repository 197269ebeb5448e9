import { Module } from '@nestjs/common';
import { AdminModule } from '@portico/tenancy';
import { McpModule } from '../mcp/mcp.module';
import { FailedJobsController } from './failed-jobs.controller';
import { SessionsController } from './sessions.controller';
import { TenantCatalogController } from './tenant-catalog.controller';

/**
 * The gateway's part of the admin API: what only the gateway knows (live MCP sessions, the
 * catalogs it built) or reaches (the tool-call queue's failed jobs).
 */
@Module({
  imports: [AdminModule, McpModule],
  controllers: [SessionsController, FailedJobsController, TenantCatalogController],
})
export class GatewayAdminModule {}

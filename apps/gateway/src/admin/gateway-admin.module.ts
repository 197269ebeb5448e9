import { Module } from '@nestjs/common';
import { AdminModule } from '@portico/tenancy';
import { McpModule } from '../mcp/mcp.module';
import { SessionsController } from './sessions.controller';

/** The gateway's part of the admin API: what only the gateway knows (live MCP sessions). */
@Module({
  imports: [AdminModule, McpModule],
  controllers: [SessionsController],
})
export class GatewayAdminModule {}

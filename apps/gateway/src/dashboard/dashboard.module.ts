import { Module } from '@nestjs/common';
import { McpModule } from '../mcp/mcp.module';
import { DashboardAccess } from './dashboard-access.service';
import { DashboardController } from './dashboard.controller';
import { DashboardProblemFilter } from './dashboard-problem.filter';
import { DashboardSampler } from './dashboard-sampler.service';

/**
 * The operators' live dashboard at /dashboard. Metrics, auth and tenants come from global
 * modules; McpModule gives the live sessions per tenant.
 */
@Module({
  imports: [McpModule],
  controllers: [DashboardController],
  providers: [DashboardAccess, DashboardSampler, DashboardProblemFilter],
  exports: [DashboardSampler],
})
export class DashboardModule {}

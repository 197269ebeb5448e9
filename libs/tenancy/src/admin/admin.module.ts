import { Module } from '@nestjs/common';
import { AdminAuditInterceptor } from './admin-audit.interceptor';
import { AdminGuard } from './admin.guard';
import { ApiKeysController } from './api-keys.controller';
import { PlatformApiKeysController } from './platform-api-keys.controller';
import { AuditController } from './audit.controller';
import { BackendsController } from './backends.controller';
import { ProblemDetailsFilter } from './problem-details.filter';
import { RoleBindingsController } from './role-bindings.controller';
import { TenantsController } from './tenants.controller';
import { ToolPoliciesController } from './tool-policies.controller';
import { VirtualServersController } from './virtual-servers.controller';

/**
 * The admin API under /admin/v1. Services come from the global TenancyModule and AuthModule;
 * apps add their own admin controllers (sessions) with the same AdminController decorator.
 */
@Module({
  controllers: [
    TenantsController,
    BackendsController,
    ToolPoliciesController,
    VirtualServersController,
    ApiKeysController,
    PlatformApiKeysController,
    RoleBindingsController,
    AuditController,
  ],
  providers: [AdminGuard, AdminAuditInterceptor, ProblemDetailsFilter],
  exports: [AdminGuard, AdminAuditInterceptor, ProblemDetailsFilter],
})
export class AdminModule {}

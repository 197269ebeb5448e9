import { Global, Module } from '@nestjs/common';
import { AuditService } from './audit/audit.service';
import { TenantService } from './tenant/tenant.service';

/** Tenants and their audit trail; repositories come from the global PersistenceModule. */
@Global()
@Module({
  providers: [TenantService, AuditService],
  exports: [TenantService, AuditService],
})
export class TenancyModule {}

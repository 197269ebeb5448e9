import { Global, Module } from '@nestjs/common';
import { AuditService } from './audit/audit.service';
import { DeclarativeApplyService } from './declarative/declarative-apply.service';
import { QuotaService } from './quota/quota.service';
import { TenantService } from './tenant/tenant.service';

/** Tenants and their audit trail; repositories come from the global PersistenceModule. */
@Global()
@Module({
  providers: [TenantService, AuditService, DeclarativeApplyService, QuotaService],
  exports: [TenantService, AuditService, DeclarativeApplyService, QuotaService],
})
export class TenancyModule {}

export * from './audit/audit.service';
export * from './tenancy.module';
export * from './tenant/tenant.service';

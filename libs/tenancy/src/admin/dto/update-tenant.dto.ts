import { OmitType, PartialType } from '@nestjs/swagger';
import { CreateTenantDto } from './create-tenant.dto';

/** The slug is the tenant's address and never changes. */
export class UpdateTenantDto extends PartialType(OmitType(CreateTenantDto, ['slug'] as const)) {}

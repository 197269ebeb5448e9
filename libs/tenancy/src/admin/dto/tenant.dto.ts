import { ApiProperty } from '@nestjs/swagger';
import type { TenantEntity, TenantStatus } from '@portico/persistence';
import { TENANT_STATUSES, TenantAuthDto, TenantLimitsDto } from './create-tenant.dto';

export class TenantDto {
  @ApiProperty({ format: 'uuid' })
  id!: string;

  @ApiProperty()
  slug!: string;

  @ApiProperty()
  name!: string;

  @ApiProperty({ enum: TENANT_STATUSES })
  status!: TenantStatus;

  @ApiProperty({ type: TenantLimitsDto })
  limits!: TenantLimitsDto;

  @ApiProperty({ type: TenantAuthDto })
  auth!: TenantAuthDto;

  @ApiProperty({ description: 'Bumped on every change of the tenant or anything it owns' })
  revision!: number;

  @ApiProperty()
  createdAt!: Date;

  @ApiProperty()
  updatedAt!: Date;

  static from(tenant: TenantEntity): TenantDto {
    return {
      id: tenant.id,
      slug: tenant.slug,
      name: tenant.name,
      status: tenant.status,
      limits: tenant.limits,
      auth: tenant.auth,
      revision: tenant.revision,
      createdAt: tenant.createdAt,
      updatedAt: tenant.updatedAt,
    };
  }
}

export class TenantPageDto {
  @ApiProperty({ type: [TenantDto] })
  items!: TenantDto[];

  @ApiProperty()
  total!: number;

  @ApiProperty()
  offset!: number;

  @ApiProperty()
  limit!: number;
}

import { Get, Query } from '@nestjs/common';
import { ApiOkResponse, ApiParam } from '@nestjs/swagger';
import { TenantCatalogRouter } from '@portico/registry';
import { AdminController, TenantAdmin, TenantAdminContext } from '@portico/tenancy';
import { TenantCatalogDto, TenantCatalogQueryDto } from './tenant-catalog.dto';

/**
 * What a tenant's MCP clients are served and why: the backends' states, the lists with
 * policies applied, and every name that more than one backend offers. Answered from this
 * node's catalog (built on demand), which is what this node's clients see.
 */
@AdminController('tenants/:slug/catalog', 'tenant', 'catalog')
@ApiParam({ name: 'slug', description: 'Tenant slug' })
export class TenantCatalogController {
  constructor(private readonly catalogs: TenantCatalogRouter) {}

  @Get()
  @ApiOkResponse({ type: TenantCatalogDto })
  async get(
    @Query() { offset, limit }: TenantCatalogQueryDto,
    @TenantAdmin() { tenant }: TenantAdminContext,
  ): Promise<TenantCatalogDto> {
    return TenantCatalogDto.from(await this.catalogs.describe(tenant.id), offset, limit);
  }
}

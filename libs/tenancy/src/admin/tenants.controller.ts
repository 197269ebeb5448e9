import { Body, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import {
  ApiConflictResponse,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
} from '@nestjs/swagger';
import type { TenantEntity } from '@portico/persistence';
import { TenantService } from '../tenant/tenant.service';
import { AdminError } from './admin.errors';
import { Admin, AdminContext } from './admin-context';
import { Audited } from './admin-audit.interceptor';
import { AdminController } from './admin-controller.decorator';
import { definedOnly } from './defined-only';
import { CreateTenantDto } from './dto/create-tenant.dto';
import { PageQueryDto } from './dto/page-query.dto';
import { ProblemDetailsDto } from './dto/problem-details.dto';
import { TenantDto, TenantPageDto } from './dto/tenant.dto';
import { UpdateTenantDto } from './dto/update-tenant.dto';

@AdminController('tenants', 'platform', 'tenants')
export class TenantsController {
  constructor(private readonly tenants: TenantService) {}

  @Post()
  @Audited('tenant.create')
  @ApiCreatedResponse({ type: TenantDto })
  @ApiConflictResponse({ type: ProblemDetailsDto, description: 'The slug is taken' })
  async create(@Body() body: CreateTenantDto, @Admin() admin: AdminContext): Promise<TenantDto> {
    admin.audit.target = body.slug;
    const tenant = await this.tenants.create(body);
    admin.audit.tenantId = tenant.id;
    return TenantDto.from(tenant);
  }

  @Get()
  @ApiOkResponse({ type: TenantPageDto })
  async list(@Query() page: PageQueryDto): Promise<TenantPageDto> {
    const [rows, total] = await this.tenants.list({ skip: page.offset, take: page.limit });
    return { items: rows.map((t) => TenantDto.from(t)), total, ...page };
  }

  @Get(':slug')
  @ApiOkResponse({ type: TenantDto })
  async get(@Param('slug') slug: string): Promise<TenantDto> {
    return TenantDto.from(await this.find(slug));
  }

  @Patch(':slug')
  @Audited('tenant.update')
  @ApiOkResponse({ type: TenantDto })
  async update(
    @Param('slug') slug: string,
    @Body() body: UpdateTenantDto,
    @Admin() admin: AdminContext,
  ): Promise<TenantDto> {
    const tenant = await this.find(slug);
    admin.audit.tenantId = tenant.id;
    const patch = definedOnly(body);
    admin.audit.details = { fields: Object.keys(patch) };
    return TenantDto.from(await this.tenants.update(tenant, patch));
  }

  @Delete(':slug')
  @HttpCode(204)
  @Audited('tenant.delete')
  @ApiNoContentResponse()
  async remove(@Param('slug') slug: string, @Admin() admin: AdminContext): Promise<void> {
    const tenant = await this.find(slug);
    admin.audit.tenantId = tenant.id;
    await this.tenants.remove(tenant);
  }

  private async find(slug: string): Promise<TenantEntity> {
    // Read past the cache: platform admins expect to see a change they just made anywhere.
    const cached = await this.tenants.bySlug(slug);
    const tenant = cached && (await this.tenants.byId(cached.id));
    if (!tenant) {
      throw AdminError.notFound(`Tenant "${slug}"`);
    }
    return tenant;
  }
}

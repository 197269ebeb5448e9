import { Body, Delete, Get, HttpCode, Param, Patch, Post } from '@nestjs/common';
import {
  ApiConflictResponse,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiParam,
} from '@nestjs/swagger';
import type { BackendEntity } from '@portico/persistence';
import { TenantService } from '../tenant/tenant.service';
import { AdminError } from './admin.errors';
import { TenantAdmin, TenantAdminContext } from './admin-context';
import { Audited } from './admin-audit.interceptor';
import { AdminController } from './admin-controller.decorator';
import { definedOnly } from './defined-only';
import { BackendDto } from './dto/backend.dto';
import { CreateBackendDto } from './dto/create-backend.dto';
import { ProblemDetailsDto } from './dto/problem-details.dto';
import { UpdateBackendDto } from './dto/update-backend.dto';

@AdminController('tenants/:slug/backends', 'tenant', 'backends')
@ApiParam({ name: 'slug', description: 'Tenant slug' })
export class BackendsController {
  constructor(private readonly tenants: TenantService) {}

  @Post()
  @Audited('backend.create')
  @ApiCreatedResponse({ type: BackendDto })
  @ApiConflictResponse({ type: ProblemDetailsDto, description: 'The name is taken' })
  async create(
    @Body() body: CreateBackendDto,
    @TenantAdmin() { tenant }: TenantAdminContext,
  ): Promise<BackendDto> {
    const row = await this.tenants.backends(tenant.id).insert({
      name: body.name,
      kind: body.kind,
      target: body.target,
      settings: body.settings ?? {},
      credentialsSealed: body.credentials
        ? this.tenants.sealCredentials(tenant.id, body.name, body.credentials)
        : null,
    });
    await this.tenants.changed(tenant);
    return BackendDto.from(row);
  }

  @Get()
  @ApiOkResponse({ type: [BackendDto] })
  async list(@TenantAdmin() { tenant }: TenantAdminContext): Promise<BackendDto[]> {
    const rows = await this.tenants.backends(tenant.id).find({}, { order: { name: 'ASC' } });
    return rows.map((row) => BackendDto.from(row));
  }

  @Get(':id')
  @ApiOkResponse({ type: BackendDto })
  async get(
    @Param('id') id: string,
    @TenantAdmin() { tenant }: TenantAdminContext,
  ): Promise<BackendDto> {
    return BackendDto.from(await this.find(tenant.id, id));
  }

  @Patch(':id')
  @Audited('backend.update')
  @ApiOkResponse({ type: BackendDto })
  async update(
    @Param('id') id: string,
    @Body() body: UpdateBackendDto,
    @TenantAdmin() { tenant, audit }: TenantAdminContext,
  ): Promise<BackendDto> {
    const existing = await this.find(tenant.id, id);
    const { credentials, ...rest } = definedOnly(body);
    const patch: Partial<BackendEntity> = { ...rest };
    if (credentials === null) {
      patch.credentialsSealed = null;
    } else if (credentials !== undefined) {
      patch.credentialsSealed = this.tenants.sealCredentials(tenant.id, existing.name, credentials);
    }
    // Which fields changed, never their values: credentials must not reach the audit trail.
    audit.details = { fields: Object.keys(definedOnly(body)) };
    const row = await this.tenants.backends(tenant.id).update(id, patch);
    if (!row) {
      throw AdminError.notFound('Backend');
    }
    await this.tenants.changed(tenant);
    return BackendDto.from(row);
  }

  @Delete(':id')
  @HttpCode(204)
  @Audited('backend.delete')
  @ApiNoContentResponse()
  async remove(
    @Param('id') id: string,
    @TenantAdmin() { tenant }: TenantAdminContext,
  ): Promise<void> {
    if ((await this.tenants.backends(tenant.id).delete({ id })) === 0) {
      throw AdminError.notFound('Backend');
    }
    await this.tenants.changed(tenant);
  }

  private async find(tenantId: string, id: string): Promise<BackendEntity> {
    const row = await this.tenants.backends(tenantId).findById(id);
    if (!row) {
      throw AdminError.notFound('Backend');
    }
    return row;
  }
}

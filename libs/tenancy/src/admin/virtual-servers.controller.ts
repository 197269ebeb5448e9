import { Body, Delete, Get, HttpCode, Param, Patch, Post } from '@nestjs/common';
import {
  ApiConflictResponse,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiParam,
} from '@nestjs/swagger';
import type { VirtualServerEntity } from '@portico/persistence';
import { TenantService } from '../tenant/tenant.service';
import { AdminError } from './admin.errors';
import { TenantAdmin, TenantAdminContext } from './admin-context';
import { Audited } from './admin-audit.interceptor';
import { AdminController } from './admin-controller.decorator';
import { definedOnly } from './defined-only';
import { CreateVirtualServerDto } from './dto/create-virtual-server.dto';
import { ProblemDetailsDto } from './dto/problem-details.dto';
import { UpdateVirtualServerDto } from './dto/update-virtual-server.dto';
import { VirtualServerDto } from './dto/virtual-server.dto';

/**
 * Virtual servers: named subsets of the tenant's catalog, each at `/mcp/{tenant}/{name}`.
 * Every change bumps the tenant's revision, so connected clients of the server get
 * list_changed and every node rebuilds its view.
 */
@AdminController('tenants/:slug/servers', 'tenant', 'servers')
@ApiParam({ name: 'slug', description: 'Tenant slug' })
export class VirtualServersController {
  constructor(private readonly tenants: TenantService) {}

  @Post()
  @Audited('virtual-server.create')
  @ApiCreatedResponse({ type: VirtualServerDto })
  @ApiConflictResponse({ type: ProblemDetailsDto, description: 'The name is taken' })
  async create(
    @Body() body: CreateVirtualServerDto,
    @TenantAdmin() { tenant, audit }: TenantAdminContext,
  ): Promise<VirtualServerDto> {
    const servers = this.tenants.servers(tenant.id);
    if (await servers.findOne({ name: body.name })) {
      throw new AdminError('conflict', `A server named "${body.name}" already exists`);
    }
    audit.details = { name: body.name };
    const row = await servers.insert({
      name: body.name,
      title: body.title ?? null,
      description: body.description ?? null,
      tools: body.tools ?? [],
      prompts: body.prompts ?? [],
      resources: body.resources ?? [],
      resourceTemplates: body.resourceTemplates ?? [],
    });
    await this.tenants.changed(tenant);
    return VirtualServerDto.from(row);
  }

  @Get()
  @ApiOkResponse({ type: [VirtualServerDto] })
  async list(@TenantAdmin() { tenant }: TenantAdminContext): Promise<VirtualServerDto[]> {
    const rows = await this.tenants.servers(tenant.id).find({}, { order: { name: 'ASC' } });
    return rows.map((row) => VirtualServerDto.from(row));
  }

  @Get(':id')
  @ApiOkResponse({ type: VirtualServerDto })
  async get(
    @Param('id') id: string,
    @TenantAdmin() { tenant }: TenantAdminContext,
  ): Promise<VirtualServerDto> {
    return VirtualServerDto.from(await this.find(tenant.id, id));
  }

  @Patch(':id')
  @Audited('virtual-server.update')
  @ApiOkResponse({ type: VirtualServerDto })
  async update(
    @Param('id') id: string,
    @Body() body: UpdateVirtualServerDto,
    @TenantAdmin() { tenant, audit }: TenantAdminContext,
  ): Promise<VirtualServerDto> {
    const patch = definedOnly(body);
    audit.details = { fields: Object.keys(patch) };
    const row = await this.tenants.servers(tenant.id).update(id, patch);
    if (!row) {
      throw AdminError.notFound('Server');
    }
    audit.details = { name: row.name, fields: Object.keys(patch) };
    await this.tenants.changed(tenant);
    return VirtualServerDto.from(row);
  }

  @Delete(':id')
  @HttpCode(204)
  @Audited('virtual-server.delete')
  @ApiNoContentResponse()
  async remove(
    @Param('id') id: string,
    @TenantAdmin() { tenant, audit }: TenantAdminContext,
  ): Promise<void> {
    const row = await this.find(tenant.id, id);
    audit.details = { name: row.name };
    if ((await this.tenants.servers(tenant.id).delete({ id })) === 0) {
      throw AdminError.notFound('Server');
    }
    await this.tenants.changed(tenant);
  }

  private async find(tenantId: string, id: string): Promise<VirtualServerEntity> {
    const row = await this.tenants.servers(tenantId).findById(id);
    if (!row) {
      throw AdminError.notFound('Server');
    }
    return row;
  }
}

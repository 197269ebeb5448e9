import { Body, Delete, Get, HttpCode, Param, Patch, Post } from '@nestjs/common';
import {
  ApiConflictResponse,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiParam,
} from '@nestjs/swagger';
import { TenantService } from '../tenant/tenant.service';
import { AdminError } from './admin.errors';
import { TenantAdmin, TenantAdminContext } from './admin-context';
import { Audited } from './admin-audit.interceptor';
import { AdminController } from './admin-controller.decorator';
import { definedOnly } from './defined-only';
import { CreateToolPolicyDto } from './dto/create-tool-policy.dto';
import { ProblemDetailsDto } from './dto/problem-details.dto';
import { ToolPolicyDto } from './dto/tool-policy.dto';
import { UpdateToolPolicyDto } from './dto/update-tool-policy.dto';

@AdminController('tenants/:slug/tool-policies', 'tenant', 'tool-policies')
@ApiParam({ name: 'slug', description: 'Tenant slug' })
export class ToolPoliciesController {
  constructor(private readonly tenants: TenantService) {}

  @Post()
  @Audited('tool-policy.create')
  @ApiCreatedResponse({ type: ToolPolicyDto })
  @ApiConflictResponse({ type: ProblemDetailsDto, description: 'The tool has a policy already' })
  async create(
    @Body() body: CreateToolPolicyDto,
    @TenantAdmin() { tenant }: TenantAdminContext,
  ): Promise<ToolPolicyDto> {
    const row = await this.tenants.policies(tenant.id).insert({
      tool: body.tool,
      requiredScopes: body.requiredScopes ?? [],
      disabled: body.disabled ?? false,
      description: body.description ?? null,
      rename: body.rename ?? null,
      annotations: body.annotations ?? null,
    });
    await this.tenants.changed(tenant);
    return ToolPolicyDto.from(row);
  }

  @Get()
  @ApiOkResponse({ type: [ToolPolicyDto] })
  async list(@TenantAdmin() { tenant }: TenantAdminContext): Promise<ToolPolicyDto[]> {
    const rows = await this.tenants.policies(tenant.id).find({}, { order: { tool: 'ASC' } });
    return rows.map((row) => ToolPolicyDto.from(row));
  }

  @Get(':id')
  @ApiOkResponse({ type: ToolPolicyDto })
  async get(
    @Param('id') id: string,
    @TenantAdmin() { tenant }: TenantAdminContext,
  ): Promise<ToolPolicyDto> {
    const row = await this.tenants.policies(tenant.id).findById(id);
    if (!row) {
      throw AdminError.notFound('Tool policy');
    }
    return ToolPolicyDto.from(row);
  }

  @Patch(':id')
  @Audited('tool-policy.update')
  @ApiOkResponse({ type: ToolPolicyDto })
  async update(
    @Param('id') id: string,
    @Body() body: UpdateToolPolicyDto,
    @TenantAdmin() { tenant, audit }: TenantAdminContext,
  ): Promise<ToolPolicyDto> {
    const patch = definedOnly(body);
    audit.details = { fields: Object.keys(patch) };
    const row = await this.tenants.policies(tenant.id).update(id, patch);
    if (!row) {
      throw AdminError.notFound('Tool policy');
    }
    await this.tenants.changed(tenant);
    return ToolPolicyDto.from(row);
  }

  @Delete(':id')
  @HttpCode(204)
  @Audited('tool-policy.delete')
  @ApiNoContentResponse()
  async remove(
    @Param('id') id: string,
    @TenantAdmin() { tenant }: TenantAdminContext,
  ): Promise<void> {
    if ((await this.tenants.policies(tenant.id).delete({ id })) === 0) {
      throw AdminError.notFound('Tool policy');
    }
    await this.tenants.changed(tenant);
  }
}

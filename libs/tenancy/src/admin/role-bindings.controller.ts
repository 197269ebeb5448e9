import { Body, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import {
  ApiConflictResponse,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiParam,
} from '@nestjs/swagger';
import { AuthService } from '@portico/auth';
import { TenantService } from '../tenant/tenant.service';
import { AdminError } from './admin.errors';
import { TenantAdmin, TenantAdminContext } from './admin-context';
import { Audited } from './admin-audit.interceptor';
import { AdminController } from './admin-controller.decorator';
import { CreateRoleBindingDto } from './dto/create-role-binding.dto';
import { ProblemDetailsDto } from './dto/problem-details.dto';
import { RoleBindingDto } from './dto/role-binding.dto';

@AdminController('tenants/:slug/role-bindings', 'tenant', 'role-bindings')
@ApiParam({ name: 'slug', description: 'Tenant slug' })
export class RoleBindingsController {
  constructor(
    private readonly tenants: TenantService,
    private readonly auth: AuthService,
  ) {}

  @Post()
  @Audited('role-binding.create')
  @ApiCreatedResponse({ type: RoleBindingDto })
  @ApiConflictResponse({ type: ProblemDetailsDto, description: 'The binding exists already' })
  async create(
    @Body() body: CreateRoleBindingDto,
    @TenantAdmin() { tenant }: TenantAdminContext,
  ): Promise<RoleBindingDto> {
    const row = await this.tenants
      .roleBindings(tenant.id)
      .insert({ subject: body.subject, role: body.role, declared: false });
    this.auth.forgetBindings(tenant.id);
    return RoleBindingDto.from(row);
  }

  @Get()
  @ApiOkResponse({ type: [RoleBindingDto] })
  async list(@TenantAdmin() { tenant }: TenantAdminContext): Promise<RoleBindingDto[]> {
    const rows = await this.tenants
      .roleBindings(tenant.id)
      .find({}, { order: { subject: 'ASC', role: 'ASC' } });
    return rows.map((row) => RoleBindingDto.from(row));
  }

  @Delete(':id')
  @HttpCode(204)
  @Audited('role-binding.delete')
  @ApiNoContentResponse()
  async remove(
    @Param('id') id: string,
    @TenantAdmin() { tenant }: TenantAdminContext,
  ): Promise<void> {
    if ((await this.tenants.roleBindings(tenant.id).delete({ id })) === 0) {
      throw AdminError.notFound('Role binding');
    }
    this.auth.forgetBindings(tenant.id);
  }
}

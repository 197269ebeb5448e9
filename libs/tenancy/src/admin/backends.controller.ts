import { Body, Delete, Get, HttpCode, Param, Patch, Post } from '@nestjs/common';
import {
  ApiConflictResponse,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiParam,
} from '@nestjs/swagger';
import type { AuthPrincipal } from '@portico/auth';
import type { BackendEntity } from '@portico/persistence';
import { TenantService } from '../tenant/tenant.service';
import { backendSettingsProblems } from '../declarative/declarative-config';
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
    @TenantAdmin() { tenant, principal }: TenantAdminContext,
  ): Promise<BackendDto> {
    assertMayRunProcesses(principal, body.kind);
    assertValidSettings(body.kind, body.settings ?? {});
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
    @TenantAdmin() { tenant, audit, principal }: TenantAdminContext,
  ): Promise<BackendDto> {
    const existing = await this.find(tenant.id, id);
    // Changing a process-running backend, or turning one into it, is for platform admins.
    assertMayRunProcesses(principal, existing.kind);
    assertMayRunProcesses(principal, body.kind);
    if (body.kind !== undefined || body.settings !== undefined) {
      assertValidSettings(body.kind ?? existing.kind, body.settings ?? existing.settings);
    }
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

/** Kinds whose backends run a command on the gateway's host. */
const PROCESS_KINDS: ReadonlySet<string> = new Set(['mcp-stdio']);

/**
 * A backend that starts processes on the gateway's host (`mcp-stdio`) is created or changed by
 * a platform admin only (or from portico.yaml): a tenant admin must not run commands there.
 */
function assertMayRunProcesses(principal: AuthPrincipal, kind: string | undefined): void {
  if (
    kind !== undefined &&
    PROCESS_KINDS.has(kind) &&
    !principal.roles.includes('platform-admin')
  ) {
    throw AdminError.forbidden(`Only a platform admin may create or change ${kind} backends`);
  }
}

/** Kind-specific settings rules (the same as portico.yaml's), as a 400 naming each field. */
function assertValidSettings(kind: string, settings: Record<string, unknown>): void {
  const problems = backendSettingsProblems(kind, settings);
  if (problems.length > 0) {
    throw AdminError.validation(
      problems.map((p) => ({ field: `settings.${p.path}`, messages: [p.message] })),
    );
  }
}

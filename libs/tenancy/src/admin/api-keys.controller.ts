import { Body, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import {
  ApiConflictResponse,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiParam,
} from '@nestjs/swagger';
import { ApiKeyService } from '@portico/auth';
import type { ApiKeyEntity } from '@portico/persistence';
import { AdminError } from './admin.errors';
import { TenantAdmin, TenantAdminContext } from './admin-context';
import { Audited } from './admin-audit.interceptor';
import { AdminController } from './admin-controller.decorator';
import { ApiKeyDto, CreatedApiKeyDto } from './dto/api-key.dto';
import { CreateApiKeyDto } from './dto/create-api-key.dto';
import { ProblemDetailsDto } from './dto/problem-details.dto';

@AdminController('tenants/:slug/api-keys', 'tenant', 'api-keys')
@ApiParam({ name: 'slug', description: 'Tenant slug' })
export class ApiKeysController {
  constructor(private readonly apiKeys: ApiKeyService) {}

  @Post()
  @Audited('api-key.create')
  @ApiCreatedResponse({ type: CreatedApiKeyDto, description: 'The secret is shown only here' })
  @ApiConflictResponse({ type: ProblemDetailsDto, description: 'The name is taken' })
  async create(
    @Body() body: CreateApiKeyDto,
    @TenantAdmin() { tenant }: TenantAdminContext,
  ): Promise<CreatedApiKeyDto> {
    const { entity, secret } = await this.apiKeys.create(tenant.id, {
      name: body.name,
      roles: body.roles ?? ['tool-user'],
      scopes: body.scopes ?? [],
      expiresAt: body.expiresAt ?? null,
    });
    return { ...ApiKeyDto.from(entity), secret };
  }

  @Get()
  @ApiOkResponse({ type: [ApiKeyDto] })
  async list(@TenantAdmin() { tenant }: TenantAdminContext): Promise<ApiKeyDto[]> {
    const rows = await this.apiKeys.forTenant(tenant.id).find({}, { order: { name: 'ASC' } });
    return rows.map((row) => ApiKeyDto.from(row));
  }

  @Get(':id')
  @ApiOkResponse({ type: ApiKeyDto })
  async get(
    @Param('id') id: string,
    @TenantAdmin() { tenant }: TenantAdminContext,
  ): Promise<ApiKeyDto> {
    return ApiKeyDto.from(await this.find(tenant.id, id));
  }

  /** Revocation keeps the row (listings and the audit trail still name the key). */
  @Delete(':id')
  @HttpCode(204)
  @Audited('api-key.revoke')
  @ApiNoContentResponse()
  async remove(
    @Param('id') id: string,
    @TenantAdmin() { tenant }: TenantAdminContext,
  ): Promise<void> {
    await this.revokeKey(tenant.id, id);
  }

  @Post(':id/revoke')
  @HttpCode(200)
  @Audited('api-key.revoke')
  @ApiOkResponse({ type: ApiKeyDto })
  async revoke(
    @Param('id') id: string,
    @TenantAdmin() { tenant }: TenantAdminContext,
  ): Promise<ApiKeyDto> {
    return ApiKeyDto.from(await this.revokeKey(tenant.id, id));
  }

  /** Idempotent: revoking a revoked key succeeds and leaves its first revocation time. */
  private async revokeKey(tenantId: string, id: string): Promise<ApiKeyEntity> {
    await this.find(tenantId, id);
    await this.apiKeys.revoke(tenantId, id);
    return this.find(tenantId, id);
  }

  private async find(tenantId: string, id: string): Promise<ApiKeyEntity> {
    const row = await this.apiKeys.forTenant(tenantId).findById(id);
    if (!row) {
      throw AdminError.notFound('API key');
    }
    return row;
  }
}

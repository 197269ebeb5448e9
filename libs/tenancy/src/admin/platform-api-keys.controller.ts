import { Body, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse } from '@nestjs/swagger';
import { ApiKeyService } from '@portico/auth';
import type { ApiKeyEntity } from '@portico/persistence';
import { AdminError } from './admin.errors';
import { Audited } from './admin-audit.interceptor';
import { AdminController } from './admin-controller.decorator';
import { ApiKeyDto, CreatedApiKeyDto } from './dto/api-key.dto';
import { CreatePlatformApiKeyDto } from './dto/create-platform-api-key.dto';

/**
 * Platform-level keys (platform-admin, no tenant): what replaces BOOTSTRAP_ADMIN_TOKEN once the
 * first tenants exist. Valid on the admin API only, never on a tenant's MCP endpoint.
 */
@AdminController('api-keys', 'platform', 'platform-api-keys')
export class PlatformApiKeysController {
  constructor(private readonly apiKeys: ApiKeyService) {}

  @Post()
  @Audited('platform-api-key.create')
  @ApiCreatedResponse({ type: CreatedApiKeyDto, description: 'The secret is shown only here' })
  async create(@Body() body: CreatePlatformApiKeyDto): Promise<CreatedApiKeyDto> {
    const { entity, secret } = await this.apiKeys.create(null, {
      name: body.name,
      roles: ['platform-admin'],
      scopes: [],
      expiresAt: body.expiresAt ?? null,
    });
    return { ...ApiKeyDto.from(entity), secret };
  }

  @Get()
  @ApiOkResponse({ type: [ApiKeyDto] })
  async list(): Promise<ApiKeyDto[]> {
    return (await this.apiKeys.listPlatform()).map((row) => ApiKeyDto.from(row));
  }

  @Delete(':id')
  @HttpCode(204)
  @Audited('platform-api-key.revoke')
  @ApiNoContentResponse()
  async remove(@Param('id') id: string): Promise<void> {
    await this.find(id);
    await this.apiKeys.revoke(null, id);
  }

  private async find(id: string): Promise<ApiKeyEntity> {
    const row = await this.apiKeys.findPlatform(id);
    if (!row) {
      throw AdminError.notFound('API key');
    }
    return row;
  }
}

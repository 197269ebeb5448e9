import { Delete, Get, HttpCode, Param } from '@nestjs/common';
import { ApiNoContentResponse, ApiOkResponse, ApiParam } from '@nestjs/swagger';
import {
  AdminController,
  AdminError,
  Audited,
  TenantAdmin,
  TenantAdminContext,
} from '@portico/tenancy';
import { SessionRegistry } from '../mcp/session-registry.service';
import { SessionDto } from './session.dto';

@AdminController('tenants/:slug/sessions', 'tenant', 'sessions')
@ApiParam({ name: 'slug', description: 'Tenant slug' })
export class SessionsController {
  constructor(private readonly sessions: SessionRegistry) {}

  /** The tenant's live sessions held by this node. */
  @Get()
  @ApiOkResponse({ type: [SessionDto] })
  list(@TenantAdmin() { tenant }: TenantAdminContext): SessionDto[] {
    return this.sessions.listByTenant(tenant.id).map((live) => SessionDto.from(live));
  }

  @Delete(':id')
  @HttpCode(204)
  @Audited('session.terminate')
  @ApiNoContentResponse()
  async terminate(
    @Param('id') id: string,
    @TenantAdmin() { tenant }: TenantAdminContext,
  ): Promise<void> {
    // Ownership first: a session id of another tenant is answered like an unknown one.
    if (!this.sessions.findForTenant(id, tenant.id)) {
      throw AdminError.notFound('Session');
    }
    await this.sessions.terminate(id);
  }
}

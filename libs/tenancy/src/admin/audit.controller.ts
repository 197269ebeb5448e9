import { Get, Query } from '@nestjs/common';
import { ApiOkResponse, ApiParam } from '@nestjs/swagger';
import { AuditService } from '../audit/audit.service';
import { TenantAdmin, TenantAdminContext } from './admin-context';
import { AdminController } from './admin-controller.decorator';
import { AuditEventDto, AuditPageDto } from './dto/audit-event.dto';
import { AuditQueryDto } from './dto/audit-query.dto';

@AdminController('tenants/:slug/audit', 'tenant', 'audit')
@ApiParam({ name: 'slug', description: 'Tenant slug' })
export class AuditController {
  constructor(private readonly audit: AuditService) {}

  /** Newest first. */
  @Get()
  @ApiOkResponse({ type: AuditPageDto })
  async list(
    @Query() query: AuditQueryDto,
    @TenantAdmin() { tenant }: TenantAdminContext,
  ): Promise<AuditPageDto> {
    const { offset, limit, ...filters } = query;
    const [rows, total] = await this.audit.query(tenant.id, {
      ...filters,
      skip: offset,
      take: limit,
    });
    return { items: rows.map((row) => AuditEventDto.from(row)), total, offset, limit };
  }
}

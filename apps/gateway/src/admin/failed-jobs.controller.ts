import { Delete, Get, HttpCode, Inject, Param, Post, Query, UseFilters } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiConflictResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiParam,
  ApiServiceUnavailableResponse,
} from '@nestjs/swagger';
import { ToolCallQueue, ToolJobError } from '@portico/queue';
import {
  AdminController,
  AdminError,
  Audited,
  ProblemDetailsDto,
  TenantAdmin,
  TenantAdminContext,
} from '@portico/tenancy';
import {
  FailedJobDto,
  FailedJobPageDto,
  FailedJobsQueryDto,
  RetryFailedJobQueryDto,
} from './failed-job.dto';
import { QueueUnavailableFilter } from './queue-unavailable.filter';

/**
 * Failed queued tool calls of a tenant, kept for a day: list, retry, discard. Above
 * AdminController so that its filter is consulted before the catch-all problem filter.
 */
@UseFilters(QueueUnavailableFilter)
@AdminController('tenants/:slug/queue/failed', 'tenant', 'queue')
@ApiParam({ name: 'slug', description: 'Tenant slug' })
@ApiServiceUnavailableResponse({
  type: ProblemDetailsDto,
  description: 'Queued execution is not configured (no REDIS_URL) or Redis is unreachable',
})
export class FailedJobsController {
  constructor(@Inject(ToolCallQueue) private readonly queue: ToolCallQueue | null) {}

  /** The tenant's failed jobs, newest first; arguments are never shown. */
  @Get()
  @ApiOkResponse({ type: FailedJobPageDto })
  async list(
    @Query() { offset, limit }: FailedJobsQueryDto,
    @TenantAdmin() { tenant }: TenantAdminContext,
  ): Promise<FailedJobPageDto> {
    const page = await this.run((queue) => queue.failedJobs(tenant.id, offset, limit));
    return FailedJobPageDto.from(page, offset, limit);
  }

  /** Runs the job again with a fresh deadline; a non-idempotent tool needs `force=true`. */
  @Post(':id/retry')
  @HttpCode(202)
  @Audited('queue-job.retry')
  @ApiParam({ name: 'id', description: 'Job id' })
  @ApiAcceptedResponse({ type: FailedJobDto, description: 'Queued again (as it was when failed)' })
  @ApiConflictResponse({
    type: ProblemDetailsDto,
    description: 'The tool is not known to be idempotent and force=true was not given',
  })
  async retry(
    @Param('id') id: string,
    @Query() { force }: RetryFailedJobQueryDto,
    @TenantAdmin() { tenant, audit }: TenantAdminContext,
  ): Promise<FailedJobDto> {
    const job = await this.run((queue) => queue.retryFailed(tenant.id, id, force));
    audit.details = { backend: job.backend, tool: job.tool, idempotent: job.idempotent, force };
    return FailedJobDto.from(job);
  }

  @Delete(':id')
  @HttpCode(204)
  @Audited('queue-job.discard')
  @ApiParam({ name: 'id', description: 'Job id' })
  @ApiNoContentResponse()
  async discard(
    @Param('id') id: string,
    @TenantAdmin() { tenant, audit }: TenantAdminContext,
  ): Promise<void> {
    const job = await this.run((queue) => queue.discardFailed(tenant.id, id));
    audit.details = { backend: job.backend, tool: job.tool };
  }

  private async run<T>(op: (queue: ToolCallQueue) => Promise<T>): Promise<T> {
    if (!this.queue) {
      throw new ToolJobError(
        'unavailable',
        'Queued execution is not configured on this gateway (REDIS_URL is not set)',
      );
    }
    try {
      return await op(this.queue);
    } catch (err) {
      if (err instanceof ToolJobError && err.code === 'not-found') {
        throw AdminError.notFound('Failed job');
      }
      if (err instanceof ToolJobError && err.code === 'not-idempotent') {
        throw new AdminError('conflict', err.message);
      }
      throw err;
    }
  }
}

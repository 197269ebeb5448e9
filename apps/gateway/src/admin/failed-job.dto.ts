import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform, Type } from 'class-transformer';
import { IsBoolean, IsInt, IsOptional, Max, Min } from 'class-validator';
import type { FailedToolJob, FailedToolJobPage } from '@portico/queue';

export const MAX_FAILED_JOBS_PAGE = 200;

export class FailedJobsQueryDto {
  @ApiPropertyOptional({ default: 0, minimum: 0 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  offset: number = 0;

  @ApiPropertyOptional({ default: 50, minimum: 1, maximum: MAX_FAILED_JOBS_PAGE })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(MAX_FAILED_JOBS_PAGE)
  limit: number = 50;
}

export class RetryFailedJobQueryDto {
  @ApiPropertyOptional({
    default: false,
    description: 'Required to re-run a tool that is not known to be idempotent',
  })
  @IsOptional()
  @Transform(({ value }: { value: unknown }) =>
    value === 'true' ? true : value === 'false' ? false : value,
  )
  @IsBoolean({ message: 'force must be true or false' })
  force: boolean = false;
}

/** A failed queued tool call: who, what and why, never its arguments (they may hold secrets). */
export class FailedJobDto {
  @ApiProperty({ description: 'Job id (starts with the tenant id)' })
  id!: string;

  @ApiProperty()
  backend!: string;

  @ApiProperty({ description: 'Tool name in the catalog' })
  tool!: string;

  @ApiProperty({ description: 'The principal that made the call' })
  principalId!: string;

  @ApiProperty({ description: 'Whether a retry is safe without force' })
  idempotent!: boolean;

  @ApiPropertyOptional({ description: 'JSON-RPC error code of the failure, when it was one' })
  errorCode?: number;

  @ApiProperty()
  failedReason!: string;

  @ApiProperty()
  attemptsMade!: number;

  @ApiProperty()
  createdAt!: Date;

  @ApiPropertyOptional()
  processedAt?: Date;

  @ApiPropertyOptional()
  failedAt?: Date;

  static from(job: FailedToolJob): FailedJobDto {
    return { ...job };
  }
}

export class FailedJobPageDto {
  @ApiProperty({ type: [FailedJobDto] })
  items!: FailedJobDto[];

  @ApiProperty()
  total!: number;

  @ApiProperty()
  offset!: number;

  @ApiProperty()
  limit!: number;

  static from(page: FailedToolJobPage, offset: number, limit: number): FailedJobPageDto {
    return {
      items: page.items.map((job) => FailedJobDto.from(job)),
      total: page.total,
      offset,
      limit,
    };
  }
}

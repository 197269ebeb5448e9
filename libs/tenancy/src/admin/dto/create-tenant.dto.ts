import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  IsIn,
  IsInt,
  IsNotIn,
  IsOptional,
  IsString,
  IsUrl,
  Length,
  Matches,
  Max,
  Min,
  ValidateNested,
} from 'class-validator';
import type { TenantStatus } from '@portico/persistence';
import { MAX_QUEUE_PRIORITY, MIN_QUEUE_PRIORITY } from '@portico/queue';
import { RESERVED_SLUGS, SLUG_PATTERN } from '../../tenant/tenant.service';

export const TENANT_STATUSES: readonly TenantStatus[] = ['active', 'suspended'];

export class TenantLimitsDto {
  @ApiPropertyOptional({ minimum: 1 })
  @IsOptional()
  @IsInt()
  @Min(1)
  maxSessions?: number;

  @ApiPropertyOptional({ minimum: 1 })
  @IsOptional()
  @IsInt()
  @Min(1)
  maxConcurrentCalls?: number;

  @ApiPropertyOptional({ minimum: 1 })
  @IsOptional()
  @IsInt()
  @Min(1)
  requestsPerMinute?: number;

  @ApiPropertyOptional({
    minimum: 1,
    description: 'Queued tool calls running at once on all workers together',
  })
  @IsOptional()
  @IsInt()
  @Min(1)
  maxConcurrentJobs?: number;

  @ApiPropertyOptional({
    minimum: MIN_QUEUE_PRIORITY,
    maximum: MAX_QUEUE_PRIORITY,
    description: 'Queue priority of queued tool calls, lower first; a tool setting wins',
  })
  @IsOptional()
  @IsInt()
  @Min(MIN_QUEUE_PRIORITY)
  @Max(MAX_QUEUE_PRIORITY)
  queuePriority?: number;
}

export class TenantJwtDto {
  @ApiProperty()
  @IsString()
  issuer!: string;

  @ApiProperty({ oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] })
  @IsString({ each: true })
  audience!: string | string[];

  @ApiPropertyOptional()
  @IsOptional()
  @IsUrl({ require_tld: false })
  jwksUri?: string;

  @ApiPropertyOptional({ description: 'PEM public key, instead of jwksUri' })
  @IsOptional()
  @IsString()
  publicKey?: string;

  @ApiProperty({ type: [String], example: ['RS256'] })
  @IsString({ each: true })
  algorithms!: string[];

  @ApiPropertyOptional()
  @IsOptional()
  @IsString()
  rolesClaim?: string;

  @ApiPropertyOptional()
  @IsOptional()
  @IsString()
  scopesClaim?: string;
}

export class TenantAuthDto {
  @ApiPropertyOptional({ type: TenantJwtDto })
  @IsOptional()
  @ValidateNested()
  @Type(() => TenantJwtDto)
  jwt?: TenantJwtDto;

  @ApiPropertyOptional({ type: [String] })
  @IsOptional()
  @IsUrl({ require_tld: false }, { each: true })
  authorizationServers?: string[];
}

export class CreateTenantDto {
  @ApiProperty({ pattern: SLUG_PATTERN.source, example: 'acme' })
  @IsString()
  @Matches(SLUG_PATTERN, {
    message: 'slug must be 1-48 lowercase letters, digits or inner hyphens',
  })
  @IsNotIn([...RESERVED_SLUGS], { message: 'slug is reserved' })
  slug!: string;

  @ApiProperty({ example: 'Acme Corp' })
  @IsString()
  @Length(1, 200)
  name!: string;

  @ApiPropertyOptional({ enum: TENANT_STATUSES, default: 'active' })
  @IsOptional()
  @IsIn(TENANT_STATUSES)
  status?: TenantStatus;

  @ApiPropertyOptional({ type: TenantLimitsDto })
  @IsOptional()
  @ValidateNested()
  @Type(() => TenantLimitsDto)
  limits?: TenantLimitsDto;

  @ApiPropertyOptional({ type: TenantAuthDto })
  @IsOptional()
  @ValidateNested()
  @Type(() => TenantAuthDto)
  auth?: TenantAuthDto;
}

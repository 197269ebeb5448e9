import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { ArrayNotEmpty, IsDate, IsIn, IsOptional, IsString, Length } from 'class-validator';
import type { Role } from '@portico/auth';

/** Roles a tenant may grant: platform-admin is never a tenant's to give. */
export const TENANT_ROLES: readonly Role[] = ['tenant-admin', 'tenant-operator', 'tool-user'];

export class CreateApiKeyDto {
  @ApiProperty({ example: 'ci-deploy' })
  @IsString()
  @Length(1, 100)
  name!: string;

  @ApiPropertyOptional({ enum: TENANT_ROLES, isArray: true, default: ['tool-user'] })
  @IsOptional()
  @ArrayNotEmpty()
  @IsIn(TENANT_ROLES, { each: true })
  roles?: Role[];

  @ApiPropertyOptional({ type: [String], default: [] })
  @IsOptional()
  @IsString({ each: true })
  scopes?: string[];

  @ApiPropertyOptional({ type: String, format: 'date-time' })
  @IsOptional()
  @Type(() => Date)
  @IsDate()
  expiresAt?: Date;
}

import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsDate, IsOptional, IsString, Length } from 'class-validator';

/** A platform key always carries the platform-admin role and no tenant. */
export class CreatePlatformApiKeyDto {
  @ApiProperty({ example: 'platform-automation' })
  @IsString()
  @Length(1, 100)
  name!: string;

  @ApiPropertyOptional({ type: String, format: 'date-time' })
  @IsOptional()
  @Type(() => Date)
  @IsDate()
  expiresAt?: Date;
}

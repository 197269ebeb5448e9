import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsBoolean, IsObject, IsOptional, IsString, Length } from 'class-validator';

export class CreateToolPolicyDto {
  @ApiProperty({ description: 'The tool name as the backend publishes it', example: 'echo' })
  @IsString()
  @Length(1, 128)
  tool!: string;

  @ApiPropertyOptional({ type: [String], default: [] })
  @IsOptional()
  @IsString({ each: true })
  requiredScopes?: string[];

  @ApiPropertyOptional({ default: false })
  @IsOptional()
  @IsBoolean()
  disabled?: boolean;

  @ApiPropertyOptional({ nullable: true })
  @IsOptional()
  @IsString()
  description?: string | null;

  @ApiPropertyOptional({ nullable: true, description: 'The name clients see instead' })
  @IsOptional()
  @IsString()
  @Length(1, 128)
  rename?: string | null;

  @ApiPropertyOptional({ type: 'object', additionalProperties: true, nullable: true })
  @IsOptional()
  @IsObject()
  annotations?: Record<string, unknown> | null;
}

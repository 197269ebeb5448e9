import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsString, Length } from 'class-validator';
import {
  MAX_EXPOSURE_ENTRIES,
  RESERVED_SERVER_NAMES,
  SERVER_NAME_PATTERN,
} from '../../virtual-server/virtual-server-exposure';
import { IsExposureList, IsServerName } from './virtual-server.validators';

const ENTRIES =
  'Exact entries, or globs where * stands for any run of characters; an empty list exposes ' +
  'nothing of this kind, ["*"] everything.';

export class CreateVirtualServerDto {
  @ApiProperty({
    pattern: SERVER_NAME_PATTERN.source,
    example: 'crm',
    description:
      'The endpoint is /mcp/{tenant}/{name}. Tenant slug rules; reserved: ' +
      RESERVED_SERVER_NAMES.join(', '),
  })
  @IsServerName()
  name!: string;

  @ApiPropertyOptional({ nullable: true, maxLength: 200 })
  @IsOptional()
  @IsString()
  @Length(1, 200)
  title?: string | null;

  @ApiPropertyOptional({ nullable: true, maxLength: 4096 })
  @IsOptional()
  @IsString()
  @Length(1, 4096)
  description?: string | null;

  @ApiPropertyOptional({
    type: [String],
    default: [],
    maxItems: MAX_EXPOSURE_ENTRIES,
    example: ['crm_*', 'search'],
    description: `Tool names as clients see them (after tool policies rename them). ${ENTRIES}`,
  })
  @IsOptional()
  @IsExposureList('tools')
  tools?: string[];

  @ApiPropertyOptional({
    type: [String],
    default: [],
    maxItems: MAX_EXPOSURE_ENTRIES,
    description: `Prompt names. ${ENTRIES}`,
  })
  @IsOptional()
  @IsExposureList('prompts')
  prompts?: string[];

  @ApiPropertyOptional({
    type: [String],
    default: [],
    maxItems: MAX_EXPOSURE_ENTRIES,
    example: ['crm://accounts/*'],
    description: `Resource URIs. ${ENTRIES}`,
  })
  @IsOptional()
  @IsExposureList('resources')
  resources?: string[];

  @ApiPropertyOptional({
    type: [String],
    default: [],
    maxItems: MAX_EXPOSURE_ENTRIES,
    example: ['crm://accounts/{id}'],
    description:
      'Resource templates by their URI template; reading an instance of a template needs the ' +
      `template here. ${ENTRIES}`,
  })
  @IsOptional()
  @IsExposureList('resourceTemplates')
  resourceTemplates?: string[];
}

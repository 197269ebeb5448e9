import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsNotEmpty, IsObject, IsOptional, IsString, Matches } from 'class-validator';
import { BACKEND_KINDS, BackendKind } from '@portico/persistence';
import { IsBackendSettings } from './backend-settings.validator';
import { IsStringMap } from './string-map.validator';

export const BACKEND_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export class CreateBackendDto {
  @ApiProperty({ pattern: BACKEND_NAME_PATTERN.source, example: 'github' })
  @IsString()
  @Matches(BACKEND_NAME_PATTERN, {
    message: 'name must be 1-64 letters, digits, "_" or "-", starting with a letter or digit',
  })
  name!: string;

  @ApiProperty({ enum: BACKEND_KINDS })
  @IsIn(BACKEND_KINDS)
  kind!: BackendKind;

  @ApiProperty({ description: 'URL, command line or fixture name, by kind' })
  @IsString()
  @IsNotEmpty()
  target!: string;

  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: true,
    description:
      'Settings of the backend kind, plus execution: executor (inline | queued), timeoutMs, ' +
      'retry { attempts, backoffMs }, and tools { "<upstream tool name>": { executor, ' +
      'timeoutMs, retry } } overriding them per tool',
    example: { executor: 'queued', tools: { search: { retry: { attempts: 3, backoffMs: 200 } } } },
  })
  @IsOptional()
  @IsObject()
  @IsBackendSettings()
  settings?: Record<string, unknown>;

  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: { type: 'string' },
    description: 'Write-only: sealed at rest and never returned',
    writeOnly: true,
  })
  @IsOptional()
  @IsStringMap()
  credentials?: Record<string, string>;
}

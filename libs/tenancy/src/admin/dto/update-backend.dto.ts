import { ApiPropertyOptional, OmitType, PartialType } from '@nestjs/swagger';
import { IsOptional } from 'class-validator';
import { CreateBackendDto } from './create-backend.dto';
import { IsStringMap } from './string-map.validator';

/**
 * The name is not updatable: sealed credentials are bound to it. `credentials: null` removes
 * them; leaving the property out keeps them.
 */
export class UpdateBackendDto extends PartialType(
  OmitType(CreateBackendDto, ['name', 'credentials'] as const),
) {
  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: { type: 'string' },
    nullable: true,
    writeOnly: true,
  })
  @IsOptional()
  @IsStringMap()
  credentials?: Record<string, string> | null;
}

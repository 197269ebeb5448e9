import { OmitType, PartialType } from '@nestjs/swagger';
import { CreateToolPolicyDto } from './create-tool-policy.dto';

/** A policy is keyed by its tool: to move it, delete it and create another. */
export class UpdateToolPolicyDto extends PartialType(
  OmitType(CreateToolPolicyDto, ['tool'] as const),
) {}

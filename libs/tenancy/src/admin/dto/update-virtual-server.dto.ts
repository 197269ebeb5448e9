import { OmitType, PartialType } from '@nestjs/swagger';
import { CreateVirtualServerDto } from './create-virtual-server.dto';

/**
 * The name is the endpoint's path, so it does not change: create another server to move it.
 * Lists given replace the stored ones; `title: null` or `description: null` clears them.
 */
export class UpdateVirtualServerDto extends PartialType(
  OmitType(CreateVirtualServerDto, ['name'] as const),
) {}

import { ApiProperty } from '@nestjs/swagger';
import { IsIn, IsString, Length } from 'class-validator';
import type { Role } from '@portico/auth';
import { TENANT_ROLES } from './create-api-key.dto';

export class CreateRoleBindingDto {
  @ApiProperty({ description: 'The token subject (JWT `sub`)', example: 'user-42' })
  @IsString()
  @Length(1, 255)
  subject!: string;

  @ApiProperty({ enum: TENANT_ROLES })
  @IsIn(TENANT_ROLES)
  role!: Role;
}

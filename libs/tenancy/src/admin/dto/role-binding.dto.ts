import { ApiProperty } from '@nestjs/swagger';
import type { RoleBindingEntity } from '@portico/persistence';

export class RoleBindingDto {
  @ApiProperty({ format: 'uuid' })
  id!: string;

  @ApiProperty()
  subject!: string;

  @ApiProperty()
  role!: string;

  @ApiProperty()
  createdAt!: Date;

  static from(row: RoleBindingEntity): RoleBindingDto {
    return { id: row.id, subject: row.subject, role: row.role, createdAt: row.createdAt };
  }
}

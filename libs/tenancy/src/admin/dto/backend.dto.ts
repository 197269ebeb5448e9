import { ApiProperty } from '@nestjs/swagger';
import { BACKEND_KINDS, BackendEntity, BackendKind } from '@portico/persistence';

/** A backend as the API shows it: credentials are reduced to whether there are any. */
export class BackendDto {
  @ApiProperty({ format: 'uuid' })
  id!: string;

  @ApiProperty()
  name!: string;

  @ApiProperty({ enum: BACKEND_KINDS })
  kind!: BackendKind;

  @ApiProperty()
  target!: string;

  @ApiProperty({ type: 'object', additionalProperties: true })
  settings!: Record<string, unknown>;

  @ApiProperty()
  hasCredentials!: boolean;

  @ApiProperty()
  createdAt!: Date;

  @ApiProperty()
  updatedAt!: Date;

  static from(row: BackendEntity): BackendDto {
    return {
      id: row.id,
      name: row.name,
      kind: row.kind,
      target: row.target,
      settings: row.settings,
      hasCredentials: row.credentialsSealed !== null,
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
    };
  }
}

import { ApiProperty } from '@nestjs/swagger';
import type { ApiKeyEntity } from '@portico/persistence';

/** An API key as listed: never its hash or salt. */
export class ApiKeyDto {
  @ApiProperty({ format: 'uuid' })
  id!: string;

  @ApiProperty()
  name!: string;

  @ApiProperty({ description: 'The first characters of the secret, to recognise it' })
  prefix!: string;

  @ApiProperty({ type: [String] })
  roles!: string[];

  @ApiProperty({ type: [String] })
  scopes!: string[];

  @ApiProperty({ type: Date, nullable: true })
  expiresAt!: Date | null;

  @ApiProperty({ type: Date, nullable: true })
  revokedAt!: Date | null;

  @ApiProperty({ type: Date, nullable: true })
  lastUsedAt!: Date | null;

  @ApiProperty()
  createdAt!: Date;

  static from(row: ApiKeyEntity): ApiKeyDto {
    return {
      id: row.id,
      name: row.name,
      prefix: row.prefix,
      roles: row.roles,
      scopes: row.scopes,
      expiresAt: row.expiresAt,
      revokedAt: row.revokedAt,
      lastUsedAt: row.lastUsedAt,
      createdAt: row.createdAt,
    };
  }
}

export class CreatedApiKeyDto extends ApiKeyDto {
  @ApiProperty({ description: 'The key itself: shown in this response only, never again' })
  secret!: string;
}

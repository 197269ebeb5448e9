import { ApiProperty } from '@nestjs/swagger';
import type { ToolPolicyEntity } from '@portico/persistence';

export class ToolPolicyDto {
  @ApiProperty({ format: 'uuid' })
  id!: string;

  @ApiProperty()
  tool!: string;

  @ApiProperty({ type: [String] })
  requiredScopes!: string[];

  @ApiProperty()
  disabled!: boolean;

  @ApiProperty({ type: String, nullable: true })
  description!: string | null;

  @ApiProperty({ type: String, nullable: true })
  rename!: string | null;

  @ApiProperty({ type: 'object', additionalProperties: true, nullable: true })
  annotations!: Record<string, unknown> | null;

  @ApiProperty()
  createdAt!: Date;

  @ApiProperty()
  updatedAt!: Date;

  static from(row: ToolPolicyEntity): ToolPolicyDto {
    return {
      id: row.id,
      tool: row.tool,
      requiredScopes: row.requiredScopes,
      disabled: row.disabled,
      description: row.description,
      rename: row.rename,
      annotations: row.annotations,
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
    };
  }
}

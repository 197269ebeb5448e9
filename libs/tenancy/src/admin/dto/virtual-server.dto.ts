import { ApiProperty } from '@nestjs/swagger';
import type { VirtualServerEntity } from '@portico/persistence';

export class VirtualServerDto {
  @ApiProperty({ format: 'uuid' })
  id!: string;

  @ApiProperty({ description: 'Served at /mcp/{tenant}/{name}' })
  name!: string;

  @ApiProperty({ type: String, nullable: true })
  title!: string | null;

  @ApiProperty({ type: String, nullable: true })
  description!: string | null;

  @ApiProperty({ type: [String] })
  tools!: string[];

  @ApiProperty({ type: [String] })
  prompts!: string[];

  @ApiProperty({ type: [String] })
  resources!: string[];

  @ApiProperty({ type: [String] })
  resourceTemplates!: string[];

  @ApiProperty()
  createdAt!: Date;

  @ApiProperty()
  updatedAt!: Date;

  static from(row: VirtualServerEntity): VirtualServerDto {
    return {
      id: row.id,
      name: row.name,
      title: row.title,
      description: row.description,
      tools: row.tools,
      prompts: row.prompts,
      resources: row.resources,
      resourceTemplates: row.resourceTemplates,
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
    };
  }
}

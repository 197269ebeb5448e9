import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, Max, Min } from 'class-validator';
import type { BackendStatus, CatalogItemKind, TenantCatalogReport } from '@portico/registry';

export const MAX_CATALOG_PAGE = 1000;

/** One page of every list at once: catalogs of big upstreams reach thousands of tools. */
export class TenantCatalogQueryDto {
  @ApiPropertyOptional({
    default: 0,
    minimum: 0,
    description: 'Skips this many items of each list (tools, prompts, ..., collisions)',
  })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  offset: number = 0;

  @ApiPropertyOptional({
    default: 200,
    minimum: 1,
    maximum: MAX_CATALOG_PAGE,
    description: 'At most this many items of each list',
  })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(MAX_CATALOG_PAGE)
  limit: number = 200;
}

const BACKEND_STATUSES: readonly BackendStatus[] = ['connected', 'failed', 'unsupported'];
const ITEM_KINDS: readonly CatalogItemKind[] = ['tool', 'prompt', 'resource', 'resourceTemplate'];

export class CatalogBackendDto {
  @ApiProperty()
  name!: string;

  @ApiProperty({ example: 'mcp-http' })
  kind!: string;

  @ApiProperty({
    enum: BACKEND_STATUSES,
    description: 'How the backend fared when this node built the catalog',
  })
  status!: BackendStatus;

  @ApiPropertyOptional({ description: 'Why it failed (message only, no URL credentials)' })
  error?: string;

  @ApiProperty({ description: 'Tools the backend offers, before policies and collisions' })
  tools!: number;

  @ApiProperty()
  prompts!: number;

  @ApiProperty()
  resources!: number;

  @ApiProperty()
  resourceTemplates!: number;
}

export class CatalogItemDto {
  @ApiProperty({ description: 'The name clients see' })
  name!: string;

  @ApiProperty({ description: 'The backend that serves it' })
  backend!: string;

  @ApiPropertyOptional()
  title?: string;

  @ApiPropertyOptional()
  description?: string;
}

export class CatalogToolDto extends CatalogItemDto {
  @ApiPropertyOptional({ description: 'The name before a rename policy' })
  renamedFrom?: string;

  @ApiProperty({ type: [String], description: 'Scopes a caller needs (tool policy)' })
  requiredScopes!: string[];
}

export class CatalogResourceDto extends CatalogItemDto {
  @ApiProperty()
  uri!: string;

  @ApiPropertyOptional()
  mimeType?: string;
}

export class CatalogResourceTemplateDto extends CatalogItemDto {
  @ApiProperty()
  uriTemplate!: string;

  @ApiPropertyOptional()
  mimeType?: string;
}

export class CatalogCollisionDto {
  @ApiProperty({ enum: ITEM_KINDS })
  kind!: CatalogItemKind;

  @ApiProperty({ description: 'Tool or prompt name, resource URI or URI template' })
  name!: string;

  @ApiProperty({ description: 'The backend whose item is served' })
  winner!: string;

  @ApiProperty({ type: [String], description: 'The backends whose items are hidden' })
  shadowed!: string[];

  @ApiPropertyOptional({
    type: [String],
    description: 'Tools: the original names a rename policy moved onto this name',
  })
  renamedFrom?: string[];
}

export class CatalogTotalsDto {
  @ApiProperty()
  tools!: number;

  @ApiProperty()
  prompts!: number;

  @ApiProperty()
  resources!: number;

  @ApiProperty()
  resourceTemplates!: number;

  @ApiProperty()
  collisions!: number;
}

/** A tenant's catalog as this node built it, every list sorted by name. */
export class TenantCatalogDto {
  @ApiProperty({
    type: [CatalogBackendDto],
    description: 'In catalog order (by name): on a collision the first backend wins',
  })
  backends!: CatalogBackendDto[];

  @ApiProperty({ type: [CatalogToolDto], description: 'Policies applied; scopes not filtered' })
  tools!: CatalogToolDto[];

  @ApiProperty({ type: [CatalogItemDto] })
  prompts!: CatalogItemDto[];

  @ApiProperty({ type: [CatalogResourceDto] })
  resources!: CatalogResourceDto[];

  @ApiProperty({ type: [CatalogResourceTemplateDto] })
  resourceTemplates!: CatalogResourceTemplateDto[];

  @ApiProperty({ type: [CatalogCollisionDto], description: 'By kind, then name' })
  collisions!: CatalogCollisionDto[];

  @ApiProperty({ type: CatalogTotalsDto, description: 'Length of each whole list' })
  totals!: CatalogTotalsDto;

  @ApiProperty()
  offset!: number;

  @ApiProperty()
  limit!: number;

  static from(report: TenantCatalogReport, offset: number, limit: number): TenantCatalogDto {
    const page = <T>(items: readonly T[]): T[] => items.slice(offset, offset + limit);
    return {
      backends: report.backends.map((backend) => ({ ...backend })),
      tools: page(report.tools).map((tool) => ({
        ...tool,
        requiredScopes: [...tool.requiredScopes],
      })),
      prompts: page(report.prompts),
      resources: page(report.resources),
      resourceTemplates: page(report.resourceTemplates),
      collisions: page(report.collisions).map((collision) => ({
        ...collision,
        shadowed: [...collision.shadowed],
        renamedFrom: collision.renamedFrom && [...collision.renamedFrom],
      })),
      totals: {
        tools: report.tools.length,
        prompts: report.prompts.length,
        resources: report.resources.length,
        resourceTemplates: report.resourceTemplates.length,
        collisions: report.collisions.length,
      },
      offset,
      limit,
    };
  }
}

import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { serverOfPrincipal } from '@portico/registry';
import type { LiveSession } from '../mcp/session-registry.service';

export class SessionClientDto {
  @ApiProperty()
  name!: string;

  @ApiProperty()
  version!: string;
}

/** A live 2025-era MCP session as the admin API shows it: no stream or protocol internals. */
export class SessionDto {
  @ApiProperty()
  id!: string;

  @ApiProperty({ example: '2025-06-18' })
  protocolVersion!: string;

  @ApiPropertyOptional({ type: SessionClientDto })
  client?: SessionClientDto;

  @ApiPropertyOptional({ description: 'The principal the session is bound to' })
  principal?: string;

  @ApiPropertyOptional({
    description: 'The virtual server the session was opened on (absent: the tenant endpoint)',
  })
  server?: string;

  @ApiProperty()
  initialized!: boolean;

  @ApiProperty()
  openStreams!: number;

  @ApiProperty()
  createdAt!: Date;

  @ApiProperty()
  lastActivity!: Date;

  static from(live: LiveSession): SessionDto {
    const { session } = live;
    return {
      id: session.id,
      protocolVersion: session.protocolVersion,
      client: session.clientInfo
        ? { name: session.clientInfo.name, version: session.clientInfo.version }
        : undefined,
      principal: session.principal?.id,
      server: serverOfPrincipal(session.principal),
      initialized: session.initialized,
      openStreams: live.streams.size + (live.standalone ? 1 : 0),
      createdAt: new Date(session.createdAt),
      lastActivity: new Date(session.lastActivity),
    };
  }
}

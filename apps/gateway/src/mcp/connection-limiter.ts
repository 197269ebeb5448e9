import { Injectable } from '@nestjs/common';
import { ConfigService } from '@portico/config';

export type Release = () => void;

/**
 * Caps on what one client can hold open: requests and streams per 2025-era session, and
 * streams plus WebSocket connections per client address. A slow or hostile client hits its
 * own limit instead of exhausting the node.
 */
@Injectable()
export class ConnectionLimiter {
  private readonly perSession = new Map<string, number>();
  private readonly perClient = new Map<string, number>();
  private readonly maxPerSession: number;
  private readonly maxPerClient: number;

  constructor(config: ConfigService) {
    this.maxPerSession = config.values.mcp.maxStreamsPerSession;
    this.maxPerClient = config.values.mcp.maxStreamsPerClient;
  }

  /** Takes one slot for `address` (and `sessionId`); undefined when a limit is reached. */
  acquire(address: string, sessionId?: string): Release | undefined {
    if ((this.perClient.get(address) ?? 0) >= this.maxPerClient) {
      return undefined;
    }
    if (sessionId !== undefined && (this.perSession.get(sessionId) ?? 0) >= this.maxPerSession) {
      return undefined;
    }
    increment(this.perClient, address);
    if (sessionId !== undefined) {
      increment(this.perSession, sessionId);
    }
    let released = false;
    return () => {
      if (released) {
        return;
      }
      released = true;
      decrement(this.perClient, address);
      if (sessionId !== undefined) {
        decrement(this.perSession, sessionId);
      }
    };
  }

  openFor(address: string): number {
    return this.perClient.get(address) ?? 0;
  }

  openForSession(sessionId: string): number {
    return this.perSession.get(sessionId) ?? 0;
  }
}

function increment(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

function decrement(map: Map<string, number>, key: string): void {
  const next = (map.get(key) ?? 1) - 1;
  if (next <= 0) {
    map.delete(key);
  } else {
    map.set(key, next);
  }
}

import type { SessionInfo } from '@portico/mcp-protocol';
import type { SessionStore } from './session.ports';

export class MemorySessionStore implements SessionStore {
  private readonly sessions = new Map<string, { info: SessionInfo; expiresAt: number }>();

  get(id: string): Promise<SessionInfo | undefined> {
    const entry = this.sessions.get(id);
    if (!entry) {
      return Promise.resolve(undefined);
    }
    if (entry.expiresAt <= Date.now()) {
      this.sessions.delete(id);
      return Promise.resolve(undefined);
    }
    return Promise.resolve(entry.info);
  }

  save(info: SessionInfo, ttlMs: number): Promise<void> {
    this.sessions.set(info.id, { info, expiresAt: Date.now() + ttlMs });
    return Promise.resolve();
  }

  touch(id: string, ttlMs: number): Promise<void> {
    const entry = this.sessions.get(id);
    if (entry) {
      entry.expiresAt = Date.now() + ttlMs;
    }
    return Promise.resolve();
  }

  delete(id: string): Promise<void> {
    this.sessions.delete(id);
    return Promise.resolve();
  }

  count(): Promise<number> {
    return Promise.resolve(this.sessions.size);
  }
}

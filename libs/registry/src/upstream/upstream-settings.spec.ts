import type { BackendEntity } from '@portico/persistence';
import { upstreamSettings } from './upstream-settings';

function backend(kind: string, settings: Record<string, unknown>): BackendEntity {
  return {
    id: 'b1',
    tenantId: 't1',
    name: 'up',
    kind,
    target: 'http://127.0.0.1:1/mcp',
    settings,
    credentialsSealed: null,
    createdAt: new Date(0),
    updatedAt: new Date(0),
  } as BackendEntity;
}

describe(upstreamSettings.name, () => {
  describe('sessions', () => {
    it('gives 2025-era client sessions upstream sessions of their own by default, 64 at most', () => {
      const sut = upstreamSettings(backend('mcp-http', {}));
      expect(sut.sessions).toBe('per-client');
      expect(sut.maxClientSessions).toBe(64);
      expect(upstreamSettings(backend('mcp-stdio', {})).sessions).toBe('per-client');
    });

    it('shares the pooled session by default for an eagerly started stdio backend', () => {
      expect(upstreamSettings(backend('mcp-stdio', { start: 'eager' })).sessions).toBe('pooled');
      expect(
        upstreamSettings(backend('mcp-stdio', { start: 'eager', sessions: 'per-client' })).sessions,
      ).toBe('per-client');
    });

    it('takes the mode and the cap given, and ignores values it does not know', () => {
      const sut = upstreamSettings(backend('mcp-ws', { sessions: 'pooled', maxClientSessions: 3 }));
      expect(sut.sessions).toBe('pooled');
      expect(sut.maxClientSessions).toBe(3);
      const odd = upstreamSettings(
        backend('mcp-ws', { sessions: 'per-request', maxClientSessions: -1 }),
      );
      expect(odd.sessions).toBe('per-client');
      expect(odd.maxClientSessions).toBe(64);
      expect(upstreamSettings(backend('mcp-ws', { maxClientSessions: 0 })).maxClientSessions).toBe(
        0,
      );
    });
  });
});

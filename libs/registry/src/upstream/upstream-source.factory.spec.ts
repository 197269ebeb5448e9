import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BackendEntity } from '@portico/persistence';
import { backendSettingsProblems } from '@portico/tenancy';
import { McpUpstreamSource } from './mcp-upstream.source';
import { ReplicatedUpstreamSource } from './replicated-upstream.source';
import type { BackendContext } from './backend-source';
import { UpstreamOptions } from './upstream-options';
import { UpstreamSourceFactory } from './upstream-source.factory';

function context(backend: Partial<BackendEntity>): BackendContext {
  return {
    tenantId: 't1',
    tenantSlug: 'acme',
    backend: {
      id: 'b1',
      tenantId: 't1',
      name: 'local',
      kind: 'mcp-stdio',
      target: 'true',
      settings: {},
      credentialsSealed: null,
      createdAt: new Date(0),
      updatedAt: new Date(0),
      ...backend,
    },
    credentials: () => ({}),
  };
}

describe(UpstreamSourceFactory.name, () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'portico-factory-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses mcp-stdio backends unless the gateway allows them, starting nothing', async () => {
    const marker = join(dir, 'started');
    // Would create the marker file if it ran.
    const backend = {
      target: `"${process.execPath}" -e "require('fs').writeFileSync('${marker}', '')"`,
    };
    for (const sut of [
      new UpstreamSourceFactory(),
      new UpstreamSourceFactory(undefined, undefined, new UpstreamOptions()),
    ]) {
      await expect(sut.create(context(backend))).rejects.toThrow(
        'Backend local: mcp-stdio backends are disabled on this gateway (UPSTREAM_STDIO_ENABLED)',
      );
    }
    expect(existsSync(marker)).toBe(false);
  });

  it('names the backend and the field when stdio settings are unusable', async () => {
    const sut = new UpstreamSourceFactory(
      undefined,
      undefined,
      new UpstreamOptions({ stdioEnabled: true }),
    );
    await expect(sut.create(context({ settings: { cwd: 'relative' } }))).rejects.toThrow(
      'Backend local: settings.cwd must be an absolute path',
    );
  });

  it.each([
    ['mcp-sse', 'not a url', 'Backend local: target is not a URL'],
    ['mcp-ws', 'http://tools.example.com/mcp', 'unsupported URL scheme http:'],
    ['mcp-ws', 'ws://127.0.0.1:1/mcp', 'resolves to a non-public address'],
    ['mcp-sse', 'ws://tools.example.com/sse', 'unsupported URL scheme ws:'],
  ] as const)('refuses %s target %s before connecting', async (kind, target, message) => {
    const sut = new UpstreamSourceFactory();
    await expect(sut.create(context({ kind, target }))).rejects.toThrow(message);
  });

  describe('replicas', () => {
    it('refuses the backend when a replica resolves to a non-public address', async () => {
      const sut = new UpstreamSourceFactory();
      const backend = {
        kind: 'mcp-http' as const,
        target: 'http://93.184.215.14:1/mcp',
        settings: { replicas: ['http://10.0.0.8/mcp'] },
      };
      await expect(sut.create(context(backend))).rejects.toThrow(
        'Backend local: settings.replicas[0]: 10.0.0.8 resolves to a non-public address',
      );
    });

    it('fails registration, naming each replica, when none can be reached', async () => {
      const sut = new UpstreamSourceFactory();
      const backend = {
        kind: 'mcp-http' as const,
        target: 'http://127.0.0.1:1/mcp',
        settings: { internal: true, timeoutMs: 2000, replicas: ['http://127.0.0.1:2/mcp'] },
      };
      const err = (await sut.create(context(backend)).catch((e: unknown) => e)) as Error;
      expect(err.message).toMatch(/^Backend local: no replica could be reached \(replica 0: /);
      expect(err.message).toContain('; replica 1: ');
    });

    it('keeps a backend without replicas a plain upstream source', async () => {
      const connect = jest
        .spyOn(McpUpstreamSource, 'connect')
        .mockRejectedValue(new Error('not connecting'));
      const replicated = jest.spyOn(ReplicatedUpstreamSource, 'connect');
      try {
        const sut = new UpstreamSourceFactory();
        const backend = {
          kind: 'mcp-http' as const,
          target: 'http://127.0.0.1:1/mcp',
          settings: {},
        };
        await expect(sut.create(context(backend))).rejects.toThrow('not connecting');
        expect(connect).toHaveBeenCalledTimes(1);
        expect(replicated).not.toHaveBeenCalled();
      } finally {
        connect.mockRestore();
        replicated.mockRestore();
      }
    });

    it.each(['mcp-http', 'mcp-sse', 'mcp-ws'])('validates replication settings of %s', (kind) => {
      expect(
        backendSettingsProblems(kind, {
          replicas: ['http://a.example.com/mcp', 'not a url'],
          loadBalancing: 'random',
          healthCheck: { intervalMs: 5, unhealthyAfter: 0, path: '/health' },
        }),
      ).toEqual(
        expect.arrayContaining([
          { path: 'replicas[1]', message: 'must be an absolute URI' },
          { path: 'loadBalancing', message: 'must be one of: round-robin, least-in-flight' },
          { path: 'healthCheck.intervalMs', message: 'must be >= 100' },
          { path: 'healthCheck.unhealthyAfter', message: 'must be >= 1' },
          { path: 'healthCheck.path', message: 'is not a known property' },
        ]),
      );
      expect(
        backendSettingsProblems(kind, {
          replicas: ['http://a.example.com/mcp'],
          loadBalancing: 'least-in-flight',
          healthCheck: { intervalMs: 5000, timeoutMs: 500, unhealthyAfter: 3, healthyAfter: 2 },
        }),
      ).toEqual([]);
    });
  });
});

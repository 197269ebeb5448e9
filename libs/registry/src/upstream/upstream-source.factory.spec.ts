import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BackendEntity } from '@portico/persistence';
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
});

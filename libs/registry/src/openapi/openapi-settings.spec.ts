import type { BackendEntity } from '@portico/persistence';
import { openApiSettings, OPENAPI_DEFAULTS } from './openapi-settings';

function backend(settings: Record<string, unknown>): BackendEntity {
  return {
    id: 'b1',
    tenantId: 't1',
    name: 'pets',
    kind: 'openapi',
    target: 'https://api.example.com/openapi.json',
    settings,
    credentialsSealed: null,
    createdAt: new Date(0),
    updatedAt: new Date(0),
  };
}

describe(openApiSettings.name, () => {
  it('applies the defaults', () => {
    const sut = openApiSettings(backend({}));
    expect(sut).toMatchObject({
      prefix: 'pets',
      separator: '__',
      internal: false,
      maxResponseBytes: OPENAPI_DEFAULTS.maxResponseBytes,
    });
    expect(sut.baseUrl).toBeUndefined();
    expect(sut.auth).toBeUndefined();
  });

  it('reads the openapi settings', () => {
    const sut = openApiSettings(
      backend({
        baseUrl: 'https://api.example.com/v2',
        operations: ['listPets'],
        auth: { type: 'header', name: 'X-Api-Key' },
        maxResponseBytes: 2048,
        timeoutMs: 100,
      }),
    );
    expect(sut.baseUrl?.href).toBe('https://api.example.com/v2');
    expect(sut.operations).toEqual(['listPets']);
    expect(sut.auth).toEqual({ type: 'header', name: 'X-Api-Key', credential: undefined });
    expect(sut.maxResponseBytes).toBe(2048);
    expect(sut.timeoutMs).toBe(100);
  });

  it('names every invalid setting', () => {
    expect(() =>
      openApiSettings(
        backend({ baseUrl: 'file:///etc/passwd', auth: { type: 'query' }, maxResponseBytes: 0 }),
      ),
    ).toThrow(
      'Backend pets: invalid settings: settings.baseUrl must be an http(s) URL; ' +
        'settings.auth.name is required; settings.maxResponseBytes must be >= 1',
    );
    expect(() => openApiSettings(backend({ auth: { type: 'basic' } }))).toThrow(
      'settings.auth.type must be one of: bearer, header, query',
    );
  });

  it('reads replicas, load balancing and the health check with their defaults', () => {
    const plain = openApiSettings(backend({}));
    expect(plain.replicaUrls).toEqual([]);
    expect(plain.loadBalancing).toBe('round-robin');
    expect(plain.healthCheck).toEqual({
      intervalMs: 10_000,
      timeoutMs: 2_000,
      unhealthyAfter: 2,
      healthyAfter: 1,
      path: undefined,
    });
    const sut = openApiSettings(
      backend({
        replicas: ['https://api-2.example.com/v1'],
        loadBalancing: 'least-in-flight',
        healthCheck: { intervalMs: 500, path: '/health' },
      }),
    );
    expect(sut.replicaUrls.map((url) => url.href)).toEqual(['https://api-2.example.com/v1']);
    expect(sut.loadBalancing).toBe('least-in-flight');
    expect(sut.healthCheck).toMatchObject({ intervalMs: 500, unhealthyAfter: 2, path: '/health' });
  });

  it('names invalid replication settings', () => {
    expect(() =>
      openApiSettings(
        backend({
          replicas: ['ftp://api-2.example.com/'],
          loadBalancing: 'fastest',
          healthCheck: { healthyAfter: 0, path: '' },
        }),
      ),
    ).toThrow(
      'Backend pets: invalid settings: settings.replicas[0] must be an http(s) URL; ' +
        'settings.loadBalancing must be one of: round-robin, least-in-flight; ' +
        'settings.healthCheck.healthyAfter must be >= 1; ' +
        'settings.healthCheck.path must NOT have fewer than 1 characters',
    );
  });
});

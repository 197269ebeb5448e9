import { randomBytes, randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import { ConfigService, loadConfig } from '@portico/config';
import { QuotaExceededError, QuotaService } from './quota.service';

const REDIS_URL = 'redis://127.0.0.1:6379';

const tenant = (limits: { requestsPerMinute?: number; maxConcurrentCalls?: number }) => ({
  id: randomUUID(),
  limits,
});

describe(QuotaService.name, () => {
  describe('in memory', () => {
    let sut: QuotaService;

    beforeEach(() => {
      sut = new QuotaService(
        new ConfigService(
          loadConfig({ DATABASE_PATH: ':memory:', API_KEY_REQUESTS_PER_MINUTE: '3' }),
        ),
      );
    });

    it('charges synchronously, refusing the request over the tenant rate', () => {
      const acme = tenant({ requestsPerMinute: 2 });

      expect(sut.charge({ tenant: acme })).toBeUndefined();
      expect(sut.charge({ tenant: acme })).toBeUndefined();
      const refused = sut.charge({ tenant: acme });

      expect(refused).toBeInstanceOf(QuotaExceededError);
      expect(refused).toMatchObject({ limit: 'tenant-rate' });
      expect((refused as QuotaExceededError).retryAfterMs).toBeGreaterThan(59_000);
      expect((refused as QuotaExceededError).retryAfterMs).toBeLessThanOrEqual(60_000);
      expect(sut.charge({ tenant: tenant({ requestsPerMinute: 2 }) })).toBeUndefined();
    });

    it('counts each API key apart, and not when the tenant already refused', () => {
      const acme = tenant({ requestsPerMinute: 4 });
      const key = randomUUID();

      const verdicts = Array.from({ length: 5 }, () => sut.charge({ tenant: acme, apiKeyId: key }));

      expect(verdicts.map((v) => (v as QuotaExceededError | undefined)?.limit)).toEqual([
        undefined,
        undefined,
        undefined,
        'key-rate',
        'tenant-rate',
      ]);
      expect(sut.charge({ tenant: tenant({}), apiKeyId: randomUUID() })).toBeUndefined();
    });

    it('throws the refusal from consumeRequest', async () => {
      const acme = tenant({ requestsPerMinute: 1 });
      await sut.consumeRequest({ tenant: acme });

      await expect(sut.consumeRequest({ tenant: acme })).rejects.toBeInstanceOf(QuotaExceededError);
    });

    it('gives concurrent call slots back once each', () => {
      const acme = tenant({ maxConcurrentCalls: 2 });
      const first = sut.acquireCall(acme);
      const second = sut.acquireCall(acme);
      expect(() => sut.acquireCall(acme)).toThrow(QuotaExceededError);

      first();
      first();
      const third = sut.acquireCall(acme);
      expect(() => sut.acquireCall(acme)).toThrow(QuotaExceededError);

      second();
      third();
      const slots = [sut.acquireCall(acme), sut.acquireCall(acme)];
      expect(() => sut.acquireCall(acme)).toThrow(QuotaExceededError);
      slots.forEach((release) => release());
    });
  });

  describe('in Redis', () => {
    const prefix = `portico-test-${randomBytes(4).toString('hex')}:`;
    const config = new ConfigService(
      loadConfig({
        DATABASE_PATH: ':memory:',
        REDIS_URL,
        REDIS_KEY_PREFIX: prefix,
        API_KEY_REQUESTS_PER_MINUTE: '0',
      }),
    );
    const nodes: QuotaService[] = [];

    afterAll(async () => {
      await Promise.all(nodes.map((node) => node.onApplicationShutdown()));
      const redis = new Redis(REDIS_URL);
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) {
        await redis.del(...keys);
      }
      await redis.quit();
    });

    it('counts the requests of every node together', async () => {
      nodes.push(new QuotaService(config), new QuotaService(config));
      const [a, b] = nodes;
      const acme = tenant({ requestsPerMinute: 3 });
      // Both connect at construction; calls made before that are refused by ioredis.
      for (const node of nodes) {
        while (!(await node.redisReachable())) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }

      const first = a.charge({ tenant: acme });
      expect(first).toBeInstanceOf(Promise);
      expect(await first).toBeUndefined();
      expect(await b.charge({ tenant: acme })).toBeUndefined();
      expect(await a.charge({ tenant: acme })).toBeUndefined();

      const refused = await b.charge({ tenant: acme });
      expect(refused).toMatchObject({ limit: 'tenant-rate' });
    });
  });
});

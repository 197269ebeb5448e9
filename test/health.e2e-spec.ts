import { testDatabaseEnv, TEST_POSTGRES_URL } from '@portico/testing';
import { LifecycleService } from '../apps/gateway/src/health/lifecycle.service';
import { RunningGateway, startGateway } from './support/gateway';
import { TcpProxy } from './support/tcp-proxy';

interface Readiness {
  status: number;
  body: { status: string; info?: Record<string, unknown>; error?: Record<string, unknown> };
}

describe('readiness follows the database and Redis', () => {
  let gateway: RunningGateway;
  let postgres: TcpProxy;
  let redis: TcpProxy;
  let cleanup: () => Promise<void>;

  const ready = async (): Promise<Readiness> => {
    const res = await fetch(`${gateway.baseUrl}/health/ready`);
    return { status: res.status, body: (await res.json()) as Readiness['body'] };
  };

  /** Polls until readiness has `status` (dependencies reconnect on their own schedule). */
  const until = async (status: number, ms = 15_000): Promise<Readiness> => {
    const deadline = Date.now() + ms;
    let last = await ready();
    while (last.status !== status && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      last = await ready();
    }
    return last;
  };

  beforeAll(async () => {
    const db = await testDatabaseEnv('postgres');
    cleanup = db.cleanup;
    postgres = await TcpProxy.start(5432);
    redis = await TcpProxy.start(6379);
    const url = new URL(TEST_POSTGRES_URL);
    url.port = String(postgres.port);
    gateway = await startGateway({
      ...db.env,
      DATABASE_URL: url.toString(),
      DATABASE_POOL_TIMEOUT_MS: '500',
      REDIS_URL: `redis://127.0.0.1:${redis.port}`,
      HEALTH_CHECK_TIMEOUT_MS: '500',
      LOG_LEVEL: 'fatal',
    });
  });

  afterAll(async () => {
    await gateway?.close();
    await postgres?.stop();
    await redis?.stop();
    await cleanup?.();
  });

  it('is ready with every dependency up', async () => {
    const state = await until(200);
    expect(state.status).toBe(200);
    expect(state.body.info).toMatchObject({
      lifecycle: { status: 'up' },
      database: { status: 'up' },
      redis: { status: 'up' },
    });
  });

  it('turns 503 while PostgreSQL is unreachable and recovers when it returns', async () => {
    await postgres.stop();
    const down = await until(503);
    expect(down.status).toBe(503);
    expect(down.body.error).toMatchObject({ database: { status: 'down' } });
    expect((await fetch(`${gateway.baseUrl}/health/live`)).status).toBe(200);
    await postgres.resume();
    expect((await until(200)).status).toBe(200);
  });

  it('turns 503 while Redis is unreachable and recovers when it returns', async () => {
    await redis.stop();
    const down = await until(503);
    expect(down.status).toBe(503);
    expect(down.body.error).toMatchObject({ redis: { status: 'down' } });
    await redis.resume();
    expect((await until(200)).status).toBe(200);
  });

  it('turns 503 at the start of a graceful shutdown', async () => {
    gateway.app.get(LifecycleService).startDraining();
    const draining = await ready();
    expect(draining.status).toBe(503);
    expect(draining.body.error).toMatchObject({ lifecycle: { status: 'down' } });
  });
});

import { DataSource, QueryRunner } from 'typeorm';
import { testDatabaseEnv } from '@portico/testing';
import { RunningGateway, startGateway } from './support/gateway';

const ADMIN_TOKEN = 'bootstrap-admin-token-bootstrap-admin-token';

describe('an exhausted database pool', () => {
  let gateway: RunningGateway;
  let cleanup: () => Promise<void>;
  let holder: QueryRunner;

  beforeAll(async () => {
    const db = await testDatabaseEnv('postgres');
    cleanup = db.cleanup;
    gateway = await startGateway({
      ...db.env,
      DATABASE_POOL_SIZE: '1',
      DATABASE_POOL_TIMEOUT_MS: '300',
      BOOTSTRAP_ADMIN_TOKEN: ADMIN_TOKEN,
    });
    // Hold the only pooled connection, as a long transaction or a load spike would.
    holder = gateway.app.get(DataSource).createQueryRunner();
    await holder.connect();
  });

  afterAll(async () => {
    await holder?.release();
    await gateway?.close();
    await cleanup?.();
  });

  it('answers an MCP request with 503 and Retry-After within the pool timeout', async () => {
    const started = Date.now();
    const res = await fetch(`${gateway.mcpUrl}/not-cached-yet`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: 'Bearer ptk_0123456789012345678901234567890123456789',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(await res.json()).toMatchObject({
      error: { code: -32603, message: 'Database busy, retry shortly' },
    });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('answers an admin request with 503 problem+json', async () => {
    const res = await fetch(`${gateway.baseUrl}/admin/v1/tenants`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(res.status).toBe(503);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(res.headers.get('retry-after')).toBe('1');
    expect(await res.json()).toMatchObject({
      status: 503,
      type: 'urn:portico:problem:database-busy',
    });
  });

  it('recovers once the connection is free again', async () => {
    await holder.release();
    const res = await fetch(`${gateway.baseUrl}/admin/v1/tenants`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(res.status).toBe(200);
  });
});

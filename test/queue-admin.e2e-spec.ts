/*
 * The failed-jobs admin API: failed queued tool calls listed per tenant (without arguments),
 * retried (non-idempotent tools only with force) and discarded; tenants isolated; 503 without
 * Redis. A real gateway with its embedded worker, real Redis (own prefix), real PostgreSQL,
 * and the fixture upstream (libs/testing/fixtures-upstream) as its own process.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { Queue } from 'bullmq';
import { TOOL_CALL_QUEUE } from '@portico/queue';
import { TenantService } from '@portico/tenancy';
import { testDatabaseEnv } from '@portico/testing';
import { RunningGateway, startGateway } from './support/gateway';
import {
  callTool,
  deleteRedisKeys,
  type FixtureUpstream,
  REDIS_URL,
  startFixtureUpstream,
} from './support/queue';
import { createApiKey, seedTenant } from './support/tenants';

const BOOTSTRAP = 'queue-admin-bootstrap-token-0123456789abcdef';
const PROBLEM_JSON = 'application/problem+json';
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- asserted field by field

interface Reply {
  status: number;
  type: string | null;
  text: string;
  body: Json;
}

async function admin(
  gateway: RunningGateway,
  method: string,
  path: string,
  token = BOOTSTRAP,
): Promise<Reply> {
  const res = await fetch(`${gateway.baseUrl}/admin/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${token}` },
  });
  const text = await res.text();
  return {
    status: res.status,
    type: res.headers.get('content-type'),
    text,
    body: text === '' ? {} : JSON.parse(text),
  };
}

function expectProblem(reply: Reply, status: number): void {
  expect({ status: reply.status, type: reply.type }).toEqual({
    status,
    type: expect.stringContaining(PROBLEM_JSON),
  });
  expect(reply.body).toMatchObject({
    status,
    title: expect.any(String),
    detail: expect.any(String),
  });
}

async function eventually<T>(probe: () => Promise<T>, accept: (v: T) => boolean): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const value = await probe();
    if (accept(value) || Date.now() > deadline) {
      return value;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('failed queued jobs through the admin API', () => {
  const prefix = `portico-test-${randomBytes(4).toString('hex')}:`;
  let upstream: FixtureUpstream;
  let gateway: RunningGateway;
  let queue: Queue;
  let cleanup: () => Promise<void>;
  const a = { slug: 'qa-a', id: '', user: '', admin: '', operator: '' };
  const b = { slug: 'qa-b', id: '', user: '', admin: '' };

  const attempts = async (key: string): Promise<number> => {
    const stats = (await upstream.stats()) as { attempts: Record<string, number> };
    return stats.attempts[key] ?? 0;
  };

  beforeAll(async () => {
    upstream = await startFixtureUpstream();
    const db = await testDatabaseEnv('postgres');
    cleanup = db.cleanup;
    gateway = await startGateway({
      ...db.env,
      REDIS_URL,
      REDIS_KEY_PREFIX: prefix,
      BOOTSTRAP_ADMIN_TOKEN: BOOTSTRAP,
    });
    const tenants = gateway.app.get(TenantService);
    for (const t of [a, b]) {
      const seeded = await seedTenant(gateway.app, { slug: t.slug, fixtures: [] });
      t.id = seeded.tenant.id;
      t.user = seeded.apiKey;
      await tenants.backends(t.id).insert({
        name: 'up',
        kind: 'mcp-http',
        target: upstream.url,
        settings: {
          internal: true,
          executor: 'queued',
          timeoutMs: 10_000,
          breakerThreshold: 50,
          tools: { flaky: { retry: { attempts: 2, backoffMs: 20 } } },
        },
        credentialsSealed: null,
      });
      await tenants.changed(seeded.tenant);
      t.admin = (
        await createApiKey(gateway.app, t.id, { name: 'admin', roles: ['tenant-admin'] })
      ).secret;
    }
    a.operator = (
      await createApiKey(gateway.app, a.id, { name: 'operator', roles: ['tenant-operator'] })
    ).secret;
    queue = new Queue(TOOL_CALL_QUEUE, {
      connection: { host: '127.0.0.1', port: 6379, maxRetriesPerRequest: null },
      prefix: `${prefix}bull`,
    });
  });

  afterAll(async () => {
    await gateway?.close();
    await queue?.close();
    await deleteRedisKeys(prefix);
    await cleanup?.();
    await upstream?.stop();
  });

  /** Makes a call fail on the worker and returns its failed job as the API lists it. */
  async function failedCall(tool: string, key: string, failures: number): Promise<Json> {
    const reply = await callTool(gateway, a.slug, a.user, `up__${tool}`, { key, failures });
    expect(reply?.error?.message).toMatch(/^Backend up unavailable: /);
    const listed = await admin(gateway, 'GET', `/tenants/${a.slug}/queue/failed`, a.admin);
    expect(listed.status).toBe(200);
    const job = listed.body.items.find((item: Json) => item.tool === `up__${tool}`);
    expect(job).toBeDefined();
    return job;
  }

  it('lists a failed job with who, what and why, newest first, never its arguments', async () => {
    const secretArg = `secret-${randomBytes(6).toString('hex')}`;
    await failedCall('flaky_write', secretArg, 1);
    await callTool(gateway, a.slug, a.user, 'up__flaky', { key: `${secretArg}-2`, failures: 9 });
    const listed = await admin(gateway, 'GET', `/tenants/${a.slug}/queue/failed`, a.operator);
    expect(listed.status).toBe(200);
    expect(listed.body).toMatchObject({ total: 2, offset: 0, limit: 50 });
    const [newest, older] = listed.body.items;
    expect(newest).toMatchObject({
      backend: 'up',
      tool: 'up__flaky',
      idempotent: true,
      attemptsMade: 2,
      errorCode: -32603,
    });
    expect(older).toEqual({
      id: expect.stringMatching(new RegExp(`^${a.id}\\.[0-9a-f]{32}$`)),
      backend: 'up',
      tool: 'up__flaky_write',
      principalId: expect.stringMatching(/^key:/),
      idempotent: false,
      errorCode: -32603,
      failedReason: expect.stringMatching(/^Backend up unavailable: /),
      attemptsMade: 1,
      createdAt: expect.any(String),
      processedAt: expect.any(String),
      failedAt: expect.any(String),
    });
    expect(Date.parse(newest.failedAt)).toBeGreaterThanOrEqual(Date.parse(older.failedAt));
    expect(listed.text).not.toContain(secretArg);
    const paged = await admin(
      gateway,
      'GET',
      `/tenants/${a.slug}/queue/failed?offset=1&limit=1`,
      a.admin,
    );
    expect(paged.body.items.map((j: Json) => j.id)).toEqual([older.id]);
    expectProblem(
      await admin(gateway, 'GET', `/tenants/${a.slug}/queue/failed?limit=0`, a.admin),
      400,
    );
  });

  it('retries an idempotent job: it runs again and completes', async () => {
    const job = await failedCall('flaky', 'idem-1', 2);
    expect(await attempts('idem-1')).toBe(2);
    const retried = await admin(
      gateway,
      'POST',
      `/tenants/${a.slug}/queue/failed/${job.id}/retry`,
      a.admin,
    );
    expect(retried.status).toBe(202);
    expect(retried.body).toMatchObject({ id: job.id, tool: 'up__flaky' });
    const state = await eventually(
      () => queue.getJobState(job.id),
      (s) => s === 'completed',
    );
    expect(state).toBe('completed');
    expect(await attempts('idem-1')).toBe(3);
    const listed = await admin(gateway, 'GET', `/tenants/${a.slug}/queue/failed`, a.admin);
    expect(listed.body.items.map((j: Json) => j.id)).not.toContain(job.id);
  });

  it('refuses to re-run a non-idempotent job without force (409), and audits a forced retry', async () => {
    const job = await failedCall('flaky_write', 'write-1', 1);
    const refused = await admin(
      gateway,
      'POST',
      `/tenants/${a.slug}/queue/failed/${job.id}/retry`,
      a.admin,
    );
    expectProblem(refused, 409);
    expect(refused.body.detail).toMatch(/force=true/);
    expect(await queue.getJobState(job.id)).toBe('failed');
    expect(await attempts('write-1')).toBe(1);

    const forced = await admin(
      gateway,
      'POST',
      `/tenants/${a.slug}/queue/failed/${job.id}/retry?force=true`,
      a.admin,
    );
    expect(forced.status).toBe(202);
    expect(
      await eventually(
        () => queue.getJobState(job.id),
        (s) => s === 'completed',
      ),
    ).toBe('completed');
    expect(await attempts('write-1')).toBe(2);
    const audit = await eventually(
      () => admin(gateway, 'GET', `/tenants/${a.slug}/audit?action=queue-job.retry`, a.admin),
      (r) => r.body.items?.some((e: Json) => e.target === job.id && e.outcome === 'success'),
    );
    const events = audit.body.items.filter((e: Json) => e.target === job.id);
    expect(events.map((e: Json) => [e.outcome, e.details?.force])).toEqual(
      expect.arrayContaining([['success', true]]),
    );
    expect(events.some((e: Json) => e.outcome === 'error' && e.details === null)).toBe(true);
    expectProblem(
      await admin(
        gateway,
        'POST',
        `/tenants/${a.slug}/queue/failed/${job.id}/retry?force=maybe`,
        a.admin,
      ),
      400,
    );
  });

  it('discards a failed job for good', async () => {
    const job = await failedCall('flaky_write', 'discard-1', 1);
    const removed = await admin(
      gateway,
      'DELETE',
      `/tenants/${a.slug}/queue/failed/${job.id}`,
      a.admin,
    );
    expect(removed.status).toBe(204);
    expect(await queue.getJob(job.id)).toBeUndefined();
    expectProblem(
      await admin(gateway, 'DELETE', `/tenants/${a.slug}/queue/failed/${job.id}`, a.admin),
      404,
    );
    const listed = await admin(gateway, 'GET', `/tenants/${a.slug}/queue/failed`, a.admin);
    expect(listed.body.items.map((j: Json) => j.id)).not.toContain(job.id);
  });

  it('keeps tenants apart: another tenant can neither see, retry nor discard a job', async () => {
    const job = await failedCall('flaky_write', 'iso-1', 1);
    const listedByB = await admin(gateway, 'GET', `/tenants/${b.slug}/queue/failed`, b.admin);
    expect(listedByB.status).toBe(200);
    expect(listedByB.body).toMatchObject({ total: 0, items: [] });
    for (const [method, path] of [
      ['POST', `/tenants/${b.slug}/queue/failed/${job.id}/retry?force=true`],
      ['DELETE', `/tenants/${b.slug}/queue/failed/${job.id}`],
    ]) {
      const reply = await admin(gateway, method, path, b.admin);
      expectProblem(reply, 404);
      expect(reply.body.detail).toBe('Failed job not found');
    }
    // Through A's own path, B's credential is refused like any tenant it does not own.
    expectProblem(
      await admin(gateway, 'DELETE', `/tenants/${a.slug}/queue/failed/${job.id}`, b.admin),
      404,
    );
    expect(await queue.getJobState(job.id)).toBe('failed');
    // A tenant-operator reads but does not write.
    expectProblem(
      await admin(gateway, 'DELETE', `/tenants/${a.slug}/queue/failed/${job.id}`, a.operator),
      403,
    );
  });
});

describe('the failed-jobs API without a reachable Redis', () => {
  let cleanup: (() => Promise<void>)[] = [];

  afterAll(async () => {
    for (const fn of cleanup) {
      await fn();
    }
    cleanup = [];
  });

  async function closedPort(): Promise<number> {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const { port } = probe.address() as { port: number };
    await new Promise((r) => probe.close(r));
    return port;
  }

  it.each([
    ['REDIS_URL is not set', async () => ({})],
    [
      'Redis is unreachable',
      async () => ({ REDIS_URL: `redis://127.0.0.1:${await closedPort()}` }),
    ],
  ])('answers 503 problem+json when %s', async (_case, env) => {
    const gateway = await startGateway({
      ...(await env()),
      BOOTSTRAP_ADMIN_TOKEN: BOOTSTRAP,
      WORKER_EMBEDDED: 'false',
    });
    cleanup.push(() => gateway.close());
    const { tenant } = await seedTenant(gateway.app, { slug: 'noredis' });
    const id = `${tenant.id}.${'0'.repeat(32)}`;
    for (const [method, path] of [
      ['GET', '/tenants/noredis/queue/failed'],
      ['POST', `/tenants/noredis/queue/failed/${id}/retry`],
      ['DELETE', `/tenants/noredis/queue/failed/${id}`],
    ]) {
      const reply = await admin(gateway, method, path);
      expectProblem(reply, 503);
      expect(reply.body.type).toBe('urn:portico:problem:queue-unavailable');
    }
  });
});

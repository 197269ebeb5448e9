/*
 * Retries of queued tool calls: only retryable failures (the upstream unreachable at the
 * transport level) of idempotent tools (annotation or retry policy), never past the deadline;
 * and per-tool executors. The fixture upstream counts the attempts it saw per key (GET /stats).
 */
import { randomBytes } from 'node:crypto';
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
import { seedTenant } from './support/tenants';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- asserted field by field

describe('retries and per-tool executors of queued tool calls', () => {
  const prefix = `portico-test-${randomBytes(4).toString('hex')}:`;
  let upstream: FixtureUpstream;
  let gateway: RunningGateway;
  let queue: Queue;
  let apiKey: string;
  let cleanup: () => Promise<void>;

  const call = async (name: string, args: Record<string, unknown>): Promise<Json> =>
    (await callTool(gateway, 'retries', apiKey, name, args)) ?? {};

  const attempts = async (key: string): Promise<number> => {
    const stats = (await upstream.stats()) as { attempts: Record<string, number> };
    return stats.attempts[key] ?? 0;
  };

  const completed = async (): Promise<number> =>
    (await queue.getJobCounts('completed')).completed ?? 0;

  beforeAll(async () => {
    upstream = await startFixtureUpstream();
    const db = await testDatabaseEnv('postgres');
    cleanup = db.cleanup;
    gateway = await startGateway({ ...db.env, REDIS_URL, REDIS_KEY_PREFIX: prefix });
    const seeded = await seedTenant(gateway.app, { slug: 'retries', fixtures: [] });
    apiKey = seeded.apiKey;
    const tenants = gateway.app.get(TenantService);
    const backend = (name: string, settings: Record<string, unknown>) =>
      tenants.backends(seeded.tenant.id).insert({
        name,
        kind: 'mcp-http',
        target: upstream.url,
        settings: { internal: true, breakerThreshold: 50, ...settings },
        credentialsSealed: null,
      });
    // Annotations decide: `flaky` is idempotent (default retries: 3 attempts), `flaky_write` is not.
    await backend('up', { executor: 'queued', timeoutMs: 10_000 });
    // The operator's policy makes `flaky_write` retryable here.
    await backend('policy', {
      executor: 'queued',
      timeoutMs: 10_000,
      tools: { flaky_write: { retry: { attempts: 3, backoffMs: 20 } } },
    });
    // Retries would start after the deadline: the second backoff (2 s) does not fit in 3 s.
    await backend('hurried', {
      executor: 'queued',
      tools: { flaky: { timeoutMs: 3000, retry: { attempts: 5, backoffMs: 1000 } } },
    });
    // Inline by default, one tool queued.
    await backend('mixed', { tools: { flaky: { executor: 'queued' } } });
    await tenants.changed(seeded.tenant);
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

  it('retries an idempotent tool after transport failures until it succeeds', async () => {
    const reply = await call('up__flaky', { key: 'idem', failures: 2 });
    expect(reply.result?.content).toEqual([{ type: 'text', text: 'ok idem after 3 attempts' }]);
    expect(await attempts('idem')).toBe(3);
  });

  it('gives up after the configured attempts with the backend error', async () => {
    const reply = await call('up__flaky', { key: 'exhausted', failures: 9 });
    expect(reply.error.message).toMatch(/^Backend up unavailable: /);
    expect(await attempts('exhausted')).toBe(3);
  });

  it('never retries a tool that is not idempotent', async () => {
    const reply = await call('up__flaky_write', { key: 'write', failures: 1 });
    expect(reply.error.message).toMatch(/^Backend up unavailable: /);
    expect(await attempts('write')).toBe(1);
  });

  it('retries a tool the operator declared retryable by policy', async () => {
    const reply = await call('policy__flaky_write', { key: 'policy', failures: 2 });
    expect(reply.result?.content).toEqual([{ type: 'text', text: 'ok policy after 3 attempts' }]);
    expect(await attempts('policy')).toBe(3);
  });

  it('does not retry a JSON-RPC error answered by the upstream', async () => {
    const reply = await call('up__rpc_error', { key: 'rpc' });
    expect(reply.error).toEqual({ code: -32000, message: 'fixture rpc error rpc' });
    expect(await attempts('rpc')).toBe(1);
  });

  it('does not retry past the deadline', async () => {
    const reply = await call('hurried__flaky', { key: 'late', failures: 9 });
    expect(reply.error.message).toMatch(/^Backend hurried unavailable: /);
    expect(await attempts('late')).toBe(2);
  });

  it('runs each tool on its own executor: one inline, one queued', async () => {
    const before = await completed();
    const inline = await call('mixed__echo', { message: 'here' });
    expect(inline.result.content).toEqual([{ type: 'text', text: 'here' }]);
    expect(await completed()).toBe(before);
    const queued = await call('mixed__flaky', { key: 'mixed', failures: 0 });
    expect(queued.result.content).toEqual([{ type: 'text', text: 'ok mixed after 1 attempts' }]);
    expect(await completed()).toBe(before + 1);
  });
});

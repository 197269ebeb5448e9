/*
 * Fairness of the tool-call queue: a tenant's cap on its running jobs holds across worker
 * processes, so its flood cannot take every worker slot from another tenant's calls; and jobs
 * start by priority (the tool's setting, else the tenant's plan). The fixture upstream's
 * `tracked` tool records, per group, how many calls ran at once and the order they started.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import type { TenantLimits } from '@portico/persistence';
import { TOOL_CALL_QUEUE } from '@portico/queue';
import { TenantService } from '@portico/tenancy';
import { testDatabaseEnv } from '@portico/testing';
import { RunningGateway, startGateway } from './support/gateway';
import {
  callTool,
  deleteRedisKeys,
  FixtureUpstream,
  REDIS_URL,
  startFixtureUpstream,
  startWorkerProcess,
  stopProcess,
  until,
} from './support/queue';
import { seedTenant } from './support/tenants';

/** How long each call of a flood runs upstream. */
const FLOOD_CALL_MS = 2000;
const FLOOD_CALLS = 20;
/** The other tenant's deadline: shorter than a FIFO queue behind the flood could meet. */
const VICTIM_TIMEOUT_MS = 5000;

jest.setTimeout(180_000);

describe('fairness and priorities of queued tool calls', () => {
  const prefix = `portico-test-${randomBytes(4).toString('hex')}:`;
  let upstream: FixtureUpstream;
  let gateway: RunningGateway;
  let queue: Queue;
  let env: Record<string, string>;
  let cleanup: () => Promise<void>;
  const apiKeys = new Map<string, string>();

  const tenant = async (
    slug: string,
    limits: TenantLimits,
    settings: Record<string, unknown>,
  ): Promise<void> => {
    const seeded = await seedTenant(gateway.app, { slug, fixtures: [] });
    const tenants = gateway.app.get(TenantService);
    await tenants.backends(seeded.tenant.id).insert({
      name: 'up',
      kind: 'mcp-http',
      target: upstream.url,
      settings: { internal: true, breakerThreshold: 1000, executor: 'queued', ...settings },
      credentialsSealed: null,
    });
    await tenants.update(seeded.tenant, { limits });
    apiKeys.set(slug, seeded.apiKey);
  };

  const tracked = (slug: string, group: string, label: string, ms: number, signal?: AbortSignal) =>
    callTool(gateway, slug, apiKeys.get(slug)!, 'up__tracked', { group, label, ms }, signal);

  const flood = (slug: string) =>
    Array.from({ length: FLOOD_CALLS }, (_, i) =>
      tracked(slug, slug, `${slug}-${i}`, FLOOD_CALL_MS),
    );

  const group = async (name: string) =>
    (await upstream.stats()).tracked[name] as
      { running: number; maxRunning: number; started: string[] } | undefined;

  const counts = async () =>
    queue.getJobCounts('active', 'waiting', 'prioritized', 'delayed') as Promise<
      Record<'active' | 'waiting' | 'prioritized' | 'delayed', number>
    >;

  const queued = async () => {
    const c = await counts();
    return c.active + c.waiting + c.prioritized + c.delayed;
  };

  beforeAll(async () => {
    upstream = await startFixtureUpstream();
    const db = await testDatabaseEnv('postgres');
    cleanup = db.cleanup;
    env = { ...db.env, REDIS_URL, REDIS_KEY_PREFIX: prefix };
    gateway = await startGateway({ ...env, WORKER_EMBEDDED: 'false' });
    await tenant('flood', { maxConcurrentJobs: 2 }, { timeoutMs: 60_000 });
    await tenant('crowd', {}, { timeoutMs: 60_000 });
    await tenant('victim', {}, { timeoutMs: VICTIM_TIMEOUT_MS });
    await tenant('block', {}, { timeoutMs: 120_000 });
    await tenant('bulk', { queuePriority: 8 }, { timeoutMs: 60_000 });
    await tenant('premium', { queuePriority: 2 }, { timeoutMs: 60_000 });
    // The plan says first of all; the operator's setting on the tool says last.
    await tenant(
      'demoted',
      { queuePriority: 1 },
      { timeoutMs: 60_000, tools: { tracked: { priority: 9 } } },
    );
    queue = new Queue(TOOL_CALL_QUEUE, {
      // BullMQ leaves a connection it was given open: pass options, it closes its own.
      connection: { host: '127.0.0.1', port: 6379, maxRetriesPerRequest: null },
      prefix: `${prefix}bull`,
    });
  });

  afterAll(async () => {
    await gateway?.close();
    await queue?.obliterate({ force: true }).catch(() => undefined);
    await queue?.close();
    await deleteRedisKeys(prefix);
    await cleanup?.();
    await upstream?.stop();
  });

  describe('two worker processes, two slots each', () => {
    const workers: ChildProcess[] = [];

    beforeAll(async () => {
      for (let i = 0; i < 2; i++) {
        workers.push(await startWorkerProcess(gateway, { ...env, WORKER_CONCURRENCY: '2' }));
      }
    });

    afterAll(async () => {
      await Promise.all(workers.map((w) => stopProcess(w)));
    });

    it('without a cap, a flood keeps another tenant’s calls waiting past their deadline', async () => {
      const crowd = flood('crowd');
      await until(async () => (await queued()) >= FLOOD_CALLS, 'the flood queued');
      // Queued behind the flood, first in first out: no call of the victim can start before
      // 17 of the flood's have, four at a time, two seconds each: well past its deadline.
      const victims = await Promise.all(
        [0, 1, 2].map((i) => tracked('victim', 'victim-fifo', `v${i}`, 300)),
      );
      for (const reply of victims) {
        expect(reply?.error?.message).toMatch(/deadline/);
      }
      for (const reply of await Promise.all(crowd)) {
        expect(reply?.result?.content?.[0]?.text).toMatch(/^crowd crowd-\d+$/);
      }
      await until(async () => (await queued()) === 0, 'the queue drained');
      // Their jobs came up after their deadline and failed without running.
      expect(await group('victim-fifo')).toBeUndefined();
      expect((await group('crowd'))?.maxRunning).toBe(4);
    });

    it('with a cap, the flood waits its turn and another tenant’s calls finish within their deadline', async () => {
      const floods = flood('flood');
      await until(async () => (await queued()) >= FLOOD_CALLS, 'the flood queued');
      const victims = await Promise.all(
        [0, 1, 2].map((i) => tracked('victim', 'victim-fair', `v${i}`, 300)),
      );
      expect(victims.map((reply) => reply?.result?.content?.[0]?.text)).toEqual([
        'victim-fair v0',
        'victim-fair v1',
        'victim-fair v2',
      ]);
      // Most of the flood is still to run: the victim did not wait for it.
      expect((await group('flood'))!.started.length).toBeLessThan(FLOOD_CALLS);
      for (const reply of await Promise.all(floods)) {
        expect(reply?.result?.content?.[0]?.text).toMatch(/^flood flood-\d+$/);
      }
      // Four slots on two processes, and never more than the cap of them at once.
      expect((await group('flood'))?.maxRunning).toBe(2);
      await until(async () => (await queued()) === 0, 'the queue drained');
    });
  });

  describe('one worker process, one slot', () => {
    let worker: ChildProcess;

    beforeAll(async () => {
      worker = await startWorkerProcess(gateway, { ...env, WORKER_CONCURRENCY: '1' });
    });

    afterAll(async () => {
      await stopProcess(worker);
    });

    it('starts jobs by priority, a tool’s setting before its tenant’s plan, then in queue order', async () => {
      // The only slot is taken until the blocking call is cancelled.
      const blocker = new AbortController();
      const blocked = tracked('block', 'block', 'block', 120_000, blocker.signal);
      await until(async () => (await group('block'))?.running === 1, 'the blocker running');
      const calls = [];
      for (const [slug, label] of [
        ['bulk', 'bulk-1'],
        ['bulk', 'bulk-2'],
        ['demoted', 'demoted-1'],
        ['premium', 'premium-1'],
        ['premium', 'premium-2'],
      ]) {
        const before = (await counts()).prioritized;
        calls.push(tracked(slug, 'prio', label, 10));
        await until(async () => (await counts()).prioritized === before + 1, `${label} queued`);
      }
      blocker.abort();
      await blocked;
      for (const reply of await Promise.all(calls)) {
        expect(reply?.result?.content?.[0]?.text).toMatch(/^prio /);
      }
      expect((await group('prio'))?.started).toEqual([
        'premium-1',
        'premium-2',
        'bulk-1',
        'bulk-2',
        'demoted-1',
      ]);
    });
  });
});

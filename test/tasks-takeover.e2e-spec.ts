/*
 * Tasks taken over by another gateway node, work and all. Two gateways share PostgreSQL and
 * Redis (a key prefix of this run); node A takes the calls, node B runs the queue's worker and
 * takes A's tasks over once A is gone.
 *
 * A crash is simulated by cutting A off from Redis (a TCP proxy between them stops): A renews
 * no lease, writes no outcome and hears no signal, so the first tasks/get on B after the lease
 * lapsed makes B claim the task (the task's hash then names B's node). What B does with it
 * depends on its work:
 * - a gateway task following a 2026-07-28 upstream's task (federation with the tasks
 *   extension): B follows the same upstream task on, to its result, its cancellation, or a
 *   clear failure when it asks for input no client can give B;
 * - a queued job: B waits for it, and the job's progress becomes the task's statusMessage.
 * The upstreams are real processes: the conformance catalog
 * (libs/testing/fixtures-upstream/conformance-upstream.mjs --era modern: Portico's build,
 * `npm run build` first) and a scripted server (tasks-upstream.mjs) whose /stats shows what
 * reached it.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Redis from 'ioredis';
import { NODE_STOPPED_MESSAGE, TASKS_EXTENSION } from '@portico/mcp-protocol';
import { TOOL_CALL_WORK } from '@portico/queue';
import { UPSTREAM_TASK_WORK } from '@portico/registry';
import { taskKey } from '@portico/session';
import { TenantService } from '@portico/tenancy';
import { testDatabaseEnv } from '@portico/testing';
import { RunningGateway, startGateway } from './support/gateway';
import { TcpProxy } from './support/tcp-proxy';
import { seedTenant } from './support/tenants';
import { startReadyProcess } from './support/queue';

jest.setTimeout(120_000);

const ROOT = resolve(__dirname, '..');
const CONFORMANCE = join(ROOT, 'libs/testing/fixtures-upstream/conformance-upstream.mjs');
const SCRIPTED = join(ROOT, 'libs/testing/fixtures-upstream/tasks-upstream.mjs');
const GATEWAY_BUILD = join(ROOT, 'dist/apps/gateway/apps/gateway/src/main.js');
const MODERN = '2026-07-28';
const REDIS_PORT = 6379;
const TASK_CAPS = { extensions: { [TASKS_EXTENSION]: {} } };
/** Short, so a dead node's tasks are orphaned soon; renewed every third of it. */
const LEASE_MS = 1500;
const WAIT_MS = 60_000;

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- asserted field by field
type Tenant = 'federated' | 'queued';

interface ScriptedStats {
  calls: { name: string; extension: boolean }[];
  tasks: Record<string, { tool: string; status: string }>;
  cancels: string[];
  updates: { taskId: string; inputResponses: Json }[];
}

function lastMessage(text: string): Json {
  if (text.startsWith('{')) {
    return JSON.parse(text) as Json;
  }
  const events = text
    .split('\n')
    .filter((line) => line.startsWith('data: {') || line.startsWith('data:{'))
    .map((line) => JSON.parse(line.slice(line.indexOf('{'))) as Json);
  return events.at(-1) ?? {};
}

/** One 2026-07-28 request; declares the tasks extension unless `caps` says otherwise. */
async function rpc(
  url: string,
  apiKey: string | undefined,
  method: string,
  params: Json,
  caps: Json = TASK_CAPS,
): Promise<Json> {
  const name = method === 'tools/call' ? params.name : params.taskId;
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN,
      'mcp-method': method,
      'mcp-name': String(name),
      ...(apiKey !== undefined && { authorization: `Bearer ${apiKey}` }),
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method,
      params: {
        ...params,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': MODERN,
          'io.modelcontextprotocol/clientCapabilities': caps,
        },
      },
    }),
  });
  return lastMessage(await res.text());
}

async function until(probe: () => Promise<boolean> | boolean, what: () => string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!(await probe())) {
    if (Date.now() > deadline) {
      throw new Error(`${what()}: not within ${WAIT_MS} ms`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('tasks taken over from a gateway node that stops', () => {
  const prefix = `portico-test-tasks-takeover-${randomBytes(4).toString('hex')}:`;
  const upstreams: ChildProcess[] = [];
  let env: Record<string, string>;
  let proxy: TcpProxy;
  let proxyStopped = false;
  /** Subscribers of this run's channels before A was cut off: A's come back with it. */
  let subscribedBeforeCut: Record<string, number> = {};
  /** Takes the calls; reaches Redis through `proxy` only. */
  let nodeA: RunningGateway | undefined;
  /** Runs the queue's worker; takes A's tasks over once A is gone. */
  let nodeB: RunningGateway;
  /** Reads the tasks' hashes (who holds a task, what work it records). */
  let redis: Redis;
  let dropDatabase: (() => Promise<void>) | undefined;
  let conformanceUrl: string;
  let scriptedUrl: string;
  const keys: Record<Tenant, string> = { federated: '', queued: '' };

  const endpoint = (node: RunningGateway, tenant: Tenant) => `${node.mcpUrl}/takeover-${tenant}`;

  /** An upstream fixture process; resolves with its port once it printed `READY <port>`. */
  async function startUpstream(script: string, args: string[]): Promise<number> {
    const { child, port } = await startReadyProcess(script, args, 60_000);
    upstreams.push(child);
    return port;
  }

  async function scriptedStats(): Promise<ScriptedStats> {
    const res = await fetch(`${scriptedUrl}/stats`);
    return (await res.json()) as ScriptedStats;
  }

  /** Waits until `node` has `tool` in the tenant's catalog (built on first use). */
  async function catalogReady(node: RunningGateway, tenant: Tenant, tool: string): Promise<void> {
    let last: Json = {};
    await until(
      async () => {
        last = await rpc(endpoint(node, tenant), keys[tenant], 'tools/call', {
          name: tool,
          arguments: {},
        });
        return last.result !== undefined;
      },
      () => `${tool} on the takeover-${tenant} catalog (last answer ${JSON.stringify(last)})`,
    );
  }

  /** Node A, reaching Redis through the proxy, with both tenants' catalogs built. */
  async function startNodeA(): Promise<RunningGateway> {
    const a = await startGateway({
      ...env,
      REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
      WORKER_EMBEDDED: 'false',
    });
    nodeA = a;
    await catalogReady(a, 'federated', 'sc__plain');
    await catalogReady(a, 'federated', 'cf__test_simple_text');
    await catalogReady(a, 'queued', 'tq__plain');
    return a;
  }

  /** A tools/call on `node` that becomes a task; the gateway's task id. */
  async function startTask(
    node: RunningGateway,
    tenant: Tenant,
    name: string,
    args: Json = {},
  ): Promise<string> {
    const answer = await rpc(endpoint(node, tenant), keys[tenant], 'tools/call', {
      name,
      arguments: args,
    });
    expect(answer.result).toMatchObject({ resultType: 'task', status: 'working' });
    return answer.result.taskId as string;
  }

  async function getTask(node: RunningGateway, tenant: Tenant, taskId: string): Promise<Json> {
    const answer = await rpc(endpoint(node, tenant), keys[tenant], 'tasks/get', { taskId });
    if (!answer.result) {
      throw new Error(`tasks/get ${taskId}: ${JSON.stringify(answer)}`);
    }
    return answer.result as Json;
  }

  /** The node holding the task's lease, as its hash in Redis says. */
  const holder = (taskId: string) => redis.hget(taskKey(prefix, taskId), 'node');

  /** The work the task records (where it runs), once its executor recorded it. */
  async function workOf(taskId: string): Promise<Json | undefined> {
    const work = await redis.hget(taskKey(prefix, taskId), 'work');
    return work ? (JSON.parse(work) as Json) : undefined;
  }

  /** How many connections subscribe to each of this run's pub/sub channels. */
  async function subscriptions(): Promise<Record<string, number>> {
    const channels = (await redis.pubsub('CHANNELS', `${prefix}*`)) as string[];
    if (channels.length === 0) {
      return {};
    }
    const counts = (await redis.pubsub('NUMSUB', ...channels)) as (string | number)[];
    const byChannel: Record<string, number> = {};
    for (let i = 0; i < counts.length; i += 2) {
      byChannel[String(counts[i])] = Number(counts[i + 1]);
    }
    return byChannel;
  }

  /** The upstream task id a federated gateway task follows, once A recorded it. */
  async function followedUpstreamTask(taskId: string): Promise<string> {
    let work: Json | undefined;
    await until(
      async () => (work = await workOf(taskId)) !== undefined,
      () => `task ${taskId} recorded its work`,
    );
    // UPSTREAM_TASK_WORK (libs/registry upstream-tasks.ts, not exported by @portico/registry).
    expect(work?.kind).toBe(UPSTREAM_TASK_WORK);
    const named = JSON.parse(work!.id as string) as Json;
    expect(named.b).toEqual(expect.any(String));
    return named.u as string;
  }

  /**
   * Cuts A off from Redis, then asks B about the task until B has claimed it (its lease lapsed;
   * B's tasks/get takes it over). Resolves to the task as B answered right after the claim.
   */
  async function crashAndTakeOver(tenant: Tenant, taskId: string): Promise<Json> {
    const nodeOfA = await holder(taskId);
    expect(nodeOfA).toEqual(expect.any(String));
    subscribedBeforeCut = await subscriptions();
    await proxy.stop();
    proxyStopped = true;
    let task: Json = {};
    await until(
      async () => {
        task = await getTask(nodeB, tenant, taskId);
        const now = await holder(taskId);
        return now !== nodeOfA || task.status !== 'working';
      },
      () => `B claimed task ${taskId} (last seen ${JSON.stringify(task)})`,
    );
    // Claimed while it still ran: B took it over rather than finding it ended.
    expect(await holder(taskId)).not.toBe(nodeOfA);
    return task;
  }

  /** tasks/get on node B until the task ends; every task seen on the way, the last one ended. */
  async function followOnB(tenant: Tenant, taskId: string): Promise<Json[]> {
    const seen: Json[] = [];
    await until(
      async () => {
        const task = await getTask(nodeB, tenant, taskId);
        seen.push(task);
        return !['working', 'input_required'].includes(task.status);
      },
      () => `task ${taskId} ended (last seen ${JSON.stringify(seen.at(-1))})`,
    );
    return seen;
  }

  beforeAll(async () => {
    if (!existsSync(GATEWAY_BUILD)) {
      throw new Error(`${GATEWAY_BUILD} is missing: run "npm run build" first`);
    }
    const [conformancePort, scriptedPort] = await Promise.all([
      startUpstream(CONFORMANCE, ['--transport', 'http', '--era', 'modern']),
      startUpstream(SCRIPTED, []),
    ]);
    conformanceUrl = `http://127.0.0.1:${conformancePort}/mcp`;
    scriptedUrl = `http://127.0.0.1:${scriptedPort}`;
    const db = await testDatabaseEnv('postgres');
    dropDatabase = db.cleanup;
    proxy = await TcpProxy.start(REDIS_PORT);
    redis = new Redis(`redis://127.0.0.1:${REDIS_PORT}`);
    env = {
      ...db.env,
      REDIS_KEY_PREFIX: prefix,
      TASK_LEASE_MS: String(LEASE_MS),
      TASK_POLL_INTERVAL_MS: '100',
      SHUTDOWN_GRACE_MS: '0',
    };
    nodeB = await startGateway({
      ...env,
      REDIS_URL: `redis://127.0.0.1:${REDIS_PORT}`,
      WORKER_EMBEDDED: 'true',
    });
    const service = nodeB.app.get(TenantService);
    const backends: Record<Tenant, { name: string; target: string; settings: Json }[]> = {
      federated: [
        { name: 'cf', target: conformanceUrl, settings: { internal: true } },
        { name: 'sc', target: `${scriptedUrl}/mcp`, settings: { internal: true } },
      ],
      queued: [
        {
          name: 'tq',
          target: `${scriptedUrl}/mcp`,
          settings: { internal: true, executor: 'queued', timeoutMs: 120_000 },
        },
      ],
    };
    for (const tenant of ['federated', 'queued'] as const) {
      const seeded = await seedTenant(nodeB.app, { slug: `takeover-${tenant}`, fixtures: [] });
      keys[tenant] = seeded.apiKey;
      for (const backend of backends[tenant]) {
        await service.backends(seeded.tenant.id).insert({
          ...backend,
          kind: 'mcp-http',
          credentialsSealed: null,
        });
      }
      await service.changed(seeded.tenant);
    }
    await catalogReady(nodeB, 'federated', 'sc__plain');
    await catalogReady(nodeB, 'federated', 'cf__test_simple_text');
    await catalogReady(nodeB, 'queued', 'tq__plain');
  }, 120_000);

  afterEach(async () => {
    // A comes back to Redis before it closes, so it shuts down promptly.
    if (proxyStopped) {
      await proxy.resume();
      proxyStopped = false;
      // Closed while its subscribers resubscribe, A would end with an unhandled rejection
      // (ioredis's autoResubscribe leaves that SUBSCRIBE's promise unhandled): wait for them.
      let now: Record<string, number> = {};
      await until(
        async () => {
          now = await subscriptions();
          return Object.entries(subscribedBeforeCut).every(([ch, n]) => (now[ch] ?? 0) >= n);
        },
        () =>
          `A resubscribed (before the cut ${JSON.stringify(subscribedBeforeCut)}, ` +
          `now ${JSON.stringify(now)})`,
      );
    }
    await nodeA?.close();
    nodeA = undefined;
  });

  afterAll(async () => {
    await nodeB?.close();
    await proxy?.stop();
    if (redis) {
      const left = await redis.keys(`${prefix}*`);
      if (left.length > 0) {
        await redis.del(...left);
      }
      await redis.quit();
    }
    await dropDatabase?.();
    await Promise.all(
      upstreams.map(async (child) => {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = once(child, 'exit');
          child.kill('SIGTERM');
          await exited;
        }
      }),
    );
  }, 60_000);

  it("follows the dead node's upstream task on to its result", async () => {
    const a = await startNodeA();
    const label = `takeover-${randomBytes(3).toString('hex')}`;
    const taskId = await startTask(a, 'federated', 'cf__slow_compute', { seconds: 3, label });
    const upstreamId = await followedUpstreamTask(taskId);
    expect((await getTask(a, 'federated', taskId)).status).toBe('working');

    const claimed = await crashAndTakeOver('federated', taskId);
    expect(claimed.status).toBe('working');

    const ended = (await followOnB('federated', taskId)).at(-1)!;
    expect(ended).toMatchObject({
      taskId,
      status: 'completed',
      result: { content: [{ type: 'text', text: `Computed ${label} after 3 s` }] },
    });
    // The same upstream task, not the tool run again: the work record never changed, and
    // that upstream task is the one that completed.
    expect(JSON.parse((await workOf(taskId))!.id as string)).toMatchObject({ u: upstreamId });
    const upstream = await rpc(conformanceUrl, undefined, 'tasks/get', { taskId: upstreamId });
    expect(upstream.result).toMatchObject({ taskId: upstreamId, status: 'completed' });
  });

  it("shows the upstream task's status on the new node and cancels it from there", async () => {
    const a = await startNodeA();
    const before = await scriptedStats();
    const taskId = await startTask(a, 'federated', 'sc__hold');
    const upstreamId = await followedUpstreamTask(taskId);
    expect(Object.keys((await scriptedStats()).tasks)).toContain(upstreamId);
    expect(before.tasks[upstreamId]).toBeUndefined();

    await crashAndTakeOver('federated', taskId);
    let followed: Json = {};
    await until(
      async () => {
        followed = await getTask(nodeB, 'federated', taskId);
        return followed.statusMessage === 'Holding until cancelled';
      },
      () => `the upstream's statusMessage on B (last seen ${JSON.stringify(followed)})`,
    );
    expect(followed.status).toBe('working');

    const ack = await rpc(endpoint(nodeB, 'federated'), keys.federated, 'tasks/cancel', {
      taskId,
    });
    expect(ack.result).toMatchObject({ resultType: 'complete' });
    expect((await getTask(nodeB, 'federated', taskId)).status).toBe('cancelled');
    // A cannot hear the cancellation (no Redis): only B, following the task, cancels it upstream.
    await until(
      async () => (await scriptedStats()).cancels.includes(upstreamId),
      () => `tasks/cancel of ${upstreamId} upstream (stats ${JSON.stringify(before)})`,
    );
    const after = await scriptedStats();
    expect(after.tasks[upstreamId].status).toBe('cancelled');
    // One call: B followed the upstream task, it did not call the tool again.
    expect(after.calls.filter((c) => c.name === 'hold')).toHaveLength(
      before.calls.filter((c) => c.name === 'hold').length + 1,
    );
  });

  it('fails clearly when the upstream task asks for input after the takeover', async () => {
    const a = await startNodeA();
    const taskId = await startTask(a, 'federated', 'sc__late_ask', { ms: 6000 });
    const upstreamId = await followedUpstreamTask(taskId);

    await crashAndTakeOver('federated', taskId);
    // Taken over before the upstream asked.
    expect((await scriptedStats()).tasks[upstreamId].status).toBe('working');

    const ended = (await followOnB('federated', taskId)).at(-1)!;
    expect(ended.status).toBe('failed');
    expect(ended.error?.message).toContain(NODE_STOPPED_MESSAGE);
    expect(ended.error?.message).toContain('asked for client input');
    expect(ended.statusMessage).toContain('stopped');
    expect((await scriptedStats()).tasks[upstreamId].status).toBe('input_required');
  });

  it("turns a taken-over queued job's progress into the task's statusMessage", async () => {
    const a = await startNodeA();
    const before = await scriptedStats();
    const n = 20;
    const taskId = await startTask(a, 'queued', 'tq__ticks', { n, ms: 300 });
    const tickOf = (task: Json): number => {
      const match = /^tick (\d+)$/.exec(String(task.statusMessage));
      return match ? Number(match[1]) : 0;
    };
    // The job runs on B's worker and its ticks reach the task through A, until A dies.
    let relayed: Json = {};
    await until(
      async () => tickOf((relayed = await getTask(nodeB, 'queued', taskId))) >= 1,
      () => `a tick relayed by A (last seen ${JSON.stringify(relayed)})`,
    );
    expect(await workOf(taskId)).toMatchObject({ kind: TOOL_CALL_WORK });

    const claimed = await crashAndTakeOver('queued', taskId);
    expect(claimed.status).toBe('working');
    const atClaim = tickOf(claimed);
    expect(atClaim).toBeLessThan(n);

    const seen = await followOnB('queued', taskId);
    const ended = seen.at(-1)!;
    expect(ended).toMatchObject({
      status: 'completed',
      result: { content: [{ type: 'text', text: `ticked ${n}` }] },
    });
    const ticks = seen.map(tickOf).filter((tick) => tick > 0);
    // The ticks after the takeover, in order: B relays the job's progress from then on.
    expect(ticks.filter((tick) => tick > atClaim).length).toBeGreaterThanOrEqual(2);
    expect(ticks).toEqual([...ticks].sort((x, y) => x - y));
    // The job ran once: taken over, not run again.
    const after = await scriptedStats();
    expect(after.calls.filter((c) => c.name === 'ticks')).toHaveLength(
      before.calls.filter((c) => c.name === 'ticks').length + 1,
    );
  });
});

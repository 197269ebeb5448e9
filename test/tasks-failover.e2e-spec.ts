/*
 * Tasks that outlive the gateway node running them. Two gateways share PostgreSQL and Redis
 * (a key prefix of this run); node A takes the calls, node B runs the queue's worker and is
 * where the client follows its tasks once A is gone.
 *
 * A crash is simulated by cutting A off from Redis (a TCP proxy between them stops): from the
 * cluster's point of view that is exactly a dead node (it renews no lease and writes no
 * outcome), while a graceful close would end or hand over its tasks itself. A's inline work is
 * lost with it, so its task fails with a clear message; a queued job runs on the worker
 * regardless, and B takes over waiting for it. A graceful close hands queued tasks over at
 * once.
 */
import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import Redis from 'ioredis';
import { NODE_STOPPED_MESSAGE, TASKS_EXTENSION } from '@portico/mcp-protocol';
import { TOOL_CALL_QUEUE, type ToolJobData } from '@portico/queue';
import { TenantService } from '@portico/tenancy';
import { testDatabaseEnv } from '@portico/testing';
import { RunningGateway, startGateway } from './support/gateway';
import { TcpProxy } from './support/tcp-proxy';
import { seedTenant } from './support/tenants';

jest.setTimeout(120_000);

const MODERN = '2026-07-28';
const REDIS_PORT = 6379;
const TASK_CAPS = { extensions: { [TASKS_EXTENSION]: {} } };
/** Short, so a dead node's tasks are orphaned soon; renewed every third of it. */
const LEASE_MS = 1500;

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- asserted field by field

function lastMessage(text: string): Json {
  if (text.startsWith('{')) {
    return JSON.parse(text) as Json;
  }
  const events = text
    .split('\n')
    .filter((line) => line.startsWith('data: {'))
    .map((line) => JSON.parse(line.slice(6)) as Json);
  return events.at(-1) ?? {};
}

/** One 2026-07-28 request declaring the tasks extension. */
async function rpc(url: string, apiKey: string, method: string, params: Json): Promise<Json> {
  const name = method === 'tools/call' ? params.name : params.taskId;
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN,
      'mcp-method': method,
      'mcp-name': String(name),
      authorization: `Bearer ${apiKey}`,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method,
      params: {
        ...params,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': MODERN,
          'io.modelcontextprotocol/clientCapabilities': TASK_CAPS,
        },
      },
    }),
  });
  return lastMessage(await res.text());
}

async function until(probe: () => Promise<boolean> | boolean, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await probe())) {
    if (Date.now() > deadline) {
      throw new Error(`${what}: not within 60 s`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('tasks whose gateway node stops', () => {
  const prefix = `portico-test-tasks-failover-${randomBytes(4).toString('hex')}:`;
  let env: Record<string, string>;
  let proxy: TcpProxy;
  let proxyStopped = false;
  /** Takes the calls; reaches Redis through `proxy` only. */
  let nodeA: RunningGateway | undefined;
  /** Runs the queue's worker; follows the tasks after A is gone. */
  let nodeB: RunningGateway;
  let queue: Queue<ToolJobData>;
  let dropDatabase: (() => Promise<void>) | undefined;
  const keys: Record<'inline' | 'queued', string> = { inline: '', queued: '' };

  const endpoint = (node: RunningGateway, tenant: 'inline' | 'queued') =>
    `${node.mcpUrl}/failover-${tenant}`;

  /** Starts slow_compute as a task on `node`; resolves to the task id. */
  async function startTask(
    node: RunningGateway,
    tenant: 'inline' | 'queued',
    label: string,
    seconds: number,
  ): Promise<string> {
    const answer = await rpc(endpoint(node, tenant), keys[tenant], 'tools/call', {
      name: 'slow_compute',
      arguments: { seconds, label },
    });
    expect(answer.result).toMatchObject({ resultType: 'task', status: 'working' });
    return answer.result.taskId as string;
  }

  /** tasks/get on node B until the task ends; resolves to it. */
  async function endedOnB(tenant: 'inline' | 'queued', taskId: string): Promise<Json> {
    let task: Json = {};
    await until(
      async () => {
        task = (await rpc(endpoint(nodeB, tenant), keys[tenant], 'tasks/get', { taskId })).result;
        return task !== undefined && !['working', 'input_required'].includes(task.status);
      },
      `task ${taskId} ended (last seen ${JSON.stringify(task)})`,
    );
    return task;
  }

  async function jobsLabelled(label: string, states: ('active' | 'completed' | 'failed')[]) {
    return (await queue.getJobs(states)).filter((job) => job.data.arguments?.label === label);
  }

  beforeAll(async () => {
    const db = await testDatabaseEnv('postgres');
    dropDatabase = db.cleanup;
    proxy = await TcpProxy.start(REDIS_PORT);
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
    for (const tenant of ['inline', 'queued'] as const) {
      const seeded = await seedTenant(nodeB.app, { slug: `failover-${tenant}` });
      keys[tenant] = seeded.apiKey;
      if (tenant === 'queued') {
        const [backend] = await service.backends(seeded.tenant.id).find();
        await service.backends(seeded.tenant.id).update(backend.id, {
          settings: { executor: 'queued', timeoutMs: 120_000 },
        });
        await service.changed(seeded.tenant);
      }
    }
    queue = new Queue<ToolJobData>(TOOL_CALL_QUEUE, {
      connection: { host: '127.0.0.1', port: REDIS_PORT, maxRetriesPerRequest: null },
      prefix: `${prefix}bull`,
    });
  });

  afterEach(async () => {
    // A comes back to Redis before it closes, so it shuts down promptly.
    if (proxyStopped) {
      await proxy.resume();
      proxyStopped = false;
    }
    await nodeA?.close();
    nodeA = undefined;
  });

  afterAll(async () => {
    await nodeB?.close();
    await proxy?.stop();
    await queue?.obliterate({ force: true }).catch(() => undefined);
    await queue?.close();
    const redis = new Redis(`redis://127.0.0.1:${REDIS_PORT}`);
    const left = await redis.keys(`${prefix}*`);
    if (left.length > 0) {
      await redis.del(...left);
    }
    await redis.quit();
    await dropDatabase?.();
  });

  it('fails a dead node’s inline task clearly and completes its queued one elsewhere', async () => {
    const a = await startGateway({
      ...env,
      REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
      WORKER_EMBEDDED: 'false',
    });
    nodeA = a;
    const label = `queued-${randomBytes(3).toString('hex')}`;
    const inlineTask = await startTask(a, 'inline', 'inline', 600);
    const queuedTask = await startTask(a, 'queued', label, 3);
    // The job runs on B's worker: A is only waiting for it when it dies.
    await until(async () => (await jobsLabelled(label, ['active'])).length === 1, 'job running');

    await proxy.stop();
    proxyStopped = true;

    const inline = await endedOnB('inline', inlineTask);
    expect(inline).toMatchObject({ status: 'failed', statusMessage: NODE_STOPPED_MESSAGE });
    expect(inline.error).toMatchObject({ message: NODE_STOPPED_MESSAGE });

    const queued = await endedOnB('queued', queuedTask);
    expect(queued).toMatchObject({
      status: 'completed',
      result: { content: [{ type: 'text', text: `Computed ${label} after 3 s` }] },
    });
    // Taken over, not run again.
    expect(await jobsLabelled(label, ['completed', 'failed'])).toHaveLength(1);
  });

  it('hands a queued task over at once when its node shuts down gracefully', async () => {
    const a = await startGateway({
      ...env,
      REDIS_URL: `redis://127.0.0.1:${REDIS_PORT}`,
      WORKER_EMBEDDED: 'false',
      // Long: only the hand-over, not a lapsed lease, lets B take the task over in time.
      TASK_LEASE_MS: '600000',
    });
    nodeA = a;
    const label = `graceful-${randomBytes(3).toString('hex')}`;
    const taskId = await startTask(a, 'queued', label, 2);
    await until(async () => (await jobsLabelled(label, ['active'])).length === 1, 'job running');

    await a.close();
    nodeA = undefined;

    const task = await endedOnB('queued', taskId);
    expect(task).toMatchObject({
      status: 'completed',
      result: { content: [{ type: 'text', text: `Computed ${label} after 2 s` }] },
    });
  });
});

/*
 * Tasks end to end over Streamable HTTP: the io.modelcontextprotocol/tasks extension
 * (2026-07-28) and the experimental tasks of 2025-11-25, on one node with the memory store, and
 * across two nodes sharing Redis with the tool running on the BullMQ queue.
 */
import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import Redis from 'ioredis';
import { StaticCatalog, TASKS_EXTENSION } from '@portico/mcp-protocol';
import { TOOL_CALL_QUEUE } from '@portico/queue';
import { taskKey } from '@portico/session';
import { TenantService } from '@portico/tenancy';
import { testDatabaseEnv } from '@portico/testing';
import { RunningGateway, startGateway } from './support/gateway';
import { createApiKey, seedTenant } from './support/tenants';

const MODERN = '2026-07-28';
const ACCEPT = 'application/json, text/event-stream';
const REDIS = 'redis://127.0.0.1:6379';
const TASK_CAPS = { extensions: { [TASKS_EXTENSION]: {} }, elicitation: {} };

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- asserted field by field

interface Reply {
  status: number;
  /** The JSON-RPC response (the last message of an SSE answer). */
  body: Json;
}

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

/** One 2026-07-28 request with the headers a conforming client sends. */
async function rpc(
  url: string,
  method: string,
  params: Json,
  options: { apiKey?: string; caps?: Json; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const name = method === 'tools/call' ? params.name : params.taskId;
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: ACCEPT,
      'mcp-protocol-version': MODERN,
      'mcp-method': method,
      ...(typeof name === 'string' && { 'mcp-name': name }),
      ...(options.apiKey && { authorization: `Bearer ${options.apiKey}` }),
      ...options.headers,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method,
      params: {
        ...params,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': MODERN,
          'io.modelcontextprotocol/clientCapabilities': options.caps ?? TASK_CAPS,
        },
      },
    }),
  });
  return { status: res.status, body: lastMessage(await res.text()) };
}

/** tasks/get until `wanted` holds. */
async function pollTask(
  url: string,
  taskId: string,
  wanted: (task: Json) => boolean,
  apiKey?: string,
): Promise<Json> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const { body } = await rpc(url, 'tasks/get', { taskId }, { apiKey });
    if (body.result && wanted(body.result)) {
      return body.result;
    }
    if (Date.now() > deadline) {
      throw new Error(`task ${taskId}: ${JSON.stringify(body)}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function until(probe: () => Promise<boolean> | boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await probe())) {
    if (Date.now() > deadline) {
      throw new Error(`${what}: not within 20 s`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A latch the test opens; a tool waiting on it runs as long as the test wants. */
class Gate {
  private release!: () => void;
  readonly opened = new Promise<void>((resolve) => (this.release = resolve));
  started = false;
  aborted = false;
  open(): void {
    this.release();
  }
}

describe('tasks on one node (memory store)', () => {
  let gateway: RunningGateway;
  let gates: Gate[];

  function gatedCatalog(): StaticCatalog {
    return new StaticCatalog({
      tools: [
        {
          definition: {
            name: 'long_job',
            description: 'Runs until the test opens its gate or the task is cancelled',
            inputSchema: { type: 'object' },
            execution: { taskSupport: 'optional' },
          },
          call: async (_args, ctx) => {
            const gate = gates[gates.length - 1];
            gate.started = true;
            await new Promise<void>((resolve, reject) => {
              ctx.signal.addEventListener('abort', () => {
                gate.aborted = true;
                reject(new Error('aborted'));
              });
              void gate.opened.then(resolve);
            });
            return { content: [{ type: 'text', text: 'long job done' }] };
          },
        },
        {
          definition: {
            name: 'approve',
            description: 'Asks for an approval while running as a task',
            inputSchema: { type: 'object' },
            execution: { taskSupport: 'optional' },
          },
          call: async (_args, ctx) => {
            const answer = await ctx.elicit(
              {
                message: 'Approve?',
                requestedSchema: {
                  type: 'object',
                  properties: { ok: { type: 'boolean' } },
                  required: ['ok'],
                },
              },
              { key: 'approval' },
            );
            return {
              content: [{ type: 'text', text: `approved=${String(answer.content?.ok)}` }],
            };
          },
        },
      ],
    });
  }

  beforeAll(async () => {
    gateway = await startGateway({ SHUTDOWN_GRACE_MS: '0' }, { catalog: gatedCatalog() });
  });

  beforeEach(() => {
    gates = [new Gate()];
  });

  afterAll(async () => {
    for (const gate of gates) {
      gate.open();
    }
    await gateway?.close();
  });

  it('advertises the extension on server/discover', async () => {
    const { body } = await rpc(gateway.mcpUrl, 'server/discover', {});
    expect(body.result.capabilities.extensions).toEqual({ [TASKS_EXTENSION]: {} });
    expect(body.result.capabilities.tasks).toBeUndefined();
  });

  it('answers a long call with a handle while the tool is still running, then inlines its result', async () => {
    const gate = gates[0];
    const created = await rpc(gateway.mcpUrl, 'tools/call', { name: 'long_job', arguments: {} });
    expect(created.status).toBe(200);
    const handle = created.body.result;
    expect(handle).toMatchObject({ resultType: 'task', status: 'working' });
    expect(Number.isInteger(handle.ttlMs) && handle.ttlMs > 0).toBe(true);
    // The connection was released although the tool has not finished (its gate is closed).
    await until(() => gate.started, 'tool started');
    const working = await rpc(gateway.mcpUrl, 'tasks/get', { taskId: handle.taskId });
    expect(working.body.result).toMatchObject({ resultType: 'complete', status: 'working' });
    gate.open();
    const done = await pollTask(gateway.mcpUrl, handle.taskId, (t) => t.status !== 'working');
    expect(done).toMatchObject({
      status: 'completed',
      result: { content: [{ type: 'text', text: 'long job done' }] },
    });
  });

  it('cancels the running tool through tasks/cancel', async () => {
    const gate = gates[0];
    const created = await rpc(gateway.mcpUrl, 'tools/call', { name: 'long_job', arguments: {} });
    const taskId = created.body.result.taskId;
    await until(() => gate.started, 'tool started');
    const ack = await rpc(gateway.mcpUrl, 'tasks/cancel', { taskId });
    expect(ack.body.result).toMatchObject({ resultType: 'complete' });
    expect(ack.body.result.status).toBeUndefined();
    await until(() => gate.aborted, 'the tool saw the cancellation');
    expect((await pollTask(gateway.mcpUrl, taskId, () => true)).status).toBe('cancelled');
  });

  it('asks for input through tasks/get and resumes on tasks/update', async () => {
    const created = await rpc(gateway.mcpUrl, 'tools/call', { name: 'approve', arguments: {} });
    const taskId = created.body.result.taskId;
    const asking = await pollTask(gateway.mcpUrl, taskId, (t) => t.status === 'input_required');
    expect(asking.inputRequests).toEqual({
      approval: {
        method: 'elicitation/create',
        params: expect.objectContaining({ message: 'Approve?' }),
      },
    });
    const ack = await rpc(gateway.mcpUrl, 'tasks/update', {
      taskId,
      inputResponses: { approval: { action: 'accept', content: { ok: true } } },
    });
    expect(ack.body.result).toMatchObject({ resultType: 'complete' });
    const done = await pollTask(gateway.mcpUrl, taskId, (t) => t.status === 'completed');
    expect(done.result.content).toEqual([{ type: 'text', text: 'approved=true' }]);
  });

  it('checks Mcp-Name against the task id and gates the methods on the extension', async () => {
    const created = await rpc(gateway.mcpUrl, 'tools/call', { name: 'approve', arguments: {} });
    const taskId = created.body.result.taskId;
    const mismatch = await rpc(
      gateway.mcpUrl,
      'tasks/get',
      { taskId },
      { headers: { 'mcp-name': 'another-task' } },
    );
    expect(mismatch.status).toBe(400);
    expect(mismatch.body.error.code).toBe(-32020);
    const undeclared = await rpc(gateway.mcpUrl, 'tasks/get', { taskId }, { caps: {} });
    expect(undeclared.body.error.code).toBe(-32021);
    const sync = await rpc(
      gateway.mcpUrl,
      'tools/call',
      { name: 'approve', arguments: {} },
      { caps: { elicitation: {} } },
    );
    expect(sync.body.result.resultType).toBe('input_required');
    await rpc(gateway.mcpUrl, 'tasks/cancel', { taskId });
  });

  it('serves the 2025-11-25 flavour on a session: params.task, tasks/get, tasks/result', async () => {
    const post = (body: Json, session?: string) =>
      fetch(gateway.mcpUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: ACCEPT,
          ...(session && { 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' }),
        },
        body: JSON.stringify(body),
      });
    const init = await post({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: '2025-11-25',
        capabilities: {},
        clientInfo: { name: 'e2e', version: '1' },
      },
    });
    const session = init.headers.get('mcp-session-id')!;
    const initResult = lastMessage(await init.text()).result;
    expect(initResult.capabilities.tasks).toEqual({
      list: {},
      cancel: {},
      requests: { tools: { call: {} } },
    });
    await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, session);
    const gate = gates[0];
    const created = lastMessage(
      await (
        await post(
          {
            jsonrpc: '2.0',
            id: 1,
            method: 'tools/call',
            params: { name: 'long_job', arguments: {}, task: { ttl: 30_000 } },
          },
          session,
        )
      ).text(),
    ).result;
    expect(created.task).toMatchObject({ status: 'working', ttl: 30_000 });
    const taskId = created.task.taskId;
    const got = lastMessage(
      await (
        await post({ jsonrpc: '2.0', id: 2, method: 'tasks/get', params: { taskId } }, session)
      ).text(),
    ).result;
    expect(got).toMatchObject({ taskId, status: 'working' });
    const outcome = post(
      { jsonrpc: '2.0', id: 3, method: 'tasks/result', params: { taskId } },
      session,
    );
    gate.open();
    const result = lastMessage(await (await outcome).text()).result;
    expect(result).toEqual({
      content: [{ type: 'text', text: 'long job done' }],
      _meta: { 'io.modelcontextprotocol/related-task': { taskId } },
    });
  });
});

describe('tasks across two nodes sharing Redis, the tool on the queue', () => {
  const prefix = `portico-test-tasks-${randomBytes(4).toString('hex')}:`;
  let front: RunningGateway;
  let back: RunningGateway;
  let cleanup: () => Promise<void>;
  let apiKey: string;
  let otherKey: string;
  let queue: Queue;
  let redis: Redis;
  let url: { front: string; back: string };

  beforeAll(async () => {
    const db = await testDatabaseEnv('postgres');
    cleanup = db.cleanup;
    const env = {
      ...db.env,
      REDIS_URL: REDIS,
      REDIS_KEY_PREFIX: prefix,
      TASK_TTL_MS: '120000',
      SHUTDOWN_GRACE_MS: '0',
    };
    // The node that takes the call does not consume the queue: the other node's worker runs
    // the job, and the task is polled and cancelled there too.
    front = await startGateway({ ...env, WORKER_EMBEDDED: 'false' });
    back = await startGateway({ ...env, WORKER_EMBEDDED: 'true' });
    const seeded = await seedTenant(front.app, { slug: 'tasks' });
    apiKey = seeded.apiKey;
    otherKey = (await createApiKey(front.app, seeded.tenant.id, { name: 'other' })).secret;
    const tenants = front.app.get(TenantService);
    const [backend] = await tenants.backends(seeded.tenant.id).find();
    await tenants.backends(seeded.tenant.id).update(backend.id, {
      settings: { tools: { slow_compute: { executor: 'queued', timeoutMs: 60_000 } } },
    });
    await tenants.changed(seeded.tenant);
    url = { front: `${front.mcpUrl}/tasks`, back: `${back.mcpUrl}/tasks` };
    queue = new Queue(TOOL_CALL_QUEUE, {
      connection: { host: '127.0.0.1', port: 6379, maxRetriesPerRequest: null },
      prefix: `${prefix}bull`,
    });
    redis = new Redis(REDIS);
  });

  afterAll(async () => {
    await front?.close();
    await back?.close();
    await queue?.obliterate({ force: true }).catch(() => undefined);
    await queue?.close();
    const keys = (await redis?.keys(`${prefix}*`)) ?? [];
    if (keys.length > 0) {
      await redis.del(...keys);
    }
    await redis?.quit();
    await cleanup?.();
  });

  it('runs a queued tool as a task created on one node and polled on the other', async () => {
    const created = await rpc(
      url.front,
      'tools/call',
      { name: 'slow_compute', arguments: { seconds: 0.2, label: 'queued' } },
      { apiKey },
    );
    expect(created.body.result).toMatchObject({ resultType: 'task' });
    const taskId = created.body.result.taskId;
    const done = await pollTask(url.back, taskId, (t) => t.status !== 'working', apiKey);
    expect(done).toMatchObject({
      status: 'completed',
      result: { content: [{ type: 'text', text: 'Computed queued after 0.2 s' }] },
    });
    const jobs = await queue.getJobs(['completed', 'failed', 'active', 'waiting']);
    expect(jobs.some((job) => job.data.tool === 'slow_compute')).toBe(true);
    // Kept, in Redis, for the task's TTL.
    const ttl = await redis.pttl(taskKey(prefix, taskId));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(120_000);
    expect((await pollTask(url.front, taskId, () => true, apiKey)).status).toBe('completed');
  });

  it('cancels on one node the job the other node’s task is waiting for', async () => {
    const created = await rpc(
      url.front,
      'tools/call',
      { name: 'slow_compute', arguments: { seconds: 60, label: 'cancel-me' } },
      { apiKey },
    );
    const taskId = created.body.result.taskId;
    const labelled = async (states: ('active' | 'failed')[]) =>
      (await queue.getJobs(states)).find((job) => job.data.arguments?.label === 'cancel-me');
    await until(async () => (await labelled(['active'])) !== undefined, 'job running');
    expect((await pollTask(url.back, taskId, () => true, apiKey)).status).toBe('working');
    const ack = await rpc(url.back, 'tasks/cancel', { taskId }, { apiKey });
    expect(ack.body.result).toMatchObject({ resultType: 'complete' });
    expect((await pollTask(url.front, taskId, () => true, apiKey)).status).toBe('cancelled');
    await until(async () => (await labelled(['failed'])) !== undefined, 'job stopped');
    expect((await labelled(['failed']))?.failedReason).toMatch(/Cancelled/);
  });

  it('shows a task to the principal that created it only', async () => {
    const created = await rpc(
      url.front,
      'tools/call',
      { name: 'slow_compute', arguments: { seconds: 0, label: 'private' } },
      { apiKey },
    );
    const taskId = created.body.result.taskId;
    await pollTask(url.back, taskId, (t) => t.status === 'completed', apiKey);
    for (const method of ['tasks/get', 'tasks/update', 'tasks/cancel']) {
      const refused = await rpc(
        url.back,
        method,
        { taskId, inputResponses: {} },
        { apiKey: otherKey },
      );
      expect(refused.body.error?.code).toBe(-32602);
      expect(JSON.stringify(refused.body)).not.toContain('private');
    }
    expect((await pollTask(url.front, taskId, () => true, apiKey)).status).toBe('completed');
  });
});

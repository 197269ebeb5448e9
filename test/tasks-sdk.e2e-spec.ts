/*
 * Tasks end to end with the official SDK clients, in both eras: SDK v1's experimental tasks
 * client on a 2025-11-25 session (tools/call with `task`, tasks/get, tasks/result, tasks/list,
 * tasks/cancel), and SDK v2 pinned to 2026-07-28 with the io.modelcontextprotocol/tasks
 * extension (a `resultType: "task"` handle, tasks/get, tasks/update, tasks/cancel).
 *
 * Two gateways share PostgreSQL (a schema of this run) and Redis (a key prefix of this run):
 * tasks live in Redis, the node that takes a call does not consume the queue, and the other
 * node's embedded worker runs queued jobs. Every case runs with the task fixtures
 * (libs/testing/src/fixtures/conformance-tasks.ts) inline and queued, and each of those with
 * the task followed (polled, answered, cancelled) on the node that created it and through the
 * other node.
 *
 * SDK v2 2.4.0 has no tasks API: it sends the extension's methods (and sets Mcp-Name to the
 * task id for them) but rejects a `resultType: "task"` answer to tools/call as an unsupported
 * result type. The modern era is therefore driven with the v2 Client's own requests: tools/call
 * through `callTool` (its rejection is asserted; the handle is read from the answer the client
 * received, through the transport's `fetch` option), and tasks/get, tasks/update and
 * tasks/cancel through `client.request` with a result schema.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import Redis from 'ioredis';
import { CallToolResultSchema, McpError as V1McpError } from '@modelcontextprotocol/sdk/types.js';
import { TASKS_EXTENSION } from '@portico/mcp-protocol';
import { TOOL_CALL_QUEUE, type ToolJobData } from '@portico/queue';
import { AuditService, TenantService } from '@portico/tenancy';
import { testDatabaseEnv } from '@portico/testing';
import { RunningGateway, startGateway } from './support/gateway';
import {
  AckSchema,
  connectV1,
  connectV2,
  DetailedTaskSchema,
  rejectionOf,
  until,
  untilValue,
  type DetailedTask,
  type V1TaskClient,
  type V2TaskClient,
} from './support/tasks-sdk';
import { createApiKey, seedTenant } from './support/tenants';

// Above the waits of test/support/tasks-sdk.ts (WAIT_MS), so a wait that fails says what for.
jest.setTimeout(120_000);

const REDIS_URL = 'redis://127.0.0.1:6379';
/** How long a cancelled call would run: never reached, so only a cancellation ends it. */
const FOREVER_S = 600;
/** How long slow_compute works when a test wants to see it working first. */
const WORKING_S = 3;

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- asserted field by field
type TenantName = 'inline' | 'queued';

interface Placement {
  readonly title: string;
  readonly tenant: TenantName;
  /** Where the task is followed: the node that created it, or the other one. */
  readonly follow: 'same' | 'other';
}

const PLACEMENTS: Placement[] = [
  { title: 'inline, on one node', tenant: 'inline', follow: 'same' },
  { title: 'queued, on one node', tenant: 'queued', follow: 'same' },
  { title: 'inline, followed through another node', tenant: 'inline', follow: 'other' },
  { title: 'queued, followed through another node', tenant: 'queued', follow: 'other' },
];

interface SeededTenantInfo {
  readonly slug: string;
  readonly id: string;
}

const prefix = `portico-test-tasks-sdk-${randomBytes(4).toString('hex')}:`;
/** Takes the clients' calls; consumes no queue. */
let front: RunningGateway;
/** Runs the queued jobs (embedded worker); tasks followed elsewhere are followed here. */
let back: RunningGateway;
let tenants: Record<TenantName | 'other', SeededTenantInfo>;
let otherTenantKey: string;
let queue: Queue<ToolJobData>;
let dropDatabase: (() => Promise<void>) | undefined;

function label(what: string): string {
  return `${what}-${randomBytes(3).toString('hex')}`;
}

function endpoint(gateway: RunningGateway, slug: string): string {
  return `${gateway.mcpUrl}/${slug}`;
}

/** A new tool-user key of the tenant; its principal id is how the audit trail names it. */
async function newKey(
  tenant: TenantName,
  name: string,
): Promise<{ secret: string; actor: string }> {
  const key = await createApiKey(front.app, tenants[tenant].id, { name: label(name) });
  return { secret: key.secret, actor: `key:${key.id}` };
}

/** The queued job of a slow_compute call, found by its `label` argument. */
async function jobLabelled(
  text: string,
  states: ('active' | 'failed' | 'completed' | 'waiting')[],
) {
  return (await queue.getJobs(states)).find((job) => job.data.arguments?.label === text);
}

/**
 * Evidence that a cancellation reached a running slow_compute: on the queue, its job failed as
 * cancelled; inline, the call ended (it would have slept FOREVER_S) with an error in the audit
 * trail of the node that ran it.
 */
async function expectToolStopped(tenant: TenantName, actor: string, text: string): Promise<void> {
  if (tenant === 'queued') {
    const failed = await untilValue(
      () => jobLabelled(text, ['failed']),
      (job) => job !== undefined,
      'the job failed',
    );
    expect(failed?.failedReason).toMatch(/Cancelled/);
    expect(await jobLabelled(text, ['active', 'completed'])).toBeUndefined();
    return;
  }
  const audit = front.app.get(AuditService);
  const [rows] = await untilValue(
    () => audit.query(tenants.inline.id, { action: 'tools/call', actor, skip: 0, take: 50 }),
    ([found]) => found.some((row) => row.target === 'slow_compute' && row.outcome === 'error'),
    'the inline call ended',
  );
  const ended = rows.find((row) => row.target === 'slow_compute' && row.outcome === 'error');
  expect(JSON.stringify(ended?.details)).toMatch(/abort|cancel/i);
}

/**
 * On the queue, a tool that asks for input runs twice: the first job ends with the question
 * (the worker cannot reach the client), the second replays the client's answer.
 */
async function expectInputRuns(tenant: TenantName, filename: string): Promise<void> {
  if (tenant !== 'queued') {
    return;
  }
  const runs = (await queue.getJobs(['completed'])).filter(
    (job) => job.data.tool === 'confirm_delete' && job.data.arguments?.filename === filename,
  );
  expect(runs.map((job) => job.data.inputs?.length ?? 0).sort()).toEqual([0, 1]);
  const replayed = runs.find((job) => job.data.inputs?.length === 1);
  expect(replayed?.data.inputs?.[0]).toMatchObject({
    method: 'elicitation/create',
    result: { action: 'accept', content: { confirm: true } },
  });
}

/** A 2026-07-28 acknowledgement: an empty result (the server's `_meta` aside). */
function expectAck(ack: Json): void {
  expect(Object.keys(ack).filter((key) => key !== '_meta')).toEqual([]);
}

/** Waits until a queued slow_compute is held by the worker (so cancelling stops a running tool). */
async function untilRunning(tenant: TenantName, text: string): Promise<void> {
  if (tenant === 'queued') {
    await until(async () => (await jobLabelled(text, ['active'])) !== undefined, 'job running');
  }
}

beforeAll(async () => {
  const db = await testDatabaseEnv('postgres');
  dropDatabase = db.cleanup;
  const env = {
    ...db.env,
    REDIS_URL,
    REDIS_KEY_PREFIX: prefix,
    // Clients poll at the interval the task suggests: keep the SDK's polling loop brisk.
    TASK_POLL_INTERVAL_MS: '100',
    SHUTDOWN_GRACE_MS: '0',
  };
  front = await startGateway({ ...env, WORKER_EMBEDDED: 'false' });
  back = await startGateway({ ...env, WORKER_EMBEDDED: 'true' });
  const inline = await seedTenant(front.app, { slug: 'tasks-inline' });
  const queued = await seedTenant(front.app, { slug: 'tasks-queued' });
  const other = await seedTenant(front.app, { slug: 'tasks-other' });
  otherTenantKey = other.apiKey;
  const service = front.app.get(TenantService);
  const [backend] = await service.backends(queued.tenant.id).find();
  await service.backends(queued.tenant.id).update(backend.id, {
    settings: { executor: 'queued', timeoutMs: 2 * FOREVER_S * 1000 },
  });
  await service.changed(queued.tenant);
  tenants = {
    inline: { slug: 'tasks-inline', id: inline.tenant.id },
    queued: { slug: 'tasks-queued', id: queued.tenant.id },
    other: { slug: 'tasks-other', id: other.tenant.id },
  };
  queue = new Queue<ToolJobData>(TOOL_CALL_QUEUE, {
    // BullMQ leaves a connection it was given open: pass options, it closes its own.
    connection: { host: '127.0.0.1', port: 6379, maxRetriesPerRequest: null },
    prefix: `${prefix}bull`,
  });
});

afterAll(async () => {
  await front?.close();
  await back?.close();
  await queue?.obliterate({ force: true }).catch(() => undefined);
  await queue?.close();
  const redis = new Redis(REDIS_URL);
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) {
    await redis.del(...keys);
  }
  await redis.quit();
  await dropDatabase?.();
});

// ---------------------------------------------------------------------------------------
// SDK v1, 2025-11-25 experimental tasks

describe.each(PLACEMENTS)('SDK v1 (2025-11-25 tasks), $title', (placement) => {
  let actor: string;
  let secret: string;
  /** Creates the tasks (on `front`). */
  let creator: V1TaskClient;
  /** Follows them: the creator itself, or a client of the same key on `back`. */
  let follower: V1TaskClient;
  const slug = () => tenants[placement.tenant].slug;

  beforeAll(async () => {
    ({ secret, actor } = await newKey(placement.tenant, 'v1-owner'));
    creator = await connectV1(endpoint(front, slug()), secret);
    follower =
      placement.follow === 'same' ? creator : await connectV1(endpoint(back, slug()), secret);
  });

  afterAll(async () => {
    await creator?.close();
    await follower?.close();
  });

  /** A task-augmented tools/call through the SDK's tasks client; resolves to the created task. */
  async function createTask(name: string, args: Json): Promise<Json> {
    const stream = creator.client.experimental.tasks.callToolStream(
      { name, arguments: args },
      undefined,
      { task: { ttl: 120_000 } },
    );
    const first = await stream.next();
    await stream.return(undefined);
    expect(first.value).toMatchObject({ type: 'taskCreated' });
    const { task } = first.value as { task: Json };
    expect(task).toMatchObject({ status: 'working', ttl: 120_000 });
    return task;
  }

  function settled(taskId: string): Promise<Json> {
    return untilValue(
      () => follower.client.experimental.tasks.getTask(taskId),
      (task) => !['working', 'input_required'].includes(task.status),
      `task ${taskId} ended`,
    );
  }

  it('runs slow_compute as a task: working, then completed, and tasks/result is its result', async () => {
    expect(creator.client.getServerCapabilities()?.tasks).toEqual({
      list: {},
      cancel: {},
      requests: { tools: { call: {} } },
    });
    const text = label('sum');
    const task = await createTask('slow_compute', { seconds: WORKING_S, label: text });
    const working = await follower.client.experimental.tasks.getTask(task.taskId);
    expect(working).toMatchObject({ taskId: task.taskId, status: 'working' });
    const done = await settled(task.taskId);
    expect(done.status).toBe('completed');
    const result = await follower.client.experimental.tasks.getTaskResult(
      task.taskId,
      CallToolResultSchema,
    );
    expect(result).toEqual({
      content: [{ type: 'text', text: `Computed ${text} after ${WORKING_S} s` }],
      _meta: { 'io.modelcontextprotocol/related-task': { taskId: task.taskId } },
    });
    if (placement.tenant === 'queued') {
      expect(await jobLabelled(text, ['completed'])).toBeDefined();
    }
  });

  it('follows a task to its result with callToolStream alone', async () => {
    const text = label('streamed');
    const stream = creator.client.experimental.tasks.callToolStream(
      { name: 'slow_compute', arguments: { seconds: 0.2, label: text } },
      undefined,
      { task: { ttl: 120_000 } },
    );
    const messages: Json[] = [];
    for await (const message of stream) {
      messages.push(message);
    }
    expect(messages[0]).toMatchObject({ type: 'taskCreated', task: { status: 'working' } });
    expect(messages.at(-2)).toMatchObject({ type: 'taskStatus', task: { status: 'completed' } });
    expect(messages.at(-1)).toMatchObject({
      type: 'result',
      result: { content: [{ type: 'text', text: `Computed ${text} after 0.2 s` }] },
    });
  });

  it('fails failing_job’s task, and tasks/result is the isError result', async () => {
    const task = await createTask('failing_job', {});
    const done = await settled(task.taskId);
    expect(done).toMatchObject({ status: 'failed' });
    const result = await follower.client.experimental.tasks.getTaskResult(
      task.taskId,
      CallToolResultSchema,
    );
    expect(result).toMatchObject({
      isError: true,
      content: [{ type: 'text', text: 'The job failed, as it always does' }],
    });
  });

  it('fails protocol_error_job’s task with the tool’s JSON-RPC error', async () => {
    const task = await createTask('protocol_error_job', {});
    const done = await settled(task.taskId);
    expect(done).toMatchObject({
      status: 'failed',
      statusMessage: 'The job broke down (a protocol-level failure)',
    });
    const error = await rejectionOf(
      follower.client.experimental.tasks.getTaskResult(task.taskId, CallToolResultSchema),
    );
    expect(error).toBeInstanceOf(V1McpError);
    expect(error.code).toBe(-32603);
    expect(error.message).toContain('The job broke down (a protocol-level failure)');
  });

  it('cancels a running task: the task ends cancelled and the tool is stopped', async () => {
    const text = label('cancel');
    const task = await createTask('slow_compute', { seconds: FOREVER_S, label: text });
    await untilRunning(placement.tenant, text);
    const cancelled = await follower.client.experimental.tasks.cancelTask(task.taskId);
    expect(cancelled).toMatchObject({ taskId: task.taskId, status: 'cancelled' });
    expect((await creator.client.experimental.tasks.getTask(task.taskId)).status).toBe('cancelled');
    await expectToolStopped(placement.tenant, actor, text);
    // A terminal task cannot be cancelled again.
    const again = await rejectionOf(follower.client.experimental.tasks.cancelTask(task.taskId));
    expect(again.code).toBe(-32602);
  });

  /**
   * Runs an input-asking tool as a task to its result. On one node, the SDK's own loop does it
   * all: tasks/get until input_required, then tasks/result, whose stream carries the server's
   * requests to the client's handler and ends with the result. Through the other node, the
   * follower calls tasks/result there once the task asks.
   */
  async function runWithInput(name: string, args: Json): Promise<{ taskId: string; result: Json }> {
    if (placement.follow === 'same') {
      const messages: Json[] = [];
      for await (const message of creator.client.experimental.tasks.callToolStream(
        { name, arguments: args },
        undefined,
        { task: { ttl: 120_000 } },
      )) {
        messages.push(message);
      }
      expect(messages[0]?.type).toBe('taskCreated');
      expect(messages.some((m) => m.task?.status === 'input_required')).toBe(true);
      expect(messages.at(-1)?.type).toBe('result');
      return { taskId: messages[0].task.taskId, result: messages.at(-1)?.result };
    }
    const { taskId } = await createTask(name, args);
    await untilValue(
      () => follower.client.experimental.tasks.getTask(taskId),
      (t) => t.status === 'input_required',
      'the task asks for input',
    );
    const result = await follower.client.experimental.tasks.getTaskResult(
      taskId,
      CallToolResultSchema,
    );
    return { taskId, result };
  }

  it('asks for confirm_delete’s input on tasks/result, answered by the SDK’s elicitation handler', async () => {
    const file = `${label('report')}.txt`;
    const asked = follower.elicitations.asked.length;
    const { taskId, result } = await runWithInput('confirm_delete', { filename: file });
    expect(result.content).toEqual([{ type: 'text', text: `Deleted ${file}` }]);
    expect(follower.elicitations.asked.slice(asked)).toEqual([
      {
        message: `Delete ${file}? This cannot be undone.`,
        requestedSchema: {
          type: 'object',
          properties: { confirm: { type: 'boolean' } },
          required: ['confirm'],
        },
        _meta: {
          'io.modelcontextprotocol/related-task': { taskId },
          // The task's key for the input (a gateway federating this server asks under it).
          'dev.portico/input-key': 'confirm',
        },
      },
    ]);
    expect((await follower.client.experimental.tasks.getTask(taskId)).status).toBe('completed');
    await expectInputRuns(placement.tenant, file);
  });

  it('relays multi_input’s two questions together; the handler answers both', async () => {
    follower.elicitations.texts = { 'First answer?': 'Ada', 'Second answer?': 'Grace' };
    const asked = follower.elicitations.asked.length;
    const { taskId, result } = await runWithInput('multi_input', {});
    expect(result.content).toEqual([{ type: 'text', text: 'Got Ada and Grace' }]);
    const questions = follower.elicitations.asked.slice(asked);
    expect(questions.map((q) => q.message).sort()).toEqual(['First answer?', 'Second answer?']);
    const keys = { 'First answer?': 'first_name', 'Second answer?': 'second_name' };
    for (const question of questions) {
      expect(question._meta).toEqual({
        'io.modelcontextprotocol/related-task': { taskId },
        'dev.portico/input-key': keys[question.message as keyof typeof keys],
      });
    }
  });

  it('lists the caller’s tasks only; another key of the tenant or another tenant cannot see or get them', async () => {
    const text = label('private');
    const task = await createTask('slow_compute', { seconds: 0, label: text });
    await settled(task.taskId);
    const listed = await creator.client.experimental.tasks.listTasks();
    expect(listed.tasks.map((t) => t.taskId)).toContain(task.taskId);
    expect(listed.tasks.every((t) => typeof t.status === 'string')).toBe(true);

    const sameTenant = await connectV1(
      endpoint(placement.follow === 'same' ? front : back, slug()),
      (await newKey(placement.tenant, 'v1-stranger')).secret,
    );
    const otherTenant = await connectV1(
      endpoint(placement.follow === 'same' ? front : back, tenants.other.slug),
      otherTenantKey,
    );
    try {
      for (const stranger of [sameTenant, otherTenant]) {
        const tasks = stranger.client.experimental.tasks;
        expect((await tasks.listTasks()).tasks).toEqual([]);
        // Refused exactly as a task that does not exist is.
        const unknown = await rejectionOf(tasks.getTask(randomUUID()));
        expect(unknown.code).toBe(-32602);
        for (const attempt of [
          () => tasks.getTask(task.taskId),
          () => tasks.getTaskResult(task.taskId, CallToolResultSchema),
          () => tasks.cancelTask(task.taskId),
        ]) {
          const refused = await rejectionOf(attempt());
          expect({ code: refused.code, message: refused.message }).toEqual({
            code: unknown.code,
            message: unknown.message,
          });
        }
      }
    } finally {
      await sameTenant.close();
      await otherTenant.close();
    }
    const owner = await follower.client.experimental.tasks.getTaskResult(
      task.taskId,
      CallToolResultSchema,
    );
    expect(owner.content).toEqual([{ type: 'text', text: `Computed ${text} after 0 s` }]);
  });
});

// ---------------------------------------------------------------------------------------
// SDK v2, 2026-07-28 tasks extension

describe.each(PLACEMENTS)('SDK v2 (2026-07-28 tasks extension), $title', (placement) => {
  let actor: string;
  let secret: string;
  let creator: V2TaskClient;
  let follower: V2TaskClient;
  const slug = () => tenants[placement.tenant].slug;

  beforeAll(async () => {
    ({ secret, actor } = await newKey(placement.tenant, 'v2-owner'));
    creator = await connectV2(endpoint(front, slug()), secret);
    follower =
      placement.follow === 'same' ? creator : await connectV2(endpoint(back, slug()), secret);
  });

  afterAll(async () => {
    await creator?.close();
    await follower?.close();
  });

  /**
   * tools/call through the SDK: it rejects the task handle it cannot consume, so the handle is
   * read from the answer it received.
   */
  async function createTask(name: string, args: Json): Promise<Json> {
    const sent = creator.wire.answers.length;
    const refused = await rejectionOf(creator.client.callTool({ name, arguments: args }));
    expect(refused).toMatchObject({
      code: 'UNSUPPORTED_RESULT_TYPE',
      data: { resultType: 'task', method: 'tools/call' },
    });
    // The call's last answer (a tool asking for input first is answered more than once).
    const answer = await creator.wire.next(
      (a) =>
        a.method === 'tools/call' &&
        a.params.name === name &&
        a.result?.resultType !== 'input_required',
      sent,
    );
    const handle = answer.result!;
    expect(handle).toMatchObject({ resultType: 'task', status: 'working' });
    expect(typeof handle.taskId).toBe('string');
    expect(handle.ttlMs).toBeGreaterThan(0);
    return handle;
  }

  function getTask(taskId: string, client = follower): Promise<DetailedTask> {
    return client.client.request({ method: 'tasks/get', params: { taskId } }, DetailedTaskSchema);
  }

  function settled(taskId: string): Promise<DetailedTask> {
    return untilValue(
      () => getTask(taskId),
      (task) => !['working', 'input_required'].includes(task.status),
      `task ${taskId} ended`,
    );
  }

  it('runs slow_compute as a task: a handle, working, then completed with the result inlined', async () => {
    expect(creator.client.getServerCapabilities()?.extensions).toEqual({
      [TASKS_EXTENSION]: {},
    });
    const text = label('sum');
    const handle = await createTask('slow_compute', { seconds: WORKING_S, label: text });
    expect(await getTask(handle.taskId)).toMatchObject({
      taskId: handle.taskId,
      status: 'working',
    });
    const done = await settled(handle.taskId);
    expect(done).toMatchObject({
      status: 'completed',
      result: { content: [{ type: 'text', text: `Computed ${text} after ${WORKING_S} s` }] },
    });
    if (placement.tenant === 'queued') {
      expect(await jobLabelled(text, ['completed'])).toBeDefined();
    }
  });

  it('completes failing_job’s task with the isError result', async () => {
    const handle = await createTask('failing_job', {});
    const done = await settled(handle.taskId);
    expect(done).toMatchObject({
      status: 'completed',
      result: {
        isError: true,
        content: [{ type: 'text', text: 'The job failed, as it always does' }],
      },
    });
  });

  it('fails protocol_error_job’s task with the tool’s JSON-RPC error', async () => {
    const handle = await createTask('protocol_error_job', {});
    const done = await settled(handle.taskId);
    expect(done.status).toBe('failed');
    expect(done.error).toMatchObject({
      code: -32603,
      message: 'The job broke down (a protocol-level failure)',
    });
    expect(done.result).toBeUndefined();
  });

  it('cancels a running task: acknowledged, the task ends cancelled and the tool is stopped', async () => {
    const text = label('cancel');
    const handle = await createTask('slow_compute', { seconds: FOREVER_S, label: text });
    await untilRunning(placement.tenant, text);
    const ack = await follower.client.request(
      { method: 'tasks/cancel', params: { taskId: handle.taskId } },
      AckSchema,
    );
    expectAck(ack);
    expect((await getTask(handle.taskId, creator)).status).toBe('cancelled');
    await expectToolStopped(placement.tenant, actor, text);
    // Idempotent: cancelling a terminal task is acknowledged the same way.
    await follower.client.request(
      { method: 'tasks/cancel', params: { taskId: handle.taskId } },
      AckSchema,
    );
    expect((await getTask(handle.taskId)).status).toBe('cancelled');
  });

  /** Answers every outstanding input request of the task with the client's answers. */
  async function answerInputs(task: DetailedTask): Promise<void> {
    const inputResponses = Object.fromEntries(
      Object.entries(task.inputRequests ?? {}).map(([key, request]) => {
        expect(request.method).toBe('elicitation/create');
        return [key, follower.elicitations.respond(request.params)];
      }),
    );
    const ack = await follower.client.request(
      { method: 'tasks/update', params: { taskId: task.taskId, inputResponses } },
      AckSchema,
    );
    expectAck(ack);
  }

  it('asks for confirm_delete’s input on tasks/get and resumes on tasks/update', async () => {
    const file = `${label('report')}.txt`;
    const handle = await createTask('confirm_delete', { filename: file });
    const asking = await untilValue(
      () => getTask(handle.taskId),
      (task) => task.status === 'input_required',
      'the task asks for input',
    );
    expect(asking.inputRequests).toEqual({
      confirm: {
        method: 'elicitation/create',
        params: {
          message: `Delete ${file}? This cannot be undone.`,
          requestedSchema: {
            type: 'object',
            properties: { confirm: { type: 'boolean' } },
            required: ['confirm'],
          },
        },
      },
    });
    await answerInputs(asking);
    const done = await settled(handle.taskId);
    expect(done).toMatchObject({
      status: 'completed',
      result: { content: [{ type: 'text', text: `Deleted ${file}` }] },
    });
    expect(done.inputRequests).toBeUndefined();
    await expectInputRuns(placement.tenant, file);
  });

  it('asks multi_input’s two questions together and resumes once both are answered', async () => {
    follower.elicitations.texts = { 'First answer?': 'Ada', 'Second answer?': 'Grace' };
    const handle = await createTask('multi_input', {});
    const asking = await untilValue(
      () => getTask(handle.taskId),
      (task) => Object.keys(task.inputRequests ?? {}).length === 2,
      'the task asks both questions',
    );
    expect(asking.status).toBe('input_required');
    expect(
      Object.values(asking.inputRequests ?? {})
        .map((r) => r.params.message)
        .sort(),
    ).toEqual(['First answer?', 'Second answer?']);
    await answerInputs(asking);
    const done = await settled(handle.taskId);
    expect(done).toMatchObject({
      status: 'completed',
      result: { content: [{ type: 'text', text: 'Got Ada and Grace' }] },
    });
  });

  it('gathers test_tool_with_task’s name before its task exists (inline) or on the task (queued)', async () => {
    const asked = creator.elicitations.asked.length;
    const sent = creator.wire.answers.length;
    const handle = await createTask('test_tool_with_task', {});
    const rounds = creator.wire.answers.slice(sent).filter((a) => a.method === 'tools/call');
    if (placement.tenant === 'inline') {
      // On the call itself: an input_required round the SDK fulfils with its elicitation
      // handler, and the retry carrying the answer becomes the task.
      expect(rounds.map((a) => a.result?.resultType)).toEqual(['input_required', 'task']);
      expect(creator.elicitations.asked.slice(asked)).toEqual([
        expect.objectContaining({ message: 'What is your name?' }),
      ]);
      expect(rounds[1].params.inputResponses).toEqual({
        user_name: { action: 'accept', content: { name: 'Ada' } },
      });
    } else {
      // A queued tool cannot gather input before its task exists (docs/queue.md): the question
      // comes once its job runs, on tasks/get, and is answered through tasks/update.
      expect(rounds.map((a) => a.result?.resultType)).toEqual(['task']);
      const asking = await untilValue(
        () => getTask(handle.taskId),
        (task) => task.status === 'input_required',
        'the task asks for the name',
      );
      expect(asking.inputRequests).toEqual({
        user_name: {
          method: 'elicitation/create',
          params: expect.objectContaining({ message: 'What is your name?' }),
        },
      });
      await answerInputs(asking);
    }
    const done = await settled(handle.taskId);
    expect(done).toMatchObject({
      status: 'completed',
      result: { content: [{ type: 'text', text: 'Hello, Ada!' }] },
    });
  });

  it('shows a task to its owner only: another key of the tenant or another tenant is refused', async () => {
    const text = label('private');
    const handle = await createTask('slow_compute', { seconds: FOREVER_S, label: text });
    const node = placement.follow === 'same' ? front : back;
    const sameTenant = await connectV2(
      endpoint(node, slug()),
      (await newKey(placement.tenant, 'v2-stranger')).secret,
    );
    const otherTenant = await connectV2(endpoint(node, tenants.other.slug), otherTenantKey);
    try {
      for (const stranger of [sameTenant, otherTenant]) {
        // Refused exactly as a task that does not exist is.
        const unknown = await rejectionOf(
          stranger.client.request(
            { method: 'tasks/get', params: { taskId: randomUUID() } },
            DetailedTaskSchema,
          ),
        );
        expect(unknown.code).toBe(-32602);
        for (const request of [
          { method: 'tasks/get', params: { taskId: handle.taskId } },
          { method: 'tasks/update', params: { taskId: handle.taskId, inputResponses: {} } },
          { method: 'tasks/cancel', params: { taskId: handle.taskId } },
        ]) {
          const refused = await rejectionOf(stranger.client.request(request, AckSchema));
          expect({ code: refused.code, message: refused.message }).toEqual({
            code: unknown.code,
            message: unknown.message,
          });
        }
      }
    } finally {
      await sameTenant.close();
      await otherTenant.close();
    }
    // The strangers' cancel did nothing: the owner's task still runs, and the owner may end it.
    expect((await getTask(handle.taskId)).status).toBe('working');
    await follower.client.request(
      { method: 'tasks/cancel', params: { taskId: handle.taskId } },
      AckSchema,
    );
    expect((await getTask(handle.taskId)).status).toBe('cancelled');
  });
});

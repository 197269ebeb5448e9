/*
 * The tasks extension (io.modelcontextprotocol/tasks, 2026-07-28) through federation: a
 * federated tools/call that its 2026-07-28 upstream turns into a task becomes a task of the
 * gateway's own (its own id), which follows the upstream task to its end, relays its
 * input_required rounds and its cancellation, and gives its result or error. Two upstreams in
 * their own processes, both 2026-07-28 only: the conformance catalog
 * (libs/testing/fixtures-upstream/conformance-upstream.mjs --era modern: Portico's build,
 * `npm run build` first) and a scripted server (tasks-upstream.mjs) whose /stats shows what
 * reached it. A third, the same catalog as a 2025-11-25 server (--era 2025: initialize,
 * sessions, `task`-augmented calls), is joined by its own describe block. The clients are raw
 * JSON-RPC over fetch: 2026-07-28 requests, and a 2025-11-25 session with `task`-augmented calls.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { TASKS_EXTENSION } from '@portico/mcp-protocol';
import type { TenantEntity } from '@portico/persistence';
import { TenantService } from '@portico/tenancy';
import { RunningGateway, startGateway } from './support/gateway';
import { seedTenant } from './support/tenants';
import { startReadyProcess } from './support/queue';

const ROOT = resolve(__dirname, '..');
const CONFORMANCE = join(ROOT, 'libs/testing/fixtures-upstream/conformance-upstream.mjs');
const SCRIPTED = join(ROOT, 'libs/testing/fixtures-upstream/tasks-upstream.mjs');
const GATEWAY_BUILD = join(ROOT, 'dist/apps/gateway/apps/gateway/src/main.js');
const MODERN = '2026-07-28';
const LEGACY = '2025-11-25';
const ACCEPT = 'application/json, text/event-stream';
const TASK_CAPS = { extensions: { [TASKS_EXTENSION]: {} } };
const TASK_AND_INPUT_CAPS = { ...TASK_CAPS, elicitation: {} };
/** Long enough for the gateway to follow an upstream task polled every second. */
const WAIT_MS = 30_000;
/** What the scripted upstream's `doomed` task fails with (see tasks-upstream.mjs). */
const DOOMED_ERROR = {
  code: -32603,
  message: 'The upstream job ran out of disk',
  data: { disk: 'full' },
};

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- asserted field by field

interface Reply {
  status: number;
  /** The JSON-RPC response (the last message of an SSE answer). */
  body: Json;
}

interface ScriptedStats {
  calls: { name: string; extension: boolean }[];
  tasks: Record<string, { tool: string; status: string }>;
  cancels: string[];
  updates: { taskId: string; inputResponses: Json }[];
}

let gateway: RunningGateway;
let tenant: TenantEntity;
let endpoint: string;
let apiKey: string;
/** The conformance upstream's own MCP endpoint, and the scripted upstream's base URL. */
let conformanceUrl: string;
let scriptedUrl: string;
const upstreams: ChildProcess[] = [];
let nextId = 1;

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

/** One 2026-07-28 request with the headers a conforming client sends. */
async function rpc(
  method: string,
  params: Json,
  options: { url?: string; caps?: Json; anonymous?: boolean } = {},
): Promise<Reply> {
  const name = method === 'tools/call' ? params.name : params.taskId;
  const res = await fetch(options.url ?? endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: ACCEPT,
      'mcp-protocol-version': MODERN,
      'mcp-method': method,
      ...(typeof name === 'string' && { 'mcp-name': name }),
      ...(!options.anonymous && { authorization: `Bearer ${apiKey}` }),
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: nextId++,
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

/** tools/call of a federated tool; its result (a CreateTaskResult or a complete result). */
async function call(name: string, args: Json = {}, caps: Json = TASK_CAPS): Promise<Json> {
  const { body } = await rpc('tools/call', { name, arguments: args }, { caps });
  if (!body.result) {
    throw new Error(`tools/call ${name}: ${JSON.stringify(body)}`);
  }
  return body.result as Json;
}

/** A tools/call that must become a task; the gateway's task id. */
async function startTask(name: string, args: Json = {}, caps: Json = TASK_CAPS): Promise<string> {
  const created = await call(name, args, caps);
  expect(created).toMatchObject({ resultType: 'task', status: 'working' });
  expect(typeof created.taskId).toBe('string');
  return created.taskId as string;
}

/** tasks/get on the gateway until `wanted` holds. */
async function pollTask(
  taskId: string,
  wanted: (task: Json) => boolean,
  caps: Json = TASK_CAPS,
): Promise<Json> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const { body } = await rpc('tasks/get', { taskId }, { caps });
    if (body.result && wanted(body.result)) {
      return body.result;
    }
    if (Date.now() > deadline) {
      throw new Error(`task ${taskId}: ${JSON.stringify(body)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Takes a task through its input rounds: answers each input request key from `answers` as it
 * shows (an upstream may ask for its inputs one by one or together), until the task ends.
 * Returns the terminal task and the keys asked for, in the order answered.
 */
async function answerUntilDone(
  taskId: string,
  answers: Record<string, Json>,
  caps: Json = TASK_AND_INPUT_CAPS,
): Promise<{ task: Json; asked: string[] }> {
  const asked: string[] = [];
  for (;;) {
    const task = await pollTask(
      taskId,
      (t) =>
        t.status !== 'working' &&
        (t.status !== 'input_required' ||
          Object.keys(t.inputRequests ?? {}).some((key) => !asked.includes(key))),
      caps,
    );
    if (task.status !== 'input_required') {
      return { task, asked };
    }
    const fresh = Object.keys(task.inputRequests as Json).filter((key) => !asked.includes(key));
    for (const key of fresh) {
      if (!(key in answers)) {
        throw new Error(`unexpected input request ${key}: ${JSON.stringify(task)}`);
      }
    }
    const ack = await rpc(
      'tasks/update',
      { taskId, inputResponses: Object.fromEntries(fresh.map((key) => [key, answers[key]])) },
      { caps },
    );
    expect(ack.body.result).toMatchObject({ resultType: 'complete' });
    asked.push(...fresh);
  }
}

async function scriptedStats(): Promise<ScriptedStats> {
  const res = await fetch(`${scriptedUrl}/stats`);
  return (await res.json()) as ScriptedStats;
}

/** The scripted upstream's task ids that `before` did not have. */
async function newUpstreamTasks(before: ScriptedStats): Promise<string[]> {
  const now = await scriptedStats();
  return Object.keys(now.tasks).filter((id) => !(id in before.tasks));
}

async function until(probe: () => Promise<boolean> | boolean, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!(await probe())) {
    if (Date.now() > deadline) {
      throw new Error(`${what}: not within ${WAIT_MS} ms`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** An upstream fixture process; resolves with its port once it printed `READY <port>`. */
async function startUpstream(script: string, args: string[]): Promise<number> {
  const { child, port } = await startReadyProcess(script, args, 60_000);
  upstreams.push(child);
  return port;
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
  gateway = await startGateway({
    LOG_LEVEL: process.env.E2E_LOG ?? 'silent',
    SHUTDOWN_GRACE_MS: '0',
  });
  const seeded = await seedTenant(gateway.app, { slug: 'fedtasks', fixtures: [] });
  tenant = seeded.tenant;
  apiKey = seeded.apiKey;
  endpoint = `${gateway.mcpUrl}/fedtasks`;
  const tenants = gateway.app.get(TenantService);
  for (const [name, target] of [
    ['cf', conformanceUrl],
    ['sc', `${scriptedUrl}/mcp`],
  ]) {
    await tenants.backends(seeded.tenant.id).insert({
      name,
      kind: 'mcp-http',
      target,
      settings: { internal: true },
      credentialsSealed: null,
    });
  }
  await tenants.changed(seeded.tenant);
  // The catalog is built on first use: wait until both upstreams are in it.
  for (const tool of ['cf__test_simple_text', 'sc__plain']) {
    await until(async () => {
      const { body } = await rpc('tools/call', { name: tool, arguments: {} }, { caps: {} });
      return body.result !== undefined;
    }, `${tool} in the catalog`);
  }
}, 120_000);

afterAll(async () => {
  await gateway?.close();
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

describe('a 2026-07-28 client that declared the extension', () => {
  it("answers a task tool with the gateway's own task and inlines the upstream's result", async () => {
    const taskId = await startTask('cf__slow_compute', { seconds: 1.5, label: 'federated' });
    const working = await rpc('tasks/get', { taskId });
    expect(working.body.result).toMatchObject({
      resultType: 'complete',
      taskId,
      status: 'working',
    });
    const done = await pollTask(taskId, (t) => t.status !== 'working');
    expect(done).toMatchObject({
      taskId,
      status: 'completed',
      result: {
        resultType: 'complete',
        content: [{ type: 'text', text: 'Computed federated after 1.5 s' }],
      },
    });
    // The upstream never heard of this id: the task is the gateway's, not a relayed handle.
    const upstream = await rpc('tasks/get', { taskId }, { url: conformanceUrl, anonymous: true });
    expect(upstream.body.result).toBeUndefined();
    expect(upstream.body.error.code).toBe(-32602);
  }, 60_000);

  it('relays an upstream elicitation as input_required and resumes on tasks/update', async () => {
    const taskId = await startTask(
      'cf__confirm_delete',
      { filename: 'report.txt' },
      TASK_AND_INPUT_CAPS,
    );
    const asking = await pollTask(taskId, (t) => t.status !== 'working', TASK_AND_INPUT_CAPS);
    expect(asking.status).toBe('input_required');
    expect(asking.inputRequests).toEqual({
      confirm: {
        method: 'elicitation/create',
        params: expect.objectContaining({ message: 'Delete report.txt? This cannot be undone.' }),
      },
    });
    const { task } = await answerUntilDone(taskId, {
      confirm: { action: 'accept', content: { confirm: true } },
    });
    expect(task).toMatchObject({
      status: 'completed',
      result: { content: [{ type: 'text', text: 'Deleted report.txt' }] },
    });
  }, 60_000);

  it('relays inputs asked for together under their upstream keys', async () => {
    const taskId = await startTask('cf__multi_input', {}, TASK_AND_INPUT_CAPS);
    const { task, asked } = await answerUntilDone(taskId, {
      first_name: { action: 'accept', content: { name: 'Ada' } },
      second_name: { action: 'accept', content: { name: 'Grace' } },
    });
    expect([...asked].sort()).toEqual(['first_name', 'second_name']);
    expect(task).toMatchObject({
      status: 'completed',
      result: { content: [{ type: 'text', text: 'Got Ada and Grace' }] },
    });
  }, 60_000);

  it('sends the answers upstream with tasks/update, under the keys the upstream asked', async () => {
    const before = await scriptedStats();
    const taskId = await startTask('sc__ask', {}, TASK_AND_INPUT_CAPS);
    const asking = await pollTask(taskId, (t) => t.status !== 'working', TASK_AND_INPUT_CAPS);
    expect(asking).toMatchObject({
      status: 'input_required',
      inputRequests: {
        approval: {
          method: 'elicitation/create',
          params: expect.objectContaining({ message: 'Approve the upstream job?' }),
        },
      },
    });
    const { task } = await answerUntilDone(taskId, {
      approval: { action: 'accept', content: { ok: true } },
    });
    expect(task).toMatchObject({
      status: 'completed',
      result: { content: [{ type: 'text', text: 'approved=true' }] },
    });
    const [upstreamId] = await newUpstreamTasks(before);
    expect(upstreamId).toBeDefined();
    expect(upstreamId).not.toBe(taskId);
    const updates = (await scriptedStats()).updates.filter((u) => u.taskId === upstreamId);
    expect(updates).toEqual([
      {
        taskId: upstreamId,
        inputResponses: { approval: { action: 'accept', content: { ok: true } } },
      },
    ]);
  }, 60_000);

  it('cancels the upstream task when the gateway task is cancelled', async () => {
    const before = await scriptedStats();
    const taskId = await startTask('sc__hold');
    // The upstream's statusMessage shows on the gateway's task once the gateway followed it.
    const followed = await pollTask(taskId, (t) => t.statusMessage === 'Holding until cancelled');
    expect(followed.status).toBe('working');
    const [upstreamId] = await newUpstreamTasks(before);
    expect(upstreamId).toBeDefined();
    expect(upstreamId).not.toBe(taskId);
    expect((await scriptedStats()).calls.at(-1)).toEqual({ name: 'hold', extension: true });

    const ack = await rpc('tasks/cancel', { taskId });
    expect(ack.body.result).toMatchObject({ resultType: 'complete' });
    expect((await pollTask(taskId, () => true)).status).toBe('cancelled');
    await until(
      async () => (await scriptedStats()).cancels.includes(upstreamId),
      'tasks/cancel upstream',
    );
    expect((await scriptedStats()).tasks[upstreamId].status).toBe('cancelled');
  }, 60_000);

  it("fails the gateway task with the upstream task's error", async () => {
    const taskId = await startTask('sc__doomed');
    const done = await pollTask(taskId, (t) => t.status !== 'working');
    expect(done).toMatchObject({ status: 'failed', error: DOOMED_ERROR });
  }, 60_000);

  it('answers a call the upstream does not make a task synchronously', async () => {
    const simple = await call('cf__test_simple_text');
    expect(simple).toMatchObject({
      resultType: 'complete',
      content: [{ type: 'text', text: 'This is a simple text response for testing.' }],
    });
    expect(simple.taskId).toBeUndefined();
    const plain = await call('sc__plain');
    expect(plain).toMatchObject({
      resultType: 'complete',
      content: [{ type: 'text', text: 'plain answer' }],
    });
    // Forwarded declaring the extension: the upstream decided it was no task.
    expect((await scriptedStats()).calls.at(-1)).toEqual({ name: 'plain', extension: true });
  });
});

describe('a 2026-07-28 client that did not declare the extension', () => {
  it("gets a task-only tool's refusal as a JSON-RPC error, and the gateway goes on", async () => {
    const refused = await rpc(
      'tools/call',
      { name: 'cf__failing_job', arguments: {} },
      { caps: {} },
    );
    // The gateway answers -32021 with HTTP 400 on 2026-07-28 (see streamable-http modernStatus).
    expect(refused.status).toBe(400);
    expect(refused.body.result).toBeUndefined();
    expect(refused.body.error.code).toBe(-32021);
    expect(refused.body.error.data).toEqual({
      requiredCapabilities: { extensions: { [TASKS_EXTENSION]: {} } },
    });
    const again = await rpc(
      'tools/call',
      { name: 'cf__test_simple_text', arguments: {} },
      {
        caps: {},
      },
    );
    expect(again.body.result).toMatchObject({ resultType: 'complete' });
  });

  it('asks the upstream without the extension', async () => {
    const refused = await rpc('tools/call', { name: 'sc__hold', arguments: {} }, { caps: {} });
    expect(refused.body.error).toMatchObject({
      code: -32021,
      data: { requiredCapabilities: { extensions: { [TASKS_EXTENSION]: {} } } },
    });
    expect((await scriptedStats()).calls.at(-1)).toEqual({ name: 'hold', extension: false });
    const plain = await call('sc__plain', {}, {});
    expect(plain).toMatchObject({ resultType: 'complete' });
    expect((await scriptedStats()).calls.at(-1)).toEqual({ name: 'plain', extension: false });
  });

  it('gets a task tool synchronously', async () => {
    const result = await call('cf__slow_compute', { seconds: 0.2, label: 'sync' }, {});
    expect(result).toMatchObject({
      resultType: 'complete',
      content: [{ type: 'text', text: 'Computed sync after 0.2 s' }],
    });
  });
});

describe('a 2025-11-25 client session', () => {
  let session: string;

  async function post(method: string, params: Json): Promise<Json> {
    const res = await fetch(endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: ACCEPT,
        authorization: `Bearer ${apiKey}`,
        'mcp-session-id': session,
        'mcp-protocol-version': LEGACY,
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: nextId++, method, params }),
    });
    return lastMessage(await res.text());
  }

  beforeAll(async () => {
    const init = await fetch(endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: ACCEPT,
        authorization: `Bearer ${apiKey}`,
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 0,
        method: 'initialize',
        params: {
          protocolVersion: LEGACY,
          capabilities: {},
          clientInfo: { name: 'e2e-federation-tasks', version: '1' },
        },
      }),
    });
    session = init.headers.get('mcp-session-id')!;
    expect(lastMessage(await init.text()).result.capabilities.tasks).toMatchObject({
      requests: { tools: { call: {} } },
    });
    await fetch(endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: ACCEPT,
        authorization: `Bearer ${apiKey}`,
        'mcp-session-id': session,
        'mcp-protocol-version': LEGACY,
      },
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    });
  });

  afterAll(async () => {
    if (session) {
      await fetch(endpoint, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${apiKey}`, 'mcp-session-id': session },
      });
    }
  });

  it("lists the task-capable upstream's tools as supporting tasks", async () => {
    const { result } = await post('tools/list', {});
    const tools = new Map<string, Json>(
      (result.tools as Json[]).map((tool) => [tool.name as string, tool]),
    );
    expect(tools.get('cf__slow_compute')?.execution).toEqual({ taskSupport: 'optional' });
    expect(tools.get('sc__hold')?.execution).toEqual({ taskSupport: 'optional' });
  });

  it('gets a task handle, then the upstream task’s outcome through tasks/get and tasks/result', async () => {
    const created = await post('tools/call', {
      name: 'cf__slow_compute',
      arguments: { seconds: 1, label: 'legacy' },
      task: { ttl: 60_000 },
    });
    expect(created.result.task).toMatchObject({ status: 'working', ttl: 60_000 });
    const taskId = created.result.task.taskId as string;
    const got = await post('tasks/get', { taskId });
    expect(got.result).toMatchObject({ taskId, status: 'working' });
    const outcome = await post('tasks/result', { taskId });
    expect(outcome.result).toMatchObject({
      content: [{ type: 'text', text: 'Computed legacy after 1 s' }],
      _meta: { 'io.modelcontextprotocol/related-task': { taskId } },
    });
    expect((await post('tasks/get', { taskId })).result).toMatchObject({
      taskId,
      status: 'completed',
    });
  }, 60_000);
});

describe('a 2026-07-28 client, through a 2025-11-25 upstream with tasks', () => {
  /** The backend name of the conformance catalog served as a 2025-11-25 server. */
  const PREFIX = 'lg';

  beforeAll(async () => {
    const port = await startUpstream(CONFORMANCE, ['--transport', 'http', '--era', '2025']);
    const tenants = gateway.app.get(TenantService);
    await tenants.backends(tenant.id).insert({
      name: PREFIX,
      kind: 'mcp-http',
      target: `http://127.0.0.1:${port}/mcp`,
      settings: { internal: true },
      credentialsSealed: null,
    });
    await tenants.changed(tenant);
    await until(async () => {
      const { body } = await rpc(
        'tools/call',
        { name: `${PREFIX}__test_simple_text`, arguments: {} },
        { caps: {} },
      );
      return body.result !== undefined;
    }, `${PREFIX}__test_simple_text in the catalog`);
  }, 120_000);

  it('asks the question the upstream task asks first on the call, then answers with a task', async () => {
    const name = `${PREFIX}__test_tool_with_task`;
    const first = await rpc('tools/call', { name, arguments: {} }, { caps: TASK_AND_INPUT_CAPS });
    expect(first.body.error).toBeUndefined();
    expect(first.body.result).toMatchObject({
      resultType: 'input_required',
      requestState: expect.any(String),
      inputRequests: {
        user_name: {
          method: 'elicitation/create',
          params: expect.objectContaining({ message: 'What is your name?' }),
        },
      },
    });
    expect(first.body.result.taskId).toBeUndefined();
    expect(Object.keys(first.body.result.inputRequests as Json)).toEqual(['user_name']);

    const retried = await rpc(
      'tools/call',
      {
        name,
        arguments: {},
        inputResponses: { user_name: { action: 'accept', content: { name: 'Alice' } } },
        requestState: first.body.result.requestState,
      },
      { caps: TASK_AND_INPUT_CAPS },
    );
    expect(retried.body.error).toBeUndefined();
    expect(retried.body.result).toMatchObject({ resultType: 'task', status: 'working' });
    expect(retried.body.result.requestState).toBeUndefined();
    expect(retried.body.result.inputRequests).toBeUndefined();
    const taskId = retried.body.result.taskId as string;
    expect(typeof taskId).toBe('string');

    const done = await pollTask(
      taskId,
      (t) => !['working', 'input_required'].includes(t.status as string),
      TASK_AND_INPUT_CAPS,
    );
    expect(done).toMatchObject({
      taskId,
      status: 'completed',
      result: { resultType: 'complete', content: [{ type: 'text' }] },
    });
    expect(done.result.content[0].text).toContain('Alice');
  }, 60_000);

  it('answers a task-only tool that asks nothing with a task at once, ending in its tool error', async () => {
    const taskId = await startTask(`${PREFIX}__failing_job`, {}, TASK_AND_INPUT_CAPS);
    const done = await pollTask(taskId, (t) => t.status !== 'working', TASK_AND_INPUT_CAPS);
    // 2026-07-28 counts a tool error as a completed task, its result inlined.
    expect(done).toMatchObject({
      taskId,
      status: 'completed',
      result: {
        isError: true,
        content: [{ type: 'text', text: 'The job failed, as it always does' }],
      },
    });
  }, 60_000);

  it("wraps an optional task tool's plain upstream call in the gateway's own task", async () => {
    const taskId = await startTask(`${PREFIX}__slow_compute`, { seconds: 1, label: 'era2025' });
    const done = await pollTask(taskId, (t) => t.status !== 'working');
    expect(done).toMatchObject({
      taskId,
      status: 'completed',
      result: {
        resultType: 'complete',
        content: [{ type: 'text', text: 'Computed era2025 after 1 s' }],
      },
    });
  }, 60_000);

  it('cancels a running task', async () => {
    const taskId = await startTask(`${PREFIX}__slow_compute`, { seconds: 600, label: 'forever' });
    expect((await rpc('tasks/get', { taskId })).body.result).toMatchObject({
      taskId,
      status: 'working',
    });
    const ack = await rpc('tasks/cancel', { taskId });
    expect(ack.body.error).toBeUndefined();
    expect(ack.body.result).toMatchObject({ resultType: 'complete' });
    const cancelled = await pollTask(taskId, (t) => t.status !== 'working');
    expect(cancelled.status).toBe('cancelled');
  }, 60_000);
});

import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { Queue } from 'bullmq';
import Redis from 'ioredis';
import { TOOL_CALL_QUEUE } from '@portico/queue';
import { TenantService } from '@portico/tenancy';
import { testDatabaseEnv } from '@portico/testing';
import { RunningGateway, startGateway } from './support/gateway';
import { postToolCall, rpcMessages } from './support/queue';
import { seedTenant } from './support/tenants';

const SIMPLE_TEXT = 'This is a simple text response for testing.';
const REDIS = 'redis://127.0.0.1:6379';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- asserted field by field

describe('tool calls through the BullMQ queue', () => {
  const prefix = `portico-test-${randomBytes(4).toString('hex')}:`;
  let front: RunningGateway;
  let worker: RunningGateway;
  let cleanup: () => Promise<void>;
  let apiKey: string;
  let queue: Queue;

  beforeAll(async () => {
    const db = await testDatabaseEnv('postgres');
    cleanup = db.cleanup;
    const env = { ...db.env, REDIS_URL: REDIS, REDIS_KEY_PREFIX: prefix };
    // The node that takes the request does not consume the queue: another node runs the job.
    front = await startGateway({ ...env, WORKER_EMBEDDED: 'false' });
    worker = await startGateway({ ...env, WORKER_EMBEDDED: 'true' });
    const seeded = await seedTenant(front.app, { slug: 'queued' });
    apiKey = seeded.apiKey;
    const tenants = front.app.get(TenantService);
    const [backend] = await tenants.backends(seeded.tenant.id).find();
    await tenants.backends(seeded.tenant.id).update(backend.id, {
      settings: { executor: 'queued', timeoutMs: 2000 },
    });
    await tenants.changed(seeded.tenant);
    queue = new Queue(TOOL_CALL_QUEUE, {
      // BullMQ leaves a connection it was given open: pass options, it closes its own.
      connection: { host: '127.0.0.1', port: 6379, maxRetriesPerRequest: null },
      prefix: `${prefix}bull`,
    });
  });

  afterAll(async () => {
    await front?.close();
    await worker?.close();
    await queue?.obliterate({ force: true }).catch(() => undefined);
    await queue?.close();
    const redis = new Redis(REDIS);
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) {
      await redis.del(...keys);
    }
    await redis.quit();
    await cleanup?.();
  });

  it('returns the same result as an inline call, run by another node', async () => {
    const before = (await queue.getJobCounts('completed')).completed ?? 0;
    const reply = await postToolCall(front, 'queued', apiKey, 'test_simple_text');
    expect(reply.status).toBe(200);
    const [message] = rpcMessages(reply.text);
    expect(message.result.content).toEqual([
      { type: 'text', text: 'This is a simple text response for testing.' },
    ]);
    expect((await queue.getJobCounts('completed')).completed).toBe(before + 1);
  });

  it('asks the client for what a queued tool needs (input_required), and finishes on the retry', async () => {
    const completed = async () => (await queue.getJobCounts('completed')).completed ?? 0;
    const before = await completed();
    const capabilities = { elicitation: { form: {} } };
    const tool = 'test_input_required_result_elicitation';
    const first = rpcMessages(
      (await postToolCall(front, 'queued', apiKey, tool, {}, { capabilities })).text,
    )[0];
    expect(first.result).toMatchObject({
      resultType: 'input_required',
      inputRequests: { user_name: { method: 'elicitation/create' } },
    });
    expect(typeof first.result.requestState).toBe('string');
    // The run that asked ended as a job. The retry runs the tool without answers first (the
    // worker cannot see the client's), its question is answered from the retry's
    // inputResponses at the gateway, and a third run gets the answer.
    const retry = rpcMessages(
      (
        await postToolCall(
          front,
          'queued',
          apiKey,
          tool,
          {},
          {
            capabilities,
            params: {
              requestState: first.result.requestState,
              inputResponses: {
                user_name: { action: 'accept', content: { name: 'Ada' } },
              },
            },
          },
        )
      ).text,
    )[0];
    expect(retry.result.content).toEqual([{ type: 'text', text: 'Hello, Ada!' }]);
    expect(await completed()).toBe(before + 3);
  });

  it('answers a repeated delivery of a finished call (same session, same request id) from its job, without running it again', async () => {
    const post = (body: Json, session?: string) =>
      fetch(`${front.mcpUrl}/queued`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${apiKey}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          ...(session && { 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' }),
        },
        body: JSON.stringify(body),
      });
    const opened = await post({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: '2025-11-25',
        capabilities: {},
        clientInfo: { name: 'e2e-repeat', version: '1' },
      },
    });
    const session = opened.headers.get('mcp-session-id')!;
    expect(session).toBeTruthy();
    await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, session);
    const completed = async () => (await queue.getJobCounts('completed')).completed ?? 0;
    const before = await completed();
    const request = {
      jsonrpc: '2.0',
      id: 7,
      method: 'tools/call',
      params: { name: 'test_simple_text', arguments: {} },
    };
    const first = rpcMessages(await (await post(request, session)).text());
    const again = rpcMessages(await (await post(request, session)).text());
    expect(first.at(-1)?.result.content[0].text).toBe(SIMPLE_TEXT);
    expect(again.at(-1)?.result).toEqual(first.at(-1)?.result);
    // One job: the second delivery joined the first's (the job id derives from the call).
    expect(await completed()).toBe(before + 1);
  });

  it('relays the worker’s progress notifications to the caller', async () => {
    const reply = await postToolCall(
      front,
      'queued',
      apiKey,
      'test_tool_with_progress',
      {},
      {
        progressToken: 'tok-1',
      },
    );
    const all = rpcMessages(reply.text);
    const progress = all.filter((m) => m.method === 'notifications/progress');
    expect(progress.length).toBeGreaterThanOrEqual(2);
    expect(progress.map((m) => m.params.progressToken)).toEqual(progress.map(() => 'tok-1'));
    expect(all.at(-1)?.result).toBeDefined();
  });

  it('fails a call that cannot finish before its deadline, clearly and in time', async () => {
    const seeded = await seedTenant(front.app, { slug: 'hurried' });
    const tenants = front.app.get(TenantService);
    const [backend] = await tenants.backends(seeded.tenant.id).find();
    // The progress tool pauses about 100 ms; the deadline is half that.
    await tenants.backends(seeded.tenant.id).update(backend.id, {
      settings: { executor: 'queued', timeoutMs: 50 },
    });
    await tenants.changed(seeded.tenant);
    const started = Date.now();
    const reply = await postToolCall(front, 'hurried', seeded.apiKey, 'test_tool_with_progress');
    const last = rpcMessages(reply.text).at(-1)!;
    expect(last.error?.message ?? '').toMatch(/deadline/i);
    expect(Date.now() - started).toBeLessThan(2000);
    const failed = await queue.getJobs(['failed']);
    await new Promise((r) => setTimeout(r, 300));
    expect(
      (await queue.getJobs(['failed'])).some((job) => job.data.tool === 'test_tool_with_progress'),
    ).toBe(true);
    expect(failed).toBeDefined();
  });

  it('cancels the running job on the worker when the client goes away', async () => {
    const controller = new AbortController();
    const pending = postToolCall(
      front,
      'queued',
      apiKey,
      'test_reconnection',
      {},
      {
        signal: controller.signal,
      },
    ).catch(() => undefined);
    // Wait until a worker holds the job, then hang up.
    const deadline = Date.now() + 2000;
    while ((await queue.getJobs(['active'])).length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    controller.abort();
    await pending;
    let failed: string | undefined;
    while (!failed && Date.now() < deadline + 2000) {
      const jobs = await queue.getJobs(['failed']);
      failed = jobs.find((job) => job.data.tool === 'test_reconnection')?.failedReason;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(failed).toMatch(/Cancelled/);
  });

  it('turns a tool error into the same JSON-RPC error or isError result as inline', async () => {
    const reply = await postToolCall(front, 'queued', apiKey, 'test_error_handling');
    const [message] = rpcMessages(reply.text);
    expect(message.result?.isError ?? message.error).toBeTruthy();
  });
});

const WORKER_MAIN = resolve(__dirname, '../dist/apps/worker/apps/worker/src/main.js');

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

describe('a separate worker process (portico worker)', () => {
  const prefix = `portico-test-${randomBytes(4).toString('hex')}:`;
  let gateway: RunningGateway;
  let worker: ChildProcess;
  let workerPort: number;
  let cleanup: () => Promise<void>;
  let apiKey: string;

  beforeAll(async () => {
    const db = await testDatabaseEnv('postgres');
    cleanup = db.cleanup;
    const env = { ...db.env, REDIS_URL: REDIS, REDIS_KEY_PREFIX: prefix };
    gateway = await startGateway({ ...env, WORKER_EMBEDDED: 'false' });
    const seeded = await seedTenant(gateway.app, { slug: 'remote' });
    apiKey = seeded.apiKey;
    const tenants = gateway.app.get(TenantService);
    const [backend] = await tenants.backends(seeded.tenant.id).find();
    await tenants.backends(seeded.tenant.id).update(backend.id, {
      settings: { executor: 'queued', timeoutMs: 5000 },
    });
    await tenants.changed(seeded.tenant);
    workerPort = await freePort();
    worker = spawn(process.execPath, [WORKER_MAIN], {
      env: {
        PATH: process.env.PATH ?? '',
        ...env,
        WORKER_PORT: String(workerPort),
        LOG_LEVEL: 'warn',
        MASTER_KEYS: gateway.config.security.masterKeys
          .map((k) => `${k.id}:${k.key.toString('base64')}`)
          .join(','),
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const deadline = Date.now() + 20_000;
    for (;;) {
      const ready = await fetch(`http://127.0.0.1:${workerPort}/health/ready`).catch(
        () => undefined,
      );
      if (ready?.status === 200) {
        break;
      }
      if (Date.now() > deadline || worker.exitCode !== null) {
        throw new Error('the worker process did not become ready');
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  afterAll(async () => {
    if (worker && worker.exitCode === null) {
      worker.kill('SIGKILL');
      await once(worker, 'exit');
    }
    await gateway?.close();
    const redis = new Redis(REDIS);
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) {
      await redis.del(...keys);
    }
    await redis.quit();
    await cleanup?.();
  });

  it('runs the queued calls the gateway accepts, and reports its health', async () => {
    const reply = await postToolCall(gateway, 'remote', apiKey, 'test_simple_text');
    expect(rpcMessages(reply.text)[0].result.content[0].text).toBe(
      'This is a simple text response for testing.',
    );
    const live = await fetch(`http://127.0.0.1:${workerPort}/health/live`);
    expect(live.status).toBe(200);
  });

  it('finishes a running job on SIGTERM before it exits', async () => {
    const queue = new Queue(TOOL_CALL_QUEUE, {
      // BullMQ leaves a connection it was given open: pass options, it closes its own.
      connection: { host: '127.0.0.1', port: 6379, maxRetriesPerRequest: null },
      prefix: `${prefix}bull`,
    });
    const pending = postToolCall(gateway, 'remote', apiKey, 'test_reconnection');
    // Signal only once the worker holds the job.
    const deadline = Date.now() + 3000;
    while ((await queue.getJobs(['active'])).length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await queue.close();
    worker.kill('SIGTERM');
    const reply = await pending;
    expect(rpcMessages(reply.text).at(-1)?.result?.content?.[0]?.text).toBe(
      'Reconnection test completed',
    );
    const [code] = (await once(worker, 'exit')) as [number];
    expect(code).toBe(0);
  });
});

describe('a worker killed mid-job', () => {
  const prefix = `portico-test-${randomBytes(4).toString('hex')}:`;
  let gateway: RunningGateway;
  let cleanup: () => Promise<void>;
  let env: Record<string, string>;
  let apiKey: string;
  const workers: ChildProcess[] = [];

  const startWorker = async (): Promise<ChildProcess> => {
    const port = await freePort();
    const child = spawn(process.execPath, [WORKER_MAIN], {
      env: {
        PATH: process.env.PATH ?? '',
        ...env,
        WORKER_PORT: String(port),
        WORKER_LOCK_MS: '1000',
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    workers.push(child);
    const deadline = Date.now() + 20_000;
    while (
      (await fetch(`http://127.0.0.1:${port}/health/ready`).catch(() => undefined))?.status !== 200
    ) {
      if (Date.now() > deadline || child.exitCode !== null) {
        throw new Error('the worker process did not become ready');
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    return child;
  };

  beforeAll(async () => {
    const db = await testDatabaseEnv('postgres');
    cleanup = db.cleanup;
    env = { ...db.env, REDIS_URL: REDIS, REDIS_KEY_PREFIX: prefix };
    gateway = await startGateway({ ...env, WORKER_EMBEDDED: 'false' });
    env.MASTER_KEYS = gateway.config.security.masterKeys
      .map((k) => `${k.id}:${k.key.toString('base64')}`)
      .join(',');
    const seeded = await seedTenant(gateway.app, { slug: 'crash' });
    apiKey = seeded.apiKey;
    const tenants = gateway.app.get(TenantService);
    const [backend] = await tenants.backends(seeded.tenant.id).find();
    await tenants.backends(seeded.tenant.id).update(backend.id, {
      settings: { executor: 'queued', timeoutMs: 15_000 },
    });
    await tenants.changed(seeded.tenant);
  });

  afterAll(async () => {
    for (const child of workers) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await once(child, 'exit');
      }
    }
    await gateway?.close();
    const redis = new Redis(REDIS);
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) {
      await redis.del(...keys);
    }
    await redis.quit();
    await cleanup?.();
  });

  it('does not run a non-idempotent tool twice: the caller gets a clear error, not silence', async () => {
    const first = await startWorker();
    const queue = new Queue(TOOL_CALL_QUEUE, {
      // BullMQ leaves a connection it was given open: pass options, it closes its own.
      connection: { host: '127.0.0.1', port: 6379, maxRetriesPerRequest: null },
      prefix: `${prefix}bull`,
    });
    try {
      const pending = postToolCall(gateway, 'crash', apiKey, 'test_reconnection');
      const deadline = Date.now() + 3000;
      while ((await queue.getJobs(['active'])).length === 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10));
      }
      first.kill('SIGKILL');
      await once(first, 'exit');
      await startWorker();
      const started = Date.now();
      const reply = await pending;
      const last = rpcMessages(reply.text).at(-1)!;
      expect(last.result).toBeUndefined();
      expect(last.error.message).toMatch(/not idempotent, so it was not run again/);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await queue.close();
    }
  });
});

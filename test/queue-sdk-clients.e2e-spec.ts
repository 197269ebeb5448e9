/*
 * Queued tool calls driven by the official SDK clients: SDK v1 on a 2025-11-25 session, SDK v2
 * pinned to 2026-07-28 and SDK v2 in legacy mode (2025-11-25 session). The gateway runs
 * in-process without its embedded worker; a `portico worker` process from the build runs the
 * jobs (one at a time, so a second call waits in the queue), against the conformance fixture
 * and test/support/queue-upstream.mjs (its own process, which records what reached it). Real
 * Redis under a key prefix of this run, real PostgreSQL in a schema of this run.
 *
 * For each client: the queued result equals the inline one (a second tenant, same backends,
 * inline), progress and log messages sent on the worker reach the client before the result,
 * aborting a running call aborts the tool on the worker and fails its job as cancelled,
 * aborting a waiting call removes its job before it runs, and deadlines (the tool's
 * `timeoutMs`, the client's own request timeout) end the call with a clear error.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Job, JobType, Queue } from 'bullmq';
import type { LogLevel } from '@portico/mcp-protocol';
import { TOOL_CALL_QUEUE, type ToolJobData } from '@portico/queue';
import { TenantService } from '@portico/tenancy';
import { testDatabaseEnv } from '@portico/testing';
import { firstText } from './support/e2e-catalog';
import { RunningGateway, startGateway } from './support/gateway';
import {
  deleteRedisKeys,
  type QueueUpstream,
  REDIS_URL,
  startQueueUpstream,
  startWorkerProcess,
  stopProcess,
  until,
} from './support/queue';
import {
  ClientEvents,
  connectV1,
  connectV2,
  type FetchLike,
  HttpRecorder,
  later,
  type LogMessage,
  rejectionOf,
} from './support/sdk';
import { isResponse, LEGACY, LOG_LEVEL_KEY, MODERN, WireMessage, WireTap } from './support/stdio';
import { seedTenant } from './support/tenants';

/** Bound for every wait on a condition: generous, a healthy run never waits this long. */
const WAIT_MS = 20_000;
/** How long `hold` runs unless released or aborted: longer than any case here. */
const HOLD_MS = 120_000;
/** The deadline of the `hurried` backend's `hold`, and the clients' own request timeout. */
const SHORT_MS = 3000;
/**
 * Calls of a tool that logs and returns at once, to meet a race between its job finishing and
 * the gateway waiting for it (a few percent of calls meet it).
 */
const RACE_CALLS = 200;
/** Queued calls' deadline on the other backends: never reached here. */
const TIMEOUT_MS = 30_000;

type ToolJob = Job<ToolJobData>;
type JobState = Extract<
  JobType,
  'waiting' | 'prioritized' | 'delayed' | 'active' | 'completed' | 'failed'
>;
const ALL_STATES: JobState[] = [
  'waiting',
  'prioritized',
  'delayed',
  'active',
  'completed',
  'failed',
];

interface Progress {
  progress: number;
  total?: number;
  message?: string;
}

interface Result {
  [key: string]: unknown;
  content?: unknown;
  structuredContent?: unknown;
  isError?: boolean;
}

interface CallOptions {
  onprogress?: (progress: Progress) => void;
  signal?: AbortSignal;
  /** The client's own request timeout (ms). */
  timeout?: number;
  _meta?: Record<string, unknown>;
}

/** One SDK client connected to one tenant endpoint, whichever SDK major it is. */
interface Connection {
  readonly tap: WireTap;
  readonly events: ClientEvents;
  readonly negotiatedVersion: () => string | undefined;
  callTool(name: string, args: Record<string, unknown>, options?: CallOptions): Promise<Result>;
  setLoggingLevel(level: LogLevel): Promise<unknown>;
  close(): Promise<void>;
}

interface ClientKind {
  /** Unique among the kinds: prefixes this kind's `hold` keys. */
  readonly id: string;
  readonly title: string;
  readonly version: string;
  connect(url: string, apiKey: string): Promise<Connection>;
}

/** The SDK's request options without keys left undefined. */
function requestOptions(options: CallOptions): Omit<CallOptions, '_meta'> {
  const { onprogress, signal, timeout } = options;
  return {
    ...(onprogress && { onprogress }),
    ...(signal && { signal }),
    ...(timeout !== undefined && { timeout }),
  };
}

/** A fetch that authenticates every request with the tenant's API key. */
function withApiKey(apiKey: string): FetchLike {
  return (url, init) => {
    const headers = new Headers(init?.headers);
    headers.set('authorization', `Bearer ${apiKey}`);
    return fetch(url, { ...init, headers });
  };
}

/**
 * Waits until a 2025-era client has opened its standalone GET stream: a client closed while
 * that request is still on its way leaves the stream open, and the gateway then cannot close.
 */
async function standaloneStreamOpen(recorder: HttpRecorder): Promise<void> {
  await recorder.waitFor((e) => e.httpMethod === 'GET' && e.status === 200, WAIT_MS);
}

const CLIENTS: ClientKind[] = [
  {
    id: 'v1',
    title: 'SDK v1 client (@modelcontextprotocol/sdk), 2025-11-25 session',
    version: LEGACY,
    connect: async (url, apiKey) => {
      const events = new ClientEvents();
      const tap = new WireTap();
      const recorder = new HttpRecorder(withApiKey(apiKey));
      const { client } = await connectV1(url, { recorder, events, tap });
      await standaloneStreamOpen(recorder);
      return {
        tap,
        events,
        // SDK v1 keeps the negotiated version to itself; the initialize result says it.
        negotiatedVersion: () => {
          const [init] = tap.requests('initialize');
          const answer = tap.received.find((m) => isResponse(m) && m.id === init?.id);
          return answer?.result?.protocolVersion as string | undefined;
        },
        callTool: (name, args, options = {}) =>
          client.callTool(
            { name, arguments: args, ...(options._meta && { _meta: options._meta }) },
            undefined,
            requestOptions(options),
          ),
        setLoggingLevel: (level) => client.setLoggingLevel(level),
        close: () => client.close(),
      };
    },
  },
  ...(['modern', 'legacy'] as const).map((mode): ClientKind => ({
    id: `v2-${mode}`,
    title:
      mode === 'modern'
        ? 'SDK v2 client (@modelcontextprotocol/client), 2026-07-28'
        : 'SDK v2 client (@modelcontextprotocol/client) in legacy mode, 2025-11-25 session',
    version: mode === 'modern' ? MODERN : LEGACY,
    connect: async (url, apiKey) => {
      const events = new ClientEvents();
      const tap = new WireTap();
      const recorder = new HttpRecorder(withApiKey(apiKey));
      const { client } = await connectV2(url, mode, { recorder, events, tap });
      if (mode === 'legacy') {
        await standaloneStreamOpen(recorder);
      }
      return {
        tap,
        events,
        negotiatedVersion: () => client.getNegotiatedProtocolVersion(),
        callTool: (name, args, options = {}) =>
          client.callTool(
            { name, arguments: args, ...(options._meta && { _meta: options._meta }) },
            requestOptions(options),
          ),
        setLoggingLevel: (level) => client.setLoggingLevel(level),
        close: () => client.close(),
      };
    },
  })),
];

/** The last tools/call of `name` the client sent, and what it received before its response. */
function lastCall(
  tap: WireTap,
  name: string,
): { request: WireMessage; response?: WireMessage; before: WireMessage[] } {
  const request = tap.requests('tools/call', name).at(-1);
  if (!request) {
    throw new Error(`no tools/call of ${name} was sent`);
  }
  const start = tap.indexOf(request);
  const end = tap.responseIndex(request.id);
  const before = tap.entries
    .slice(start + 1, end < 0 ? undefined : end)
    .filter((e) => e.dir === 'in')
    .map((e) => e.message);
  return { request, response: end < 0 ? undefined : tap.entries[end].message, before };
}

/** The slug of a tenant allowed one tool call at a time, one per client kind. */
const cappedSlug = (kind: ClientKind): string => `capped-${kind.id}`;

describe('queued tool calls driven by the official SDK clients', () => {
  const prefix = `portico-test-${randomBytes(4).toString('hex')}:`;
  let upstream: QueueUpstream | undefined;
  let gateway: RunningGateway | undefined;
  let worker: ChildProcess | undefined;
  let queue: Queue<ToolJobData> | undefined;
  let cleanup: (() => Promise<void>) | undefined;
  /** API keys by tenant slug. */
  const apiKeys: Record<string, string> = {};
  let inlineTenantId = '';

  const ready = <T>(value: T | undefined): T => {
    if (value === undefined) {
      throw new Error('the suite is not set up');
    }
    return value;
  };

  /** The jobs in `states` whose tools/call carried the argument `key`. */
  const jobsWithKey = async (key: string, states: JobState[]): Promise<ToolJob[]> =>
    (await ready(queue).getJobs(states)).filter((job) => job?.data?.arguments?.key === key);

  /** Waits for the job of `key` to be in one of `states`, and returns it. */
  const jobInState = async (key: string, states: JobState[], what: string): Promise<ToolJob> => {
    let found: ToolJob | undefined;
    await until(
      async () => {
        [found] = await jobsWithKey(key, states);
        return found !== undefined;
      },
      what,
      WAIT_MS,
    );
    return found!;
  };

  /** The queued job that served tools/call `requestId` of `tool`, accepted at `since` or later. */
  const jobOfCall = async (
    tool: string,
    requestId: unknown,
    since: number,
  ): Promise<ToolJob | undefined> =>
    (await ready(queue).getJobs(ALL_STATES)).find(
      (job) =>
        job?.data?.tool === tool && job.data.requestId === requestId && job.timestamp >= since,
    );

  const holdOf = (key: string) => ready(upstream).hold(key);

  beforeAll(async () => {
    upstream = await startQueueUpstream();
    const db = await testDatabaseEnv('postgres');
    cleanup = db.cleanup;
    const env = { ...db.env, REDIS_URL, REDIS_KEY_PREFIX: prefix };
    // This node only accepts calls: the worker process runs every job.
    gateway = await startGateway({ ...env, WORKER_EMBEDDED: 'false' });
    const tenants = gateway.app.get(TenantService);
    /** A tenant with the conformance fixture and the upstream as `up`, run by `executor`. */
    const seed = async (
      slug: string,
      executor: 'queued' | 'inline',
      limits?: { maxConcurrentCalls: number },
    ) => {
      const gw = ready(gateway);
      const seeded = await seedTenant(gw.app, { slug });
      apiKeys[slug] = seeded.apiKey;
      const backends = tenants.backends(seeded.tenant.id);
      const [conformance] = await backends.find();
      await backends.update(conformance.id, { settings: { executor, timeoutMs: TIMEOUT_MS } });
      const upstreamBackend = (name: string, settings: Record<string, unknown>) =>
        backends.insert({
          name,
          kind: 'mcp-http',
          target: ready(upstream).url,
          settings: { internal: true, ...settings },
          credentialsSealed: null,
        });
      await upstreamBackend('up', { executor, timeoutMs: TIMEOUT_MS });
      if (executor === 'queued') {
        // The same upstream, with a deadline far shorter than `hold` runs.
        await upstreamBackend('hurried', { executor, tools: { hold: { timeoutMs: SHORT_MS } } });
      }
      if (limits) {
        await tenants.update(seeded.tenant, { limits });
      }
      await tenants.changed(seeded.tenant);
      return seeded.tenant;
    };
    await seed('queued', 'queued');
    inlineTenantId = (await seed('inline', 'inline')).id;
    for (const kind of CLIENTS) {
      await seed(cappedSlug(kind), 'queued', { maxConcurrentCalls: 1 });
    }
    // One job at a time: a second call waits in the queue while `hold` runs.
    worker = await startWorkerProcess(gateway, { ...env, WORKER_CONCURRENCY: '1' });
    queue = new Queue<ToolJobData>(TOOL_CALL_QUEUE, {
      // BullMQ leaves a connection it was given open: pass options, it closes its own.
      connection: { host: '127.0.0.1', port: 6379, maxRetriesPerRequest: null },
      prefix: `${prefix}bull`,
    });
  }, 90_000);

  afterAll(async () => {
    if (worker) {
      await stopProcess(worker);
    }
    await gateway?.close();
    await queue?.close();
    await deleteRedisKeys(prefix);
    await cleanup?.();
    await upstream?.stop();
  }, 60_000);

  for (const kind of CLIENTS) {
    describe(kind.title, () => {
      let queuedClient: Connection | undefined;
      let inlineClient: Connection | undefined;
      const queued = (): Connection => ready(queuedClient);
      const inline = (): Connection => ready(inlineClient);
      const modern = kind.version === MODERN;

      beforeAll(async () => {
        const mcpUrl = ready(gateway).mcpUrl;
        queuedClient = await kind.connect(`${mcpUrl}/queued`, apiKeys.queued);
        inlineClient = await kind.connect(`${mcpUrl}/inline`, apiKeys.inline);
      });

      afterAll(async () => {
        await queuedClient?.close().catch(() => undefined);
        await inlineClient?.close().catch(() => undefined);
      });

      beforeEach(() => {
        queued().events.clear();
      });

      it(`runs protocol ${kind.version} with the gateway`, () => {
        expect(queued().negotiatedVersion()).toBe(kind.version);
        expect(inline().negotiatedVersion()).toBe(kind.version);
      });

      describe('results', () => {
        it.each<[string, Record<string, unknown>]>([
          ['test_simple_text', {}],
          ['test_multiple_content_types', {}],
          ['test_error_handling', {}],
          ['up__steps', { steps: 2 }],
        ])('%s %j: the queued result equals the inline one', async (tool, args) => {
          const since = Date.now();
          const viaQueue = await queued().callTool(tool, args);
          const { request } = lastCall(queued().tap, tool);
          const job = await jobOfCall(tool, request.id, since);
          // Served by a job the worker completed, not by the gateway itself.
          expect(await job?.getState()).toBe('completed');

          const direct = await inline().callTool(tool, args);
          expect(viaQueue).toEqual(direct);
          expect(viaQueue.content).toBeDefined();
        });

        it('arguments that fail the input schema get the inline answer, and no job is queued', async () => {
          const since = Date.now();
          const args = { steps: 'not a number' };
          const viaQueue = await queued().callTool('up__steps', args);
          expect(viaQueue.isError).toBe(true);
          const { request } = lastCall(queued().tap, 'up__steps');
          expect(await jobOfCall('up__steps', request.id, since)).toBeUndefined();
          expect(viaQueue).toEqual(await inline().callTool('up__steps', args));
        });

        it('the inline tenant never queued a job', async () => {
          const jobs = await ready(queue).getJobs(ALL_STATES);
          expect(jobs.filter((job) => job?.data?.tenantId === inlineTenantId)).toEqual([]);
        });
      });

      describe('progress', () => {
        it.each<[string, Record<string, unknown>, Progress[]]>([
          [
            'up__steps',
            { steps: 3 },
            [1, 2, 3].map((i) => ({ progress: i, total: 3, message: `step ${i}` })),
          ],
          [
            'test_tool_with_progress',
            {},
            [
              { progress: 0, total: 100, message: 'Starting' },
              { progress: 50, total: 100, message: 'Halfway' },
              { progress: 100, total: 100, message: 'Done' },
            ],
          ],
        ])(
          '%s: the progress it reports on the worker reaches onprogress, in order, before the result',
          async (tool, args, expected) => {
            const seen: Progress[] = [];
            const result = await queued().callTool(tool, args, {
              onprogress: ({ progress, total, message }) => seen.push({ progress, total, message }),
            });
            const seenAtResult = [...seen];
            expect(result.isError).toBeFalsy();
            expect(seenAtResult).toEqual(expected);
            // On the wire: every notification ahead of the response, with the call's token.
            const { request, response, before } = lastCall(queued().tap, tool);
            const token = (request.params?._meta as { progressToken?: unknown }).progressToken;
            expect(token).toBeDefined();
            expect(response?.result).toBeDefined();
            expect(
              before.filter((m) => m.method === 'notifications/progress').map((m) => m.params),
            ).toEqual(expected.map((p) => ({ ...p, progressToken: token })));
          },
        );
      });

      describe('log messages', () => {
        const logsBeforeResult = (tool: string): LogMessage[] =>
          lastCall(queued().tap, tool)
            .before.filter((m) => m.method === 'notifications/message')
            .map((m) => m.params as unknown as LogMessage);
        const STARTED_TO_COMPLETED = [
          'Tool execution started',
          'Tool processing data',
          'Tool execution completed',
        ].map((data) => ({ level: 'info', logger: 'conformance', data }));

        /** Calls `tool` asking for log messages from `level` up, the way this era asks. */
        const callLogging = async (tool: string, level: LogLevel): Promise<Result> => {
          if (modern) {
            return queued().callTool(tool, {}, { _meta: { [LOG_LEVEL_KEY]: level } });
          }
          await queued().setLoggingLevel(level);
          return queued().callTool(tool, {});
        };
        const how = modern ? 'logLevel in _meta' : 'logging/setLevel';

        it.each<[LogLevel]>([['debug'], ['info']])(
          `${how} %s: the messages a tool logs on the worker reach the client in order, before the result`,
          async (level) => {
            const result = await callLogging('test_tool_with_logging', level);
            expect(firstText(result)).toBe('Tool with logging executed successfully');
            expect(logsBeforeResult('test_tool_with_logging')).toEqual(STARTED_TO_COMPLETED);
            await queued().events.logs.waitFor(
              (l) => l.data === 'Tool execution completed',
              WAIT_MS,
            );
            expect(queued().events.logs.items).toEqual(STARTED_TO_COMPLETED);
          },
        );

        it(`${how} warning: info messages logged on the worker are filtered out`, async () => {
          const result = await callLogging('test_tool_with_logging', 'warning');
          expect(firstText(result)).toBe('Tool with logging executed successfully');
          expect(logsBeforeResult('test_tool_with_logging')).toEqual([]);
          // A later answer on the same client shows nothing was merely slow.
          await queued().callTool('test_simple_text', {});
          expect(queued().events.logs.items).toEqual([]);
        });

        if (modern) {
          it('a call that names no logLevel receives no log messages', async () => {
            await queued().callTool('test_tool_with_logging', {});
            expect(logsBeforeResult('test_tool_with_logging')).toEqual([]);
            await queued().callTool('test_simple_text', {});
            expect(queued().events.logs.items).toEqual([]);
          });
        }

        // The call waits for its job's completed event, registered before the job is added,
        // not for a poll of the job's state: a poll could answer before the event reader had
        // delivered the job's earlier progress and log events, which were then dropped (a
        // tool that logs and returns at once lost them within a few dozen calls).
        it('a tool that logs and returns at once: its messages arrive before the result on every call', async () => {
          const expected = [
            { level: 'info', logger: 'conformance', data: 'Logging tool: working' },
            {
              level: 'warning',
              logger: 'conformance',
              data: 'Logging tool: nothing is wrong, this is a test',
            },
          ];
          for (let i = 0; i < RACE_CALLS; i++) {
            await callLogging('test_logging_tool', 'info');
            expect(logsBeforeResult('test_logging_tool')).toEqual(expected);
          }
        }, 120_000);
      });

      describe('cancellation', () => {
        it('aborting a running call aborts the tool on the worker; its job fails as cancelled', async () => {
          const key = `${kind.id}-running`;
          const controller = new AbortController();
          const pending = later(
            queued().callTool('up__hold', { key, ms: HOLD_MS }, { signal: controller.signal }),
          );
          await until(async () => (await holdOf(key)).started === 1, 'hold started', WAIT_MS);
          const { request } = lastCall(queued().tap, 'up__hold');
          controller.abort('the user pressed stop');
          await rejectionOf(pending);

          await until(async () => (await holdOf(key)).aborted === 1, 'hold aborted', WAIT_MS);
          const job = await jobInState(key, ['failed'], 'the job failed');
          expect(job.failedReason).toMatch(/Cancelled/);
          expect(await holdOf(key)).toEqual({ started: 1, aborted: 1, finished: 0 });
          expect(await jobsWithKey(key, ['completed', 'active', 'waiting', 'prioritized'])).toEqual(
            [],
          );
          // 2025: a notifications/cancelled for the call; 2026-07-28: its stream closed instead.
          const cancels = queued().tap.sent.filter((m) => m.method === 'notifications/cancelled');
          const cancelled = cancels.map((m) => m.params?.requestId);
          if (modern) {
            expect(cancelled).toEqual([]);
          } else {
            expect(cancelled).toContain(request.id);
          }
          // The client goes on; the cancelled call never got a response.
          const after = await queued().callTool('up__steps', { steps: 1 });
          expect(firstText(after)).toBe('done after 1 steps');
          expect(lastCall(queued().tap, 'up__hold').response).toBeUndefined();
          expect(await jobsWithKey(key, ['completed'])).toEqual([]);
        });

        it('aborting a call still waiting in the queue removes its job: the tool never runs', async () => {
          const blocker = `${kind.id}-blocker`;
          const key = `${kind.id}-waiting`;
          // The worker runs one job at a time: while `blocker` holds it, the next call waits.
          const blocking = later(queued().callTool('up__hold', { key: blocker, ms: HOLD_MS }));
          await until(
            async () => (await holdOf(blocker)).started === 1,
            'blocker started',
            WAIT_MS,
          );
          const controller = new AbortController();
          const pending = later(
            queued().callTool('up__hold', { key, ms: HOLD_MS }, { signal: controller.signal }),
          );
          const waiting = await jobInState(
            key,
            ['waiting', 'prioritized', 'delayed'],
            'the call waits in the queue',
          );
          controller.abort('no longer needed');
          await rejectionOf(pending);
          await until(
            async () => (await ready(queue).getJob(waiting.id!)) === undefined,
            'the waiting job removed',
            WAIT_MS,
          );

          expect(await ready(upstream).release(blocker)).toBe(1);
          expect(firstText(await blocking)).toBe(`finished ${blocker}`);
          // Had the cancelled job stayed queued, the free worker would run it before this one.
          const next = await queued().callTool('up__steps', { steps: 1 });
          expect(firstText(next)).toBe('done after 1 steps');
          expect(await holdOf(key)).toEqual({ started: 0, aborted: 0, finished: 0 });
          expect(await jobsWithKey(key, ALL_STATES)).toEqual([]);
        });

        it('aborting a call waiting in a paused queue removes its job: it does not run on resume', async () => {
          const key = `${kind.id}-paused`;
          await ready(queue).pause();
          try {
            const controller = new AbortController();
            const pending = later(
              queued().callTool('up__hold', { key, ms: HOLD_MS }, { signal: controller.signal }),
            );
            const waiting = await jobInState(
              key,
              ['waiting', 'prioritized', 'delayed'],
              'the call waits in the paused queue',
            );
            controller.abort('no longer needed');
            await rejectionOf(pending);
            await until(
              async () => (await ready(queue).getJob(waiting.id!)) === undefined,
              'the waiting job removed',
              WAIT_MS,
            );
          } finally {
            await ready(queue).resume();
          }
          const next = await queued().callTool('up__steps', { steps: 1 });
          expect(firstText(next)).toBe('done after 1 steps');
          expect(await holdOf(key)).toEqual({ started: 0, aborted: 0, finished: 0 });
          expect(await jobsWithKey(key, ALL_STATES)).toEqual([]);
        });

        // A cancelled job that was still waiting is removed, and its call stops waiting at once
        // (a removed job never finishes): it must not hold the tenant's concurrency slot, a
        // timer and listeners until its deadline.
        it('a call cancelled while waiting in the queue gives its tenant concurrency slot back', async () => {
          const key = `${kind.id}-capped`;
          const capped = await kind.connect(
            `${ready(gateway).mcpUrl}/${cappedSlug(kind)}`,
            apiKeys[cappedSlug(kind)],
          );
          try {
            await ready(queue).pause();
            try {
              const controller = new AbortController();
              const pending = later(
                capped.callTool('up__hold', { key, ms: HOLD_MS }, { signal: controller.signal }),
              );
              const waiting = await jobInState(
                key,
                ['waiting', 'prioritized', 'delayed'],
                'the call waits in the paused queue',
              );
              controller.abort('no longer needed');
              await rejectionOf(pending);
              await until(
                async () => (await ready(queue).getJob(waiting.id!)) === undefined,
                'the waiting job removed',
                WAIT_MS,
              );
            } finally {
              await ready(queue).resume();
            }
            // The tenant may run one call at a time, and the cancelled one is over.
            const next = await capped.callTool('up__steps', { steps: 1 });
            expect(firstText(next)).toBe('done after 1 steps');
          } finally {
            await capped.close().catch(() => undefined);
          }
        });
      });

      describe('deadlines', () => {
        it(`a call that outlives its deadline (timeoutMs ${SHORT_MS}) gets a clear error; the worker stops the tool`, async () => {
          const key = `${kind.id}-deadline`;
          const err = await rejectionOf(queued().callTool('hurried__hold', { key, ms: HOLD_MS }));
          expect(err.code).toBe(-32603);
          expect(err.message).toMatch(/deadline/i);

          await until(async () => (await holdOf(key)).aborted === 1, 'hold aborted', WAIT_MS);
          const job = await jobInState(key, ['failed'], 'the job failed');
          expect(job.failedReason).toMatch(/Deadline exceeded/);
          expect(await holdOf(key)).toEqual({ started: 1, aborted: 1, finished: 0 });
        });

        it(`a call whose client request timeout (${SHORT_MS} ms) is shorter than the tool's run times out; the tool is cancelled on the worker`, async () => {
          const key = `${kind.id}-timeout`;
          const err = await rejectionOf(
            queued().callTool('up__hold', { key, ms: HOLD_MS }, { timeout: SHORT_MS }),
          );
          expect(err.message).toMatch(/timed out/i);

          await until(async () => (await holdOf(key)).aborted === 1, 'hold aborted', WAIT_MS);
          const job = await jobInState(key, ['failed'], 'the job failed');
          expect(job.failedReason).toMatch(/Cancelled/);
          expect(await holdOf(key)).toEqual({ started: 1, aborted: 1, finished: 0 });
        });
      });
    });
  }
});

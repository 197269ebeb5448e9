/*
 * One set of end-to-end cases for the official SDK clients, run over every transport and era
 * the gateway serves them on: Streamable HTTP (test/sdk-v1, test/sdk-v2), legacy HTTP+SSE and
 * WebSocket (test/sdk-transports). A spec describes the client (SDK major, a transport factory)
 * and the protocol version the session runs; the cases adapt to what that era defines:
 *
 * - 2025 era (initialize, a session): server-to-client requests mid-call, logging/setLevel,
 *   resources/subscribe and list_changed pushed on the session;
 * - 2026-07-28 (stateless): input_required round trips, per-request logLevel,
 *   subscriptions/listen.
 *
 * Every connection carries a WireTap, so what went over the wire (error codes, the order of
 * notifications and responses, cancellations) is checked the same way on every transport.
 * Stream resumption (Last-Event-ID) exists only on Streamable HTTP; it stays in those specs.
 */
import {
  ResourceNotFoundError,
  StreamableHTTPClientTransport,
  type Client,
  type Transport,
} from '@modelcontextprotocol/client';
import type { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as V1HttpTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport as V1Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { LogLevel } from '@portico/mcp-protocol';
import {
  BLOB_BASE64,
  BLOB_URI,
  createE2eCatalog,
  E2eCatalog,
  firstText,
  ITEM_TEMPLATE,
  LOGGED_LEVELS,
  OTHER_URI,
  SAMPLING_PROMPT,
  TEXT_URI,
  WATCHED_URI,
} from './e2e-catalog';
import { RunningGateway, startGateway } from './gateway';
import {
  ClientAnswers,
  ClientEvents,
  createV1Client,
  createV2Client,
  dropStreamAfter,
  HttpRecorder,
  Inbox,
  later,
  LIST_CHANGED,
  rejectionOf,
  ROOTS,
  SAMPLED_TEXT,
  SAMPLING_MODEL,
  walkPages,
  within,
} from './sdk';
import { isResponse, LEGACY, LOG_LEVEL_KEY, MODERN, WireMessage, WireTap } from './stdio';

/** Bound for waiting on a probe or a notification: generous, a healthy run never waits long. */
export const SUITE_WAIT_MS = 10_000;

// ---------------------------------------------------------------------------------------
// The gateway every suite of a spec file talks to

export interface SuiteEnv {
  readonly gateway: RunningGateway;
  readonly e2e: E2eCatalog;
}

/**
 * Boots one gateway on the e2e catalog for the enclosing spec file (PAGE_SIZE=2, so every
 * list has several pages). E2E_LOG=debug shows the gateway's own log lines.
 */
export function useSuiteGateway(): SuiteEnv {
  let gateway: RunningGateway | undefined;
  let e2e: E2eCatalog | undefined;
  beforeAll(async () => {
    e2e = createE2eCatalog();
    gateway = await startGateway(
      { PAGE_SIZE: '2', SSE_RETRY_MS: '10', LOG_LEVEL: process.env.E2E_LOG ?? 'silent' },
      { catalog: e2e.catalog },
    );
  });
  afterAll(async () => {
    await gateway?.close();
  });
  const ready = <T>(value: T | undefined): T => {
    if (value === undefined) {
      throw new Error('the suite gateway is not running (used outside a test?)');
    }
    return value;
  };
  return {
    get gateway() {
      return ready(gateway);
    },
    get e2e() {
      return ready(e2e);
    },
  };
}

// ---------------------------------------------------------------------------------------
// Either SDK's client behind the calls the cases make

export type ListMethod =
  'tools/list' | 'resources/list' | 'resources/templates/list' | 'prompts/list';
export type Page = Record<string, unknown> & { nextCursor?: string };

export interface ToolCall {
  name: string;
  arguments?: Record<string, unknown>;
  _meta?: Record<string, unknown>;
}

export interface ProgressUpdate {
  progress: number;
  total?: number;
  message?: string;
}

export interface CallOptions {
  onprogress?: (progress: ProgressUpdate) => void;
  signal?: AbortSignal;
}

export interface ToolResult {
  [key: string]: unknown;
  content?: unknown;
  structuredContent?: unknown;
  isError?: boolean;
}

/** The methods both SDK majors' clients share, with the same parameters and results. */
export interface SharedClientApi {
  getServerVersion(): { name: string } | undefined;
  getServerCapabilities(): object | undefined;
  readResource(params: { uri: string }): Promise<{ contents: unknown[] }>;
  getPrompt(params: {
    name: string;
    arguments?: Record<string, string>;
  }): Promise<{ messages: unknown[] }>;
  complete(params: {
    ref: { type: 'ref/prompt'; name: string } | { type: 'ref/resource'; uri: string };
    argument: { name: string; value: string };
  }): Promise<{ completion: { values: string[]; total?: number; hasMore?: boolean } }>;
  setLoggingLevel(level: LogLevel): Promise<unknown>;
  subscribeResource(params: { uri: string }): Promise<unknown>;
  unsubscribeResource(params: { uri: string }): Promise<unknown>;
  close(): Promise<void>;
}

export type SubscriptionFilter = Parameters<Client['listen']>[0];
export type Subscription = Awaited<ReturnType<Client['listen']>>;

export interface SuiteClient {
  readonly sdk: 'v1' | 'v2';
  /** Everything the client sent and received, in order. */
  readonly tap: WireTap;
  /** What the SDK reported through its onerror (dropped streams, unexpected messages). */
  readonly errors: Error[];
  readonly api: SharedClientApi;
  negotiatedVersion(): string | undefined;
  /** One page of a list, as the gateway cut it. */
  page(method: ListMethod, cursor?: string): Promise<Page>;
  callTool(call: ToolCall, options?: CallOptions): Promise<ToolResult>;
  /** SDK v2: the whole list, which the SDK assembles by following the pages itself. */
  listAll?(method: ListMethod): Promise<Page>;
  /** SDK v2: subscriptions/listen (2026-07-28). */
  listen?(filter: SubscriptionFilter): Promise<Subscription>;
}

function v1SuiteClient(client: V1Client, tap: WireTap, errors: Error[]): SuiteClient {
  const lists: Record<ListMethod, (params: { cursor?: string }) => Promise<Page>> = {
    'tools/list': (params) => client.listTools(params),
    'resources/list': (params) => client.listResources(params),
    'resources/templates/list': (params) => client.listResourceTemplates(params),
    'prompts/list': (params) => client.listPrompts(params),
  };
  return {
    sdk: 'v1',
    tap,
    errors,
    api: client,
    // SDK v1 keeps the negotiated version to itself; the initialize result says it.
    negotiatedVersion: () => initializedVersion(tap),
    page: (method, cursor) => lists[method](cursor === undefined ? {} : { cursor }),
    callTool: (call, options) => client.callTool(call, undefined, options),
  };
}

function v2SuiteClient(client: Client, tap: WireTap, errors: Error[]): SuiteClient {
  const bypass = { cacheMode: 'bypass' } as const;
  const lists: Record<ListMethod, () => Promise<Page>> = {
    'tools/list': () => client.listTools(undefined, bypass),
    'resources/list': () => client.listResources(undefined, bypass),
    'resources/templates/list': () => client.listResourceTemplates(undefined, bypass),
    'prompts/list': () => client.listPrompts(undefined, bypass),
  };
  return {
    sdk: 'v2',
    tap,
    errors,
    api: client,
    negotiatedVersion: () => client.getNegotiatedProtocolVersion(),
    page: (method, cursor) =>
      client.request({ method, params: cursor === undefined ? {} : { cursor } }),
    callTool: (call, options) => client.callTool(call, options),
    listAll: (method) => lists[method](),
    listen: (filter) => client.listen(filter),
  };
}

/** The client a suite drives: an SDK major and a fresh transport per connection. */
export type SuiteClientSpec =
  { sdk: 'v1'; transport: () => V1Transport } | { sdk: 'v2'; transport: () => Transport };

export interface SuiteConnectOptions {
  answers?: ClientAnswers;
  events?: ClientEvents;
  /** Declare no client capabilities (instead of elicitation, sampling and roots). */
  bare?: boolean;
}

/** Connects the client `spec` describes, in the era of `version`, with a WireTap attached. */
export async function connectSuiteClient(
  spec: SuiteClientSpec,
  version: string,
  options: SuiteConnectOptions = {},
): Promise<SuiteClient> {
  const tap = new WireTap();
  const tapped = <T extends object>(transport: T): T => {
    tap.attach(transport);
    return transport;
  };
  const errors: Error[] = [];
  const hooks = {
    ...options,
    ...(options.bare ? { capabilities: {} } : {}),
    setup: (client: { onerror?: (error: Error) => void }) => {
      client.onerror = (error) => errors.push(error);
    },
  };
  if (spec.sdk === 'v1') {
    const client = createV1Client(hooks);
    await client.connect(tapped(spec.transport()));
    return v1SuiteClient(client, tap, errors);
  }
  const client = createV2Client(version === MODERN ? 'modern' : 'legacy', hooks);
  await client.connect(tapped(spec.transport()));
  return v2SuiteClient(client, tap, errors);
}

// ---------------------------------------------------------------------------------------
// Reading the wire

/** The last request of `method` the client sent (for a tool or prompt name, or a URI). */
export function lastRequest(tap: WireTap, method: string, name?: string): WireMessage {
  const request = tap.requests(method, name).slice(-1)[0];
  if (!request) {
    throw new Error(`no ${method} request for ${name ?? 'anything'} was sent`);
  }
  return request;
}

/** The protocol version the initialize result on the wire named (2025 era). */
export function initializedVersion(tap: WireTap): string | undefined {
  const [init] = tap.requests('initialize');
  const answer = tap.received.find((m) => isResponse(m) && m.id === init?.id);
  return answer?.result?.protocolVersion as string | undefined;
}

/** What the client received for `request`: its response, and the messages before it. */
export function answerTo(
  tap: WireTap,
  request: WireMessage,
): { response: WireMessage | undefined; before: WireMessage[] } {
  const end = tap.responseIndex(request.id);
  const start = tap.indexOf(request);
  const before = tap.entries
    .slice(start + 1, end < 0 ? undefined : end)
    .filter((e) => e.dir === 'in')
    .map((e) => e.message);
  return { response: end < 0 ? undefined : tap.entries[end].message, before };
}

// ---------------------------------------------------------------------------------------
// The cases

export interface SuiteFeatures {
  /** The protocol version the session runs (2026-07-28 is the stateless era). */
  version: string;
  /**
   * How an aborted 2026-07-28 request reaches the gateway: its own stream closing (Streamable
   * HTTP) or notifications/cancelled on a shared channel (WebSocket, stdio, legacy SSE). The
   * 2025 era always sends notifications/cancelled.
   */
  modernCancellation?: 'stream' | 'notification';
  /**
   * Resolves once the gateway can push unsolicited 2025-era notifications (on Streamable HTTP,
   * once the client has opened its standalone GET stream).
   */
  unsolicitedReady?: () => Promise<void>;
}

/** What transport-specific cases see: the suite's connection and its collectors. */
export interface SuiteContext {
  readonly client: SuiteClient;
  readonly answers: ClientAnswers;
  readonly events: ClientEvents;
  readonly env: SuiteEnv;
  readonly version: string;
  /** A unique prefix for probe keys (the e2e catalog's probes fire once per name). */
  readonly key: string;
}

export interface SdkSuiteOptions {
  env: SuiteEnv;
  client: SuiteClientSpec;
  features: SuiteFeatures;
  /** Cases only this transport defines, run inside the suite with its connection. */
  extra?: (suite: SuiteContext) => void;
}

type ListCase = [ListMethod, string, string, (e2e: E2eCatalog) => string[]];

const LISTS: ListCase[] = [
  ['tools/list', 'tools', 'name', (e2e) => e2e.toolNames],
  ['resources/list', 'resources', 'uri', (e2e) => e2e.resourceUris],
  ['resources/templates/list', 'resourceTemplates', 'uriTemplate', (e2e) => e2e.templateUris],
  ['prompts/list', 'prompts', 'name', (e2e) => e2e.promptNames],
];

const itemsOf = (page: Page, field: string, key: string): string[] =>
  (page[field] as Record<string, string>[]).map((item) => item[key]);

let suites = 0;

/** Describes the shared cases for one client, transport and era. */
export function describeSdkSuite(title: string, options: SdkSuiteOptions): void {
  const { env, features } = options;
  const version = features.version;
  const modern = version === MODERN;
  const era = modern ? 'modern' : 'legacy';
  const key = `suite${++suites}`;
  const answers = new ClientAnswers();
  const events = new ClientEvents();
  let connected: SuiteClient | undefined;
  const context: SuiteContext = {
    get client() {
      if (!connected) {
        throw new Error(`${title}: not connected`);
      }
      return connected;
    },
    answers,
    events,
    env,
    version,
    key,
  };

  describe(title, () => {
    const probes = () => env.e2e.probes;
    const client = () => context.client;
    const call = (name: string, args: Record<string, unknown> = {}, opts?: CallOptions) =>
      client().callTool({ name, arguments: args }, opts);
    /** The answer to the last request of `method` (for a tool or prompt name, or a URI). */
    const lastAnswer = (method: string, name?: string) =>
      answerTo(client().tap, lastRequest(client().tap, method, name));

    beforeAll(async () => {
      connected = await connectSuiteClient(options.client, version, { answers, events });
    });

    afterAll(async () => {
      await connected?.api.close().catch(() => undefined);
      connected = undefined;
    });

    beforeEach(() => {
      answers.reset();
      events.clear();
    });

    describe('connection', () => {
      it(`runs protocol ${version} with the portico server and its capabilities`, () => {
        expect(client().negotiatedVersion()).toBe(version);
        expect(client().api.getServerVersion()).toMatchObject({ name: 'portico' });
        expect(client().api.getServerCapabilities()).toMatchObject({
          tools: { listChanged: true },
          resources: { subscribe: true, listChanged: true },
          prompts: { listChanged: true },
          logging: {},
          completions: {},
        });
      });
    });

    describe('lists (PAGE_SIZE=2)', () => {
      it.each(LISTS)(
        'follows nextCursor through every page of %s',
        async (method, field, k, all) => {
          const pages = await walkPages((cursor) => client().page(method, cursor));
          const expected = all(env.e2e);
          expect(pages.flatMap((p) => itemsOf(p, field, k))).toEqual(expected);
          expect(pages).toHaveLength(Math.ceil(expected.length / 2));
          for (const page of pages) {
            expect(itemsOf(page, field, k).length).toBeGreaterThan(0);
            expect(itemsOf(page, field, k).length).toBeLessThanOrEqual(2);
          }
        },
      );

      if (options.client.sdk === 'v2') {
        it.each(LISTS)(
          'the SDK assembles every page of %s itself',
          async (method, field, k, all) => {
            const sent = client().tap.requests(method).length;
            const list = await client().listAll!(method);
            expect(itemsOf(list, field, k)).toEqual(all(env.e2e));
            const pages = client().tap.requests(method).length - sent;
            expect(pages).toBe(Math.ceil(all(env.e2e).length / 2));
          },
        );
      }

      it('rejects a cursor it did not issue with -32602', async () => {
        const err = await rejectionOf(client().page('tools/list', 'not-a-cursor'));
        expect(err.code).toBe(-32602);
      });

      it('rejects a cursor of another list with -32602', async () => {
        const { nextCursor } = await client().page('prompts/list');
        expect(nextCursor).toEqual(expect.any(String));
        const err = await rejectionOf(client().page('tools/list', nextCursor));
        expect(err.code).toBe(-32602);
      });
    });

    describe('tools', () => {
      it('calls a tool and gets its result', async () => {
        const result = await call('echo', { text: 'hi' });
        expect(result.isError).toBeFalsy();
        expect(firstText(result)).toBe('echo: hi');
      });

      it('returns structuredContent that matches the declared outputSchema', async () => {
        const firstPage = await client().page('tools/list');
        const whoami = (firstPage.tools as { name: string; outputSchema?: object }[]).find(
          (t) => t.name === 'whoami',
        );
        expect(whoami?.outputSchema).toMatchObject({ required: ['era', 'protocolVersion'] });
        const result = await call('whoami');
        expect(result.structuredContent).toEqual({ era, protocolVersion: version });
        expect(firstText(result)).toBe(`${era} ${version}`);
      });

      it('returns a tool-level failure as a result with isError', async () => {
        const result = await call('fail');
        expect(result.isError).toBe(true);
        expect(firstText(result)).toBe('the tool failed on purpose');
      });

      it('answers an unknown tool with a JSON-RPC error -32602', async () => {
        const err = await rejectionOf(call('no-such-tool'));
        expect(err.code).toBe(-32602);
        expect(err.message).toContain('no-such-tool');
        const { response } = lastAnswer('tools/call', 'no-such-tool');
        expect(response?.error?.code).toBe(-32602);
      });

      it('reports arguments that fail the input schema as a tool result with isError', async () => {
        const missing = await call('echo');
        expect(missing.isError).toBe(true);
        expect(firstText(missing)).toMatch(/Invalid arguments for tool echo/);
        const wrongType = await call('echo', { text: ['not', 'a', 'string'] });
        expect(wrongType.isError).toBe(true);
        expect(firstText(wrongType)).toMatch(/Invalid arguments for tool echo/);
      });
    });

    describe('resources', () => {
      it.each([
        [
          'a text resource',
          TEXT_URI,
          { mimeType: 'text/plain', text: 'Hello from a text resource' },
        ],
        ['a blob resource', BLOB_URI, { mimeType: 'application/octet-stream', blob: BLOB_BASE64 }],
        [
          'an instance of a resource template',
          'test://items/beta',
          { mimeType: 'text/plain', text: 'item beta' },
        ],
      ])('reads %s', async (_label, uri, content) => {
        const { contents } = await client().api.readResource({ uri });
        expect(contents).toEqual([{ uri, ...content }]);
      });

      const notFound = modern ? -32602 : -32002;
      it(`answers an unknown URI with ${notFound} on the wire (resource not found in this era)`, async () => {
        const uri = 'test://nowhere';
        const err = await rejectionOf(client().api.readResource({ uri }));
        expect(err.data).toEqual({ uri });
        if (options.client.sdk === 'v2') {
          // SDK v2 surfaces both wire codes as ResourceNotFoundError.
          expect(err.error).toBeInstanceOf(ResourceNotFoundError);
        } else {
          expect(err.code).toBe(notFound);
        }
        const { response } = lastAnswer('resources/read', uri);
        expect(response?.error).toMatchObject({ code: notFound, data: { uri } });
      });
    });

    describe('prompts', () => {
      it.each([
        [{ name: 'Ada', style: 'formal' }, 'Greet Ada in a formal style.'],
        [{ name: 'Lin' }, 'Greet Lin in a neutral style.'],
      ])('gets a prompt with arguments %j', async (args, text) => {
        const result = await client().api.getPrompt({ name: 'greeting', arguments: args });
        expect(result.messages).toEqual([{ role: 'user', content: { type: 'text', text } }]);
      });

      it('rejects a missing required argument with -32602', async () => {
        const err = await rejectionOf(
          client().api.getPrompt({ name: 'greeting', arguments: { style: 'pirate' } }),
        );
        expect(err.code).toBe(-32602);
      });
    });

    describe('completion', () => {
      it.each([
        ['f', ['formal', 'friendly']],
        ['p', ['pirate']],
        ['', ['formal', 'friendly', 'pirate']],
      ])('completes the style argument of a prompt from %j', async (value, values) => {
        const { completion } = await client().api.complete({
          ref: { type: 'ref/prompt', name: 'greeting' },
          argument: { name: 'style', value },
        });
        expect(completion).toEqual({ values, total: values.length, hasMore: false });
      });

      it.each([
        ['b', ['beta']],
        ['', ['alpha', 'beta', 'gamma']],
      ])('completes a resource template variable from %j', async (value, values) => {
        const { completion } = await client().api.complete({
          ref: { type: 'ref/resource', uri: ITEM_TEMPLATE },
          argument: { name: 'id', value },
        });
        expect(completion).toEqual({ values, total: values.length, hasMore: false });
      });
    });

    describe('progress', () => {
      it('delivers every progress notification to onprogress, each before the result', async () => {
        const seen: ProgressUpdate[] = [];
        const errors = client().errors.length;
        const result = await call('progress', { steps: 3 }, { onprogress: (p) => seen.push(p) });
        expect(firstText(result)).toBe('done after 3 steps');
        const expected = [1, 2, 3].map((i) => ({ progress: i, total: 3, message: `step ${i}` }));
        // What the gateway sent: every notification, in order, ahead of the response.
        const request = lastRequest(client().tap, 'tools/call', 'progress');
        const token = (request.params?._meta as { progressToken?: unknown }).progressToken;
        const { before } = answerTo(client().tap, request);
        expect(before.filter((m) => m.method === 'notifications/progress')).toEqual(
          expected.map((p) => expect.objectContaining({ params: { ...p, progressToken: token } })),
        );
        expect(seen).toEqual(expected);
        expect(
          client()
            .errors.slice(errors)
            .map((e) => e.message),
        ).toEqual([]);
      });
    });

    describe('logging', () => {
      /** The levels of the log messages the last `log` call received before its result. */
      const loggedBeforeResult = (): string[] =>
        lastAnswer('tools/call', 'log')
          .before.filter((m) => m.method === 'notifications/message')
          .map((m) => String(m.params?.level));

      if (modern) {
        it('the logLevel _meta key filters what a tool logs, ahead of its result', async () => {
          await client().callTool({
            name: 'log',
            arguments: {},
            _meta: { [LOG_LEVEL_KEY]: 'warning' },
          });
          await events.logs.waitFor((l) => l.level === 'error', SUITE_WAIT_MS);
          expect(events.logs.items).toEqual([
            { level: 'warning', logger: 'e2e', data: { said: 'warning' } },
            { level: 'error', logger: 'e2e', data: { said: 'error' } },
          ]);
          expect(loggedBeforeResult()).toEqual(['warning', 'error']);
        });

        it('sends no log messages when the request names no logLevel', async () => {
          await call('log');
          expect(loggedBeforeResult()).toEqual([]);
          await call('echo', { text: 'later' });
          expect(events.logs.items).toEqual([]);
        });
      } else {
        it.each<[LogLevel, LogLevel[]]>([
          ['error', ['error']],
          ['warning', ['warning', 'error']],
          ['info', ['info', 'notice', 'warning', 'error']],
          ['debug', [...LOGGED_LEVELS]],
        ])('logging/setLevel %s filters what a tool logs on the session', async (level, shown) => {
          await client().api.setLoggingLevel(level);
          await call('log');
          await events.logs.waitFor((l) => l.level === 'error', SUITE_WAIT_MS);
          expect(events.logs.items).toEqual(
            shown.map((l) => ({ level: l, logger: 'e2e', data: { said: l } })),
          );
          expect(loggedBeforeResult()).toEqual(shown);
        });
      }
    });

    describe('cancellation', () => {
      const notifies = !modern || features.modernCancellation === 'notification';
      const how = notifies
        ? 'aborting a call sends notifications/cancelled, which aborts the tool'
        : "aborting a call closes its request's stream, which aborts the tool";
      it(how, async () => {
        const slow = `${key}-cancel`;
        const controller = new AbortController();
        const pending = later(call('slow', { key: slow }, { signal: controller.signal }));
        await probes().wait(`slow:${slow}:started`, SUITE_WAIT_MS);
        controller.abort('user pressed stop');
        await rejectionOf(pending);
        await probes().wait(`slow:${slow}:aborted`, SUITE_WAIT_MS);
        expect(probes().fired(`slow:${slow}:completed`)).toBe(false);

        const { tap } = client();
        const request = lastRequest(tap, 'tools/call', 'slow');
        const cancels = tap.sent.filter((m) => m.method === 'notifications/cancelled');
        if (notifies) {
          expect(cancels.map((m) => m.params?.requestId)).toContain(request.id);
        } else {
          expect(cancels).toHaveLength(0);
        }
        // The connection still serves, and the cancelled request got no response before it.
        expect(firstText(await call('echo', { text: 'after' }))).toBe('echo: after');
        expect(answerTo(tap, request).response).toBeUndefined();
      });
    });

    describe(modern ? 'input_required round trips (MRTR)' : 'server-to-client requests', () => {
      /** How often a handler that asks for `inputs` inputs runs for one call. */
      const runs = (inputs: number): number => (modern ? inputs + 1 : 1);

      it('elicitation: the client answers and the tool uses the answer', async () => {
        const before = probes().count('elicit');
        const result = await call('elicit');
        expect(firstText(result)).toBe('Hello, Ada!');
        expect(answers.elicitations).toEqual([
          expect.objectContaining({ message: 'What is your name?' }),
        ]);
        expect(probes().count('elicit') - before).toBe(runs(1));
        const { tap } = client();
        if (modern) {
          // Asked in an input_required result, answered by re-sending the call.
          const [first, retry] = tap.requests('tools/call', 'elicit').slice(-2);
          expect(answerTo(tap, first).response?.result).toMatchObject({
            resultType: 'input_required',
          });
          expect(retry.params).toMatchObject({
            inputResponses: expect.any(Object),
            requestState: expect.any(String),
          });
        } else {
          // Asked mid-call by a server-to-client request the client answered.
          const { before: asked } = lastAnswer('tools/call', 'elicit');
          const ask = asked.find((m) => m.method === 'elicitation/create');
          expect(ask?.id).toBeDefined();
          const reply = tap.sent.find((m) => isResponse(m) && m.id === ask?.id);
          expect(reply?.result).toMatchObject({ action: 'accept', content: { name: 'Ada' } });
        }
      });

      it.each([['decline' as const], ['cancel' as const]])(
        'elicitation: %s reaches the tool',
        async (action) => {
          answers.elicitation = { action };
          const result = await call('elicit');
          expect(firstText(result)).toBe(`elicitation ${action}`);
        },
      );

      it('sampling: the client model answers', async () => {
        const result = await call('sample');
        expect(firstText(result)).toBe(`model ${SAMPLING_MODEL} said: ${SAMPLED_TEXT}`);
        expect(answers.samplings).toEqual([
          expect.objectContaining({
            maxTokens: 16,
            messages: [{ role: 'user', content: { type: 'text', text: SAMPLING_PROMPT } }],
          }),
        ]);
      });

      it('roots: the client lists its roots', async () => {
        const result = await call('roots');
        expect(firstText(result)).toBe(`roots: ${ROOTS.map((r) => r.uri).join(', ')}`);
        expect(answers.rootsListed).toBe(1);
      });

      it('three inputs in one call: each is asked once', async () => {
        const before = probes().count('interview');
        const result = await call('interview', { topic: 'MCP' });
        expect(firstText(result)).toBe(`Ada / ${SAMPLED_TEXT} / ${ROOTS.length} roots`);
        expect(answers.elicitations).toHaveLength(1);
        expect(answers.samplings).toHaveLength(1);
        expect(answers.rootsListed).toBe(1);
        // 2026: the handler runs again per answer, with the earlier answers replayed.
        expect(probes().count('interview') - before).toBe(runs(3));
      });

      if (modern) {
        it('a client that did not declare elicitation gets -32021 naming the capability', async () => {
          const bare = await connectSuiteClient(options.client, version, { bare: true });
          try {
            const err = await rejectionOf(bare.callTool({ name: 'elicit', arguments: {} }));
            expect(err.code).toBe(-32021);
            expect(err.data).toEqual({ requiredCapabilities: { elicitation: {} } });
          } finally {
            await bare.api.close().catch(() => undefined);
          }
        });
      }
    });

    if (modern) {
      describe('subscriptions/listen', () => {
        let subscription: Subscription | undefined;
        const listen = async (filter: SubscriptionFilter): Promise<Subscription> => {
          if (!client().listen) {
            throw new Error('this client cannot listen');
          }
          subscription = await client().listen!(filter);
          expect(subscription.honoredFilter).toEqual(filter);
          return subscription;
        };

        afterEach(async () => {
          await subscription?.close();
          subscription = undefined;
        });

        it('delivers resource updates for the URIs it names only', async () => {
          await listen({ resourceSubscriptions: [WATCHED_URI] });
          env.e2e.catalog.notify({ type: 'resource-updated', uri: OTHER_URI });
          env.e2e.catalog.notify({ type: 'tools-changed' });
          env.e2e.catalog.notify({ type: 'resource-updated', uri: WATCHED_URI });
          await events.updates.waitFor((uri) => uri === WATCHED_URI, SUITE_WAIT_MS);
          expect(events.updates.items).toEqual([WATCHED_URI]);
          expect(events.listChanges.items).toEqual([]);
        });

        it('announces list changes for tools, prompts and resources', async () => {
          await listen({
            toolsListChanged: true,
            promptsListChanged: true,
            resourcesListChanged: true,
          });
          notifyListChanges(env);
          await events.listChanges.waitFor((m) => m === LIST_CHANGED[2], SUITE_WAIT_MS);
          expect(events.listChanges.items).toEqual([...LIST_CHANGED]);
        });

        it('close() ends the subscription locally', async () => {
          const sub = await listen({ toolsListChanged: true });
          subscription = undefined;
          await sub.close();
          await expect(within(sub.closed, SUITE_WAIT_MS)).resolves.toBe('local');
        });
      });
    } else {
      describe('notifications on the session', () => {
        beforeAll(async () => {
          await features.unsolicitedReady?.();
        });

        it('resources/subscribe delivers updates for the subscribed URI only, until unsubscribed', async () => {
          await client().api.subscribeResource({ uri: WATCHED_URI });
          env.e2e.catalog.notify({ type: 'resource-updated', uri: OTHER_URI });
          env.e2e.catalog.notify({ type: 'resource-updated', uri: WATCHED_URI });
          await events.updates.waitFor((uri) => uri === WATCHED_URI, SUITE_WAIT_MS);
          expect(events.updates.items).toEqual([WATCHED_URI]);

          await client().api.unsubscribeResource({ uri: WATCHED_URI });
          env.e2e.catalog.notify({ type: 'resource-updated', uri: WATCHED_URI });
          // A later notification on the same connection shows the update was not just slow.
          env.e2e.catalog.notify({ type: 'tools-changed' });
          await events.listChanges.waitFor(undefined, SUITE_WAIT_MS);
          expect(events.updates.items).toEqual([WATCHED_URI]);
        });

        it('announces list changes for tools, prompts and resources', async () => {
          notifyListChanges(env);
          await events.listChanges.waitFor((m) => m === LIST_CHANGED[2], SUITE_WAIT_MS);
          expect(events.listChanges.items).toEqual([...LIST_CHANGED]);
        });
      });
    }

    options.extra?.(context);
  });
}

function notifyListChanges(env: SuiteEnv): void {
  env.e2e.catalog.notify({ type: 'tools-changed' });
  env.e2e.catalog.notify({ type: 'prompts-changed' });
  env.e2e.catalog.notify({ type: 'resources-changed' });
}

// ---------------------------------------------------------------------------------------
// Streamable HTTP only: how each answer travelled (shared by the SDK v1 and v2 specs)

const JSON_TYPE = 'application/json';
const SSE_TYPE = 'text/event-stream';

interface ResponseModeCase {
  label: string;
  type: string;
  method: string;
  /** The tool or prompt name, or the URI, the request carries. */
  name?: string;
  run: (client: SuiteClient) => Promise<unknown>;
}

/** A tools/call case (with onprogress: a progressToken alone must not open a stream). */
const toolCase = (
  label: string,
  type: string,
  name: string,
  args: Record<string, unknown> = {},
  meta?: Record<string, unknown>,
): ResponseModeCase => ({
  label,
  type,
  method: 'tools/call',
  name,
  run: (c) =>
    c.callTool(
      { name, arguments: args, ...(meta ? { _meta: meta } : {}) },
      { onprogress: () => undefined },
    ),
});

const BOTH_ERAS: ResponseModeCase[] = [
  {
    label: 'a tools/list page',
    type: JSON_TYPE,
    method: 'tools/list',
    run: (c) => c.page('tools/list'),
  },
  toolCase('a plain tool call', JSON_TYPE, 'echo', { text: 'json' }),
  toolCase('an isError result', JSON_TYPE, 'fail'),
  {
    label: 'a resource read',
    type: JSON_TYPE,
    method: 'resources/read',
    name: BLOB_URI,
    run: (c) => c.api.readResource({ uri: BLOB_URI }),
  },
  {
    label: 'a prompt',
    type: JSON_TYPE,
    method: 'prompts/get',
    name: 'greeting',
    run: (c) => c.api.getPrompt({ name: 'greeting', arguments: { name: 'Ada' } }),
  },
  {
    label: 'a completion',
    type: JSON_TYPE,
    method: 'completion/complete',
    run: (c) =>
      c.api.complete({
        ref: { type: 'ref/prompt', name: 'greeting' },
        argument: { name: 'style', value: 'f' },
      }),
  },
  toolCase('a call that reports progress', SSE_TYPE, 'progress', { steps: 1 }),
];

const LEGACY_ONLY: ResponseModeCase[] = [
  toolCase('a call that logs', SSE_TYPE, 'log'),
  toolCase('a call that elicits mid-call', SSE_TYPE, 'elicit'),
  toolCase('a call that samples mid-call', SSE_TYPE, 'sample'),
];

const MODERN_ONLY: ResponseModeCase[] = [
  toolCase('a call that logs at its logLevel', SSE_TYPE, 'log', {}, { [LOG_LEVEL_KEY]: 'debug' }),
  toolCase('a call that logs with no logLevel', JSON_TYPE, 'log'),
  // Nothing precedes an input_required result, nor the result of the retry that answers it.
  toolCase('a call that needs input (both legs)', JSON_TYPE, 'elicit'),
];

/** The suite's own Streamable HTTP connection: what went over HTTP, and its session. */
export interface HttpConnection {
  readonly recorder: HttpRecorder;
  readonly transport: { readonly sessionId?: string };
}

export interface HttpSuiteOptions {
  env: SuiteEnv;
  sdk: 'v1' | 'v2';
  version: string;
  /** More Streamable HTTP cases on the suite's connection. */
  extra?: (suite: SuiteContext, http: () => HttpConnection) => void;
}

/**
 * The suite over Streamable HTTP, plus what only that transport defines: the gateway answers a
 * POST with plain JSON when the handler sends nothing before its result and with an SSE stream
 * as soon as it does; in the 2025 era the client's answers and cancellations travel as their
 * own POSTs (202), and unsolicited notifications need the standalone GET stream.
 */
export function describeStreamableHttpSuite(title: string, options: HttpSuiteOptions): void {
  const { env, sdk, version } = options;
  let first: HttpConnection | undefined;
  const http = (): HttpConnection => {
    if (!first) {
      throw new Error(`${title}: not connected`);
    }
    return first;
  };
  describeSdkSuite(title, {
    env,
    // Every connection gets its own recorder; the suite's own (the first) stays visible.
    client: streamableHttpSpec(
      sdk,
      env,
      () => new HttpRecorder(),
      (made) => {
        first ??= made;
      },
    ),
    features: {
      version,
      modernCancellation: 'stream',
      unsolicitedReady: async () => {
        await http().recorder.waitFor((e) => e.httpMethod === 'GET' && e.status === 200);
      },
    },
    extra: (suite) => {
      describeResponseModes(suite, () => http().recorder);
      options.extra?.(suite, http);
    },
  });
}

/** SDK `sdk` over Streamable HTTP; each connection records with the recorder `recorder` gives. */
function streamableHttpSpec(
  sdk: 'v1' | 'v2',
  env: SuiteEnv,
  recorder: () => HttpRecorder,
  opened: (connection: HttpConnection) => void,
): SuiteClientSpec {
  const open =
    <T extends { sessionId?: string }>(build: (url: URL, fetch: HttpRecorder['fetch']) => T) =>
    (): T => {
      const own = recorder();
      const transport = build(new URL(env.gateway.mcpUrl), own.fetch);
      opened({ recorder: own, transport });
      return transport;
    };
  return sdk === 'v1'
    ? { sdk, transport: open((url, fetch) => new V1HttpTransport(url, { fetch })) }
    : { sdk, transport: open((url, fetch) => new StreamableHTTPClientTransport(url, { fetch })) };
}

/**
 * Streamable HTTP only (legacy SSE and WebSocket have no event ids to resume from): the SSE
 * answer to a POST drops mid-call; the client reconnects with a GET carrying Last-Event-ID,
 * gets the event it missed replayed, and the rest of the call live.
 */
export function itResumesADroppedStream(env: SuiteEnv, sdk: 'v1' | 'v2'): void {
  it('reconnects with Last-Event-ID, gets the missed event replayed and the result live', async () => {
    const key = `drop-${sdk}`;
    const probes = env.e2e.probes;
    const recorder = new HttpRecorder();
    const progressSeen = new Inbox<ProgressUpdate>();
    let dropped = false;
    recorder.transformResponses((exchange, response) => {
      const isTarget =
        exchange.contentType === SSE_TYPE &&
        exchange.messages.some((m) => m.method === 'tools/call' && m.params?.name === 'resumable');
      if (!isTarget || dropped) {
        return response;
      }
      dropped = true;
      return dropStreamAfter(
        response,
        '"notifications/progress"',
        progressSeen.waitFor((p) => p.progress === 1, SUITE_WAIT_MS),
        () => probes.fire(`resumable:${key}:dropped`),
      );
    });
    // The reconnection is held until the tool has emitted (and the gateway stored) an event
    // the client never saw, so that event can only arrive through replay.
    const reconnect = recorder.hold(
      (e) => e.httpMethod === 'GET' && 'last-event-id' in e.requestHeaders,
    );
    let connection: HttpConnection | undefined;
    const spec = streamableHttpSpec(
      sdk,
      env,
      () => recorder,
      (made) => {
        connection = made;
      },
    );
    const client = await connectSuiteClient(spec, LEGACY);
    try {
      const call = later(
        client.callTool(
          { name: 'resumable', arguments: { key } },
          { onprogress: progressSeen.push },
        ),
      );
      await probes.wait(`resumable:${key}:dropped`, SUITE_WAIT_MS);
      const held = await within(reconnect.hit, SUITE_WAIT_MS, 'the reconnection GET');
      expect(client.errors.map((e) => e.message).join('\n')).toMatch(/SSE stream disconnected/);

      // The POST stream's events carried ids; the client resumes from the last one it processed.
      const lastEventId = held.requestHeaders['last-event-id'];
      expect(lastEventId).toMatch(/:\d+$/);
      expect(held.requestHeaders['mcp-session-id']).toBe(connection?.transport.sessionId);

      probes.fire(`resumable:${key}:gate-a`);
      await probes.wait(`resumable:${key}:progress-2`, SUITE_WAIT_MS);
      reconnect.release();
      const resumed = await recorder.waitFor(
        (e) => e.httpMethod === 'GET' && e.requestHeaders['last-event-id'] === lastEventId,
        SUITE_WAIT_MS,
      );
      expect(resumed.status).toBe(200);
      expect(resumed.contentType).toBe(SSE_TYPE);

      await progressSeen.waitFor((p) => p.progress === 2, SUITE_WAIT_MS);
      probes.fire(`resumable:${key}:gate-b`);
      const result = await within(call, SUITE_WAIT_MS, 'the resumed tools/call');
      expect(firstText(result)).toBe(`resumed ${key}`);
      expect(progressSeen.items.map((p) => p.progress)).toEqual([1, 2]);
    } finally {
      reconnect.release();
      await client.api.close().catch(() => undefined);
    }
  });
}

function describeResponseModes(suite: SuiteContext, recorder: () => HttpRecorder): void {
  const modern = suite.version === MODERN;
  describe('Streamable HTTP', () => {
    it.each([...BOTH_ERAS, ...(modern ? MODERN_ONLY : LEGACY_ONLY)])(
      '$label is answered with $type',
      async ({ run, method, name, type }) => {
        if (!modern) {
          await suite.client.api.setLoggingLevel('debug');
        }
        const before = recorder().requestsOf(method, name).length;
        await run(suite.client);
        const posts = recorder().requestsOf(method, name).slice(before);
        expect(posts.length).toBeGreaterThan(0);
        for (const post of posts) {
          expect(post.status).toBe(200);
          expect(post.contentType).toBe(type);
        }
      },
    );

    if (!modern) {
      it("the client's answer to a server request is its own POST, acknowledged with 202", async () => {
        const sent = recorder().exchanges.length;
        await suite.client.callTool({ name: 'elicit', arguments: {} });
        const answer = recorder()
          .exchanges.slice(sent)
          .find((e) =>
            e.messages.some(
              (m) => (m.result as { action?: string } | undefined)?.action === 'accept',
            ),
          );
        expect(answer?.status).toBe(202);
      });

      // "If the input is a JSON-RPC request, the server MUST either return Content-Type:
      // text/event-stream ... or Content-Type: application/json": 202 is for notifications and
      // responses only, even for a cancelled request (an SSE stream that ends without a
      // response honours both that MUST and cancellation's "SHOULD NOT send a response").
      it('a cancellation is its own POST (202); the cancelled request is still answered as a request', async () => {
        const slow = `${suite.key}-http-cancel`;
        const controller = new AbortController();
        const pending = later(
          suite.client.callTool(
            { name: 'slow', arguments: { key: slow } },
            { signal: controller.signal },
          ),
        );
        await suite.env.e2e.probes.wait(`slow:${slow}:started`, SUITE_WAIT_MS);
        controller.abort('no longer needed');
        await rejectionOf(pending);
        await suite.env.e2e.probes.wait(`slow:${slow}:aborted`, SUITE_WAIT_MS);
        const isSlow = (m: { params?: Record<string, unknown> }) =>
          (m.params?.arguments as { key?: string } | undefined)?.key === slow;
        // Its headers come only once the gateway has settled the cancelled call.
        const post = await recorder().waitFor((e) => e.messages.some(isSlow), SUITE_WAIT_MS);
        expect(post.status).toBe(200);
        expect([JSON_TYPE, SSE_TYPE]).toContain(post.contentType);
        const requestId = post.messages.find(isSlow)?.id;
        const cancel = await recorder().waitFor(
          (e) =>
            e.messages.some(
              (m) => m.method === 'notifications/cancelled' && m.params?.requestId === requestId,
            ),
          SUITE_WAIT_MS,
        );
        expect(cancel.status).toBe(202);
      });
    }
  });
}

export { LEGACY, MODERN };

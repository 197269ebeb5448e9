/*
 * The MCP reference server, @modelcontextprotocol/server-everything (SDK v1, 2025 era only),
 * registered through the admin API as a tenant's `mcp-stdio` backend, driven end to end through
 * the gateway's Streamable HTTP endpoint by the official SDK clients: SDK v2 pinned to
 * 2026-07-28 (stateless: input_required rounds, per-request logLevel, subscriptions/listen),
 * SDK v2 in legacy mode and SDK v1 (2025-11-25: initialize, a session, mid-call requests).
 *
 * Every client runs the same scenarios against the real child process: its tools (plain,
 * structured, image, annotated, resource links, progress, logging), resources and templates,
 * prompts and completions, and the inputs it asks of the client (sampling, form and URL
 * elicitation, roots), and resource subscriptions. server-everything keeps its per-session
 * state (roots, toggles, subscriptions) under the stdio session, so every case that switches
 * something on switches it off again.
 */
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StreamableHTTPClientTransport as V1HttpTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { LoggerService } from '@nestjs/common';
import Ajv from 'ajv';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { RunningGateway, startGateway } from './support/gateway';
import {
  ClientAnswers,
  ClientEvents,
  CLIENT_CAPABILITIES,
  createV1Client,
  createV2Client,
  HttpRecorder,
  rejectionOf,
  SAMPLED_TEXT,
  SAMPLING_MODEL,
  walkPages,
  within,
  type FetchLike,
} from './support/sdk';
import {
  answerTo,
  connectSuiteClient,
  lastRequest,
  type Page,
  type ProgressUpdate,
  type Subscription,
  type SuiteClient,
  type SuiteClientSpec,
  type ToolCall,
  type ToolResult,
} from './support/sdk-suite';
import { LEGACY, LOG_LEVEL_KEY, MODERN } from './support/stdio';
import { seedTenant } from './support/tenants';

const EVERYTHING_DIST = resolve(
  __dirname,
  '..',
  'node_modules/@modelcontextprotocol/server-everything/dist',
);
const EVERYTHING = join(EVERYTHING_DIST, 'index.js');
const DOCS = join(EVERYTHING_DIST, 'docs');
const TENANT = 'everything';
const BACKEND = 'everything';
/** Bound for anything that waits; server-everything's simulated updates tick every 5 s. */
const WAIT_MS = 15_000;
const FEATURES_URI = 'demo://resource/static/document/features.md';
const TEXT_TEMPLATE = 'demo://resource/dynamic/text/{resourceId}';
const BLOB_TEMPLATE = 'demo://resource/dynamic/blob/{resourceId}';
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The namespaced name of a server-everything tool or prompt in the tenant's catalog. */
const ns = (name: string): string => `${BACKEND}__${name}`;

/** What server-everything registers for a client that declares sampling, elicitation, roots. */
const TOOLS = [
  'echo',
  'get-annotated-message',
  'get-env',
  'get-resource-links',
  'get-resource-reference',
  'get-structured-content',
  'get-sum',
  'get-tiny-image',
  'gzip-file-as-resource',
  'toggle-simulated-logging',
  'toggle-subscriber-updates',
  'trigger-long-running-operation',
  'get-roots-list',
  'trigger-elicitation-request',
  'trigger-url-elicitation',
  'trigger-sampling-request',
];
const PROMPTS = ['simple-prompt', 'args-prompt', 'completable-prompt', 'resource-prompt'];

interface ClientCase {
  readonly label: string;
  readonly sdk: 'v1' | 'v2';
  readonly version: typeof MODERN | typeof LEGACY;
  /** The roots this client answers with (each its own, to tell them apart upstream). */
  readonly roots: { uri: string; name: string }[];
}

const CLIENTS: readonly ClientCase[] = [
  {
    label: 'SDK v2 pinned to 2026-07-28',
    sdk: 'v2',
    version: MODERN,
    roots: [{ uri: 'file:///work/modern', name: 'modern' }],
  },
  {
    label: 'SDK v2 in legacy mode (2025-11-25)',
    sdk: 'v2',
    version: LEGACY,
    roots: [
      { uri: 'file:///work/v2-legacy/app', name: 'v2-app' },
      { uri: 'file:///work/v2-legacy/lib', name: 'v2-lib' },
    ],
  },
  {
    label: 'SDK v1 (2025-11-25)',
    sdk: 'v1',
    version: LEGACY,
    roots: [{ uri: 'file:///work/v1', name: 'v1' }],
  },
];

/** Answers like ClientAnswers, with roots of its own. */
class OwnRootsAnswers extends ClientAnswers {
  constructor(private readonly own: { uri: string; name: string }[]) {
    super();
  }

  override roots(): { roots: { uri: string; name: string }[] } {
    this.rootsListed++;
    return { roots: this.own };
  }
}

interface Block {
  type: string;
  text?: string;
  data?: string;
  mimeType?: string;
  uri?: string;
  name?: string;
  annotations?: unknown;
}

const blocks = (result: ToolResult): Block[] => (result.content ?? []) as Block[];

/** Every text block of a result, joined. */
const textOf = (result: ToolResult): string =>
  blocks(result)
    .filter((b) => b.type === 'text')
    .map((b) => b.text)
    .join('\n');

/** The pids and command lines of this process's children (`ps` itself left out). */
function childProcesses(): Map<number, string> {
  const out = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], {
    encoding: 'utf8',
  });
  const children = new Map<number, string>();
  for (const line of out.split('\n')) {
    const match = /^\s*(\d+)\s+(.*)$/.exec(line);
    if (match && !match[2].startsWith('ps ')) {
      children.set(Number(match[1]), match[2]);
    }
  }
  return children;
}

/**
 * Closes SDK clients the way a client that leaves does: a 2025-era one ends its session first
 * (DELETE), which also ends the upstream session (for stdio: the child) the gateway keeps for it.
 */
async function endSessions(
  ...clients: ({ close(): Promise<void>; transport?: unknown } | undefined)[]
) {
  await Promise.all(
    clients.map(async (client) => {
      const transport = client?.transport as { terminateSession?(): Promise<void> } | undefined;
      await transport?.terminateSession?.().catch(() => undefined);
      await client?.close().catch(() => undefined);
    }),
  );
}

async function until<T>(probe: () => T, done: (value: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = probe();
    if (done(value)) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}: ${JSON.stringify(value)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

const withApiKey =
  (apiKey: string): FetchLike =>
  (url, init) => {
    const headers = new Headers(init?.headers);
    headers.set('authorization', `Bearer ${apiKey}`);
    return fetch(url, { ...init, headers });
  };

/**
 * The gateway's log, where a stdio backend's stderr lands (debug level). server-everything says
 * there when its request for the client's roots, made 350 ms after initialize, was refused.
 */
class StderrLog implements LoggerService {
  readonly lines: string[] = [];
  log(): void {}
  error(): void {}
  warn(): void {}
  verbose(): void {}
  fatal(): void {}
  debug(message: unknown): void {
    if (typeof message === 'string' && message.includes(' stderr: ')) {
      this.lines.push(message);
    }
  }
}

const stderrLog = new StderrLog();
let gateway: RunningGateway | undefined;
let endpoint: string;
let apiKey: string;
let childrenBefore: Map<number, string>;
const bootstrap = randomBytes(24).toString('hex');

/** The Streamable HTTP transport of the client's SDK, sending the tenant's key. */
function specFor(c: ClientCase, recorder: HttpRecorder): SuiteClientSpec {
  const url = new URL(endpoint);
  return c.sdk === 'v1'
    ? { sdk: 'v1', transport: () => new V1HttpTransport(url, { fetch: recorder.fetch }) }
    : {
        sdk: 'v2',
        transport: () => new StreamableHTTPClientTransport(url, { fetch: recorder.fetch }),
      };
}

beforeAll(async () => {
  childrenBefore = childProcesses();
  gateway = await startGateway({
    LOG_LEVEL: process.env.E2E_LOG ?? 'silent',
    UPSTREAM_STDIO_ENABLED: 'true',
    BOOTSTRAP_ADMIN_TOKEN: bootstrap,
  });
  gateway.app.useLogger(stderrLog);
  ({ apiKey } = await seedTenant(gateway.app, { slug: TENANT, fixtures: [] }));
  endpoint = `${gateway.mcpUrl}/${TENANT}`;
  const created = await fetch(`${gateway.baseUrl}/admin/v1/tenants/${TENANT}/backends`, {
    method: 'POST',
    headers: { authorization: `Bearer ${bootstrap}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      name: BACKEND,
      kind: 'mcp-stdio',
      target: `"${process.execPath}"`,
      settings: { args: [EVERYTHING, 'stdio'] },
    }),
  });
  expect(created.status).toBe(201);
}, 60_000);

afterAll(async () => {
  await gateway?.close();
}, 30_000);

describe('server-everything registered as an mcp-stdio backend', () => {
  it('runs as a child process of the gateway and joins the catalog under its prefix', async () => {
    const recorder = new HttpRecorder(withApiKey(apiKey));
    const client = await connectSuiteClient(specFor(CLIENTS[1], recorder), LEGACY);
    try {
      // The catalog is built on first use; the child starts with it.
      const pages = await walkPages((cursor) => client.page('tools/list', cursor));
      const names = pages.flatMap((p) => (p.tools as { name: string }[]).map((t) => t.name));
      expect(names).toEqual(expect.arrayContaining(TOOLS.map(ns)));
      const children = [...childProcesses().values()];
      expect(children.filter((args) => args.includes(EVERYTHING))).toHaveLength(1);
      // Its startup request for roots comes while no call is in flight, and is refused. The
      // cases start after it: a call in flight would be asked instead (see the last cases).
      await until(
        () => stderrLog.lines.some((line) => line.includes('Failed to request roots')),
        (seen) => seen,
        "server-everything's startup request for roots",
      );
    } finally {
      await endSessions(client.api);
    }
  });
});

describe.each(CLIENTS.map((c) => [c.label, c] as const))('%s', (_label, c) => {
  const modern = c.version === MODERN;
  const answers = new OwnRootsAnswers(c.roots);
  const events = new ClientEvents();
  let connection: { client: SuiteClient; recorder: HttpRecorder };
  const client = (): SuiteClient => connection.client;
  const call = (name: string, args: Record<string, unknown> = {}, meta?: ToolCall['_meta']) =>
    client().callTool({ name: ns(name), arguments: args, ...(meta && { _meta: meta }) });

  /** Calls a toggle tool until it reports it stopped (it flips shared state upstream). */
  const switchOff = async (name: string): Promise<void> => {
    for (let i = 0; i < 2; i++) {
      if (/^Stopped/.test(textOf(await call(name)))) {
        return;
      }
    }
  };

  beforeAll(async () => {
    const own = new HttpRecorder(withApiKey(apiKey));
    const suiteClient = await connectSuiteClient(specFor(c, own), c.version, { answers, events });
    connection = { client: suiteClient, recorder: own };
    if (!modern) {
      // Unsolicited notifications need the session's standalone GET stream.
      await own.waitFor((e) => e.httpMethod === 'GET' && e.status === 200, WAIT_MS);
    }
  }, WAIT_MS * 2);

  afterAll(async () => {
    await endSessions(connection?.client.api);
  });

  beforeEach(() => {
    answers.reset();
    events.clear();
  });

  it(`runs ${c.version} with the gateway`, () => {
    expect(client().negotiatedVersion()).toBe(c.version);
  });

  describe('tools', () => {
    it('tools/list has every tool under its namespaced name, with its schemas', async () => {
      const pages = await walkPages((cursor) => client().page('tools/list', cursor));
      const tools = pages.flatMap(
        (p) =>
          p.tools as {
            name: string;
            inputSchema: { properties?: Record<string, unknown> };
            annotations?: unknown;
          }[],
      );
      expect(tools.map((t) => t.name)).toEqual(expect.arrayContaining(TOOLS.map(ns)));
      const echo = tools.find((t) => t.name === ns('echo'));
      expect(echo?.inputSchema.properties).toHaveProperty('message');
      expect(echo?.annotations).toMatchObject({ readOnlyHint: true });
    });

    it('echo', async () => {
      const result = await call('echo', { message: 'hello through the gateway' });
      expect(result.isError).toBeFalsy();
      expect(blocks(result)).toEqual([{ type: 'text', text: 'Echo: hello through the gateway' }]);
    });

    it('get-sum', async () => {
      const result = await call('get-sum', { a: 19, b: 23 });
      expect(textOf(result)).toBe('The sum of 19 and 23 is 42.');
    });

    it('get-structured-content: structuredContent matches the listed outputSchema', async () => {
      const pages = await walkPages((cursor) => client().page('tools/list', cursor));
      const tool = pages
        .flatMap((p) => p.tools as { name: string; outputSchema?: object }[])
        .find((t) => t.name === ns('get-structured-content'));
      expect(tool?.outputSchema).toMatchObject({
        type: 'object',
        required: expect.arrayContaining(['temperature', 'conditions', 'humidity']),
      });
      const result = await call('get-structured-content', { location: 'Chicago' });
      const weather = { temperature: 36, conditions: 'Light rain / drizzle', humidity: 82 };
      expect(result.structuredContent).toEqual(weather);
      const validate = new Ajv({ strict: false }).compile(tool!.outputSchema!);
      expect(validate(result.structuredContent)).toBe(true);
      // The backward-compatible text block carries the same object.
      expect(JSON.parse(textOf(result))).toEqual(weather);
    });

    it('get-tiny-image: an image block with a PNG', async () => {
      const result = await call('get-tiny-image');
      const [before, image, after] = blocks(result);
      expect(before).toEqual({ type: 'text', text: "Here's the image you requested:" });
      expect(after).toEqual({ type: 'text', text: 'The image above is the MCP logo.' });
      expect(image).toMatchObject({ type: 'image', mimeType: 'image/png' });
      const png = Buffer.from(image.data ?? '', 'base64');
      expect(png.subarray(0, 8)).toEqual(PNG_SIGNATURE);
    });

    it('get-annotated-message: annotations on text and image blocks', async () => {
      const result = await call('get-annotated-message', {
        messageType: 'error',
        includeImage: true,
      });
      expect(blocks(result)).toEqual([
        {
          type: 'text',
          text: 'Error: Operation failed',
          annotations: { priority: 1, audience: ['user', 'assistant'] },
        },
        expect.objectContaining({
          type: 'image',
          mimeType: 'image/png',
          annotations: { priority: 0.5, audience: ['user'] },
        }),
      ]);
    });

    it('get-resource-links: resource_link blocks that read through the gateway', async () => {
      const result = await call('get-resource-links', { count: 2 });
      const links = blocks(result).filter((b) => b.type === 'resource_link');
      expect(links).toEqual([
        expect.objectContaining({
          uri: 'demo://resource/dynamic/blob/1',
          name: 'Blob Resource 1',
          mimeType: 'text/plain',
        }),
        expect.objectContaining({
          uri: 'demo://resource/dynamic/text/2',
          name: 'Text Resource 2',
          mimeType: 'text/plain',
        }),
      ]);
      const { contents } = await client().api.readResource({ uri: links[1].uri! });
      expect(contents).toEqual([
        {
          uri: 'demo://resource/dynamic/text/2',
          mimeType: 'text/plain',
          text: expect.stringMatching(/^Resource 2: This is a plaintext resource created at /),
        },
      ]);
    });

    it('trigger-long-running-operation: every progress notification comes before the result', async () => {
      const seen: ProgressUpdate[] = [];
      const result = await client().callTool(
        {
          name: ns('trigger-long-running-operation'),
          arguments: { duration: 0.3, steps: 3 },
        },
        { onprogress: (p) => seen.push(p) },
      );
      expect(textOf(result)).toBe(
        'Long running operation completed. Duration: 0.3 seconds, Steps: 3.',
      );
      const expected = [1, 2, 3].map((progress) => ({ progress, total: 3 }));
      expect(seen).toEqual(expected);
      const request = lastRequest(client().tap, 'tools/call', ns('trigger-long-running-operation'));
      const { before } = answerTo(client().tap, request);
      expect(
        before
          .filter((m) => m.method === 'notifications/progress')
          .map((m) => ({ progress: m.params?.progress, total: m.params?.total })),
      ).toEqual(expected);
    });
  });

  describe('logging', () => {
    const simulated =
      /^(Debug|Info|Notice|Warning|Error|Critical|Alert|Emergency)[- ]level[- ]message/;

    afterEach(async () => {
      await switchOff('toggle-simulated-logging');
    });

    if (modern) {
      it('toggle-simulated-logging: its log message reaches a call that names a logLevel', async () => {
        const result = await call('toggle-simulated-logging', {}, { [LOG_LEVEL_KEY]: 'debug' });
        expect(textOf(result)).toMatch(/^Started simulated, random-leveled logging/);
        const request = lastRequest(client().tap, 'tools/call', ns('toggle-simulated-logging'));
        const logged = answerTo(client().tap, request).before.filter(
          (m) => m.method === 'notifications/message',
        );
        expect(logged).toHaveLength(1);
        expect(String(logged[0].params?.data)).toMatch(simulated);
        expect(events.logs.items.map((l) => String(l.data))).toEqual([
          String(logged[0].params?.data),
        ]);
      });

      it('toggle-simulated-logging: a call without logLevel gets no log message', async () => {
        const result = await call('toggle-simulated-logging');
        expect(textOf(result)).toMatch(/^Started simulated/);
        const request = lastRequest(client().tap, 'tools/call', ns('toggle-simulated-logging'));
        expect(
          answerTo(client().tap, request).before.filter(
            (m) => m.method === 'notifications/message',
          ),
        ).toEqual([]);
        expect(events.logs.items).toEqual([]);
      });
    } else {
      it('toggle-simulated-logging: log messages reach the session at logging/setLevel debug', async () => {
        await client().api.setLoggingLevel('debug');
        const result = await call('toggle-simulated-logging');
        expect(textOf(result)).toMatch(/^Started simulated, random-leveled logging/);
        // Other logs of the session (e.g. a late roots update) may come first.
        const first = await events.logs.waitFor((log) => simulated.test(String(log.data)), WAIT_MS);
        expect(String(first.data)).toMatch(simulated);
      });

      it('toggle-simulated-logging: the simulated log keeps reaching the session after the call', async () => {
        await client().api.setLoggingLevel('debug');
        await call('toggle-simulated-logging');
        // One message at once, then one every 5 s, on the session's standalone stream.
        await until(
          () => events.logs.items.length,
          (n) => n >= 2,
          'a second log message',
        );
        expect(events.logs.items.map((l) => String(l.data))).toEqual([
          expect.stringMatching(simulated),
          expect.stringMatching(simulated),
        ]);
      });
    }
  });

  describe('resources', () => {
    it('resources/list has the static documents', async () => {
      const pages = await walkPages((cursor) => client().page('resources/list', cursor));
      const resources = pages.flatMap(
        (p) => p.resources as { uri: string; mimeType?: string; name: string }[],
      );
      const documents = readdirSync(DOCS).map((name) => ({
        uri: `demo://resource/static/document/${encodeURIComponent(name)}`,
        name,
      }));
      expect(resources).toEqual(
        expect.arrayContaining(documents.map((d) => expect.objectContaining(d))),
      );
      expect(resources.find((r) => r.uri === FEATURES_URI)?.mimeType).toBe('text/markdown');
    });

    it('resources/read of a static document: its text', async () => {
      const { contents } = await client().api.readResource({ uri: FEATURES_URI });
      expect(contents).toEqual([
        {
          uri: FEATURES_URI,
          mimeType: 'text/markdown',
          text: readFileSync(join(DOCS, 'features.md'), 'utf8'),
        },
      ]);
    });

    it('resources/templates/list has the dynamic text and blob templates', async () => {
      const pages = await walkPages((cursor: string | undefined) =>
        client().page('resources/templates/list', cursor),
      );
      const templates = pages.flatMap(
        (p: Page) => p.resourceTemplates as { uriTemplate: string; mimeType?: string }[],
      );
      expect(templates).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ uriTemplate: TEXT_TEMPLATE, mimeType: 'text/plain' }),
          expect.objectContaining({
            uriTemplate: BLOB_TEMPLATE,
            mimeType: 'application/octet-stream',
          }),
        ]),
      );
    });

    it('resources/read through a template: a text and a blob', async () => {
      const text = await client().api.readResource({ uri: 'demo://resource/dynamic/text/4' });
      expect(text.contents).toEqual([
        {
          uri: 'demo://resource/dynamic/text/4',
          mimeType: 'text/plain',
          text: expect.stringMatching(/^Resource 4: This is a plaintext resource created at /),
        },
      ]);
      const blob = await client().api.readResource({ uri: 'demo://resource/dynamic/blob/3' });
      const [content] = blob.contents as { uri: string; blob: string }[];
      expect(content).toEqual({
        uri: 'demo://resource/dynamic/blob/3',
        mimeType: 'text/plain',
        blob: expect.any(String),
      });
      expect(Buffer.from(content.blob, 'base64').toString('utf8')).toMatch(
        /^Resource 3: This is a base64 blob created at /,
      );
    });

    it('completion/complete of a template variable', async () => {
      const { completion } = await client().api.complete({
        ref: { type: 'ref/resource', uri: TEXT_TEMPLATE },
        argument: { name: 'resourceId', value: '7' },
      });
      expect(completion.values).toEqual(['7']);
    });
  });

  describe('prompts', () => {
    it('prompts/list has every prompt under its namespaced name', async () => {
      const pages = await walkPages((cursor) => client().page('prompts/list', cursor));
      const prompts = pages.flatMap(
        (p) => p.prompts as { name: string; arguments?: { name: string; required?: boolean }[] }[],
      );
      expect(prompts.map((p) => p.name)).toEqual(expect.arrayContaining(PROMPTS.map(ns)));
      expect(prompts.find((p) => p.name === ns('args-prompt'))?.arguments).toEqual([
        expect.objectContaining({ name: 'city', required: true }),
        expect.objectContaining({ name: 'state', required: false }),
      ]);
    });

    it('prompts/get of a prompt without arguments', async () => {
      const result = await client().api.getPrompt({ name: ns('simple-prompt') });
      expect(result.messages).toEqual([
        {
          role: 'user',
          content: { type: 'text', text: 'This is a simple prompt without arguments.' },
        },
      ]);
    });

    it('prompts/get with arguments', async () => {
      const result = await client().api.getPrompt({
        name: ns('args-prompt'),
        arguments: { city: 'Chicago', state: 'IL' },
      });
      expect(result.messages).toEqual([
        { role: 'user', content: { type: 'text', text: "What's weather in Chicago, IL?" } },
      ]);
    });

    it('prompts/get with an embedded resource', async () => {
      const result = await client().api.getPrompt({
        name: ns('resource-prompt'),
        arguments: { resourceType: 'Text', resourceId: '2' },
      });
      expect(result.messages[1]).toEqual({
        role: 'user',
        content: {
          type: 'resource',
          resource: {
            uri: 'demo://resource/dynamic/text/2',
            mimeType: 'text/plain',
            text: expect.stringMatching(/^Resource 2: This is a plaintext resource/),
          },
        },
      });
    });

    it('completion/complete of a prompt argument, with the context of another', async () => {
      const department = await client().api.complete({
        ref: { type: 'ref/prompt', name: ns('completable-prompt') },
        argument: { name: 'department', value: 'S' },
      });
      expect(department.completion.values).toEqual(['Sales', 'Support']);
      const withContext = {
        ref: { type: 'ref/prompt' as const, name: ns('completable-prompt') },
        argument: { name: 'name', value: '' },
        context: { arguments: { department: 'Marketing' } },
      };
      const name = await client().api.complete(withContext);
      expect(name.completion.values).toEqual(['Grace', 'Henry', 'Iris']);
    });
  });

  describe('input the server asks of the client', () => {
    it("sampling: trigger-sampling-request returns the client's answer", async () => {
      const result = await call('trigger-sampling-request', {
        prompt: 'What is 2 + 2?',
        maxTokens: 20,
      });
      expect(answers.samplings).toEqual([
        expect.objectContaining({
          maxTokens: 20,
          systemPrompt: 'You are a helpful test server.',
          messages: [
            {
              role: 'user',
              content: {
                type: 'text',
                text: 'Resource trigger-sampling-request context: What is 2 + 2?',
              },
            },
          ],
        }),
      ]);
      const text = textOf(result);
      expect(text).toMatch(/^LLM sampling result: /);
      expect(JSON.parse(text.replace(/^LLM sampling result: \n/, ''))).toMatchObject({
        model: SAMPLING_MODEL,
        role: 'assistant',
        content: { type: 'text', text: SAMPLED_TEXT },
      });
    });

    it('elicitation: trigger-elicitation-request gets the accepted form', async () => {
      answers.elicitation = {
        action: 'accept',
        content: { name: 'Ada Lovelace', check: true, email: 'ada@example.com', integer: 7 },
      };
      const result = await call('trigger-elicitation-request');
      expect(answers.elicitations).toEqual([
        expect.objectContaining({
          message: 'Please provide inputs for the following fields:',
          requestedSchema: expect.objectContaining({ required: ['name'] }),
        }),
      ]);
      const text = textOf(result);
      expect(text).toContain('User provided the requested information!');
      expect(text).toContain('- Name: Ada Lovelace');
      expect(text).toContain('- Agreed to terms: true');
      expect(text).toContain('- Email: ada@example.com');
      expect(text).toContain('- Favorite Integer: 7');
    });

    it('elicitation: a decline reaches the tool', async () => {
      answers.elicitation = { action: 'decline' };
      const result = await call('trigger-elicitation-request');
      expect(answers.elicitations).toHaveLength(1);
      expect(textOf(result)).toContain('User declined to provide the requested information.');
    });

    it('URL elicitation: the client is sent to the URL and accepts', async () => {
      const id = `${c.sdk}-${c.version}`;
      const url = await connectWithUrlElicitation(c);
      try {
        const result = await url.callTool({
          name: ns('trigger-url-elicitation'),
          arguments: { url: 'https://example.com/consent', elicitationId: id },
        });
        // The 2026-07-28 revision dropped elicitationId from URL mode: SDK v2 hands a modern
        // client's handler the request without it.
        expect(url.answers.elicitations).toEqual([
          {
            mode: 'url',
            url: 'https://example.com/consent',
            message: 'Please open the link to complete this action.',
            ...(!modern && { elicitationId: id }),
          },
        ]);
        expect(textOf(result)).toContain(
          `User completed the URL elicitation flow.\nElicitation ID: ${id}\nURL: https://example.com/consent`,
        );
      } finally {
        await url.close();
      }
    });

    const errorPathTitle = modern
      ? 'URL elicitation: the error path answers -32042 naming the URL to visit'
      : 'URL elicitation: the error path answers -32042 naming the URL to visit; the retry proceeds';
    it(errorPathTitle, async () => {
      const url = await connectWithUrlElicitation(c);
      const params = {
        name: ns('trigger-url-elicitation'),
        arguments: {
          url: 'https://example.com/authorize',
          elicitationId: `err-${c.sdk}-${c.version}`,
          errorPath: true,
        },
      };
      try {
        const refused = await rejectionOf(url.callTool(params));
        expect(refused.code).toBe(-32042);
        expect(refused.data).toMatchObject({
          elicitations: [
            expect.objectContaining({ mode: 'url', url: 'https://modelcontextprotocol.io' }),
          ],
        });
        expect(url.answers.elicitations).toEqual([]);
        if (modern) {
          // The retry is not a case here: a modern client's input round re-runs the 2025
          // upstream's call from the start, and the abandoned first run has already used up
          // server-everything's one-shot "retry" marker, so the re-run answers -32042 again.
          return;
        }
        const retried = await url.callTool(params);
        expect(textOf(retried)).toContain('User completed the URL elicitation flow.');
        expect(url.answers.elicitations).toEqual([
          expect.objectContaining({ mode: 'url', url: 'https://example.com/authorize' }),
        ]);
      } finally {
        await url.close();
      }
    });

    it("roots: get-roots-list returns this client's roots", async () => {
      const result = await call('get-roots-list');
      const text = textOf(result);
      expect(text).toContain(`Current MCP Roots (${c.roots.length} total)`);
      for (const root of c.roots) {
        expect(text).toContain(`${root.name}\n   URI: ${root.uri}`);
      }
    });
  });

  describe('subscriptions', () => {
    afterEach(async () => {
      await switchOff('toggle-subscriber-updates');
    });

    if (modern) {
      it('subscriptions/listen: toggle-subscriber-updates delivers notifications/resources/updated', async () => {
        let subscription: Subscription | undefined;
        try {
          subscription = await client().listen!({ resourceSubscriptions: [FEATURES_URI] });
          expect(subscription.honoredFilter).toEqual({ resourceSubscriptions: [FEATURES_URI] });
          const toggled = await call('toggle-subscriber-updates');
          expect(textOf(toggled)).toMatch(/^Started simulated resource updated notifications/);
          await events.updates.waitFor((uri) => uri === FEATURES_URI, WAIT_MS);
        } finally {
          await subscription?.close();
        }
      });
    } else {
      it('resources/subscribe: toggle-subscriber-updates delivers notifications/resources/updated', async () => {
        await client().api.subscribeResource({ uri: FEATURES_URI });
        try {
          const toggled = await call('toggle-subscriber-updates');
          expect(textOf(toggled)).toMatch(/^Started simulated resource updated notifications/);
          await events.updates.waitFor((uri) => uri === FEATURES_URI, WAIT_MS);
          expect(new Set(events.updates.items)).toEqual(new Set([FEATURES_URI]));
        } finally {
          await client().api.unsubscribeResource({ uri: FEATURES_URI });
        }
      });
    }
  });

  /** A second connection of this client whose capabilities add URL-mode elicitation. */
  async function connectWithUrlElicitation(cc: ClientCase): Promise<{
    answers: ClientAnswers;
    callTool(call: ToolCall): Promise<ToolResult>;
    close(): Promise<void>;
  }> {
    const urlAnswers = new ClientAnswers();
    urlAnswers.elicitation = { action: 'accept' };
    const capabilities = {
      ...CLIENT_CAPABILITIES,
      elicitation: { form: {}, url: {} },
    };
    const fetchWithKey = withApiKey(apiKey);
    if (cc.sdk === 'v1') {
      const v1 = createV1Client({ answers: urlAnswers, capabilities });
      await v1.connect(new V1HttpTransport(new URL(endpoint), { fetch: fetchWithKey }));
      return {
        answers: urlAnswers,
        callTool: (toolCall) => v1.callTool(toolCall),
        close: () => endSessions(v1),
      };
    }
    const v2 = createV2Client(cc.version === MODERN ? 'modern' : 'legacy', {
      answers: urlAnswers,
      capabilities,
    });
    await v2.connect(new StreamableHTTPClientTransport(new URL(endpoint), { fetch: fetchWithKey }));
    return {
      answers: urlAnswers,
      callTool: (toolCall) => v2.callTool(toolCall),
      close: () => endSessions(v2),
    };
  }
});

describe('clients sharing the stdio upstream', () => {
  it("a log message of one client's session reaches no other client's call", async () => {
    const sessionEvents = new ClientEvents();
    const otherEvents = new ClientEvents();
    const session = await connectSuiteClient(
      specFor(CLIENTS[2], new HttpRecorder(withApiKey(apiKey))),
      LEGACY,
      { events: sessionEvents },
    );
    const other = await connectSuiteClient(
      specFor(CLIENTS[0], new HttpRecorder(withApiKey(apiKey))),
      MODERN,
      { events: otherEvents },
    );
    try {
      await session.api.setLoggingLevel('debug');
      const toggle = { name: ns('toggle-simulated-logging'), arguments: {} };
      expect(textOf(await session.callTool(toggle))).toMatch(/^Started simulated/);
      // Long enough to span the session's next simulated log message (every 5 s).
      const result = await other.callTool({
        name: ns('trigger-long-running-operation'),
        arguments: { duration: 8, steps: 1 },
        _meta: { [LOG_LEVEL_KEY]: 'debug' },
      });
      expect(textOf(result)).toMatch(/^Long running operation completed/);
      expect(otherEvents.logs.items).toEqual([]);
    } finally {
      for (let i = 0; i < 2; i++) {
        const text = textOf(await session.callTool({ name: ns('toggle-simulated-logging') }));
        if (text.startsWith('Stopped')) {
          break;
        }
      }
      await endSessions(session.api, other.api);
    }
  }, 30_000);
});

describe('shutdown', () => {
  it('closing the gateway leaves no child process behind', async () => {
    // Every client session has ended, and the child each 2025-era one had with it: the
    // backend's pooled child is left.
    const running = await until(
      () => [...childProcesses().values()].filter((args) => args.includes(EVERYTHING)),
      (everything) => everything.length === 1,
      'only the pooled server-everything child to run',
    );
    expect(running).toHaveLength(1);
    const closing = gateway!.close();
    gateway = undefined;
    await within(closing, WAIT_MS, 'the gateway shutdown');
    const left = await until(
      () => [...childProcesses()].filter(([pid]) => !childrenBefore.has(pid)),
      (extra) => extra.length === 0,
      'the children of the gateway to exit',
    );
    expect(left).toEqual([]);
  });
});

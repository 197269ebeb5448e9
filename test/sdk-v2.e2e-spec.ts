/*
 * The official MCP TypeScript SDK v2 client (@modelcontextprotocol/client) against the real
 * gateway, in each of its era modes: pinned 2026-07-28 (stateless), legacy (2025 initialize and
 * session) and auto (probe with server/discover, fall back to initialize).
 */
import {
  ResourceNotFoundError,
  type Client,
  type McpSubscription,
} from '@modelcontextprotocol/client';
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
} from './support/e2e-catalog';
import { RunningGateway, startGateway } from './support/gateway';
import {
  ClientAnswers,
  closeAll,
  connectV2,
  dropStreamAfter,
  Exchange,
  HttpRecorder,
  Inbox,
  later,
  legacyOnlyFetch,
  notificationMethods,
  rejectionOf,
  requestMethods,
  ROOTS,
  SAMPLED_TEXT,
  SAMPLING_MODEL,
  V2Connection,
  walkPages,
  wireError,
  within,
} from './support/sdk';

const MODERN = '2026-07-28';
const LEGACY = '2025-11-25';
const LOG_LEVEL_KEY = 'io.modelcontextprotocol/logLevel';

let gateway: RunningGateway;
let e2e: E2eCatalog;

// E2E_LOG=debug shows the gateway's own log lines.
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

const isPost = (e: Exchange): boolean => e.httpMethod === 'POST';

describe('SDK v2 era selection (ClientOptions.versionNegotiation.mode)', () => {
  let connection: V2Connection | undefined;

  afterEach(async () => {
    await closeAll(connection?.client);
    connection = undefined;
  });

  it("{ pin: '2026-07-28' } speaks the stateless revision: server/discover, no initialize, no session", async () => {
    connection = await connectV2(gateway.mcpUrl, 'modern');
    const { client, recorder, transport } = connection;
    expect(client.getProtocolEra()).toBe('modern');
    expect(client.getNegotiatedProtocolVersion()).toBe(MODERN);
    expect(client.getServerVersion()).toMatchObject({ name: 'portico' });

    const who = await client.callTool({ name: 'whoami', arguments: {} });
    expect(who.structuredContent).toEqual({ era: 'modern', protocolVersion: MODERN });

    const posts = recorder.exchanges.filter(isPost);
    expect(requestMethods(posts[0])).toEqual(['server/discover']);
    expect(recorder.requestsOf('initialize')).toHaveLength(0);
    expect(recorder.exchanges.filter((e) => e.httpMethod !== 'POST')).toHaveLength(0);
    for (const post of posts) {
      expect(post.requestHeaders['mcp-protocol-version']).toBe(MODERN);
      expect(post.responseHeaders?.['mcp-session-id']).toBeUndefined();
    }
    expect(transport.sessionId).toBeUndefined();
  });

  it("'legacy' runs the 2025 initialize handshake and keeps the session the gateway issues", async () => {
    connection = await connectV2(gateway.mcpUrl, 'legacy');
    const { client, recorder, transport } = connection;
    expect(client.getProtocolEra()).toBe('legacy');
    expect(client.getNegotiatedProtocolVersion()).toBe(LEGACY);

    const who = await client.callTool({ name: 'whoami', arguments: {} });
    expect(who.structuredContent).toEqual({ era: 'legacy', protocolVersion: LEGACY });

    expect(recorder.requestsOf('server/discover')).toHaveLength(0);
    const [init] = recorder.requestsOf('initialize');
    expect(init.status).toBe(200);
    const sessionId = init.responseHeaders?.['mcp-session-id'];
    expect(sessionId).toEqual(expect.any(String));
    expect(transport.sessionId).toBe(sessionId);
    const [call] = recorder.requestsOf('tools/call', 'whoami');
    expect(call.requestHeaders['mcp-session-id']).toBe(sessionId);
    expect(call.requestHeaders['mcp-protocol-version']).toBe(LEGACY);
  });

  it("'auto' probes with server/discover and selects 2026-07-28 on this gateway", async () => {
    connection = await connectV2(gateway.mcpUrl, 'auto');
    const { client, recorder } = connection;
    expect(client.getProtocolEra()).toBe('modern');
    expect(client.getNegotiatedProtocolVersion()).toBe(MODERN);
    expect(requestMethods(recorder.exchanges[0])).toEqual(['server/discover']);
    expect(recorder.requestsOf('initialize')).toHaveLength(0);
    expect(client.getDiscoverResult()?.supportedVersions).toEqual(
      expect.arrayContaining([MODERN, LEGACY]),
    );

    const who = await client.callTool({ name: 'whoami', arguments: {} });
    expect(who.structuredContent).toEqual({ era: 'modern', protocolVersion: MODERN });
  });

  it("'auto' falls back to initialize when the probe meets a 2025-only answer, and the session works", async () => {
    connection = await connectV2(gateway.mcpUrl, 'auto', {
      recorder: new HttpRecorder(legacyOnlyFetch),
    });
    const { client, recorder } = connection;
    expect(client.getProtocolEra()).toBe('legacy');
    expect(client.getNegotiatedProtocolVersion()).toBe(LEGACY);
    const methods = recorder.exchanges.filter(isPost).flatMap(requestMethods);
    expect(methods.slice(0, 2)).toEqual(['server/discover', 'initialize']);

    const who = await client.callTool({ name: 'whoami', arguments: {} });
    expect(who.structuredContent).toEqual({ era: 'legacy', protocolVersion: LEGACY });
  });
});

type Mode = 'modern' | 'legacy';

describe.each<[string, Mode]>([
  ['2026-07-28 (stateless)', 'modern'],
  ['2025-11-25 (session)', 'legacy'],
])('SDK v2 client, %s', (_label, mode) => {
  const version = mode === 'modern' ? MODERN : LEGACY;
  const answers = new ClientAnswers();
  const logs = new Inbox<{ level: string; data: unknown; logger?: string }>();
  const updates = new Inbox<string>();
  const listChanges = new Inbox<string>();
  let connection: V2Connection;
  let client: Client;
  let recorder: HttpRecorder;

  const setup = (c: Client): void => {
    c.setNotificationHandler('notifications/message', (n) => logs.push(n.params));
    c.setNotificationHandler('notifications/resources/updated', (n) => updates.push(n.params.uri));
    for (const method of [
      'notifications/tools/list_changed',
      'notifications/prompts/list_changed',
      'notifications/resources/list_changed',
    ] as const) {
      c.setNotificationHandler(method, () => listChanges.push(method));
    }
  };

  beforeAll(async () => {
    connection = await connectV2(gateway.mcpUrl, mode, { answers, setup });
    ({ client, recorder } = connection);
    expect(client.getNegotiatedProtocolVersion()).toBe(version);
  });

  afterAll(async () => {
    await closeAll(client);
  });

  beforeEach(() => {
    answers.reset();
    logs.clear();
    updates.clear();
    listChanges.clear();
  });

  describe('tools', () => {
    it('lists every tool (the SDK follows the pages of PAGE_SIZE=2)', async () => {
      const { tools } = await client.listTools(undefined, { cacheMode: 'bypass' });
      expect(tools.map((t) => t.name)).toEqual(e2e.toolNames);
    });

    it('calls a tool and gets its result', async () => {
      const result = await client.callTool({ name: 'echo', arguments: { text: 'hi' } });
      expect(result.isError).toBeFalsy();
      expect(firstText(result)).toBe('echo: hi');
    });

    it('returns a tool-level failure as a result with isError', async () => {
      const result = await client.callTool({ name: 'fail', arguments: {} });
      expect(result.isError).toBe(true);
      expect(firstText(result)).toBe('the tool failed on purpose');
    });

    it('answers an unknown tool with a JSON-RPC error -32602', async () => {
      const err = await rejectionOf(client.callTool({ name: 'no-such-tool', arguments: {} }));
      expect(err.code).toBe(-32602);
      expect(err.message).toContain('no-such-tool');
    });

    it('reports arguments that fail the input schema as a tool result with isError', async () => {
      const missing = await client.callTool({ name: 'echo', arguments: {} });
      expect(missing.isError).toBe(true);
      expect(firstText(missing)).toMatch(/Invalid arguments for tool echo/);

      const wrongType = await client.callTool({ name: 'echo', arguments: { text: 42 } });
      expect(wrongType.isError).toBe(true);
    });

    it('answers plain JSON when the handler sends nothing first, SSE when it streams', async () => {
      await client.callTool({ name: 'echo', arguments: { text: 'json' } });
      await client.callTool(
        { name: 'progress', arguments: { steps: 1 } },
        { onprogress: () => {} },
      );
      const [echo] = recorder.requestsOf('tools/call', 'echo').slice(-1);
      const [progress] = recorder.requestsOf('tools/call', 'progress').slice(-1);
      expect(echo.contentType).toBe('application/json');
      expect(progress.contentType).toBe('text/event-stream');
    });
  });

  describe('resources', () => {
    it('lists resources and resource templates', async () => {
      const { resources } = await client.listResources(undefined, { cacheMode: 'bypass' });
      expect(resources.map((r) => r.uri)).toEqual(e2e.resourceUris);
      const { resourceTemplates } = await client.listResourceTemplates(undefined, {
        cacheMode: 'bypass',
      });
      expect(resourceTemplates.map((t) => t.uriTemplate)).toEqual(e2e.templateUris);
    });

    it('reads a text resource', async () => {
      const { contents } = await client.readResource({ uri: TEXT_URI });
      expect(contents).toEqual([
        { uri: TEXT_URI, mimeType: 'text/plain', text: 'Hello from a text resource' },
      ]);
    });

    it('reads a blob resource', async () => {
      const { contents } = await client.readResource({ uri: BLOB_URI });
      expect(contents).toEqual([
        { uri: BLOB_URI, mimeType: 'application/octet-stream', blob: BLOB_BASE64 },
      ]);
    });

    it('reads an instance of a resource template', async () => {
      const { contents } = await client.readResource({ uri: 'test://items/beta' });
      expect(contents).toEqual([
        { uri: 'test://items/beta', mimeType: 'text/plain', text: 'item beta' },
      ]);
    });

    const notFound = mode === 'modern' ? -32602 : -32002;
    it(`answers an unknown URI with ${notFound} on the wire (resource not found in this era)`, async () => {
      const uri = 'test://nowhere';
      const err = await rejectionOf(client.readResource({ uri }));
      // SDK v2 surfaces both wire codes as ResourceNotFoundError (code -32602, data.uri).
      expect(err.error).toBeInstanceOf(ResourceNotFoundError);
      expect(err.data).toEqual({ uri });
      const [read] = recorder.requestsOf('resources/read', uri);
      expect(wireError(read)).toMatchObject({ code: notFound, data: { uri } });
    });
  });

  describe('prompts', () => {
    it('lists prompts', async () => {
      const { prompts } = await client.listPrompts(undefined, { cacheMode: 'bypass' });
      expect(prompts.map((p) => p.name)).toEqual(e2e.promptNames);
    });

    it('gets a prompt with arguments', async () => {
      const result = await client.getPrompt({
        name: 'greeting',
        arguments: { name: 'Ada', style: 'formal' },
      });
      expect(result.messages).toEqual([
        { role: 'user', content: { type: 'text', text: 'Greet Ada in a formal style.' } },
      ]);
    });

    it('rejects a missing required argument with -32602', async () => {
      const err = await rejectionOf(client.getPrompt({ name: 'greeting', arguments: {} }));
      expect(err.code).toBe(-32602);
    });
  });

  describe('pagination (PAGE_SIZE=2)', () => {
    type ListMethod = 'tools/list' | 'resources/list' | 'resources/templates/list' | 'prompts/list';
    type Page = Record<string, unknown> & { nextCursor?: string };
    // client.listTools() & co. aggregate every page themselves when given no cursor; the raw
    // request shows each page as the gateway cut it.
    const page = async (method: ListMethod, cursor?: string): Promise<Page> =>
      await client.request({ method, params: cursor === undefined ? {} : { cursor } });

    it.each<[ListMethod, string, string, () => string[]]>([
      ['tools/list', 'tools', 'name', () => e2e.toolNames],
      ['resources/list', 'resources', 'uri', () => e2e.resourceUris],
      ['resources/templates/list', 'resourceTemplates', 'uriTemplate', () => e2e.templateUris],
      ['prompts/list', 'prompts', 'name', () => e2e.promptNames],
    ])('follows nextCursor through every page of %s', async (method, field, key, expected) => {
      const pages = await walkPages((cursor) => page(method, cursor));
      const items = pages.map((p) => p[field] as Record<string, string>[]);
      expect(items.flat().map((item) => item[key])).toEqual(expected());
      expect(pages).toHaveLength(Math.ceil(expected().length / 2));
      for (const list of items) {
        expect(list.length).toBeGreaterThan(0);
        expect(list.length).toBeLessThanOrEqual(2);
      }
    });

    it('rejects a cursor it did not issue with -32602', async () => {
      const err = await rejectionOf(client.listTools({ cursor: 'not-a-cursor' }));
      expect(err.code).toBe(-32602);
    });

    it('rejects a cursor of another list with -32602', async () => {
      const { nextCursor } = await page('prompts/list');
      expect(nextCursor).toEqual(expect.any(String));
      const err = await rejectionOf(client.listTools({ cursor: nextCursor }));
      expect(err.code).toBe(-32602);
    });
  });

  describe('progress', () => {
    it('delivers every progress notification to onprogress before the result', async () => {
      const seen: { progress: number; total?: number; message?: string }[] = [];
      const result = await client.callTool(
        { name: 'progress', arguments: { steps: 3 } },
        { onprogress: (p) => seen.push(p) },
      );
      expect(firstText(result)).toBe('done after 3 steps');
      expect(seen).toEqual([
        { progress: 1, total: 3, message: 'step 1' },
        { progress: 2, total: 3, message: 'step 2' },
        { progress: 3, total: 3, message: 'step 3' },
      ]);
    });
  });

  describe('cancellation', () => {
    const how =
      mode === 'modern'
        ? 'aborting the request closes its stream, which cancels the handler'
        : 'aborting the request sends notifications/cancelled, which aborts ctx.signal';
    it(how, async () => {
      const key = `v2-${mode}`;
      const controller = new AbortController();
      const call = later(
        client.callTool({ name: 'slow', arguments: { key } }, { signal: controller.signal }),
      );
      await e2e.probes.wait(`slow:${key}:started`);
      controller.abort('user pressed stop');
      await rejectionOf(call);
      await e2e.probes.wait(`slow:${key}:aborted`);
      expect(e2e.probes.fired(`slow:${key}:completed`)).toBe(false);

      const [request] = recorder.requestsOf('tools/call', 'slow');
      const requestId = request.messages[0].id;
      const cancels = recorder.exchanges.filter((e) =>
        notificationMethods(e).includes('notifications/cancelled'),
      );
      if (mode === 'legacy') {
        expect(cancels.map((e) => e.messages[0].params?.requestId)).toContain(requestId);
      } else {
        // 2026-07-28 over HTTP: the closed stream is the cancellation, nothing else is sent.
        expect(cancels).toHaveLength(0);
      }
    });
  });

  describe('logging', () => {
    if (mode === 'legacy') {
      it('logging/setLevel filters what a tool logs on the session', async () => {
        await client.setLoggingLevel('warning');
        await client.callTool({ name: 'log', arguments: {} });
        await logs.waitFor((l) => l.level === 'error');
        expect(logs.items.map((l) => l.level)).toEqual(['warning', 'error']);
        expect(logs.items[0]).toEqual({
          level: 'warning',
          logger: 'e2e',
          data: { said: 'warning' },
        });

        logs.clear();
        await client.setLoggingLevel('debug');
        await client.callTool({ name: 'log', arguments: {} });
        await logs.waitFor((l) => l.level === 'error');
        expect(logs.items.map((l) => l.level)).toEqual([...LOGGED_LEVELS]);
      });
    } else {
      it('the logLevel _meta envelope key filters what a tool logs on its response stream', async () => {
        await client.callTool({
          name: 'log',
          arguments: {},
          _meta: { [LOG_LEVEL_KEY]: 'warning' },
        });
        await logs.waitFor((l) => l.level === 'error');
        expect(logs.items.map((l) => l.level)).toEqual(['warning', 'error']);
        expect(logs.items[0]).toEqual({
          level: 'warning',
          logger: 'e2e',
          data: { said: 'warning' },
        });
      });

      it('sends no log messages when the request names no logLevel', async () => {
        await client.callTool({ name: 'log', arguments: {} });
        const [call] = recorder.requestsOf('tools/call', 'log').slice(-1);
        // Nothing preceded the result, so the gateway had no reason to open a stream.
        expect(call.contentType).toBe('application/json');
        expect(logs.items).toEqual([]);
      });
    }
  });

  describe(
    mode === 'modern' ? 'input_required round trips (MRTR)' : 'server-to-client requests',
    () => {
      const reruns = (n: number): number => (mode === 'modern' ? n : 1);

      it('elicitation: the client answers and the tool uses the answer', async () => {
        const before = e2e.probes.count('elicit');
        const result = await client.callTool({ name: 'elicit', arguments: {} });
        expect(firstText(result)).toBe('Hello, Ada!');
        expect(answers.elicitations).toHaveLength(1);
        expect(answers.elicitations[0]).toMatchObject({ message: 'What is your name?' });
        // 2026: the handler ran, returned input_required, and ran again with the answer.
        expect(e2e.probes.count('elicit') - before).toBe(reruns(2));
        if (mode === 'modern') {
          const calls = recorder.requestsOf('tools/call', 'elicit').slice(-2);
          expect(calls).toHaveLength(2);
          expect(calls[1].messages[0].params).toMatchObject({
            inputResponses: expect.any(Object),
            requestState: expect.any(String),
          });
        }
      });

      it('elicitation: a declined elicitation reaches the tool', async () => {
        answers.elicitation = { action: 'decline' };
        const result = await client.callTool({ name: 'elicit', arguments: {} });
        expect(firstText(result)).toBe('elicitation decline');
      });

      it('sampling: the client model answers', async () => {
        const result = await client.callTool({ name: 'sample', arguments: {} });
        expect(firstText(result)).toBe(`model ${SAMPLING_MODEL} said: ${SAMPLED_TEXT}`);
        expect(answers.samplings).toHaveLength(1);
        expect(answers.samplings[0]).toMatchObject({
          maxTokens: 16,
          messages: [{ role: 'user', content: { type: 'text', text: SAMPLING_PROMPT } }],
        });
      });

      it('roots: the client lists its roots', async () => {
        const result = await client.callTool({ name: 'roots', arguments: {} });
        expect(firstText(result)).toBe(`roots: ${ROOTS.map((r) => r.uri).join(', ')}`);
        expect(answers.rootsListed).toBe(1);
      });

      it('three inputs in one call: each is asked once and earlier answers are replayed', async () => {
        const before = e2e.probes.count('interview');
        const result = await client.callTool({ name: 'interview', arguments: { topic: 'MCP' } });
        expect(firstText(result)).toBe(`Ada / ${SAMPLED_TEXT} / ${ROOTS.length} roots`);
        expect(answers.elicitations).toHaveLength(1);
        expect(answers.samplings).toHaveLength(1);
        expect(answers.rootsListed).toBe(1);
        expect(e2e.probes.count('interview') - before).toBe(reruns(4));
      });

      if (mode === 'modern') {
        it('a client that did not declare elicitation gets -32021 naming the capability', async () => {
          const bare = await connectV2(gateway.mcpUrl, 'modern', { capabilities: {} });
          try {
            const err = await rejectionOf(bare.client.callTool({ name: 'elicit', arguments: {} }));
            expect(err.code).toBe(-32021);
            expect(err.data).toEqual({ requiredCapabilities: { elicitation: {} } });
          } finally {
            await closeAll(bare.client);
          }
        });
      }
    },
  );

  describe('completion', () => {
    it('completes a prompt argument', async () => {
      const { completion } = await client.complete({
        ref: { type: 'ref/prompt', name: 'greeting' },
        argument: { name: 'style', value: 'f' },
      });
      expect(completion.values).toEqual(['formal', 'friendly']);
      expect(completion.hasMore).toBe(false);
    });

    it('completes a resource template variable', async () => {
      const { completion } = await client.complete({
        ref: { type: 'ref/resource', uri: ITEM_TEMPLATE },
        argument: { name: 'id', value: 'b' },
      });
      expect(completion.values).toEqual(['beta']);
    });
  });

  if (mode === 'legacy') {
    describe('session notifications on the GET stream', () => {
      beforeAll(async () => {
        // Unsolicited notifications need the standalone stream the client opens after initialized.
        await recorder.waitFor((e) => e.httpMethod === 'GET' && e.status === 200);
      });

      it('resources/subscribe delivers updates for the subscribed URI only', async () => {
        await client.subscribeResource({ uri: WATCHED_URI });
        e2e.catalog.notify({ type: 'resource-updated', uri: OTHER_URI });
        e2e.catalog.notify({ type: 'resource-updated', uri: WATCHED_URI });
        await updates.waitFor((uri) => uri === WATCHED_URI);
        expect(updates.items).toEqual([WATCHED_URI]);

        await client.unsubscribeResource({ uri: WATCHED_URI });
        e2e.catalog.notify({ type: 'resource-updated', uri: WATCHED_URI });
        e2e.catalog.notify({ type: 'tools-changed' });
        await listChanges.waitFor();
        expect(updates.items).toEqual([WATCHED_URI]);
      });

      it('announces list changes for tools, prompts and resources', async () => {
        e2e.catalog.notify({ type: 'tools-changed' });
        e2e.catalog.notify({ type: 'prompts-changed' });
        e2e.catalog.notify({ type: 'resources-changed' });
        await listChanges.waitFor((m) => m === 'notifications/resources/list_changed');
        expect(listChanges.items).toEqual([
          'notifications/tools/list_changed',
          'notifications/prompts/list_changed',
          'notifications/resources/list_changed',
        ]);
      });
    });
  } else {
    describe('subscriptions/listen', () => {
      let subscription: McpSubscription | undefined;

      afterEach(async () => {
        await subscription?.close();
        subscription = undefined;
      });

      it('delivers resource updates for the URIs it names only', async () => {
        subscription = await client.listen({ resourceSubscriptions: [WATCHED_URI] });
        expect(subscription.honoredFilter).toEqual({ resourceSubscriptions: [WATCHED_URI] });
        e2e.catalog.notify({ type: 'resource-updated', uri: OTHER_URI });
        e2e.catalog.notify({ type: 'tools-changed' });
        e2e.catalog.notify({ type: 'resource-updated', uri: WATCHED_URI });
        await updates.waitFor((uri) => uri === WATCHED_URI);
        expect(updates.items).toEqual([WATCHED_URI]);
        expect(listChanges.items).toEqual([]);
      });

      it('announces list changes for tools, prompts and resources', async () => {
        subscription = await client.listen({
          toolsListChanged: true,
          promptsListChanged: true,
          resourcesListChanged: true,
        });
        expect(subscription.honoredFilter).toEqual({
          toolsListChanged: true,
          promptsListChanged: true,
          resourcesListChanged: true,
        });
        e2e.catalog.notify({ type: 'tools-changed' });
        e2e.catalog.notify({ type: 'prompts-changed' });
        e2e.catalog.notify({ type: 'resources-changed' });
        await listChanges.waitFor((m) => m === 'notifications/resources/list_changed');
        expect(listChanges.items).toEqual([
          'notifications/tools/list_changed',
          'notifications/prompts/list_changed',
          'notifications/resources/list_changed',
        ]);
      });

      it('close() ends the subscription locally', async () => {
        const sub = await client.listen({ toolsListChanged: true });
        await sub.close();
        await expect(within(sub.closed)).resolves.toBe('local');
      });
    });
  }
});

describe('SDK v2 listChanged option (auto-refresh on change)', () => {
  it.each<[Mode]>([['modern'], ['legacy']])(
    '%s: a tools change makes the client refetch the list and call onChanged',
    async (mode) => {
      const changed = new Inbox<string[]>();
      const connection = await connectV2(gateway.mcpUrl, mode, {
        clientOptions: {
          listChanged: {
            tools: {
              debounceMs: 0,
              onChanged: (error, tools) => {
                if (!error && tools) {
                  changed.push(tools.map((t) => t.name));
                }
              },
            },
          },
        },
      });
      try {
        const { client, recorder } = connection;
        if (mode === 'modern') {
          const sub = client.autoOpenedSubscription;
          expect(sub?.honoredFilter).toEqual({ toolsListChanged: true });
        } else {
          await recorder.waitFor((e) => e.httpMethod === 'GET' && e.status === 200);
        }
        e2e.catalog.notify({ type: 'tools-changed' });
        await expect(changed.waitFor()).resolves.toEqual(e2e.toolNames);
      } finally {
        await closeAll(connection.client);
      }
    },
  );
});

describe('SDK v2 subscription at gateway shutdown', () => {
  it('a subscriptions/listen stream ends gracefully when the gateway closes', async () => {
    const own = createE2eCatalog();
    const local = await startGateway({ LOG_LEVEL: 'silent' }, { catalog: own.catalog });
    let connection: V2Connection | undefined;
    try {
      connection = await connectV2(local.mcpUrl, 'modern');
      const sub = await connection.client.listen({ toolsListChanged: true });
      const closing = later(local.close());
      await expect(within(sub.closed)).resolves.toBe('graceful');
      await closing;
    } finally {
      await closeAll(connection?.client);
      await local.close().catch(() => undefined);
    }
  });
});

describe('SDK v2 legacy mode on earlier 2025 revisions (ProtocolOptions.supportedProtocolVersions)', () => {
  it.each([['2025-06-18'], ['2025-03-26'], ['2024-11-05']])(
    '%s: negotiated as offered; results carry only fields that revision defines',
    async (offered) => {
      const connection = await connectV2(gateway.mcpUrl, 'legacy', {
        clientOptions: { supportedProtocolVersions: [offered] },
      });
      try {
        const { client } = connection;
        expect(client.getNegotiatedProtocolVersion()).toBe(offered);
        const hasStructured = offered >= '2025-06-18';
        const { tools } = await client.listTools(undefined, { cacheMode: 'bypass' });
        const whoami = tools.find((t) => t.name === 'whoami');
        expect(whoami?.outputSchema !== undefined).toBe(hasStructured);
        const result = await client.callTool({ name: 'whoami', arguments: {} });
        expect(firstText(result)).toBe(`legacy ${offered}`);
        expect(result.structuredContent !== undefined).toBe(hasStructured);

        const seen: number[] = [];
        await client.callTool(
          { name: 'progress', arguments: { steps: 2 } },
          { onprogress: (p) => seen.push(p.progress) },
        );
        expect(seen).toEqual([1, 2]);
      } finally {
        await closeAll(connection.client);
      }
    },
  );
});

describe('SDK v2 legacy mode: stream resumption after a dropped SSE response', () => {
  it('reconnects with Last-Event-ID and receives the missed progress and the result', async () => {
    const key = 'v2-drop';
    const recorder = new HttpRecorder();
    const progressSeen = new Inbox<{ progress: number }>();
    let dropped = false;
    recorder.transformResponses((exchange, response) => {
      const target =
        exchange.contentType === 'text/event-stream' &&
        exchange.messages.some((m) => m.method === 'tools/call' && m.params?.name === 'resumable');
      if (!target || dropped) {
        return response;
      }
      dropped = true;
      return dropStreamAfter(
        response,
        '"notifications/progress"',
        progressSeen.waitFor((p) => p.progress === 1),
        () => e2e.probes.fire(`resumable:${key}:dropped`),
      );
    });
    const reconnect = recorder.hold(
      (e) => e.httpMethod === 'GET' && 'last-event-id' in e.requestHeaders,
    );
    const connection = await connectV2(gateway.mcpUrl, 'legacy', { recorder });
    try {
      const { client } = connection;
      client.onerror = () => undefined; // the drop is reported here; it is expected
      const call = later(
        client.callTool(
          { name: 'resumable', arguments: { key } },
          { onprogress: progressSeen.push },
        ),
      );
      await e2e.probes.wait(`resumable:${key}:dropped`);
      const held = await within(reconnect.hit, 3000, 'the reconnection GET');
      const lastEventId = held.requestHeaders['last-event-id'];
      expect(held.requestHeaders['mcp-session-id']).toBe(connection.transport.sessionId);

      e2e.probes.fire(`resumable:${key}:gate-a`);
      await e2e.probes.wait(`resumable:${key}:progress-2`);
      reconnect.release();
      const resumed = await recorder.waitFor(
        (e) => e.httpMethod === 'GET' && e.requestHeaders['last-event-id'] === lastEventId,
      );
      expect(resumed.status).toBe(200);
      await progressSeen.waitFor((p) => p.progress === 2);
      e2e.probes.fire(`resumable:${key}:gate-b`);
      const result = await within(call, 3000, 'the resumed tools/call');
      expect(firstText(result)).toBe(`resumed ${key}`);
      expect(progressSeen.items.map((p) => p.progress)).toEqual([1, 2]);
    } finally {
      reconnect.release();
      await closeAll(connection.client);
    }
  });
});

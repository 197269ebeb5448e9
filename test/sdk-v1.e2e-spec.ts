/*
 * The official MCP TypeScript SDK v1 client (@modelcontextprotocol/sdk 1.32, Client +
 * StreamableHTTPClientTransport, protocol 2025-11-25) against the real gateway.
 *
 * Whether a POST is answered with plain JSON or with an SSE stream is the server's choice: the
 * gateway answers JSON when a handler sends nothing before its result and upgrades to SSE as
 * soon as it emits progress, logs or a server-to-client request. Both kinds of call are covered
 * and the recording fetch checks which content type actually came back.
 */
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  LoggingMessageNotificationSchema,
  PromptListChangedNotificationSchema,
  ResourceListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
  type Progress,
} from '@modelcontextprotocol/sdk/types.js';
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
  connectV1,
  dropStreamAfter,
  Exchange,
  HttpRecorder,
  Inbox,
  later,
  notificationMethods,
  rejectionOf,
  ROOTS,
  SAMPLED_TEXT,
  SAMPLING_MODEL,
  V1Connection,
  walkPages,
  wireError,
  within,
} from './support/sdk';

const VERSION = '2025-11-25';
const JSON_TYPE = 'application/json';
const SSE_TYPE = 'text/event-stream';

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

describe('SDK v1 client (Client + StreamableHTTPClientTransport, 2025-11-25)', () => {
  const answers = new ClientAnswers();
  const logs = new Inbox<{ level: string; data: unknown; logger?: string }>();
  const updates = new Inbox<string>();
  const listChanges = new Inbox<string>();
  let connection: V1Connection;
  let client: Client;
  let recorder: HttpRecorder;

  /** The content type of the last response to `method` (for `name`, a tool, prompt or URI). */
  const answeredWith = (method: string, name?: string): string | undefined =>
    recorder.requestsOf(method, name).slice(-1)[0]?.contentType;

  beforeAll(async () => {
    connection = await connectV1(gateway.mcpUrl, {
      answers,
      setup: (c) => {
        c.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params));
        c.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) =>
          updates.push(n.params.uri),
        );
        c.setNotificationHandler(ToolListChangedNotificationSchema, (n) =>
          listChanges.push(n.method),
        );
        c.setNotificationHandler(PromptListChangedNotificationSchema, (n) =>
          listChanges.push(n.method),
        );
        c.setNotificationHandler(ResourceListChangedNotificationSchema, (n) =>
          listChanges.push(n.method),
        );
      },
    });
    ({ client, recorder } = connection);
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

  describe('session', () => {
    it('negotiates 2025-11-25 and carries the session id the gateway issued', async () => {
      expect(client.getServerVersion()).toMatchObject({ name: 'portico' });
      expect(connection.transport.protocolVersion).toBe(VERSION);
      const [init] = recorder.requestsOf('initialize');
      expect(init.contentType).toBe(JSON_TYPE);
      const sessionId = init.responseHeaders?.['mcp-session-id'];
      expect(sessionId).toEqual(expect.any(String));
      expect(connection.transport.sessionId).toBe(sessionId);
      expect(client.getServerCapabilities()).toMatchObject({
        tools: { listChanged: true },
        resources: { subscribe: true, listChanged: true },
        prompts: { listChanged: true },
        logging: {},
        completions: {},
      });
    });

    it('opens the standalone GET stream after notifications/initialized', async () => {
      const get = await recorder.waitFor((e) => e.httpMethod === 'GET');
      expect(get.status).toBe(200);
      expect(get.contentType).toBe(SSE_TYPE);
    });
  });

  describe('JSON mode: handlers that send nothing before their result get plain JSON', () => {
    it('follows nextCursor through every page of each list (PAGE_SIZE=2)', async () => {
      const tools = await walkPages((cursor) => client.listTools(cursor ? { cursor } : {}));
      expect(tools.flatMap((p) => p.tools.map((t) => t.name))).toEqual(e2e.toolNames);
      expect(tools.length).toBe(Math.ceil(e2e.toolNames.length / 2));

      const resources = await walkPages((cursor) => client.listResources(cursor ? { cursor } : {}));
      expect(resources.flatMap((p) => p.resources.map((r) => r.uri))).toEqual(e2e.resourceUris);

      const templates = await walkPages((cursor) =>
        client.listResourceTemplates(cursor ? { cursor } : {}),
      );
      expect(templates.flatMap((p) => p.resourceTemplates.map((t) => t.uriTemplate))).toEqual(
        e2e.templateUris,
      );

      const prompts = await walkPages((cursor) => client.listPrompts(cursor ? { cursor } : {}));
      expect(prompts.flatMap((p) => p.prompts.map((x) => x.name))).toEqual(e2e.promptNames);

      for (const page of [...tools, ...resources, ...templates, ...prompts]) {
        const items = Object.values(page).find(Array.isArray) as unknown[];
        expect(items.length).toBeLessThanOrEqual(2);
      }
      for (const method of [
        'tools/list',
        'resources/list',
        'resources/templates/list',
        'prompts/list',
      ]) {
        const exchanges = recorder.requestsOf(method);
        expect(exchanges.length).toBeGreaterThan(1);
        for (const e of exchanges) {
          expect(e.contentType).toBe(JSON_TYPE);
        }
      }
    });

    it('rejects a bad cursor with -32602', async () => {
      const err = await rejectionOf(client.listTools({ cursor: 'bogus' }));
      expect(err.code).toBe(-32602);
      const first = await client.listResources({});
      const foreign = await rejectionOf(client.listPrompts({ cursor: first.nextCursor }));
      expect(foreign.code).toBe(-32602);
    });

    it('calls a tool', async () => {
      const result = await client.callTool({ name: 'echo', arguments: { text: 'v1' } });
      expect(firstText(result)).toBe('echo: v1');
      expect(answeredWith('tools/call', 'echo')).toBe(JSON_TYPE);
    });

    it('returns structuredContent that matches the declared outputSchema', async () => {
      await client.listTools({}); // lets the SDK compile output validators for the first page
      const result = await client.callTool({ name: 'whoami', arguments: {} });
      expect(result.structuredContent).toEqual({ era: 'legacy', protocolVersion: VERSION });
    });

    it('returns isError results', async () => {
      const result = await client.callTool({ name: 'fail', arguments: {} });
      expect(result.isError).toBe(true);
      expect(firstText(result)).toBe('the tool failed on purpose');
      expect(answeredWith('tools/call', 'fail')).toBe(JSON_TYPE);
    });

    it('answers an unknown tool with a JSON-RPC error -32602', async () => {
      const err = await rejectionOf(client.callTool({ name: 'nope', arguments: {} }));
      expect(err.code).toBe(-32602);
      expect(wireError(recorder.requestsOf('tools/call', 'nope')[0])?.code).toBe(-32602);
    });

    it('reports schema-invalid arguments as an isError result', async () => {
      const result = await client.callTool({
        name: 'echo',
        arguments: { text: ['not', 'a', 'string'] },
      });
      expect(result.isError).toBe(true);
      expect(firstText(result)).toMatch(/Invalid arguments for tool echo/);
    });

    it('reads text, blob and templated resources', async () => {
      const text = await client.readResource({ uri: TEXT_URI });
      expect(text.contents).toEqual([
        { uri: TEXT_URI, mimeType: 'text/plain', text: 'Hello from a text resource' },
      ]);
      const blob = await client.readResource({ uri: BLOB_URI });
      expect(blob.contents).toEqual([
        { uri: BLOB_URI, mimeType: 'application/octet-stream', blob: BLOB_BASE64 },
      ]);
      const item = await client.readResource({ uri: 'test://items/gamma' });
      expect(item.contents).toEqual([
        { uri: 'test://items/gamma', mimeType: 'text/plain', text: 'item gamma' },
      ]);
      expect(answeredWith('resources/read', BLOB_URI)).toBe(JSON_TYPE);
    });

    it('answers an unknown resource with -32002 (2025 resource not found)', async () => {
      const uri = 'test://missing';
      const err = await rejectionOf(client.readResource({ uri }));
      expect(err.code).toBe(-32002);
      expect(err.data).toEqual({ uri });
    });

    it('gets a prompt with arguments, and rejects a missing required one with -32602', async () => {
      const result = await client.getPrompt({ name: 'greeting', arguments: { name: 'Lin' } });
      expect(result.messages).toEqual([
        { role: 'user', content: { type: 'text', text: 'Greet Lin in a neutral style.' } },
      ]);
      const err = await rejectionOf(
        client.getPrompt({ name: 'greeting', arguments: { style: 'pirate' } }),
      );
      expect(err.code).toBe(-32602);
    });

    it('completes prompt arguments and template variables', async () => {
      const styles = await client.complete({
        ref: { type: 'ref/prompt', name: 'greeting' },
        argument: { name: 'style', value: 'p' },
      });
      expect(styles.completion.values).toEqual(['pirate']);
      const ids = await client.complete({
        ref: { type: 'ref/resource', uri: ITEM_TEMPLATE },
        argument: { name: 'id', value: '' },
      });
      expect(ids.completion).toEqual({
        values: ['alpha', 'beta', 'gamma'],
        total: 3,
        hasMore: false,
      });
      expect(answeredWith('completion/complete')).toBe(JSON_TYPE);
    });
  });

  describe('SSE mode: handlers that stream first get a text/event-stream answer', () => {
    it('progress notifications reach onprogress, then the result', async () => {
      const seen: Progress[] = [];
      const result = await client.callTool(
        { name: 'progress', arguments: { steps: 2 } },
        undefined,
        { onprogress: (p) => seen.push(p) },
      );
      expect(firstText(result)).toBe('done after 2 steps');
      expect(seen).toEqual([
        { progress: 1, total: 2, message: 'step 1' },
        { progress: 2, total: 2, message: 'step 2' },
      ]);
      expect(answeredWith('tools/call', 'progress')).toBe(SSE_TYPE);
    });

    it('logging/setLevel filters the log messages a tool emits', async () => {
      await client.setLoggingLevel('error');
      await client.callTool({ name: 'log', arguments: {} });
      await logs.waitFor((l) => l.level === 'error');
      expect(logs.items).toEqual([{ level: 'error', logger: 'e2e', data: { said: 'error' } }]);
      expect(answeredWith('tools/call', 'log')).toBe(SSE_TYPE);

      logs.clear();
      await client.setLoggingLevel('info');
      await client.callTool({ name: 'log', arguments: {} });
      await logs.waitFor((l) => l.level === 'error');
      expect(logs.items.map((l) => l.level)).toEqual(LOGGED_LEVELS.filter((l) => l !== 'debug'));
    });

    it('elicitation: the client answers mid-call', async () => {
      const before = e2e.probes.count('elicit');
      const result = await client.callTool({ name: 'elicit', arguments: {} });
      expect(firstText(result)).toBe('Hello, Ada!');
      expect(answers.elicitations).toEqual([
        expect.objectContaining({ message: 'What is your name?' }),
      ]);
      expect(e2e.probes.count('elicit') - before).toBe(1);
      expect(answeredWith('tools/call', 'elicit')).toBe(SSE_TYPE);
      // The client's answer travelled as its own POST (a JSON-RPC response), acknowledged 202.
      const answer = recorder.exchanges.find((e) =>
        e.messages.some(
          (m) => m.result !== undefined && (m.result as { action?: string }).action === 'accept',
        ),
      );
      expect(answer?.status).toBe(202);
    });

    it('elicitation: cancel reaches the tool', async () => {
      answers.elicitation = { action: 'cancel' };
      const result = await client.callTool({ name: 'elicit', arguments: {} });
      expect(firstText(result)).toBe('elicitation cancel');
    });

    it('sampling: the client model answers mid-call', async () => {
      const result = await client.callTool({ name: 'sample', arguments: {} });
      expect(firstText(result)).toBe(`model ${SAMPLING_MODEL} said: ${SAMPLED_TEXT}`);
      expect(answers.samplings[0]).toMatchObject({
        messages: [{ role: 'user', content: { type: 'text', text: SAMPLING_PROMPT } }],
      });
      expect(answeredWith('tools/call', 'sample')).toBe(SSE_TYPE);
    });

    it('roots: the client lists its roots mid-call', async () => {
      const result = await client.callTool({ name: 'roots', arguments: {} });
      expect(firstText(result)).toBe(`roots: ${ROOTS.map((r) => r.uri).join(', ')}`);
      expect(answers.rootsListed).toBe(1);
    });

    it('several server-to-client requests in one call run the handler once', async () => {
      const before = e2e.probes.count('interview');
      const result = await client.callTool({ name: 'interview', arguments: { topic: 'SSE' } });
      expect(firstText(result)).toBe(`Ada / ${SAMPLED_TEXT} / ${ROOTS.length} roots`);
      expect(e2e.probes.count('interview') - before).toBe(1);
    });

    it('both content types were seen on this session', () => {
      const types = new Set(
        recorder.exchanges.filter((e) => e.httpMethod === 'POST').map((e) => e.contentType),
      );
      expect(types).toContain(JSON_TYPE);
      expect(types).toContain(SSE_TYPE);
    });
  });

  describe('cancellation', () => {
    it('an aborted call sends notifications/cancelled and the tool observes ctx.signal abort', async () => {
      const controller = new AbortController();
      const call = later(
        client.callTool({ name: 'slow', arguments: { key: 'v1' } }, undefined, {
          signal: controller.signal,
        }),
      );
      await e2e.probes.wait('slow:v1:started');
      controller.abort('no longer needed');
      await rejectionOf(call);
      await e2e.probes.wait('slow:v1:aborted');
      const [request] = recorder.requestsOf('tools/call', 'slow');
      const cancel = await recorder.waitFor((e: Exchange) =>
        notificationMethods(e).includes('notifications/cancelled'),
      );
      expect(cancel.messages[0].params).toMatchObject({ requestId: request.messages[0].id });
      expect(cancel.status).toBe(202);
      expect(e2e.probes.fired('slow:v1:completed')).toBe(false);
    });

    // Streamable HTTP (2025-03-26 and later): "If the input is a JSON-RPC request, the server
    // MUST either return Content-Type: text/event-stream ... or Content-Type: application/json".
    // 202 Accepted is for notifications and responses only, even when the request was cancelled
    // (an SSE stream that ends without a response honours both that MUST and cancellation's
    // "SHOULD NOT send a response").
    it('the POST that carried the cancelled request is still answered as a request, not 202', async () => {
      const controller = new AbortController();
      const call = later(
        client.callTool({ name: 'slow', arguments: { key: 'v1-http' } }, undefined, {
          signal: controller.signal,
        }),
      );
      await e2e.probes.wait('slow:v1-http:started');
      controller.abort('no longer needed');
      await rejectionOf(call);
      await e2e.probes.wait('slow:v1-http:aborted');
      const post = await recorder.waitFor((e) =>
        e.messages.some(
          (m) =>
            m.method === 'tools/call' &&
            (m.params?.arguments as { key?: string } | undefined)?.key === 'v1-http',
        ),
      );
      expect(post.status).toBe(200);
      expect([JSON_TYPE, SSE_TYPE]).toContain(post.contentType);
    });
  });

  describe('notifications on the standalone GET stream', () => {
    beforeAll(async () => {
      await recorder.waitFor((e) => e.httpMethod === 'GET' && e.status === 200);
    });

    it('resources/subscribe: updates arrive for the subscribed URI only', async () => {
      await client.subscribeResource({ uri: WATCHED_URI });
      e2e.catalog.notify({ type: 'resource-updated', uri: OTHER_URI });
      e2e.catalog.notify({ type: 'resource-updated', uri: WATCHED_URI });
      await updates.waitFor((uri) => uri === WATCHED_URI);
      expect(updates.items).toEqual([WATCHED_URI]);
    });

    it('list_changed for tools, prompts and resources', async () => {
      e2e.catalog.notify({ type: 'prompts-changed' });
      e2e.catalog.notify({ type: 'resources-changed' });
      e2e.catalog.notify({ type: 'tools-changed' });
      await listChanges.waitFor((m) => m === 'notifications/tools/list_changed');
      expect(listChanges.items).toEqual([
        'notifications/prompts/list_changed',
        'notifications/resources/list_changed',
        'notifications/tools/list_changed',
      ]);
    });
  });
});

describe('SDK v1 stream resumption after a dropped SSE response (Last-Event-ID)', () => {
  let connection: V1Connection | undefined;
  let releaseHeld: (() => void) | undefined;

  afterEach(async () => {
    releaseHeld?.();
    await closeAll(connection?.client);
    connection = undefined;
  });

  it('reconnects with Last-Event-ID, gets the missed event replayed and the result live', async () => {
    const key = 'drop-1';
    const recorder = new HttpRecorder();
    const progressSeen = new Inbox<Progress>();
    const clientErrors: Error[] = [];
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
        progressSeen.waitFor((p) => p.progress === 1),
        () => e2e.probes.fire(`resumable:${key}:dropped`),
      );
    });
    // The reconnection is held until the tool has emitted (and the gateway stored) an event
    // the client never saw, so that event can only arrive through replay.
    const reconnect = recorder.hold(
      (e) => e.httpMethod === 'GET' && 'last-event-id' in e.requestHeaders,
    );
    releaseHeld = reconnect.release;
    connection = await connectV1(gateway.mcpUrl, { recorder });
    connection.client.onerror = (err) => clientErrors.push(err);

    const call = later(
      connection.client.callTool({ name: 'resumable', arguments: { key } }, undefined, {
        onprogress: progressSeen.push,
      }),
    );
    await e2e.probes.wait(`resumable:${key}:dropped`);
    const held = await within(reconnect.hit, 3000, 'the reconnection GET');
    expect(clientErrors.map((e) => e.message).join('\n')).toMatch(/SSE stream disconnected/);

    // The POST stream's events carried ids; the client resumes from the last one it processed.
    const lastEventId = held.requestHeaders['last-event-id'];
    expect(lastEventId).toMatch(/:\d+$/);
    expect(held.requestHeaders['mcp-session-id']).toBe(connection.transport.sessionId);

    e2e.probes.fire(`resumable:${key}:gate-a`);
    await e2e.probes.wait(`resumable:${key}:progress-2`);
    reconnect.release();
    const resumed = await recorder.waitFor(
      (e) => e.httpMethod === 'GET' && e.requestHeaders['last-event-id'] === lastEventId,
    );
    expect(resumed.status).toBe(200);
    expect(resumed.contentType).toBe(SSE_TYPE);

    await progressSeen.waitFor((p) => p.progress === 2);
    e2e.probes.fire(`resumable:${key}:gate-b`);
    const result = await within(call, 3000, 'the resumed tools/call');
    expect(firstText(result)).toBe(`resumed ${key}`);
    expect(progressSeen.items.map((p) => p.progress)).toEqual([1, 2]);
  });
});

describe('SDK v1 session termination', () => {
  it('terminateSession() sends DELETE; the gateway then answers the old session with 404', async () => {
    const connection = await connectV1(gateway.mcpUrl);
    try {
      const { client, transport, recorder } = connection;
      const sessionId = transport.sessionId;
      await transport.terminateSession();
      const [del] = recorder.exchanges.filter((e) => e.httpMethod === 'DELETE');
      expect(del.requestHeaders['mcp-session-id']).toBe(sessionId);
      expect(del.status).toBe(200);

      // The transport forgot the id; a request that still names it must be refused with 404.
      const stale = await fetch(gateway.mcpUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-session-id': sessionId ?? '',
          'mcp-protocol-version': VERSION,
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
      });
      expect(stale.status).toBe(404);
      expect(client.transport).toBeDefined();
    } finally {
      await closeAll(connection.client);
    }
  });
});

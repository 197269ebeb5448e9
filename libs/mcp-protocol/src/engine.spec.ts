import { Cancellation } from './cancellation';
import { ErrorCode, META, MODERN_PROTOCOL_VERSION } from './constants';
import { StaticCatalog, uriTemplateMatcher } from './catalog';
import type { RequestContext } from './context';
import { McpEngine, type RequestIo } from './engine';
import {
  classify,
  JsonObject,
  JsonRpcMessage,
  JsonRpcRequest,
  JsonRpcResponse,
  McpError,
} from './jsonrpc';
import type { LegacySession } from './session';
import { beforeTask, MemoryTaskStore, TASKS_EXTENSION, type TaskStore } from './tasks';

const SECRET = 'unit-test-secret-unit-test-secret';

function envelope(extra: JsonObject = {}, caps: JsonObject = {}): JsonObject {
  return {
    [META.protocolVersion]: MODERN_PROTOCOL_VERSION,
    [META.clientCapabilities]: caps,
    [META.clientInfo]: { name: 'spec', version: '1' },
    ...extra,
  };
}

function modern(
  id: number | string,
  method: string,
  params: JsonObject = {},
  caps: JsonObject = {},
): JsonRpcRequest {
  return {
    jsonrpc: '2.0',
    id,
    method,
    params: { ...params, _meta: envelope((params._meta as JsonObject) ?? {}, caps) },
  };
}

function result(response: JsonRpcResponse | undefined): JsonObject {
  if (!response || !('result' in response)) {
    throw new Error(`expected a result, got ${JSON.stringify(response)}`);
  }
  return response.result;
}

function error(response: JsonRpcResponse | undefined) {
  if (!response || !('error' in response)) {
    throw new Error(`expected an error, got ${JSON.stringify(response)}`);
  }
  return response.error;
}

function buildCatalog(observed: { aborted?: boolean } = {}) {
  const catalog = new StaticCatalog({
    tools: [
      {
        definition: {
          name: 'add',
          description: 'Adds two numbers',
          inputSchema: {
            type: 'object',
            properties: { a: { type: 'number' }, b: { type: 'number' } },
            required: ['a', 'b'],
          },
          outputSchema: {
            type: 'object',
            properties: { sum: { type: 'number' } },
            required: ['sum'],
          },
        },
        call: (args) => {
          const sum = (args.a as number) + (args.b as number);
          return { content: [{ type: 'text', text: String(sum) }], structuredContent: { sum } };
        },
      },
      {
        definition: {
          name: 'draft07',
          description: 'Declares draft-07',
          inputSchema: {
            $schema: 'http://json-schema.org/draft-07/schema#',
            type: 'object',
            properties: { n: { type: 'integer', exclusiveMinimum: 0 } },
            required: ['n'],
          },
        },
        call: () => ({ content: [{ type: 'text', text: 'ok' }] }),
      },
      {
        definition: {
          name: 'fail',
          description: 'Throws',
          inputSchema: { type: 'object' },
        },
        call: () => {
          throw new Error('boom');
        },
      },
      {
        definition: {
          name: 'ask',
          description: 'Asks the user for a name, then samples',
          inputSchema: { type: 'object' },
        },
        call: async (_args, ctx: RequestContext) => {
          const answer = await ctx.elicit({
            message: 'Name?',
            requestedSchema: { type: 'object', properties: { name: { type: 'string' } } },
          });
          const sample = await ctx.createMessage({
            messages: [{ role: 'user', content: { type: 'text', text: 'hi' } }],
            maxTokens: 5,
          });
          const name = (answer.content?.name as string | undefined) ?? '?';
          const text = JSON.stringify(sample.content);
          return { content: [{ type: 'text', text: `${name}/${text}` }] };
        },
      },
      {
        definition: {
          name: 'both',
          description: 'Asks for two inputs at once',
          inputSchema: { type: 'object' },
        },
        call: async (_args, ctx) => {
          const [roots, answer] = await Promise.all([
            ctx.listRoots(),
            ctx.elicit({ message: 'ok?', requestedSchema: { type: 'object', properties: {} } }),
          ]);
          return {
            content: [{ type: 'text', text: `${roots.roots.length}:${answer.action}` }],
          };
        },
      },
      {
        definition: {
          name: 'slow',
          description: 'Waits until cancelled',
          inputSchema: { type: 'object' },
        },
        call: (_args, ctx) =>
          new Promise((resolve) => {
            if (ctx.signal.aborted) {
              observed.aborted = true;
            }
            ctx.signal.addEventListener('abort', () => {
              observed.aborted = true;
              resolve({ content: [{ type: 'text', text: 'late' }] });
            });
          }),
      },
      {
        definition: {
          name: 'chatty',
          description: 'Reports progress and logs',
          inputSchema: { type: 'object' },
        },
        call: async (_args, ctx) => {
          await ctx.progress(1, 2, 'half');
          await ctx.progress(1, 2, 'repeated value is dropped');
          await ctx.log('debug', 'debug line');
          await ctx.log('error', 'error line');
          await ctx.progress(2, 2);
          return { content: [{ type: 'text', text: 'done' }] };
        },
      },
    ],
    resources: [
      {
        definition: { uri: 'test://one', name: 'one', mimeType: 'text/plain' },
        read: () => ({ contents: [{ uri: 'test://one', text: 'first' }] }),
      },
      {
        definition: { uri: 'test://two', name: 'two' },
        read: () => ({ contents: [{ uri: 'test://two', blob: 'AAEC' }] }),
      },
      {
        definition: { uri: 'test://three', name: 'three' },
        read: () => ({ contents: [{ uri: 'test://three', text: '3' }] }),
      },
    ],
    resourceTemplates: [
      {
        definition: { uriTemplate: 'test://items/{id}', name: 'item' },
        match: uriTemplateMatcher('test://items/{id}'),
        read: (uri, vars) => ({ contents: [{ uri, text: `item ${vars.id}` }] }),
        complete: ({ value }) => ({
          values: ['a1', 'a2', 'b1'].filter((v) => v.startsWith(value)),
        }),
      },
    ],
    prompts: [
      {
        definition: {
          name: 'greet',
          description: 'Greets',
          arguments: [{ name: 'who', required: true }],
        },
        get: (args) => ({
          messages: [{ role: 'user', content: { type: 'text', text: `Hello ${args.who}` } }],
        }),
        complete: ({ value }) => ({
          values: Array.from({ length: 150 }, (_, i) => `${value}${i}`),
        }),
      },
    ],
  });
  return catalog;
}

function makeEngine(observed: { aborted?: boolean } = {}, pageSize = 50) {
  const catalog = buildCatalog(observed);
  const engine = new McpEngine({
    serverInfo: { name: 'portico-spec', version: '0.0.0' },
    catalog,
    secret: SECRET,
    pageSize,
    clientRequestTimeoutMs: 1000,
  });
  return { engine, catalog };
}

const sink = () => {
  const sent: JsonRpcMessage[] = [];
  return { sent, outbound: { send: (m: JsonRpcMessage) => void sent.push(m) } };
};

describe(McpEngine.name, () => {
  describe('2026-07-28 (stateless)', () => {
    it('answers server/discover with versions, capabilities, cache hints and serverInfo', async () => {
      const { engine } = makeEngine();
      const r = result(await engine.handleModern(modern(1, 'server/discover'), sink()));
      expect(r.resultType).toBe('complete');
      expect(r.supportedVersions).toEqual(expect.arrayContaining(['2026-07-28', '2025-11-25']));
      expect(r.capabilities).toMatchObject({ tools: { listChanged: true } });
      expect(r.ttlMs).toBe(0);
      expect(r.cacheScope).toBe('private');
      expect((r._meta as JsonObject)[META.serverInfo]).toEqual({
        name: 'portico-spec',
        version: '0.0.0',
      });
    });

    it.each([
      [
        'no _meta',
        { jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} },
        ErrorCode.InvalidParams,
      ],
      [
        'no clientCapabilities',
        {
          jsonrpc: '2.0',
          id: 1,
          method: 'tools/list',
          params: { _meta: { [META.protocolVersion]: MODERN_PROTOCOL_VERSION } },
        },
        ErrorCode.InvalidParams,
      ],
      [
        'a bad log level',
        modern(1, 'tools/list', { _meta: { [META.logLevel]: 'loud' } }),
        ErrorCode.InvalidParams,
      ],
      [
        'an unsupported version',
        {
          jsonrpc: '2.0',
          id: 1,
          method: 'tools/list',
          params: {
            _meta: { [META.protocolVersion]: '2099-01-01', [META.clientCapabilities]: {} },
          },
        },
        ErrorCode.UnsupportedProtocolVersion,
      ],
      ['a removed method', modern(1, 'ping'), ErrorCode.MethodNotFound],
    ])('rejects %s', async (_name, request, code) => {
      const { engine } = makeEngine();
      const e = error(await engine.handleModern(request as JsonRpcRequest, sink()));
      expect(e.code).toBe(code);
    });

    it('reports supported and requested versions on -32022', async () => {
      const { engine } = makeEngine();
      const request = modern(1, 'tools/list');
      (request.params!._meta as JsonObject)[META.protocolVersion] = '1999-01-01';
      const e = error(await engine.handleModern(request, sink()));
      expect(e.data).toEqual({ supported: ['2026-07-28'], requested: '1999-01-01' });
    });

    it('adds resultType, ttlMs and cacheScope to list and read results', async () => {
      const { engine } = makeEngine();
      for (const [method, params] of [
        ['tools/list', {}],
        ['resources/list', {}],
        ['resources/templates/list', {}],
        ['prompts/list', {}],
        ['resources/read', { uri: 'test://one' }],
      ] as const) {
        const r = result(await engine.handleModern(modern(1, method, { ...params }), sink()));
        expect(r).toMatchObject({ resultType: 'complete', ttlMs: 0, cacheScope: 'private' });
      }
      const call = result(
        await engine.handleModern(
          modern(2, 'tools/call', { name: 'add', arguments: { a: 1, b: 2 } }),
          sink(),
        ),
      );
      expect(call.resultType).toBe('complete');
      expect(call.ttlMs).toBeUndefined();
      expect(call.structuredContent).toEqual({ sum: 3 });
    });

    it('answers a missing resource with -32602', async () => {
      const { engine } = makeEngine();
      const e = error(
        await engine.handleModern(modern(1, 'resources/read', { uri: 'test://none' }), sink()),
      );
      expect(e.code).toBe(ErrorCode.InvalidParams);
    });

    it('returns input_required, then completes when the client retries with the answers', async () => {
      const { engine } = makeEngine();
      const caps = { elicitation: {}, sampling: {} };
      const first = result(
        await engine.handleModern(modern(1, 'tools/call', { name: 'ask' }, caps), sink()),
      );
      expect(first.resultType).toBe('input_required');
      expect(Object.keys(first.inputRequests as JsonObject)).toEqual(['elicitation-0']);
      expect(typeof first.requestState).toBe('string');

      const second = result(
        await engine.handleModern(
          modern(
            2,
            'tools/call',
            {
              name: 'ask',
              requestState: first.requestState,
              inputResponses: { 'elicitation-0': { action: 'accept', content: { name: 'Ada' } } },
            },
            caps,
          ),
          sink(),
        ),
      );
      expect(second.resultType).toBe('input_required');
      expect(Object.keys(second.inputRequests as JsonObject)).toEqual(['sampling-1']);

      const third = result(
        await engine.handleModern(
          modern(
            3,
            'tools/call',
            {
              name: 'ask',
              requestState: second.requestState,
              inputResponses: {
                'sampling-1': {
                  role: 'assistant',
                  content: { type: 'text', text: 'ok' },
                  model: 'm',
                },
              },
            },
            caps,
          ),
          sink(),
        ),
      );
      expect(third.resultType).toBe('complete');
      expect(third.content).toEqual([{ type: 'text', text: 'Ada/{"type":"text","text":"ok"}' }]);
    });

    it('uses the key a handler names for its input', async () => {
      const catalog = new StaticCatalog({
        tools: [
          {
            definition: {
              name: 'named',
              description: 'Named input',
              inputSchema: { type: 'object' },
            },
            call: async (_args, ctx) => {
              const r = await ctx.elicit({ message: 'Name?' }, { key: 'user_name' });
              return { content: [{ type: 'text', text: String(r.content?.name) }] };
            },
          },
        ],
      });
      const engine = new McpEngine({
        serverInfo: { name: 's', version: '1' },
        catalog,
        secret: SECRET,
      });
      const first = result(
        await engine.handleModern(
          modern(1, 'tools/call', { name: 'named' }, { elicitation: {} }),
          sink(),
        ),
      );
      expect(Object.keys(first.inputRequests as JsonObject)).toEqual(['user_name']);
      // A client may answer without echoing requestState (none is needed to resume here).
      const done = result(
        await engine.handleModern(
          modern(
            2,
            'tools/call',
            {
              name: 'named',
              inputResponses: { user_name: { action: 'accept', content: { name: 'Alice' } } },
            },
            { elicitation: {} },
          ),
          sink(),
        ),
      );
      expect(done.content).toEqual([{ type: 'text', text: 'Alice' }]);
    });

    it('asks for concurrent inputs in one round', async () => {
      const { engine } = makeEngine();
      const r = result(
        await engine.handleModern(
          modern(1, 'tools/call', { name: 'both' }, { roots: {}, elicitation: {} }),
          sink(),
        ),
      );
      expect(Object.keys(r.inputRequests as JsonObject).sort()).toEqual([
        'elicitation-1',
        'roots-0',
      ]);
    });

    it('rejects a tampered, replayed or re-targeted requestState', async () => {
      const { engine } = makeEngine();
      const caps = { elicitation: {}, sampling: {} };
      const first = result(
        await engine.handleModern(modern(1, 'tools/call', { name: 'ask' }, caps), sink()),
      );
      const state = first.requestState as string;
      const answers = { 'elicitation-0': { action: 'accept', content: { name: 'A' } } };

      const tampered = error(
        await engine.handleModern(
          modern(
            2,
            'tools/call',
            { name: 'ask', requestState: `${state}-TAMPERED`, inputResponses: answers },
            caps,
          ),
          sink(),
        ),
      );
      expect(tampered.code).toBe(ErrorCode.InvalidParams);

      const otherArgs = error(
        await engine.handleModern(
          modern(
            3,
            'tools/call',
            { name: 'ask', arguments: { x: 1 }, requestState: state, inputResponses: answers },
            caps,
          ),
          sink(),
        ),
      );
      expect(otherArgs.message).toMatch(/another request/);

      const ok = result(
        await engine.handleModern(
          modern(
            4,
            'tools/call',
            { name: 'ask', requestState: state, inputResponses: answers },
            caps,
          ),
          sink(),
        ),
      );
      expect(ok.resultType).toBe('input_required');

      const replay = error(
        await engine.handleModern(
          modern(
            5,
            'tools/call',
            { name: 'ask', requestState: state, inputResponses: answers },
            caps,
          ),
          sink(),
        ),
      );
      expect(replay.message).toMatch(/already used/);
    });

    it('binds requestState to the principal', async () => {
      const { engine } = makeEngine();
      const caps = { elicitation: {} };
      const io = { ...sink(), principal: { id: 'alice' } };
      const first = result(
        await engine.handleModern(modern(1, 'tools/call', { name: 'ask' }, caps), io),
      );
      const e = error(
        await engine.handleModern(
          modern(
            2,
            'tools/call',
            {
              name: 'ask',
              requestState: first.requestState,
              inputResponses: { 'elicitation-0': { action: 'decline' } },
            },
            caps,
          ),
          { ...sink(), principal: { id: 'mallory' } },
        ),
      );
      expect(e.code).toBe(ErrorCode.InvalidParams);
    });

    it('answers -32021 with requiredCapabilities when the client cannot be asked', async () => {
      const { engine } = makeEngine();
      const e = error(await engine.handleModern(modern(1, 'tools/call', { name: 'ask' }), sink()));
      expect(e.code).toBe(ErrorCode.MissingClientCapability);
      expect(e.data).toEqual({ requiredCapabilities: { elicitation: {} } });
    });

    it('sends progress always and logs only when the request set a level', async () => {
      const { engine } = makeEngine();
      const quiet = sink();
      await engine.handleModern(
        modern(1, 'tools/call', { name: 'chatty', _meta: { progressToken: 'p1' } }),
        quiet,
      );
      expect(quiet.sent.map((m) => 'method' in m && m.method)).toEqual([
        'notifications/progress',
        'notifications/progress',
      ]);
      const loud = sink();
      await engine.handleModern(
        modern(2, 'tools/call', { name: 'chatty', _meta: { [META.logLevel]: 'warning' } }),
        loud,
      );
      expect(loud.sent).toEqual([
        {
          jsonrpc: '2.0',
          method: 'notifications/message',
          params: { level: 'error', data: 'error line' },
        },
      ]);
    });

    it('cancels a request whose stream closed and sends nothing', async () => {
      const observed: { aborted?: boolean } = {};
      const { engine } = makeEngine(observed);
      const cancellation = new Cancellation();
      const pending = engine.handleModern(modern(1, 'tools/call', { name: 'slow' }), {
        ...sink(),
        cancellation,
      });
      cancellation.cancel();
      await expect(pending).resolves.toBeUndefined();
      expect(observed.aborted).toBe(true);
    });

    it('acknowledges subscriptions/listen first and tags every message', async () => {
      const { engine, catalog } = makeEngine();
      const out = sink();
      const listening = engine.handleModern(
        modern('sub-1', 'subscriptions/listen', {
          notifications: { toolsListChanged: true, resourceSubscriptions: ['test://one'] },
        }),
        out,
      );
      catalog.notify({ type: 'prompts-changed' });
      catalog.notify({ type: 'tools-changed' });
      catalog.notify({ type: 'resource-updated', uri: 'test://two' });
      catalog.notify({ type: 'resource-updated', uri: 'test://one' });
      engine.close();
      const final = result(await listening);
      expect(final._meta).toMatchObject({ [META.subscriptionId]: 'sub-1' });
      const methods = out.sent.map((m) => ('method' in m ? m.method : ''));
      expect(methods).toEqual([
        'notifications/subscriptions/acknowledged',
        'notifications/tools/list_changed',
        'notifications/resources/updated',
      ]);
      for (const m of out.sent) {
        expect(
          ((m as { params: JsonObject }).params._meta as JsonObject)[META.subscriptionId],
        ).toBe('sub-1');
      }
      expect((out.sent[0] as { params: JsonObject }).params.notifications).toEqual({
        toolsListChanged: true,
        resourceSubscriptions: ['test://one'],
      });
    });
  });

  describe('shared features', () => {
    it('validates arguments with the declared dialect and reports failures as isError', async () => {
      const { engine } = makeEngine();
      const bad = result(
        await engine.handleModern(
          modern(1, 'tools/call', { name: 'add', arguments: { a: 1 } }),
          sink(),
        ),
      );
      expect(bad.isError).toBe(true);
      const draft07 = result(
        await engine.handleModern(
          modern(2, 'tools/call', { name: 'draft07', arguments: { n: 0 } }),
          sink(),
        ),
      );
      expect(draft07.isError).toBe(true);
      const fine = result(
        await engine.handleModern(
          modern(3, 'tools/call', { name: 'draft07', arguments: { n: 1 } }),
          sink(),
        ),
      );
      expect(fine.isError).toBeUndefined();
    });

    it('turns a thrown tool error into an isError result and an unknown tool into -32602', async () => {
      const { engine } = makeEngine();
      const failed = result(
        await engine.handleModern(modern(1, 'tools/call', { name: 'fail' }), sink()),
      );
      expect(failed).toMatchObject({ isError: true, content: [{ type: 'text', text: 'boom' }] });
      const unknown = error(
        await engine.handleModern(modern(2, 'tools/call', { name: 'nope' }), sink()),
      );
      expect(unknown.code).toBe(ErrorCode.InvalidParams);
    });

    it('paginates with opaque cursors and rejects forged ones', async () => {
      const { engine } = makeEngine({}, 2);
      const page1 = result(await engine.handleModern(modern(1, 'resources/list'), sink()));
      expect((page1.resources as unknown[]).length).toBe(2);
      const page2 = result(
        await engine.handleModern(
          modern(2, 'resources/list', { cursor: page1.nextCursor }),
          sink(),
        ),
      );
      expect((page2.resources as unknown[]).length).toBe(1);
      expect(page2.nextCursor).toBeUndefined();
      const forged = error(
        await engine.handleModern(
          modern(3, 'resources/list', { cursor: 'b2Zmc2V0OjE.AAAA' }),
          sink(),
        ),
      );
      expect(forged.code).toBe(ErrorCode.InvalidParams);
      const crossList = error(
        await engine.handleModern(modern(4, 'tools/list', { cursor: page1.nextCursor }), sink()),
      );
      expect(crossList.code).toBe(ErrorCode.InvalidParams);
    });

    it('reads templated resources and completes their arguments', async () => {
      const { engine } = makeEngine();
      const read = result(
        await engine.handleModern(modern(1, 'resources/read', { uri: 'test://items/42' }), sink()),
      );
      expect(read.contents).toEqual([{ uri: 'test://items/42', text: 'item 42' }]);
      const completion = result(
        await engine.handleModern(
          modern(2, 'completion/complete', {
            ref: { type: 'ref/resource', uri: 'test://items/{id}' },
            argument: { name: 'id', value: 'a' },
          }),
          sink(),
        ),
      );
      expect(completion.completion).toEqual({ values: ['a1', 'a2'], total: 2, hasMore: false });
    });

    it('caps completions at 100 values and says there are more', async () => {
      const { engine } = makeEngine();
      const r = result(
        await engine.handleModern(
          modern(1, 'completion/complete', {
            ref: { type: 'ref/prompt', name: 'greet' },
            argument: { name: 'who', value: 'x' },
          }),
          sink(),
        ),
      );
      const completion = r.completion as { values: string[]; total: number; hasMore: boolean };
      expect(completion.values).toHaveLength(100);
      expect(completion.total).toBe(150);
      expect(completion.hasMore).toBe(true);
    });

    it('requires declared prompt arguments', async () => {
      const { engine } = makeEngine();
      const e = error(
        await engine.handleModern(modern(1, 'prompts/get', { name: 'greet' }), sink()),
      );
      expect(e.code).toBe(ErrorCode.InvalidParams);
      const ok = result(
        await engine.handleModern(
          modern(2, 'prompts/get', { name: 'greet', arguments: { who: 'Bo' } }),
          sink(),
        ),
      );
      expect(ok.messages).toEqual([{ role: 'user', content: { type: 'text', text: 'Hello Bo' } }]);
    });
  });

  describe('2025 era (sessions)', () => {
    function open(
      version = '2025-11-25',
      caps: JsonObject = { elicitation: {}, sampling: {}, roots: {} },
    ) {
      const observed: { aborted?: boolean } = {};
      const { engine, catalog } = makeEngine(observed);
      const init = engine.initialize(
        {
          jsonrpc: '2.0',
          id: 0,
          method: 'initialize',
          params: {
            protocolVersion: version,
            capabilities: caps,
            clientInfo: { name: 'c', version: '1' },
          },
        },
        'session-1',
      );
      return { engine, catalog, observed, ...init };
    }

    const send = (engine: McpEngine, session: LegacySession, message: unknown, out = sink()) =>
      engine.handleSession(session, classify(message), out);

    it('negotiates the version: echoes a supported one, offers the latest otherwise', () => {
      expect(open('2025-06-18').result.protocolVersion).toBe('2025-06-18');
      expect(open('2024-11-05').result.protocolVersion).toBe('2024-11-05');
      expect(open('1999-01-01').result.protocolVersion).toBe('2025-11-25');
    });

    it('allows only ping and logging before notifications/initialized', async () => {
      const { engine, session } = open();
      expect(
        result(await send(engine, session, { jsonrpc: '2.0', id: 1, method: 'ping' })),
      ).toEqual({});
      const early = error(
        await send(engine, session, { jsonrpc: '2.0', id: 2, method: 'tools/list' }),
      );
      expect(early.code).toBe(ErrorCode.InvalidRequest);
      await send(engine, session, { jsonrpc: '2.0', method: 'notifications/initialized' });
      const tools = result(
        await send(engine, session, { jsonrpc: '2.0', id: 3, method: 'tools/list' }),
      );
      expect(tools.resultType).toBeUndefined();
      expect((tools.tools as unknown[]).length).toBeGreaterThan(0);
    });

    it('answers a missing resource with -32002', async () => {
      const { engine, session } = open();
      session.initialized = true;
      const e = error(
        await send(engine, session, {
          jsonrpc: '2.0',
          id: 1,
          method: 'resources/read',
          params: { uri: 'test://none' },
        }),
      );
      expect(e.code).toBe(ErrorCode.ResourceNotFound);
    });

    it('rejects a request id that is already in flight instead of hanging', async () => {
      const { engine, session } = open();
      session.initialized = true;
      const call = { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'slow' } };
      const first = send(engine, session, call);
      const duplicate = error(await send(engine, session, call));
      expect(duplicate.code).toBe(ErrorCode.InvalidRequest);
      await send(engine, session, {
        jsonrpc: '2.0',
        method: 'notifications/cancelled',
        params: { requestId: 7 },
      });
      await expect(first).resolves.toBeUndefined();
    });

    it('cancels through notifications/cancelled: the handler sees the abort, no response is sent', async () => {
      const { engine, session, observed } = open();
      session.initialized = true;
      const pending = send(engine, session, {
        jsonrpc: '2.0',
        id: 'c1',
        method: 'tools/call',
        params: { name: 'slow' },
      });
      await send(engine, session, {
        jsonrpc: '2.0',
        method: 'notifications/cancelled',
        params: { requestId: 'c1', reason: 'user' },
      });
      await expect(pending).resolves.toBeUndefined();
      expect(observed.aborted).toBe(true);
    });

    it('runs elicitation and sampling as mid-call requests correlated by id', async () => {
      const { engine, session } = open();
      session.initialized = true;
      const out = sink();
      const pending = send(
        engine,
        session,
        { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'ask' } },
        out,
      );
      await new Promise((r) => setImmediate(r));
      const elicit = out.sent[0] as JsonRpcRequest;
      expect(elicit.method).toBe('elicitation/create');
      await send(engine, session, {
        jsonrpc: '2.0',
        id: elicit.id,
        result: { action: 'accept', content: { name: 'Lin' } },
      });
      await new Promise((r) => setImmediate(r));
      const sample = out.sent[1] as JsonRpcRequest;
      expect(sample.method).toBe('sampling/createMessage');
      await send(engine, session, {
        jsonrpc: '2.0',
        id: sample.id,
        result: { role: 'assistant', content: { type: 'text', text: 'x' }, model: 'm' },
      });
      const r = result(await pending);
      expect(r.content).toEqual([{ type: 'text', text: 'Lin/{"type":"text","text":"x"}' }]);
    });

    it('filters log messages by the level the client set', async () => {
      const { engine, session } = open();
      session.initialized = true;
      expect(
        result(
          await send(engine, session, {
            jsonrpc: '2.0',
            id: 1,
            method: 'logging/setLevel',
            params: { level: 'error' },
          }),
        ),
      ).toEqual({});
      const out = sink();
      await send(
        engine,
        session,
        { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'chatty' } },
        out,
      );
      expect(out.sent).toEqual([
        {
          jsonrpc: '2.0',
          method: 'notifications/message',
          params: { level: 'error', data: 'error line' },
        },
      ]);
    });

    it('drops structuredContent and outputSchema for clients older than 2025-06-18', async () => {
      const { engine, session } = open('2025-03-26');
      session.initialized = true;
      const call = result(
        await send(engine, session, {
          jsonrpc: '2.0',
          id: 1,
          method: 'tools/call',
          params: { name: 'add', arguments: { a: 2, b: 2 } },
        }),
      );
      expect(call.structuredContent).toBeUndefined();
      const list = result(
        await send(engine, session, { jsonrpc: '2.0', id: 2, method: 'tools/list' }),
      );
      const add = (list.tools as JsonObject[]).find((t) => t.name === 'add')!;
      expect(add.outputSchema).toBeUndefined();
      // The shared definition is untouched for other sessions.
      const modernList = result(await engine.handleModern(modern(3, 'tools/list'), sink()));
      expect(
        (modernList.tools as JsonObject[]).find((t) => t.name === 'add')!.outputSchema,
      ).toBeDefined();
    });

    it('refuses elicitation on a session older than 2025-06-18', async () => {
      const { engine, session } = open('2025-03-26');
      session.initialized = true;
      const e = error(
        await send(engine, session, {
          jsonrpc: '2.0',
          id: 1,
          method: 'tools/call',
          params: { name: 'ask' },
        }),
      );
      expect(e.code).toBe(ErrorCode.InvalidRequest);
    });

    it('delivers resource updates only for subscribed URIs and list changes to the session', async () => {
      const { engine, session, catalog } = open();
      session.initialized = true;
      const received: JsonRpcMessage[] = [];
      session.attachStandalone((m) => {
        received.push(m);
        return true;
      });
      engine.watchSession(session);
      await send(engine, session, {
        jsonrpc: '2.0',
        id: 1,
        method: 'resources/subscribe',
        params: { uri: 'test://one' },
      });
      catalog.notify({ type: 'resource-updated', uri: 'test://two' });
      catalog.notify({ type: 'resource-updated', uri: 'test://one' });
      catalog.notify({ type: 'tools-changed' });
      expect(received.map((m) => ('method' in m ? m.method : ''))).toEqual([
        'notifications/resources/updated',
        'notifications/tools/list_changed',
      ]);
      session.close();
      catalog.notify({ type: 'tools-changed' });
      expect(received).toHaveLength(2);
    });

    it('times out a server-to-client request the client never answers', async () => {
      const { engine, session } = open();
      session.initialized = true;
      const r = await send(engine, session, {
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'ask' },
      });
      expect(error(r).message).toMatch(/did not answer/);
    });
  });

  it('exposes protocol errors as McpError', () => {
    expect(McpError.methodNotFound('x').toJson()).toEqual({
      code: -32601,
      message: 'Method not found: x',
    });
  });
});

describe(`${McpEngine.name} tasks`, () => {
  const TASK_CAPS: JsonObject = { extensions: { [TASKS_EXTENSION]: {} }, elicitation: {} };

  /** A tool call's hold: the handler waits until released (or cancelled). */
  class Gate {
    private release!: () => void;
    readonly opened = new Promise<void>((resolve) => (this.release = resolve));
    aborted = false;
    started = false;
    open(): void {
      this.release();
    }
  }

  function taskCatalog(gate: Gate) {
    return new StaticCatalog({
      tools: [
        {
          definition: {
            name: 'work',
            description: 'Waits for the gate',
            inputSchema: { type: 'object' },
            execution: { taskSupport: 'optional' },
          },
          call: async (_args, ctx) => {
            gate.started = true;
            await new Promise<void>((resolve, reject) => {
              ctx.signal.addEventListener('abort', () => {
                gate.aborted = true;
                reject(new Error('aborted'));
              });
              void gate.opened.then(resolve);
            });
            return { content: [{ type: 'text', text: 'worked' }] };
          },
        },
        {
          definition: {
            name: 'must',
            description: 'Only as a task',
            inputSchema: { type: 'object' },
            execution: { taskSupport: 'required' },
          },
          call: () => ({ content: [{ type: 'text', text: 'done' }] }),
        },
        {
          definition: {
            name: 'plain',
            description: 'Never a task',
            inputSchema: { type: 'object' },
          },
          call: () => ({ content: [{ type: 'text', text: 'plain' }] }),
        },
        {
          definition: {
            name: 'broken',
            description: 'A protocol error',
            inputSchema: { type: 'object' },
            execution: { taskSupport: 'optional' },
          },
          call: () => {
            throw new McpError(ErrorCode.InternalError, 'broke');
          },
        },
        {
          definition: {
            name: 'oops',
            description: 'A tool error',
            inputSchema: { type: 'object' },
            execution: { taskSupport: 'optional' },
          },
          call: () => ({ isError: true, content: [{ type: 'text', text: 'nope' }] }),
        },
        {
          definition: {
            name: 'pair',
            description: 'Two questions at once',
            inputSchema: { type: 'object' },
            execution: { taskSupport: 'optional' },
          },
          call: async (_args, ctx) => {
            const ask = (key: string) =>
              ctx.elicit(
                { message: key, requestedSchema: { type: 'object', properties: {} } },
                { key },
              );
            const [a, b] = await Promise.all([ask('a'), ask('b')]);
            return { content: [{ type: 'text', text: `${a.action}+${b.action}` }] };
          },
        },
        {
          definition: {
            name: 'gated',
            description: 'Asks before it is a task',
            inputSchema: { type: 'object' },
            execution: { taskSupport: 'required' },
          },
          call: async (_args, ctx) => {
            const answer = await beforeTask(ctx, () =>
              ctx.elicit(
                { message: 'name?', requestedSchema: { type: 'object', properties: {} } },
                { key: 'name' },
              ),
            );
            return { content: [{ type: 'text', text: `hi ${String(answer.content?.name)}` }] };
          },
        },
      ],
    });
  }

  function node(gate = new Gate(), store: TaskStore = new MemoryTaskStore()) {
    const engine = new McpEngine({
      serverInfo: { name: 'portico-spec', version: '0.0.0' },
      catalog: taskCatalog(gate),
      secret: SECRET,
      taskStore: store,
      taskTtlMs: 60_000,
      taskPollIntervalMs: 250,
    });
    return { engine, gate };
  }

  const alice = { principal: { id: 'key:alice', tenant: 't1' } };
  const bob = { principal: { id: 'key:bob', tenant: 't1' } };

  async function call(
    engine: McpEngine,
    method: string,
    params: JsonObject,
    who: { principal?: { id: string; tenant?: string } } = alice,
    caps: JsonObject = TASK_CAPS,
  ) {
    return engine.handleModern(modern(1, method, params, caps), { ...sink(), ...who });
  }

  async function untilStatus(
    engine: McpEngine,
    taskId: string,
    wanted: (task: JsonObject) => boolean,
  ): Promise<JsonObject> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const task = result(await call(engine, 'tasks/get', { taskId }));
      if (wanted(task)) {
        return task;
      }
      if (Date.now() > deadline) {
        throw new Error(`task ${taskId} stayed ${JSON.stringify(task)}`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  describe('2026-07-28 (the io.modelcontextprotocol/tasks extension)', () => {
    it('advertises the extension on server/discover, not the 2025 tasks capability', async () => {
      const { engine } = node();
      const caps = result(await call(engine, 'server/discover', {})).capabilities as JsonObject;
      expect(caps.extensions).toEqual({ [TASKS_EXTENSION]: {} });
      expect(caps.tasks).toBeUndefined();
    });

    it('answers a task-supporting call with a flat handle that tasks/get resolves at once', async () => {
      const { engine, gate } = node();
      const created = result(await call(engine, 'tools/call', { name: 'work' }));
      expect(created).toMatchObject({
        resultType: 'task',
        status: 'working',
        ttlMs: 60_000,
        pollIntervalMs: 250,
      });
      expect(created.task).toBeUndefined();
      expect(created.requestState).toBeUndefined();
      expect(typeof created.taskId).toBe('string');
      expect(Date.parse(created.createdAt as string)).not.toBeNaN();
      const working = result(await call(engine, 'tasks/get', { taskId: created.taskId }));
      expect(working).toMatchObject({ resultType: 'complete', status: 'working' });
      expect(working.result).toBeUndefined();
      gate.open();
      const done = await untilStatus(
        engine,
        created.taskId as string,
        (t) => t.status !== 'working',
      );
      expect(done.status).toBe('completed');
      expect(done.result).toEqual({
        resultType: 'complete',
        content: [{ type: 'text', text: 'worked' }],
      });
    });

    it('runs the call synchronously for a client without the extension, or a tool without task support', async () => {
      const { engine, gate } = node();
      gate.open();
      const sync = result(await call(engine, 'tools/call', { name: 'work' }, alice, {}));
      expect(sync).toMatchObject({ resultType: 'complete', content: [{ text: 'worked' }] });
      const plain = result(await call(engine, 'tools/call', { name: 'plain', task: { ttl: 1 } }));
      expect(plain).toMatchObject({ resultType: 'complete', content: [{ text: 'plain' }] });
    });

    it('refuses a task-only tool and the task methods to a client without the extension (-32021)', async () => {
      const { engine } = node();
      const refused = error(await call(engine, 'tools/call', { name: 'must' }, alice, {}));
      expect(refused).toMatchObject({
        code: ErrorCode.MissingClientCapability,
        data: { requiredCapabilities: { extensions: { [TASKS_EXTENSION]: {} } } },
      });
      for (const method of ['tasks/get', 'tasks/update', 'tasks/cancel']) {
        const e = error(await call(engine, method, { taskId: 'x', inputResponses: {} }, alice, {}));
        expect(e.code).toBe(ErrorCode.MissingClientCapability);
      }
    });

    it('keeps tasks/result and tasks/list removed (-32601)', async () => {
      const { engine } = node();
      for (const method of ['tasks/result', 'tasks/list']) {
        expect(error(await call(engine, method, { taskId: 'x' })).code).toBe(
          ErrorCode.MethodNotFound,
        );
      }
    });

    it('reports a tool error as completed with isError, a protocol error as failed with the error', async () => {
      const { engine } = node();
      const oops = result(await call(engine, 'tools/call', { name: 'oops' }));
      const completed = await untilStatus(
        engine,
        oops.taskId as string,
        (t) => t.status !== 'working',
      );
      expect(completed).toMatchObject({ status: 'completed', result: { isError: true } });
      const broken = result(await call(engine, 'tools/call', { name: 'broken' }));
      const failed = await untilStatus(
        engine,
        broken.taskId as string,
        (t) => t.status !== 'working',
      );
      expect(failed).toMatchObject({
        status: 'failed',
        error: { code: ErrorCode.InternalError, message: 'broke' },
      });
      expect(failed.result).toBeUndefined();
    });

    it('cancels the running handler through its signal; cancelling again is acknowledged the same', async () => {
      const { engine, gate } = node();
      const created = result(await call(engine, 'tools/call', { name: 'work' }));
      const ack = result(await call(engine, 'tasks/cancel', { taskId: created.taskId }));
      expect(ack).toEqual({ resultType: 'complete', _meta: expect.any(Object) });
      await untilStatus(engine, created.taskId as string, () => gate.aborted);
      const after = result(await call(engine, 'tasks/get', { taskId: created.taskId }));
      expect(after.status).toBe('cancelled');
      const again = result(await call(engine, 'tasks/cancel', { taskId: created.taskId }));
      expect(again.resultType).toBe('complete');
    });

    it('does not stop a task when the request that created it goes away', async () => {
      const { engine, gate } = node();
      const cancellation = new Cancellation();
      const created = result(
        await engine.handleModern(modern(1, 'tools/call', { name: 'work' }, TASK_CAPS), {
          ...sink(),
          ...alice,
          cancellation,
        }),
      );
      cancellation.cancel();
      gate.open();
      const done = await untilStatus(
        engine,
        created.taskId as string,
        (t) => t.status !== 'working',
      );
      expect(done.status).toBe('completed');
      expect(gate.aborted).toBe(false);
    });

    it('shows a task to its own principal only: anyone else gets "not found", never the data', async () => {
      const { engine, gate } = node();
      const created = result(await call(engine, 'tools/call', { name: 'work' }));
      for (const method of ['tasks/get', 'tasks/update', 'tasks/cancel']) {
        const e = error(
          await call(engine, method, { taskId: created.taskId, inputResponses: {} }, bob),
        );
        expect(e.code).toBe(ErrorCode.InvalidParams);
        expect(JSON.stringify(e)).not.toContain('working');
      }
      const otherTenant = { principal: { id: 'key:alice', tenant: 't2' } };
      expect(
        error(await call(engine, 'tasks/get', { taskId: created.taskId }, otherTenant)).code,
      ).toBe(ErrorCode.InvalidParams);
      expect(gate.aborted).toBe(false);
      expect(error(await call(engine, 'tasks/get', { taskId: 'no-such-task' })).code).toBe(
        ErrorCode.InvalidParams,
      );
      gate.open();
    });

    it('surfaces input requests on tasks/get and resumes with tasks/update, key by key', async () => {
      const { engine } = node();
      const created = result(await call(engine, 'tools/call', { name: 'pair' }));
      const taskId = created.taskId as string;
      const asking = await untilStatus(
        engine,
        taskId,
        (t) => Object.keys((t.inputRequests as JsonObject | undefined) ?? {}).length === 2,
      );
      expect(asking.status).toBe('input_required');
      expect(asking.inputRequests).toMatchObject({
        a: { method: 'elicitation/create', params: { message: 'a' } },
        b: { method: 'elicitation/create' },
      });
      const ack = result(
        await call(engine, 'tasks/update', {
          taskId,
          inputResponses: { a: { action: 'accept', content: {} }, unknown: { x: 1 } },
        }),
      );
      expect(ack).toEqual({ resultType: 'complete', _meta: expect.any(Object) });
      const half = result(await call(engine, 'tasks/get', { taskId }));
      expect(half.status).toBe('input_required');
      expect(Object.keys(half.inputRequests as JsonObject)).toEqual(['b']);
      await call(engine, 'tasks/update', {
        taskId,
        inputResponses: { b: { action: 'decline' } },
      });
      const done = await untilStatus(engine, taskId, (t) => t.status === 'completed');
      expect(done.result).toMatchObject({ content: [{ text: 'accept+decline' }] });
    });

    it('gathers beforeTask input with input_required rounds, then answers with the task', async () => {
      const { engine } = node();
      const first = result(await call(engine, 'tools/call', { name: 'gated' }));
      expect(first.resultType).toBe('input_required');
      expect(first.taskId).toBeUndefined();
      expect(Object.keys(first.inputRequests as JsonObject)).toEqual(['name']);
      const second = result(
        await call(engine, 'tools/call', {
          name: 'gated',
          inputResponses: { name: { action: 'accept', content: { name: 'Ada' } } },
          requestState: first.requestState,
        }),
      );
      expect(second.resultType).toBe('task');
      expect(second.requestState).toBeUndefined();
      expect(second.inputRequests).toBeUndefined();
      const done = await untilStatus(
        engine,
        second.taskId as string,
        (t) => t.status === 'completed',
      );
      expect(done.result).toMatchObject({ content: [{ text: 'hi Ada' }] });
    });

    it('lets any node sharing the store poll, answer and cancel a task another node runs', async () => {
      const store = new MemoryTaskStore();
      const a = node(new Gate(), store);
      const b = node(new Gate(), store);
      const created = result(await call(a.engine, 'tools/call', { name: 'work' }));
      const taskId = created.taskId as string;
      expect(result(await call(b.engine, 'tasks/get', { taskId })).status).toBe('working');
      await call(b.engine, 'tasks/cancel', { taskId });
      await untilStatus(b.engine, taskId, () => a.gate.aborted);
      expect(result(await call(b.engine, 'tasks/get', { taskId })).status).toBe('cancelled');

      const pair = result(await call(a.engine, 'tools/call', { name: 'pair' }));
      const pairId = pair.taskId as string;
      await untilStatus(b.engine, pairId, (t) => t.status === 'input_required');
      await call(b.engine, 'tasks/update', {
        taskId: pairId,
        inputResponses: { a: { action: 'accept' }, b: { action: 'accept' } },
      });
      const done = await untilStatus(b.engine, pairId, (t) => t.status === 'completed');
      expect(done.result).toMatchObject({ content: [{ text: 'accept+accept' }] });
    });

    it('pushes notifications/tasks on a listen stream for the caller’s own tasks', async () => {
      const { engine, gate } = node();
      const created = result(await call(engine, 'tools/call', { name: 'work' }));
      const out = sink();
      const cancellation = new Cancellation();
      const listening = engine.handleModern(
        modern(
          7,
          'subscriptions/listen',
          { notifications: { taskIds: [created.taskId, 'someone-elses'] } },
          TASK_CAPS,
        ),
        { ...out, ...alice, cancellation },
      );
      await untilStatus(engine, created.taskId as string, () => out.sent.length > 0);
      expect(out.sent[0]).toMatchObject({
        method: 'notifications/subscriptions/acknowledged',
        params: { notifications: { taskIds: [created.taskId] } },
      });
      gate.open();
      await untilStatus(engine, created.taskId as string, () =>
        out.sent.some((m) => 'method' in m && m.method === 'notifications/tasks'),
      );
      const pushed = out.sent.find((m) => 'method' in m && m.method === 'notifications/tasks');
      expect(pushed).toMatchObject({
        params: {
          taskId: created.taskId,
          status: 'completed',
          result: { content: [{ text: 'worked' }] },
          _meta: { [META.subscriptionId]: 7 },
        },
      });
      cancellation.cancel();
      await expect(listening).resolves.toBeUndefined();

      const refused = error(
        await call(
          engine,
          'subscriptions/listen',
          { notifications: { taskIds: ['x'] } },
          alice,
          {},
        ),
      );
      expect(refused.code).toBe(ErrorCode.MissingClientCapability);
    });

    it('checks Mcp-Name against params.taskId on the task methods', async () => {
      const { engine } = node();
      const request = modern(1, 'tasks/get', { taskId: 'abc' }, TASK_CAPS);
      const headers = (name?: string) => (h: string) => (h === 'mcp-name' ? name : undefined);
      expect(await engine.checkParamHeaders(request, headers('abc'))).toBeUndefined();
      expect((await engine.checkParamHeaders(request, headers('other')))?.code).toBe(
        ErrorCode.HeaderMismatch,
      );
      expect((await engine.checkParamHeaders(request, headers()))?.code).toBe(
        ErrorCode.HeaderMismatch,
      );
    });

    it('fails the tasks still running when the node shuts down', async () => {
      const store = new MemoryTaskStore();
      // Node a's own handle on the shared store: closing it leaves the store to node b.
      const handle = Object.assign(Object.create(store) as TaskStore, {
        close: () => Promise.resolve(),
      });
      const a = node(new Gate(), handle);
      const b = node(new Gate(), store);
      const created = result(await call(a.engine, 'tools/call', { name: 'work' }));
      await a.engine.closeTasks(0);
      expect(a.gate.aborted).toBe(true);
      const task = result(await call(b.engine, 'tasks/get', { taskId: created.taskId }));
      expect(task).toMatchObject({ status: 'failed', error: { code: ErrorCode.InternalError } });
    });
  });

  describe('2025-11-25 (experimental tasks)', () => {
    function open(version = '2025-11-25', principal = alice.principal) {
      const { engine, gate } = node();
      const { session, result: init } = engine.initialize(
        {
          jsonrpc: '2.0',
          id: 0,
          method: 'initialize',
          params: {
            protocolVersion: version,
            capabilities: { elicitation: {} },
            clientInfo: { name: 'c', version: '1' },
          },
        },
        `session-${version}`,
        principal,
      );
      session.initialized = true;
      let id = 1;
      const send = (method: string, params: JsonObject = {}, out: RequestIo = sink()) =>
        engine.handleSession(session, classify({ jsonrpc: '2.0', id: id++, method, params }), out);
      return { engine, gate, session, init, send };
    }

    it('declares the tasks capability from 2025-11-25 on, and only there', () => {
      expect(open().init.capabilities).toMatchObject({
        tasks: { list: {}, cancel: {}, requests: { tools: { call: {} } } },
      });
      expect((open('2025-06-18').init.capabilities as JsonObject).tasks).toBeUndefined();
    });

    it('runs a call with params.task as a task: handle, tasks/get, tasks/list, tasks/result', async () => {
      const { send, gate } = open();
      const created = result(await send('tools/call', { name: 'work', task: { ttl: 5000 } }));
      const task = created.task as JsonObject;
      expect(task).toMatchObject({ status: 'working', ttl: 5000, pollInterval: 250 });
      expect(result(await send('tasks/get', { taskId: task.taskId }))).toMatchObject({
        taskId: task.taskId,
        status: 'working',
      });
      const listed = result(await send('tasks/list'));
      expect((listed.tasks as JsonObject[]).map((t) => t.taskId)).toEqual([task.taskId]);
      const outcome = send('tasks/result', { taskId: task.taskId });
      gate.open();
      expect(result(await outcome)).toEqual({
        content: [{ type: 'text', text: 'worked' }],
        _meta: { [META.relatedTask]: { taskId: task.taskId } },
      });
    });

    it('refuses a task-only tool without params.task, and params.task for a tool without task support (-32601)', async () => {
      const { send } = open();
      expect(error(await send('tools/call', { name: 'must' })).code).toBe(ErrorCode.MethodNotFound);
      expect(error(await send('tools/call', { name: 'plain', task: {} })).code).toBe(
        ErrorCode.MethodNotFound,
      );
    });

    it('counts a tool error as failed but returns the result from tasks/result', async () => {
      const { send } = open();
      const created = result(await send('tools/call', { name: 'oops', task: {} }));
      const taskId = (created.task as JsonObject).taskId;
      const outcome = result(await send('tasks/result', { taskId }));
      expect(outcome.isError).toBe(true);
      expect(result(await send('tasks/get', { taskId })).status).toBe('failed');
    });

    it('relays input requests on the tasks/result stream, tagged with the task', async () => {
      const { session, send } = open();
      const created = result(await send('tools/call', { name: 'pair', task: {} }));
      const taskId = (created.task as JsonObject).taskId;
      const out = {
        sent: [] as JsonRpcMessage[],
        send(message: JsonRpcMessage) {
          this.sent.push(message);
          const request = message as JsonRpcRequest;
          session.resolveResponse({
            jsonrpc: '2.0',
            id: request.id,
            result: { action: 'accept', content: {} },
          });
        },
      };
      const outcome = result(await send('tasks/result', { taskId }, { outbound: out }));
      expect(outcome.content).toEqual([{ type: 'text', text: 'accept+accept' }]);
      expect(out.sent).toHaveLength(2);
      for (const message of out.sent) {
        expect(message).toMatchObject({
          method: 'elicitation/create',
          params: { _meta: { [META.relatedTask]: { taskId } } },
        });
      }
    });

    it('cancels a live task and refuses to cancel a terminal one (-32602)', async () => {
      const { send, gate } = open();
      const created = result(await send('tools/call', { name: 'work', task: {} }));
      const taskId = (created.task as JsonObject).taskId;
      const cancelled = result(await send('tasks/cancel', { taskId }));
      expect(cancelled).toMatchObject({ taskId, status: 'cancelled' });
      expect(error(await send('tasks/cancel', { taskId })).code).toBe(ErrorCode.InvalidParams);
      const deadline = Date.now() + 10_000;
      while (!gate.aborted && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(gate.aborted).toBe(true);
    });

    it('keeps a session’s tasks from other principals', async () => {
      const { engine, send } = open();
      const created = result(await send('tools/call', { name: 'oops', task: {} }));
      const taskId = (created.task as JsonObject).taskId;
      const { session: other } = engine.initialize(
        {
          jsonrpc: '2.0',
          id: 0,
          method: 'initialize',
          params: {
            protocolVersion: '2025-11-25',
            capabilities: {},
            clientInfo: { name: 'c', version: '1' },
          },
        },
        'session-bob',
        bob.principal,
      );
      other.initialized = true;
      const e = error(
        await engine.handleSession(
          other,
          classify({ jsonrpc: '2.0', id: 1, method: 'tasks/get', params: { taskId } }),
          sink(),
        ),
      );
      expect(e.code).toBe(ErrorCode.InvalidParams);
    });
  });
});

describe(`${McpEngine.name} resource subscriptions`, () => {
  /** Records what the engine asks of resource providers, in order. */
  class Provider {
    readonly log: string[] = [];
    /** Claims waiting for `settle`; with `gated`, each claim waits. */
    private readonly gates: (() => void)[] = [];

    constructor(private readonly gated = false) {}

    subscribe = (uri: string): Promise<() => void> => {
      this.log.push(`+${uri}`);
      const release = () => void this.log.push(`-${uri}`);
      if (!this.gated) {
        return Promise.resolve(release);
      }
      return new Promise((resolve) => this.gates.push(() => resolve(release)));
    };

    settle(): void {
      this.gates.splice(0).forEach((open) => open());
    }
  }

  function setup(provider = new Provider()) {
    const catalog = new StaticCatalog({
      resources: [
        {
          definition: { uri: 'up://one', name: 'one' },
          read: () => ({ contents: [] }),
          subscribe: provider.subscribe,
        },
        // Publishes its changes anyway: nothing to claim.
        { definition: { uri: 'local://two', name: 'two' }, read: () => ({ contents: [] }) },
      ],
      resourceTemplates: [
        {
          definition: { uriTemplate: 'up://items/{id}', name: 'items' },
          match: uriTemplateMatcher('up://items/{id}'),
          read: () => ({ contents: [] }),
          subscribe: provider.subscribe,
        },
      ],
    });
    const engine = new McpEngine({
      serverInfo: { name: 'portico-spec', version: '0.0.0' },
      catalog,
      secret: SECRET,
    });
    return { engine, catalog, provider };
  }

  function openSession(engine: McpEngine) {
    const { session } = engine.initialize(
      {
        jsonrpc: '2.0',
        id: 0,
        method: 'initialize',
        params: {
          protocolVersion: '2025-11-25',
          capabilities: {},
          clientInfo: { name: 'c', version: '1' },
        },
      },
      `session-${Math.random()}`,
    );
    session.initialized = true;
    const received: JsonRpcMessage[] = [];
    session.attachStandalone((m) => {
      received.push(m);
      return true;
    });
    engine.watchSession(session);
    return { session, received };
  }

  let nextId = 1;
  const request = (engine: McpEngine, session: LegacySession, method: string, uri: unknown) =>
    engine.handleSession(
      session,
      classify({ jsonrpc: '2.0', id: nextId++, method, params: { uri } }),
      sink(),
    );

  /** Lets pending promise callbacks run (claims and releases settle in a few ticks). */
  const settled = () => new Promise((resolve) => setImmediate(resolve));

  describe('2025 era (resources/subscribe)', () => {
    it('claims a URI once per session however often it is subscribed, and releases it on unsubscribe', async () => {
      const { engine, provider } = setup();
      const { session } = openSession(engine);
      expect(result(await request(engine, session, 'resources/subscribe', 'up://one'))).toEqual({});
      expect(result(await request(engine, session, 'resources/subscribe', 'up://one'))).toEqual({});
      expect(provider.log).toEqual(['+up://one']);
      await request(engine, session, 'resources/unsubscribe', 'up://one');
      await settled();
      expect(provider.log).toEqual(['+up://one', '-up://one']);
      // Unsubscribing again releases nothing more.
      await request(engine, session, 'resources/unsubscribe', 'up://one');
      await settled();
      expect(provider.log).toEqual(['+up://one', '-up://one']);
    });

    it('answers subscribe only once the provider listens', async () => {
      const provider = new Provider(true);
      const { engine } = setup(provider);
      const { session } = openSession(engine);
      let answered = false;
      const pending = request(engine, session, 'resources/subscribe', 'up://one').then((r) => {
        answered = true;
        return r;
      });
      await settled();
      expect(provider.log).toEqual(['+up://one']);
      expect(answered).toBe(false);
      provider.settle();
      expect(result(await pending)).toEqual({});
    });

    it('claims instances of templates, and each session separately', async () => {
      const { engine, provider } = setup();
      const a = openSession(engine);
      const b = openSession(engine);
      await request(engine, a.session, 'resources/subscribe', 'up://items/7');
      await request(engine, b.session, 'resources/subscribe', 'up://items/7');
      expect(provider.log).toEqual(['+up://items/7', '+up://items/7']);
    });

    it('releases every claim when the session closes, even one still being made', async () => {
      const provider = new Provider(true);
      const { engine } = setup(provider);
      const { session } = openSession(engine);
      const pending = request(engine, session, 'resources/subscribe', 'up://one');
      await settled();
      session.close();
      provider.settle();
      await pending;
      await settled();
      expect(provider.log).toEqual(['+up://one', '-up://one']);
    });

    it('accepts unknown URIs and URIs of providers that need no claim, as before', async () => {
      const { engine, catalog, provider } = setup();
      const { session, received } = openSession(engine);
      expect(result(await request(engine, session, 'resources/subscribe', 'none://x'))).toEqual({});
      expect(result(await request(engine, session, 'resources/subscribe', 'local://two'))).toEqual(
        {},
      );
      expect(error(await request(engine, session, 'resources/subscribe', 42)).code).toBe(
        ErrorCode.InvalidParams,
      );
      catalog.notify({ type: 'resource-updated', uri: 'local://two' });
      expect(received).toHaveLength(1);
      expect(provider.log).toEqual([]);
    });

    it('claims a URI once a provider serves it (resources-changed)', async () => {
      const { engine, catalog, provider } = setup();
      const { session } = openSession(engine);
      await request(engine, session, 'resources/subscribe', 'up://later');
      expect(provider.log).toEqual([]);
      catalog.addResource({
        definition: { uri: 'up://later', name: 'later' },
        read: () => ({ contents: [] }),
        subscribe: provider.subscribe,
      });
      await settled();
      expect(provider.log).toEqual(['+up://later']);
    });

    it('claims the subscriptions a session brings along (taken over from another node)', async () => {
      const { engine, provider } = setup();
      const { session } = engine.initialize(
        {
          jsonrpc: '2.0',
          id: 0,
          method: 'initialize',
          params: {
            protocolVersion: '2025-11-25',
            capabilities: {},
            clientInfo: { name: 'c', version: '1' },
          },
        },
        'moved',
      );
      session.subscriptions.add('up://one');
      engine.watchSession(session);
      await settled();
      expect(provider.log).toEqual(['+up://one']);
      session.close();
      await settled();
      expect(provider.log).toEqual(['+up://one', '-up://one']);
    });
  });

  describe('2026-07-28 (subscriptions/listen)', () => {
    it('acknowledges once the providers listen, holding back what happens meanwhile', async () => {
      const provider = new Provider(true);
      const { engine, catalog } = setup(provider);
      const out = sink();
      const cancellation = new Cancellation();
      const listening = engine.handleModern(
        modern('l-1', 'subscriptions/listen', {
          notifications: {
            resourcesListChanged: true,
            resourceSubscriptions: ['up://one', 'up://items/3', 'none://x'],
          },
        }),
        { ...out, cancellation },
      );
      await settled();
      expect(provider.log).toEqual(['+up://one', '+up://items/3']);
      catalog.notify({ type: 'resource-updated', uri: 'up://one' });
      expect(out.sent).toEqual([]);
      provider.settle();
      await settled();
      expect(out.sent.map((m) => ('method' in m ? m.method : ''))).toEqual([
        'notifications/subscriptions/acknowledged',
        'notifications/resources/updated',
      ]);
      expect((out.sent[0] as { params: JsonObject }).params.notifications).toEqual({
        resourcesListChanged: true,
        resourceSubscriptions: ['up://one', 'up://items/3', 'none://x'],
      });
      cancellation.cancel();
      await expect(listening).resolves.toBeUndefined();
      await settled();
      expect(provider.log).toEqual(['+up://one', '+up://items/3', '-up://one', '-up://items/3']);
    });

    it('ends gracefully after the acknowledgement and releases its claims', async () => {
      const provider = new Provider(true);
      const { engine } = setup(provider);
      const out = sink();
      const listening = engine.handleModern(
        modern('l-2', 'subscriptions/listen', {
          notifications: { resourceSubscriptions: ['up://one'] },
        }),
        out,
      );
      await settled();
      engine.close();
      provider.settle();
      const final = result(await listening);
      expect(final.resultType).toBe('complete');
      expect(out.sent.map((m) => ('method' in m ? m.method : ''))).toEqual([
        'notifications/subscriptions/acknowledged',
      ]);
      await settled();
      expect(provider.log).toEqual(['+up://one', '-up://one']);
    });
  });
});

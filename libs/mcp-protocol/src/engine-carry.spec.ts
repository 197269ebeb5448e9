import { StaticCatalog } from './catalog';
import { META, MODERN_PROTOCOL_VERSION } from './constants';
import { carriedFromRound, carryIntoRetry, inputRoundsOf, type RequestContext } from './context';
import { McpEngine } from './engine';
import {
  classify,
  type JsonObject,
  type JsonRpcMessage,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from './jsonrpc';
import { MemoryTaskStore, TASKS_EXTENSION } from './tasks';
import type { CallToolResult } from './types';

const SECRET = 'unit-test-secret-unit-test-secret';
const CAPS: JsonObject = { elicitation: {} };
const TASK_CAPS: JsonObject = { extensions: { [TASKS_EXTENSION]: {} }, elicitation: {} };
const ADA = { action: 'accept', content: { name: 'Ada' } };

function modern(id: number, params: JsonObject, caps: JsonObject = CAPS): JsonRpcRequest {
  return {
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: {
      ...params,
      _meta: {
        [META.protocolVersion]: MODERN_PROTOCOL_VERSION,
        [META.clientCapabilities]: caps,
        [META.clientInfo]: { name: 'spec', version: '1' },
      },
    },
  };
}

function result(response: JsonRpcResponse | undefined): JsonObject {
  if (!response || !('result' in response)) {
    throw new Error(`expected a result, got ${JSON.stringify(response)}`);
  }
  return response.result;
}

const sink = () => {
  const sent: JsonRpcMessage[] = [];
  return { sent, outbound: { send: (m: JsonRpcMessage) => void sent.push(m) } };
};

/** What each run of a tool handler saw of the input rounds, in order. */
interface Seen {
  carried: (string | undefined)[];
  carriedOk: boolean[];
  rounds: boolean[];
}

/**
 * An engine whose tools record what their context says of input rounds: `carry` asks for a
 * name and carries 'X' into the retry before the input unwinds it; `plain` asks without
 * carrying; `work` runs as a task when the client declares the extension; `named` asks a
 * 2025-era client under a key of its own, `unnamed` without one.
 */
function build() {
  const seen: Seen = { carried: [], carriedOk: [], rounds: [] };
  const record = (ctx: RequestContext) => {
    seen.carried.push(carriedFromRound(ctx));
    seen.rounds.push(inputRoundsOf(ctx));
  };
  const ask = (ctx: RequestContext, key?: string) =>
    ctx.elicit(
      { message: 'Name?', requestedSchema: { type: 'object', properties: {} } },
      key === undefined ? undefined : { key },
    );
  const text = (answer: { content?: Record<string, unknown> }): CallToolResult => ({
    content: [{ type: 'text', text: String(answer.content?.name) }],
  });
  const catalog = new StaticCatalog({
    tools: [
      {
        definition: { name: 'carry', description: 'Carries X', inputSchema: { type: 'object' } },
        call: async (_args, ctx) => {
          record(ctx);
          const answer = ask(ctx);
          seen.carriedOk.push(carryIntoRetry(ctx, 'X'));
          return text(await answer);
        },
      },
      {
        definition: { name: 'plain', description: 'Carries none', inputSchema: { type: 'object' } },
        call: async (_args, ctx) => {
          record(ctx);
          return text(await ask(ctx));
        },
      },
      {
        definition: {
          name: 'work',
          description: 'A task when it can be',
          inputSchema: { type: 'object' },
          execution: { taskSupport: 'optional' },
        },
        call: (_args, ctx) => {
          record(ctx);
          seen.carriedOk.push(carryIntoRetry(ctx, 'X'));
          return { content: [{ type: 'text', text: 'worked' }] };
        },
      },
      {
        definition: { name: 'named', description: 'Keyed input', inputSchema: { type: 'object' } },
        call: async (_args, ctx) => {
          record(ctx);
          return text(await ask(ctx, 'user_name'));
        },
      },
      {
        definition: { name: 'unnamed', description: 'Unkeyed', inputSchema: { type: 'object' } },
        call: async (_args, ctx) => text(await ask(ctx)),
      },
    ],
  });
  const engine = new McpEngine({
    serverInfo: { name: 'portico-spec', version: '0.0.0' },
    catalog,
    secret: SECRET,
    taskStore: new MemoryTaskStore(),
    clientRequestTimeoutMs: 5_000,
  });
  return { engine, seen };
}

/** Resolves once `check` holds, polling between turns of the event loop. */
async function until(check: () => boolean): Promise<void> {
  while (!check()) {
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe(`${McpEngine.name} carry into retry`, () => {
  describe('2026-07-28 input rounds', () => {
    it("gives the retry's handler what the input round's handler carried", async () => {
      const { engine, seen } = build();
      const round = result(await engine.handleModern(modern(1, { name: 'carry' }), sink()));
      expect(round.resultType).toBe('input_required');
      expect(Object.keys(round.inputRequests as JsonObject)).toEqual(['elicitation-0']);

      const done = result(
        await engine.handleModern(
          modern(2, {
            name: 'carry',
            requestState: round.requestState,
            inputResponses: { 'elicitation-0': ADA },
          }),
          sink(),
        ),
      );
      expect(done.resultType).toBe('complete');
      expect(done.content).toEqual([{ type: 'text', text: 'Ada' }]);
      expect(seen.carried).toEqual([undefined, 'X']);
      expect(seen.carriedOk).toEqual([true, true]);
    });

    it('gives a retry nothing when its round carried nothing', async () => {
      const { engine, seen } = build();
      const round = result(await engine.handleModern(modern(1, { name: 'plain' }), sink()));
      expect(round.resultType).toBe('input_required');
      const done = result(
        await engine.handleModern(
          modern(2, {
            name: 'plain',
            requestState: round.requestState,
            inputResponses: { 'elicitation-0': ADA },
          }),
          sink(),
        ),
      );
      expect(done.resultType).toBe('complete');
      expect(seen.carried).toEqual([undefined, undefined]);
    });

    it('gives a retry without requestState nothing, whatever the round carried', async () => {
      const { engine, seen } = build();
      result(await engine.handleModern(modern(1, { name: 'carry' }), sink()));
      const done = result(
        await engine.handleModern(
          modern(2, { name: 'carry', inputResponses: { 'elicitation-0': ADA } }),
          sink(),
        ),
      );
      expect(done.resultType).toBe('complete');
      expect(seen.carried).toEqual([undefined, undefined]);
    });

    it('says a 2026-07-28 tools/call has input rounds', async () => {
      const { engine, seen } = build();
      await engine.handleModern(modern(1, { name: 'plain' }), sink());
      expect(seen.rounds).toEqual([true]);
    });

    it('says a call running as a task has none, and carries nothing there', async () => {
      const { engine, seen } = build();
      const created = result(
        await engine.handleModern(modern(1, { name: 'work' }, TASK_CAPS), sink()),
      );
      expect(created.resultType).toBe('task');
      await until(() => seen.rounds.length > 0);
      expect(seen.rounds).toEqual([false]);
      expect(seen.carriedOk).toEqual([false]);
      expect(seen.carried).toEqual([undefined]);
      await engine.closeTasks(0);
    });
  });

  describe('2025 era (sessions)', () => {
    function open() {
      const built = build();
      const { session } = built.engine.initialize(
        {
          jsonrpc: '2.0',
          id: 0,
          method: 'initialize',
          params: {
            protocolVersion: '2025-11-25',
            capabilities: { elicitation: {} },
            clientInfo: { name: 'c', version: '1' },
          },
        },
        'session-1',
      );
      session.initialized = true;
      /** Calls `tool` and answers its one elicitation; returns that elicitation request. */
      const call = async (tool: string): Promise<JsonRpcRequest> => {
        const out = sink();
        const pending = built.engine.handleSession(
          session,
          classify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: tool } }),
          out,
        );
        await until(() => out.sent.length > 0);
        const asked = out.sent[0] as JsonRpcRequest;
        await built.engine.handleSession(
          session,
          classify({ jsonrpc: '2.0', id: asked.id, result: ADA }),
          sink(),
        );
        expect(result(await pending).content).toEqual([{ type: 'text', text: 'Ada' }]);
        return asked;
      };
      return { ...built, call };
    }

    it('says a session request has no input rounds and carries nothing', async () => {
      const { seen, call } = open();
      await call('named');
      expect(seen.rounds).toEqual([false]);
      expect(seen.carried).toEqual([undefined]);
    });

    it('names the key a handler gave its input in the mid-call request', async () => {
      const { call } = open();
      const asked = await call('named');
      expect(asked.method).toBe('elicitation/create');
      expect((asked.params?._meta as JsonObject | undefined)?.[META.inputKey]).toBe('user_name');
    });

    it('names no key when the handler gave none', async () => {
      const { call } = open();
      const asked = await call('unnamed');
      expect(asked.method).toBe('elicitation/create');
      expect(asked.params?._meta).toBeUndefined();
    });
  });
});

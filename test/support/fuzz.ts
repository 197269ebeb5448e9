/*
 * Hostile-input fuzzing shared by the engine properties (libs/mcp-protocol/src/fuzz.spec.ts),
 * the transport fuzz (test/fuzz.e2e-spec.ts) and the long run (scripts/fuzz-long.mjs):
 *
 * - arbitraries for random and mutated MCP traffic: wrong types, missing fields, huge and deeply
 *   nested values, invalid UTF-8, duplicate ids, out-of-order lifecycle, oversized frames;
 * - oracles that judge what the server sends back, from the JSON-RPC 2.0 and MCP rules alone
 *   (never from Portico's own classifier);
 * - raw drivers for every transport (Streamable HTTP, legacy HTTP+SSE, WebSocket, stdio).
 *
 * Runtime imports are limited to fast-check, ws and Node built-ins: scripts/fuzz-long.mjs loads
 * this file transpiled by SWC, without Jest's module map.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { isUtf8 } from 'node:buffer';
import * as http from 'node:http';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import * as fc from 'fast-check';
import WebSocket from 'ws';
import type { ToolHandler } from '@portico/mcp-protocol';

// ---------------------------------------------------------------------------------------------
// Protocol constants (duplicated on purpose: this file must not load the protocol library)

export const MODERN = '2026-07-28';
export const LEGACY_VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'] as const;
export const PV_KEY = 'io.modelcontextprotocol/protocolVersion';
export const CAPS_KEY = 'io.modelcontextprotocol/clientCapabilities';
export const LOG_LEVEL_KEY = 'io.modelcontextprotocol/logLevel';

export const modernMeta = (caps: Record<string, unknown> = {}): Record<string, unknown> => ({
  [PV_KEY]: MODERN,
  [CAPS_KEY]: caps,
});

/** Requests a server may send to its client. */
const SERVER_REQUEST_METHODS = new Set([
  'elicitation/create',
  'sampling/createMessage',
  'roots/list',
  'ping',
]);

type Obj = Record<string, unknown>;

const isObject = (value: unknown): value is Obj =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const validId = (id: unknown): id is string | number =>
  typeof id === 'string' || (typeof id === 'number' && Number.isSafeInteger(id));

/** Map key of an id; `null` for a missing or unusable one. */
export const idKey = (id: unknown): string =>
  validId(id) ? `${typeof id}:${String(id)}` : id === null ? 'null' : `other:${typeof id}`;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves with `value` after `ms` without keeping the process alive (for races). */
const after = <T>(ms: number, value: T): Promise<T> =>
  new Promise((r) => setTimeout(() => r(value), ms).unref());

const clip = (text: string, max = 300): string =>
  text.length > max ? `${text.slice(0, max)}… (${text.length} chars)` : text;

/** JSON of anything, for messages (never throws; huge values are clipped). */
export function show(value: unknown, max = 300): string {
  try {
    return clip(JSON.stringify(value) ?? String(value), max);
  } catch (err) {
    return `<unprintable: ${(err as Error).message}>`;
  }
}

// ---------------------------------------------------------------------------------------------
// The tools the engine and the in-process gateway serve (the built binaries serve the
// conformance catalog instead: see CONFORMANCE_PROFILE)

export function fuzzTools(): ToolHandler[] {
  return [
    {
      definition: {
        name: 'echo',
        description: 'Returns the message it is given.',
        inputSchema: {
          type: 'object',
          properties: { message: { type: 'string' } },
          required: ['message'],
          additionalProperties: false,
        },
      },
      call: (args) => ({ content: [{ type: 'text', text: String(args.message) }] }),
    },
    {
      definition: {
        name: 'elicit',
        description: 'Asks the user for a name (a mid-call request, or input_required)',
        inputSchema: { type: 'object' },
      },
      call: async (_args, ctx) => {
        const answer = await ctx.elicit(
          {
            message: 'Name?',
            requestedSchema: {
              type: 'object',
              properties: { name: { type: 'string' } },
              required: ['name'],
            },
          },
          { key: 'name' },
        );
        const content: unknown = (answer as { content?: unknown } | null)?.content;
        const name = isObject(content) ? content.name : undefined;
        return {
          content: [
            { type: 'text', text: `hello ${typeof name === 'string' ? name : 'stranger'}` },
          ],
        };
      },
    },
    {
      definition: {
        name: 'progress',
        description: 'Reports progress three times, then returns',
        inputSchema: { type: 'object' },
      },
      call: async (_args, ctx) => {
        for (let step = 1; step <= 3; step++) {
          await ctx.progress(step, 3, `step ${step}`);
          await new Promise((r) => setImmediate(r));
        }
        return { content: [{ type: 'text', text: 'done' }] };
      },
    },
  ];
}

/** Which tools to aim at: names and the arguments that make each call valid. */
export interface FuzzProfile {
  echoTool: string;
  elicitTool: string;
  progressTool: string;
  elicitArgs: Obj;
}

export const OWN_PROFILE: FuzzProfile = {
  echoTool: 'echo',
  elicitTool: 'elicit',
  progressTool: 'progress',
  elicitArgs: {},
};

/** The built gateway and CLI serve the conformance fixture catalog. */
export const CONFORMANCE_PROFILE: FuzzProfile = {
  echoTool: 'echo',
  elicitTool: 'test_elicitation',
  progressTool: 'test_tool_with_progress',
  elicitArgs: { message: 'Who are you?' },
};

// ---------------------------------------------------------------------------------------------
// Values too big to keep literally in a counterexample

/** `count` copies of `unit`, expanded only when serialised. */
export class Huge {
  constructor(
    readonly count: number,
    readonly unit: string,
  ) {}
  toJSON(): string {
    return this.unit.repeat(this.count);
  }
  [fc.toStringMethod](): string {
    return `new Huge(${this.count}, ${JSON.stringify(this.unit)})`;
  }
}

const DEEP_MARK = /"\\u0000deep:(array|object):(\d+)\\u0000"/g;

/** `depth` levels of nesting, spliced into the JSON text (deeper than JSON.stringify can go). */
export class Deep {
  constructor(
    readonly depth: number,
    readonly shape: 'array' | 'object',
  ) {}
  toJSON(): string {
    return `\u0000deep:${this.shape}:${this.depth}\u0000`;
  }
  [fc.toStringMethod](): string {
    return `new Deep(${this.depth}, '${this.shape}')`;
  }
}

function deepText(shape: string, depth: number): string {
  return shape === 'array'
    ? '['.repeat(depth) + ']'.repeat(depth)
    : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
}

/** The JSON text of a generated value, with Huge and Deep expanded. */
export function toJsonText(value: unknown): string {
  const text = JSON.stringify(value) ?? 'null';
  return text.includes('deep:')
    ? text.replace(DEEP_MARK, (_m, shape: string, depth: string) => deepText(shape, Number(depth)))
    : text;
}

// ---------------------------------------------------------------------------------------------
// Frames: what a client puts on the wire

export type Frame =
  | { kind: 'json'; value: unknown }
  | { kind: 'text'; text: string }
  | { kind: 'bytes'; bytes: Uint8Array };

export function frameBytes(frame: Frame): Buffer {
  switch (frame.kind) {
    case 'json':
      return Buffer.from(toJsonText(frame.value), 'utf8');
    case 'text':
      return Buffer.from(frame.text, 'utf8');
    case 'bytes':
      return Buffer.from(frame.bytes);
  }
}

/** The text a server decodes from the frame (invalid UTF-8 becomes U+FFFD, as in Node). */
export const frameText = (frame: Frame): string => frameBytes(frame).toString('utf8');

export const PARSE_FAILED = Symbol('parse-failed');

export function parseFrame(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return PARSE_FAILED;
  }
}

export const jsonFrame = (value: unknown): Frame => ({ kind: 'json', value });

// ---------------------------------------------------------------------------------------------
// Arbitraries

const NASTY_STRINGS = [
  '',
  ' ',
  '\u0000',
  '\ud800',
  '\udc00x',
  '\u2028',
  '\ufeff',
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  '%E0%A4%A',
  '=?base64?SGk=?=',
  '=?base64?***?=',
  '../../etc/passwd',
  'null',
  'portico-0',
  'notifications/cancelled',
  'tools/call',
  MODERN,
  '2025-03-26',
  'test://template/x/data',
];

const DANGEROUS_KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'valueOf',
  'toJSON',
  'hasOwnProperty',
  'then',
  '',
  'jsonrpc',
  'id',
  'method',
  'params',
  'result',
  'error',
  '_meta',
  PV_KEY,
];

export const nastyString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 2, arbitrary: fc.string({ maxLength: 12, unit: 'binary' }) },
  { weight: 2, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
);

export const weirdNumber: fc.Arbitrary<number> = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(0, -1, 1.5, -0.5, 1e308, 5e-324, 2 ** 53, 2 ** 53 + 2, 2 ** 64, -(2 ** 63)),
);

const objectKey = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 8 }) },
  { weight: 1, arbitrary: fc.constantFrom(...DANGEROUS_KEYS) },
);

const scalar: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  weirdNumber,
  nastyString,
);

/** Small random JSON with awkward keys and values. */
export const jsonish: fc.Arbitrary<unknown> = fc.letrec<{
  value: unknown;
  array: unknown[];
  object: Obj;
}>((tie) => ({
  value: fc.oneof(
    { depthIdentifier: 'jsonish', maxDepth: 3, depthSize: 'small' },
    scalar,
    tie('array'),
    tie('object'),
  ),
  array: fc.array(tie('value'), { maxLength: 4, depthIdentifier: 'jsonish' }),
  object: fc.dictionary(objectKey, tie('value'), { maxKeys: 4, depthIdentifier: 'jsonish' }),
})).value;

export const huge: fc.Arbitrary<Huge> = fc
  .record({
    count: fc.oneof(
      fc.integer({ min: 1000, max: 20_000 }),
      fc.integer({ min: 20_000, max: 70_000 }),
    ),
    unit: fc.constantFrom('x', 'é', '😀', '\u0000', '"', '\\'),
  })
  .map(({ count, unit }) => new Huge(count, unit));

export const deep: fc.Arbitrary<Deep> = fc
  .record({
    depth: fc.oneof(
      fc.integer({ min: 2, max: 64 }),
      fc.integer({ min: 500, max: 7000 }),
      fc.constantFrom(50_000, 100_000),
    ),
    shape: fc.constantFrom<'array' | 'object'>('array', 'object'),
  })
  .map(({ depth, shape }) => new Deep(depth, shape));

/** Any value at all: small and weird most of the time, sometimes huge or very deep. */
export const hostile: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 12, arbitrary: jsonish },
  { weight: 1, arbitrary: huge },
  { weight: 1, arbitrary: deep },
);

const smallId: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom<unknown>(1, 2, 3, 0, -1, 'a', 'b', '1', '') },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.string({ maxLength: 6 }) },
);

/** Ids from a small pool (duplicates are frequent), sometimes of a type JSON-RPC forbids. */
export const anyId: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 9, arbitrary: smallId },
  {
    weight: 1,
    arbitrary: fc.constantFrom<unknown>(
      null,
      true,
      1.5,
      -0,
      2 ** 53,
      1e21,
      [],
      {},
      [1],
      { id: 1 },
      'portico-0',
    ),
  },
);

const opt = <T>(arb: fc.Arbitrary<T>, freq = 2): fc.Arbitrary<T | undefined> =>
  fc.option(arb, { nil: undefined, freq });

/** Drops undefined members (the generators use them for "absent"). */
function compact(record: Obj): Obj {
  const out: Obj = {};
  for (const [key, value] of Object.entries(record)) {
    if (value !== undefined) {
      Object.defineProperty(out, key, {
        value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
  }
  return out;
}

const capsArb: fc.Arbitrary<unknown> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.constantFrom<unknown>(
      {},
      { elicitation: {} },
      { elicitation: { form: {} } },
      { elicitation: { url: {} } },
      { sampling: {} },
      { roots: {} },
      { elicitation: {}, sampling: {}, roots: {} },
    ),
  },
  { weight: 1, arbitrary: hostile },
);

const progressToken = fc.oneof(fc.integer(), fc.string({ maxLength: 4 }), fc.double());

/** `_meta` of a request: the 2026-07-28 envelope (mostly), nothing, or only a progress token. */
const metaArb: fc.Arbitrary<unknown> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .record({
        caps: capsArb,
        token: opt(progressToken),
        level: opt(
          fc.constantFrom<unknown>('debug', 'info', 'error', 'debug', 'info', 'bogus', 3),
          4,
        ),
        version: fc.oneof(
          { weight: 8, arbitrary: fc.constant<unknown>(MODERN) },
          { weight: 1, arbitrary: fc.constantFrom<unknown>(...LEGACY_VERSIONS, '2099-01-01', 1) },
        ),
      })
      .map(({ caps, token, level, version }) =>
        compact({
          [PV_KEY]: version,
          [CAPS_KEY]: caps,
          progressToken: token,
          [LOG_LEVEL_KEY]: level,
        }),
      ),
  },
  { weight: 2, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: progressToken.map((token) => ({ progressToken: token })) },
  { weight: 1, arbitrary: hostile },
);

const call = (
  method: string,
  params: fc.Arbitrary<Obj>,
): fc.Arbitrary<{ method: string; params: Obj }> => params.map((p) => ({ method, params: p }));

const goodInputResponses = fc.constantFrom<unknown>(
  { name: { action: 'accept', content: { name: 'Ada' } } },
  { name: { action: 'decline' } },
  { elicitation: { action: 'accept', content: { username: 'ada', email: 'ada@example.com' } } },
);

/** The method and params of a request, aimed at the profile's tools and every MCP method. */
function requestBody(profile: FuzzProfile): fc.Arbitrary<{ method: string; params: Obj }> {
  const cursor = opt(fc.oneof(nastyString, hostile), 4).map((c) => compact({ cursor: c }));
  return fc.oneof(
    {
      weight: 6,
      arbitrary: call(
        'tools/call',
        fc.record({
          name: fc.constant(profile.echoTool),
          arguments: fc.oneof(
            { weight: 4, arbitrary: fc.record({ message: fc.oneof(nastyString, huge) }) },
            { weight: 1, arbitrary: hostile },
          ),
        }),
      ),
    },
    {
      weight: 4,
      arbitrary: call(
        'tools/call',
        fc
          .record({
            arguments: fc.oneof(
              { weight: 5, arbitrary: fc.constant<unknown>(profile.elicitArgs) },
              { weight: 1, arbitrary: hostile },
            ),
            inputResponses: opt(fc.oneof(goodInputResponses, hostile), 3),
            requestState: opt(fc.oneof(nastyString, hostile), 6),
          })
          .map((p) => compact({ name: profile.elicitTool, ...p })),
      ),
    },
    {
      weight: 3,
      arbitrary: call('tools/call', fc.constant({ name: profile.progressTool, arguments: {} })),
    },
    {
      weight: 1,
      arbitrary: call('tools/call', fc.record({ name: nastyString, arguments: hostile })),
    },
    { weight: 1, arbitrary: call('tools/list', cursor) },
    { weight: 1, arbitrary: call('resources/list', cursor) },
    { weight: 1, arbitrary: call('resources/templates/list', cursor) },
    { weight: 1, arbitrary: call('prompts/list', cursor) },
    {
      weight: 1,
      arbitrary: call('resources/read', fc.record({ uri: fc.oneof(nastyString, hostile) })),
    },
    {
      weight: 1,
      arbitrary: call('prompts/get', fc.record({ name: nastyString, arguments: hostile })),
    },
    {
      weight: 1,
      arbitrary: call(
        'completion/complete',
        fc.record({
          ref: fc.oneof(
            fc.record({ type: fc.constant('ref/prompt'), name: fc.oneof(nastyString, hostile) }),
            fc.record({ type: fc.constant('ref/resource'), uri: fc.oneof(nastyString, hostile) }),
            hostile,
          ),
          argument: fc.oneof(fc.record({ name: nastyString, value: nastyString }), hostile),
        }),
      ),
    },
    { weight: 1, arbitrary: call('server/discover', fc.constant({})) },
    { weight: 2, arbitrary: call('ping', fc.constant({})) },
    {
      weight: 1,
      arbitrary: call(
        'logging/setLevel',
        fc.record({ level: fc.oneof(fc.constantFrom<unknown>('debug', 'error'), hostile) }),
      ),
    },
    {
      weight: 1,
      arbitrary: fc
        .record({
          method: fc.constantFrom('resources/subscribe', 'resources/unsubscribe'),
          uri: fc.oneof(nastyString, hostile),
        })
        .map(({ method, uri }) => ({ method, params: { uri } })),
    },
    {
      weight: 1,
      arbitrary: call(
        'subscriptions/listen',
        fc.record({
          notifications: fc.oneof(
            fc.constant<unknown>({ toolsListChanged: true, resourceSubscriptions: ['test://x'] }),
            hostile,
          ),
        }),
      ),
    },
    {
      weight: 1,
      arbitrary: call(
        'initialize',
        fc.record({
          protocolVersion: fc.oneof(
            { weight: 4, arbitrary: fc.constantFrom<unknown>(...LEGACY_VERSIONS) },
            { weight: 1, arbitrary: fc.constantFrom<unknown>(MODERN, '1999-01-01', 20250326) },
            { weight: 1, arbitrary: hostile },
          ),
          capabilities: capsArb,
          clientInfo: fc.oneof(
            { weight: 4, arbitrary: fc.constant<unknown>({ name: 'fuzz', version: '1' }) },
            { weight: 1, arbitrary: hostile },
          ),
        }),
      ),
    },
    {
      weight: 1,
      arbitrary: fc
        .record({ method: nastyString, params: fc.dictionary(objectKey, hostile, { maxKeys: 3 }) })
        .map(({ method, params }) => ({ method, params })),
    },
  );
}

export function requestArb(profile: FuzzProfile): fc.Arbitrary<Obj> {
  return fc
    .record({ id: anyId, body: requestBody(profile), meta: metaArb })
    .map(({ id, body, meta }) => ({
      jsonrpc: '2.0',
      id,
      method: body.method,
      params: meta === undefined ? body.params : { ...body.params, _meta: meta },
    }));
}

/**
 * A well-formed tool call, so that handlers (mid-call requests, input_required rounds,
 * progress) run often: with the 2026-07-28 envelope, or 2025-style for sessions.
 */
export function toolCallArb(profile: FuzzProfile): fc.Arbitrary<Obj> {
  return fc
    .record({
      id: smallId,
      tool: fc.constantFrom('echo', 'elicit', 'elicit', 'progress'),
      token: opt(progressToken, 1),
      caps: fc.constantFrom<Obj>({ elicitation: {} }, { elicitation: { form: {} } }, {}),
      modern: fc.boolean(),
    })
    .map(({ id, tool, token, caps, modern }) => {
      const name =
        tool === 'echo'
          ? profile.echoTool
          : tool === 'elicit'
            ? profile.elicitTool
            : profile.progressTool;
      const args =
        tool === 'echo' ? { message: 'hi' } : tool === 'elicit' ? profile.elicitArgs : {};
      const meta = compact({ ...(modern ? modernMeta(caps) : {}), progressToken: token });
      return {
        jsonrpc: '2.0',
        id,
        method: 'tools/call',
        params: { name, arguments: args, _meta: meta },
      };
    });
}

export const notificationArb: fc.Arbitrary<Obj> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ jsonrpc: '2.0', method: 'notifications/initialized' }) },
  {
    weight: 4,
    arbitrary: fc
      .record({ requestId: anyId, reason: opt(nastyString) })
      .map((p) => ({ jsonrpc: '2.0', method: 'notifications/cancelled', params: compact(p) })),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({ progressToken, progress: weirdNumber })
      .map((p) => ({ jsonrpc: '2.0', method: 'notifications/progress', params: p })),
  },
  {
    weight: 1,
    arbitrary: fc.constant({ jsonrpc: '2.0', method: 'notifications/roots/list_changed' }),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({ method: nastyString, params: opt(hostile) })
      .map((m) => compact({ jsonrpc: '2.0', ...m })),
  },
);

/** What a client answers to a server-to-client request (the driver adds jsonrpc and id). */
export const replyBodyArb: fc.Arbitrary<Obj> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom<Obj>(
      { result: { action: 'accept', content: { name: 'Ada', username: 'ada', email: 'a@b.c' } } },
      { result: { action: 'decline' } },
      { result: { action: 'cancel' } },
      { result: { roots: [] } },
      {
        result: {
          role: 'assistant',
          content: { type: 'text', text: 'sampled' },
          model: 'fuzz',
        },
      },
    ),
  },
  { weight: 2, arbitrary: fc.record({ result: hostile }) },
  {
    weight: 2,
    arbitrary: fc
      .record({ code: opt(weirdNumber, 6), message: opt(nastyString, 6), data: opt(hostile) })
      .map((e) => ({ error: compact(e) })),
  },
  { weight: 1, arbitrary: fc.record({ error: hostile }) },
  {
    weight: 1,
    arbitrary: fc.constant<Obj>({ result: {}, error: { code: -32000, message: 'both' } }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ jsonrpc: fc.constantFrom<unknown>('1.0', 2, null), result: jsonish }),
  },
  { weight: 1, arbitrary: fc.record({ id: anyId, result: fc.constant({}) }) },
);

export const responseArb: fc.Arbitrary<Obj> = fc
  .record({
    id: fc.oneof(anyId, fc.constantFrom<unknown>('portico-0', 'portico-1', 'portico-2')),
    body: replyBodyArb,
  })
  .map(({ id, body }) => ({ jsonrpc: '2.0', id, ...body }));

const MUTATION_PATHS: readonly (readonly string[])[] = [
  ['jsonrpc'],
  ['id'],
  ['method'],
  ['params'],
  ['params', '_meta'],
  ['params', '_meta', PV_KEY],
  ['params', '_meta', CAPS_KEY],
  ['params', '_meta', 'progressToken'],
  ['params', 'name'],
  ['params', 'arguments'],
  ['params', 'arguments', 'message'],
  ['params', 'requestId'],
  ['params', 'protocolVersion'],
  ['params', 'capabilities'],
  ['params', 'clientInfo'],
  ['params', 'cursor'],
  ['params', 'uri'],
  ['params', 'ref'],
  ['params', 'inputResponses'],
  ['params', 'requestState'],
  ['params', 'level'],
  ['result'],
  ['error'],
  ['error', 'code'],
  ['error', 'message'],
];

export interface Mutation {
  path: readonly string[];
  op: 'delete' | 'set';
  value?: unknown;
}

export const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  path: fc.constantFrom(...MUTATION_PATHS),
  op: fc.constantFrom<'delete' | 'set'>('delete', 'set', 'set'),
  value: hostile,
});

/** A copy of `root` with the mutation applied (missing parents are created). */
export function mutate(root: unknown, mutation: Mutation, depth = 0): unknown {
  const { path, op, value } = mutation;
  if (depth === path.length) {
    return value;
  }
  const copy: Obj = {};
  if (isObject(root) && !(root instanceof Huge) && !(root instanceof Deep)) {
    for (const [k, v] of Object.entries(root)) {
      Object.defineProperty(copy, k, {
        value: v,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
  }
  const key = path[depth];
  if (depth === path.length - 1 && op === 'delete') {
    delete copy[key];
  } else {
    Object.defineProperty(copy, key, {
      value: mutate(copy[key], mutation, depth + 1),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return copy;
}

export function messageArb(profile: FuzzProfile): fc.Arbitrary<unknown> {
  const request = requestArb(profile);
  const wellFormed = fc.oneof(
    { weight: 5, arbitrary: request },
    { weight: 2, arbitrary: notificationArb },
    { weight: 1, arbitrary: responseArb },
  );
  const mutated = fc
    .tuple(wellFormed, fc.array(mutationArb, { minLength: 1, maxLength: 3 }))
    .map(([message, mutations]) => mutations.reduce<unknown>((m, mu) => mutate(m, mu), message));
  return fc.oneof(
    { weight: 30, arbitrary: request },
    { weight: 12, arbitrary: toolCallArb(profile) },
    { weight: 10, arbitrary: notificationArb },
    { weight: 4, arbitrary: responseArb },
    { weight: 20, arbitrary: mutated },
    { weight: 5, arbitrary: fc.array(wellFormed, { maxLength: 4 }) },
    { weight: 4, arbitrary: hostile },
  );
}

const INVALID_UTF8: readonly number[][] = [
  [0xff],
  [0xfe],
  [0x80],
  [0xc0, 0x80],
  [0xc3],
  [0xe2, 0x82],
  [0xed, 0xa0, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
];

export function frameArb(profile: FuzzProfile): fc.Arbitrary<Frame> {
  const message = messageArb(profile);
  const malformed = fc.oneof(
    fc.string({ maxLength: 30 }),
    fc.string({ maxLength: 30, unit: 'binary' }),
    fc.constantFrom(
      '',
      ' ',
      '{',
      '[',
      '{"jsonrpc":"2.0",}',
      '{"jsonrpc":"2.0","id":1,"method":"ping"',
      'NaN',
      "{'jsonrpc':'2.0'}",
      '[]',
      '[[]]',
      '"\\ud800"',
      '{"a":1}{"b":2}',
      '\ufeff{"jsonrpc":"2.0","id":1,"method":"ping"}',
      '{"jsonrpc":"2.0","id":1,"id":2,"method":"ping","params":{"_meta":{}}}',
    ),
    message.chain((value) => {
      const text = toJsonText(value);
      return fc.nat(text.length).map((n) => text.slice(0, n));
    }),
  );
  const invalidUtf8 = fc.oneof(
    fc
      .tuple(
        message,
        fc.array(fc.record({ at: fc.nat(), bytes: fc.constantFrom(...INVALID_UTF8) }), {
          minLength: 1,
          maxLength: 3,
        }),
      )
      .map(([value, injections]) => {
        let bytes = Buffer.from(toJsonText(value), 'utf8');
        for (const { at, bytes: bad } of injections) {
          const i = at % (bytes.length + 1);
          bytes = Buffer.concat([bytes.subarray(0, i), Buffer.from(bad), bytes.subarray(i)]);
        }
        return new Uint8Array(bytes);
      }),
    fc.uint8Array({ maxLength: 48 }),
  );
  return fc.oneof(
    { weight: 85, arbitrary: message.map((value): Frame => ({ kind: 'json', value })) },
    { weight: 7, arbitrary: malformed.map((text): Frame => ({ kind: 'text', text })) },
    { weight: 8, arbitrary: invalidUtf8.map((bytes): Frame => ({ kind: 'bytes', bytes })) },
  );
}

// ---------------------------------------------------------------------------------------------
// Stream scenarios (engine, stdio, WebSocket, legacy SSE)

export type Step =
  | { t: 'send'; frame: Frame }
  /** Answers the `pick`-th server-to-client request seen so far. */
  | { t: 'reply'; pick: number; reply: Obj }
  /** Re-sends the `pick`-th request answered with input_required, with its requestState. */
  | { t: 'retry'; pick: number; id: unknown; inputResponses: unknown }
  | { t: 'pause'; ms: number };

export const initializeFrame = (version: string, id: unknown = 'fuzz-init'): Frame =>
  jsonFrame({
    jsonrpc: '2.0',
    id,
    method: 'initialize',
    params: {
      protocolVersion: version,
      capabilities: { elicitation: {}, sampling: {}, roots: {} },
      clientInfo: { name: 'fuzz', version: '1' },
    },
  });

export const initializedFrame: Frame = jsonFrame({
  jsonrpc: '2.0',
  method: 'notifications/initialized',
});

export function stepArb(profile: FuzzProfile): fc.Arbitrary<Step> {
  return fc.oneof(
    { weight: 80, arbitrary: frameArb(profile).map((frame): Step => ({ t: 'send', frame })) },
    {
      weight: 6,
      arbitrary: fc
        .record({ pick: fc.nat(7), reply: replyBodyArb })
        .map(({ pick, reply }): Step => ({ t: 'reply', pick, reply })),
    },
    {
      weight: 4,
      arbitrary: fc
        .record({
          pick: fc.nat(7),
          id: anyId,
          inputResponses: fc.oneof(goodInputResponses, hostile),
        })
        .map((r): Step => ({ t: 'retry', ...r })),
    },
    {
      weight: 10,
      arbitrary: fc.integer({ min: 0, max: 15 }).map((ms): Step => ({ t: 'pause', ms })),
    },
  );
}

/** A random stream, often after a proper 2025-era handshake so session paths are reached. */
export function streamScenarioArb(profile: FuzzProfile, maxSteps: number): fc.Arbitrary<Step[]> {
  const preamble = fc.oneof(
    { weight: 3, arbitrary: fc.constant<Step[]>([]) },
    {
      weight: 2,
      arbitrary: fc.constantFrom(...LEGACY_VERSIONS).map((v): Step[] => [
        { t: 'send', frame: initializeFrame(v) },
        { t: 'send', frame: initializedFrame },
      ]),
    },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(...LEGACY_VERSIONS)
        .map((v): Step[] => [{ t: 'send', frame: initializeFrame(v) }]),
    },
  );
  return fc
    .tuple(
      preamble,
      fc.array(stepArb(profile), { minLength: 1, maxLength: maxSteps, size: 'medium' }),
    )
    .map(([head, tail]) => [...head, ...tail]);
}

// ---------------------------------------------------------------------------------------------
// Judging what the server sends

/** How JSON-RPC 2.0 (with MCP's object params/results) sees one client message. */
type SpecKind =
  | { kind: 'request'; id: string | number; method: unknown }
  | { kind: 'notification'; method: string; params?: Obj }
  | { kind: 'response' }
  | { kind: 'invalid'; id?: string | number };

function specKind(v: unknown): SpecKind {
  if (!isObject(v)) {
    return { kind: 'invalid' };
  }
  const usable = validId(v.id) ? v.id : undefined;
  if (v.jsonrpc !== '2.0') {
    return { kind: 'invalid', id: usable };
  }
  if ('method' in v) {
    if ('id' in v) {
      return usable === undefined
        ? { kind: 'invalid' }
        : { kind: 'request', id: usable, method: v.method };
    }
    if (
      typeof v.method === 'string' &&
      v.method !== '' &&
      (v.params === undefined || isObject(v.params))
    ) {
      return { kind: 'notification', method: v.method, params: v.params };
    }
    return { kind: 'invalid' };
  }
  if ('result' in v !== 'error' in v) {
    if ('result' in v && isObject(v.result) && usable !== undefined) {
      return { kind: 'response' };
    }
    const e = v.error;
    if (
      'error' in v &&
      isObject(e) &&
      Number.isInteger(e.code) &&
      typeof e.message === 'string' &&
      (usable !== undefined || v.id === null)
    ) {
      return { kind: 'response' };
    }
  }
  return { kind: 'invalid', id: usable };
}

const STACK_TRACE = /\n\s+at |\bat [\w.<>$]+ \(|node:internal|\.(?:js|ts|mjs|cjs):\d+:\d+/;

/** Why `m`, sent by the server, is not a valid JSON-RPC 2.0 message (undefined when valid). */
export function serverMessageProblem(m: unknown): string | undefined {
  if (Array.isArray(m)) {
    if (m.length === 0) {
      return 'an empty array';
    }
    for (const element of m) {
      if (isObject(element) && 'method' in element) {
        return 'a batch element is not a response';
      }
      const problem = serverMessageProblem(element);
      if (problem) {
        return `batch element: ${problem}`;
      }
    }
    return undefined;
  }
  if (!isObject(m)) {
    return 'not a JSON object';
  }
  if (m.jsonrpc !== '2.0') {
    return `jsonrpc is ${show(m.jsonrpc)}`;
  }
  if ('method' in m) {
    if (typeof m.method !== 'string' || m.method === '') {
      return 'method is not a non-empty string';
    }
    if ('result' in m || 'error' in m) {
      return 'a request or notification carries result or error';
    }
    if ('params' in m && !isObject(m.params)) {
      return 'params is not an object';
    }
    if ('id' in m) {
      if (!validId(m.id)) {
        return `server request id ${show(m.id)} is not a string or integer`;
      }
      if (!SERVER_REQUEST_METHODS.has(m.method)) {
        return `the server sent a request for ${m.method}`;
      }
    } else if (!m.method.startsWith('notifications/')) {
      return `the server sent a notification ${m.method}`;
    }
    return undefined;
  }
  if (!('id' in m) || !(validId(m.id) || m.id === null)) {
    return `response id ${show(m.id)} is not a string, integer or null`;
  }
  if ('result' in m === 'error' in m) {
    return 'a response needs exactly one of result and error';
  }
  if ('result' in m) {
    if (!isObject(m.result)) {
      return 'result is not an object';
    }
    if (m.id === null) {
      return 'a result with id null';
    }
    return undefined;
  }
  const e = m.error;
  if (!isObject(e)) {
    return 'error is not an object';
  }
  if (!Number.isInteger(e.code)) {
    return `error.code ${show(e.code)} is not an integer`;
  }
  if (typeof e.message !== 'string') {
    return 'error.message is not a string';
  }
  if (STACK_TRACE.test(show({ message: e.message, data: e.data }, 100_000))) {
    return 'the error carries a stack trace or source location';
  }
  if (e.code === -32603 && e.message === 'Internal error') {
    // The catch-all for exceptions nobody expected: hostile input must not reach it.
    return 'an unexpected exception (-32603 "Internal error")';
  }
  return undefined;
}

const isAnswer = (m: unknown): m is Obj => isObject(m) && !('method' in m) && 'id' in m;

/**
 * Bookkeeping of one stream: what the client sent, hence how many answers each id may and must
 * get. A valid request gets exactly one answer (none or one once cancelled, or inside a batch,
 * or for a subscription); a notification or a valid response gets none; anything invalid at
 * most one, with its id when usable, else with null.
 */
export class StreamOracle {
  private readonly min = new Map<string, number>();
  private readonly max = new Map<string, number>();
  private readonly open = new Map<string, number>();
  private readonly invalidWithId = new Map<string, number>();
  private invalidTotal = 0;
  private readonly tokens = new Set<string>();
  /** The last valid request sent with each id (for input_required retries). */
  readonly requests = new Map<string, Obj>();
  /** Listen requests still running (the driver cancels them at the end). */
  readonly listens = new Map<string, string | number>();
  frames = 0;

  constructor(private readonly maxFrameBytes?: number) {}

  sent(frame: Frame): void {
    this.frames++;
    const text = frameText(frame);
    if (this.maxFrameBytes !== undefined && Buffer.byteLength(text) > this.maxFrameBytes) {
      this.invalidTotal++;
      return;
    }
    const value = parseFrame(text);
    if (value === PARSE_FAILED) {
      this.invalidTotal++;
      return;
    }
    if (Array.isArray(value)) {
      this.invalidTotal++; // refused as a whole, or answered element by element
      for (const element of value) {
        this.account(element, true);
      }
      return;
    }
    this.account(value, false);
  }

  private bump(map: Map<string, number>, key: string, by = 1): void {
    map.set(key, (map.get(key) ?? 0) + by);
  }

  private account(value: unknown, inBatch: boolean): void {
    if (isObject(value) && isObject(value.params) && isObject(value.params._meta)) {
      this.tokens.add(idKey(value.params._meta.progressToken));
    }
    const kind = specKind(value);
    switch (kind.kind) {
      case 'request': {
        const key = idKey(kind.id);
        this.bump(this.max, key);
        this.requests.set(key, value as Obj);
        if (kind.method === 'subscriptions/listen') {
          this.listens.set(key, kind.id);
        } else if (!inBatch) {
          this.bump(this.min, key);
          this.bump(this.open, key);
        }
        return;
      }
      case 'notification': {
        const target = kind.params?.requestId;
        if (kind.method === 'notifications/cancelled' && target !== undefined) {
          const key = idKey(target);
          this.bump(this.min, key, -(this.open.get(key) ?? 0));
          this.open.set(key, 0);
          this.listens.delete(key);
        }
        return;
      }
      case 'response':
        return;
      case 'invalid':
        this.invalidTotal++;
        if (kind.id !== undefined) {
          this.bump(this.invalidWithId, idKey(kind.id));
        }
        return;
    }
  }

  private counts(received: readonly unknown[]): Map<string, number> {
    const counts = new Map<string, number>();
    for (const message of received) {
      for (const m of Array.isArray(message) ? message : [message]) {
        if (isAnswer(m)) {
          this.bump(counts, idKey(m.id));
        }
      }
    }
    return counts;
  }

  /** Ids that still lack an answer they must get. */
  unmet(received: readonly unknown[]): string[] {
    const counts = this.counts(received);
    return [...this.min].filter(([key, min]) => (counts.get(key) ?? 0) < min).map(([k]) => k);
  }

  /**
   * Everything wrong with what the server sent. `complete` is false when the server failed the
   * connection on purpose: answers still pending then were lost with it.
   */
  check(received: readonly unknown[], complete = true): string[] {
    const problems: string[] = [];
    received.forEach((m, i) => {
      const problem = serverMessageProblem(m);
      if (problem) {
        problems.push(`server message #${i}: ${problem}: ${show(m)}`);
      }
      if (isObject(m) && m.method === 'notifications/progress' && isObject(m.params)) {
        const token = idKey(m.params.progressToken);
        if (!this.tokens.has(token)) {
          problems.push(`progress for a token the client never sent: ${show(m)}`);
        }
      }
    });
    const counts = this.counts(received);
    for (const [key, count] of counts) {
      if (key === 'null') {
        continue;
      }
      const min = this.min.get(key) ?? 0;
      const max = this.max.get(key) ?? 0;
      const extra = count - max;
      if ((complete && count < min) || extra > (this.invalidWithId.get(key) ?? 0)) {
        problems.push(`id ${key}: ${count} answer(s), expected ${min}..${max}`);
      }
    }
    for (const [key, min] of this.min) {
      if (complete && min > 0 && !counts.has(key)) {
        problems.push(`id ${key}: no answer, expected ${min}..${this.max.get(key) ?? 0}`);
      }
    }
    const nulls = counts.get('null') ?? 0;
    if (nulls > this.invalidTotal) {
      problems.push(`${nulls} answer(s) with id null for ${this.invalidTotal} invalid frame(s)`);
    }
    return problems;
  }
}

// ---------------------------------------------------------------------------------------------
// Driving a stream transport

export type Delivery = 'delivered' | 'dropped' | 'closed';

/** One client connection of a stream transport. */
export interface StreamEndpoint {
  /** Every message the server sent, parsed, in order. */
  readonly received: unknown[];
  /** Transport-level failures seen so far (bad frames, unexpected closes, crashes). */
  readonly problems: string[];
  /**
   * Sends one frame. `wire` is the frame as the server gets it when the transport must alter it
   * (stdio cannot carry newlines inside a frame).
   */
  send(frame: Frame): Promise<{ delivery: Delivery; wire?: Frame }>;
  /** Resolves when the server finished every request (when the endpoint can tell). */
  settle?(timeoutMs: number): Promise<boolean>;
}

export interface StreamRunOptions {
  profile: FuzzProfile;
  /** Frames above this many bytes are refused by the transport with one error (stdio). */
  maxFrameBytes?: number;
  /** How long to wait for outstanding answers after the sentinel was answered. */
  settleMs: number;
  /** How long the sentinel request may take. */
  answerTimeoutMs: number;
  sentinelId: string;
}

export interface RunReport {
  /** Frames sent. */
  sent: number;
  /** Server messages and HTTP answers checked. */
  checked: number;
  problems: string[];
  /** The stream was closed by the server (expectedly or not) before the end. */
  closed?: boolean;
}

async function waitUntil(test: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() >= deadline) {
      return false;
    }
    await sleep(5);
  }
  return true;
}

const serverRequests = (received: readonly unknown[]): Obj[] =>
  received.filter((m): m is Obj => isObject(m) && typeof m.method === 'string' && 'id' in m);

const inputRequired = (received: readonly unknown[]): Obj[] =>
  received.filter(
    (m): m is Obj =>
      isAnswer(m) &&
      isObject(m.result) &&
      m.result.resultType === 'input_required' &&
      typeof m.result.requestState === 'string',
  );

/** The echo request every run ends with: the connection must still serve it correctly. */
export const sentinelFrame = (profile: FuzzProfile, id: string): Frame =>
  jsonFrame({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name: profile.echoTool, arguments: { message: 'still alive' }, _meta: modernMeta() },
  });

export function sentinelProblem(answer: unknown): string | undefined {
  const result = isObject(answer) ? answer.result : undefined;
  const content = isObject(result) && Array.isArray(result.content) ? result.content : [];
  const first: unknown = content[0];
  if (!isObject(first) || first.text !== 'still alive' || (isObject(result) && result.isError)) {
    return `the sentinel echo was not answered correctly: ${show(answer)}`;
  }
  return undefined;
}

/**
 * Plays `steps` against one endpoint, then the sentinel, and judges the whole transcript.
 * Replies and retries are built from what the server sent so far.
 */
export async function driveStream(
  endpoint: StreamEndpoint,
  steps: readonly Step[],
  options: StreamRunOptions,
): Promise<RunReport> {
  const oracle = new StreamOracle(options.maxFrameBytes);
  // Judge only what this run provoked (an endpoint may have served an earlier run).
  const start = endpoint.received.length;
  const received = (): unknown[] => endpoint.received.slice(start);
  let closed = false;
  const deliver = async (frame: Frame): Promise<boolean> => {
    const { delivery, wire } = await endpoint.send(frame);
    if (delivery === 'delivered') {
      oracle.sent(wire ?? frame);
    }
    closed = delivery === 'closed';
    return !closed;
  };
  let sent = 0;
  for (const step of steps) {
    let frame: Frame | undefined;
    if (step.t === 'send') {
      frame = step.frame;
    } else if (step.t === 'reply') {
      const pending = serverRequests(received());
      if (pending.length > 0) {
        const request = pending[step.pick % pending.length];
        frame = jsonFrame({ jsonrpc: '2.0', id: request.id, ...step.reply });
      }
    } else if (step.t === 'retry') {
      const rounds = inputRequired(received());
      if (rounds.length > 0) {
        const round = rounds[step.pick % rounds.length];
        const original = oracle.requests.get(idKey(round.id));
        if (original && isObject(original.params)) {
          const retry = jsonFrame({
            ...original,
            id: step.id,
            params: {
              ...original.params,
              requestState: (round.result as Obj).requestState,
              inputResponses: step.inputResponses,
            },
          });
          try {
            frameBytes(retry); // a decoded request may be nested deeper than JSON.stringify goes
            frame = retry;
          } catch {
            frame = undefined;
          }
        }
      }
    } else {
      await sleep(step.ms);
    }
    if (frame) {
      sent++;
      if (!(await deliver(frame))) {
        break;
      }
    }
  }
  const problems: string[] = [];
  if (!closed) {
    // A well-behaved end: cancel subscriptions, then prove the connection still works.
    for (const id of oracle.listens.values()) {
      const cancel = {
        jsonrpc: '2.0',
        method: 'notifications/cancelled',
        params: { requestId: id },
      };
      await deliver(jsonFrame(cancel));
    }
    await deliver(initializedFrame);
    const answered = closed
      ? false
      : (await deliver(sentinelFrame(options.profile, options.sentinelId))) &&
        (await waitUntil(
          () => received().some((m) => isAnswer(m) && m.id === options.sentinelId),
          options.answerTimeoutMs,
        ));
    if (!answered) {
      problems.push(
        closed
          ? 'the connection closed before the sentinel request'
          : `the sentinel request got no answer within ${options.answerTimeoutMs} ms (hang?)`,
      );
    } else {
      const problem = sentinelProblem(
        received().find((m) => isAnswer(m) && m.id === options.sentinelId),
      );
      if (problem) {
        problems.push(problem);
      }
    }
  }
  if (endpoint.settle) {
    if (!(await endpoint.settle(options.settleMs))) {
      problems.push(`requests still running ${options.settleMs} ms after the stream (hang?)`);
    }
  } else if (!closed) {
    // Answers may trail the sentinel (slow handlers, timeouts): wait while they keep coming.
    let seen = -1;
    let quietSince = Date.now();
    const deadline = Date.now() + 30 * options.settleMs;
    while (oracle.unmet(received()).length > 0 && Date.now() < deadline) {
      if (endpoint.received.length !== seen) {
        seen = endpoint.received.length;
        quietSince = Date.now();
      } else if (Date.now() - quietSince > options.settleMs) {
        break;
      }
      await sleep(10);
    }
  }
  problems.push(...endpoint.problems, ...oracle.check(received(), !closed));
  return { sent, checked: received().length, problems, closed };
}

/** A failure message with the end of the transcript, for humans. */
export function describeFailure(report: RunReport, received: readonly unknown[]): string {
  const tail = received.slice(-8).map((m) => `  <- ${show(m, 240)}`);
  return [...report.problems.slice(0, 12), 'last server messages:', ...tail].join('\n');
}

// ---------------------------------------------------------------------------------------------
// HTTP plumbing

export interface SseEvent {
  event: string;
  data: string;
  id?: string;
}

/** An incremental text/event-stream parser. */
export class SseParser {
  private buffer = '';
  constructor(private readonly onEvent: (event: SseEvent) => void) {}

  push(chunk: string): void {
    this.buffer += chunk;
    let end: number;
    while ((end = this.buffer.indexOf('\n\n')) >= 0) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      let event = 'message';
      let id: string | undefined;
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) {
          continue;
        }
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) {
          value = value.slice(1);
        }
        if (field === 'event') {
          event = value;
        } else if (field === 'data') {
          data.push(value);
        } else if (field === 'id') {
          id = value;
        }
      }
      if (data.length > 0 || event !== 'message') {
        this.onEvent({ event, data: data.join('\n'), id });
      }
    }
  }
}

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  events: SseEvent[];
  /** complete: the body ended; stopped: we stopped reading; aborted: we cancelled early. */
  outcome: 'complete' | 'stopped' | 'aborted' | 'timeout' | 'error';
  error?: string;
}

export interface HttpCallOptions {
  method: string;
  headers: Record<string, string>;
  body?: Buffer;
  agent?: http.Agent;
  timeoutMs: number;
  /** Cancel the request after this many ms (a client that goes away). */
  abortAfterMs?: number;
  /** Stop reading a stream once this holds (streams that stay open by design). */
  stopWhen?: (answer: HttpAnswer) => boolean;
  onEvent?: (event: SseEvent) => void;
}

/** One raw HTTP exchange; never rejects. */
export function httpCall(url: string, options: HttpCallOptions): Promise<HttpAnswer> {
  return new Promise<HttpAnswer>((resolve) => {
    const answer: HttpAnswer = {
      status: 0,
      headers: {},
      body: '',
      events: [],
      outcome: 'complete',
    };
    let settled = false;
    const timers: NodeJS.Timeout[] = [];
    const finish = (outcome: HttpAnswer['outcome'], error?: string): void => {
      if (settled) {
        return;
      }
      settled = true;
      timers.forEach(clearTimeout);
      answer.outcome = outcome;
      answer.error = error;
      if (outcome !== 'complete') {
        request.destroy();
      }
      resolve(answer);
    };
    let request: http.ClientRequest;
    const headers = { ...options.headers };
    if (options.body !== undefined) {
      // Node sends a DELETE body without framing unless told its length.
      headers['content-length'] = String(options.body.length);
    }
    try {
      request = http.request(url, {
        method: options.method,
        headers,
        agent: options.agent,
      });
    } catch (err) {
      resolve({ ...answer, outcome: 'error', error: `client refused: ${(err as Error).message}` });
      return;
    }
    timers.push(setTimeout(() => finish('timeout'), options.timeoutMs));
    if (options.abortAfterMs !== undefined) {
      timers.push(setTimeout(() => finish('aborted'), options.abortAfterMs));
    }
    request.on('error', (err) => finish('error', err.message));
    request.on('response', (response) => {
      answer.status = response.statusCode ?? 0;
      answer.headers = response.headers;
      response.setEncoding('utf8');
      const sse = String(response.headers['content-type'] ?? '').includes('text/event-stream');
      const parser = new SseParser((event) => {
        answer.events.push(event);
        options.onEvent?.(event);
        if (options.stopWhen?.(answer)) {
          finish('stopped');
        }
      });
      response.on('data', (chunk: string) => {
        if (sse) {
          parser.push(chunk);
        } else {
          answer.body += chunk;
        }
      });
      response.on('end', () => finish('complete'));
      response.on('error', (err) => finish('error', err.message));
      if (options.stopWhen?.(answer)) {
        finish('stopped');
      }
    });
    request.end(options.body);
  });
}

/** Header values Node's HTTP client accepts (latin-1 without controls). */
export const headerValue: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 24, unit: 'grapheme-ascii' }) },
  {
    weight: 1,
    arbitrary: fc.string({
      maxLength: 12,
      unit: fc
        .integer({ min: 0x20, max: 0xff })
        .filter((c) => c !== 0x7f)
        .map((c) => String.fromCharCode(c)),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '',
      'application/json',
      'text/event-stream',
      'application/json, text/event-stream',
      '*/*',
      'text/plain',
      'application/json; charset=utf-16',
      'application/jsonx',
      MODERN,
      ...LEGACY_VERSIONS,
      'tools/call',
      'echo',
      '=?base64?ZWNobw==?=',
      '=?base64?%%%?=',
      'gzip',
      'null',
      'http://evil.example.com',
      'evil.example.com',
      'localhost',
    ),
  },
);

const HEADER_NAMES = [
  'accept',
  'content-type',
  'mcp-protocol-version',
  'mcp-method',
  'mcp-name',
  'mcp-session-id',
  'mcp-param-message',
  'origin',
  'host',
  'last-event-id',
  'content-encoding',
  'x-request-id',
];

export interface HeaderEdit {
  name: string;
  /** Undefined removes the header. */
  value?: string;
}

export const headerEditArb: fc.Arbitrary<HeaderEdit> = fc.record(
  {
    name: fc.oneof(
      { weight: 5, arbitrary: fc.constantFrom(...HEADER_NAMES) },
      { weight: 1, arbitrary: fc.stringMatching(/^x-[a-z0-9-]{1,10}$/) },
    ),
    value: opt(headerValue, 4),
  },
  { requiredKeys: ['name'] },
);

const HEADER_SAFE = /^[\t\x20-\x7e]*$/;

/** A header value for `text`: literal when ASCII, else the `=?base64?…?=` form. */
export const encodeHeader = (text: string): string =>
  HEADER_SAFE.test(text) ? text : `=?base64?${Buffer.from(text, 'utf8').toString('base64')}?=`;

// ---------------------------------------------------------------------------------------------
// Streamable HTTP

export interface HttpExchange {
  method: 'POST' | 'GET' | 'DELETE';
  /**
   * Which default headers to send: those of a 2026-07-28 request, of a session, none, or
   * (auto) whichever fits the body.
   */
  headers: 'auto' | 'modern' | 'session' | 'none';
  /** Mcp-Session-Id: the run's session, one created during the run, a made-up one, or none. */
  session: 'live' | 'random' | 'none' | number;
  frame?: Frame;
  edits: HeaderEdit[];
  lastEventId?: 'session' | 'random';
  abortAfterMs?: number;
  /** How to answer a server-to-client request arriving on the response stream. */
  reply?: Obj;
}

export interface HttpScenario {
  version: (typeof LEGACY_VERSIONS)[number];
  exchanges: HttpExchange[];
}

export function httpScenarioArb(
  profile: FuzzProfile,
  maxExchanges: number,
): fc.Arbitrary<HttpScenario> {
  const session = fc.oneof(
    { weight: 4, arbitrary: fc.constant<HttpExchange['session']>('live') },
    { weight: 1, arbitrary: fc.constantFrom<HttpExchange['session']>('random', 'none') },
    { weight: 1, arbitrary: fc.nat(3) },
  );
  const edits = fc.oneof(
    { weight: 4, arbitrary: fc.constant<HeaderEdit[]>([]) },
    { weight: 1, arbitrary: fc.array(headerEditArb, { minLength: 1, maxLength: 3 }) },
  );
  const post = fc.record(
    {
      method: fc.constant<'POST'>('POST'),
      headers: fc.oneof(
        { weight: 6, arbitrary: fc.constant<HttpExchange['headers']>('auto') },
        {
          weight: 1,
          arbitrary: fc.constantFrom<HttpExchange['headers']>('modern', 'session', 'none'),
        },
      ),
      session,
      frame: frameArb(profile),
      edits,
      abortAfterMs: opt(fc.integer({ min: 0, max: 40 }), 12),
      reply: opt(replyBodyArb, 3),
    },
    { requiredKeys: ['method', 'headers', 'session', 'frame', 'edits'] },
  );
  const get = fc.record(
    {
      method: fc.constant<'GET'>('GET'),
      headers: fc.constantFrom<HttpExchange['headers']>('auto', 'session', 'modern', 'none'),
      session,
      edits,
      lastEventId: opt(fc.constantFrom<'session' | 'random'>('session', 'random')),
    },
    { requiredKeys: ['method', 'headers', 'session', 'edits'] },
  );
  const del = fc.record(
    {
      method: fc.constant<'DELETE'>('DELETE'),
      headers: fc.constantFrom<HttpExchange['headers']>('auto', 'session', 'modern', 'none'),
      session,
      edits,
      frame: opt(frameArb(profile), 6),
    },
    { requiredKeys: ['method', 'headers', 'session', 'edits'] },
  );
  return fc.record({
    version: fc.constantFrom(...LEGACY_VERSIONS),
    exchanges: fc.array(
      fc.oneof(
        { weight: 16, arbitrary: post },
        { weight: 2, arbitrary: get },
        { weight: 2, arbitrary: del },
      ),
      { minLength: 1, maxLength: maxExchanges },
    ),
  });
}

export interface HttpTarget {
  baseUrl: string;
  mcpPath: string;
  maxBodyBytes: number;
  profile: FuzzProfile;
  timeoutMs: number;
}

const JSON_CT = 'application/json';
const ACCEPT_BOTH = 'application/json, text/event-stream';

/** Drives Streamable HTTP: sessions, exchanges, replies on response streams, sentinel. */
export class HttpFuzzer {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  private runs = 0;
  /** Every session this fuzzer deleted. */
  readonly deleted = new Set<string>();

  constructor(private readonly target: HttpTarget) {}

  close(): void {
    this.agent.destroy();
  }

  private url(path = this.target.mcpPath): string {
    return `${this.target.baseUrl}${path}`;
  }

  /** initialize + notifications/initialized; undefined (and a problem) when refused. */
  async openSession(version: string, problems: string[]): Promise<string | undefined> {
    const init = await httpCall(this.url(), {
      method: 'POST',
      headers: { 'content-type': JSON_CT, accept: ACCEPT_BOTH },
      body: frameBytes(initializeFrame(version, 1)),
      agent: this.agent,
      timeoutMs: this.target.timeoutMs,
    });
    const id = init.headers['mcp-session-id'];
    if (init.status !== 200 || typeof id !== 'string') {
      problems.push(`initialize failed: ${init.status} ${init.outcome} ${clip(init.body)}`);
      return undefined;
    }
    const initialized = await httpCall(this.url(), {
      method: 'POST',
      headers: { 'content-type': JSON_CT, accept: ACCEPT_BOTH, 'mcp-session-id': id },
      body: frameBytes(initializedFrame),
      agent: this.agent,
      timeoutMs: this.target.timeoutMs,
    });
    if (initialized.status !== 202) {
      problems.push(`notifications/initialized got ${initialized.status}`);
    }
    return id;
  }

  /** DELETEs a session (and remembers it: nothing of it should survive). */
  async deleteSession(id: string): Promise<void> {
    this.deleted.add(id);
    await httpCall(this.url(), {
      method: 'DELETE',
      headers: { 'mcp-session-id': id },
      agent: this.agent,
      timeoutMs: this.target.timeoutMs,
    });
  }

  async run(scenario: HttpScenario): Promise<RunReport> {
    const run = ++this.runs;
    const problems: string[] = [];
    const sessions: string[] = [];
    const live = await this.openSession(scenario.version, problems);
    if (live !== undefined) {
      sessions.push(live);
    }
    let sent = 0;
    let checked = 0;
    for (const [index, exchange] of scenario.exchanges.entries()) {
      sent++;
      const { answer, body } = await this.exchange(exchange, live, sessions, scenario.version);
      checked++;
      for (const problem of this.judge(exchange, body, answer)) {
        const outcome = answer.status === 0 ? answer.outcome : answer.status;
        problems.push(`exchange #${index} (${exchange.method} -> ${outcome}): ${problem}`);
      }
      const created = answer.headers['mcp-session-id'];
      if (
        typeof created === 'string' &&
        isObject(body) &&
        body.method === 'initialize' &&
        !sessions.includes(created)
      ) {
        sessions.push(created);
      }
    }
    problems.push(...(await this.sentinel(`http-sentinel-${run}`, scenario.version)));
    await Promise.all(sessions.map((id) => this.deleteSession(id)));
    return { sent, checked: checked + 1, problems };
  }

  /** The server still serves both eras correctly. */
  async sentinel(id: string, version: string): Promise<string[]> {
    const problems: string[] = [];
    const modern = await httpCall(this.url(), {
      method: 'POST',
      headers: {
        'content-type': JSON_CT,
        accept: ACCEPT_BOTH,
        'mcp-protocol-version': MODERN,
        'mcp-method': 'tools/call',
        'mcp-name': this.target.profile.echoTool,
      },
      body: frameBytes(sentinelFrame(this.target.profile, id)),
      agent: this.agent,
      timeoutMs: this.target.timeoutMs,
    });
    const parsed = modern.status === 200 ? parseFrame(modern.body) : undefined;
    const problem = sentinelProblem(parsed);
    if (problem) {
      problems.push(`${problem} (HTTP ${modern.status} ${modern.outcome} ${clip(modern.body)})`);
    }
    const session = await this.openSession(version, problems);
    if (session !== undefined) {
      const ping = await httpCall(this.url(), {
        method: 'POST',
        headers: { 'content-type': JSON_CT, accept: ACCEPT_BOTH, 'mcp-session-id': session },
        body: frameBytes(jsonFrame({ jsonrpc: '2.0', id, method: 'ping' })),
        agent: this.agent,
        timeoutMs: this.target.timeoutMs,
      });
      const pong = parseFrame(ping.body);
      if (ping.status !== 200 || !isObject(pong) || pong.id !== id || !isObject(pong.result)) {
        problems.push(`a session ping was not answered: ${ping.status} ${clip(ping.body)}`);
      }
      await this.deleteSession(session);
    }
    return problems;
  }

  private async exchange(
    exchange: HttpExchange,
    live: string | undefined,
    sessions: readonly string[],
    version: string,
  ): Promise<{ answer: HttpAnswer; body: unknown }> {
    const bytes = exchange.frame ? frameBytes(exchange.frame) : undefined;
    const body = bytes ? parseFrame(bytes.toString('utf8')) : undefined;
    let sessionId: string | undefined;
    if (exchange.session === 'live') {
      sessionId = live;
    } else if (exchange.session === 'random') {
      sessionId = 'bm8tc3VjaC1zZXNzaW9uLWF0LWFsbA';
    } else if (typeof exchange.session === 'number' && sessions.length > 0) {
      sessionId = sessions[exchange.session % sessions.length];
    }
    const headers: Record<string, string> = {};
    if (exchange.method === 'POST') {
      headers['content-type'] = JSON_CT;
      headers.accept = ACCEPT_BOTH;
    } else if (exchange.method === 'GET') {
      headers.accept = 'text/event-stream';
    }
    const params = isObject(body) ? body.params : undefined;
    const enveloped = isObject(params) && isObject(params._meta) && PV_KEY in params._meta;
    const mode =
      exchange.headers === 'auto'
        ? exchange.method === 'POST' && enveloped
          ? 'modern'
          : 'session'
        : exchange.headers;
    if (mode === 'modern') {
      headers['mcp-protocol-version'] = MODERN;
      if (isObject(body) && typeof body.method === 'string') {
        headers['mcp-method'] = encodeHeader(body.method);
        const name = isObject(params) ? (params.name ?? params.uri) : undefined;
        if (typeof name === 'string') {
          headers['mcp-name'] = encodeHeader(name);
        }
      }
    } else if (mode === 'session') {
      headers['mcp-protocol-version'] = version;
    }
    if (mode !== 'none' && sessionId !== undefined) {
      headers['mcp-session-id'] = sessionId;
    }
    if (exchange.lastEventId === 'session') {
      headers['last-event-id'] = `${sessionId ?? 'x'}.1:0`;
    } else if (exchange.lastEventId === 'random') {
      headers['last-event-id'] = 'nope:1';
    }
    for (const edit of exchange.edits) {
      if (edit.value === undefined) {
        delete headers[edit.name];
      } else {
        headers[edit.name] = edit.value;
      }
    }
    const listen =
      isObject(body) && body.method === 'subscriptions/listen' && specKind(body).kind === 'request';
    const answer = await httpCall(this.url(), {
      method: exchange.method,
      headers,
      body: bytes,
      agent: this.agent,
      timeoutMs: this.target.timeoutMs,
      abortAfterMs: exchange.abortAfterMs,
      // GET streams and subscriptions stay open by design: look at the start only.
      stopWhen: (a) =>
        String(a.headers['content-type'] ?? '').includes('text/event-stream') &&
        (exchange.method === 'GET' ||
          (listen && a.events.some((e) => e.data.includes('acknowledged')))),
      onEvent: (event) => {
        const message = parseFrame(event.data);
        if (
          exchange.reply &&
          sessionId &&
          isObject(message) &&
          typeof message.method === 'string' &&
          'id' in message
        ) {
          void httpCall(this.url(), {
            method: 'POST',
            headers: { 'content-type': JSON_CT, accept: ACCEPT_BOTH, 'mcp-session-id': sessionId },
            body: frameBytes(jsonFrame({ jsonrpc: '2.0', id: message.id, ...exchange.reply })),
            agent: this.agent,
            timeoutMs: this.target.timeoutMs,
          });
        }
      },
    });
    return { answer, body };
  }

  /** Everything wrong with one HTTP answer. */
  judge(exchange: HttpExchange, body: unknown, answer: HttpAnswer): string[] {
    const problems: string[] = [];
    const size = exchange.frame ? frameBytes(exchange.frame).length : 0;
    const oversized = size > this.target.maxBodyBytes;
    if (answer.outcome === 'timeout') {
      return [
        `no complete answer within ${this.target.timeoutMs} ms (hang?) status ${answer.status}`,
      ];
    }
    if (answer.outcome === 'error' && answer.status === 0) {
      // A server may close the connection on a body it refuses to read.
      return oversized ? [] : [`request failed without an answer: ${answer.error ?? ''}`];
    }
    if (answer.status === 0) {
      return []; // aborted by us before the answer
    }
    const status = answer.status;
    if (!((status >= 200 && status < 300) || (status >= 400 && status < 500))) {
      problems.push(`status ${status}`);
    }
    if (oversized && status < 400) {
      problems.push(`an oversized body (${size} bytes) got ${status}`);
    }
    const type = String(answer.headers['content-type'] ?? '');
    const messages: unknown[] = [];
    if (type.includes('text/event-stream')) {
      for (const event of answer.events) {
        if (event.event !== 'message' || event.data === '') {
          continue;
        }
        const m = parseFrame(event.data);
        if (m === PARSE_FAILED) {
          problems.push(`an SSE event is not JSON: ${clip(event.data)}`);
        } else {
          messages.push(m);
        }
      }
    } else if (answer.body !== '' && answer.outcome === 'complete') {
      if (!type.includes('application/json')) {
        problems.push(`a ${status} body of type ${type || '(none)'}: ${clip(answer.body)}`);
      } else {
        const m = parseFrame(answer.body);
        if (m === PARSE_FAILED) {
          problems.push(`an application/json body that is not JSON: ${clip(answer.body)}`);
        } else {
          messages.push(m);
        }
      }
    } else if (status >= 400 && answer.outcome === 'complete') {
      problems.push(`${status} without a JSON-RPC error body`);
    }
    for (const m of messages) {
      const problem = serverMessageProblem(m);
      if (problem) {
        problems.push(`${problem}: ${show(m)}`);
      }
    }
    if (status >= 400 && messages.length > 0) {
      const m = messages[0];
      if (!isObject(m) || !isObject(m.error)) {
        problems.push(`${status} with a body that is not a JSON-RPC error: ${show(m)}`);
      }
    }
    if (STACK_TRACE.test(answer.body) || answer.events.some((e) => STACK_TRACE.test(e.data))) {
      problems.push('the answer carries a stack trace or source location');
    }
    if (exchange.method !== 'POST' || answer.outcome !== 'complete' || oversized) {
      return problems;
    }
    const kind = specKind(body);
    if (kind.kind === 'request' && status === 200) {
      const answers = messages.flatMap((m) => (Array.isArray(m) ? m : [m])).filter(isAnswer);
      const mine = answers.filter((m) => idKey(m.id) === idKey(kind.id));
      if (mine.length !== 1 || answers.length !== 1) {
        problems.push(
          `request ${show(kind.id)} got ${mine.length} answer(s) with its id among ${answers.length}`,
        );
      }
    }
    if (
      (kind.kind === 'notification' || kind.kind === 'response') &&
      status < 300 &&
      status !== 202
    ) {
      problems.push(`a ${kind.kind} was answered with ${status}`);
    }
    if (kind.kind === 'request' && status === 202) {
      problems.push('a request was acknowledged with 202 and never answered');
    }
    return problems;
  }
}

// ---------------------------------------------------------------------------------------------
// Legacy HTTP+SSE (2024-11-05): GET {path}/sse, then POST to the endpoint event's URI

export class LegacySseEndpoint implements StreamEndpoint {
  readonly received: unknown[] = [];
  readonly problems: string[] = [];
  private request?: http.ClientRequest;
  private endpoint?: string;
  private ended = false;

  private constructor(
    private readonly target: HttpTarget,
    private readonly agent: http.Agent,
  ) {}

  static async open(target: HttpTarget, agent: http.Agent): Promise<LegacySseEndpoint> {
    const endpoint = new LegacySseEndpoint(target, agent);
    await endpoint.connect();
    return endpoint;
  }

  private connect(): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.problems.push('no endpoint event within the timeout');
        resolve();
      }, this.target.timeoutMs);
      const parser = new SseParser((event) => {
        if (event.event === 'endpoint') {
          this.endpoint = event.data;
          clearTimeout(timer);
          resolve();
          return;
        }
        const message = parseFrame(event.data);
        if (message === PARSE_FAILED) {
          this.problems.push(`an SSE event is not JSON: ${clip(event.data)}`);
        } else {
          this.received.push(message);
        }
      });
      this.request = http.get(
        `${this.target.baseUrl}${this.target.mcpPath}/sse`,
        { headers: { accept: 'text/event-stream' }, agent: false },
        (response) => {
          if (response.statusCode !== 200) {
            this.problems.push(`GET /sse answered ${response.statusCode}`);
          }
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => parser.push(chunk));
          response.on('end', () => {
            if (!this.ended) {
              this.problems.push('the server ended the SSE stream');
            }
          });
          response.on('error', () => undefined);
        },
      );
      this.request.on('error', (err) => {
        if (!this.ended) {
          this.problems.push(`SSE stream error: ${err.message}`);
        }
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async send(frame: Frame): Promise<{ delivery: Delivery }> {
    if (this.endpoint === undefined) {
      return { delivery: 'closed' };
    }
    const bytes = frameBytes(frame);
    const answer = await httpCall(`${this.target.baseUrl}${this.endpoint}`, {
      method: 'POST',
      headers: { 'content-type': JSON_CT },
      body: bytes,
      agent: this.agent,
      timeoutMs: this.target.timeoutMs,
    });
    const oversized = bytes.length > this.target.maxBodyBytes;
    if (answer.status === 202) {
      if (oversized) {
        this.problems.push(`an oversized message (${bytes.length} bytes) was accepted`);
      }
      return { delivery: 'delivered' };
    }
    if (answer.outcome === 'error' && oversized) {
      return { delivery: 'dropped' };
    }
    const body = parseFrame(answer.body);
    const problem = serverMessageProblem(body);
    const expected = oversized ? 413 : 400;
    if (answer.status !== expected || problem || !isObject(body) || !isObject(body.error)) {
      this.problems.push(
        `POST ${show(frameText(frame), 80)} answered ${answer.status} ${answer.outcome} ${clip(answer.body)}`,
      );
    }
    return { delivery: 'dropped' };
  }

  close(): void {
    this.ended = true;
    this.request?.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// WebSocket

/** Close codes the gateway documents, and why each may happen. */
export const WS_DOCUMENTED_CLOSES = [1003, 1008, 1009, 1013];

export class WebSocketEndpoint implements StreamEndpoint {
  readonly received: unknown[] = [];
  readonly problems: string[] = [];
  closeInfo?: { code: number; reason: string };
  private readonly closed: Promise<void>;
  private expectingClose = false;

  private constructor(
    readonly socket: WebSocket,
    private readonly maxFrameBytes: number,
  ) {
    socket.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      const text = Array.isArray(data)
        ? Buffer.concat(data).toString('utf8')
        : Buffer.from(data as ArrayBuffer).toString('utf8');
      const message = parseFrame(text);
      if (isBinary || message === PARSE_FAILED) {
        this.problems.push(`a ${isBinary ? 'binary' : 'non-JSON'} frame: ${clip(text)}`);
      } else {
        this.received.push(message);
      }
    });
    socket.on('error', () => undefined);
    this.closed = new Promise<void>((resolve) =>
      socket.on('close', (code: number, reason: Buffer) => {
        this.closeInfo = { code, reason: reason.toString() };
        resolve();
      }),
    );
  }

  static async open(url: string, maxFrameBytes: number): Promise<WebSocketEndpoint> {
    const socket = new WebSocket(url, ['mcp'], { maxPayload: 64 * 1024 * 1024 });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return new WebSocketEndpoint(socket, maxFrameBytes);
  }

  private async expectClose(codes: number[], why: string): Promise<void> {
    this.expectingClose = true;
    const done = await Promise.race([this.closed.then(() => true), after(5000, false)]);
    if (!done) {
      this.problems.push(`the server kept the connection open after ${why}`);
    } else if (!codes.includes(this.closeInfo!.code)) {
      this.problems.push(
        `closed with ${this.closeInfo!.code} after ${why}, expected ${codes.join('/')}`,
      );
    }
  }

  async send(frame: Frame): Promise<{ delivery: Delivery }> {
    if (this.closeInfo) {
      this.problems.push(
        `the server closed the connection: ${this.closeInfo.code} ${this.closeInfo.reason}`,
      );
      return { delivery: 'closed' };
    }
    const bytes = frameBytes(frame);
    await new Promise<void>((resolve) =>
      this.socket.send(bytes, { binary: false }, () => resolve()),
    );
    if (bytes.length > this.maxFrameBytes) {
      await this.expectClose([1009], `a ${bytes.length}-byte frame`);
      return { delivery: 'closed' };
    }
    if (!isUtf8(bytes)) {
      // RFC 6455 §8.1: a text frame that is not UTF-8 fails the connection (1007).
      await this.expectClose([1007], 'a text frame with invalid UTF-8');
      return { delivery: 'closed' };
    }
    return { delivery: 'delivered' };
  }

  async sendBinary(bytes: Uint8Array): Promise<void> {
    this.socket.send(bytes, { binary: true });
    await this.expectClose([1003], 'a binary frame');
  }

  async close(): Promise<void> {
    if (this.closeInfo) {
      if (!this.expectingClose) {
        this.problems.push(
          `closed by the server without a reason the client gave: ${this.closeInfo.code} ${this.closeInfo.reason}`,
        );
      }
      return;
    }
    this.expectingClose = true;
    this.socket.close(1000);
    if (!(await Promise.race([this.closed.then(() => true), after(2000, false)]))) {
      this.socket.terminate();
    }
  }
}

export interface WsScenario {
  steps: Step[];
  /** How the connection ends: normally, or with a frame the server must refuse by closing. */
  end: 'normal' | 'binary' | 'oversize' | 'invalid-utf8';
}

/**
 * Stream scenarios for WebSocket. A text frame with invalid UTF-8 fails the connection at once,
 * so inside the steps such frames travel decoded (as every other transport sees them) and the
 * raw ones are one of the ways a connection may end.
 */
export function wsScenarioArb(profile: FuzzProfile, maxSteps: number): fc.Arbitrary<WsScenario> {
  return fc.record({
    steps: streamScenarioArb(profile, maxSteps).map((steps) =>
      steps.map((step): Step => {
        if (step.t === 'send' && step.frame.kind === 'bytes' && !isUtf8(step.frame.bytes)) {
          return { t: 'send', frame: { kind: 'text', text: frameText(step.frame) } };
        }
        return step;
      }),
    ),
    end: fc.constantFrom<WsScenario['end']>(
      'normal',
      'normal',
      'normal',
      'normal',
      'binary',
      'oversize',
      'invalid-utf8',
    ),
  });
}

export async function runWebSocket(
  url: string,
  scenario: WsScenario,
  options: StreamRunOptions & { maxFrameBytes: number },
): Promise<RunReport> {
  const endpoint = await WebSocketEndpoint.open(url, options.maxFrameBytes);
  const { maxFrameBytes: _transportLimit, ...streamOptions } = options;
  const report = await driveStream(endpoint, scenario.steps, streamOptions);
  if (!report.closed && scenario.end !== 'normal') {
    report.sent++;
    if (scenario.end === 'binary') {
      await endpoint.sendBinary(Buffer.from('{"jsonrpc":"2.0","id":1,"method":"ping"}'));
    } else if (scenario.end === 'invalid-utf8') {
      await endpoint.send({
        kind: 'bytes',
        bytes: Buffer.from('{"jsonrpc":"2.0","id":"\xff"}', 'latin1'),
      });
    } else {
      await endpoint.send(
        jsonFrame({
          jsonrpc: '2.0',
          id: 1,
          method: 'x',
          params: { pad: new Huge(options.maxFrameBytes, 'x') },
        }),
      );
    }
    report.closed = true;
  }
  await endpoint.close();
  report.problems.push(...endpoint.problems.filter((p) => !report.problems.includes(p)));
  if (report.closed) {
    // The server refused this connection; it must still serve a new one.
    const fresh = await WebSocketEndpoint.open(url, options.maxFrameBytes);
    const again = await driveStream(fresh, [], {
      ...streamOptions,
      sentinelId: `${options.sentinelId}-again`,
    });
    await fresh.close();
    report.problems.push(
      ...again.problems,
      ...fresh.problems.filter((p) => !again.problems.includes(p)),
    );
    report.checked += again.checked;
  }
  return report;
}

// ---------------------------------------------------------------------------------------------
// stdio: the built CLI as a child process

export class StdioEndpoint implements StreamEndpoint {
  readonly received: unknown[] = [];
  readonly problems: string[] = [];
  readonly child: ChildProcessWithoutNullStreams;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr = '';
  private partial = '';
  private exitInfo?: { code: number | null; signal: NodeJS.Signals | null };
  private stopping = false;

  constructor(cliMain: string, env: Record<string, string>, nodeArgs: string[] = []) {
    this.child = spawn(process.execPath, [...nodeArgs, cliMain, 'stdio'], {
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stdout.setEncoding('utf8');
    this.child.stderr.setEncoding('utf8');
    this.child.stdout.on('data', (chunk: string) => this.onStdout(chunk));
    this.child.stderr.on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-20_000);
    });
    this.child.stdin.on('error', () => undefined);
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        if (!this.stopping) {
          this.problems.push(`the CLI exited on its own: code ${code} signal ${signal}`);
        }
        resolve(this.exitInfo);
      }),
    );
  }

  private onStdout(chunk: string): void {
    const lines = (this.partial + chunk).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      const message = parseFrame(line);
      if (message === PARSE_FAILED) {
        this.problems.push(`a stdout line that is not JSON: ${clip(line)}`);
      } else {
        this.received.push(message);
      }
    }
  }

  async send(frame: Frame): Promise<{ delivery: Delivery; wire?: Frame }> {
    if (this.exitInfo) {
      return { delivery: 'closed' };
    }
    // One line per frame: newlines and carriage returns cannot travel inside one.
    const bytes = Buffer.from(frameBytes(frame).map((b) => (b === 0x0a || b === 0x0d ? 0x20 : b)));
    const wire: Frame = { kind: 'bytes', bytes };
    if (bytes.toString('utf8').trim() === '') {
      return { delivery: 'dropped' }; // blank lines are skipped by design
    }
    const line = Buffer.concat([bytes, Buffer.from('\n')]);
    if (!this.child.stdin.write(line)) {
      await Promise.race([
        new Promise<void>((resolve) => this.child.stdin.once('drain', () => resolve())),
        this.exited,
      ]);
    }
    return { delivery: 'delivered', wire };
  }

  /** Ends stdin and waits for a clean exit. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    this.child.stdin.end();
    const exit = await Promise.race([this.exited, after(timeoutMs, undefined)]);
    if (!exit) {
      this.problems.push(`the CLI did not exit within ${timeoutMs} ms of stdin ending (hang?)`);
      this.child.kill('SIGKILL');
      await this.exited;
    } else if (exit.code !== 0) {
      this.problems.push(
        `the CLI exited with ${exit.code ?? exit.signal}: ${clip(this.stderr, 600)}`,
      );
    }
    if (this.partial !== '') {
      this.problems.push(`stdout ended without a newline: ${clip(this.partial)}`);
    }
  }

  kill(): void {
    this.stopping = true;
    if (!this.exitInfo) {
      this.child.kill('SIGKILL');
    }
  }
}

/** The environment of a spawned gateway or CLI: what Node needs plus the fuzz settings. */
export function childEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = { NODE_ENV: 'test' };
  for (const key of ['PATH', 'HOME', 'TMPDIR', 'SYSTEMROOT']) {
    const value = process.env[key];
    if (value !== undefined) {
      env[key] = value;
    }
  }
  return { ...env, ...extra };
}

// ---------------------------------------------------------------------------------------------
// Memory

/** Forces a full GC; false when this process cannot. */
export function forceGc(): boolean {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (typeof exposed === 'function') {
    exposed();
    return true;
  }
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as (() => void) | undefined;
    if (typeof gc === 'function') {
      gc();
      return true;
    }
  } catch {
    // fall through
  }
  return false;
}

/** heapUsed after (up to three) full collections, in bytes. */
export async function settledHeap(): Promise<{ heapUsed: number; gc: boolean }> {
  let gc = false;
  for (let i = 0; i < 3; i++) {
    await sleep(20);
    gc = forceGc() || gc;
  }
  return { heapUsed: process.memoryUsage().heapUsed, gc };
}

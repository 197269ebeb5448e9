/*
 * The catalog the SDK end-to-end suites run against. Every handler is written once, against
 * the era-neutral RequestContext: on a 2025-era session its elicit/createMessage/listRoots
 * calls are mid-call server-to-client requests; on 2026-07-28 the engine answers
 * `input_required` and re-runs the handler with the earlier answers replayed. Handlers are
 * therefore deterministic up to their input requests.
 *
 * `E2eProbes` lets a test observe what a handler saw (that it started, that its signal was
 * aborted, how often it ran) and hold a handler at a gate until the test releases it.
 */
import {
  CallToolResult,
  JsonObject,
  LogLevel,
  PromptHandler,
  ResourceHandler,
  ResourceTemplateHandler,
  StaticCatalog,
  ToolHandler,
  uriTemplateMatcher,
} from '@portico/mcp-protocol';

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  settled: boolean;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  const d: Deferred<T> = {
    promise,
    settled: false,
    resolve: (value) => {
      d.settled = true;
      resolve(value);
    },
  };
  return d;
}

/** Named one-shot signals shared by handlers and tests, plus per-handler run counters. */
export class E2eProbes {
  private readonly signals = new Map<string, Deferred<unknown>>();
  private readonly counters = new Map<string, number>();

  private slot(name: string): Deferred<unknown> {
    let slot = this.signals.get(name);
    if (!slot) {
      slot = deferred<unknown>();
      this.signals.set(name, slot);
    }
    return slot;
  }

  /** Fires `name` (first value wins). */
  fire(name: string, value?: unknown): void {
    const slot = this.slot(name);
    if (!slot.settled) {
      slot.resolve(value);
    }
  }

  fired(name: string): boolean {
    return this.signals.get(name)?.settled ?? false;
  }

  /** Resolves with the value `name` fired with; rejects after `timeoutMs`. */
  wait(name: string, timeoutMs = 3000): Promise<unknown> {
    const slot = this.slot(name);
    if (slot.settled) {
      return slot.promise;
    }
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`probe "${name}" did not fire within ${timeoutMs} ms`)),
        timeoutMs,
      );
      void slot.promise.then((value) => {
        clearTimeout(timer);
        resolve(value);
      });
    });
  }

  count(name: string): number {
    return this.counters.get(name) ?? 0;
  }

  bump(name: string): void {
    this.counters.set(name, this.count(name) + 1);
  }
}

const text = (value: string): CallToolResult => ({ content: [{ type: 'text', text: value }] });

/** Waits until `signal` aborts or `ms` elapse; true when aborted. */
function untilAborted(signal: AbortSignal, ms: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    if (signal.aborted) {
      return resolve(true);
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(false);
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

const objectSchema = (properties: JsonObject = {}, required: string[] = []): JsonObject => ({
  type: 'object',
  properties,
  ...(required.length > 0 ? { required } : {}),
});

export const LOGGED_LEVELS: readonly LogLevel[] = ['debug', 'info', 'notice', 'warning', 'error'];

export const NAME_SCHEMA: JsonObject = objectSchema(
  { name: { type: 'string', description: 'Your name' } },
  ['name'],
);

export const SAMPLING_PROMPT = 'What is 2 + 2?';

/** Base64 of the bytes 0x00 0x01 0x02 0xfe 0xff. */
export const BLOB_BASE64 = Buffer.from([0, 1, 2, 0xfe, 0xff]).toString('base64');

function tools(probes: E2eProbes): ToolHandler[] {
  return [
    {
      definition: {
        name: 'echo',
        description: 'Echoes its text argument.',
        inputSchema: {
          ...objectSchema({ text: { type: 'string' } }, ['text']),
          additionalProperties: false,
        },
      },
      call: (args) => text(`echo: ${String(args.text)}`),
    },
    {
      definition: {
        name: 'whoami',
        description: 'Reports the era and protocol version the engine ran the call in.',
        inputSchema: objectSchema(),
        outputSchema: objectSchema(
          { era: { type: 'string' }, protocolVersion: { type: 'string' } },
          ['era', 'protocolVersion'],
        ),
      },
      call: (_args, ctx) => ({
        content: [{ type: 'text', text: `${ctx.era} ${ctx.protocolVersion}` }],
        structuredContent: { era: ctx.era, protocolVersion: ctx.protocolVersion },
      }),
    },
    {
      definition: {
        name: 'fail',
        description: 'Always reports a tool-level failure.',
        inputSchema: objectSchema(),
      },
      call: () => ({
        content: [{ type: 'text', text: 'the tool failed on purpose' }],
        isError: true,
      }),
    },
    {
      definition: {
        name: 'progress',
        description: 'Reports `steps` progress notifications, then returns.',
        inputSchema: objectSchema({ steps: { type: 'integer', minimum: 1, maximum: 10 } }, [
          'steps',
        ]),
      },
      call: async (args, ctx) => {
        const steps = Number(args.steps);
        for (let i = 1; i <= steps; i++) {
          await ctx.progress(i, steps, `step ${i}`);
        }
        return text(`done after ${steps} steps`);
      },
    },
    {
      definition: {
        name: 'log',
        description: 'Logs one message at each of debug, info, notice, warning and error.',
        inputSchema: objectSchema(),
      },
      call: async (_args, ctx) => {
        for (const level of LOGGED_LEVELS) {
          await ctx.log(level, { said: level }, 'e2e');
        }
        return text('logged');
      },
    },
    {
      definition: {
        name: 'slow',
        description: 'Waits until cancelled (at most 4 s); reports what it observed.',
        inputSchema: objectSchema({ key: { type: 'string' } }, ['key']),
      },
      call: async (args, ctx) => {
        const key = String(args.key);
        probes.fire(`slow:${key}:started`);
        const aborted = await untilAborted(ctx.signal, 4000);
        if (aborted) {
          probes.fire(`slow:${key}:aborted`, ctx.signal.reason);
        } else {
          probes.fire(`slow:${key}:completed`);
        }
        return text(aborted ? 'observed cancellation' : 'never cancelled');
      },
    },
    {
      definition: {
        name: 'resumable',
        description: 'progress 1, gate a, progress 2, gate b, result (for stream resumption).',
        inputSchema: objectSchema({ key: { type: 'string' } }, ['key']),
      },
      call: async (args, ctx) => {
        const key = String(args.key);
        await ctx.progress(1, 2, 'first half');
        probes.fire(`resumable:${key}:progress-1`);
        await probes.wait(`resumable:${key}:gate-a`, 4000);
        await ctx.progress(2, 2, 'second half');
        probes.fire(`resumable:${key}:progress-2`);
        await probes.wait(`resumable:${key}:gate-b`, 4000);
        return text(`resumed ${key}`);
      },
    },
    {
      definition: {
        name: 'task_progress',
        description: 'As a task: progress 1, gate a, progress 2, gate b, result.',
        inputSchema: objectSchema({ key: { type: 'string' } }, ['key']),
        execution: { taskSupport: 'optional' },
      },
      call: async (args, ctx) => {
        const key = String(args.key);
        await ctx.progress(1, 2, 'first half');
        probes.fire(`task_progress:${key}:progress-1`);
        await probes.wait(`task_progress:${key}:gate-a`, 10_000);
        await ctx.progress(2, 2, 'second half');
        probes.fire(`task_progress:${key}:progress-2`);
        await probes.wait(`task_progress:${key}:gate-b`, 10_000);
        return text(`progressed ${key}`);
      },
    },
    {
      definition: {
        name: 'elicit',
        description: 'Asks the user for their name.',
        inputSchema: objectSchema(),
      },
      call: async (_args, ctx) => {
        probes.bump('elicit');
        const answer = await ctx.elicit({
          message: 'What is your name?',
          requestedSchema: NAME_SCHEMA,
        });
        if (answer.action !== 'accept') {
          return text(`elicitation ${answer.action}`);
        }
        return text(`Hello, ${String(answer.content?.name)}!`);
      },
    },
    {
      definition: {
        name: 'sample',
        description: 'Asks the client model a question.',
        inputSchema: objectSchema(),
      },
      call: async (_args, ctx) => {
        probes.bump('sample');
        const result = await ctx.createMessage({
          messages: [{ role: 'user', content: { type: 'text', text: SAMPLING_PROMPT } }],
          maxTokens: 16,
        });
        const content = Array.isArray(result.content) ? result.content[0] : result.content;
        return text(`model ${result.model} said: ${String(content?.text)}`);
      },
    },
    {
      definition: {
        name: 'roots',
        description: 'Lists the client roots.',
        inputSchema: objectSchema(),
      },
      call: async (_args, ctx) => {
        probes.bump('roots');
        const { roots } = await ctx.listRoots();
        return text(`roots: ${roots.map((r) => r.uri).join(', ')}`);
      },
    },
    {
      definition: {
        name: 'interview',
        description: 'Elicits, then samples, then lists roots: three inputs in one call.',
        inputSchema: objectSchema({ topic: { type: 'string' } }, ['topic']),
      },
      call: async (args, ctx) => {
        probes.bump('interview');
        const who = await ctx.elicit({
          message: 'What is your name?',
          requestedSchema: NAME_SCHEMA,
        });
        const name = who.action === 'accept' ? String(who.content?.name) : 'anonymous';
        const sampled = await ctx.createMessage({
          messages: [
            {
              role: 'user',
              content: { type: 'text', text: `${name} asks about ${String(args.topic)}` },
            },
          ],
          maxTokens: 16,
        });
        const said = Array.isArray(sampled.content) ? sampled.content[0] : sampled.content;
        const { roots } = await ctx.listRoots();
        return text(`${name} / ${String(said?.text)} / ${roots.length} roots`);
      },
    },
  ];
}

export const TEXT_URI = 'test://static/text';
export const BLOB_URI = 'test://static/blob';
export const WATCHED_URI = 'test://static/watched';
export const OTHER_URI = 'test://static/other';

function resources(): ResourceHandler[] {
  const plain = (uri: string, name: string, body: string): ResourceHandler => ({
    definition: { uri, name, mimeType: 'text/plain' },
    read: () => ({ contents: [{ uri, mimeType: 'text/plain', text: body }] }),
  });
  return [
    plain(TEXT_URI, 'text', 'Hello from a text resource'),
    {
      definition: { uri: BLOB_URI, name: 'blob', mimeType: 'application/octet-stream' },
      read: () => ({
        contents: [{ uri: BLOB_URI, mimeType: 'application/octet-stream', blob: BLOB_BASE64 }],
      }),
    },
    plain(WATCHED_URI, 'watched', 'watch me'),
    plain(OTHER_URI, 'other', 'not watched'),
    plain('test://static/extra', 'extra', 'one more for pagination'),
  ];
}

export const ITEM_TEMPLATE = 'test://items/{id}';
export const ITEM_IDS = ['alpha', 'beta', 'gamma'];

function templates(): ResourceTemplateHandler[] {
  const simple = (uriTemplate: string, name: string): ResourceTemplateHandler => ({
    definition: { uriTemplate, name, mimeType: 'text/plain' },
    match: uriTemplateMatcher(uriTemplate),
    read: (uri, vars) => ({
      contents: [{ uri, mimeType: 'text/plain', text: `${name} ${Object.values(vars).join('/')}` }],
    }),
  });
  return [
    {
      ...simple(ITEM_TEMPLATE, 'item'),
      complete: ({ argument, value }) => {
        const values = argument === 'id' ? ITEM_IDS.filter((id) => id.startsWith(value)) : [];
        return { values, total: values.length, hasMore: false };
      },
    },
    simple('test://users/{user}/profile', 'profile'),
    simple('test://logs/{day}', 'log'),
  ];
}

export const STYLES = ['formal', 'friendly', 'pirate'];

function prompts(): PromptHandler[] {
  const fixed = (name: string, body: string): PromptHandler => ({
    definition: { name, description: `The ${name} prompt` },
    get: () => ({
      messages: [{ role: 'user', content: { type: 'text', text: body } }],
    }),
  });
  return [
    {
      definition: {
        name: 'greeting',
        description: 'Greets someone',
        arguments: [
          { name: 'name', description: 'Who to greet', required: true },
          { name: 'style', description: 'How to greet', required: false },
        ],
      },
      get: (args) => ({
        description: 'A greeting',
        messages: [
          {
            role: 'user',
            content: {
              type: 'text',
              text: `Greet ${args.name} in a ${args.style ?? 'neutral'} style.`,
            },
          },
        ],
      }),
      complete: ({ argument, value }) => {
        const values = argument === 'style' ? STYLES.filter((s) => s.startsWith(value)) : [];
        return { values, total: values.length, hasMore: false };
      },
    },
    fixed('summary', 'Summarise the conversation.'),
    fixed('review', 'Review the last change.'),
  ];
}

export interface E2eCatalog {
  catalog: StaticCatalog;
  probes: E2eProbes;
  toolNames: string[];
  resourceUris: string[];
  templateUris: string[];
  promptNames: string[];
}

export function createE2eCatalog(): E2eCatalog {
  const probes = new E2eProbes();
  const init = {
    tools: tools(probes),
    resources: resources(),
    resourceTemplates: templates(),
    prompts: prompts(),
  };
  return {
    catalog: new StaticCatalog(init),
    probes,
    toolNames: init.tools.map((t) => t.definition.name),
    resourceUris: init.resources.map((r) => r.definition.uri),
    templateUris: init.resourceTemplates.map((t) => t.definition.uriTemplate),
    promptNames: init.prompts.map((p) => p.definition.name),
  };
}

/** Text of the first content block of a tool result (throws when it is not text). */
export function firstText(result: object): string {
  const content = (result as { content?: { type: string; text?: string }[] }).content;
  const block = content?.[0];
  if (!block || block.type !== 'text' || typeof block.text !== 'string') {
    throw new Error(`expected a text block, got ${JSON.stringify(content)}`);
  }
  return block.text;
}

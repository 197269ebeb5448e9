/*
 * What an upstream sends back while it serves a call reaches the client that made the call:
 * progress, logs, elicitation, sampling and roots requests (a 2025-era upstream) or
 * `input_required` rounds (a 2026-07-28 upstream), completions and list changes, whichever era
 * the client and the upstream speak. The upstream is the conformance catalog in its own process
 * (libs/testing/fixtures-upstream/conformance-upstream.mjs: Portico's build, `npm run build`
 * first), reached over Streamable HTTP and over stdio, serving both eras or pinned to 2025.
 */
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { once } from 'node:events';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { TenantService } from '@portico/tenancy';
import { RunningGateway, startGateway } from './support/gateway';
import {
  ClientAnswers,
  ClientEvents,
  closeAll,
  connectV1,
  createV2Client,
  HttpRecorder,
  rejectionOf,
  within,
  type FetchLike,
} from './support/sdk';
import { seedTenant } from './support/tenants';

const ROOT = resolve(__dirname, '..');
const FIXTURE = join(ROOT, 'libs/testing/fixtures-upstream/conformance-upstream.mjs');
const BUILT = [
  join(ROOT, 'dist/apps/gateway/apps/gateway/src/main.js'),
  join(ROOT, 'dist/apps/cli/apps/cli/src/main.js'),
];
const MODERN = '2026-07-28';
const WAIT_MS = 10_000;

interface UpstreamCase {
  /** Backend name and tool prefix. */
  readonly prefix: string;
  readonly kind: 'mcp-http' | 'mcp-stdio';
  readonly era: 'both' | '2025';
}

const UPSTREAMS: readonly UpstreamCase[] = [
  { prefix: 'mh', kind: 'mcp-http', era: 'both' },
  { prefix: 'lh', kind: 'mcp-http', era: '2025' },
  { prefix: 'ms', kind: 'mcp-stdio', era: 'both' },
  { prefix: 'ls', kind: 'mcp-stdio', era: '2025' },
];
const describeName = (u: UpstreamCase) =>
  `an upstream over ${u.kind === 'mcp-http' ? 'Streamable HTTP' : 'stdio'}, ` +
  `${u.era === 'both' ? 'serving both eras' : 'pinned to the 2025 era'} (${u.prefix})`;

/** An HTTP upstream fixture process; resolves once it printed `READY <port>`. */
async function startHttpUpstream(era: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [FIXTURE, '--transport', 'http', '--era', era], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await within(
    new Promise<number>((done, fail) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        const match = /^READY (\d+)$/.exec(line);
        if (match) {
          done(Number(match[1]));
        }
      });
      child.once('exit', (code) => fail(new Error(`upstream (${era}) exited with ${code}`)));
    }),
    60_000,
    `upstream (${era}) start`,
  );
  return { child, url: `http://127.0.0.1:${port}/mcp` };
}

function withApiKey(apiKey: string): FetchLike {
  return (url, init) => {
    const headers = new Headers(init?.headers);
    headers.set('authorization', `Bearer ${apiKey}`);
    return fetch(url, { ...init, headers });
  };
}

type Message = { id?: unknown; method?: string; params?: any; result?: any; error?: any }; // eslint-disable-line @typescript-eslint/no-explicit-any -- asserted field by field

let gateway: RunningGateway;
let endpoint: string;
let apiKey: string;
const upstreams: ChildProcess[] = [];
const clients: { close(): Promise<void> }[] = [];
let nextId = 1;

/** One 2026-07-28 tools/call over raw HTTP; every message of the answer, in order. */
async function callModern(
  name: string,
  meta: Record<string, unknown> = {},
  args: Record<string, unknown> = {},
): Promise<Message[]> {
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${apiKey}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN,
      'mcp-method': 'tools/call',
      'mcp-name': name,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: nextId++,
      method: 'tools/call',
      params: {
        name,
        arguments: args,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': MODERN,
          'io.modelcontextprotocol/clientCapabilities': {},
          ...meta,
        },
      },
    }),
  });
  const text = await response.text();
  if (!(response.headers.get('content-type') ?? '').includes('text/event-stream')) {
    return [JSON.parse(text) as Message];
  }
  return text
    .split('\n')
    .filter((line) => line.startsWith('data:') && line.length > 5)
    .map((line) => JSON.parse(line.slice(5)) as Message);
}

function textOf(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] }).content ?? [];
  return content
    .filter((c) => c.type === 'text')
    .map((c) => c.text)
    .join('\n');
}

/** A 2025-11-25 session (SDK v1) that answers input requests and records notifications. */
async function legacyClient(answers = new ClientAnswers(), events = new ClientEvents()) {
  const recorder = new HttpRecorder(withApiKey(apiKey));
  const { client } = await connectV1(endpoint, { recorder, answers, events });
  clients.push(client);
  // Closing before the standalone stream is open would leave it open at the gateway.
  await recorder.waitFor((e) => e.httpMethod === 'GET' && e.status === 200, WAIT_MS);
  return { client, answers, events };
}

/**
 * A 2026-07-28 client (SDK v2, pinned) that answers input rounds with `answers`; with
 * `declared`, it declares (and answers) only those of sampling, elicitation and roots.
 */
async function modernClient(
  answers = new ClientAnswers(),
  declared?: ('sampling' | 'elicitation' | 'roots')[],
): Promise<{ client: Client; answers: ClientAnswers }> {
  const client = declared
    ? new Client(
        { name: 'e2e-relay-modern', version: '1.0.0' },
        {
          capabilities: Object.fromEntries(declared.map((c) => [c, {}])),
          versionNegotiation: { mode: { pin: MODERN } },
        },
      )
    : createV2Client('modern', { answers });
  if (declared?.includes('sampling')) {
    client.setRequestHandler('sampling/createMessage', (request) =>
      answers.sample(request.params as Record<string, unknown>),
    );
  }
  await client.connect(
    new StreamableHTTPClientTransport(new URL(endpoint), { fetch: withApiKey(apiKey) }),
  );
  clients.push(client);
  return { client, answers };
}

beforeAll(async () => {
  for (const file of BUILT) {
    if (!existsSync(file)) {
      throw new Error(`${file} is missing: run "npm run build" first`);
    }
  }
  const http = {
    both: await startHttpUpstream('both'),
    '2025': await startHttpUpstream('2025'),
  };
  upstreams.push(http.both.child, http['2025'].child);
  gateway = await startGateway({
    LOG_LEVEL: process.env.E2E_LOG ?? 'silent',
    UPSTREAM_STDIO_ENABLED: 'true',
  });
  const seeded = await seedTenant(gateway.app, { slug: 'relay', fixtures: [] });
  apiKey = seeded.apiKey;
  endpoint = `${gateway.mcpUrl}/relay`;
  const tenants = gateway.app.get(TenantService);
  for (const u of UPSTREAMS) {
    await tenants.backends(seeded.tenant.id).insert({
      name: u.prefix,
      kind: u.kind,
      target:
        u.kind === 'mcp-http'
          ? http[u.era].url
          : `"${process.execPath}" "${FIXTURE}" --transport stdio --era ${u.era}`,
      settings: u.kind === 'mcp-http' ? { internal: true } : { env: { LOG_LEVEL: 'warn' } },
      credentialsSealed: null,
    });
  }
  await tenants.changed(seeded.tenant);
  // The catalog is built on first use: wait until every upstream is in it.
  const deadline = Date.now() + 60_000;
  for (const u of UPSTREAMS) {
    for (;;) {
      const answer = await callModern(`${u.prefix}__test_simple_text`).catch(() => []);
      if (answer.some((m) => m.result !== undefined)) {
        break;
      }
      if (Date.now() > deadline) {
        throw new Error(`upstream ${u.prefix} never joined the catalog: ${JSON.stringify(answer)}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}, 120_000);

afterAll(async () => {
  await closeAll(...clients);
  await gateway?.close();
  await Promise.all(
    upstreams.map(async (child) => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        await exited;
      }
    }),
  );
}, 60_000);

/** Waits until `done()` holds (checked every 20 ms), failing after `ms`. */
async function until(done: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.each(UPSTREAMS.map((u) => [describeName(u), u] as const))('%s', (_name, u) => {
  const tool = (name: string) => `${u.prefix}__${name}`;

  it('relays every progress notification before the result, the last one included', async () => {
    // Over stdio the last notification and the result arrive together; the SDK forgets a
    // request's own progress token as soon as the result is read, so it must not be used.
    for (let i = 0; i < 5; i++) {
      const messages = await callModern(tool('test_tool_with_progress'), {
        progressToken: `p${i}`,
      });
      const progress = messages
        .filter((m) => m.method === 'notifications/progress')
        .map((m) => [m.params.progressToken, m.params.progress]);
      expect(progress).toEqual([
        [`p${i}`, 0],
        [`p${i}`, 50],
        [`p${i}`, 100],
      ]);
      expect(messages.at(-1)?.result).toBeDefined();
    }
  });

  it('relays its log messages to a 2026-07-28 request that asked for them, only', async () => {
    const logged = await callModern(tool('test_tool_with_logging'), {
      'io.modelcontextprotocol/logLevel': 'info',
    });
    expect(
      logged.filter((m) => m.method === 'notifications/message').map((m) => m.params.data),
    ).toEqual(['Tool execution started', 'Tool processing data', 'Tool execution completed']);
    const quiet = await callModern(tool('test_tool_with_logging'));
    expect(quiet.filter((m) => m.method === 'notifications/message')).toEqual([]);
    expect(textOf(quiet.at(-1)?.result)).toContain('executed successfully');
  });

  it('relays its log messages to a 2025-era session', async () => {
    const { client, events } = await legacyClient();
    await client.callTool({ name: tool('test_tool_with_logging'), arguments: {} });
    await until(() => events.logs.items.length >= 3, 'three log messages');
    expect(events.logs.items.map((l) => l.data)).toEqual([
      'Tool execution started',
      'Tool processing data',
      'Tool execution completed',
    ]);
  });

  it("puts its elicitation and sampling requests to a 2025-era session's client", async () => {
    const { client, answers } = await legacyClient();
    answers.elicitation = {
      action: 'accept',
      content: { username: 'ada', email: 'ada@example.com' },
    };
    const elicited = await client.callTool({
      name: tool('test_elicitation'),
      arguments: { message: 'Who are you?' },
    });
    expect(answers.elicitations).toEqual([expect.objectContaining({ message: 'Who are you?' })]);
    expect(textOf(elicited)).toContain('ada@example.com');
    const sampled = await client.callTool({
      name: tool('test_sampling'),
      arguments: { prompt: 'Two plus two?' },
    });
    expect(answers.samplings).toHaveLength(1);
    expect(textOf(sampled)).toContain('four');
  });

  it('takes a 2026-07-28 client through every input round the call needs', async () => {
    const { client, answers } = await modernClient();
    answers.elicitation = { action: 'accept', content: { name: 'Ada', color: 'blue' } };
    const result = await client.callTool({
      name: tool('test_input_required_result_multi_round'),
      arguments: {},
    });
    expect(textOf(result)).toContain('Ada');
    expect(textOf(result)).toContain('blue');
    expect(answers.elicitations.map((e) => e.message)).toEqual([
      'Step 1: What is your name?',
      'Step 2: What is your favorite color?',
    ]);
  });

  it('answers -32021 when a 2026-07-28 client lacks the capability the call needs', async () => {
    const { client } = await modernClient(new ClientAnswers(), []);
    const refused = await rejectionOf(
      client.callTool({ name: tool('test_missing_capability'), arguments: {} }),
    );
    expect(refused.code).toBe(-32021);
    expect(refused.data).toEqual({ requiredCapabilities: { sampling: {} } });
  });

  it("answers completion/complete with the upstream's suggestions", async () => {
    const { client } = await modernClient();
    const { completion } = await client.complete({
      ref: { type: 'ref/prompt', name: `${u.prefix}__test_prompt_with_arguments` },
      argument: { name: 'arg1', value: 'te' },
    });
    expect(completion.values).toEqual(['test', 'testValue1', 'testing']);
  });

  it("passes the upstream's list_changed on even when the list reads the same", async () => {
    const { client, events } = await legacyClient();
    await client.callTool({ name: tool('test_trigger_tool_change'), arguments: {} });
    await events.listChanges.waitFor((m) => m === 'notifications/tools/list_changed', WAIT_MS);
  });
});

describe.each(UPSTREAMS.filter((u) => u.era === 'both').map((u) => [describeName(u), u] as const))(
  '%s',
  (_name, u) => {
    it('asks a 2026-07-28 client only for the inputs it declared', async () => {
      const { client, answers } = await modernClient(new ClientAnswers(), ['sampling']);
      const result = await client.callTool({
        name: `${u.prefix}__test_input_required_result_capabilities`,
        arguments: {},
      });
      expect(textOf(result)).toBe('Used declared capabilities only: sampling: four');
      expect(answers.elicitations).toEqual([]);
      expect(answers.rootsListed).toBe(0);
    });
  },
);

describe.each(
  UPSTREAMS.filter((u) => u.kind === 'mcp-http').map((u) => [describeName(u), u] as const),
)('%s, with calls at once', (_name, u) => {
  it("gives each call its own client's answers", async () => {
    const sessions = await Promise.all([0, 1, 2, 3].map(() => legacyClient()));
    const results = await Promise.all(
      sessions.map(({ client, answers }, i) => {
        answers.elicitation = {
          action: 'accept',
          content: { username: `user${i}`, email: `user${i}@example.com` },
        };
        return client.callTool({
          name: `${u.prefix}__test_elicitation`,
          arguments: { message: `Question ${i}` },
        });
      }),
    );
    sessions.forEach(({ answers }, i) => {
      expect(answers.elicitations.map((e) => e.message)).toEqual([`Question ${i}`]);
      expect(textOf(results[i])).toContain(`user${i}@example.com`);
    });
  });

  it('gives each call its own log messages', async () => {
    const answers = await Promise.all(
      [0, 1, 2, 3].map(() =>
        callModern(`${u.prefix}__test_tool_with_logging`, {
          'io.modelcontextprotocol/logLevel': 'debug',
        }),
      ),
    );
    for (const messages of answers) {
      expect(messages.filter((m) => m.method === 'notifications/message')).toHaveLength(3);
    }
  });
});

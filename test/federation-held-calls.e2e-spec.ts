/*
 * A 2025-era upstream that asks for input in the middle of a call, serving a 2026-07-28 client
 * that answers through input_required rounds: the gateway keeps the upstream request open
 * across the rounds (the upstream's elicitation waits for the client's retry), so the tool runs
 * once. A retry that comes after the held call was given up (the backend's timeoutMs) runs the
 * call again from the start, and the upstream sees its first call cancelled. 2025-era clients
 * answer mid-call requests directly, as before. The upstream is
 * libs/testing/fixtures-upstream/counting-upstream.mjs (SDK v1 server), over stateful
 * Streamable HTTP and over stdio; its tools count their runs per label.
 */
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { join, resolve } from 'node:path';
import { TenantService } from '@portico/tenancy';
import { RunningGateway, startGateway } from './support/gateway';
import { ClientAnswers, closeAll, connectV1, HttpRecorder } from './support/sdk';
import { seedTenant } from './support/tenants';
import { startReadyProcess } from './support/queue';

const FIXTURE = join(
  resolve(__dirname, '..'),
  'libs/testing/fixtures-upstream/counting-upstream.mjs',
);
const MODERN = '2026-07-28';
const CAPABILITIES = { elicitation: { form: {} } };
/** The backend timeout of the `quick` twin of each backend: how long a held call lives. */
const QUICK_TIMEOUT_MS = 1_500;
const WAIT_MS = 15_000;

interface UpstreamCase {
  readonly kind: 'mcp-http' | 'mcp-stdio';
  /** Backend name (tool prefix) with the default settings. */
  readonly prefix: string;
  /** The same upstream as a backend with timeoutMs QUICK_TIMEOUT_MS. */
  readonly quick: string;
  /** The transport tags each call's messages (Streamable HTTP), so calls may ask at once. */
  readonly tagged: boolean;
}

const UPSTREAMS: readonly UpstreamCase[] = [
  { kind: 'mcp-http', prefix: 'h', quick: 'hq', tagged: true },
  { kind: 'mcp-stdio', prefix: 's', quick: 'sq', tagged: false },
];

type Message = { id?: unknown; method?: string; params?: any; result?: any; error?: any }; // eslint-disable-line @typescript-eslint/no-explicit-any -- asserted field by field
type ElicitAnswer = { action: 'accept' | 'decline' | 'cancel'; content?: { answer: string } };

let gateway: RunningGateway;
let endpoint: string;
let apiKey: string;
let upstream: ChildProcess | undefined;
const clients: { close(): Promise<void> }[] = [];
let nextId = 1;

/** The HTTP upstream process; resolves with its URL once it printed `READY <port>`. */
async function startHttpUpstream(): Promise<string> {
  const { child, port } = await startReadyProcess(FIXTURE, ['--transport', 'http'], WAIT_MS);
  upstream = child;
  return `http://127.0.0.1:${port}/mcp`;
}

/**
 * One 2026-07-28 tools/call over raw HTTP (declaring form elicitation), with `extra` params
 * (inputResponses, requestState); the JSON-RPC answer to it, after any notifications.
 */
async function callModern(
  name: string,
  args: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Promise<Message> {
  const id = nextId++;
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
      id,
      method: 'tools/call',
      params: {
        name,
        arguments: args,
        ...extra,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': MODERN,
          'io.modelcontextprotocol/clientCapabilities': CAPABILITIES,
        },
      },
    }),
  });
  const text = await response.text();
  const messages = (response.headers.get('content-type') ?? '').includes('text/event-stream')
    ? text
        .split('\n')
        .filter((line) => line.startsWith('data:') && line.length > 5)
        .map((line) => JSON.parse(line.slice(5)) as Message)
    : [JSON.parse(text) as Message];
  const answer = messages.find((m) => m.id === id && m.method === undefined);
  if (!answer) {
    throw new Error(`no answer to tools/call ${name} (HTTP ${response.status}): ${text}`);
  }
  return answer;
}

/** The retry of an input round: the same call with the answers and the round's requestState. */
function retry(
  name: string,
  args: Record<string, unknown>,
  round: Message,
  inputResponses: Record<string, ElicitAnswer>,
): Promise<Message> {
  return callModern(name, args, { inputResponses, requestState: round.result?.requestState });
}

const accept = (answer: string): ElicitAnswer => ({ action: 'accept', content: { answer } });

function textOf(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] }).content ?? [];
  return content
    .filter((c) => c.type === 'text')
    .map((c) => c.text)
    .join('\n');
}

/** Expects `round` to be an input round asking exactly `key` with the upstream's `message`. */
function expectInputRound(round: Message, key: string, message: string): void {
  expect(round.error).toBeUndefined();
  expect(round.result).toMatchObject({
    resultType: 'input_required',
    requestState: expect.any(String),
  });
  expect(Object.keys(round.result.inputRequests)).toEqual([key]);
  expect(round.result.inputRequests[key]).toMatchObject({
    method: 'elicitation/create',
    params: {
      message,
      requestedSchema: { type: 'object', properties: { answer: { type: 'string' } } },
    },
  });
}

/** Expects `answer` to be a completed call whose text is `text`. */
function expectCompleted(answer: Message, text: string): void {
  expect(answer.error).toBeUndefined();
  expect(answer.result?.resultType).toBe('complete');
  expect(textOf(answer.result)).toBe(text);
}

/** What the upstream counted for `label` (through `backend`, the tool `runs`). */
async function countsOf(
  backend: string,
  label: string,
): Promise<{ runs: number; cancelled: number }> {
  const answer = await callModern(`${backend}__runs`, { label });
  expect(answer.result?.resultType).toBe('complete');
  return JSON.parse(textOf(answer.result)) as { runs: number; cancelled: number };
}

/** A label of its own per test: the upstream's counters are per process. */
const labelOf = (what: string) => `${what}-${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  const httpUrl = await startHttpUpstream();
  gateway = await startGateway({
    LOG_LEVEL: process.env.E2E_LOG ?? 'silent',
    UPSTREAM_STDIO_ENABLED: 'true',
  });
  const seeded = await seedTenant(gateway.app, { slug: 'held', fixtures: [] });
  apiKey = seeded.apiKey;
  endpoint = `${gateway.mcpUrl}/held`;
  const tenants = gateway.app.get(TenantService);
  for (const u of UPSTREAMS) {
    for (const [name, timeout] of [
      [u.prefix, {}],
      [u.quick, { timeoutMs: QUICK_TIMEOUT_MS }],
    ] as const) {
      await tenants.backends(seeded.tenant.id).insert({
        name,
        kind: u.kind,
        target:
          u.kind === 'mcp-http' ? httpUrl : `"${process.execPath}" "${FIXTURE}" --transport stdio`,
        settings: u.kind === 'mcp-http' ? { internal: true, ...timeout } : { ...timeout },
        credentialsSealed: null,
      });
    }
  }
  await tenants.changed(seeded.tenant);
  // The catalog is built on first use: wait until every backend is in it.
  const deadline = Date.now() + 60_000;
  for (const backend of UPSTREAMS.flatMap((u) => [u.prefix, u.quick])) {
    for (;;) {
      const answer: Message = await callModern(`${backend}__runs`, { label: 'ready' }).catch(
        (err: unknown) => ({ error: String(err) }),
      );
      if (answer.result?.resultType === 'complete') {
        break;
      }
      if (Date.now() > deadline) {
        throw new Error(`backend ${backend} never joined the catalog: ${JSON.stringify(answer)}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}, 120_000);

afterAll(async () => {
  await closeAll(...clients);
  await gateway?.close();
  if (upstream && upstream.exitCode === null && upstream.signalCode === null) {
    const exited = once(upstream, 'exit');
    upstream.kill('SIGTERM');
    await exited;
  }
}, 60_000);

describe.each(
  UPSTREAMS.map(
    (u) => [u.kind === 'mcp-http' ? 'Streamable HTTP (sessions)' : 'stdio', u] as const,
  ),
)('a 2025-era upstream over %s', (_name, u) => {
  const tool = (name: string) => `${u.prefix}__${name}`;

  it('holds the upstream call across the input round: the tool runs once', async () => {
    const label = labelOf('once');
    const args = { label };
    const round = await callModern(tool('side_effect'), args);
    expectInputRound(round, 'elicitation-0', `${label}: question 1`);
    const done = await retry(tool('side_effect'), args, round, { 'elicitation-0': accept('yes') });
    expectCompleted(done, `${label}:yes:run1`);
    expect(await countsOf(u.prefix, label)).toEqual({ runs: 1, cancelled: 0 });
  });

  it('takes the client through one input round per question, in the same upstream call', async () => {
    const label = labelOf('two');
    const args = { label };
    const first = await callModern(tool('two_questions'), args);
    expectInputRound(first, 'elicitation-0', `${label}: question 1`);
    const second = await retry(tool('two_questions'), args, first, {
      'elicitation-0': accept('a'),
    });
    expectInputRound(second, 'elicitation-1', `${label}: question 2`);
    expect(second.result.requestState).not.toBe(first.result.requestState);
    const done = await retry(tool('two_questions'), args, second, {
      'elicitation-1': accept('b'),
    });
    expectCompleted(done, `${label}:a+b:run1`);
    expect(await countsOf(u.prefix, label)).toEqual({ runs: 1, cancelled: 0 });
  });

  it('passes a declined elicitation on to the upstream tool', async () => {
    const label = labelOf('decline');
    const args = { label };
    const round = await callModern(tool('side_effect'), args);
    expectInputRound(round, 'elicitation-0', `${label}: question 1`);
    const done = await retry(tool('side_effect'), args, round, {
      'elicitation-0': { action: 'decline' },
    });
    expectCompleted(done, `${label}:(decline):run1`);
    expect(await countsOf(u.prefix, label)).toEqual({ runs: 1, cancelled: 0 });
  });

  it('runs the call again on a retry that comes after the held call was given up', async () => {
    const quick = (name: string) => `${u.quick}__${name}`;
    const label = labelOf('late');
    const args = { label };
    const round = await callModern(quick('side_effect'), args);
    expectInputRound(round, 'elicitation-0', `${label}: question 1`);
    // Past the backend's timeout the gateway gives the held call up: the upstream hears so.
    const deadline = Date.now() + QUICK_TIMEOUT_MS + WAIT_MS;
    while ((await countsOf(u.quick, label)).cancelled < 1) {
      if (Date.now() > deadline) {
        throw new Error(`the upstream never saw its held call cancelled`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    const done = await retry(quick('side_effect'), args, round, {
      'elicitation-0': accept('late'),
    });
    expectCompleted(done, `${label}:late:run2`);
    expect(await countsOf(u.quick, label)).toEqual({ runs: 2, cancelled: 1 });
  });

  it('keeps two clients held at once apart: each gets its own answer, each tool runs once', async () => {
    const labels = [labelOf('left'), labelOf('right')];
    const start = (label: string) => callModern(tool('side_effect'), { label });
    // Over stdio nothing tells which call an upstream request belongs to: input is relayed
    // only while one call is speaking, so the second call starts once the first is held.
    const rounds = u.tagged
      ? await Promise.all(labels.map(start))
      : [await start(labels[0]), await start(labels[1])];
    rounds.forEach((round, i) =>
      expectInputRound(round, 'elicitation-0', `${labels[i]}: question 1`),
    );
    const done = await Promise.all(
      [...labels.keys()].reverse().map((i) =>
        retry(tool('side_effect'), { label: labels[i] }, rounds[i], {
          'elicitation-0': accept(`answer${i}`),
        }),
      ),
    );
    done.reverse().forEach((answer, i) => expectCompleted(answer, `${labels[i]}:answer${i}:run1`));
    for (const label of labels) {
      expect(await countsOf(u.prefix, label)).toEqual({ runs: 1, cancelled: 0 });
    }
  });

  it('lets a 2025-era client answer the elicitation itself, in one request', async () => {
    const label = labelOf('legacy');
    const answers = new ClientAnswers();
    answers.elicitation = { action: 'accept', content: { answer: 'direct' } };
    const recorder = new HttpRecorder((url, init) => {
      const headers = new Headers(init?.headers);
      headers.set('authorization', `Bearer ${apiKey}`);
      return fetch(url, { ...init, headers });
    });
    const { client } = await connectV1(endpoint, { recorder, answers });
    clients.push(client);
    const result = await client.callTool({ name: tool('side_effect'), arguments: { label } });
    expect(textOf(result)).toBe(`${label}:direct:run1`);
    expect(answers.elicitations).toEqual([
      expect.objectContaining({ message: `${label}: question 1` }),
    ]);
    const calls = recorder.exchanges.filter((e) =>
      e.messages.some((m) => m.method === 'tools/call'),
    );
    expect(calls).toHaveLength(1);
  });
});

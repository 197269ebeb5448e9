/*
 * Progress of a 2025-11-25 task after its handle. A task-augmented tools/call (`params.task`)
 * may carry `_meta.progressToken`, and that token stays valid for the task's life: once the
 * CreateTaskResult has ended the POST's stream, the gateway sends the handler's progress as
 * notifications/progress with the original token and the related-task `_meta` on the session's
 * standalone stream (the GET SSE stream of Streamable HTTP; on WebSocket the only channel),
 * besides mirroring it as the task's statusMessage.
 *
 * The e2e catalog's `task_progress` tool reports 1/2, waits at gate a, reports 2/2, waits at
 * gate b and returns. The tests open gate a only once the handle has come back, so progress 2
 * is always post-handle (and gate b lets them read the statusMessage while the task works).
 * Progress 1 comes first thing in the handler, before the handle: it may travel on the POST's
 * stream ahead of the handle or on the GET stream after it, but it must not be lost.
 */
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { META } from '@portico/mcp-protocol';
import WebSocket from 'ws';
import { createE2eCatalog, E2eCatalog } from './support/e2e-catalog';
import { RunningGateway, startGateway } from './support/gateway';
import { closeAll, connectV1, Inbox } from './support/sdk';
import { WireTap } from './support/stdio';

const LEGACY = '2025-11-25';
const ACCEPT = 'application/json, text/event-stream';
/** Bound for every wait: generous, a healthy run never waits this long. */
const WAIT_MS = 10_000;
const TTL_MS = 60_000;
/** What a 2025-11-25 client that handles tasks declares (it can be asked for input by tasks). */
const CLIENT_CAPABILITIES = {
  elicitation: {},
  tasks: { list: {}, cancel: {}, requests: { elicitation: { create: {} } } },
};

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- asserted field by field

const isProgress = (m: Json): boolean => m.method === 'notifications/progress';
const progressOf = (n: number) => (m: Json) => isProgress(m) && m.params?.progress === n;

function messagesOf(text: string): Json[] {
  const trimmed = text.trim();
  if (trimmed === '') {
    return [];
  }
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    const parsed = JSON.parse(trimmed) as Json | Json[];
    return Array.isArray(parsed) ? parsed : [parsed];
  }
  return trimmed
    .split('\n')
    .filter((line) => line.startsWith('data: {'))
    .map((line) => JSON.parse(line.slice(6)) as Json);
}

/** The session's standalone GET stream, read in the background into an inbox. */
class StandaloneStream {
  readonly inbox = new Inbox<Json>();
  private readonly primed: Promise<void>;
  private markPrimed!: () => void;

  private constructor(private readonly reader: ReadableStreamDefaultReader<Uint8Array>) {
    this.primed = new Promise((resolve) => (this.markPrimed = resolve));
    void this.pump();
  }

  /** Opens the stream; resolves once the gateway primed it (it is attached from then on). */
  static async open(url: string, sessionId: string): Promise<StandaloneStream> {
    const response = await fetch(url, {
      headers: {
        accept: 'text/event-stream',
        'mcp-session-id': sessionId,
        'mcp-protocol-version': LEGACY,
      },
    });
    expect(response.status).toBe(200);
    const stream = new StandaloneStream(response.body!.getReader());
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      stream.primed,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('the GET stream was not primed')), WAIT_MS);
      }),
    ]).finally(() => clearTimeout(timer));
    return stream;
  }

  close(): Promise<void> {
    return this.reader.cancel().catch(() => undefined);
  }

  private async pump(): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const chunk = await this.reader.read().catch(() => ({ done: true, value: undefined }));
      if (chunk.done) {
        return;
      }
      buffer += decoder.decode(chunk.value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block
          .split('\n')
          .filter((line) => line.startsWith('data:'))
          .map((line) => line.slice(5).trimStart())
          .join('');
        if (block.split('\n').some((line) => line.startsWith('id: '))) {
          this.markPrimed();
        }
        if (data !== '') {
          this.inbox.push(JSON.parse(data) as Json);
        }
      }
    }
  }
}

interface Answered {
  /** The JSON-RPC response. */
  readonly response: Json;
  /** What the POST's stream carried before the response. */
  readonly before: Json[];
}

/** A raw 2025-11-25 Streamable HTTP session. */
class LegacySession {
  private nextId = 1;

  private constructor(
    private readonly url: string,
    readonly id: string,
    readonly capabilities: Json,
  ) {}

  static async open(url: string): Promise<LegacySession> {
    const init = await post(url, {
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: LEGACY,
        capabilities: CLIENT_CAPABILITIES,
        clientInfo: { name: 'e2e-task-progress', version: '1' },
      },
    });
    expect(init.status).toBe(200);
    const id = init.headers.get('mcp-session-id')!;
    const [answer] = messagesOf(await init.text());
    const ack = await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, id);
    expect(ack.status).toBe(202);
    return new LegacySession(url, id, answer.result.capabilities as Json);
  }

  async request(method: string, params: Json): Promise<Answered> {
    const id = this.nextId++;
    const res = await post(this.url, { jsonrpc: '2.0', id, method, params }, this.id);
    expect(res.status).toBe(200);
    const messages = messagesOf(await res.text());
    const at = messages.findIndex((m) => m.id === id && ('result' in m || 'error' in m));
    if (at < 0) {
      throw new Error(`no answer to ${method}: ${JSON.stringify(messages)}`);
    }
    return { response: messages[at], before: messages.slice(0, at) };
  }

  openStandalone(): Promise<StandaloneStream> {
    return StandaloneStream.open(this.url, this.id);
  }

  async close(): Promise<void> {
    await fetch(this.url, {
      method: 'DELETE',
      headers: { 'mcp-session-id': this.id, 'mcp-protocol-version': LEGACY },
    }).catch(() => undefined);
  }
}

function post(url: string, body: Json, sessionId?: string): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: ACCEPT,
      ...(sessionId && { 'mcp-session-id': sessionId, 'mcp-protocol-version': LEGACY }),
    },
    body: JSON.stringify(body),
  });
}

const callParams = (key: string, progressToken?: string | number): Json => ({
  name: 'task_progress',
  arguments: { key },
  task: { ttl: TTL_MS },
  ...(progressToken !== undefined && { _meta: { progressToken } }),
});

const relatedTask = (taskId: string): Json => ({ [META.relatedTask]: { taskId } });

function rawText(data: WebSocket.RawData): string {
  return Array.isArray(data)
    ? Buffer.concat(data).toString('utf8')
    : Buffer.from(data as ArrayBuffer).toString('utf8');
}

describe('2025-11-25 task progress after the handle', () => {
  let gateway: RunningGateway;
  let e2e: E2eCatalog;
  /** Keys of the calls the tests started, so that teardown can open gates a failure left shut. */
  const keys: string[] = [];

  const newKey = (name: string): string => {
    const key = `${name}-${keys.length}`;
    keys.push(key);
    return key;
  };
  const open = (key: string, gate: 'gate-a' | 'gate-b'): void =>
    e2e.probes.fire(`task_progress:${key}:${gate}`);
  /** Waits until the handler of `key` has reported progress `step` (and it was handled). */
  const reached = async (key: string, step: 'progress-1' | 'progress-2'): Promise<void> => {
    await e2e.probes.wait(`task_progress:${key}:${step}`, WAIT_MS);
  };

  beforeAll(async () => {
    e2e = createE2eCatalog();
    gateway = await startGateway(
      { SHUTDOWN_GRACE_MS: '0', LOG_LEVEL: process.env.E2E_LOG ?? 'silent' },
      { catalog: e2e.catalog },
    );
  });

  afterAll(async () => {
    for (const key of keys) {
      open(key, 'gate-a');
      open(key, 'gate-b');
    }
    await gateway?.close();
  });

  describe('raw Streamable HTTP', () => {
    let session: LegacySession;
    let standalone: StandaloneStream;

    beforeEach(async () => {
      session = await LegacySession.open(gateway.mcpUrl);
      standalone = await session.openStandalone();
    });

    afterEach(async () => {
      await standalone?.close();
      await session?.close();
    });

    it('sends the post-handle progress on the GET stream with the original token and the task', async () => {
      expect(session.capabilities.tasks).toMatchObject({ requests: { tools: { call: {} } } });
      const key = newKey('token');
      const call = await session.request('tools/call', callParams(key, 'tok-1'));
      const task = call.response.result.task as Json;
      expect(task).toMatchObject({ status: 'working', ttl: TTL_MS });
      const taskId = task.taskId as string;
      await reached(key, 'progress-1');
      const seenBeforeGate = standalone.inbox.items.length;

      open(key, 'gate-a');
      const second = await standalone.inbox.waitFor(progressOf(2), WAIT_MS);
      expect(second).toEqual({
        jsonrpc: '2.0',
        method: 'notifications/progress',
        params: {
          progressToken: 'tok-1',
          progress: 2,
          total: 2,
          message: 'second half',
          _meta: relatedTask(taskId),
        },
      });
      expect(standalone.inbox.items.indexOf(second)).toBeGreaterThanOrEqual(seenBeforeGate);
      expect(call.before.filter(progressOf(2))).toEqual([]);

      // While the task works on, its statusMessage mirrors the same progress.
      await reached(key, 'progress-2');
      const working = await session.request('tasks/get', { taskId });
      expect(working.response.result).toMatchObject({
        taskId,
        status: 'working',
        statusMessage: 'second half',
      });

      open(key, 'gate-b');
      const outcome = await session.request('tasks/result', { taskId });
      expect(outcome.response.result).toEqual({
        content: [{ type: 'text', text: `progressed ${key}` }],
        _meta: relatedTask(taskId),
      });
      const done = await session.request('tasks/get', { taskId });
      expect(done.response.result).toMatchObject({ taskId, status: 'completed' });
      // Progress 2 went out once, on the GET stream only.
      expect(standalone.inbox.items.filter(progressOf(2))).toHaveLength(1);
      expect([...working.before, ...outcome.before, ...done.before].filter(isProgress)).toEqual([]);
    });

    it('delivers the progress reported before the handle, on the POST stream or on the GET stream', async () => {
      const key = newKey('early');
      const call = await session.request('tools/call', callParams(key, 'tok-early'));
      const taskId = call.response.result.task.taskId as string;
      await reached(key, 'progress-1');
      open(key, 'gate-a');
      await standalone.inbox.waitFor(progressOf(2), WAIT_MS);
      open(key, 'gate-b');
      await session.request('tasks/result', { taskId });

      // The handler reported progress 1 first thing, before the gate: on the POST's stream
      // ahead of the handle, or on the GET stream after it (then naming the task); once.
      const onPost = call.before.filter(progressOf(1));
      const onGet = standalone.inbox.items.filter(progressOf(1));
      expect({ onPost: onPost.length, onGet: onGet.length }).toEqual(
        onPost.length > 0 ? { onPost: 1, onGet: 0 } : { onPost: 0, onGet: 1 },
      );
      for (const first of onPost) {
        expect(first.params).toEqual({
          progressToken: 'tok-early',
          progress: 1,
          total: 2,
          message: 'first half',
        });
      }
      for (const first of onGet) {
        expect(first.params).toEqual({
          progressToken: 'tok-early',
          progress: 1,
          total: 2,
          message: 'first half',
          _meta: relatedTask(taskId),
        });
      }
    });

    it('sends no progress for a task-augmented call without a progress token', async () => {
      const key = newKey('untokened');
      const call = await session.request('tools/call', callParams(key));
      const taskId = call.response.result.task.taskId as string;
      await reached(key, 'progress-1');
      open(key, 'gate-a');
      await reached(key, 'progress-2');
      // The statusMessage mirrors the handler's progress all the same.
      const working = await session.request('tasks/get', { taskId });
      expect(working.response.result).toMatchObject({
        status: 'working',
        statusMessage: 'second half',
      });
      open(key, 'gate-b');
      const outcome = await session.request('tasks/result', { taskId });
      expect(outcome.response.result.content).toEqual([
        { type: 'text', text: `progressed ${key}` },
      ]);

      // A barrier: a tokened call's progress, sent on the same stream, comes after anything
      // the untokened call could have sent there.
      const barrier = newKey('barrier');
      const next = await session.request('tools/call', callParams(barrier, 'tok-barrier'));
      await reached(barrier, 'progress-1');
      open(barrier, 'gate-a');
      await standalone.inbox.waitFor(
        (m) => progressOf(2)(m) && m.params.progressToken === 'tok-barrier',
        WAIT_MS,
      );
      open(barrier, 'gate-b');
      await session.request('tasks/result', { taskId: next.response.result.task.taskId });

      const progress = standalone.inbox.items.filter(isProgress);
      expect(progress.length).toBeGreaterThan(0);
      expect(progress.filter((m) => m.params.progressToken !== 'tok-barrier')).toEqual([]);
      expect(progress.filter((m) => m.params._meta?.[META.relatedTask]?.taskId === taskId)).toEqual(
        [],
      );
      expect([...call.before, ...working.before, ...outcome.before].filter(isProgress)).toEqual([]);
    });
  });

  describe('SDK v1 (@modelcontextprotocol/sdk, experimental tasks)', () => {
    it('hands the post-handle progress to the onprogress of the task-augmented call', async () => {
      const tap = new WireTap();
      const { client, recorder } = await connectV1(gateway.mcpUrl, { tap });
      try {
        const get = await recorder.waitFor((e) => e.httpMethod === 'GET', WAIT_MS);
        expect(get.status).toBe(200);
        const key = newKey('sdk-v1');
        const seen = new Inbox<Json>();
        const stream = client.experimental.tasks.callToolStream(
          { name: 'task_progress', arguments: { key } },
          CallToolResultSchema,
          { task: { ttl: TTL_MS }, onprogress: seen.push },
        );
        const created = await stream.next();
        expect(created.value).toMatchObject({ type: 'taskCreated', task: { status: 'working' } });
        const taskId = (created.value as { task: { taskId: string } }).task.taskId;
        const [call] = tap.requests('tools/call', 'task_progress');
        const token = (call.params?._meta as Json | undefined)?.progressToken as unknown;
        expect(token).toBe(call.id);

        await reached(key, 'progress-1');
        open(key, 'gate-a');
        // The SDK keeps the call's progress handler alive for a CreateTaskResult, so the
        // notification reaches onprogress (progressToken stripped, as for any progress).
        const second = await seen.waitFor((p) => p.progress === 2, WAIT_MS);
        expect(second).toEqual({
          progress: 2,
          total: 2,
          message: 'second half',
          _meta: relatedTask(taskId),
        });
        open(key, 'gate-b');
        const messages: Json[] = [created.value as Json];
        for await (const message of stream) {
          messages.push(message);
        }
        expect(messages.at(-1)).toMatchObject({
          type: 'result',
          result: { content: [{ type: 'text', text: `progressed ${key}` }] },
        });

        // On the wire: the progress after the handle, with the SDK's token and the task.
        const received = tap.received.filter(
          (m) => isProgress(m as Json) && m.params?.progress === 2,
        );
        expect(received).toEqual([
          {
            jsonrpc: '2.0',
            method: 'notifications/progress',
            params: {
              progressToken: token,
              progress: 2,
              total: 2,
              message: 'second half',
              _meta: relatedTask(taskId),
            },
          },
        ]);
        expect(seen.items.filter((p) => p.progress === 2)).toHaveLength(1);
      } finally {
        await closeAll(client);
      }
    });
  });

  describe('WebSocket', () => {
    it('sends the post-handle progress on the connection, the only channel', async () => {
      const socket = new WebSocket(gateway.mcpUrl.replace(/^http/, 'ws'), ['mcp']);
      const inbox = new Inbox<Json>();
      socket.on('message', (data) => inbox.push(JSON.parse(rawText(data)) as Json));
      await new Promise<void>((resolve, reject) => {
        socket.once('open', () => resolve());
        socket.once('error', reject);
      });
      const send = (message: Json): void => socket.send(JSON.stringify(message));
      const answer = (id: number) =>
        inbox.waitFor((m) => m.id === id && ('result' in m || 'error' in m), WAIT_MS);
      try {
        send({
          jsonrpc: '2.0',
          id: 0,
          method: 'initialize',
          params: {
            protocolVersion: LEGACY,
            capabilities: CLIENT_CAPABILITIES,
            clientInfo: { name: 'e2e-task-progress-ws', version: '1' },
          },
        });
        expect((await answer(0)).result.protocolVersion).toBe(LEGACY);
        send({ jsonrpc: '2.0', method: 'notifications/initialized' });

        const key = newKey('ws');
        send({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: callParams(key, 'tok-ws') });
        const handle = await answer(1);
        const taskId = handle.result.task.taskId as string;
        await reached(key, 'progress-1');
        const handleAt = inbox.items.indexOf(handle);
        open(key, 'gate-a');
        const second = await inbox.waitFor(progressOf(2), WAIT_MS);
        expect(second.params).toEqual({
          progressToken: 'tok-ws',
          progress: 2,
          total: 2,
          message: 'second half',
          _meta: relatedTask(taskId),
        });
        expect(inbox.items.indexOf(second)).toBeGreaterThan(handleAt);
        open(key, 'gate-b');

        send({ jsonrpc: '2.0', id: 2, method: 'tasks/result', params: { taskId } });
        expect((await answer(2)).result).toEqual({
          content: [{ type: 'text', text: `progressed ${key}` }],
          _meta: relatedTask(taskId),
        });
        expect(inbox.items.filter(progressOf(2))).toHaveLength(1);
      } finally {
        socket.terminate();
      }
    });
  });
});

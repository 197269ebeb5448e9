import { META, StaticCatalog } from '@portico/mcp-protocol';
import { LifecycleService } from '../apps/gateway/src/health/lifecycle.service';
import { SessionRegistry } from '../apps/gateway/src/mcp/session-registry.service';
import { RunningGateway, startGateway } from './support/gateway';

const ACCEPT = 'application/json, text/event-stream';

/** A latch tests open from outside, so nothing depends on timing. */
class Gate {
  private release!: () => void;
  readonly opened = new Promise<void>((resolve) => (this.release = resolve));
  open(): void {
    this.release();
  }
}

interface Observed {
  cancelled: boolean;
  started: Gate;
}

function catalog(gate: Gate, observed: Observed): StaticCatalog {
  return new StaticCatalog({
    tools: [
      {
        definition: {
          name: 'steps',
          description: 'Reports progress, waits for the gate, then finishes',
          inputSchema: { type: 'object' },
        },
        call: async (_args, ctx) => {
          await ctx.progress(1, 3, 'started');
          observed.started.open();
          await gate.opened;
          await ctx.progress(2, 3, 'after the gate');
          return { content: [{ type: 'text', text: 'finished' }] };
        },
      },
      {
        definition: {
          name: 'wait_for_cancel',
          description: 'Reports progress, then waits until cancelled',
          inputSchema: { type: 'object' },
        },
        call: async (_args, ctx) => {
          await ctx.progress(1, 2);
          observed.started.open();
          await new Promise<void>((resolve) =>
            ctx.signal.addEventListener('abort', () => resolve()),
          );
          observed.cancelled = true;
          return { content: [] };
        },
      },
    ],
  });
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: ACCEPT, ...headers },
    body: JSON.stringify(body),
  });
}

async function openSession(url: string, version: string): Promise<string> {
  const init = await post(url, {
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: {
      protocolVersion: version,
      capabilities: {},
      clientInfo: { name: 'e2e', version: '1' },
    },
  });
  expect(init.status).toBe(200);
  const sessionId = init.headers.get('mcp-session-id')!;
  const ack = await post(
    url,
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    { 'mcp-session-id': sessionId },
  );
  expect(ack.status).toBe(202);
  return sessionId;
}

interface SseEvent {
  id?: string;
  data: string;
}

/** Reads SSE events from a response body until `until` says stop. */
async function readEvents(
  response: Response,
  until: (events: SseEvent[]) => boolean,
  raw?: { text: string },
): Promise<SseEvent[]> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  const events: SseEvent[] = [];
  let buffer = '';
  while (!until(events)) {
    const { value, done } = await reader.read();
    if (done) {
      break;
    }
    const chunk = decoder.decode(value, { stream: true });
    if (raw) {
      raw.text += chunk;
    }
    buffer += chunk;
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event: SseEvent = { data: '' };
      let hasField = false;
      for (const line of block.split('\n')) {
        if (line.startsWith('id: ')) {
          event.id = line.slice(4);
          hasField = true;
        } else if (line.startsWith('data: ') || line === 'data:') {
          event.data += line.slice(6);
          hasField = true;
        }
      }
      if (hasField) {
        events.push(event);
      }
    }
  }
  await reader.cancel().catch(() => undefined);
  return events;
}

const messages = (events: SseEvent[]) =>
  events.filter((e) => e.data !== '').map((e) => JSON.parse(e.data));

describe('Streamable HTTP transport', () => {
  let gateway: RunningGateway;
  let gate: Gate;
  let observed: Observed;

  beforeEach(async () => {
    gate = new Gate();
    observed = { cancelled: false, started: new Gate() };
    gateway = await startGateway(
      { SSE_KEEPALIVE_MS: '1000', SESSION_IDLE_TIMEOUT_MS: '1000' },
      { catalog: catalog(gate, observed) },
    );
  });

  afterEach(async () => {
    gate.open();
    await gateway.close();
  });

  describe('2025 era', () => {
    it('answers a 2025-03-26 batch with an array of responses', async () => {
      const sessionId = await openSession(gateway.mcpUrl, '2025-03-26');
      const response = await post(
        gateway.mcpUrl,
        [
          { jsonrpc: '2.0', id: 1, method: 'ping' },
          {
            jsonrpc: '2.0',
            method: 'notifications/progress',
            params: { progressToken: 'x', progress: 1 },
          },
          { jsonrpc: '2.0', id: 2, method: 'tools/list' },
        ],
        { 'mcp-session-id': sessionId },
      );
      expect(response.status).toBe(200);
      const body = (await response.json()) as { id: number; result: Record<string, unknown> }[];
      expect(body.map((r) => r.id)).toEqual([1, 2]);
      expect(body[0].result).toEqual({});
      expect((body[1].result.tools as unknown[]).length).toBe(2);
    });

    it('streams progress before the result, with a priming event for 2025-11-25 clients', async () => {
      const sessionId = await openSession(gateway.mcpUrl, '2025-11-25');
      gate.open();
      const response = await post(
        gateway.mcpUrl,
        {
          jsonrpc: '2.0',
          id: 5,
          method: 'tools/call',
          params: { name: 'steps', _meta: { progressToken: 'p' } },
        },
        { 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' },
      );
      expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
      const events = await readEvents(response, (e) => e.some((x) => x.data.includes('"id":5')));
      expect(events[0]).toEqual({ id: expect.stringMatching(/:0$/), data: '' });
      const bodies = messages(events);
      expect(bodies.map((m) => m.method ?? 'response')).toEqual([
        'notifications/progress',
        'notifications/progress',
        'response',
      ]);
      expect(bodies[2].result.content[0].text).toBe('finished');
      // Every stored event id names the session's stream.
      for (const event of events) {
        expect(event.id?.startsWith(`${sessionId}.`)).toBe(true);
      }
    });

    it('resumes a dropped stream with Last-Event-ID and delivers what was missed', async () => {
      const sessionId = await openSession(gateway.mcpUrl, '2025-11-25');
      const headers = { 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' };
      const controller = new AbortController();
      const response = await fetch(gateway.mcpUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: ACCEPT, ...headers },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 'r1',
          method: 'tools/call',
          params: { name: 'steps', _meta: { progressToken: 'p' } },
        }),
        signal: controller.signal,
      });
      const first = await readEvents(response, (e) => e.some((x) => x.data.includes('started')));
      const lastSeen = first[first.length - 1].id!;
      controller.abort(); // the connection drops; the call goes on
      await observed.started.opened;
      gate.open();

      const resumed = await fetch(gateway.mcpUrl, {
        headers: { accept: 'text/event-stream', 'last-event-id': lastSeen, ...headers },
      });
      expect(resumed.status).toBe(200);
      const events = await readEvents(resumed, (e) => e.some((x) => x.data.includes('"id":"r1"')));
      const bodies = messages(events);
      expect(bodies.map((m) => m.method ?? m.id)).toEqual(['notifications/progress', 'r1']);
      expect(bodies[0].params.message).toBe('after the gate');
      expect(bodies[1].result.content[0].text).toBe('finished');
    });

    it('keeps an idle GET stream alive with comments', async () => {
      const sessionId = await openSession(gateway.mcpUrl, '2025-11-25');
      const response = await fetch(gateway.mcpUrl, {
        headers: { accept: 'text/event-stream', 'mcp-session-id': sessionId },
      });
      expect(response.status).toBe(200);
      const raw = { text: '' };
      await readEvents(response, () => raw.text.includes(': keep-alive'), raw);
      expect(raw.text).toContain(': keep-alive\n\n');
    });

    it('refuses a second GET stream on the same session', async () => {
      const sessionId = await openSession(gateway.mcpUrl, '2025-11-25');
      const headers = { accept: 'text/event-stream', 'mcp-session-id': sessionId };
      const first = await fetch(gateway.mcpUrl, { headers });
      expect(first.status).toBe(200);
      const second = await fetch(gateway.mcpUrl, { headers });
      expect(second.status).toBe(409);
      await first.body!.cancel();
    });

    it('expires an idle session', async () => {
      const sessionId = await openSession(gateway.mcpUrl, '2025-11-25');
      const registry = gateway.app.get(SessionRegistry);
      expect(await registry.find(sessionId)).toBeDefined();
      // find() does not count as activity; the sweeper must end the session on its own.
      const deadline = Date.now() + 10_000;
      while ((await registry.find(sessionId)) !== undefined && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
      }
      const ping = await post(
        gateway.mcpUrl,
        { jsonrpc: '2.0', id: 1, method: 'ping' },
        { 'mcp-session-id': sessionId },
      );
      expect(ping.status).toBe(404);
    });
  });

  describe('2026-07-28', () => {
    const modern = (id: number, name: string) => ({
      jsonrpc: '2.0',
      id,
      method: 'tools/call',
      params: {
        name,
        _meta: {
          [META.protocolVersion]: '2026-07-28',
          [META.clientCapabilities]: {},
          progressToken: `t${id}`,
        },
      },
    });
    const headers = (name: string) => ({
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'tools/call',
      'mcp-name': name,
    });

    it('streams progress then the result, without priming events', async () => {
      gate.open();
      const response = await post(gateway.mcpUrl, modern(1, 'steps'), headers('steps'));
      expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
      const events = await readEvents(response, (e) => e.some((x) => x.data.includes('"result"')));
      expect(events.every((e) => e.id === undefined && e.data !== '')).toBe(true);
      const bodies = messages(events);
      expect(bodies.map((m) => m.method ?? 'response')).toEqual([
        'notifications/progress',
        'notifications/progress',
        'response',
      ]);
      expect(bodies[2].result.resultType).toBe('complete');
    });

    it('cancels the call when the client closes the stream', async () => {
      const controller = new AbortController();
      const response = await fetch(gateway.mcpUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: ACCEPT,
          ...headers('wait_for_cancel'),
        },
        body: JSON.stringify(modern(2, 'wait_for_cancel')),
        signal: controller.signal,
      });
      await readEvents(response, (e) => e.length > 0);
      await observed.started.opened;
      controller.abort();
      const deadline = Date.now() + 5_000;
      while (!observed.cancelled && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(observed.cancelled).toBe(true);
    });
  });

  describe('health', () => {
    it('is live and ready, and not ready once draining', async () => {
      expect((await fetch(`${gateway.baseUrl}/health/live`)).status).toBe(200);
      expect((await fetch(`${gateway.baseUrl}/health/ready`)).status).toBe(200);
      gateway.app.get(LifecycleService).startDraining();
      const ready = await fetch(`${gateway.baseUrl}/health/ready`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({
        status: 'error',
        error: { lifecycle: { status: 'down' } },
      });
      expect((await fetch(`${gateway.baseUrl}/health/live`)).status).toBe(200);
    });
  });
});

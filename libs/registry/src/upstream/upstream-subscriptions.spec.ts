import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import {
  Cancellation,
  classify,
  McpEngine,
  MODERN_PROTOCOL_VERSION,
  type CatalogEvent,
  type JsonObject,
  type JsonRpcMessage,
  type LegacySession,
} from '@portico/mcp-protocol';
import type { BackendEntity } from '@portico/persistence';
import type { BackendContext, BackendSource } from './backend-source';
import { UpstreamOptions } from './upstream-options';
import { UpstreamSourceFactory } from './upstream-source.factory';
import { UpstreamSubscriptions } from './upstream-subscriptions';

/*
 * Resource subscriptions through McpUpstreamSource, against the fixture upstream in its own
 * process: a 2025-era one over stdio (resources/subscribe) and a 2026-07-28 one over
 * Streamable HTTP (subscriptions/listen), driven through the protocol engine as clients would.
 */

const FIXTURE = resolve(__dirname, '../../../testing/fixtures-upstream/upstream-server.mjs');
const HELLO = 'fixture://hello';
const WAIT_MS = 15_000;

function context(backend: Partial<BackendEntity>): BackendContext {
  return {
    tenantId: 't1',
    tenantSlug: 'acme',
    backend: {
      id: 'b1',
      tenantId: 't1',
      name: 'up',
      kind: 'mcp-stdio',
      target: `"${process.execPath}" "${FIXTURE}" --stdio`,
      settings: {},
      credentialsSealed: null,
      createdAt: new Date(0),
      updatedAt: new Date(0),
      ...backend,
    },
    credentials: () => ({}),
  };
}

/** The HTTP fixture on `port` (0: any); resolves once it listens. */
async function startHttpFixture(port = 0): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [FIXTURE, String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const bound = await new Promise<number>((done, fail) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const match = /^READY (\d+)$/.exec(line);
      if (match) {
        done(Number(match[1]));
      }
    });
    child.once('exit', (code) => fail(new Error(`fixture exited with ${code}`)));
  });
  return { child, port: bound };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  }
}

/** Waits until `check` resolves truthy (polled), failing after WAIT_MS. */
async function until<T>(check: () => Promise<T | undefined> | T | undefined, what: string) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await Promise.resolve(check()).catch(() => undefined);
    if (value) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** An engine over one upstream source, with helpers for what its clients do. */
class Harness {
  readonly engine: McpEngine;
  readonly events: CatalogEvent[] = [];
  private nextId = 1;

  constructor(readonly source: BackendSource) {
    this.engine = new McpEngine({
      serverInfo: { name: 'spec', version: '0' },
      catalog: source,
      secret: 'unit-test-secret-unit-test-secret',
    });
    source.watch((event) => this.events.push(event));
  }

  async call(tool: string, args: JsonObject = {}): Promise<string> {
    const response = await this.engine.handleModern(
      {
        jsonrpc: '2.0',
        id: this.nextId++,
        method: 'tools/call',
        params: {
          name: `up__${tool}`,
          arguments: args,
          _meta: {
            'io.modelcontextprotocol/protocolVersion': MODERN_PROTOCOL_VERSION,
            'io.modelcontextprotocol/clientCapabilities': {},
          },
        },
      },
      { outbound: { send: () => undefined } },
    );
    if (!response || !('result' in response)) {
      throw new Error(`tools/call ${tool} failed: ${JSON.stringify(response)}`);
    }
    return (response.result.content as { text: string }[])[0].text;
  }

  /** The fixture's own view: its pid and the URIs it is subscribed to. */
  async upstream(): Promise<{ pid: number; uris: string[] }> {
    return JSON.parse(await this.call('subscriptions')) as { pid: number; uris: string[] };
  }

  session(): { session: LegacySession; received: JsonRpcMessage[] } {
    const { session } = this.engine.initialize(
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
      `s-${this.nextId++}`,
    );
    session.initialized = true;
    const received: JsonRpcMessage[] = [];
    session.attachStandalone((m) => {
      received.push(m);
      return true;
    });
    this.engine.watchSession(session);
    return { session, received };
  }

  /** tools/call on a 2025-era session: served by that session's own upstream session. */
  async sessionCall(session: LegacySession, tool: string, args: JsonObject = {}): Promise<string> {
    const response = await this.engine.handleSession(
      session,
      classify({
        jsonrpc: '2.0',
        id: this.nextId++,
        method: 'tools/call',
        params: { name: `up__${tool}`, arguments: args },
      }),
      { outbound: { send: () => undefined } },
    );
    if (!response || !('result' in response)) {
      throw new Error(`tools/call ${tool} failed: ${JSON.stringify(response)}`);
    }
    return (response.result.content as { text: string }[])[0].text;
  }

  async request(session: LegacySession, method: string, uri: string): Promise<void> {
    const response = await this.engine.handleSession(
      session,
      classify({ jsonrpc: '2.0', id: this.nextId++, method, params: { uri } }),
      { outbound: { send: () => undefined } },
    );
    if (!response || !('result' in response)) {
      throw new Error(`${method} failed: ${JSON.stringify(response)}`);
    }
  }

  /** A subscriptions/listen stream; `ended()` cancels it (the client went away). */
  listen(uris: string[]) {
    const sent: JsonRpcMessage[] = [];
    const cancellation = new Cancellation();
    const done = this.engine.handleModern(
      {
        jsonrpc: '2.0',
        id: `listen-${this.nextId++}`,
        method: 'subscriptions/listen',
        params: {
          notifications: { resourceSubscriptions: uris },
          _meta: {
            'io.modelcontextprotocol/protocolVersion': MODERN_PROTOCOL_VERSION,
            'io.modelcontextprotocol/clientCapabilities': {},
          },
        },
      },
      { outbound: { send: (m) => void sent.push(m) }, cancellation },
    );
    return {
      sent,
      acknowledged: () =>
        until(
          () => sent.some((m) => methodOf(m) === 'notifications/subscriptions/acknowledged'),
          'ack',
        ),
      end: async () => {
        cancellation.cancel();
        await done;
      },
    };
  }

  updates(messages: JsonRpcMessage[], uri = HELLO): number {
    return messages.filter(
      (m) =>
        methodOf(m) === 'notifications/resources/updated' &&
        (m as { params: JsonObject }).params.uri === uri,
    ).length;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function methodOf(message: JsonRpcMessage): string | undefined {
  return 'method' in message ? message.method : undefined;
}

describe(UpstreamSubscriptions.name, () => {
  const factory = new UpstreamSourceFactory(
    undefined,
    undefined,
    new UpstreamOptions({ stdioEnabled: true }),
  );
  const sources: BackendSource[] = [];
  const children: ChildProcess[] = [];

  afterEach(async () => {
    await Promise.all(sources.splice(0).map(async (s) => s.close?.()));
    await Promise.all(children.splice(0).map(stop));
  });

  async function connect(backend: Partial<BackendEntity> = {}): Promise<Harness> {
    const source = await factory.create(context(backend));
    if (!source) {
      throw new Error('no source');
    }
    sources.push(source);
    return new Harness(source);
  }

  async function httpUpstream(): Promise<{ sut: Harness; port: number }> {
    const { child, port } = await startHttpFixture();
    children.push(child);
    const sut = await connect({
      kind: 'mcp-http',
      target: `http://127.0.0.1:${port}/mcp`,
      settings: { internal: true },
    });
    return { sut, port };
  }

  describe('a 2025-era upstream (stdio, resources/subscribe)', () => {
    // The pooled session serves every client here (by default each 2025-era session has one
    // of its own: see the last case).
    const pooled = { settings: { sessions: 'pooled' } };

    it('subscribes on the first claim of a URI, unsubscribes on the last, and relays updates', async () => {
      const sut = await connect(pooled);
      const a = sut.session();
      const b = sut.session();
      await sut.request(a.session, 'resources/subscribe', HELLO);
      await sut.request(a.session, 'resources/subscribe', HELLO);
      await sut.request(b.session, 'resources/subscribe', HELLO);
      expect((await sut.upstream()).uris).toEqual([HELLO]);

      await sut.call('touch', { uri: HELLO });
      await until(() => sut.updates(a.received) === 1 && sut.updates(b.received) === 1, 'updates');
      expect(sut.events).toContainEqual({ type: 'resource-updated', uri: HELLO });

      // One unsubscribe undoes a's two subscribes; b still holds the upstream subscription.
      await sut.request(a.session, 'resources/unsubscribe', HELLO);
      await sut.call('touch', { uri: HELLO });
      await until(() => sut.updates(b.received) === 2, 'the second update');
      expect((await sut.upstream()).uris).toEqual([HELLO]);
      expect(sut.updates(a.received)).toBe(1);

      b.session.close();
      await until(async () => (await sut.upstream()).uris.length === 0, 'the unsubscribe');
    });

    it('subscribes to instances of templates too', async () => {
      const sut = await connect(pooled);
      const { session } = sut.session();
      await sut.request(session, 'resources/subscribe', 'fixture://missing/7');
      expect((await sut.upstream()).uris).toEqual(['fixture://missing/7']);
    });

    it('subscribes the live set again in the process started after a crash', async () => {
      const sut = await connect(pooled);
      const { session, received } = sut.session();
      await sut.request(session, 'resources/subscribe', HELLO);
      const before = await sut.upstream();
      expect(before.uris).toEqual([HELLO]);

      process.kill(before.pid, 'SIGKILL');
      const after = await until(async () => {
        const now = await sut.upstream();
        return now.pid !== before.pid && now.uris.includes(HELLO) ? now : undefined;
      }, 'a new process subscribed');
      expect(after.uris).toEqual([HELLO]);
      await sut.call('touch', { uri: HELLO });
      await until(() => sut.updates(received) === 1, 'the update from the new process');
    });

    it('subscribes a session on its own upstream session, released with the session', async () => {
      const sut = await connect();
      const a = sut.session();
      const b = sut.session();
      await sut.request(a.session, 'resources/subscribe', HELLO);
      const own = JSON.parse(await sut.sessionCall(a.session, 'subscriptions')) as {
        pid: number;
        uris: string[];
      };
      expect(own.uris).toEqual([HELLO]);
      // Neither the pooled process nor b's own one is subscribed.
      const shared = await sut.upstream();
      expect(shared.pid).not.toBe(own.pid);
      expect(shared.uris).toEqual([]);
      const other = JSON.parse(await sut.sessionCall(b.session, 'subscriptions')) as {
        pid: number;
        uris: string[];
      };
      expect(other.pid).not.toBe(own.pid);
      expect(other.uris).toEqual([]);

      await sut.sessionCall(a.session, 'touch', { uri: HELLO });
      await until(() => sut.updates(a.received) === 1, "the update of a's upstream session");
      expect(sut.updates(b.received)).toBe(0);

      a.session.close();
      await until(() => !alive(own.pid), "the exit of a's upstream process");
      expect(alive(other.pid)).toBe(true);
      b.session.close();
      await until(() => !alive(other.pid), "the exit of b's upstream process");
    });
  });

  describe('a 2026-07-28 upstream (Streamable HTTP, subscriptions/listen)', () => {
    it('listens for the URIs of every claim on one stream, until the last goes', async () => {
      const { sut } = await httpUpstream();
      const first = sut.listen([HELLO]);
      await first.acknowledged();
      // The acknowledgement follows the upstream's: the upstream listens by now.
      expect((await sut.upstream()).uris).toEqual([HELLO]);
      const { session, received } = sut.session();
      await sut.request(session, 'resources/subscribe', 'fixture://missing/1');
      expect((await sut.upstream()).uris).toEqual([HELLO, 'fixture://missing/1']);

      await sut.call('touch', { uri: HELLO });
      await until(() => sut.updates(first.sent) === 1, 'the update on the listen stream');
      await sut.call('touch', { uri: 'fixture://missing/1' });
      await until(() => sut.updates(received, 'fixture://missing/1') === 1, 'the session update');

      await first.end();
      await until(
        async () => (await sut.upstream()).uris.join() === 'fixture://missing/1',
        'the narrower stream',
      );
      session.close();
      await until(async () => (await sut.upstream()).uris.length === 0, 'the stream closed');
    });

    it('listens again once the upstream is back after a restart', async () => {
      const { sut, port } = await httpUpstream();
      const listen = sut.listen([HELLO]);
      await listen.acknowledged();
      await stop(children.pop()!);
      const restarted = await startHttpFixture(port);
      children.push(restarted.child);
      await until(
        async () => (await sut.upstream()).uris.includes(HELLO),
        'the listen stream on the new process',
      );
      await sut.call('touch', { uri: HELLO });
      await until(() => sut.updates(listen.sent) === 1, 'the update from the new process');
      await listen.end();
    });
  });
});

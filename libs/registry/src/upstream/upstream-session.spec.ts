import type { Client } from '@modelcontextprotocol/client';
import type { ClientSession, ClientSessionEvent, JsonObject } from '@portico/mcp-protocol';
import {
  ClientUpstreamSession,
  ClientUpstreamSessions,
  type UpstreamSessionHost,
} from './upstream-session';

/** A client session whose events the test fires. */
class FakeSession implements ClientSession {
  closed = false;
  private readonly listeners = new Map<ClientSessionEvent, Set<() => void>>();

  constructor(readonly id: string) {}

  log(): void {}

  request(): Promise<JsonObject> {
    return Promise.resolve({});
  }

  on(event: ClientSessionEvent, listener: () => void): () => void {
    const set = this.listeners.get(event) ?? new Set();
    this.listeners.set(event, set);
    set.add(listener);
    return () => set.delete(listener);
  }

  fire(event: ClientSessionEvent): void {
    if (event === 'closed') {
      this.closed = true;
    }
    [...(this.listeners.get(event) ?? [])].forEach((listener) => listener());
  }

  listening(event: ClientSessionEvent): number {
    return this.listeners.get(event)?.size ?? 0;
  }
}

/** An SDK client stand-in: counts what the session does with it. */
class FakeClient {
  closes = 0;
  rootsChanged = 0;
  onclose?: () => void;
  getServerCapabilities(): object {
    return {};
  }
  getProtocolEra(): string {
    return 'legacy';
  }
  close(): Promise<void> {
    this.closes++;
    return Promise.resolve();
  }
  sendRootsListChanged(): Promise<void> {
    this.rootsChanged++;
    return Promise.resolve();
  }
}

/** A host whose connect() hands out new fake clients, one per call. */
function host(): UpstreamSessionHost & { clients: FakeClient[] } {
  const clients: FakeClient[] = [];
  return {
    clients,
    label: 'Backend up',
    timeoutMs: 1_000,
    connect: () => {
      const client = new FakeClient();
      clients.push(client);
      return Promise.resolve(client as unknown as Client);
    },
  };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe(ClientUpstreamSession.name, () => {
  it('connects once on first use and shares that connection', async () => {
    const h = host();
    const sut = new ClientUpstreamSession(new FakeSession('s1'), h);
    expect(h.clients).toHaveLength(0);
    const [a, b] = await Promise.all([sut.connected(), sut.connected()]);
    expect(a).toBe(b);
    expect(h.clients).toHaveLength(1);
  });

  it('connects again after its client was dropped (a crash, an idle stop)', async () => {
    const h = host();
    const sut = new ClientUpstreamSession(new FakeSession('s1'), h);
    const first = await sut.connected();
    await sut.drop(first);
    expect(h.clients[0].closes).toBe(1);
    const second = await sut.connected();
    expect(second).not.toBe(first);
    expect(h.clients).toHaveLength(2);
  });

  it('ignores the drop of a client it no longer uses', async () => {
    const h = host();
    const sut = new ClientUpstreamSession(new FakeSession('s1'), h);
    const first = await sut.connected();
    await sut.drop(first);
    const second = await sut.connected();
    await sut.drop(first);
    expect(await sut.connected()).toBe(second);
  });

  it("passes the client's roots/list_changed to a connected upstream only", async () => {
    const h = host();
    const session = new FakeSession('s1');
    const sut = new ClientUpstreamSession(session, h);
    session.fire('roots-changed');
    await flush();
    expect(h.clients).toHaveLength(0);
    await sut.connected();
    session.fire('roots-changed');
    await flush();
    expect(h.clients[0].rootsChanged).toBe(1);
  });

  it('closes its client for good and stops listening to the session', async () => {
    const h = host();
    const session = new FakeSession('s1');
    const sut = new ClientUpstreamSession(session, h);
    await sut.connected();
    await sut.close();
    expect(h.clients[0].closes).toBe(1);
    expect(session.listening('roots-changed')).toBe(0);
    await expect(sut.connected()).rejects.toThrow('client session closed');
    expect(h.clients).toHaveLength(1);
  });
});

describe(ClientUpstreamSessions.name, () => {
  it('gives each client session its own upstream session, the same one each time', () => {
    const sut = new ClientUpstreamSessions(host(), 4, jest.fn());
    const a = new FakeSession('a');
    const b = new FakeSession('b');
    const first = sut.of(a);
    const second = sut.of(b);
    expect(first.kind).toBe('own');
    expect(second.kind).toBe('own');
    expect(first).not.toEqual(second);
    expect(sut.of(a)).toEqual(first);
    expect(sut.size).toBe(2);
  });

  it("closes a client session's upstream session when the client session closes", async () => {
    const h = host();
    const sut = new ClientUpstreamSessions(h, 4, jest.fn());
    const a = new FakeSession('a');
    const own = sut.of(a);
    if (own.kind !== 'own') {
      throw new Error('expected a session of its own');
    }
    await own.session.connected();
    a.fire('closed');
    await flush();
    expect(sut.size).toBe(0);
    expect(own.session.isClosed).toBe(true);
    expect(h.clients[0].closes).toBe(1);
    // A closed client session is never given a new one.
    expect(sut.of(a).kind).toBe('pooled');
  });

  it('shares the pooled session beyond the cap, says so once, and keeps it there', () => {
    const onFull = jest.fn();
    const sut = new ClientUpstreamSessions(host(), 1, onFull);
    const a = new FakeSession('a');
    const b = new FakeSession('b');
    expect(sut.of(a).kind).toBe('own');
    expect(sut.of(b).kind).toBe('pooled');
    expect(sut.of(b).kind).toBe('pooled');
    expect(onFull).toHaveBeenCalledTimes(1);
    a.fire('closed');
    // Room again, but b started on the pooled session: its upstream state is there.
    expect(sut.of(b).kind).toBe('pooled');
    expect(sut.of(new FakeSession('c')).kind).toBe('own');
  });

  it('with a cap of 0 (pooled mode) uses the pooled session for everyone', () => {
    const sut = new ClientUpstreamSessions(host(), 0, jest.fn());
    expect(sut.of(new FakeSession('a')).kind).toBe('pooled');
    expect(sut.size).toBe(0);
  });

  it('closes every upstream session when the source closes', async () => {
    const h = host();
    const sut = new ClientUpstreamSessions(h, 4, jest.fn());
    for (const id of ['a', 'b']) {
      const own = sut.of(new FakeSession(id));
      if (own.kind === 'own') {
        await own.session.connected();
      }
    }
    await sut.close();
    expect(h.clients.map((c) => c.closes)).toEqual([1, 1]);
    expect(sut.of(new FakeSession('c')).kind).toBe('pooled');
  });
});

import type { Client } from '@modelcontextprotocol/client';
import type { ClientSession, ResourceRelease } from '@portico/mcp-protocol';
import { RelayedCalls } from './upstream-relay';
import { UpstreamSubscriptions } from './upstream-subscriptions';

/** What one upstream session needs of the source that owns it. */
export interface UpstreamSessionHost {
  /** "Backend <name>", for log lines. */
  readonly label: string;
  /** Budget of one subscribe, unsubscribe or listen acknowledgement. */
  readonly timeoutMs: number;
  /** Opens and initialises a new upstream client for `session`. */
  connect(session: ClientUpstreamSession): Promise<Client>;
}

/**
 * The upstream session of one 2025-era client session: its own SDK client (for stdio its own
 * child process), so that what the upstream keeps per session (roots, log level, toggles,
 * subscriptions) is that client's alone, and what the upstream sends outside any call reaches
 * that client. Connected on first use and again after a loss (a crash, an idle stop of its
 * child): the upstream's session state is then new, which the upstream rebuilds the way it
 * does for any new session (it asks for roots again; subscriptions are made again here).
 */
export class ClientUpstreamSession {
  /** Calls of this client in flight on this upstream session. */
  readonly calls = new RelayedCalls();
  private readonly subscriptions: UpstreamSubscriptions;
  private client?: Promise<Client>;
  private closed = false;
  private readonly unlisten: () => void;

  constructor(
    readonly session: ClientSession,
    private readonly host: UpstreamSessionHost,
  ) {
    this.subscriptions = new UpstreamSubscriptions({
      label: host.label,
      timeoutMs: host.timeoutMs,
      connect: () => this.connected(),
    });
    // The client's roots changed: the upstream session that cached them hears so.
    this.unlisten = session.on('roots-changed', () => void this.rootsChanged());
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** The URIs this client is subscribed to on this upstream session. */
  get subscribedUris(): string[] {
    return this.subscriptions.uris;
  }

  /** The connected client, connecting first when there is none (yet, or any more). */
  connected(): Promise<Client> {
    if (this.closed) {
      return Promise.reject(new Error('client session closed'));
    }
    if (!this.client) {
      const connecting = this.host.connect(this).then((client) => {
        if (this.closed) {
          void client.close().catch(() => undefined);
          throw new Error('client session closed');
        }
        this.subscriptions.attach(client);
        return client;
      });
      this.client = connecting;
      // A failed connect is not kept: the next request tries again.
      connecting.catch(() => {
        if (this.client === connecting) {
          this.client = undefined;
        }
      });
    }
    return this.client;
  }

  /** A claim of this client's interest in `uri`, served by this upstream session. */
  subscribe(uri: string): Promise<ResourceRelease> {
    return this.subscriptions.claim(uri);
  }

  /** Passes the client's roots/list_changed to a connected upstream (a new one asks anyway). */
  private async rootsChanged(): Promise<void> {
    const client = await this.client?.catch(() => undefined);
    await client?.sendRootsListChanged().catch(() => undefined);
  }

  /** Forgets the client (only `which`, when given) and closes it. */
  drop(which?: Client): Promise<void> {
    return releaseClient(
      () => this.client,
      () => (this.client = undefined),
      this.subscriptions,
      which,
    );
  }

  /** Ends the upstream session for good (its client session closed, or the source did). */
  async close(): Promise<void> {
    if (this.closed) {
      return;
    }
    this.closed = true;
    this.unlisten();
    this.subscriptions.close();
    const current = this.client;
    this.client = undefined;
    const client = await current?.catch(() => undefined);
    if (client) {
      client.onclose = undefined;
      await client.close().catch(() => undefined);
    }
  }
}

/** Outcome of `ClientUpstreamSessions.of`: the client's own session, or the pooled one. */
export type SessionChoice =
  { readonly kind: 'own'; readonly session: ClientUpstreamSession } | { readonly kind: 'pooled' };

/**
 * The per-client upstream sessions of one backend, one per 2025-era client session that used
 * it, closed when that client session closes. At most `max` at once: a client session beyond
 * shares the pooled session (served, but with the upstream's session state shared), rather
 * than being refused; `onFull` hears of it once per client session.
 */
export class ClientUpstreamSessions {
  private readonly sessions = new Map<string, ClientUpstreamSession>();
  private readonly overflowed = new Set<string>();
  private closed = false;

  constructor(
    private readonly host: UpstreamSessionHost,
    private readonly max: number,
    private readonly onFull: (session: ClientSession) => void,
  ) {}

  get size(): number {
    return this.sessions.size;
  }

  /** Every live per-client session. */
  values(): IterableIterator<ClientUpstreamSession> {
    return this.sessions.values();
  }

  /** The upstream session serving `session`, created on its first use. */
  of(session: ClientSession): SessionChoice {
    const existing = this.sessions.get(session.id);
    if (existing) {
      return { kind: 'own', session: existing };
    }
    if (this.closed || session.closed) {
      return { kind: 'pooled' };
    }
    if (this.sessions.size >= this.max) {
      if (!this.overflowed.has(session.id)) {
        this.overflowed.add(session.id);
        session.on('closed', () => this.overflowed.delete(session.id));
        this.onFull(session);
      }
      return { kind: 'pooled' };
    }
    if (this.overflowed.has(session.id)) {
      // Served by the pooled session from the start: it stays there for its lifetime.
      return { kind: 'pooled' };
    }
    const created = new ClientUpstreamSession(session, this.host);
    this.sessions.set(session.id, created);
    session.on('closed', () => {
      if (this.sessions.get(session.id) === created) {
        this.sessions.delete(session.id);
      }
      void created.close();
    });
    return { kind: 'own', session: created };
  }

  /**
   * Moves `session` to the pooled session for the rest of its life (its own could not be
   * opened, e.g. no room for another stdio child) and closes its own.
   */
  demote(session: ClientSession): void {
    const own = this.sessions.get(session.id);
    if (!own) {
      return;
    }
    this.sessions.delete(session.id);
    this.overflowed.add(session.id);
    session.on('closed', () => this.overflowed.delete(session.id));
    void own.close();
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(all.map((s) => s.close()));
  }
}

/**
 * Takes the client out of its slot (`current`, emptied by `clear` if it still holds the same
 * one) and closes it, its subscriptions detached first; with `which`, only if it is that one.
 */
export async function releaseClient(
  current: () => Promise<Client> | undefined,
  clear: () => void,
  subscriptions: { detach(client: Client): void },
  which?: Client,
): Promise<void> {
  const held = current();
  if (!held) {
    return;
  }
  const client = await held.catch(() => undefined);
  if (which && client !== which) {
    return;
  }
  if (current() === held) {
    clear();
  }
  if (client) {
    subscriptions.detach(client);
    client.onclose = undefined;
    await client.close().catch(() => undefined);
  }
}

import { Logger } from '@nestjs/common';
import { ProtocolError, type Client } from '@modelcontextprotocol/client';
import type { ResourceRelease } from '@portico/mcp-protocol';

/** First wait before subscribing again after a lost connection or stream; doubles up to MAX. */
export const RESUBSCRIBE_MIN_MS = 250;
export const RESUBSCRIBE_MAX_MS = 30_000;

/** What UpstreamSubscriptions needs of the source it serves. */
export interface SubscriptionHost {
  /** "Backend <name>", for log lines. */
  readonly label: string;
  /** Budget of one subscribe, unsubscribe or listen acknowledgement. */
  readonly timeoutMs: number;
  /**
   * Connects the pooled client unless it is connected or connecting; the source then calls
   * `attach` with it.
   */
  connect(): Promise<unknown>;
}

type McpSubscription = Awaited<ReturnType<Client['listen']>>;

/** The upstream subscription as it stands on one connected client. */
interface Link {
  readonly client: Client;
  /** 2025 era: the URIs subscribed with resources/subscribe. */
  readonly subscribed: Set<string>;
  /** 2025 era: the URIs the upstream refused (a JSON-RPC error): not asked again on this client. */
  readonly refused: Set<string>;
  /** 2026-07-28: the open subscriptions/listen stream and the URIs it names. */
  listen?: { readonly uris: readonly string[]; readonly stream: McpSubscription };
  /** 2026-07-28: the upstream refused subscriptions/listen: not asked again on this client. */
  listenRefused?: boolean;
  /** The lack of the resources.subscribe capability was logged. */
  toldUnsupported?: boolean;
}

/**
 * Interest of this node's clients in one upstream's resources, counted per URI, and the
 * upstream subscription that serves it: `resources/subscribe` / `unsubscribe` per URI on a
 * 2025-era connection, one `subscriptions/listen` stream naming every URI on a 2026-07-28 one
 * (replaced, new before old, when the set changes). The pooled client is shared, so the
 * upstream is asked on the first claim of a URI and released on the last. Changes are applied
 * one reconciliation at a time, so a subscribe and an unsubscribe of one URI never race. After
 * a reconnect (or a lost listen stream) the live set is subscribed again, with backoff.
 * Failures are logged, never thrown: a client's subscription stands, without updates.
 */
export class UpstreamSubscriptions {
  private readonly logger = new Logger(UpstreamSubscriptions.name);
  private readonly counts = new Map<string, number>();
  private link?: Link;
  private dirty = false;
  private running?: Promise<void>;
  private retryTimer?: NodeJS.Timeout;
  private retryMs = RESUBSCRIBE_MIN_MS;
  private closed = false;

  constructor(private readonly host: SubscriptionHost) {}

  /** The URIs some client is subscribed to, sorted. */
  get uris(): string[] {
    return [...this.counts.keys()].sort();
  }

  /**
   * Counts one claim of interest in `uri`; resolves, once the upstream was asked (or could
   * not be), to the claim's release.
   */
  claim(uri: string): Promise<ResourceRelease> {
    if (this.closed) {
      return Promise.resolve(() => undefined);
    }
    this.counts.set(uri, (this.counts.get(uri) ?? 0) + 1);
    let released = false;
    const release = (): void => {
      if (released || this.closed) {
        return;
      }
      released = true;
      const left = (this.counts.get(uri) ?? 1) - 1;
      if (left > 0) {
        this.counts.set(uri, left);
        return;
      }
      this.counts.delete(uri);
      void this.sync();
    };
    return this.sync().then(() => release);
  }

  /** The pooled client connected (again): subscribes the live set on it. */
  attach(client: Client): void {
    if (this.closed) {
      return;
    }
    this.link = { client, subscribed: new Set(), refused: new Set() };
    void this.sync();
  }

  /** The pooled client is gone: with interest left, a new one is connected (with backoff). */
  detach(client: Client): void {
    if (this.link?.client !== client) {
      return;
    }
    this.link = undefined;
    if (this.counts.size > 0) {
      this.retryLater();
    }
  }

  /** Stops everything; the listen stream closes (the client goes with the source anyway). */
  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.counts.clear();
    const stream = this.link?.listen?.stream;
    this.link = undefined;
    void stream?.close().catch(() => undefined);
  }

  /** Applies the current interest; settles after a reconciliation that began after this call. */
  private sync(): Promise<void> {
    this.dirty = true;
    this.running ??= Promise.resolve().then(() => this.drain());
    return this.running;
  }

  private async drain(): Promise<void> {
    try {
      while (this.dirty && !this.closed) {
        this.dirty = false;
        await this.reconcile();
      }
    } finally {
      this.running = undefined;
    }
  }

  private async reconcile(): Promise<void> {
    const wanted = this.uris;
    const link = this.link;
    try {
      if (!link) {
        if (wanted.length > 0) {
          // The source attaches the new client, which marks this dirty: the loop goes on.
          await this.host.connect();
        }
        return;
      }
      if (!offersSubscriptions(link.client)) {
        if (wanted.length > 0 && !link.toldUnsupported) {
          link.toldUnsupported = true;
          this.logger.debug(
            `${this.host.label}: no resource subscriptions upstream; no updates are relayed`,
          );
        }
        return;
      }
      if (link.client.getProtocolEra() === 'modern') {
        await this.listen(link, wanted);
      } else {
        await this.subscribeEach(link, wanted);
      }
      this.retryMs = RESUBSCRIBE_MIN_MS;
    } catch (err) {
      if (this.closed) {
        return;
      }
      this.logger.warn(`${this.host.label}: resource subscriptions: ${describe(err)}`);
      this.retryLater();
    }
  }

  /** 2025 era: resources/subscribe for each new URI, resources/unsubscribe for each left. */
  private async subscribeEach(link: Link, wanted: readonly string[]): Promise<void> {
    const want = new Set(wanted);
    const options = { timeout: this.host.timeoutMs };
    const added = wanted.filter((uri) => !link.subscribed.has(uri) && !link.refused.has(uri));
    const removed = [...link.subscribed].filter((uri) => !want.has(uri));
    let failed: unknown;
    await Promise.all([
      ...added.map(async (uri) => {
        try {
          await link.client.subscribeResource({ uri }, options);
          link.subscribed.add(uri);
        } catch (err) {
          if (err instanceof ProtocolError) {
            link.refused.add(uri);
            this.logger.warn(
              `${this.host.label}: refused a subscription to ${uri}: ${err.message}`,
            );
          } else {
            failed ??= err;
          }
        }
      }),
      ...removed.map(async (uri) => {
        link.subscribed.delete(uri);
        await link.client.unsubscribeResource({ uri }, options).catch((err: unknown) => {
          this.logger.debug(`${this.host.label}: unsubscribing ${uri}: ${describe(err)}`);
        });
      }),
    ]);
    if (failed !== undefined && this.link === link) {
      throw failed;
    }
  }

  /**
   * 2026-07-28: one subscriptions/listen stream naming every URI. A changed set opens a new
   * stream before the old one closes, so no update falls between them.
   */
  private async listen(link: Link, wanted: readonly string[]): Promise<void> {
    const current = link.listen;
    if (sameMembers(current?.uris ?? [], wanted) || link.listenRefused) {
      return;
    }
    if (wanted.length === 0) {
      link.listen = undefined;
      await current?.stream.close();
      return;
    }
    let stream: McpSubscription;
    try {
      stream = await link.client.listen(
        { resourceSubscriptions: [...wanted] },
        { timeout: this.host.timeoutMs },
      );
    } catch (err) {
      if (err instanceof ProtocolError) {
        link.listenRefused = true;
        this.logger.warn(`${this.host.label}: refused subscriptions/listen: ${err.message}`);
        return;
      }
      throw err;
    }
    if (this.link !== link || this.closed) {
      await stream.close();
      return;
    }
    const honored = stream.honoredFilter.resourceSubscriptions ?? [];
    if (honored.length < wanted.length) {
      this.logger.debug(
        `${this.host.label}: subscriptions/listen honors ${honored.length} of ${wanted.length} URIs`,
      );
    }
    link.listen = { uris: wanted, stream };
    void stream.closed.then((how) => {
      // The upstream ended it (a restart, a shutdown): listen again while anyone cares.
      if (how !== 'local' && link.listen?.stream === stream) {
        link.listen = undefined;
        if (this.link === link && this.counts.size > 0) {
          this.retryLater();
        }
      }
    });
    await current?.stream.close();
  }

  private retryLater(): void {
    if (this.closed || this.retryTimer) {
      return;
    }
    const delay = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, RESUBSCRIBE_MAX_MS);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.sync();
    }, delay);
    this.retryTimer.unref();
  }
}

function offersSubscriptions(client: Client): boolean {
  return client.getServerCapabilities()?.resources?.subscribe === true;
}

function sameMembers(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((item, i) => item === b[i]);
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

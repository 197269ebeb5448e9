import { Logger } from '@nestjs/common';
import type { JSONRPCMessage, Transport } from '@modelcontextprotocol/client';
import type { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { MAX_DELAY_MS, type StdioSupervision } from './upstream-transport-settings';
import type { ConnectorClient } from './upstream-transports';

/** A child that stayed up this long has recovered: its next crash waits restartInitialMs again. */
export const BACKOFF_RESET_MS = 60_000;
/** Default of UPSTREAM_STDIO_MAX_CHILDREN. */
export const DEFAULT_MAX_STDIO_CHILDREN = 32;
/**
 * A child idle for less than this is not stopped to make room: the request it was started
 * for may be on its way (between the handshake and the first request it looks idle).
 */
const EVICTION_GRACE_MS = 1_000;
/** How often a waiting open() looks again for a child that has been idle long enough. */
const ADMIT_POLL_MS = 200;
/** How long open() waits for an evicted idle child to exit before it gives up. */
const EVICTION_WAIT_MS = 10_000;
/** How long shutdown waits for the children: the SDK's own escalation takes up to 4 s. */
const SHUTDOWN_WAIT_MS = 6_000;

type RequestId = string | number;

/** A stdio child cannot be started now; the message says why and, if known, when it can. */
export class StdioUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StdioUnavailableError';
  }
}

/**
 * The gateway's live stdio children, at most `max` (UPSTREAM_STDIO_MAX_CHILDREN). A child
 * counts from the moment open() admits it until its process has exited (or its transport was
 * closed before it ever started), so the count is exact whatever the order of crashes,
 * restarts and concurrent opens. At the bound, the least recently used idle child of another
 * on-demand backend is stopped to make room; a child admitted that way takes the stopped
 * one's place the moment that one exits, so the bound holds throughout.
 */
export class StdioChildren {
  private readonly live = new Set<StdioChild>();
  /** admit() calls waiting for room. */
  private readonly waiters = new Set<() => void>();

  constructor(readonly max: number = DEFAULT_MAX_STDIO_CHILDREN) {}

  /** Children admitted and not yet exited. */
  get size(): number {
    return this.live.size;
  }

  /**
   * Counts `child` in. At the bound it takes the place of a child already on its way out,
   * or stops the least recently used idle child of another on-demand backend and takes its
   * place; when there is neither, it waits up to `maxWaitMs` for one (children busy reading
   * their lists at registration are idle moments later), then throws.
   */
  async admit(child: StdioChild, maxWaitMs = 0): Promise<void> {
    const deadline = performance.now() + maxWaitMs;
    for (;;) {
      if (this.live.size < this.max) {
        this.live.add(child);
        return;
      }
      const victim = this.leaving() ?? this.leastRecentlyUsedIdle(child.supervisor);
      if (victim) {
        return this.succeed(victim, child);
      }
      const remaining = deadline - performance.now();
      if (remaining <= 0) {
        throw this.full();
      }
      await new Promise<void>((resolve) => {
        this.waiters.add(resolve);
        setTimeout(resolve, Math.min(remaining, ADMIT_POLL_MS)).unref();
      });
    }
  }

  /** Something may have made room (a child exited, became idle or is leaving): look again. */
  changed(): void {
    if (this.waiters.size === 0) {
      return;
    }
    const waiters = [...this.waiters];
    this.waiters.clear();
    waiters.forEach((wake) => wake());
  }

  /** `child` takes `victim`'s place when it exits; an idle victim is stopped for it. */
  private async succeed(victim: StdioChild, child: StdioChild): Promise<void> {
    const admitted = new Promise<void>((resolve) => (victim.heir = { child, admitted: resolve }));
    if (!victim.closeRequested) {
      victim.stop('evicted');
    }
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), EVICTION_WAIT_MS);
      timer.unref();
    });
    const done = await Promise.race([admitted.then(() => true), gaveUp]);
    clearTimeout(timer);
    if (!done) {
      if (victim.heir?.child === child) {
        victim.heir = undefined;
      }
      if (!this.live.has(child)) {
        throw this.full();
      }
    }
  }

  /** Counts `child` out (idempotent); an heir waiting for its place takes it now. */
  release(child: StdioChild): void {
    if (!this.live.delete(child)) {
      return;
    }
    const heir = child.heir;
    child.heir = undefined;
    if (heir) {
      this.live.add(heir.child);
      heir.admitted();
    } else {
      this.changed();
    }
  }

  /** Stops every child and waits (bounded) for them to exit: no child outlives the gateway. */
  async stopAll(): Promise<void> {
    const exits = [...this.live].map((child) => {
      child.stop('shutdown');
      return child.exited;
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(exits),
      new Promise((resolve) => {
        timer = setTimeout(resolve, SHUTDOWN_WAIT_MS);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
  }

  /** A child being stopped (by anyone) whose place is not promised yet. */
  private leaving(): StdioChild | undefined {
    for (const child of this.live) {
      if (child.closeRequested && !child.ended && !child.heir) {
        return child;
      }
    }
    return undefined;
  }

  private leastRecentlyUsedIdle(except: StdioSupervisor): StdioChild | undefined {
    let best: StdioChild | undefined;
    const settled = performance.now() - EVICTION_GRACE_MS;
    for (const child of this.live) {
      if (
        child.supervisor !== except &&
        child.supervisor.onDemand &&
        child.idle &&
        child.lastActive <= settled &&
        !child.heir &&
        (!best || child.lastActive < best.lastActive)
      ) {
        best = child;
      }
    }
    return best;
  }

  private full(): StdioUnavailableError {
    return new StdioUnavailableError(
      `the gateway already runs its maximum of ${this.max} stdio backends ` +
        '(UPSTREAM_STDIO_MAX_CHILDREN) and none of them is idle',
    );
  }
}

/** Why the gateway itself stopped a child (any other exit is a crash). */
type StopReason = 'idle' | 'evicted' | 'shutdown' | 'closed';

/**
 * One child process of a stdio backend, from its admission to its exit: what is in flight
 * on it (requests both ways, resource subscriptions) and when it was last used.
 */
export class StdioChild {
  /** A child admitted in this one's place once it exits (see StdioChildren.admit). */
  heir?: { child: StdioChild; admitted: () => void };
  lastActive = performance.now();
  started = false;
  startedAt = 0;
  ended = false;
  /** Set when someone closes the transport: its exit is then no crash. */
  closeRequested = false;
  stopReason?: StopReason;
  transport?: StdioClientTransport;
  readonly exited: Promise<void>;
  private markExited!: () => void;
  private readonly outgoing = new Set<RequestId>();
  private readonly incoming = new Set<RequestId>();
  private readonly subscriptions = new Set<string>();
  private readonly subscribing = new Map<RequestId, string>();
  /** A message reaches the hook once per handler in the chain; it is counted once. */
  private readonly seen = new WeakSet<object>();
  private idleTimer?: NodeJS.Timeout;

  constructor(readonly supervisor: StdioSupervisor) {
    this.exited = new Promise((resolve) => (this.markExited = resolve));
  }

  /** Running, nothing in flight either way and no resource subscription open. */
  get idle(): boolean {
    return (
      this.started &&
      !this.ended &&
      !this.closeRequested &&
      this.outgoing.size === 0 &&
      this.incoming.size === 0 &&
      this.subscriptions.size === 0
    );
  }

  /** Closes the transport (stdin, then SIGTERM, then SIGKILL: the SDK's escalation). */
  stop(reason: StopReason): void {
    if (this.ended) {
      return;
    }
    this.stopReason ??= reason;
    this.clearIdleTimer();
    if (this.transport) {
      void this.transport.close().catch(() => undefined);
    } else {
      this.end();
    }
  }

  /** Watches `transport`'s traffic and lifecycle; see observe(). */
  adopt(transport: StdioClientTransport): void {
    this.transport = transport;
    observe(transport, this);
  }

  beforeStart(): void {
    if (this.ended || this.closeRequested) {
      // Its place is given back already: a process started now would not be counted.
      throw new StdioUnavailableError('the transport was closed before it started');
    }
  }

  afterStart(): void {
    this.started = true;
    this.startedAt = performance.now();
    this.touch();
  }

  beforeClose(): void {
    this.closeRequested = true;
    this.clearIdleTimer();
    this.supervisor.changed();
  }

  /** The process exited, failed to spawn, or its transport was closed unstarted (idempotent). */
  end(): void {
    if (this.ended) {
      return;
    }
    this.ended = true;
    this.clearIdleTimer();
    this.markExited();
    this.supervisor.childEnded(this);
  }

  sent(message: JSONRPCMessage): void {
    const m = message as Record<string, unknown>;
    const id = m.id as RequestId | undefined;
    if (typeof m.method === 'string') {
      const params = (m.params ?? {}) as Record<string, unknown>;
      if (id !== undefined) {
        this.outgoing.add(id);
        if (m.method === 'resources/subscribe' && typeof params.uri === 'string') {
          this.subscriptions.add(params.uri);
          this.subscribing.set(id, params.uri);
        }
      }
      if (m.method === 'resources/unsubscribe' && typeof params.uri === 'string') {
        this.subscriptions.delete(params.uri);
      } else if (m.method === 'notifications/cancelled') {
        // The upstream owes no answer to a cancelled request.
        this.settle(params.requestId as RequestId, false);
      }
    } else if (id !== undefined) {
      this.incoming.delete(id);
    }
    this.touch();
  }

  received(message: JSONRPCMessage): void {
    if (typeof message !== 'object' || message === null || this.seen.has(message)) {
      return;
    }
    this.seen.add(message);
    const m = message as Record<string, unknown>;
    const id = m.id as RequestId | undefined;
    if (typeof m.method === 'string') {
      if (id !== undefined) {
        this.incoming.add(id);
      } else if (m.method === 'notifications/cancelled') {
        const params = (m.params ?? {}) as Record<string, unknown>;
        this.incoming.delete(params.requestId as RequestId);
      }
    } else if (id !== undefined) {
      this.settle(id, 'error' in m);
    }
    this.touch();
  }

  private settle(id: RequestId, failed: boolean): void {
    this.outgoing.delete(id);
    const uri = this.subscribing.get(id);
    if (uri !== undefined) {
      this.subscribing.delete(id);
      if (failed) {
        this.subscriptions.delete(uri);
      }
    }
  }

  /** Marks activity; an idle child gets a timer that stops it once the idle time is over. */
  private touch(): void {
    this.lastActive = performance.now();
    if (!this.idle) {
      return;
    }
    const timeout = this.supervisor.idleTimeoutMs;
    if (timeout > 0 && !this.idleTimer) {
      this.armIdleTimer(timeout);
    }
    this.supervisor.changed();
  }

  private armIdleTimer(delay: number): void {
    this.idleTimer = setTimeout(() => this.idleCheck(), Math.min(delay, MAX_DELAY_MS));
    this.idleTimer.unref();
  }

  private idleCheck(): void {
    this.idleTimer = undefined;
    if (!this.idle) {
      // Armed again when the work in flight is done (touch()).
      return;
    }
    const remaining = this.lastActive + this.supervisor.idleTimeoutMs - performance.now();
    if (remaining > 0) {
      this.armIdleTimer(remaining);
      return;
    }
    this.supervisor.stopIdle(this);
  }

  private clearIdleTimer(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }
}

/**
 * Supervises the children of one stdio backend (one per connection the source opens):
 * counts them in the gateway-wide bound, stops an on-demand backend's child after
 * idleTimeoutMs without work, and spaces starts after crashes by an exponential backoff
 * (restartInitialMs doubling up to restartMaxMs, reset after a child stayed up
 * BACKOFF_RESET_MS). An eager backend's child is started again after a crash, through the
 * source (attach()); an on-demand backend's next open() waits out the backoff instead, or
 * fails at once when that is longer than `maxWaitMs` (what a caller can wait).
 */
export class StdioSupervisor {
  private readonly logger = new Logger('UpstreamStdio');
  private readonly mine = new Set<StdioChild>();
  /** Transports closed by the supervisor itself (idle or evicted): no outage. */
  private readonly stoppedOnPurpose = new WeakSet<Transport>();
  private client?: ConnectorClient;
  private detached = false;
  private crashes = 0;
  private lastDelayMs = 0;
  /** performance.now() before which no child is started (backoff after a crash). */
  private notBefore = 0;
  private restartTimer?: NodeJS.Timeout;

  constructor(
    private readonly label: string,
    private readonly supervision: StdioSupervision,
    private readonly children: StdioChildren,
    private readonly spawn: () => StdioClientTransport,
    private readonly maxWaitMs: number,
  ) {}

  get onDemand(): boolean {
    return this.supervision.start === 'on-demand';
  }

  /** 0 = never stopped; eager children are never stopped when idle. */
  get idleTimeoutMs(): number {
    return this.onDemand ? this.supervision.idleTimeoutMs : 0;
  }

  /** Children of this backend admitted and not yet exited. */
  get liveChildren(): number {
    return this.mine.size;
  }

  /** The wait the latest crash imposed before the next start (0 before any crash). */
  get backoffMs(): number {
    return this.lastDelayMs;
  }

  attach(client: ConnectorClient): void {
    this.client = client;
  }

  /** Stops timers and every child of this backend. */
  detach(): void {
    this.detached = true;
    this.client = undefined;
    clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    for (const child of this.mine) {
      child.stop('closed');
    }
  }

  /** Tells the gateway's bound that one of this backend's children may make room. */
  changed(): void {
    this.children.changed();
  }

  /** Whether `transport` was closed by the supervisor (idle stop, eviction), not lost. */
  closedOnPurpose(transport: Transport): boolean {
    return this.stoppedOnPurpose.has(transport);
  }

  /** A new, unstarted transport whose child is counted in the bound and supervised. */
  async open(): Promise<Transport> {
    this.assertOpen();
    const wait = this.notBefore - performance.now();
    if (wait > 0) {
      if (wait > this.maxWaitMs) {
        const at = new Date(Date.now() + wait).toISOString();
        throw new StdioUnavailableError(
          `its process failed ${this.crashes} time(s) in a row; ` +
            `the next start is at ${at} (in ${Math.ceil(wait / 1000)} s)`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, wait).unref());
      this.assertOpen();
    }
    const child = new StdioChild(this);
    await this.children.admit(child, this.maxWaitMs);
    if (this.detached) {
      this.children.release(child);
      this.assertOpen();
    }
    this.mine.add(child);
    try {
      child.adopt(this.spawn());
    } catch (err) {
      child.stop('closed');
      throw err;
    }
    return child.transport as Transport;
  }

  stopIdle(child: StdioChild): void {
    if (child.transport) {
      this.stoppedOnPurpose.add(child.transport);
    }
    this.logger.log(
      `${this.label}: stopping its process after ${this.supervision.idleTimeoutMs} ms idle`,
    );
    child.stop('idle');
  }

  /** Called once per child when it is gone: a crash counts towards the backoff. */
  childEnded(child: StdioChild): void {
    this.mine.delete(child);
    this.children.release(child);
    if (child.stopReason === 'evicted' && child.transport) {
      this.stoppedOnPurpose.add(child.transport);
      this.logger.log(`${this.label}: stopped its idle process to make room for another backend`);
    }
    if (this.detached || child.stopReason !== undefined) {
      return;
    }
    // Closed by its user after it ran (e.g. a failed request): no crash. Closed before it
    // ever ran (a failed connect), or exited by itself: a crash.
    if (child.closeRequested && child.started) {
      return;
    }
    const upFor = child.started ? performance.now() - child.startedAt : 0;
    this.crashed(
      upFor,
      child.started ? 'its process exited unexpectedly' : 'its process did not start',
    );
  }

  private crashed(upFor: number, what: string): void {
    if (upFor >= BACKOFF_RESET_MS) {
      this.crashes = 0;
    }
    this.crashes += 1;
    const { restartInitialMs, restartMaxMs } = this.supervision;
    const delay = Math.min(restartMaxMs, restartInitialMs * 2 ** Math.min(this.crashes - 1, 30));
    this.lastDelayMs = delay;
    this.notBefore = performance.now() + delay;
    const next = this.onDemand ? 'next start' : 'restarting';
    this.logger.warn(`${this.label}: ${what} (${this.crashes} in a row); ${next} in ${delay} ms`);
    if (!this.onDemand) {
      this.scheduleRestart(delay);
    }
  }

  private scheduleRestart(delay: number): void {
    if (this.restartTimer || this.detached || !this.client) {
      return;
    }
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      const client = this.client;
      if (this.detached || !client) {
        return;
      }
      client.reconnect().catch((err: unknown) => {
        if (this.detached || this.restartTimer) {
          // Gone, or the crash that failed the restart has scheduled the next one.
          return;
        }
        this.crashed(0, `restarting failed: ${err instanceof Error ? err.message : String(err)}`);
      });
    }, delay);
    this.restartTimer.unref();
  }

  private assertOpen(): void {
    if (this.detached) {
      throw new StdioUnavailableError('the backend is closed');
    }
  }
}

/**
 * Watches an SDK stdio transport in place: its prototype stays the SDK's, so the client still
 * probes the protocol era on a throwaway sibling process (which it only does for the SDK's
 * own class), while every message sent and received, its start and its close reach `child`.
 * The SDK delivers messages and the exit through `onmessage`/`onclose`, which the client
 * chains when it connects; the accessors below put `child` first in every chain.
 */
function observe(transport: StdioClientTransport, child: StdioChild): void {
  const send = transport.send.bind(transport);
  transport.send = (message: JSONRPCMessage) => {
    child.sent(message);
    return send(message);
  };
  const start = transport.start.bind(transport);
  transport.start = async () => {
    child.beforeStart();
    try {
      await start();
    } catch (err) {
      child.end();
      throw err;
    }
    child.afterStart();
  };
  const close = transport.close.bind(transport);
  // The SDK forgets its process on the first close(): later callers (the source closing its
  // client after the supervisor stopped the child) wait for the same escalation.
  let closing: Promise<void> | undefined;
  transport.close = () => {
    closing ??= (async () => {
      child.beforeClose();
      await close();
      if (!child.started) {
        // Never spawned (or never got to run): nothing will report an exit.
        child.end();
      }
    })();
    return closing;
  };
  let onmessage = transport.onmessage;
  Object.defineProperty(transport, 'onmessage', {
    configurable: true,
    enumerable: true,
    get: () => {
      const handler = onmessage;
      return (message: JSONRPCMessage) => {
        child.received(message);
        handler?.(message);
      };
    },
    set: (handler: StdioClientTransport['onmessage']) => {
      onmessage = handler;
    },
  });
  let onclose = transport.onclose;
  Object.defineProperty(transport, 'onclose', {
    configurable: true,
    enumerable: true,
    get: () => {
      const handler = onclose;
      return () => {
        child.end();
        handler?.();
      };
    },
    set: (handler: StdioClientTransport['onclose']) => {
      onclose = handler;
    },
  });
}

import { randomBytes } from 'node:crypto';
import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { ConfigService } from '@portico/config';
import { GatewayMetrics } from '@portico/observability';
import {
  JsonRpcRequest,
  JsonRpcResponse,
  LegacySession,
  McpEngine,
  Principal,
  SessionInfo,
} from '@portico/mcp-protocol';
import {
  EVENT_STORE,
  EventStore,
  MESSAGE_BUS,
  MessageBus,
  SESSION_STORE,
  SessionStore,
} from '@portico/session';
import type { SessionStream } from './session-stream';

/** A 2025-era session as this node holds it: the protocol state plus its open streams. */
export class LiveSession {
  readonly streams = new Map<string, SessionStream>();
  standalone?: SessionStream;
  private nextStream = 1;
  private unsubscribeBus?: () => Promise<void>;

  constructor(readonly session: LegacySession) {}

  get id(): string {
    return this.session.id;
  }

  newStreamId(): string {
    return `${this.session.id}.${this.nextStream++}`;
  }

  get standaloneStreamId(): string {
    return `${this.session.id}.0`;
  }

  setBusSubscription(unsubscribe: () => Promise<void>): void {
    this.unsubscribeBus = unsubscribe;
  }

  /** Every stream id this session has used, for cleaning the event store. */
  streamIds(): string[] {
    return Array.from({ length: this.nextStream }, (_, i) => `${this.session.id}.${i}`);
  }

  async dispose(events?: EventStore): Promise<void> {
    this.session.close();
    for (const stream of this.streams.values()) {
      stream.close();
    }
    this.standalone?.close();
    await this.unsubscribeBus?.();
    // Events are kept for resumption only while the session lives.
    if (events) {
      await Promise.all(this.streamIds().map((id) => events.deleteStream(id)));
    }
  }
}

export class SessionLimitError extends Error {}

const RESPONSES_CHANNEL = (id: string): string => `mcp:session:${id}:responses`;

/**
 * Creates, finds and expires 2025-era sessions. Session facts are saved to the SessionStore so
 * another node can take a session over; a client's answer to a server-to-client request that
 * lands on a node without the waiting request travels over the MessageBus.
 */
@Injectable()
export class SessionRegistry implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(SessionRegistry.name);
  private readonly live = new Map<string, LiveSession>();
  private sweeper?: NodeJS.Timeout;
  private readonly idleMs: number;
  private readonly maxSessions: number;

  constructor(
    private readonly engine: McpEngine,
    @Inject(SESSION_STORE) private readonly store: SessionStore,
    @Inject(MESSAGE_BUS) private readonly bus: MessageBus,
    @Inject(EVENT_STORE) private readonly events: EventStore,
    config: ConfigService,
    metrics: GatewayMetrics,
  ) {
    this.idleMs = config.values.mcp.sessionIdleTimeoutMs;
    this.maxSessions = config.values.mcp.maxSessions;
    metrics.trackSessions('streamable-http', () => this.live.size);
  }

  onModuleInit(): void {
    this.sweeper = setInterval(
      () => void this.sweep(),
      Math.min(60_000, Math.max(1000, this.idleMs / 2)),
    );
    this.sweeper.unref();
  }

  async onModuleDestroy(): Promise<void> {
    if (this.sweeper) {
      clearInterval(this.sweeper);
    }
    await Promise.all([...this.live.values()].map((live) => live.dispose(this.events)));
    this.live.clear();
  }

  get size(): number {
    return this.live.size;
  }

  /**
   * Graceful shutdown: ends the sessions' standalone GET streams (they only wait for
   * notifications), so clients reconnect through the load balancer. Sessions stay: their
   * in-flight requests still answer on their own response streams.
   */
  endStandaloneStreams(): void {
    for (const live of this.live.values()) {
      live.standalone?.close();
    }
  }

  /** Runs `initialize`; throws McpError for a bad request, SessionLimitError when full. */
  async create(
    request: JsonRpcRequest,
    principal?: Principal,
  ): Promise<{ live: LiveSession; result: JsonRpcResponse }> {
    if ((await this.store.count()) >= this.maxSessions) {
      throw new SessionLimitError('Too many sessions');
    }
    const id = randomBytes(24).toString('base64url');
    const { session, result } = this.engine.initialize(request, id, principal);
    const live = await this.attach(session);
    await this.persist(live);
    return { live, result: { jsonrpc: '2.0', id: request.id, result } };
  }

  /** The live session for an id, taken over from the store when another node created it. */
  async find(id: string): Promise<LiveSession | undefined> {
    const local = this.live.get(id);
    if (local) {
      if (local.session.closed) {
        return undefined;
      }
      return local;
    }
    const info = await this.store.get(id);
    return info ? this.attach(restore(info)) : undefined;
  }

  async persist(live: LiveSession): Promise<void> {
    await this.store.save(live.session.toInfo(), this.idleMs);
  }

  async touch(live: LiveSession): Promise<void> {
    live.session.lastActivity = Date.now();
    await this.store.touch(live.id, this.idleMs);
  }

  /** Routes a client's response to whichever node waits for it. */
  async deliverResponse(live: LiveSession, response: JsonRpcResponse): Promise<void> {
    if (!live.session.resolveResponse(response)) {
      await this.bus.publish(RESPONSES_CHANNEL(live.id), response);
    }
  }

  /**
   * The open sessions of one tenant that this node holds (the admin API's view; sessions
   * parked in the store by other nodes are not listed).
   */
  listByTenant(tenantId: string): LiveSession[] {
    return [...this.live.values()].filter(
      (live) => !live.session.closed && live.session.principal?.tenant === tenantId,
    );
  }

  /** The open session with this id on this node, if it belongs to `tenantId`. */
  findForTenant(id: string, tenantId: string): LiveSession | undefined {
    const live = this.live.get(id);
    return live && !live.session.closed && live.session.principal?.tenant === tenantId
      ? live
      : undefined;
  }

  async terminate(id: string): Promise<boolean> {
    const live = this.live.get(id);
    const known = live !== undefined || (await this.store.get(id)) !== undefined;
    this.live.delete(id);
    await this.store.delete(id);
    await live?.dispose(this.events);
    return known;
  }

  private async attach(session: LegacySession): Promise<LiveSession> {
    const existing = this.live.get(session.id);
    if (existing) {
      return existing;
    }
    const live = new LiveSession(session);
    this.live.set(session.id, live);
    this.engine.watchSession(session);
    live.setBusSubscription(
      await this.bus.subscribe(RESPONSES_CHANNEL(session.id), (message) => {
        session.resolveResponse(message as JsonRpcResponse);
      }),
    );
    return live;
  }

  private async sweep(): Promise<void> {
    const now = Date.now();
    for (const live of [...this.live.values()]) {
      const idle = now - live.session.lastActivity > this.idleMs;
      const busy = live.session.inFlightCount > 0 || live.streams.size > 0;
      if (idle && !busy) {
        this.logger.debug(`Session ${live.id} expired after ${this.idleMs} ms idle`);
        await this.terminate(live.id);
      }
    }
  }
}

function restore(info: SessionInfo): LegacySession {
  const session = new LegacySession(info);
  session.initialized = info.initialized;
  for (const uri of info.subscriptions) {
    session.subscriptions.add(uri);
  }
  return session;
}

import { Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { GatewayMetrics } from '@portico/observability';
import { TenantService } from '@portico/tenancy';
import { SessionRegistry } from '../mcp/session-registry.service';
import {
  buildModel,
  DashboardFrame,
  DashboardModel,
  frameFor,
  readSnapshot,
  Snapshot,
  ViewerScope,
} from './dashboard-model';

export const SAMPLE_INTERVAL_MS = 1_000;
/** Rates and percentiles cover this much history. */
export const WINDOW_MS = 10_000;
/** Dashboard streams one node serves at once. */
export const MAX_DASHBOARD_STREAMS = 16;
/** How long a tenant slug's id is trusted (slugs of live tenants do not change). */
const TENANT_ID_CACHE_MS = 60_000;

/** A viewer of the stream: its scope, and the tenant id when it is a tenant's view. */
export interface Subscriber {
  readonly scope: ViewerScope;
  readonly tenantId?: string;
  send(frame: DashboardFrame): void;
  /** The node is stopping: end the stream. */
  end(): void;
}

/**
 * Samples the gateway's Prometheus registry once a second while at least one dashboard
 * stream is open, keeps the last WINDOW_MS of snapshots, and hands each subscriber the frame
 * its scope allows. Nothing runs while nobody watches.
 */
@Injectable()
export class DashboardSampler implements OnModuleDestroy {
  private readonly logger = new Logger(DashboardSampler.name);
  private readonly subscribers = new Set<Subscriber>();
  private readonly snapshots: Snapshot[] = [];
  private readonly tenantIds = new Map<string, { id: string | null; until: number }>();
  private timer?: NodeJS.Timeout;
  private sampling = false;
  private last?: DashboardModel;

  constructor(
    private readonly metrics: GatewayMetrics,
    private readonly sessions: SessionRegistry,
    private readonly tenants: TenantService,
  ) {}

  get size(): number {
    return this.subscribers.size;
  }

  /** Whether the sampling timer runs (only while someone watches). */
  get running(): boolean {
    return this.timer !== undefined;
  }

  /** Adds a viewer; the returned function removes it (idempotent). */
  subscribe(subscriber: Subscriber): () => void {
    this.subscribers.add(subscriber);
    if (!this.timer) {
      this.timer = setInterval(() => void this.tick(), SAMPLE_INTERVAL_MS);
      this.timer.unref();
      void this.tick();
    } else if (this.last) {
      // A newcomer need not wait for the next tick.
      void this.deliver(this.last, [subscriber]);
    }
    return () => this.unsubscribe(subscriber);
  }

  onModuleDestroy(): void {
    for (const subscriber of [...this.subscribers]) {
      subscriber.end();
      this.unsubscribe(subscriber);
    }
  }

  private unsubscribe(subscriber: Subscriber): void {
    if (!this.subscribers.delete(subscriber) || this.subscribers.size > 0) {
      return;
    }
    clearInterval(this.timer);
    this.timer = undefined;
    // Stale history would make the next viewer's first rates wrong.
    this.snapshots.length = 0;
    this.last = undefined;
  }

  private async tick(): Promise<void> {
    if (this.sampling) {
      return;
    }
    this.sampling = true;
    try {
      const head = await readSnapshot(this.metrics.registry, Date.now());
      if (!this.timer) {
        return;
      }
      this.snapshots.push(head);
      // Keep the newest snapshot at or before the window's start as the base.
      while (this.snapshots.length > 2 && this.snapshots[1].at <= head.at - WINDOW_MS) {
        this.snapshots.shift();
      }
      const base = this.snapshots.length > 1 ? this.snapshots[0] : undefined;
      this.last = buildModel(head, base);
      await this.deliver(this.last, [...this.subscribers]);
    } catch (err) {
      this.logger.error({ err }, 'Dashboard sample failed');
    } finally {
      this.sampling = false;
    }
  }

  private async deliver(model: DashboardModel, to: readonly Subscriber[]): Promise<void> {
    const counts = await this.sessionCounts(model, to);
    for (const subscriber of to) {
      if (this.subscribers.has(subscriber)) {
        subscriber.send(frameFor(model, subscriber.scope, (slug) => counts.get(slug) ?? null));
      }
    }
  }

  /** Open sessions per tenant slug, for the rows the subscribers will see. */
  private async sessionCounts(
    model: DashboardModel,
    to: readonly Subscriber[],
  ): Promise<Map<string, number>> {
    const ids = new Map<string, string | null>();
    let everyTenant = false;
    for (const { scope, tenantId } of to) {
      if (scope.tenant === null) {
        everyTenant = true;
      } else {
        ids.set(scope.tenant, tenantId ?? (await this.tenantId(scope.tenant)));
      }
    }
    if (everyTenant) {
      for (const { tenant } of model.tenants) {
        if (!ids.has(tenant)) {
          ids.set(tenant, await this.tenantId(tenant));
        }
      }
    }
    const counts = new Map<string, number>();
    for (const [slug, id] of ids) {
      if (id !== null) {
        counts.set(slug, this.sessions.listByTenant(id).length);
      }
    }
    return counts;
  }

  private async tenantId(slug: string): Promise<string | null> {
    const now = Date.now();
    const cached = this.tenantIds.get(slug);
    if (cached && cached.until > now) {
      return cached.id;
    }
    const tenant = await this.tenants.bySlug(slug);
    if (this.tenantIds.size > 10_000) {
      this.tenantIds.clear();
    }
    this.tenantIds.set(slug, { id: tenant?.id ?? null, until: now + TENANT_ID_CACHE_MS });
    return tenant?.id ?? null;
  }
}

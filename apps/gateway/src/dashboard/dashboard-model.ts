import type { Registry } from 'prom-client';
import {
  BREAKER_STATE_VALUES,
  BreakerState,
  METRIC_NAMES,
  QueueJobState,
  WorkerJobOutcome,
} from '@portico/observability';

/** Every metric a snapshot reads. */
export const DASHBOARD_METRICS: readonly string[] = [
  METRIC_NAMES.mcpRequests,
  METRIC_NAMES.mcpRequestDuration,
  METRIC_NAMES.toolCalls,
  METRIC_NAMES.toolCallDuration,
  METRIC_NAMES.authFailures,
  METRIC_NAMES.rateLimited,
  METRIC_NAMES.sessionsActive,
  METRIC_NAMES.streamsOpen,
  METRIC_NAMES.backendRequestDuration,
  METRIC_NAMES.backendUp,
  METRIC_NAMES.backendCircuitState,
  METRIC_NAMES.queueJobs,
  METRIC_NAMES.queueWait,
  METRIC_NAMES.queueRun,
  METRIC_NAMES.workerJobs,
];

/** Rows per table in one frame; the rest are counted in `omitted`. */
export const MAX_ROWS = 100;

/** Latencies of long-lived streams measure how long a client listened, not how fast we are. */
const STREAM_METHODS = new Set(['get', 'subscriptions/listen']);
/** Worker outcomes that count as failures (a cancelled job was given up by its client). */
const FAILED_JOBS: ReadonlySet<WorkerJobOutcome> = new Set(['failed', 'timed_out']);
const CIRCUIT_BY_VALUE = new Map(
  Object.entries(BREAKER_STATE_VALUES).map(([state, value]) => [value, state as BreakerState]),
);

export type Labels = Readonly<Record<string, string | number>>;

/** One sample as prom-client reports it (`metricName` tells a histogram's parts apart). */
export interface Sample {
  readonly labels: Labels;
  readonly value: number;
  readonly metricName?: string;
}

/** The registry at one instant: samples by metric name (names not registered are absent). */
export interface Snapshot {
  readonly at: number;
  readonly metrics: ReadonlyMap<string, readonly Sample[]>;
}

export interface GatewayStats {
  /** Null until two snapshots exist. */
  requestsPerSecond: number | null;
  /** Requests received since this node started. */
  requests: number;
  /** Share of the window's requests that failed in protocol work (outcome `error`). */
  errorRate: number | null;
  /** Share refused before protocol work (credentials, quotas, malformed HTTP). */
  rejectedRate: number | null;
  /** Seconds; long-lived streams excluded. Null without requests in the window. */
  p50: number | null;
  p99: number | null;
  sessions: Record<string, number>;
  streams: number;
  authFailuresPerSecond: number | null;
  rateLimitedPerSecond: number | null;
}

export interface TenantStats {
  tenant: string;
  callsPerSecond: number | null;
  /** Tool calls finished inside the window. */
  windowCalls: number;
  windowErrors: number;
  /** Tool calls finished since this node started. */
  calls: number;
  errors: number;
  errorRate: number | null;
  p50: number | null;
  p99: number | null;
  /** Open Streamable HTTP sessions of the tenant on this node; null when unknown. */
  sessions: number | null;
}

export interface BackendStats {
  tenant: string;
  backend: string;
  up: boolean | null;
  circuit: BreakerState | null;
  /** Request attempts, refused ones (never sent upstream) included. */
  requestsPerSecond: number | null;
  /** Share of attempts that failed or were refused. */
  errorRate: number | null;
  /** Of the requests that reached the upstream. */
  p99: number | null;
}

export interface QueueStats {
  queue: string;
  /** Jobs by state as last read from Redis; empty when the counts could not be read. */
  jobs: Partial<Record<QueueJobState, number>>;
  waitP99: number | null;
  runP99: number | null;
  processedPerSecond: number | null;
  failedPerSecond: number | null;
}

/** Everything the node knows, for every tenant; frames are cut from it per viewer. */
export interface DashboardModel {
  at: number;
  /** Seconds between the two snapshots compared; 0 for the first one. */
  windowSeconds: number;
  gateway: GatewayStats;
  tenants: TenantStats[];
  backends: BackendStats[];
  queues: QueueStats[];
}

/** What one viewer may see: every tenant, or exactly one. */
export interface ViewerScope {
  /** The tenant's slug, or null for a platform view of every tenant. */
  readonly tenant: string | null;
  /** Gateway-wide figures (all tenants mixed) are for platform administrators only. */
  readonly platform: boolean;
}

/** One SSE frame of /dashboard/stream. */
export interface DashboardFrame {
  at: number;
  windowSeconds: number;
  scope: { tenant: string | null; platform: boolean };
  gateway: GatewayStats | null;
  tenants: TenantStats[];
  backends: BackendStats[];
  /** Null in a tenant's view: queues are shared by every tenant. */
  queues: QueueStats[] | null;
  omitted: { tenants: number; backends: number };
}

/** Reads every dashboard metric registered in `registry` (collect callbacks run). */
export async function readSnapshot(registry: Registry, at: number): Promise<Snapshot> {
  const metrics = new Map<string, Sample[]>();
  await Promise.all(
    DASHBOARD_METRICS.map(async (name) => {
      const metric = registry.getSingleMetric(name);
      if (metric) {
        const { values } = await metric.get();
        metrics.set(
          name,
          values.map((value) => ({
            labels: value.labels as Labels,
            value: value.value,
            metricName: (value as { metricName?: string }).metricName,
          })),
        );
      }
    }),
  );
  return { at, metrics };
}

function seriesKey(sample: Sample): string {
  const labels = Object.keys(sample.labels)
    .sort()
    .map((name) => `${name}=${String(sample.labels[name])}`);
  return `${sample.metricName ?? ''}|${labels.join(',')}`;
}

function samplesOf(snapshot: Snapshot, name: string): readonly Sample[] {
  return snapshot.metrics.get(name) ?? [];
}

/**
 * How much each cumulative series grew from `base` to `head`. A series born in between
 * counts from zero; one that went down was reset, so all of its value is new.
 */
export function deltas(head: Snapshot, base: Snapshot | undefined, name: string): Sample[] {
  const before = new Map<string, number>();
  if (base) {
    for (const sample of samplesOf(base, name)) {
      before.set(seriesKey(sample), sample.value);
    }
  }
  return samplesOf(head, name).map((sample) => {
    const previous = before.get(seriesKey(sample)) ?? 0;
    const value = sample.value >= previous ? sample.value - previous : sample.value;
    return { labels: sample.labels, value, metricName: sample.metricName };
  });
}

type Filter = (labels: Labels) => boolean;
const everything: Filter = () => true;

function sum(samples: readonly Sample[], filter: Filter = everything, part?: string): number {
  let total = 0;
  for (const sample of samples) {
    if ((part === undefined || sample.metricName?.endsWith(part)) && filter(sample.labels)) {
      total += sample.value;
    }
  }
  return total;
}

function groupKeys(samples: readonly Sample[], ...labels: string[]): string[][] {
  const seen = new Map<string, string[]>();
  for (const sample of samples) {
    const values = labels.map((label) => sample.labels[label]);
    if (values.every((value) => value !== undefined)) {
      const key = values.map(String);
      seen.set(JSON.stringify(key), key);
    }
  }
  return [...seen.values()];
}

/**
 * The q-quantile of the observations counted in histogram bucket samples, summed over every
 * series `filter` accepts, interpolated linearly inside the bucket as Prometheus'
 * histogram_quantile does. Null when no observation was counted.
 */
export function quantile(
  q: number,
  samples: readonly Sample[],
  filter: Filter = everything,
): number | null {
  const buckets = new Map<number, number>();
  for (const sample of samples) {
    if (!sample.metricName?.endsWith('_bucket') || !filter(sample.labels)) {
      continue;
    }
    const le = sample.labels.le;
    const bound = le === '+Inf' ? Infinity : Number(le);
    if (Number.isNaN(bound)) {
      continue;
    }
    buckets.set(bound, (buckets.get(bound) ?? 0) + sample.value);
  }
  const sorted = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
  const total = sorted.length > 0 ? sorted[sorted.length - 1][1] : 0;
  if (total <= 0) {
    return null;
  }
  const rank = q * total;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [bound, count] of sorted) {
    if (count >= rank && count > lowerCount) {
      if (bound === Infinity) {
        // Beyond the last finite bucket nothing is known but that lower edge.
        return lowerBound;
      }
      return lowerBound + ((bound - lowerBound) * (rank - lowerCount)) / (count - lowerCount);
    }
    lowerBound = bound;
    lowerCount = count;
  }
  return lowerBound;
}

function ratio(part: number, whole: number): number | null {
  return whole > 0 ? part / whole : null;
}

function circuitOf(value: number | undefined): BreakerState | null {
  return value === undefined ? null : (CIRCUIT_BY_VALUE.get(value) ?? null);
}

/** Builds the model from the newest snapshot and the one at the start of the window. */
export function buildModel(head: Snapshot, base: Snapshot | undefined): DashboardModel {
  const seconds = base ? (head.at - base.at) / 1000 : 0;
  const perSecond = (count: number): number | null => (seconds > 0 ? count / seconds : null);
  return {
    at: head.at,
    windowSeconds: seconds,
    gateway: gatewayStats(head, base, perSecond),
    tenants: tenantStats(head, base, perSecond),
    backends: backendStats(head, base, perSecond),
    queues: queueStats(head, base, perSecond),
  };
}

type PerSecond = (count: number) => number | null;

function gatewayStats(
  head: Snapshot,
  base: Snapshot | undefined,
  perSecond: PerSecond,
): GatewayStats {
  const requests = deltas(head, base, METRIC_NAMES.mcpRequests);
  const windowRequests = sum(requests);
  const durations = deltas(head, base, METRIC_NAMES.mcpRequestDuration);
  const answered: Filter = (labels) => !STREAM_METHODS.has(String(labels.method));
  const sessions: Record<string, number> = {};
  for (const sample of samplesOf(head, METRIC_NAMES.sessionsActive)) {
    const transport = String(sample.labels.transport);
    sessions[transport] = (sessions[transport] ?? 0) + sample.value;
  }
  return {
    requestsPerSecond: perSecond(windowRequests),
    requests: sum(samplesOf(head, METRIC_NAMES.mcpRequests)),
    errorRate: base
      ? ratio(
          sum(requests, (l) => l.outcome === 'error'),
          windowRequests,
        )
      : null,
    rejectedRate: base
      ? ratio(
          sum(requests, (l) => l.outcome === 'rejected'),
          windowRequests,
        )
      : null,
    p50: base ? quantile(0.5, durations, answered) : null,
    p99: base ? quantile(0.99, durations, answered) : null,
    sessions,
    streams: sum(samplesOf(head, METRIC_NAMES.streamsOpen)),
    authFailuresPerSecond: perSecond(sum(deltas(head, base, METRIC_NAMES.authFailures))),
    rateLimitedPerSecond: perSecond(sum(deltas(head, base, METRIC_NAMES.rateLimited))),
  };
}

function tenantStats(
  head: Snapshot,
  base: Snapshot | undefined,
  perSecond: PerSecond,
): TenantStats[] {
  const totals = samplesOf(head, METRIC_NAMES.toolCalls);
  const window = deltas(head, base, METRIC_NAMES.toolCalls);
  const durations = deltas(head, base, METRIC_NAMES.toolCallDuration);
  return groupKeys(totals, 'tenant').map(([tenant]) => {
    const mine: Filter = (labels) => labels.tenant === tenant;
    const failed: Filter = (labels) => labels.tenant === tenant && labels.outcome === 'error';
    const windowCalls = sum(window, mine);
    const windowErrors = sum(window, failed);
    return {
      tenant,
      callsPerSecond: perSecond(windowCalls),
      windowCalls,
      windowErrors,
      calls: sum(totals, mine),
      errors: sum(totals, failed),
      errorRate: base ? ratio(windowErrors, windowCalls) : null,
      p50: base ? quantile(0.5, durations, mine) : null,
      p99: base ? quantile(0.99, durations, mine) : null,
      sessions: null,
    };
  });
}

function backendStats(
  head: Snapshot,
  base: Snapshot | undefined,
  perSecond: PerSecond,
): BackendStats[] {
  const up = samplesOf(head, METRIC_NAMES.backendUp);
  const circuit = samplesOf(head, METRIC_NAMES.backendCircuitState);
  const durations = deltas(head, base, METRIC_NAMES.backendRequestDuration);
  const latest = samplesOf(head, METRIC_NAMES.backendRequestDuration);
  const keys = new Map<string, [string, string]>();
  for (const source of [up, circuit, latest]) {
    for (const [tenant, backend] of groupKeys(source, 'tenant', 'backend')) {
      keys.set(JSON.stringify([tenant, backend]), [tenant, backend]);
    }
  }
  return [...keys.values()].map(([tenant, backend]) => {
    const mine: Filter = (labels) => labels.tenant === tenant && labels.backend === backend;
    const upSample = up.find((sample) => mine(sample.labels));
    const circuitSample = circuit.find((sample) => mine(sample.labels));
    const calls = sum(durations, mine, '_count');
    return {
      tenant,
      backend,
      up: upSample ? upSample.value >= 1 : null,
      circuit: circuitOf(circuitSample?.value),
      requestsPerSecond: perSecond(calls),
      errorRate: base
        ? ratio(
            sum(durations, (labels) => mine(labels) && labels.outcome !== 'success', '_count'),
            calls,
          )
        : null,
      // Refused requests never reached the upstream (observed as 0 s).
      p99: base
        ? quantile(0.99, durations, (labels) => mine(labels) && labels.outcome !== 'refused')
        : null,
    };
  });
}

function queueStats(
  head: Snapshot,
  base: Snapshot | undefined,
  perSecond: PerSecond,
): QueueStats[] {
  const jobs = samplesOf(head, METRIC_NAMES.queueJobs);
  const worked = deltas(head, base, METRIC_NAMES.workerJobs);
  const waits = deltas(head, base, METRIC_NAMES.queueWait);
  const runs = deltas(head, base, METRIC_NAMES.queueRun);
  const names = new Set<string>();
  for (const source of [jobs, samplesOf(head, METRIC_NAMES.workerJobs), waits, runs]) {
    for (const [queue] of groupKeys(source, 'queue')) {
      names.add(queue);
    }
  }
  return [...names].sort().map((queue) => {
    const mine: Filter = (labels) => labels.queue === queue;
    const states: Partial<Record<QueueJobState, number>> = {};
    for (const sample of jobs) {
      if (mine(sample.labels) && sample.labels.state !== undefined) {
        const state = String(sample.labels.state) as QueueJobState;
        states[state] = (states[state] ?? 0) + sample.value;
      }
    }
    return {
      queue,
      jobs: states,
      waitP99: base ? quantile(0.99, waits, mine) : null,
      runP99: base ? quantile(0.99, runs, mine) : null,
      processedPerSecond: perSecond(sum(worked, mine)),
      failedPerSecond: perSecond(
        sum(
          worked,
          (labels) => mine(labels) && FAILED_JOBS.has(labels.outcome as WorkerJobOutcome),
        ),
      ),
    };
  });
}

function emptyTenant(tenant: string): TenantStats {
  return {
    tenant,
    callsPerSecond: null,
    windowCalls: 0,
    windowErrors: 0,
    calls: 0,
    errors: 0,
    errorRate: null,
    p50: null,
    p99: null,
    sessions: null,
  };
}

/** Busiest first (window, then lifetime), then by name: the order tables show. */
function byActivity(a: TenantStats, b: TenantStats): number {
  return b.windowCalls - a.windowCalls || b.calls - a.calls || a.tenant.localeCompare(b.tenant);
}

/**
 * The frame one viewer receives: a tenant's view holds its own rows and nothing that mixes in
 * other tenants (no gateway totals, no shared queues); `sessions` fills the tenant rows.
 */
export function frameFor(
  model: DashboardModel,
  scope: ViewerScope,
  sessions: (tenant: string) => number | null,
): DashboardFrame {
  const { tenant } = scope;
  let tenants: TenantStats[];
  let backends: BackendStats[];
  if (tenant === null) {
    tenants = [...model.tenants].sort(byActivity);
    backends = model.backends.slice();
  } else {
    tenants = [model.tenants.find((row) => row.tenant === tenant) ?? emptyTenant(tenant)];
    backends = model.backends.filter((row) => row.tenant === tenant);
  }
  backends.sort((a, b) => a.tenant.localeCompare(b.tenant) || a.backend.localeCompare(b.backend));
  const shownTenants = tenants
    .slice(0, MAX_ROWS)
    .map((row) => ({ ...row, sessions: sessions(row.tenant) }));
  return {
    at: model.at,
    windowSeconds: model.windowSeconds,
    scope: { tenant, platform: scope.platform },
    gateway: scope.platform ? model.gateway : null,
    tenants: shownTenants,
    backends: backends.slice(0, MAX_ROWS),
    queues: scope.platform ? model.queues : null,
    omitted: {
      tenants: Math.max(0, tenants.length - MAX_ROWS),
      backends: Math.max(0, backends.length - MAX_ROWS),
    },
  };
}

import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The transports MCP traffic arrives on. */
export type McpTransport = 'streamable-http' | 'sse' | 'websocket' | 'stdio';
/** `rejected`: refused before or instead of protocol work (4xx, quota, credentials). */
export type McpOutcome = 'ok' | 'error' | 'rejected';
export type ToolOutcome = 'success' | 'error';
export type AuthFailureReason = 'missing' | 'invalid' | 'forbidden' | 'scope';
/** `refused`: never sent upstream (circuit open, bulkhead full, target refused, backend closed). */
export type BackendOutcome = 'success' | 'error' | 'refused';
export type BreakerState = 'closed' | 'half-open' | 'open';
export type QueueJobState = 'waiting' | 'active' | 'delayed' | 'failed' | 'prioritized';
export type WorkerJobOutcome = 'completed' | 'failed' | 'cancelled' | 'timed_out';

/** Every metric Portico defines: the names are declared here and nowhere else. */
export const METRIC_NAMES = {
  mcpRequests: 'portico_mcp_requests_total',
  mcpRequestDuration: 'portico_mcp_request_duration_seconds',
  toolCalls: 'portico_tool_calls_total',
  toolCallDuration: 'portico_tool_call_duration_seconds',
  authFailures: 'portico_auth_failures_total',
  rateLimited: 'portico_rate_limited_total',
  sessionsActive: 'portico_sessions_active',
  streamsOpen: 'portico_streams_open',
  backendRequestDuration: 'portico_backend_request_duration_seconds',
  backendUp: 'portico_backend_up',
  backendCircuitState: 'portico_backend_circuit_state',
  backendReplicaUp: 'portico_backend_replica_up',
  queueJobs: 'portico_queue_jobs',
  queueWait: 'portico_queue_wait_seconds',
  queueRun: 'portico_queue_run_seconds',
  workerJobs: 'portico_worker_jobs_total',
} as const;

export const BACKEND_OUTCOMES: readonly BackendOutcome[] = ['success', 'error', 'refused'];
/** The value portico_backend_circuit_state takes in each breaker state. */
export const BREAKER_STATE_VALUES: Readonly<Record<BreakerState, number>> = {
  closed: 0,
  'half-open': 1,
  open: 2,
};
export const QUEUE_JOB_STATES: readonly QueueJobState[] = [
  'waiting',
  'active',
  'delayed',
  'failed',
  'prioritized',
];
export const WORKER_JOB_OUTCOMES: readonly WorkerJobOutcome[] = [
  'completed',
  'failed',
  'cancelled',
  'timed_out',
];

/** How long a scrape waits for a queue's job counts before leaving them out. */
export const DEFAULT_COLLECT_TIMEOUT_MS = 1000;

/** The label value standing in for every value beyond a label's bound. */
export const OTHER_LABEL = 'other';

/**
 * Method label values: the MCP methods of every supported revision, plus names for HTTP
 * requests that carry no method. A client choosing method names must not be able to create
 * series, so anything else is `other`.
 */
export const MCP_METHOD_LABELS: ReadonlySet<string> = new Set([
  'initialize',
  'ping',
  'logging/setLevel',
  'server/discover',
  'subscriptions/listen',
  'tools/list',
  'tools/call',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'resources/subscribe',
  'resources/unsubscribe',
  'prompts/list',
  'prompts/get',
  'completion/complete',
  'notifications/initialized',
  'notifications/cancelled',
  'notifications/progress',
  'notifications/roots/list_changed',
  // Not methods: what a POST, GET or DELETE carried instead of a request.
  'response',
  'batch',
  'invalid',
  'get',
  'delete',
]);

// Tool calls and MCP requests range from sub-millisecond list calls to long tool runs.
const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export interface GatewayMetricsOptions {
  /** Distinct tool label values per tenant; further tools are counted as `other`. */
  readonly maxToolLabels: number;
  /** Bound on reading job counts at scrape time (default DEFAULT_COLLECT_TIMEOUT_MS). */
  readonly collectTimeoutMs?: number;
}

/** Reads a queue's job counts by state (from Redis): called at scrape time. */
export type QueueCountsReader = () => Promise<Partial<Record<QueueJobState, number>>>;

/**
 * The series of one upstream backend, held by its connection. Only the newest handle of a
 * tenant's backend writes (a replaced connection may still be closing), and once removed a
 * handle writes nothing, so a closed backend leaves no stale series.
 */
export interface BackendMetrics {
  /** One request attempt and the time it spent in the upstream (0 when refused). */
  request(outcome: BackendOutcome, seconds: number): void;
  /** The result of the last transport-level contact (a JSON-RPC error answer is a contact). */
  contact(ok: boolean): void;
  /** The circuit breaker moved to `state`. */
  circuit(state: BreakerState): void;
  /** Removes the backend's series (when it is closed or dropped from the catalog). */
  remove(): void;
}

/**
 * The series of a backend served by several replicas (settings.replicas). The backend's own
 * series keep their meaning: requests of every replica add up, the backend is up while some
 * replica is reachable with its circuit not open, and its circuit reads the least open of the
 * replicas' circuits. Each replica also has a health gauge, labelled by its index (0 is the
 * target) rather than its URL: bounded by the backend's settings, and a URL may carry secrets.
 */
export interface ReplicatedBackendMetrics {
  /** The handle replica `index` writes the backend's series through. */
  replica(index: number): BackendMetrics;
  /** Whether replica `index` is in rotation (portico_backend_replica_up). */
  health(index: number, up: boolean): void;
  /** Removes the backend's series and its replicas' (when the backend is closed). */
  remove(): void;
}

/** The series of the worker consuming one queue on this node. */
export interface QueueWorkerMetrics {
  /** A job started: `waitSeconds` from its enqueueing until now. */
  jobStarted(waitSeconds: number): void;
  jobFinished(outcome: WorkerJobOutcome, runSeconds: number): void;
}

interface Series {
  readonly count: Counter.Internal;
  readonly duration: Histogram.Internal<string>;
}

interface MethodSeries {
  /** The method, or `other` for a method outside MCP_METHOD_LABELS. */
  readonly label: string;
  readonly outcomes: Map<McpOutcome, Series>;
}

/** The counter and histogram children of one tool, per outcome. */
type ToolSeries = Record<ToolOutcome, Series>;

interface TenantTools {
  readonly byTool: Map<string, ToolSeries>;
  other?: ToolSeries;
}

/**
 * Owns every Portico metric, in one registry per application instance (several gateways in
 * one process, as in the e2e suites, must not share series). The methods are on hot paths:
 * label children are created once and cached, and label values are bounded here so no caller
 * can make the series count grow with client input.
 */
export class GatewayMetrics {
  private readonly requests: Counter<'transport' | 'method' | 'outcome'>;
  private readonly requestDuration: Histogram<'transport' | 'method' | 'outcome'>;
  private readonly toolCalls: Counter<'tenant' | 'tool' | 'outcome'>;
  private readonly toolCallDuration: Histogram<'tenant' | 'tool' | 'outcome'>;
  private readonly authFailures: Counter<'reason'>;
  private readonly rateLimits: Counter<'limit'>;
  private readonly streams: Gauge<'transport'>;
  private readonly sessionCounts = new Map<McpTransport, () => number>();

  private readonly requestSeries = new Map<McpTransport, Map<string, MethodSeries>>();
  private readonly toolSeries = new Map<string, TenantTools>();
  private readonly authSeries = new Map<AuthFailureReason, Counter.Internal>();
  private readonly rateSeries = new Map<string, Counter.Internal>();
  private readonly streamSeries = new Map<McpTransport, Gauge.Internal<string>>();
  private readonly maxToolLabels: number;

  private readonly backendDuration: Histogram<'tenant' | 'backend' | 'outcome'>;
  private readonly backendUp: Gauge<'tenant' | 'backend'>;
  private readonly backendCircuit: Gauge<'tenant' | 'backend'>;
  private readonly backendReplicaUp: Gauge<'tenant' | 'backend' | 'replica'>;
  /** How many replica gauges each replicated backend's owner wrote, to remove them on takeover. */
  private readonly backendReplicas = new Map<string, number>();
  /** The handle currently writing each backend's series, by tenant and backend. */
  private readonly backendOwners = new Map<string, BackendSeries>();
  private readonly queueCounts = new Map<string, QueueCountsReader>();
  private readonly queueWait: Histogram<'queue'>;
  private readonly queueRun: Histogram<'queue' | 'outcome'>;
  private readonly workerJobs: Counter<'queue' | 'outcome'>;
  private readonly workers = new Map<string, QueueWorkerMetrics>();

  constructor(
    readonly registry: Registry,
    options: GatewayMetricsOptions,
  ) {
    this.maxToolLabels = options.maxToolLabels;
    const registers = [registry];
    this.requests = new Counter({
      name: METRIC_NAMES.mcpRequests,
      help: 'MCP requests and messages received, by transport, method and outcome.',
      labelNames: ['transport', 'method', 'outcome'],
      registers,
    });
    this.requestDuration = new Histogram({
      name: METRIC_NAMES.mcpRequestDuration,
      help: 'Time to answer an MCP request (HTTP: until the response or its stream ended).',
      labelNames: ['transport', 'method', 'outcome'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.toolCalls = new Counter({
      name: METRIC_NAMES.toolCalls,
      help: 'Finished tools/call, by tenant slug, tool (bounded per tenant) and outcome.',
      labelNames: ['tenant', 'tool', 'outcome'],
      registers,
    });
    this.toolCallDuration = new Histogram({
      name: METRIC_NAMES.toolCallDuration,
      help: 'Duration of tools/call handlers, by tenant slug, tool and outcome.',
      labelNames: ['tenant', 'tool', 'outcome'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.authFailures = new Counter({
      name: METRIC_NAMES.authFailures,
      help: 'Requests refused for credentials: missing, invalid, forbidden or lacking a scope.',
      labelNames: ['reason'],
      registers,
    });
    this.rateLimits = new Counter({
      name: METRIC_NAMES.rateLimited,
      help: 'Requests refused by a quota, by the limit that refused them.',
      labelNames: ['limit'],
      registers,
    });
    const sessionCounts = this.sessionCounts;
    new Gauge({
      name: METRIC_NAMES.sessionsActive,
      help: 'Open MCP sessions and connections on this node, by transport.',
      labelNames: ['transport'],
      registers,
      // Read at scrape time from the transports, which already hold the count.
      collect() {
        for (const [transport, count] of sessionCounts) {
          this.set({ transport }, count());
        }
      },
    });
    this.streams = new Gauge({
      name: METRIC_NAMES.streamsOpen,
      help: 'Open SSE response streams on this node, by transport.',
      labelNames: ['transport'],
      registers,
    });
    this.backendDuration = new Histogram({
      name: METRIC_NAMES.backendRequestDuration,
      help:
        'Time upstream backend requests spent in the upstream, by tenant slug, backend and ' +
        'outcome (refused: never sent, observed as 0).',
      labelNames: ['tenant', 'backend', 'outcome'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.backendUp = new Gauge({
      name: METRIC_NAMES.backendUp,
      help: '1 while the last contact with the backend succeeded and its circuit is not open.',
      labelNames: ['tenant', 'backend'],
      registers,
    });
    this.backendCircuit = new Gauge({
      name: METRIC_NAMES.backendCircuitState,
      help: 'Circuit breaker of the backend: 0 closed, 1 half-open, 2 open.',
      labelNames: ['tenant', 'backend'],
      registers,
    });
    this.backendReplicaUp = new Gauge({
      name: METRIC_NAMES.backendReplicaUp,
      help:
        '1 while the replica (0: the target, then settings.replicas in order) of a replicated ' +
        'backend is in rotation, 0 while its health checks or calls find it down.',
      labelNames: ['tenant', 'backend', 'replica'],
      registers,
    });
    const queueCounts = this.queueCounts;
    const collectTimeoutMs = options.collectTimeoutMs ?? DEFAULT_COLLECT_TIMEOUT_MS;
    new Gauge({
      name: METRIC_NAMES.queueJobs,
      help: 'Jobs in the queue by state, read from Redis at scrape time (absent when unreadable).',
      labelNames: ['queue', 'state'],
      registers,
      async collect() {
        // Counts that cannot be read in time are left out rather than repeated stale.
        const read = await Promise.all(
          [...queueCounts].map(async ([queue, counts]) => ({
            queue,
            counts: await settledWithin(counts, collectTimeoutMs),
          })),
        );
        this.reset();
        for (const { queue, counts } of read) {
          if (counts) {
            for (const state of QUEUE_JOB_STATES) {
              this.set({ queue, state }, counts[state] ?? 0);
            }
          }
        }
      },
    });
    this.queueWait = new Histogram({
      name: METRIC_NAMES.queueWait,
      help: 'Time from enqueueing a job until a worker on this node started it.',
      labelNames: ['queue'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.queueRun = new Histogram({
      name: METRIC_NAMES.queueRun,
      help: 'Time the worker on this node spent running a job, by outcome.',
      labelNames: ['queue', 'outcome'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.workerJobs = new Counter({
      name: METRIC_NAMES.workerJobs,
      help: 'Jobs the worker on this node finished: completed, failed, cancelled or timed_out.',
      labelNames: ['queue', 'outcome'],
      registers,
    });
  }

  /** One MCP request (HTTP) or received message (SSE, WebSocket, stdio). */
  mcpRequest(transport: McpTransport, method: string, outcome: McpOutcome, seconds: number): void {
    let byMethod = this.requestSeries.get(transport);
    if (!byMethod) {
      byMethod = new Map();
      this.requestSeries.set(transport, byMethod);
    }
    let methodSeries = byMethod.get(method);
    if (!methodSeries) {
      // Unknown methods share the `other` entry rather than growing this map.
      const label = MCP_METHOD_LABELS.has(method) ? method : OTHER_LABEL;
      methodSeries = byMethod.get(label) ?? { label, outcomes: new Map() };
      byMethod.set(label, methodSeries);
    }
    let series = methodSeries.outcomes.get(outcome);
    if (!series) {
      const labels = { transport, method: methodSeries.label, outcome };
      series = {
        count: this.requests.labels(labels),
        duration: this.requestDuration.labels(labels),
      };
      methodSeries.outcomes.set(outcome, series);
    }
    series.count.inc();
    series.duration.observe(seconds);
  }

  /**
   * One finished tools/call. `tenant` is the tenant slug or `anonymous`; the first
   * METRICS_MAX_TOOL_LABELS distinct tools of a tenant get their own label, later ones `other`.
   */
  toolCall(tenant: string, tool: string, outcome: ToolOutcome, seconds: number): void {
    let tools = this.toolSeries.get(tenant);
    if (!tools) {
      tools = { byTool: new Map() };
      this.toolSeries.set(tenant, tools);
    }
    let series = tools.byTool.get(tool);
    if (!series) {
      if (tools.byTool.size < this.maxToolLabels) {
        series = this.newToolSeries(tenant, tool);
        tools.byTool.set(tool, series);
      } else {
        series = tools.other ??= this.newToolSeries(tenant, OTHER_LABEL);
      }
    }
    const child = series[outcome];
    child.count.inc();
    child.duration.observe(seconds);
  }

  authFailure(reason: AuthFailureReason): void {
    let child = this.authSeries.get(reason);
    if (!child) {
      child = this.authFailures.labels({ reason });
      this.authSeries.set(reason, child);
    }
    child.inc();
  }

  /** A request refused by a quota; `limit` names it (`tenant-rate`, `key-rate`, `sessions`…). */
  rateLimited(limit: string): void {
    let child = this.rateSeries.get(limit);
    if (!child) {
      child = this.rateLimits.labels({ limit });
      this.rateSeries.set(limit, child);
    }
    child.inc();
  }

  /** Registers where the number of open sessions of a transport is read at scrape time. */
  trackSessions(transport: McpTransport, count: () => number): void {
    this.sessionCounts.set(transport, count);
  }

  /** Counts an open stream until the returned function is called (at most once counts). */
  streamOpened(transport: McpTransport): () => void {
    let child = this.streamSeries.get(transport);
    if (!child) {
      child = this.streams.labels({ transport });
      this.streamSeries.set(transport, child);
    }
    child.inc();
    let open = true;
    const gauge = child;
    return () => {
      if (open) {
        open = false;
        gauge.dec();
      }
    };
  }

  /**
   * The series of an upstream backend of a tenant (tenant slug, backend name: both set by
   * administrators). The new handle takes the series over from an older one still closing.
   */
  backend(tenant: string, backend: string): BackendMetrics {
    const key = `${tenant}\u0000${backend}`;
    const labels = { tenant, backend };
    this.removeReplicaSeries(key, labels);
    const taken = this.backendOwners.has(key);
    const durations = new Map<BackendOutcome, Histogram.Internal<string>>();
    for (const outcome of BACKEND_OUTCOMES) {
      if (!taken) {
        // Every outcome from the start, so an error ratio reads 0 before the first error.
        this.backendDuration.zero({ ...labels, outcome });
      }
      durations.set(outcome, this.backendDuration.labels({ ...labels, outcome }));
    }
    const series: BackendSeries = new BackendSeries(
      durations,
      this.backendUp.labels(labels),
      this.backendCircuit.labels(labels),
      () => this.backendOwners.get(key) === series,
      () => {
        this.backendOwners.delete(key);
        for (const outcome of BACKEND_OUTCOMES) {
          this.backendDuration.remove({ ...labels, outcome });
        }
        this.backendUp.remove(labels);
        this.backendCircuit.remove(labels);
      },
    );
    this.backendOwners.set(key, series);
    series.publish();
    return series;
  }

  /**
   * The series of a backend served by `replicas` replicas (the target counts as one), every
   * replica's health gauge created at 0 until its first health verdict. Takes the series over
   * like backend().
   */
  replicatedBackend(tenant: string, backend: string, replicas: number): ReplicatedBackendMetrics {
    const key = `${tenant}\u0000${backend}`;
    const series = this.backend(tenant, backend) as BackendSeries;
    const gauges = Array.from({ length: replicas }, (_, index) =>
      this.backendReplicaUp.labels({ tenant, backend, replica: String(index) }),
    );
    this.backendReplicas.set(key, replicas);
    const owns = () => this.backendOwners.get(key) === series;
    for (const gauge of gauges) {
      gauge.set(0);
    }
    return new ReplicatedSeries(series, gauges, owns, () => {
      if (owns()) {
        this.removeReplicaSeries(key, { tenant, backend });
      }
      series.remove();
    });
  }

  /**
   * Registers where a queue's job counts are read at scrape time. A read that fails or takes
   * longer than the collect timeout leaves that queue's counts out of the scrape.
   */
  trackQueue(queue: string, counts: QueueCountsReader): void {
    this.queueCounts.set(queue, counts);
  }

  /** The series of a worker consuming `queue` on this node, every outcome created at 0. */
  trackWorker(queue: string): QueueWorkerMetrics {
    let worker = this.workers.get(queue);
    if (!worker) {
      const wait = this.queueWait.labels({ queue });
      this.queueWait.zero({ queue });
      const outcomes = new Map<WorkerJobOutcome, Series>();
      for (const outcome of WORKER_JOB_OUTCOMES) {
        const labels = { queue, outcome };
        const count = this.workerJobs.labels(labels);
        count.inc(0);
        this.queueRun.zero(labels);
        outcomes.set(outcome, { count, duration: this.queueRun.labels(labels) });
      }
      worker = {
        jobStarted: (waitSeconds) => wait.observe(Math.max(0, waitSeconds)),
        jobFinished: (outcome, runSeconds) => {
          const series = outcomes.get(outcome)!;
          series.count.inc();
          series.duration.observe(Math.max(0, runSeconds));
        },
      };
      this.workers.set(queue, worker);
    }
    return worker;
  }

  /** Removes the replica gauges a former owner of a backend's series wrote. */
  private removeReplicaSeries(key: string, labels: { tenant: string; backend: string }): void {
    const replicas = this.backendReplicas.get(key);
    if (replicas === undefined) {
      return;
    }
    this.backendReplicas.delete(key);
    for (let index = 0; index < replicas; index++) {
      this.backendReplicaUp.remove({ ...labels, replica: String(index) });
    }
  }

  private newToolSeries(tenant: string, tool: string): ToolSeries {
    const series = (outcome: ToolOutcome): Series => {
      const labels = { tenant, tool, outcome };
      const count = this.toolCalls.labels(labels);
      count.inc(0);
      return { count, duration: this.toolCallDuration.labels(labels) };
    };
    // Both outcomes from the start: an error rate reads 0, not "no data", before the first error.
    return { success: series('success'), error: series('error') };
  }
}

class BackendSeries implements BackendMetrics {
  private removed = false;
  private reachable = false;
  private state: BreakerState = 'closed';

  constructor(
    private readonly durations: ReadonlyMap<BackendOutcome, Histogram.Internal<string>>,
    private readonly up: Gauge.Internal<string>,
    private readonly circuitState: Gauge.Internal<string>,
    private readonly owns: () => boolean,
    private readonly release: () => void,
  ) {}

  request(outcome: BackendOutcome, seconds: number): void {
    if (this.writes()) {
      this.durations.get(outcome)!.observe(Math.max(0, seconds));
    }
  }

  contact(ok: boolean): void {
    // Every request reports its contact: the gauges are written only when something changed.
    if (ok !== this.reachable) {
      this.reachable = ok;
      this.publish();
    }
  }

  circuit(state: BreakerState): void {
    if (state !== this.state) {
      this.state = state;
      this.publish();
    }
  }

  remove(): void {
    if (this.writes()) {
      this.release();
    }
    this.removed = true;
  }

  /** Writes both gauges from this handle's view of the backend. */
  publish(): void {
    if (this.writes()) {
      this.circuitState.set(BREAKER_STATE_VALUES[this.state]);
      this.up.set(this.reachable && this.state !== 'open' ? 1 : 0);
    }
  }

  private writes(): boolean {
    return !this.removed && this.owns();
  }
}

/** One replica's view of the backend: its reachability and circuit, as its connection reports. */
class ReplicaState {
  reachable = false;
  state: BreakerState = 'closed';
}

class ReplicatedSeries implements ReplicatedBackendMetrics {
  private readonly states: ReplicaState[];
  private removed = false;

  constructor(
    private readonly series: BackendSeries,
    private readonly gauges: readonly Gauge.Internal<string>[],
    private readonly owns: () => boolean,
    private readonly release: () => void,
  ) {
    this.states = gauges.map(() => new ReplicaState());
  }

  replica(index: number): BackendMetrics {
    // A replica's connection may be rebuilt (a replica that was down at first): each handle
    // starts from "not reached yet", and only the newest one of a replica writes.
    const state = new ReplicaState();
    this.states[index] = state;
    const current = () => !this.removed && this.states[index] === state;
    return {
      request: (outcome, seconds) => {
        if (current()) {
          this.series.request(outcome, seconds);
        }
      },
      contact: (ok) => {
        if (current() && ok !== state.reachable) {
          state.reachable = ok;
          this.publish();
        }
      },
      circuit: (circuitState) => {
        if (current() && circuitState !== state.state) {
          state.state = circuitState;
          this.publish();
        }
      },
      remove: () => {
        if (current()) {
          this.states[index] = new ReplicaState();
          this.publish();
        }
      },
    };
  }

  health(index: number, up: boolean): void {
    if (!this.removed && this.owns()) {
      this.gauges[index]?.set(up ? 1 : 0);
    }
  }

  remove(): void {
    if (!this.removed) {
      this.removed = true;
      this.release();
    }
  }

  private publish(): void {
    const open = (s: ReplicaState) => s.state === 'open';
    const best = this.states.some((s) => s.state === 'closed')
      ? 'closed'
      : this.states.some((s) => s.state === 'half-open')
        ? 'half-open'
        : 'open';
    this.series.contact(this.states.some((s) => s.reachable && !open(s)));
    this.series.circuit(best);
  }
}

/** `read()`'s value, or undefined when it rejects or has not settled within `ms`. */
async function settledWithin<T>(read: () => Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      read(),
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), ms);
      }),
    ]);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The method label of a decoded JSON-RPC message: its method (GatewayMetrics bounds it),
 * `response` for a client's answer, `batch` for an array, `invalid` for anything else.
 */
export function mcpMethodOf(message: unknown): string {
  if (typeof message !== 'object' || message === null) {
    return 'invalid';
  }
  if (Array.isArray(message)) {
    return 'batch';
  }
  const { method } = message as { method?: unknown };
  if (typeof method === 'string') {
    return method;
  }
  return 'result' in message || 'error' in message ? 'response' : 'invalid';
}

import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The transports MCP traffic arrives on. */
export type McpTransport = 'streamable-http' | 'sse' | 'websocket' | 'stdio';
/** `rejected`: refused before or instead of protocol work (4xx, quota, credentials). */
export type McpOutcome = 'ok' | 'error' | 'rejected';
export type ToolOutcome = 'success' | 'error';
export type AuthFailureReason = 'missing' | 'invalid' | 'forbidden' | 'scope';

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
} as const;

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

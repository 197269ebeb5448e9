import type { BackendEntity } from '@portico/persistence';

/** How calls are spread over a backend's replicas. */
export type LoadBalancing = 'round-robin' | 'least-in-flight';
export const LOAD_BALANCING: readonly LoadBalancing[] = ['round-robin', 'least-in-flight'];

/**
 * Which upstream session serves a 2025-era client session: one of its own (`per-client`:
 * the upstream's session state, roots and logs stay that client's) or the backend's pooled one.
 */
export type UpstreamSessionMode = 'per-client' | 'pooled';
export const UPSTREAM_SESSION_MODES: readonly UpstreamSessionMode[] = ['per-client', 'pooled'];

/** The periodic probe of each replica of a replicated backend. */
export interface HealthCheckSettings {
  readonly intervalMs: number;
  /** A probe that has not answered by then failed. */
  readonly timeoutMs: number;
  /** Consecutive failed probes that take a replica out of rotation. */
  readonly unhealthyAfter: number;
  /** Consecutive good probes that bring it back. */
  readonly healthyAfter: number;
}

/** backend.settings of an upstream MCP backend, with defaults applied. */
export interface UpstreamSettings {
  readonly prefix: string;
  readonly separator: string;
  /** Per-request budget; on expiry the upstream request is aborted. */
  readonly timeoutMs: number;
  /** Consecutive failures that open the circuit. */
  readonly breakerThreshold: number;
  /** How long an open circuit waits before letting one trial request through. */
  readonly breakerResetMs: number;
  readonly maxConcurrent: number;
  /** Calls waiting for a slot beyond maxConcurrent; more are refused at once. */
  readonly maxQueued: number;
  /** Allows private, loopback and link-local targets (SSRF guard off). */
  readonly internal: boolean;
  /**
   * More instances of the same service besides the target (same kind and credentials): for
   * URL kinds further targets, for `openapi` further base URLs of the API. Empty: one target,
   * served exactly as without replication.
   */
  readonly replicas: readonly string[];
  readonly loadBalancing: LoadBalancing;
  readonly healthCheck: HealthCheckSettings;
  /**
   * 2026-07-28 requests are stateless and always use the pooled session. Default
   * `per-client` (`pooled` for an eagerly started stdio backend, see defaultSessionMode).
   */
  readonly sessions: UpstreamSessionMode;
  /** Per-client upstream sessions at once; client sessions beyond share the pooled one. */
  readonly maxClientSessions: number;
}

export const UPSTREAM_DEFAULTS = {
  separator: '__',
  timeoutMs: 30_000,
  breakerThreshold: 5,
  breakerResetMs: 10_000,
  maxConcurrent: 64,
  maxQueued: 0,
  replicas: [],
  loadBalancing: 'round-robin',
  sessions: 'per-client',
  maxClientSessions: 64,
  healthCheck: { intervalMs: 10_000, timeoutMs: 2_000, unhealthyAfter: 2, healthyAfter: 1 },
} as const;

/** A whole number of at least `min` in `raw[key]`, else `fallback`. */
export function countSetting(
  raw: Readonly<Record<string, unknown>>,
  key: string,
  fallback: number,
  min: number,
): number {
  const value = raw[key];
  return typeof value === 'number' && Number.isFinite(value) && value >= min
    ? Math.floor(value)
    : fallback;
}

export function upstreamSettings(backend: BackendEntity): UpstreamSettings {
  const raw = backend.settings ?? {};
  const text = (key: string, fallback: string): string => {
    const value = raw[key];
    return typeof value === 'string' ? value : fallback;
  };
  const count = (key: string, fallback: number, min: number): number =>
    countSetting(raw, key, fallback, min);
  return {
    prefix: text('prefix', backend.name),
    separator: text('separator', UPSTREAM_DEFAULTS.separator),
    timeoutMs: count('timeoutMs', UPSTREAM_DEFAULTS.timeoutMs, 1),
    breakerThreshold: count('breakerThreshold', UPSTREAM_DEFAULTS.breakerThreshold, 1),
    breakerResetMs: count('breakerResetMs', UPSTREAM_DEFAULTS.breakerResetMs, 1),
    maxConcurrent: count('maxConcurrent', UPSTREAM_DEFAULTS.maxConcurrent, 1),
    maxQueued: count('maxQueued', UPSTREAM_DEFAULTS.maxQueued, 0),
    internal: raw.internal === true,
    replicas: Array.isArray(raw.replicas)
      ? raw.replicas.filter((r): r is string => typeof r === 'string' && r !== '')
      : [],
    loadBalancing: LOAD_BALANCING.includes(raw.loadBalancing as LoadBalancing)
      ? (raw.loadBalancing as LoadBalancing)
      : UPSTREAM_DEFAULTS.loadBalancing,
    healthCheck: healthCheckSettings(raw.healthCheck),
    sessions: UPSTREAM_SESSION_MODES.includes(raw.sessions as UpstreamSessionMode)
      ? (raw.sessions as UpstreamSessionMode)
      : defaultSessionMode(backend),
    maxClientSessions: count('maxClientSessions', UPSTREAM_DEFAULTS.maxClientSessions, 0),
  };
}

/**
 * `per-client`, except for an eagerly started stdio backend: its children are never stopped
 * when idle nor given up for another backend's, so one per client session would hold places
 * of the gateway's bound on stdio children for as long as the sessions live.
 */
function defaultSessionMode(backend: BackendEntity): UpstreamSessionMode {
  const eager = backend.kind === 'mcp-stdio' && backend.settings?.start === 'eager';
  return eager ? 'pooled' : UPSTREAM_DEFAULTS.sessions;
}

function healthCheckSettings(value: unknown): HealthCheckSettings {
  const raw = typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
  const defaults = UPSTREAM_DEFAULTS.healthCheck;
  return {
    intervalMs: countSetting(raw, 'intervalMs', defaults.intervalMs, 1),
    timeoutMs: countSetting(raw, 'timeoutMs', defaults.timeoutMs, 1),
    unhealthyAfter: countSetting(raw, 'unhealthyAfter', defaults.unhealthyAfter, 1),
    healthyAfter: countSetting(raw, 'healthyAfter', defaults.healthyAfter, 1),
  };
}

import type { BackendEntity } from '@portico/persistence';

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
}

export const UPSTREAM_DEFAULTS = {
  separator: '__',
  timeoutMs: 30_000,
  breakerThreshold: 5,
  breakerResetMs: 10_000,
  maxConcurrent: 64,
  maxQueued: 0,
} as const;

export function upstreamSettings(backend: BackendEntity): UpstreamSettings {
  const raw = backend.settings ?? {};
  const text = (key: string, fallback: string): string => {
    const value = raw[key];
    return typeof value === 'string' ? value : fallback;
  };
  const count = (key: string, fallback: number, min: number): number => {
    const value = raw[key];
    return typeof value === 'number' && Number.isFinite(value) && value >= min
      ? Math.floor(value)
      : fallback;
  };
  return {
    prefix: text('prefix', backend.name),
    separator: text('separator', UPSTREAM_DEFAULTS.separator),
    timeoutMs: count('timeoutMs', UPSTREAM_DEFAULTS.timeoutMs, 1),
    breakerThreshold: count('breakerThreshold', UPSTREAM_DEFAULTS.breakerThreshold, 1),
    breakerResetMs: count('breakerResetMs', UPSTREAM_DEFAULTS.breakerResetMs, 1),
    maxConcurrent: count('maxConcurrent', UPSTREAM_DEFAULTS.maxConcurrent, 1),
    maxQueued: count('maxQueued', UPSTREAM_DEFAULTS.maxQueued, 0),
    internal: raw.internal === true,
  };
}

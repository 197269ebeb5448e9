import type { TextMapGetter, TextMapSetter } from '@opentelemetry/api';

/**
 * The W3C trace context keys MCP carries in a request's `params._meta` (SEP-414: unprefixed
 * `traceparent`, `tracestate`, `baggage`), next to the same keys as HTTP headers.
 */
export const TRACE_META_KEYS = ['traceparent', 'tracestate', 'baggage'] as const;

type Carrier = Record<string, unknown>;

/**
 * Reads a carrier whose values are client input: only string values count, anything else is
 * as if absent (a malformed traceparent is ignored by the propagator, never an error).
 */
export const carrierGetter: TextMapGetter<Carrier> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => {
    const value = carrier[key];
    if (typeof value === 'string') {
      return value;
    }
    // HTTP headers repeated: the first.
    return Array.isArray(value) && typeof value[0] === 'string' ? value[0] : undefined;
  },
};

export const carrierSetter: TextMapSetter<Record<string, string>> = {
  set: (carrier, key, value) => {
    carrier[key] = value;
  },
};

/** Whether a `_meta` object (or header set) carries a trace context at all. */
export function hasTraceContext(carrier: Carrier | undefined): carrier is Carrier {
  return carrier !== undefined && typeof carrier.traceparent === 'string';
}

import { SpanKind, type Attributes } from '@opentelemetry/api';
import { McpError } from '@portico/mcp-protocol';
import { failSpan, SpanAttr, type Tracing } from '@portico/observability';

const SECURE = ['https:', 'wss:'];

/** Who a traced upstream request goes to, for the span's attributes. */
export interface UpstreamPeer {
  readonly tenant: string;
  readonly backend: string;
  /** Absent for a peer without an address (a stdio child process). */
  readonly url?: URL;
}

/**
 * A CLIENT span around one upstream request when `tracing` is given; `send` gets the trace
 * context to put in the request's `_meta` (SEP-414), and an HTTP request made through
 * `tracedFetch` inside it carries the context as `traceparent`. A tool result with
 * `isError` marks the span failed too.
 */
export function traceUpstream<T>(
  tracing: Tracing | undefined,
  peer: UpstreamPeer,
  method: string,
  target: string,
  send: (meta?: Record<string, string>) => Promise<T>,
  attributes: Attributes = {},
): Promise<T> {
  const parent = tracing?.current();
  if (!tracing || !parent) {
    return send();
  }
  const span = tracing.start(
    `${method} ${target}`.slice(0, 160),
    {
      kind: SpanKind.CLIENT,
      attributes: {
        [SpanAttr.mcpMethod]: method,
        [SpanAttr.backend]: peer.backend,
        [SpanAttr.tenant]: peer.tenant,
        ...(peer.url && {
          'server.address': peer.url.hostname,
          'server.port': Number(peer.url.port || (SECURE.includes(peer.url.protocol) ? 443 : 80)),
        }),
        ...(method === 'tools/call' && { [SpanAttr.toolName]: target }),
        ...attributes,
      },
    },
    parent,
  );
  return tracing
    .within(span, () => send(tracing.inject({})))
    .then(
      (result) => {
        if ((result as { isError?: unknown }).isError === true) {
          failSpan(span, 'tool_error', 'tool_error');
        }
        span.end();
        return result;
      },
      (err: unknown) => {
        failSpan(span, err, err instanceof McpError ? String(err.code) : undefined);
        span.end();
        throw err;
      },
    );
}

/**
 * fetch that adds the active trace context (`traceparent`, `tracestate`) as headers: requests
 * made inside a traced call continue its trace at the upstream's HTTP layer too.
 */
export function tracedFetch(tracing: Tracing, base: typeof fetch = fetch): typeof fetch {
  return (input, init) => {
    const carrier = tracing.inject({});
    if (Object.keys(carrier).length === 0) {
      return base(input, init);
    }
    const headers = new Headers(init?.headers);
    for (const [name, value] of Object.entries(carrier)) {
      headers.set(name, value);
    }
    return base(input, { ...init, headers });
  };
}

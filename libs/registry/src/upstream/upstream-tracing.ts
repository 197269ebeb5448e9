import { SpanKind, type Attributes, type Span } from '@opentelemetry/api';
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
 * A CLIENT span around one upstream request when `tracing` is on and `trace` (the caller's
 * RequestContext.trace) is sampled; `send` gets the trace context to put in the request's
 * `_meta` (SEP-414) or headers, and the span. A tool result with `isError` marks the span
 * failed too.
 */
export function traceUpstream<T>(
  tracing: Tracing | undefined,
  peer: UpstreamPeer,
  method: string,
  target: string,
  trace: unknown,
  send: (meta?: Record<string, string>, span?: Span) => Promise<T>,
  attributes: Attributes = {},
): Promise<T> {
  const parent = tracing?.parent(trace);
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
  return send(tracing.inject({}, tracing.under(span, parent)), span).then(
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

const TRACEPARENT = /^"traceparent":"([\da-f]{2}-[\da-f]{32}-[\da-f]{16}-[\da-f]{2})"/;
const TRACESTATE = /"tracestate":"([\x21-\x7e ]{1,512}?)"/;

/**
 * fetch for an upstream MCP server's HTTP transport: a JSON-RPC request whose `_meta` carries
 * a trace context (put there by `traceUpstream`) also carries it as `traceparent` and
 * `tracestate` headers, so the upstream's HTTP layer continues the trace. The context is read
 * from the body because the SDK client makes the request: nothing else reaches this fetch.
 * `_meta` is serialised after the arguments, so the last occurrence is the gateway's.
 */
export function tracedFetch(base: typeof fetch = fetch): typeof fetch {
  return (input, init) => {
    const body = init?.body;
    const at = typeof body === 'string' ? body.lastIndexOf('"traceparent":"') : -1;
    if (at < 0) {
      return base(input, init);
    }
    const text = body as string;
    const parent = TRACEPARENT.exec(text.slice(at, at + 72));
    if (!parent) {
      return base(input, init);
    }
    const headers = new Headers(init?.headers);
    headers.set('traceparent', parent[1]);
    const state = TRACESTATE.exec(text.slice(at));
    if (state) {
      headers.set('tracestate', state[1]);
    }
    return base(input, { ...init, headers });
  };
}

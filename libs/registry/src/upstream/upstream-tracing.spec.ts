import { ROOT_CONTEXT, SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { Tracing } from '@portico/observability';
import { traceUpstream, tracedFetch } from './upstream-tracing';

const PARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
const OTHER = '00-11111111111111111111111111111111-2222222222222222-01';

function capture(): { fetch: typeof fetch; headers: () => Headers } {
  let seen: RequestInit | undefined;
  return {
    fetch: (_input, init) => {
      seen = init;
      return Promise.resolve(new Response('{}'));
    },
    headers: () => new Headers(seen?.headers),
  };
}

describe('tracedFetch', () => {
  const body = (params: object) =>
    JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params });

  it('copies the trace context of the request _meta into traceparent/tracestate headers', async () => {
    const base = capture();
    await tracedFetch(base.fetch)('http://upstream/mcp', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: body({ name: 't', arguments: {}, _meta: { traceparent: PARENT, tracestate: 'a=1' } }),
    });
    expect(base.headers().get('traceparent')).toBe(PARENT);
    expect(base.headers().get('tracestate')).toBe('a=1');
    expect(base.headers().get('content-type')).toBe('application/json');
  });

  it("takes the gateway's _meta, not a traceparent a client put in the arguments", async () => {
    const base = capture();
    await tracedFetch(base.fetch)('http://upstream/mcp', {
      method: 'POST',
      body: body({ name: 't', arguments: { traceparent: OTHER }, _meta: { traceparent: PARENT } }),
    });
    expect(base.headers().get('traceparent')).toBe(PARENT);
  });

  it.each([
    ['no trace context', body({ name: 't', arguments: {} })],
    ['a malformed traceparent', body({ name: 't', _meta: { traceparent: '00-zz-1-01' } })],
  ])('leaves a request with %s alone', async (_name, payload) => {
    const base = capture();
    await tracedFetch(base.fetch)('http://upstream/mcp', { method: 'POST', body: payload });
    expect(base.headers().has('traceparent')).toBe(false);
  });
});

describe('traceUpstream', () => {
  const exporter = new InMemorySpanExporter();
  const tracing = new Tracing({
    enabled: true,
    protocol: 'http/json',
    serviceName: 'spec',
    serviceVersion: '0',
    exporter,
  });
  const peer = { tenant: 'acme', backend: 'crm', url: new URL('http://crm.internal:8080/mcp') };

  afterAll(() => tracing.shutdown());

  it('starts a CLIENT span under the explicit parent and hands send its context', async () => {
    const parentSpan = tracing.start('parent', {});
    const parent = tracing.under(parentSpan, ROOT_CONTEXT);
    let meta: Record<string, string> | undefined;
    const result = await traceUpstream(tracing, peer, 'tools/call', 'lookup', parent, (m) => {
      meta = m;
      return Promise.resolve({ isError: true });
    });
    parentSpan.end();
    await tracing.flush();
    const span = exporter.getFinishedSpans().find((s) => s.name === 'tools/call lookup')!;
    expect(result).toEqual({ isError: true });
    expect(span.kind).toBe(SpanKind.CLIENT);
    expect(span.parentSpanContext?.spanId).toBe(parentSpan.spanContext().spanId);
    expect(span.attributes).toMatchObject({ 'server.port': 8080, 'portico.backend': 'crm' });
    expect(span.status.message).toBe('tool_error');
    // The carrier names the CLIENT span: the upstream continues under it.
    expect(meta?.traceparent).toBe(
      `00-${span.spanContext().traceId}-${span.spanContext().spanId}-01`,
    );
  });

  it('starts nothing without a parent context (untraced request)', async () => {
    exporter.reset();
    let meta: Record<string, string> | undefined = { marker: 'x' };
    await traceUpstream(tracing, peer, 'tools/call', 'lookup', undefined, (m) => {
      meta = m;
      return Promise.resolve({});
    });
    await tracing.flush();
    expect(meta).toBeUndefined();
    expect(exporter.getFinishedSpans()).toEqual([]);
  });
});

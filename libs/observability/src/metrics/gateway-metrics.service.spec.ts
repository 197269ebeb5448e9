import { Registry } from 'prom-client';
import { GatewayMetrics, mcpMethodOf } from './gateway-metrics.service';

/** `name{labels} value` lines of the registry's exposition, comments left out. */
async function lines(registry: Registry, name: string): Promise<string[]> {
  const text = await registry.metrics();
  return text.split('\n').filter((line) => line.startsWith(`${name}{`));
}

describe(GatewayMetrics.name, () => {
  let registry: Registry;
  let sut: GatewayMetrics;

  beforeEach(() => {
    registry = new Registry();
    sut = new GatewayMetrics(registry, { maxToolLabels: 2 });
  });

  it('labels known MCP methods as themselves and anything else as "other"', async () => {
    sut.mcpRequest('websocket', 'tools/call', 'ok', 0.01);
    sut.mcpRequest('websocket', 'evil/method-1', 'ok', 0.01);
    sut.mcpRequest('websocket', 'evil/method-2', 'ok', 0.01);
    sut.mcpRequest('websocket', 'other', 'ok', 0.01);

    expect(await lines(registry, 'portico_mcp_requests_total')).toEqual([
      'portico_mcp_requests_total{transport="websocket",method="tools/call",outcome="ok"} 1',
      'portico_mcp_requests_total{transport="websocket",method="other",outcome="ok"} 3',
    ]);
  });

  it('keeps transports and outcomes apart, with a duration sample per request', async () => {
    sut.mcpRequest('streamable-http', 'ping', 'ok', 0.002);
    sut.mcpRequest('sse', 'ping', 'rejected', 0.002);
    sut.mcpRequest('sse', 'ping', 'rejected', 0.2);

    expect(await lines(registry, 'portico_mcp_request_duration_seconds_count')).toEqual([
      'portico_mcp_request_duration_seconds_count{transport="streamable-http",method="ping",outcome="ok"} 1',
      'portico_mcp_request_duration_seconds_count{transport="sse",method="ping",outcome="rejected"} 2',
    ]);
  });

  it('caps distinct tool labels per tenant; the tools beyond the cap count as "other"', async () => {
    sut.toolCall('acme', 'a', 'success', 0.1);
    sut.toolCall('acme', 'b', 'success', 0.1);
    sut.toolCall('acme', 'c', 'success', 0.1);
    sut.toolCall('acme', 'd', 'error', 0.1);
    sut.toolCall('acme', 'a', 'success', 0.1);
    // Another tenant has its own budget.
    sut.toolCall('globex', 'c', 'success', 0.1);

    const series = await lines(registry, 'portico_tool_calls_total');
    expect(series).toEqual([
      'portico_tool_calls_total{tenant="acme",tool="a",outcome="success"} 2',
      'portico_tool_calls_total{tenant="acme",tool="a",outcome="error"} 0',
      'portico_tool_calls_total{tenant="acme",tool="b",outcome="success"} 1',
      'portico_tool_calls_total{tenant="acme",tool="b",outcome="error"} 0',
      'portico_tool_calls_total{tenant="acme",tool="other",outcome="success"} 1',
      'portico_tool_calls_total{tenant="acme",tool="other",outcome="error"} 1',
      'portico_tool_calls_total{tenant="globex",tool="c",outcome="success"} 1',
      'portico_tool_calls_total{tenant="globex",tool="c",outcome="error"} 0',
    ]);
  });

  it('never grows past the cap however many tools are called', async () => {
    for (let i = 0; i < 500; i++) {
      sut.toolCall('acme', `tool-${i}`, 'success', 0.001);
    }
    expect(await lines(registry, 'portico_tool_calls_total')).toHaveLength(6);
  });

  it('reads session counts from the registered providers at scrape time', async () => {
    let open = 3;
    sut.trackSessions('websocket', () => open);
    expect(await lines(registry, 'portico_sessions_active')).toEqual([
      'portico_sessions_active{transport="websocket"} 3',
    ]);
    open = 1;
    expect(await lines(registry, 'portico_sessions_active')).toEqual([
      'portico_sessions_active{transport="websocket"} 1',
    ]);
  });

  it('counts an open stream once, whatever the number of close calls', async () => {
    const first = sut.streamOpened('sse');
    const second = sut.streamOpened('sse');
    first();
    first();
    expect(await lines(registry, 'portico_streams_open')).toEqual([
      'portico_streams_open{transport="sse"} 1',
    ]);
    second();
    expect(await lines(registry, 'portico_streams_open')).toEqual([
      'portico_streams_open{transport="sse"} 0',
    ]);
  });

  it('counts auth failures and quota refusals by reason', async () => {
    sut.authFailure('missing');
    sut.authFailure('missing');
    sut.authFailure('scope');
    sut.rateLimited('tenant-rate');

    expect(await lines(registry, 'portico_auth_failures_total')).toEqual([
      'portico_auth_failures_total{reason="missing"} 2',
      'portico_auth_failures_total{reason="scope"} 1',
    ]);
    expect(await lines(registry, 'portico_rate_limited_total')).toEqual([
      'portico_rate_limited_total{limit="tenant-rate"} 1',
    ]);
  });

  it('lets two instances live side by side, each in its own registry', () => {
    expect(() => new GatewayMetrics(new Registry(), { maxToolLabels: 1 })).not.toThrow();
    expect(() => new GatewayMetrics(registry, { maxToolLabels: 1 })).toThrow(
      /already been registered/,
    );
  });
});

describe(mcpMethodOf.name, () => {
  it.each([
    [{ jsonrpc: '2.0', id: 1, method: 'tools/list' }, 'tools/list'],
    [{ jsonrpc: '2.0', method: 'notifications/initialized' }, 'notifications/initialized'],
    [{ jsonrpc: '2.0', id: 1, result: {} }, 'response'],
    [{ jsonrpc: '2.0', id: 1, error: { code: 1, message: 'x' } }, 'response'],
    [[{ jsonrpc: '2.0', id: 1, method: 'ping' }], 'batch'],
    [{ jsonrpc: '2.0', id: 1 }, 'invalid'],
    [Symbol('parse-error'), 'invalid'],
    [null, 'invalid'],
  ])('labels %p as %s', (message, label) => {
    expect(mcpMethodOf(message)).toBe(label);
  });
});

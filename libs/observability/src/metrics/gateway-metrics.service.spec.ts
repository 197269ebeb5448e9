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

  describe('backend series', () => {
    const duration = 'portico_backend_request_duration_seconds';

    it('times requests by outcome, every outcome present from the start', async () => {
      const backend = sut.backend('acme', 'crm');
      backend.request('success', 0.02);
      backend.request('success', 0.3);
      backend.request('refused', 0);

      expect(await lines(registry, `${duration}_count`)).toEqual([
        `${duration}_count{tenant="acme",backend="crm",outcome="success"} 2`,
        `${duration}_count{tenant="acme",backend="crm",outcome="error"} 0`,
        `${duration}_count{tenant="acme",backend="crm",outcome="refused"} 1`,
      ]);
      expect(await lines(registry, `${duration}_sum`)).toContain(
        `${duration}_sum{tenant="acme",backend="crm",outcome="success"} 0.32`,
      );
      expect(await lines(registry, `${duration}_bucket`)).toContain(
        `${duration}_bucket{le="0.025",tenant="acme",backend="crm",outcome="success"} 1`,
      );
    });

    it('reports a backend up only after a successful contact and while its circuit is not open', async () => {
      const backend = sut.backend('acme', 'crm');
      const state = async () => [
        ...(await lines(registry, 'portico_backend_up')),
        ...(await lines(registry, 'portico_backend_circuit_state')),
      ];
      expect(await state()).toEqual([
        'portico_backend_up{tenant="acme",backend="crm"} 0',
        'portico_backend_circuit_state{tenant="acme",backend="crm"} 0',
      ]);
      backend.contact(true);
      expect(await lines(registry, 'portico_backend_up')).toEqual([
        'portico_backend_up{tenant="acme",backend="crm"} 1',
      ]);
      backend.contact(false);
      backend.circuit('open');
      expect(await state()).toEqual([
        'portico_backend_up{tenant="acme",backend="crm"} 0',
        'portico_backend_circuit_state{tenant="acme",backend="crm"} 2',
      ]);
      backend.circuit('half-open');
      expect(await state()).toEqual([
        'portico_backend_up{tenant="acme",backend="crm"} 0',
        'portico_backend_circuit_state{tenant="acme",backend="crm"} 1',
      ]);
      backend.contact(true);
      backend.circuit('closed');
      expect(await state()).toEqual([
        'portico_backend_up{tenant="acme",backend="crm"} 1',
        'portico_backend_circuit_state{tenant="acme",backend="crm"} 0',
      ]);
      // A contact that succeeded does not make an open circuit's backend up.
      backend.circuit('open');
      expect(await lines(registry, 'portico_backend_up')).toEqual([
        'portico_backend_up{tenant="acme",backend="crm"} 0',
      ]);
    });

    it('removes every series of a closed backend, and a closed handle cannot bring them back', async () => {
      const crm = sut.backend('acme', 'crm');
      const erp = sut.backend('acme', 'erp');
      crm.request('success', 0.01);
      crm.contact(true);
      erp.contact(true);
      crm.remove();
      crm.request('error', 0.01);
      crm.contact(true);
      crm.circuit('open');

      const text = await registry.metrics();
      expect(text).not.toContain('backend="crm"');
      expect(await lines(registry, 'portico_backend_up')).toEqual([
        'portico_backend_up{tenant="acme",backend="erp"} 1',
      ]);
    });

    it('lets a new connection take the series over from one still closing', async () => {
      const old = sut.backend('acme', 'crm');
      old.request('success', 0.01);
      old.contact(true);
      const replacement = sut.backend('acme', 'crm');
      // The old connection's last writes and its close leave the replacement's series alone.
      old.circuit('open');
      old.request('error', 0.01);
      old.remove();
      replacement.request('success', 0.01);

      expect(await lines(registry, `${duration}_count`)).toEqual([
        `${duration}_count{tenant="acme",backend="crm",outcome="success"} 2`,
        `${duration}_count{tenant="acme",backend="crm",outcome="error"} 0`,
        `${duration}_count{tenant="acme",backend="crm",outcome="refused"} 0`,
      ]);
      expect(await lines(registry, 'portico_backend_circuit_state')).toEqual([
        'portico_backend_circuit_state{tenant="acme",backend="crm"} 0',
      ]);
      replacement.remove();
      expect(await registry.metrics()).not.toContain('backend="crm"');
    });
  });

  describe('replicated backend series', () => {
    const up = 'portico_backend_up';
    const replicaUp = 'portico_backend_replica_up';

    it('adds up the replicas: up while one is reachable, circuit the least open', async () => {
      const set = sut.replicatedBackend('acme', 'crm', 2);
      const first = set.replica(0);
      const second = set.replica(1);
      first.request('success', 0.01);
      second.request('error', 0.01);
      first.contact(true);
      second.contact(true);
      first.circuit('open');
      expect(await lines(registry, up)).toEqual([`${up}{tenant="acme",backend="crm"} 1`]);
      expect(await lines(registry, 'portico_backend_circuit_state')).toEqual([
        'portico_backend_circuit_state{tenant="acme",backend="crm"} 0',
      ]);
      second.contact(false);
      second.circuit('half-open');
      expect(await lines(registry, up)).toEqual([`${up}{tenant="acme",backend="crm"} 0`]);
      expect(await lines(registry, 'portico_backend_circuit_state')).toEqual([
        'portico_backend_circuit_state{tenant="acme",backend="crm"} 1',
      ]);
      expect(await lines(registry, 'portico_backend_request_duration_seconds_count')).toEqual([
        'portico_backend_request_duration_seconds_count{tenant="acme",backend="crm",outcome="success"} 1',
        'portico_backend_request_duration_seconds_count{tenant="acme",backend="crm",outcome="error"} 1',
        'portico_backend_request_duration_seconds_count{tenant="acme",backend="crm",outcome="refused"} 0',
      ]);
    });

    it('has a health gauge per replica, labelled by index, removed with the backend', async () => {
      const set = sut.replicatedBackend('acme', 'crm', 2);
      expect(await lines(registry, replicaUp)).toEqual([
        `${replicaUp}{tenant="acme",backend="crm",replica="0"} 0`,
        `${replicaUp}{tenant="acme",backend="crm",replica="1"} 0`,
      ]);
      set.health(1, true);
      expect(await lines(registry, replicaUp)).toContain(
        `${replicaUp}{tenant="acme",backend="crm",replica="1"} 1`,
      );
      // A replica's connection closing leaves the backend's series in place.
      set.replica(0).remove();
      expect(await lines(registry, replicaUp)).toHaveLength(2);
      set.remove();
      expect(await registry.metrics()).not.toContain('backend="crm"');
    });

    it('drops the replica gauges when a connection without replicas takes over', async () => {
      const old = sut.replicatedBackend('acme', 'crm', 3);
      old.health(2, true);
      const plain = sut.backend('acme', 'crm');
      old.health(2, true);
      old.remove();
      expect(await lines(registry, replicaUp)).toEqual([]);
      expect(await lines(registry, up)).toEqual([`${up}{tenant="acme",backend="crm"} 0`]);
      plain.remove();
    });
  });

  describe('queue series', () => {
    it('reads job counts at scrape time, every state of every tracked queue', async () => {
      let waiting = 4;
      sut.trackQueue('tool-calls', async () => ({ waiting, active: 1, failed: 2 }));
      expect(await lines(registry, 'portico_queue_jobs')).toEqual([
        'portico_queue_jobs{queue="tool-calls",state="waiting"} 4',
        'portico_queue_jobs{queue="tool-calls",state="active"} 1',
        'portico_queue_jobs{queue="tool-calls",state="delayed"} 0',
        'portico_queue_jobs{queue="tool-calls",state="failed"} 2',
        'portico_queue_jobs{queue="tool-calls",state="prioritized"} 0',
      ]);
      waiting = 0;
      expect(await lines(registry, 'portico_queue_jobs')).toContain(
        'portico_queue_jobs{queue="tool-calls",state="waiting"} 0',
      );
    });

    it('leaves out counts that fail or do not come in time, and the scrape still succeeds', async () => {
      const quick = new GatewayMetrics(new Registry(), { maxToolLabels: 2, collectTimeoutMs: 20 });
      let healthy = true;
      quick.trackQueue('failing', () =>
        healthy ? Promise.resolve({ waiting: 3 }) : Promise.reject(new Error('ECONNREFUSED')),
      );
      quick.trackQueue('hanging', () => new Promise(() => undefined));
      quick.trackQueue('fine', async () => ({ active: 1 }));
      quick.mcpRequest('sse', 'ping', 'ok', 0.001);

      const first = await lines(quick.registry, 'portico_queue_jobs');
      expect(first.filter((line) => line.includes('queue="hanging"'))).toEqual([]);
      expect(first).toContain('portico_queue_jobs{queue="failing",state="waiting"} 3');

      healthy = false;
      const second = await lines(quick.registry, 'portico_queue_jobs');
      // The failing queue's earlier values are gone, not repeated stale.
      expect(second.filter((line) => !line.includes('queue="fine"'))).toEqual([]);
      expect(second).toContain('portico_queue_jobs{queue="fine",state="active"} 1');
      expect(await lines(quick.registry, 'portico_mcp_requests_total')).toHaveLength(1);
    });

    it("counts a worker's jobs by outcome with wait and run times, all outcomes at 0 first", async () => {
      const worker = sut.trackWorker('tool-calls');
      expect(await lines(registry, 'portico_worker_jobs_total')).toEqual([
        'portico_worker_jobs_total{queue="tool-calls",outcome="completed"} 0',
        'portico_worker_jobs_total{queue="tool-calls",outcome="failed"} 0',
        'portico_worker_jobs_total{queue="tool-calls",outcome="cancelled"} 0',
        'portico_worker_jobs_total{queue="tool-calls",outcome="timed_out"} 0',
      ]);
      expect(await lines(registry, 'portico_queue_wait_seconds_count')).toEqual([
        'portico_queue_wait_seconds_count{queue="tool-calls"} 0',
      ]);

      worker.jobStarted(0.004);
      worker.jobFinished('completed', 0.2);
      worker.jobStarted(-0.5); // a producer clock ahead of the worker's counts as no wait
      worker.jobFinished('timed_out', 2);
      // Tracking the same queue again keeps the counts.
      expect(sut.trackWorker('tool-calls')).toBe(worker);

      expect(await lines(registry, 'portico_worker_jobs_total')).toEqual([
        'portico_worker_jobs_total{queue="tool-calls",outcome="completed"} 1',
        'portico_worker_jobs_total{queue="tool-calls",outcome="failed"} 0',
        'portico_worker_jobs_total{queue="tool-calls",outcome="cancelled"} 0',
        'portico_worker_jobs_total{queue="tool-calls",outcome="timed_out"} 1',
      ]);
      expect(await lines(registry, 'portico_queue_wait_seconds_count')).toEqual([
        'portico_queue_wait_seconds_count{queue="tool-calls"} 2',
      ]);
      expect(await lines(registry, 'portico_queue_wait_seconds_sum')).toEqual([
        'portico_queue_wait_seconds_sum{queue="tool-calls"} 0.004',
      ]);
      expect(await lines(registry, 'portico_queue_run_seconds_count')).toEqual([
        'portico_queue_run_seconds_count{queue="tool-calls",outcome="completed"} 1',
        'portico_queue_run_seconds_count{queue="tool-calls",outcome="failed"} 0',
        'portico_queue_run_seconds_count{queue="tool-calls",outcome="cancelled"} 0',
        'portico_queue_run_seconds_count{queue="tool-calls",outcome="timed_out"} 1',
      ]);
    });
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

import { Registry } from 'prom-client';
import { GatewayMetrics } from '@portico/observability';
import {
  buildModel,
  deltas,
  frameFor,
  MAX_ROWS,
  quantile,
  readSnapshot,
  Sample,
  Snapshot,
} from './dashboard-model';

const T0 = 1_700_000_000_000;

function snapshotOf(at: number, name: string, samples: Sample[]): Snapshot {
  return { at, metrics: new Map([[name, samples]]) };
}

function buckets(name: string, counts: [number | '+Inf', number][], labels = {}): Sample[] {
  return counts.map(([le, value]) => ({
    labels: { ...labels, le },
    value,
    metricName: `${name}_bucket`,
  }));
}

describe('dashboard model', () => {
  describe(deltas.name, () => {
    it('subtracts the base per series, counts new series from zero and survives resets', () => {
      const base = snapshotOf(T0, 'c', [
        { labels: { a: 'x' }, value: 5 },
        { labels: { a: 'y' }, value: 9 },
      ]);
      const head = snapshotOf(T0 + 1000, 'c', [
        { labels: { a: 'x' }, value: 8 },
        { labels: { a: 'y' }, value: 2 },
        { labels: { a: 'z' }, value: 4 },
      ]);
      expect(deltas(head, base, 'c').map((s) => [s.labels.a, s.value])).toEqual([
        ['x', 3],
        ['y', 2],
        ['z', 4],
      ]);
    });

    it('treats every value as new without a base', () => {
      const head = snapshotOf(T0, 'c', [{ labels: {}, value: 7 }]);
      expect(deltas(head, undefined, 'c')[0].value).toBe(7);
    });
  });

  describe(quantile.name, () => {
    it('interpolates inside the bucket holding the rank, summed over series', () => {
      const samples = [
        ...buckets('h', [
          [0.1, 2],
          [1, 6],
          ['+Inf', 6],
        ]),
        ...buckets(
          'h',
          [
            [0.1, 2],
            [1, 4],
            ['+Inf', 4],
          ],
          { other: 'series' },
        ),
      ];
      // 10 observations: 4 in (0, 0.1], 6 in (0.1, 1].
      expect(quantile(0.2, samples)).toBeCloseTo(0.05, 10);
      expect(quantile(0.5, samples)).toBeCloseTo(0.1 + 0.9 * (1 / 6), 10);
      expect(quantile(0.99, samples)).toBeCloseTo(0.1 + 0.9 * (5.9 / 6), 10);
    });

    it('answers the highest finite bound when the rank lies in +Inf', () => {
      const samples = buckets('h', [
        [0.5, 1],
        [2, 1],
        ['+Inf', 10],
      ]);
      expect(quantile(0.99, samples)).toBe(2);
    });

    it('is null without observations and ignores series the filter rejects', () => {
      const samples = buckets('h', [
        [1, 0],
        ['+Inf', 0],
      ]);
      expect(quantile(0.5, samples)).toBeNull();
      const other = buckets(
        'h',
        [
          [1, 3],
          ['+Inf', 3],
        ],
        { tenant: 'b' },
      );
      expect(quantile(0.5, other, (labels) => labels.tenant === 'a')).toBeNull();
    });
  });

  describe(buildModel.name, () => {
    let registry: Registry;
    let metrics: GatewayMetrics;

    beforeEach(() => {
      registry = new Registry();
      metrics = new GatewayMetrics(registry, { maxToolLabels: 10 });
    });

    it('has totals but no rates or percentiles from one snapshot', async () => {
      metrics.mcpRequest('streamable-http', 'tools/call', 'ok', 0.003);
      metrics.toolCall('acme', 'echo', 'success', 0.003);
      const model = buildModel(await readSnapshot(registry, T0), undefined);
      expect(model.windowSeconds).toBe(0);
      expect(model.gateway).toMatchObject({
        requests: 1,
        requestsPerSecond: null,
        errorRate: null,
        p50: null,
      });
      expect(model.tenants).toEqual([
        expect.objectContaining({ tenant: 'acme', calls: 1, callsPerSecond: null, p99: null }),
      ]);
    });

    it('turns a known sequence into window rates, error shares and percentiles', async () => {
      metrics.mcpRequest('streamable-http', 'tools/call', 'ok', 0.003);
      metrics.toolCall('acme', 'echo', 'success', 0.003);
      const base = await readSnapshot(registry, T0);

      for (let i = 0; i < 16; i++) {
        metrics.mcpRequest('streamable-http', 'tools/call', 'ok', 0.003);
      }
      metrics.mcpRequest('websocket', 'tools/call', 'error', 0.003);
      metrics.mcpRequest('streamable-http', 'tools/call', 'rejected', 0.003);
      metrics.mcpRequest('sse', 'ping', 'rejected', 0.003);
      metrics.mcpRequest('streamable-http', 'tools/list', 'ok', 0.003);
      // A long GET stream closing: counted as a request, kept out of the latency.
      metrics.mcpRequest('streamable-http', 'get', 'ok', 45);
      for (let i = 0; i < 3; i++) {
        metrics.toolCall('acme', 'echo', 'success', 0.003);
      }
      metrics.toolCall('acme', 'broken', 'error', 0.003);
      metrics.toolCall('globex', 'echo', 'success', 0.003);
      metrics.toolCall('globex', 'echo', 'success', 0.003);
      metrics.authFailure('invalid');
      metrics.authFailure('missing');
      metrics.rateLimited('tenant-rate');
      metrics.trackSessions('streamable-http', () => 3);
      metrics.trackSessions('websocket', () => 1);
      metrics.streamOpened('sse');

      const model = buildModel(await readSnapshot(registry, T0 + 10_000), base);
      expect(model.windowSeconds).toBe(10);
      const { gateway } = model;
      expect(gateway.requests).toBe(22);
      expect(gateway.requestsPerSecond).toBeCloseTo(2.1, 10);
      expect(gateway.errorRate).toBeCloseTo(1 / 21, 10);
      expect(gateway.rejectedRate).toBeCloseTo(2 / 21, 10);
      // 20 timed observations, all in the (0.001, 0.005] bucket.
      expect(gateway.p50).toBeCloseTo(0.001 + 0.004 * 0.5, 10);
      expect(gateway.p99).toBeCloseTo(0.001 + 0.004 * 0.99, 10);
      expect(gateway.sessions).toEqual({ 'streamable-http': 3, websocket: 1 });
      expect(gateway.streams).toBe(1);
      expect(gateway.authFailuresPerSecond).toBeCloseTo(0.2, 10);
      expect(gateway.rateLimitedPerSecond).toBeCloseTo(0.1, 10);

      const acme = model.tenants.find((row) => row.tenant === 'acme');
      expect(acme).toMatchObject({
        calls: 5,
        errors: 1,
        windowCalls: 4,
        windowErrors: 1,
        errorRate: 0.25,
      });
      expect(acme?.callsPerSecond).toBeCloseTo(0.4, 10);
      const globex = model.tenants.find((row) => row.tenant === 'globex');
      expect(globex).toMatchObject({ calls: 2, errors: 0, windowCalls: 2, errorRate: 0 });
      expect(model.backends).toEqual([]);
      expect(model.queues).toEqual([]);
    });

    it('reads backend health, circuits, queue depths and worker throughput', async () => {
      const crm = metrics.backend('acme', 'crm');
      crm.contact(true);
      const erp = metrics.backend('acme', 'erp');
      erp.contact(true);
      erp.circuit('open');
      metrics.backend('globex', 'files').circuit('half-open');
      metrics.trackQueue('tool-calls', async () => ({ waiting: 7, active: 2 }));
      const worker = metrics.trackWorker('tool-calls');
      const base = await readSnapshot(registry, T0);
      crm.request('success', 0.05);
      crm.request('error', 0.05);
      // Refused attempts count against the backend but are not latency.
      crm.request('refused', 0);
      crm.request('refused', 0);
      worker.jobStarted(0.5);
      for (let i = 0; i < 3; i++) {
        worker.jobFinished('completed', 0.2);
      }
      worker.jobFinished('timed_out', 2);
      worker.jobFinished('cancelled', 0.1);

      const model = buildModel(await readSnapshot(registry, T0 + 2_000), base);
      const byName = new Map(model.backends.map((row) => [`${row.tenant}/${row.backend}`, row]));
      expect(byName.get('acme/crm')).toMatchObject({
        up: true,
        circuit: 'closed',
        requestsPerSecond: 2,
        errorRate: 0.75,
      });
      // Two timed requests in (0.025, 0.05].
      expect(byName.get('acme/crm')?.p99).toBeCloseTo(0.025 + 0.025 * 0.99, 10);
      expect(byName.get('acme/erp')).toMatchObject({
        up: false,
        circuit: 'open',
        requestsPerSecond: 0,
        errorRate: null,
        p99: null,
      });
      expect(byName.get('globex/files')).toMatchObject({ up: false, circuit: 'half-open' });
      expect(model.queues).toEqual([
        {
          queue: 'tool-calls',
          jobs: { waiting: 7, active: 2, delayed: 0, failed: 0, prioritized: 0 },
          waitP99: expect.any(Number),
          runP99: expect.any(Number),
          processedPerSecond: 2.5,
          failedPerSecond: 0.5,
        },
      ]);
      // One wait in (0.25, 0.5]; the slowest run (2 s) in (1, 2.5].
      expect(model.queues[0].waitP99).toBeCloseTo(0.25 + 0.25 * 0.99, 10);
      expect(model.queues[0].runP99).toBeGreaterThan(1);
      expect(model.queues[0].runP99).toBeLessThanOrEqual(2.5);
    });
  });

  describe(frameFor.name, () => {
    async function model() {
      const registry = new Registry();
      const metrics = new GatewayMetrics(registry, { maxToolLabels: 10 });
      metrics.backend('acme', 'crm');
      metrics.backend('globex', 'secret-backend').circuit('open');
      metrics.trackQueue('tool-calls', async () => ({ waiting: 4 }));
      const base = await readSnapshot(registry, T0);
      metrics.mcpRequest('streamable-http', 'tools/call', 'ok', 0.01);
      metrics.toolCall('acme', 'echo', 'success', 0.01);
      metrics.toolCall('globex', 'echo', 'success', 0.01);
      metrics.toolCall('globex', 'echo', 'success', 0.01);
      return buildModel(await readSnapshot(registry, T0 + 1_000), base);
    }

    it('gives platform administrators every tenant, busiest first, with gateway and queues', async () => {
      const frame = frameFor(await model(), { tenant: null, platform: true }, (slug) =>
        slug === 'acme' ? 2 : null,
      );
      expect(frame.tenants.map((row) => [row.tenant, row.sessions])).toEqual([
        ['globex', null],
        ['acme', 2],
      ]);
      expect(frame.backends.map((row) => row.tenant)).toEqual(['acme', 'globex']);
      expect(frame.gateway?.requests).toBe(1);
      expect(frame.queues?.[0].jobs).toMatchObject({ waiting: 4, active: 0 });
    });

    it('gives a tenant its own rows and nothing that names or mixes in another tenant', async () => {
      const frame = frameFor(await model(), { tenant: 'acme', platform: false }, () => 1);
      expect(frame.tenants).toEqual([
        expect.objectContaining({ tenant: 'acme', calls: 1, sessions: 1 }),
      ]);
      expect(frame.backends.map((row) => row.backend)).toEqual(['crm']);
      expect(frame.gateway).toBeNull();
      expect(frame.queues).toBeNull();
      const text = JSON.stringify(frame);
      expect(text).not.toContain('globex');
      expect(text).not.toContain('secret-backend');
    });

    it('shows a quiet tenant as zeros rather than nothing', async () => {
      const frame = frameFor(await model(), { tenant: 'initech', platform: false }, () => null);
      expect(frame.tenants).toEqual([
        expect.objectContaining({ tenant: 'initech', calls: 0, callsPerSecond: null }),
      ]);
      expect(frame.backends).toEqual([]);
    });

    it(`caps tables at ${MAX_ROWS} rows and counts the rest`, async () => {
      const registry = new Registry();
      const metrics = new GatewayMetrics(registry, { maxToolLabels: 1 });
      for (let i = 0; i < MAX_ROWS + 5; i++) {
        metrics.toolCall(`t${i}`, 'echo', 'success', 0.01);
      }
      const frame = frameFor(
        buildModel(await readSnapshot(registry, T0), undefined),
        { tenant: null, platform: true },
        () => null,
      );
      expect(frame.tenants).toHaveLength(MAX_ROWS);
      expect(frame.omitted.tenants).toBe(5);
    });
  });
});

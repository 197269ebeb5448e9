import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { TenantService } from '@portico/tenancy';
import { RunningGateway, startGateway } from './support/gateway';
import { seedTenant } from './support/tenants';

const MODERN = '2026-07-28';
const METRICS_TOKEN = 'metrics-token-0123456789';

/** One modern-era POST to `url`; resolves to the HTTP status once the body is read. */
async function post(
  url: string,
  method: string,
  params: Record<string, unknown>,
  key?: string,
): Promise<number> {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      ...(key ? { authorization: `Bearer ${key}` } : {}),
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN,
      'mcp-method': method,
      ...(typeof params.name === 'string' ? { 'mcp-name': params.name } : {}),
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: randomBytes(4).readUInt32BE(),
      method,
      params: {
        ...params,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': MODERN,
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      },
    }),
  });
  await res.arrayBuffer();
  return res.status;
}

function callTool(url: string, name: string, key?: string, args: object = {}): Promise<number> {
  return post(url, 'tools/call', { name, arguments: args }, key);
}

/** Samples of a Prometheus text exposition, keyed `name{a="x",b="y"}` with labels sorted. */
type Samples = Map<string, number>;

function parseExposition(text: string): Samples {
  const samples: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) {
      continue;
    }
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!match) {
      throw new Error(`Unparseable exposition line: ${line}`);
    }
    const labels = [...(match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)]
      .map(([, name, value]) => `${name}="${value}"`)
      .sort();
    samples.set(`${match[1]}{${labels.join(',')}}`, Number(match[3]));
  }
  return samples;
}

function sample(samples: Samples, name: string, labels: Record<string, string> = {}): number {
  const key = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(',');
  return samples.get(`${name}{${key}}`) ?? Number.NaN;
}

function seriesOf(samples: Samples, name: string): string[] {
  return [...samples.keys()].filter((key) => key.startsWith(`${name}{`));
}

async function scrape(gateway: RunningGateway, token?: string): Promise<Samples> {
  const res = await fetch(`${gateway.baseUrl}/metrics`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain');
  return parseExposition(await res.text());
}

describe('Prometheus metrics', () => {
  describe('RED metrics after a known sequence', () => {
    let gateway: RunningGateway;
    let samples: Samples;

    beforeAll(async () => {
      gateway = await startGateway();
      const { tenant, apiKey } = await seedTenant(gateway.app, {
        slug: 't1',
        fixtures: ['echo', 'conformance'],
      });
      const tenantUrl = `${gateway.mcpUrl}/t1`;
      // The anonymous endpoint is not metered: these run before the tenant's rate limit.
      expect(await callTool(gateway.mcpUrl, 'test_simple_text')).toBe(200);
      const init = await fetch(gateway.mcpUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'initialize',
          params: {
            protocolVersion: '2025-11-25',
            capabilities: {},
            clientInfo: { name: 'metrics-test', version: '1' },
          },
        }),
      });
      await init.arrayBuffer();
      expect(init.status).toBe(200);

      const tenants = gateway.app.get(TenantService);
      await tenants.update((await tenants.byId(tenant.id))!, { limits: { requestsPerMinute: 4 } });
      for (let i = 0; i < 3; i++) {
        expect(await callTool(tenantUrl, 'echo', apiKey, { message: `m${i}` })).toBe(200);
      }
      expect(await callTool(tenantUrl, 'test_error_handling', apiKey)).toBe(200);
      expect(await callTool(tenantUrl, 'echo', undefined, { message: 'no key' })).toBe(401);
      expect(await callTool(tenantUrl, 'echo', 'not-a-key', { message: 'bad key' })).toBe(401);
      expect(await callTool(tenantUrl, 'echo', apiKey, { message: 'over' })).toBe(429);
      expect(await callTool(tenantUrl, 'echo', apiKey, { message: 'over' })).toBe(429);
      // The response of the last request is read before its `close` event may have fired.
      await new Promise((resolve) => setTimeout(resolve, 50));
      samples = await scrape(gateway);
    });

    afterAll(async () => {
      await gateway.close();
    });

    it('counts tool calls per tenant slug, tool and outcome, with durations', () => {
      const calls = 'portico_tool_calls_total';
      expect(sample(samples, calls, { tenant: 't1', tool: 'echo', outcome: 'success' })).toBe(3);
      expect(sample(samples, calls, { tenant: 't1', tool: 'echo', outcome: 'error' })).toBe(0);
      expect(
        sample(samples, calls, { tenant: 't1', tool: 'test_error_handling', outcome: 'error' }),
      ).toBe(1);
      expect(
        sample(samples, calls, {
          tenant: 'anonymous',
          tool: 'test_simple_text',
          outcome: 'success',
        }),
      ).toBe(1);
      expect(
        sample(samples, 'portico_tool_call_duration_seconds_count', {
          tenant: 't1',
          tool: 'echo',
          outcome: 'success',
        }),
      ).toBe(3);
      expect(
        sample(samples, 'portico_tool_call_duration_seconds_bucket', {
          tenant: 't1',
          tool: 'echo',
          outcome: 'success',
          le: '+Inf',
        }),
      ).toBe(3);
    });

    it('counts authentication failures by reason and quota refusals by limit', () => {
      expect(sample(samples, 'portico_auth_failures_total', { reason: 'missing' })).toBe(1);
      expect(sample(samples, 'portico_auth_failures_total', { reason: 'invalid' })).toBe(1);
      expect(seriesOf(samples, 'portico_auth_failures_total')).toHaveLength(2);
      expect(sample(samples, 'portico_rate_limited_total', { limit: 'tenant-rate' })).toBe(2);
      expect(seriesOf(samples, 'portico_rate_limited_total')).toHaveLength(1);
    });

    it('counts Streamable HTTP requests by method and outcome', () => {
      const requests = 'portico_mcp_requests_total';
      const http = { transport: 'streamable-http' };
      // 1 anonymous + 3 echo + 1 isError (a tool error is a successful request).
      expect(sample(samples, requests, { ...http, method: 'tools/call', outcome: 'ok' })).toBe(5);
      // 2 refused for credentials + 2 over the rate limit.
      expect(
        sample(samples, requests, { ...http, method: 'tools/call', outcome: 'rejected' }),
      ).toBe(4);
      expect(sample(samples, requests, { ...http, method: 'initialize', outcome: 'ok' })).toBe(1);
      expect(
        sample(samples, 'portico_mcp_request_duration_seconds_count', {
          ...http,
          method: 'tools/call',
          outcome: 'ok',
        }),
      ).toBe(5);
    });

    it('reports open sessions from the transports at scrape time', () => {
      expect(sample(samples, 'portico_sessions_active', { transport: 'streamable-http' })).toBe(1);
      expect(sample(samples, 'portico_sessions_active', { transport: 'websocket' })).toBe(0);
      expect(sample(samples, 'portico_sessions_active', { transport: 'sse' })).toBe(0);
    });

    it('serves process and Node.js metrics, event-loop lag included', () => {
      expect(sample(samples, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
      expect(sample(samples, 'nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
    });

    it('bounds the method label: an unknown method counts as "other"', async () => {
      expect(await post(gateway.mcpUrl, 'made/up-method', {})).toBe(404);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const after = await scrape(gateway);
      const series = seriesOf(after, 'portico_mcp_requests_total');
      expect(series.some((key) => key.includes('made/up-method'))).toBe(false);
      expect(
        sample(after, 'portico_mcp_requests_total', {
          transport: 'streamable-http',
          method: 'other',
          outcome: 'rejected',
        }),
      ).toBe(1);
    });

    it('counts WebSocket messages and connections', async () => {
      const url = `${gateway.mcpUrl.replace(/^http/, 'ws')}`;
      const socket = new WebSocket(url, ['mcp']);
      await new Promise<void>((resolve, reject) => {
        socket.once('open', () => resolve());
        socket.once('error', reject);
      });
      try {
        const answered = new Promise<void>((resolve) => socket.once('message', () => resolve()));
        socket.send(
          JSON.stringify({
            jsonrpc: '2.0',
            id: 1,
            method: 'initialize',
            params: {
              protocolVersion: '2025-11-25',
              capabilities: {},
              clientInfo: { name: 'metrics-ws', version: '1' },
            },
          }),
        );
        await answered;
        await new Promise((resolve) => setTimeout(resolve, 20));
        const during = await scrape(gateway);
        expect(
          sample(during, 'portico_mcp_requests_total', {
            transport: 'websocket',
            method: 'initialize',
            outcome: 'ok',
          }),
        ).toBe(1);
        expect(sample(during, 'portico_sessions_active', { transport: 'websocket' })).toBe(1);
      } finally {
        socket.close();
      }
    });

    it('counts HTTP+SSE messages, open streams and connections', async () => {
      const controller = new AbortController();
      const res = await fetch(`${gateway.mcpUrl}/sse`, {
        headers: { accept: 'text/event-stream' },
        signal: controller.signal,
      });
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      let received = '';
      const waitFor = async (text: string): Promise<void> => {
        while (!received.includes(text)) {
          const { value, done } = await reader.read();
          if (done) {
            throw new Error(`stream ended before ${text}`);
          }
          received += decoder.decode(value, { stream: true });
        }
      };
      try {
        await waitFor('event: endpoint');
        await waitFor('\n\n');
        const endpoint = /data: (\S+)/.exec(received)![1];
        const posted = await fetch(`${gateway.baseUrl}${endpoint}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'ping' }),
        });
        await posted.arrayBuffer();
        expect(posted.status).toBe(202);
        await waitFor('"id":7');
        await new Promise((resolve) => setTimeout(resolve, 20));
        const during = await scrape(gateway);
        expect(
          sample(during, 'portico_mcp_requests_total', {
            transport: 'sse',
            method: 'ping',
            outcome: 'ok',
          }),
        ).toBe(1);
        expect(sample(during, 'portico_sessions_active', { transport: 'sse' })).toBe(1);
        expect(sample(during, 'portico_streams_open', { transport: 'sse' })).toBe(1);
      } finally {
        controller.abort();
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
      const after = await scrape(gateway);
      expect(sample(after, 'portico_streams_open', { transport: 'sse' })).toBe(0);
      expect(sample(after, 'portico_sessions_active', { transport: 'sse' })).toBe(0);
    });

    it('keeps /metrics open when no METRICS_TOKEN is configured', async () => {
      const res = await fetch(`${gateway.baseUrl}/metrics`);
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    });
  });

  describe('with METRICS_TOKEN and METRICS_MAX_TOOL_LABELS=1', () => {
    let gateway: RunningGateway;

    beforeAll(async () => {
      gateway = await startGateway({ METRICS_TOKEN, METRICS_MAX_TOOL_LABELS: '1' });
    });

    afterAll(async () => {
      await gateway.close();
    });

    it('refuses a scrape without the token, or with another one', async () => {
      const attempts: Record<string, string>[] = [
        {},
        { authorization: 'Bearer wrong-token-0123456789' },
        { authorization: `Basic ${METRICS_TOKEN}` },
        { authorization: `Bearer ${METRICS_TOKEN}x` },
      ];
      for (const headers of attempts) {
        const res = await fetch(`${gateway.baseUrl}/metrics`, { headers });
        expect(res.status).toBe(401);
        expect(res.headers.get('www-authenticate')).toContain('Bearer');
        expect(await res.text()).not.toContain('portico_');
      }
    });

    it('counts tools beyond the per-tenant label cap as "other", in its own registry', async () => {
      const { apiKey } = await seedTenant(gateway.app, {
        slug: 't2',
        fixtures: ['echo', 'conformance'],
      });
      const url = `${gateway.mcpUrl}/t2`;
      expect(await callTool(url, 'echo', apiKey, { message: 'first' })).toBe(200);
      expect(await callTool(url, 'test_error_handling', apiKey)).toBe(200);
      expect(await callTool(url, 'test_simple_text', apiKey)).toBe(200);
      const samples = await scrape(gateway, METRICS_TOKEN);
      const calls = 'portico_tool_calls_total';
      expect(sample(samples, calls, { tenant: 't2', tool: 'echo', outcome: 'success' })).toBe(1);
      expect(sample(samples, calls, { tenant: 't2', tool: 'other', outcome: 'error' })).toBe(1);
      expect(sample(samples, calls, { tenant: 't2', tool: 'other', outcome: 'success' })).toBe(1);
      expect(seriesOf(samples, calls).filter((key) => key.includes('test_'))).toEqual([]);
      // Another gateway's series never show up here: one registry per application.
      expect(seriesOf(samples, calls).filter((key) => !key.includes('tenant="t2"'))).toEqual([]);
    });
  });

  it('does not serve /metrics when METRICS_ENABLED=false', async () => {
    const gateway = await startGateway({ METRICS_ENABLED: 'false' });
    try {
      const res = await fetch(`${gateway.baseUrl}/metrics`);
      await res.arrayBuffer();
      expect(res.status).toBe(404);
    } finally {
      await gateway.close();
    }
  });
});

import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { resolve } from 'node:path';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import Redis from 'ioredis';
import WebSocket from 'ws';
import { Tracing } from '@portico/observability';
import { TenantService } from '@portico/tenancy';
import { testDatabaseEnv } from '@portico/testing';
import { RunningGateway, startGateway } from './support/gateway';
import { OtlpReceiver, ReceivedSpan, startOtlpReceiver } from './support/otlp-receiver';
import { seedTenant } from './support/tenants';

const MODERN = '2026-07-28';
const SERVER = 2;
const INTERNAL = 1;
const CLIENT = 3;
const PRODUCER = 4;
const CONSUMER = 5;
const REDIS = 'redis://127.0.0.1:6379';
const UPSTREAM = resolve(__dirname, '../libs/testing/fixtures-upstream/upstream-server.mjs');
const WORKER_MAIN = resolve(__dirname, '../dist/apps/worker/apps/worker/src/main.js');
const ERROR = 2;

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- asserted field by field

const ENVELOPE = {
  'io.modelcontextprotocol/protocolVersion': MODERN,
  'io.modelcontextprotocol/clientCapabilities': {},
};

/** A W3C traceparent of a (client's) sampled span, and its ids. */
function clientSpan(): { traceparent: string; traceId: string; spanId: string } {
  const traceId = randomBytes(16).toString('hex');
  const spanId = randomBytes(8).toString('hex');
  return { traceparent: `00-${traceId}-${spanId}-01`, traceId, spanId };
}

async function callTool(
  url: string,
  name: string,
  args: Record<string, unknown>,
  options: { key?: string; headers?: Record<string, string>; meta?: Record<string, unknown> } = {},
): Promise<{ status: number; body: Json }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN,
      'mcp-method': 'tools/call',
      'mcp-name': name,
      ...(options.key && { authorization: `Bearer ${options.key}` }),
      ...options.headers,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 7,
      method: 'tools/call',
      params: { name, arguments: args, _meta: { ...ENVELOPE, ...options.meta } },
    }),
  });
  return { status: res.status, body: (await res.json()) as Json };
}

function one(spans: ReceivedSpan[], predicate: (span: ReceivedSpan) => boolean): ReceivedSpan {
  const found = spans.filter(predicate);
  if (found.length !== 1) {
    const names = found.map((s) => `${s.name} (parent ${s.parentSpanId ?? 'none'})`);
    throw new Error(`expected one matching span, got ${found.length}: ${names.join(', ')}`);
  }
  return found[0];
}

describe('OpenTelemetry traces (OTLP/HTTP to an in-test receiver)', () => {
  let receiver: OtlpReceiver;
  let gateway: RunningGateway;
  let apiKey: string;

  const inTrace = (traceId: string) => receiver.spans.filter((s) => s.traceId === traceId);
  const flush = () => gateway.app.get(Tracing).flush();

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    gateway = await startGateway({
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_SERVICE_NAME: 'portico-e2e',
    });
    ({ apiKey } = await seedTenant(gateway.app, { slug: 'traced', fixtures: ['echo'] }));
  });

  afterAll(async () => {
    await gateway?.close();
    await receiver?.close();
  });

  it('traces a tenant tool call: HTTP span, auth, MCP request, catalog build, tool execution', async () => {
    const client = clientSpan();
    const reply = await callTool(
      `${gateway.mcpUrl}/traced`,
      'echo',
      { message: 'hi' },
      { key: apiKey, headers: { traceparent: client.traceparent } },
    );
    expect(reply.status).toBe(200);
    expect(reply.body.result.content).toEqual([{ type: 'text', text: 'hi' }]);
    await flush();
    await receiver.waitFor(() => inTrace(client.traceId).length >= 5);
    const spans = inTrace(client.traceId);
    expect(spans.every((s) => s.service === 'portico-e2e')).toBe(true);

    const http = one(spans, (s) => s.name === 'POST /mcp/:tenant');
    expect(http).toMatchObject({ kind: SERVER, parentSpanId: client.spanId });
    expect(http.attributes).toMatchObject({
      'http.request.method': 'POST',
      'http.response.status_code': 200,
      'portico.transport': 'streamable-http',
      'portico.tenant': 'traced',
    });
    const auth = one(spans, (s) => s.name === 'portico.auth');
    expect(auth.parentSpanId).toBe(http.spanId);
    expect(auth.attributes['portico.tenant']).toBe('traced');
    expect(String(auth.attributes['portico.principal'])).toMatch(/^key:/);

    const mcp = one(spans, (s) => s.name === 'tools/call echo');
    expect(mcp).toMatchObject({ kind: SERVER, parentSpanId: http.spanId, status: 0 });
    expect(mcp.attributes).toMatchObject({
      'mcp.method.name': 'tools/call',
      'mcp.protocol.version': MODERN,
      'jsonrpc.request.id': '7',
      'gen_ai.tool.name': 'echo',
      'gen_ai.operation.name': 'execute_tool',
    });
    // The tenant's first call builds its catalog (backends connected, lists read), under the
    // request that needed it first; lookups in a built catalog are map reads without spans.
    const build = one(spans, (s) => s.name === 'portico.catalog.build');
    expect(spans.map((s) => s.spanId)).toContain(build.parentSpanId);
    expect(spans.some((s) => s.name === 'portico.catalog.lookup')).toBe(false);
    const execute = one(spans, (s) => s.name === 'execute_tool echo');
    expect(execute).toMatchObject({ kind: INTERNAL, parentSpanId: mcp.spanId });
    expect(execute.attributes).toMatchObject({
      'portico.backend': 'echo',
      'gen_ai.tool.name': 'echo',
    });
    // Nothing about the credential ends up in a span.
    expect(JSON.stringify(spans.map((s) => [s.name, s.attributes]))).not.toContain(apiKey);
  });

  it('continues the trace context a request carries in _meta (SEP-414) over the header', async () => {
    const header = clientSpan();
    const meta = clientSpan();
    await callTool(
      `${gateway.mcpUrl}/traced`,
      'echo',
      { message: 'meta' },
      {
        key: apiKey,
        headers: { traceparent: header.traceparent },
        meta: { traceparent: meta.traceparent },
      },
    );
    await flush();
    // HTTP, tools/call and execute_tool; the credential was verified by an earlier request and
    // is answered from the cache, which gets no span.
    await receiver.waitFor(() => inTrace(meta.traceId).length >= 3);
    expect(one(inTrace(meta.traceId), (s) => s.name === 'POST /mcp/:tenant').parentSpanId).toBe(
      meta.spanId,
    );
    // The catalog is built by now: no build, and a lookup is a map read, not worth a span.
    expect(inTrace(meta.traceId).some((s) => s.name.startsWith('portico.catalog.'))).toBe(false);
    expect(inTrace(meta.traceId).some((s) => s.name === 'portico.auth')).toBe(false);
    expect(inTrace(header.traceId)).toEqual([]);
  });

  it('records nothing for a request whose caller did not sample its trace', async () => {
    const before = receiver.spans.length;
    const unsampled = clientSpan();
    const reply = await callTool(
      `${gateway.mcpUrl}/traced`,
      'echo',
      { message: 'unsampled' },
      { key: apiKey, meta: { traceparent: unsampled.traceparent.replace(/-01$/, '-00') } },
    );
    expect(reply.status).toBe(200);
    // A sampled request after it: once its spans are in, the unsampled one's would be too.
    const marker = clientSpan();
    await callTool(
      `${gateway.mcpUrl}/traced`,
      'echo',
      { message: 'marker' },
      {
        key: apiKey,
        meta: { traceparent: marker.traceparent },
      },
    );
    await flush();
    await receiver.waitFor(() => inTrace(marker.traceId).length >= 3);
    // Neither spans of the unsampled trace nor new root spans started under it.
    expect(inTrace(unsampled.traceId)).toEqual([]);
    expect(receiver.spans.slice(before).filter((s) => s.traceId !== marker.traceId)).toEqual([]);
  });

  it('starts a new trace for a request without context, and ignores a malformed traceparent', async () => {
    const before = new Set(receiver.spans.map((s) => s.traceId));
    await callTool(
      `${gateway.mcpUrl}/traced`,
      'echo',
      { message: 'x' },
      {
        key: apiKey,
        headers: { traceparent: '00-not-a-trace-01' },
      },
    );
    await flush();
    await receiver.waitFor((spans) =>
      spans.some((s) => !before.has(s.traceId) && s.name === 'POST /mcp/:tenant'),
    );
    const http = receiver.spans.find(
      (s) => !before.has(s.traceId) && s.name === 'POST /mcp/:tenant',
    )!;
    expect(http.parentSpanId).toBeUndefined();
    expect(http.traceId).toMatch(/^[0-9a-f]{32}$/);
  });

  it('marks failures: a tool error, a protocol error and a refused credential', async () => {
    const toolError = clientSpan();
    const anonymous = gateway.mcpUrl;
    await callTool(
      anonymous,
      'test_error_handling',
      {},
      { headers: { traceparent: toolError.traceparent } },
    );
    const unknown = clientSpan();
    const reply = await callTool(
      anonymous,
      'no_such_tool',
      {},
      { headers: { traceparent: unknown.traceparent } },
    );
    expect(reply.body.error).toBeDefined();
    const refused = clientSpan();
    const denied = await callTool(
      `${gateway.mcpUrl}/traced`,
      'echo',
      { message: 'x' },
      {
        key: 'ptk_forged',
        headers: { traceparent: refused.traceparent },
      },
    );
    expect(denied.status).toBe(401);
    await flush();
    await receiver.waitFor(
      () =>
        inTrace(toolError.traceId).some((s) => s.name === 'execute_tool test_error_handling') &&
        inTrace(unknown.traceId).some((s) => s.name === 'tools/call no_such_tool') &&
        inTrace(refused.traceId).some((s) => s.name === 'portico.auth'),
    );
    const failedTool = one(
      inTrace(toolError.traceId),
      (s) => s.name === 'tools/call test_error_handling',
    );
    expect(failedTool).toMatchObject({ status: ERROR });
    expect(failedTool.attributes['error.type']).toBe('tool_error');
    const protocolError = one(
      inTrace(unknown.traceId),
      (s) => s.name === 'tools/call no_such_tool',
    );
    expect(protocolError.status).toBe(ERROR);
    expect(protocolError.attributes['error.type']).toBe(String(reply.body.error.code));
    const auth = one(inTrace(refused.traceId), (s) => s.name === 'portico.auth');
    expect(auth.status).toBe(ERROR);
    const http = one(inTrace(refused.traceId), (s) => s.name === 'POST /mcp/:tenant');
    expect(http.attributes['http.response.status_code']).toBe(401);
    // Refused before any protocol work: no MCP request span.
    expect(inTrace(refused.traceId).some((s) => s.name.startsWith('tools/call'))).toBe(false);
  });

  it('traces WebSocket messages from the trace context in their _meta', async () => {
    const client = clientSpan();
    const socket = new WebSocket(gateway.mcpUrl.replace(/^http/, 'ws'), ['mcp']);
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    const answer = new Promise<Json>((resolve) =>
      socket.once('message', (data) =>
        resolve(JSON.parse((data as Buffer).toString('utf8')) as Json),
      ),
    );
    socket.send(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 'ws-1',
        method: 'tools/call',
        params: {
          name: 'test_simple_text',
          arguments: {},
          _meta: { ...ENVELOPE, traceparent: client.traceparent },
        },
      }),
    );
    expect((await answer).result).toBeDefined();
    socket.close();
    await flush();
    await receiver.waitFor(() => inTrace(client.traceId).length >= 2);
    const mcp = one(inTrace(client.traceId), (s) => s.name === 'tools/call test_simple_text');
    expect(mcp).toMatchObject({ kind: SERVER, parentSpanId: client.spanId });
    expect(mcp.attributes['jsonrpc.request.id']).toBe('ws-1');
    expect(
      one(inTrace(client.traceId), (s) => s.name === 'execute_tool test_simple_text').parentSpanId,
    ).toBe(mcp.spanId);
  });
});

describe('tracing off (the default)', () => {
  it('exports nothing and adds no trace ids', async () => {
    const receiver = await startOtlpReceiver();
    // The endpoint is set but no exporter is chosen: OTEL_TRACES_EXPORTER defaults to none.
    const gateway = await startGateway({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: receiver.url });
    try {
      const client = clientSpan();
      const reply = await callTool(
        gateway.mcpUrl,
        'test_simple_text',
        {},
        {
          headers: { traceparent: client.traceparent },
        },
      );
      expect(reply.status).toBe(200);
      const tracing = gateway.app.get(Tracing);
      expect(tracing.enabled).toBe(false);
      await tracing.flush();
    } finally {
      await gateway.close();
    }
    expect(receiver.contentTypes).toEqual([]);
    await receiver.close();
  });
});

describe('OTLP over http/protobuf (the default protocol)', () => {
  it('exports protobuf with the service name to the configured endpoint', async () => {
    const receiver = await startOtlpReceiver();
    const gateway = await startGateway({
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url.replace('/v1/traces', ''),
      OTEL_SERVICE_NAME: 'portico-protobuf',
    });
    try {
      await callTool(gateway.mcpUrl, 'test_simple_text', {});
      await gateway.app.get(Tracing).flush();
      await receiver.waitFor(() => receiver.protobufBodies.length > 0);
    } finally {
      await gateway.close();
      await receiver.close();
    }
    expect(receiver.contentTypes[0]).toBe('application/x-protobuf');
    // Protobuf strings are UTF-8 bytes on the wire.
    const wire = Buffer.concat(receiver.protobufBodies).toString('latin1');
    expect(wire).toContain('portico-protobuf');
    expect(wire).toContain('tools/call test_simple_text');
  });
});

/** The fixture upstream MCP server as a child process. */
async function startUpstream(): Promise<{
  child: ChildProcess;
  url: string;
  stats: () => Promise<unknown>;
}> {
  const child = spawn(process.execPath, [UPSTREAM, '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const port = await new Promise<number>((done, fail) => {
    lines.on('line', (line) => {
      const match = /^READY (\d+)$/.exec(line);
      if (match) {
        done(Number(match[1]));
      }
    });
    child.once('exit', (code) => fail(new Error(`fixture upstream exited with ${code}`)));
  });
  return {
    child,
    url: `http://127.0.0.1:${port}/mcp`,
    stats: async () => (await fetch(`http://127.0.0.1:${port}/stats`)).json(),
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  await new Promise((done) => server.close(done));
  return port;
}

describe('one trace across processes: gateway, BullMQ, the worker process, a federated upstream', () => {
  const prefix = `portico-trace-${randomBytes(4).toString('hex')}:`;
  let receiver: OtlpReceiver;
  let front: RunningGateway;
  let worker: ChildProcess;
  let upstream: Awaited<ReturnType<typeof startUpstream>>;
  let cleanup: () => Promise<void>;
  let apiKey: string;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    upstream = await startUpstream();
    const db = await testDatabaseEnv('postgres');
    cleanup = db.cleanup;
    const env = {
      ...db.env,
      REDIS_URL: REDIS,
      REDIS_KEY_PREFIX: prefix,
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    };
    // The gateway does not consume the queue: `portico worker`, a process of its own, runs it.
    front = await startGateway({ ...env, WORKER_EMBEDDED: 'false', OTEL_SERVICE_NAME: 'front' });
    const workerPort = await freePort();
    worker = spawn(process.execPath, [WORKER_MAIN], {
      env: {
        PATH: process.env.PATH ?? '',
        ...env,
        WORKER_PORT: String(workerPort),
        LOG_LEVEL: 'warn',
        OTEL_BSP_SCHEDULE_DELAY: '50',
        MASTER_KEYS: front.config.security.masterKeys
          .map((k) => `${k.id}:${k.key.toString('base64')}`)
          .join(','),
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const deadline = Date.now() + 40_000;
    for (;;) {
      const ready = await fetch(`http://127.0.0.1:${workerPort}/health/ready`).catch(
        () => undefined,
      );
      if (ready?.status === 200) {
        break;
      }
      if (Date.now() > deadline || worker.exitCode !== null) {
        throw new Error(`the worker process did not become ready (exit code ${worker.exitCode})`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    const seeded = await seedTenant(front.app, { slug: 'spread', fixtures: [] });
    apiKey = seeded.apiKey;
    const tenants = front.app.get(TenantService);
    await tenants.backends(seeded.tenant.id).insert({
      name: 'up',
      kind: 'mcp-http',
      target: upstream.url,
      settings: { internal: true, executor: 'queued', timeoutMs: 5000 },
      credentialsSealed: null,
    });
    await tenants.changed(seeded.tenant);
  });

  afterAll(async () => {
    await front?.close();
    if (worker && worker.exitCode === null) {
      worker.kill('SIGTERM');
      await once(worker, 'exit');
    }
    upstream?.child.kill('SIGTERM');
    if (upstream && upstream.child.exitCode === null) {
      await once(upstream.child, 'exit');
    }
    const redis = new Redis(REDIS);
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) {
      await redis.del(...keys);
    }
    await redis.quit();
    await cleanup?.();
    await receiver?.close();
  });

  it('puts the gateway, queue, worker and upstream spans in the trace of the client', async () => {
    const client = clientSpan();
    const reply = await callTool(
      `${front.mcpUrl}/spread`,
      'up__echo',
      { message: 'across' },
      { key: apiKey, headers: { traceparent: client.traceparent } },
    );
    expect(reply.status).toBe(200);
    expect(reply.body.result.content).toEqual([{ type: 'text', text: 'across' }]);
    const names = () =>
      receiver.spans.filter((s) => s.traceId === client.traceId).map((s) => s.name);
    // The worker process exports on its own schedule (OTEL_BSP_SCHEDULE_DELAY=50).
    await front.app.get(Tracing).flush();
    await receiver.waitFor(() => {
      return ['process tool-calls', 'tools/call echo', 'publish tool-calls'].every((n) =>
        names().includes(n),
      );
    });
    const spans = receiver.spans.filter((s) => s.traceId === client.traceId);
    const http = one(spans, (s) => s.name === 'POST /mcp/:tenant');
    expect(http).toMatchObject({ service: 'front', parentSpanId: client.spanId });
    const mcp = one(spans, (s) => s.name === 'tools/call up__echo');
    expect(mcp).toMatchObject({ service: 'front', kind: SERVER, parentSpanId: http.spanId });
    const execute = one(spans, (s) => s.name === 'execute_tool up__echo');
    expect(execute).toMatchObject({ service: 'front', parentSpanId: mcp.spanId });
    expect(execute.attributes['portico.backend']).toBe('up');
    const publish = one(spans, (s) => s.name === 'publish tool-calls');
    expect(publish).toMatchObject({
      service: 'front',
      kind: PRODUCER,
      parentSpanId: execute.spanId,
    });
    expect(publish.attributes).toMatchObject({
      'messaging.system': 'bullmq',
      'messaging.destination.name': 'tool-calls',
    });
    // On the other node: the wait in the queue and the run, children of the publish.
    const wait = one(spans, (s) => s.name === 'portico.queue.wait');
    expect(wait).toMatchObject({ service: 'portico-worker', parentSpanId: publish.spanId });
    expect(wait.attributes['messaging.message.id']).toBe(
      publish.attributes['messaging.message.id'],
    );
    const run = one(spans, (s) => s.name === 'process tool-calls');
    expect(run).toMatchObject({
      service: 'portico-worker',
      kind: CONSUMER,
      parentSpanId: publish.spanId,
    });
    expect(wait.endNs <= run.endNs).toBe(true);
    // The upstream call, made by the worker node inside the run.
    const backend = one(spans, (s) => s.name === 'tools/call echo');
    expect(backend).toMatchObject({
      service: 'portico-worker',
      kind: CLIENT,
      parentSpanId: run.spanId,
    });
    expect(backend.attributes).toMatchObject({
      'portico.backend': 'up',
      'gen_ai.tool.name': 'echo',
    });
    // The upstream received the context of that CLIENT span in both places.
    const stats = (await upstream.stats()) as {
      toolCalls: {
        name: string;
        traceparentHeader: string | null;
        traceparentMeta: string | null;
      }[];
    };
    const received = stats.toolCalls.filter((c) => c.traceparentMeta?.includes(client.traceId));
    expect(received).toHaveLength(1);
    expect(received[0].traceparentMeta).toBe(`00-${client.traceId}-${backend.spanId}-01`);
    expect(received[0].traceparentHeader).toBe(received[0].traceparentMeta);
  });

  it('exports the worker process spans when it stops (SIGTERM flushes)', async () => {
    const client = clientSpan();
    await callTool(
      `${front.mcpUrl}/spread`,
      'up__echo',
      { message: 'last' },
      {
        key: apiKey,
        headers: { traceparent: client.traceparent },
      },
    );
    worker.kill('SIGTERM');
    const [code] = (await once(worker, 'exit')) as [number | null];
    expect(code).toBe(0);
    await receiver.waitFor((spans) =>
      spans.some(
        (s) =>
          s.traceId === client.traceId &&
          s.service === 'portico-worker' &&
          s.name === 'tools/call echo',
      ),
    );
  });
});

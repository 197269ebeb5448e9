import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { OtlpReceiver, startOtlpReceiver } from './support/otlp-receiver';

const GATEWAY = resolve(__dirname, '../dist/apps/gateway/apps/gateway/src/main.js');
const CLI = resolve(__dirname, '../dist/apps/cli/apps/cli/src/main.js');
const MODERN = '2026-07-28';
const ENVELOPE = {
  'io.modelcontextprotocol/protocolVersion': MODERN,
  'io.modelcontextprotocol/clientCapabilities': {},
};

type Line = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- asserted field by field

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}

/** The built gateway as a child process, its stdout kept raw and as parsed JSON lines. */
class GatewayProcess {
  readonly lines: Line[] = [];
  raw = '';
  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
  ) {
    let pending = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      this.raw += text;
      pending += text;
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      for (const part of parts) {
        if (part.trim().length > 0) {
          this.lines.push(JSON.parse(part) as Line);
        }
      }
    });
  }

  static async start(env: Record<string, string>): Promise<GatewayProcess> {
    const port = await freePort();
    const child = spawn(process.execPath, [GATEWAY], {
      env: { PATH: process.env.PATH, NODE_ENV: 'production', ...env, PORT: String(port) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const gateway = new GatewayProcess(child, `http://127.0.0.1:${port}`);
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const ready = await fetch(`${gateway.url}/health/ready`).catch(() => undefined);
      if (ready?.status === 200) {
        return gateway;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    child.kill('SIGKILL');
    throw new Error(`gateway did not become ready:\n${gateway.raw}`);
  }

  /** Waits until a line matching `predicate` was written. */
  async line(predicate: (line: Line) => boolean, timeoutMs = 5000): Promise<Line> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.find(predicate);
      if (found) {
        return found;
      }
      if (Date.now() > deadline) {
        throw new Error(`no such log line in:\n${this.raw}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      this.child.kill('SIGTERM');
      await once(this.child, 'exit');
    }
  }
}

function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...headers,
    },
    body: JSON.stringify(body),
  });
}

function toolCall(id: number, name: string, args: Record<string, unknown>) {
  return {
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name, arguments: args, _meta: ENVELOPE },
  };
}

describe('structured logs of the built gateway (stdout, JSON lines)', () => {
  const apiKey = `ptk_${randomBytes(32).toString('base64url')}`;
  const adminToken = randomBytes(24).toString('hex');
  const customerSecret = `s3cret-${randomBytes(6).toString('hex')}`;
  let dir: string;
  let receiver: OtlpReceiver;
  let gateway: GatewayProcess;
  const modernHeaders = (name: string) => ({
    authorization: `Bearer ${apiKey}`,
    'mcp-protocol-version': MODERN,
    'mcp-method': 'tools/call',
    'mcp-name': name,
  });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portico-logs-'));
    writeFileSync(
      join(dir, 'portico.yaml'),
      [
        'version: 1',
        'tenants:',
        '  - slug: logs',
        '    name: Logging tenant',
        '    backends:',
        '      - { name: tools, kind: fixture, target: conformance }',
        '    apiKeys:',
        '      - { name: logs-key, secret: { env: LOGS_API_KEY }, roles: [tool-user] }',
      ].join('\n'),
    );
    receiver = await startOtlpReceiver();
    gateway = await GatewayProcess.start({
      LOG_LEVEL: 'info',
      DATA_DIR: dir,
      DATABASE_PATH: ':memory:',
      PORTICO_SECRET: 'logging-secret-logging-secret-32!',
      PORTICO_CONFIG_FILE: join(dir, 'portico.yaml'),
      LOGS_API_KEY: apiKey,
      BOOTSTRAP_ADMIN_TOKEN: adminToken,
      // The second path names a field of Portico's own lines: configured paths apply there too.
      LOG_REDACT_PATHS: 'req.headers["x-customer-secret"], durationMs',
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: '50',
    });
  });

  afterAll(async () => {
    await gateway?.stop();
    await receiver?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes one line per MCP request and one per tool call, bound to tenant, principal and trace', async () => {
    const res = await post(
      `${gateway.url}/mcp/logs`,
      toolCall(41, 'test_simple_text', {}),
      modernHeaders('test_simple_text'),
    );
    expect(res.status).toBe(200);
    const request = await gateway.line((l) => l.msg === 'mcp request' && l.rpcId === 41);
    expect(request).toMatchObject({
      level: 30,
      httpMethod: 'POST',
      status: 200,
      rpcMethod: 'tools/call',
      tool: 'test_simple_text',
      tenant: 'logs',
    });
    expect(typeof request.reqId).toBe('string');
    expect(request.principal).toMatch(/^key:/);
    expect(request.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(request.durationMs).toBe('[redacted]');
    const call = await gateway.line((l) => l.msg === 'tool call' && l.rpcId === 41);
    expect(call).toMatchObject({
      tenant: 'logs',
      principal: request.principal,
      tool: 'test_simple_text',
      backend: 'tools',
      outcome: 'success',
      traceId: request.traceId,
    });
    // The same trace id names the exported spans of that request.
    await receiver.waitFor((spans) =>
      spans.some((s) => s.traceId === request.traceId && s.name === 'tools/call test_simple_text'),
    );
  });

  it('logs a tool call that failed with its outcome', async () => {
    await post(
      `${gateway.url}/mcp/logs`,
      toolCall(42, 'test_error_handling', {}),
      modernHeaders('test_error_handling'),
    );
    const call = await gateway.line((l) => l.msg === 'tool call' && l.rpcId === 42);
    expect(call).toMatchObject({ tool: 'test_error_handling', outcome: 'error' });
  });

  it('logs refusals with their status and no credential', async () => {
    const forged = `ptk_${randomBytes(32).toString('base64url')}`;
    const res = await post(`${gateway.url}/mcp/logs`, toolCall(43, 'test_simple_text', {}), {
      ...modernHeaders('test_simple_text'),
      authorization: `Bearer ${forged}`,
    });
    expect(res.status).toBe(401);
    const line = await gateway.line((l) => l.msg === 'mcp request' && l.rpcId === 43);
    expect(line.status).toBe(401);
    expect(line.tenant).toBeUndefined();
    expect(line.principal).toBeUndefined();
    expect(gateway.raw).not.toContain(forged);
  });

  it('carries the 2025-era session id (its prefix only) on the lines of that session', async () => {
    const init = await post(
      `${gateway.url}/mcp/logs`,
      {
        jsonrpc: '2.0',
        id: 50,
        method: 'initialize',
        params: {
          protocolVersion: '2025-11-25',
          capabilities: {},
          clientInfo: { name: 'log-test', version: '1.0.0' },
        },
      },
      { authorization: `Bearer ${apiKey}` },
    );
    const session = init.headers.get('mcp-session-id')!;
    expect(session).toBeTruthy();
    await post(
      `${gateway.url}/mcp/logs`,
      { jsonrpc: '2.0', id: 51, method: 'tools/list' },
      {
        authorization: `Bearer ${apiKey}`,
        'mcp-session-id': session,
        'mcp-protocol-version': '2025-11-25',
      },
    );
    const line = await gateway.line((l) => l.msg === 'mcp request' && l.rpcId === 51);
    expect(line.sessionId).toBe(session.slice(0, 8));
    expect(gateway.raw).not.toContain(session);
  });

  it('redacts credentials and configured fields in HTTP request lines', async () => {
    const res = await fetch(`${gateway.url}/admin/v1/tenants`, {
      headers: { authorization: `Bearer ${adminToken}`, 'x-customer-secret': customerSecret },
    });
    expect(res.status).toBe(200);
    const line = await gateway.line(
      (l) => l.req?.url === '/admin/v1/tenants' && l.res !== undefined,
    );
    expect(line.req.headers.authorization).toBe('[redacted]');
    expect(line.req.headers['x-customer-secret']).toBe('[redacted]');
    expect(line.res.statusCode).toBe(200);
    for (const secret of [adminToken, customerSecret, apiKey]) {
      expect(gateway.raw).not.toContain(secret);
    }
  });

  it('writes nothing but JSON lines to stdout', () => {
    const text = gateway.raw.trim();
    expect(text.length).toBeGreaterThan(0);
    for (const line of text.split('\n')) {
      expect(() => JSON.parse(line)).not.toThrow();
    }
  });
});

describe('log level', () => {
  it('at warn, writes no per-request lines', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portico-logs-'));
    const gateway = await GatewayProcess.start({
      NODE_ENV: 'development',
      LOG_LEVEL: 'warn',
      DATA_DIR: dir,
      DATABASE_PATH: ':memory:',
      PORTICO_SECRET: 'logging-secret-logging-secret-32!',
    });
    try {
      const res = await post(`${gateway.url}/mcp`, toolCall(1, 'test_simple_text', {}), {
        'mcp-protocol-version': MODERN,
        'mcp-method': 'tools/call',
        'mcp-name': 'test_simple_text',
      });
      expect(res.status).toBe(200);
      await new Promise((r) => setTimeout(r, 200));
      expect(gateway.lines.filter((l) => l.msg === 'mcp request' || l.msg === 'tool call')).toEqual(
        [],
      );
      expect(gateway.lines.every((l) => l.level >= 40)).toBe(true);
    } finally {
      await gateway.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('portico stdio', () => {
  it('keeps stdout for the protocol and logs tool calls as JSON on stderr', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portico-logs-'));
    const child = spawn(process.execPath, [CLI, 'stdio'], {
      env: {
        PATH: process.env.PATH,
        LOG_LEVEL: 'info',
        DATA_DIR: dir,
        DATABASE_PATH: ':memory:',
        PORTICO_SECRET: 'logging-secret-logging-secret-32!',
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.stdin.end(`${JSON.stringify(toolCall(9, 'test_simple_text', {}))}\n`);
    const [code] = (await once(child, 'exit')) as [number];
    rmSync(dir, { recursive: true, force: true });
    expect(code).toBe(0);
    const out = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Line);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ jsonrpc: '2.0', id: 9 });
    const logged = stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Line)
      .find((l) => l.msg === 'tool call');
    expect(logged).toMatchObject({ tool: 'test_simple_text', outcome: 'success', rpcId: 9 });
  });
});

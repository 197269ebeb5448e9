/*
 * Real processes on loopback for the cluster suites: gateway nodes (the built main.js), the
 * fixture upstream MCP server and HAProxy running docker/haproxy.cfg, observed through its
 * runtime API. Every process is started through a ProcessGroup, whose stopAll() kills what is
 * still running, on failure too.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const REPO = join(__dirname, '..', '..');
export const GATEWAY_MAIN = join(
  REPO,
  'dist',
  'apps',
  'gateway',
  'apps',
  'gateway',
  'src',
  'main.js',
);
export const HAPROXY_BIN = '/usr/sbin/haproxy';
export const HAPROXY_CONFIG = join(REPO, 'docker', 'haproxy.cfg');
const UPSTREAM_FIXTURE = join(REPO, 'libs', 'testing', 'fixtures-upstream', 'upstream-server.mjs');

/** Lines of output kept per process for failure messages. */
const KEPT_LINES = 200;

// ---------------------------------------------------------------------------------------
// Waiting

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `probe` until `accept` holds for its value, and returns that value; throws after
 * `timeoutMs` with the last value seen (and `detail()`, e.g. process output).
 */
export async function until<T>(
  what: string,
  probe: () => Promise<T>,
  accept: (value: T) => boolean,
  options: { timeoutMs: number; intervalMs?: number; detail?: () => string },
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let last: T | undefined;
  let lastError: unknown;
  for (;;) {
    try {
      last = await probe();
      lastError = undefined;
      if (accept(last)) {
        return last;
      }
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const seen =
        lastError !== undefined ? `error ${describeError(lastError)}` : JSON.stringify(last);
      const detail = options.detail ? `\n${options.detail()}` : '';
      throw new Error(
        `${what}: not reached within ${options.timeoutMs} ms (last: ${seen})${detail}`,
      );
    }
    await delay(options.intervalMs ?? 50);
  }
}

/** "fetch failed" alone says nothing: the socket-level cause is what matters here. */
export function describeError(err: unknown): string {
  // Duck-typed: fetch's errors come from another realm than Jest's Error.
  if (typeof err !== 'object' || err === null || !('message' in err)) {
    return String(err);
  }
  const { message, cause } = err as {
    message: string;
    cause?: { code?: string; message?: string };
  };
  const detail = [cause?.code, cause?.message].filter(Boolean).join(' ');
  return detail ? `${message}: ${detail}` : message;
}

/** `promise`'s value, or `fallback` once `ms` have passed (the timer never outlives it). */
export async function within<T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<F>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A loopback TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------------------
// Processes

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A child process with its recent output and a promise of its exit. */
export class ManagedProcess {
  private readonly lines: string[] = [];
  private readonly listeners: ((line: string) => void)[] = [];
  readonly exit: Promise<Exit>;
  private exitValue?: Exit;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    this.exit = new Promise<Exit>((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitValue = { code, signal };
        resolve(this.exitValue);
      });
      child.once('error', (err) => {
        this.record(`spawn error: ${err.message}`);
        this.exitValue = { code: null, signal: null };
        resolve(this.exitValue);
      });
    });
    for (const stream of [child.stdout, child.stderr]) {
      if (stream) {
        createInterface({ input: stream }).on('line', (line) => this.record(line));
      }
    }
  }

  get running(): boolean {
    return this.exitValue === undefined;
  }

  get exited(): Exit | undefined {
    return this.exitValue;
  }

  /** Subscribes to each further output line; returns the unsubscribe function. */
  onLine(listener: (line: string) => void): () => void {
    this.listeners.push(listener);
    return () => {
      const at = this.listeners.indexOf(listener);
      if (at >= 0) {
        this.listeners.splice(at, 1);
      }
    };
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) {
      this.child.kill(signal);
    }
  }

  /** SIGTERM, then SIGKILL if it is still there after `graceMs`. */
  async stop(graceMs = 5000): Promise<Exit> {
    if (!this.running) {
      return this.exitValue as Exit;
    }
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    try {
      return await this.exit;
    } finally {
      clearTimeout(timer);
    }
  }

  tail(count = 40): string {
    return `--- ${this.name} (last ${Math.min(count, this.lines.length)} lines)\n${this.lines
      .slice(-count)
      .join('\n')}`;
  }

  private record(line: string): void {
    for (const listener of this.listeners) {
      listener(line);
    }
    this.lines.push(line);
    if (this.lines.length > KEPT_LINES) {
      this.lines.shift();
    }
  }
}

/** Starts processes and guarantees none outlives the suite. */
export class ProcessGroup {
  private readonly processes: ManagedProcess[] = [];

  start(
    name: string,
    command: string,
    args: string[],
    env: Record<string, string>,
  ): ManagedProcess {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const managed = new ManagedProcess(name, child);
    this.processes.push(managed);
    return managed;
  }

  /** Output of every process, for failure messages. */
  tails(count = 40): string {
    return this.processes.map((p) => p.tail(count)).join('\n');
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.processes.map((p) => p.stop(2000)));
  }
}

/** Only what a child needs: nothing from the caller's shell (DATABASE_URL, REDIS_URL...) leaks in. */
function baseEnv(): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin' };
}

// ---------------------------------------------------------------------------------------
// Gateway nodes

export class GatewayNode {
  process!: ManagedProcess;

  constructor(
    private readonly group: ProcessGroup,
    readonly name: string,
    readonly port: number,
    private readonly env: Record<string, string>,
  ) {}

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get url(): string {
    return `http://${this.address}`;
  }

  /** Starts the process (again, after an exit) and waits until /health/ready answers 200. */
  async start(timeoutMs = 30_000): Promise<void> {
    this.process = this.group.start(this.name, process.execPath, [GATEWAY_MAIN], {
      ...baseEnv(),
      ...this.env,
      HOST: '127.0.0.1',
      PORT: String(this.port),
    });
    await until(
      `${this.name} ready`,
      async () => {
        if (!this.process.running) {
          throw new Error(`exited ${JSON.stringify(this.process.exited)}`);
        }
        return this.readiness();
      },
      (status) => status === '200',
      { timeoutMs, intervalMs: 100, detail: () => this.process.tail() },
    );
  }

  /**
   * GET /health/ready as `200`, `503 draining` (the node's own readiness says it is draining),
   * `503` (any other 503), or the connection error's code.
   */
  async readiness(): Promise<string> {
    try {
      const response = await fetch(`${this.url}/health/ready`, {
        signal: AbortSignal.timeout(2000),
      });
      const body = (await response.json().catch(() => ({}))) as {
        error?: { lifecycle?: { message?: string } };
      };
      const draining = body.error?.lifecycle?.message === 'draining';
      return draining ? `${response.status} draining` : String(response.status);
    } catch (err) {
      return (err as { cause?: { code?: string } }).cause?.code ?? describeError(err);
    }
  }

  /** MCP requests this node has answered (every transport, method and outcome). */
  async mcpRequests(): Promise<number> {
    const response = await fetch(`${this.url}/metrics`, { signal: AbortSignal.timeout(2000) });
    if (!response.ok) {
      throw new Error(`${this.name} /metrics: HTTP ${response.status}`);
    }
    let total = 0;
    for (const line of (await response.text()).split('\n')) {
      const match = /^portico_mcp_requests_total(?:\{[^}]*\})? (\S+)$/.exec(line);
      if (match) {
        total += Number(match[1]);
      }
    }
    return total;
  }
}

// ---------------------------------------------------------------------------------------
// HAProxy

/** srv_op_state of `show servers state`. */
export enum ServerState {
  Stopped = 0,
  /** Up and taking traffic, its weight still ramping up (slowstart). */
  Starting = 1,
  Running = 2,
  Stopping = 3,
}

export function inRotation(state: ServerState | undefined): boolean {
  return state === ServerState.Running || state === ServerState.Starting;
}

/** One server line of `show stat`. */
export interface ServerStat {
  /** Streams (requests) in progress on the server. */
  current: number;
  /** Requests sent to the server since start. */
  total: number;
  /** UP, DOWN, "UP 1/2" (going down)... */
  status: string;
}

export class Haproxy {
  private constructor(
    readonly process: ManagedProcess,
    readonly port: number,
    private readonly socket: string,
  ) {}

  /** Runs docker/haproxy.cfg with `servers` (e.g. { PORTICO_GW1: '127.0.0.1:4000' }). */
  static async start(
    group: ProcessGroup,
    dir: string,
    servers: Record<string, string>,
  ): Promise<Haproxy> {
    const port = await freePort();
    const socket = join(dir, 'haproxy-admin.sock');
    const child = group.start('haproxy', HAPROXY_BIN, ['-f', HAPROXY_CONFIG, '-db'], {
      ...baseEnv(),
      ...servers,
      PORTICO_HAPROXY_BIND: `127.0.0.1:${port}`,
      PORTICO_HAPROXY_SOCKET: socket,
    });
    const haproxy = new Haproxy(child, port, socket);
    await until(
      'HAProxy runtime API',
      async () => {
        if (!child.running) {
          throw new Error(`exited ${JSON.stringify(child.exited)}`);
        }
        return haproxy.command('show info');
      },
      (info) => info.includes('Name: HAProxy'),
      { timeoutMs: 10_000, intervalMs: 100, detail: () => child.tail() },
    );
    return haproxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** One command on the runtime API (non-interactive: the socket closes after the answer). */
  command(line: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const client = connect(this.socket);
      let answer = '';
      client.setEncoding('utf8');
      client.on('data', (chunk: string) => (answer += chunk));
      client.once('end', () => resolve(answer));
      client.once('error', reject);
      client.end(`${line}\n`);
    });
  }

  /** srv_op_state of each server of `backend`, by server name. */
  async serverStates(backend = 'portico'): Promise<Record<string, ServerState>> {
    const answer = await this.command(`show servers state ${backend}`);
    const states: Record<string, ServerState> = {};
    for (const line of answer.split('\n')) {
      // be_id be_name srv_id srv_name srv_addr srv_op_state ...
      const fields = line.trim().split(/\s+/);
      if (fields.length > 5 && fields[1] === backend && /^\d+$/.test(fields[0])) {
        states[fields[3]] = Number(fields[5]);
      }
    }
    return states;
  }

  async waitForState(
    server: string,
    accept: (state: ServerState | undefined) => boolean,
    timeoutMs: number,
  ): Promise<ServerState | undefined> {
    return until(
      `HAProxy state of ${server}`,
      async () => (await this.serverStates())[server],
      accept,
      { timeoutMs, intervalMs: 50, detail: () => this.process.tail() },
    );
  }

  /** `show stat` for the servers of `backend`, by server name. */
  async serverStats(backend = 'portico'): Promise<Record<string, ServerStat>> {
    const answer = await this.command('show stat');
    const [header, ...rows] = answer.split('\n').filter((line) => line.length > 0);
    const columns = header.replace(/^# /, '').split(',');
    const at = (name: string) => columns.indexOf(name);
    const stats: Record<string, ServerStat> = {};
    for (const row of rows) {
      const cells = row.split(',');
      const name = cells[at('svname')];
      if (cells[at('pxname')] === backend && name !== 'FRONTEND' && name !== 'BACKEND') {
        stats[name] = {
          current: Number(cells[at('scur')]),
          total: Number(cells[at('stot')]),
          status: cells[at('status')],
        };
      }
    }
    return stats;
  }
}

// ---------------------------------------------------------------------------------------
// The fixture upstream MCP server (libs/testing/fixtures-upstream)

export interface UpstreamStats {
  slowStarted: number;
  slowCancelled: number;
  slowFinished: number;
}

export class UpstreamFixture {
  private constructor(
    readonly process: ManagedProcess,
    readonly port: number,
  ) {}

  static async start(group: ProcessGroup): Promise<UpstreamFixture> {
    const child = group.start('upstream', process.execPath, [UPSTREAM_FIXTURE, '0'], baseEnv());
    const port = await new Promise<number>((resolve, reject) => {
      child.onLine((line) => {
        const match = /^READY (\d+)$/.exec(line);
        if (match) {
          resolve(Number(match[1]));
        }
      });
      void child.exit.then((exit) =>
        reject(new Error(`fixture upstream exited ${JSON.stringify(exit)}\n${child.tail()}`)),
      );
    });
    return new UpstreamFixture(child, port);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/mcp`;
  }

  async stats(): Promise<UpstreamStats> {
    const response = await fetch(`http://127.0.0.1:${this.port}/stats`);
    return (await response.json()) as UpstreamStats;
  }
}

// ---------------------------------------------------------------------------------------
// MCP over HTTP, by hand: the exact bytes matter more here than a client library's retries.

export const MODERN_VERSION = '2026-07-28';
export const SESSION_VERSION = '2025-11-25';

export interface JsonRpcReply {
  jsonrpc: '2.0';
  id: number | string | null;
  result?: Record<string, unknown>;
  error?: { code: number; message: string; data?: unknown };
}

export interface McpReply {
  status: number;
  headers: Headers;
  /** The JSON-RPC response to the request, from a JSON body or the SSE stream. */
  reply?: JsonRpcReply;
  body: string;
}

let nextId = 1;

/** A 2026-07-28 (stateless) request: everything in `_meta`, routing headers alongside. */
export function modernRequest(
  method: string,
  params: Record<string, unknown> = {},
): { body: Record<string, unknown>; headers: Record<string, string> } {
  const name: Record<string, string> =
    typeof params.name === 'string' ? { 'mcp-name': params.name } : {};
  return {
    body: {
      jsonrpc: '2.0',
      id: nextId++,
      method,
      params: {
        ...params,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      },
    },
    headers: { 'mcp-protocol-version': MODERN_VERSION, 'mcp-method': method, ...name },
  };
}

/** A 2025-era request (id assigned here) or notification (`notification: true`). */
export function sessionMessage(
  method: string,
  params: Record<string, unknown> = {},
  notification = false,
): Record<string, unknown> {
  return notification
    ? { jsonrpc: '2.0', method, params }
    : { jsonrpc: '2.0', id: nextId++, method, params };
}

export async function postMcp(
  url: string,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<McpReply> {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...headers,
    },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    reply: findReply(text, response.headers.get('content-type') ?? '', body.id),
    body: text,
  };
}

function findReply(text: string, contentType: string, id: unknown): JsonRpcReply | undefined {
  const candidates: unknown[] = [];
  try {
    if (contentType.startsWith('application/json')) {
      candidates.push(JSON.parse(text));
    } else if (contentType.startsWith('text/event-stream')) {
      for (const event of text.split(/\r?\n\r?\n/)) {
        const data = event
          .split(/\r?\n/)
          .filter((line) => line.startsWith('data:'))
          .map((line) => line.slice(5).trimStart())
          .join('\n');
        if (data.length > 0) {
          candidates.push(JSON.parse(data));
        }
      }
    }
  } catch {
    return undefined;
  }
  return candidates.find(
    (c): c is JsonRpcReply =>
      typeof c === 'object' && c !== null && (c as JsonRpcReply).id === id && !('method' in c),
  );
}

/** The text of the first text content block of a tools/call result. */
export function resultText(reply: JsonRpcReply | undefined): string | undefined {
  const content = reply?.result?.content as { type: string; text?: string }[] | undefined;
  return content?.find((block) => block.type === 'text')?.text;
}

/** An API key in the shape the gateway accepts (`ptk_` and 48 random characters). */
export function newApiKey(): string {
  return `ptk_${randomBytes(24).toString('hex')}`;
}

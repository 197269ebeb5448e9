/*
 * Helpers for driving the BUILT Portico CLI (`portico stdio`) as a child process: a raw
 * line-level driver that records everything the server writes, a JSON-RPC validator for
 * stdout, a wire tap for the official SDK stdio transports, and the client-side answers
 * (elicitation, sampling, roots) the conformance fixtures expect.
 */
import { spawn, type ChildProcess, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { within } from './sdk';

/**
 * Default bound for waiting on the child. Generous because the first answer includes booting
 * Node and Nest (under 1 s when idle, several seconds on a loaded CI machine); a healthy run
 * never waits this long, and a hung server still fails the test well inside Jest's timeout.
 */
export const WAIT_MS = 10_000;

export const CLI_MAIN = resolve(__dirname, '../../dist/apps/cli/apps/cli/src/main.js');

export const MODERN = '2026-07-28';
export const LEGACY = '2025-11-25';
export const PROTOCOL_VERSION_KEY = 'io.modelcontextprotocol/protocolVersion';
export const CLIENT_CAPABILITIES_KEY = 'io.modelcontextprotocol/clientCapabilities';
export const LOG_LEVEL_KEY = 'io.modelcontextprotocol/logLevel';

/** Fails with an actionable message when `npm run build` has not produced the CLI. */
export function assertCliBuilt(): void {
  if (!existsSync(CLI_MAIN)) {
    throw new Error(
      `The built CLI is missing: ${CLI_MAIN} does not exist. ` +
        'Run `npm run build` before the stdio e2e tests (they spawn the compiled CLI).',
    );
  }
}

/**
 * The environment of a spawned CLI: only what Node needs plus the test's variables, so the
 * developer's shell (LOG_LEVEL, PORT, ...) cannot change what is tested.
 */
export function cliEnv(extra: Record<string, string> = {}): Record<string, string> {
  // A throwaway database and a fixed key: a spawned CLI must not write ./data.
  const env: Record<string, string> = {
    NODE_ENV: 'test',
    DATABASE_PATH: ':memory:',
    MASTER_KEYS: `test:${Buffer.alloc(32, 7).toString('base64')}`,
  };
  for (const key of ['PATH', 'HOME', 'SYSTEMROOT', 'TMPDIR']) {
    const value = process.env[key];
    if (value !== undefined) {
      env[key] = value;
    }
  }
  return { ...env, ...extra };
}

// ---------------------------------------------------------------------------------------------
// JSON-RPC shapes and validation of what the server writes

export interface WireError {
  code: number;
  message: string;
  data?: unknown;
}

/** A loosely typed JSON-RPC message as read off the wire. */
export interface WireMessage {
  jsonrpc?: unknown;
  id?: string | number | null;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: WireError;
}

/** Why `value` is not a valid JSON-RPC 2.0 message, or undefined when it is one. */
export function jsonRpcProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return 'not a JSON object';
  }
  const m = value as Record<string, unknown>;
  if (m.jsonrpc !== '2.0') {
    return `jsonrpc is ${JSON.stringify(m.jsonrpc)}, not "2.0"`;
  }
  const hasId = 'id' in m;
  const validId = typeof m.id === 'string' || typeof m.id === 'number';
  if ('method' in m) {
    if (typeof m.method !== 'string') {
      return 'method is not a string';
    }
    if (hasId && !validId) {
      return 'a request id must be a string or a number';
    }
    if ('params' in m && (typeof m.params !== 'object' || m.params === null)) {
      return 'params is not an object or array';
    }
    if ('result' in m || 'error' in m) {
      return 'a request/notification must not carry result or error';
    }
    return undefined;
  }
  if (!hasId || !(validId || m.id === null)) {
    return 'a response needs an id (string, number or null)';
  }
  if ('result' in m === 'error' in m) {
    return 'a response needs exactly one of result and error';
  }
  if ('error' in m) {
    const e = m.error as Record<string, unknown> | null;
    if (typeof e !== 'object' || e === null) {
      return 'error is not an object';
    }
    if (!Number.isInteger(e.code) || typeof e.message !== 'string') {
      return 'error needs an integer code and a string message';
    }
  } else if (m.id === null) {
    return 'a successful response must not have id null';
  }
  return undefined;
}

export interface StdoutLine {
  /** The line as written, without its newline. */
  readonly text: string;
  /** Parsed JSON, when it parsed. */
  readonly json?: unknown;
  /** Set when the stream ended without a newline after this text. */
  readonly unterminated?: boolean;
}

/** Every way stdout broke the stdio transport rules (empty when it is clean). */
export function stdoutViolations(lines: readonly StdoutLine[]): string[] {
  const out: string[] = [];
  lines.forEach((line, index) => {
    const where = `stdout line ${index + 1} ${JSON.stringify(line.text.slice(0, 200))}`;
    if (line.unterminated) {
      out.push(`${where}: not terminated by a newline`);
    }
    if (line.json === undefined) {
      out.push(`${where}: not valid JSON`);
      return;
    }
    // Arrays only appear as batch responses (protocol 2025-03-26).
    const messages = Array.isArray(line.json) ? line.json : [line.json];
    if (messages.length === 0) {
      out.push(`${where}: empty array`);
    }
    for (const message of messages) {
      const problem = jsonRpcProblem(message);
      if (problem) {
        out.push(`${where}: ${problem}`);
      }
    }
  });
  return out;
}

export const isResponse = (m: WireMessage): boolean => m.method === undefined && 'id' in m;
export const isNotification = (m: WireMessage): boolean =>
  m.method !== undefined && m.id === undefined;
export const isServerRequest = (m: WireMessage): boolean =>
  m.method !== undefined && m.id !== undefined;

// ---------------------------------------------------------------------------------------------
// The raw process driver

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Date.now() when the process exited. */
  at: number;
}

const running = new Set<StdioProcess>();

/**
 * `portico stdio` as a child process with all three stdio pipes: write lines, read what comes
 * back (every stdout line is recorded, parsed or not), signal it, watch it exit.
 */
export class StdioProcess {
  readonly child: ChildProcessWithoutNullStreams;
  readonly lines: StdoutLine[] = [];
  stderr = '';
  /** Resolves once the process exited and its stdio streams closed (all output is in). */
  readonly closed: Promise<ExitInfo>;
  private partial = '';
  private exitInfo?: ExitInfo;
  private waiters: {
    predicate: (m: WireMessage) => boolean;
    resolve: (m: WireMessage) => void;
    reject: (error: Error) => void;
  }[] = [];
  private stderrWaiters: { pattern: RegExp; resolve: () => void; reject: (e: Error) => void }[] =
    [];

  private constructor(env: Record<string, string>) {
    this.child = spawn(process.execPath, [CLI_MAIN, 'stdio'], {
      env: cliEnv(env),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stdout.setEncoding('utf8');
    this.child.stderr.setEncoding('utf8');
    this.child.stdout.on('data', (chunk: string) => this.onStdout(chunk));
    this.child.stderr.on('data', (chunk: string) => {
      this.stderr += chunk;
      for (const waiter of [...this.stderrWaiters]) {
        if (waiter.pattern.test(this.stderr)) {
          this.stderrWaiters = this.stderrWaiters.filter((w) => w !== waiter);
          waiter.resolve();
        }
      }
    });
    // Writing to a process that already exited raises EPIPE; the tests look at exit instead.
    this.child.stdin.on('error', () => undefined);
    this.child.once('exit', (code, signal) => {
      this.exitInfo = { code, signal, at: Date.now() };
    });
    this.closed = new Promise<ExitInfo>((resolveClosed) => {
      this.child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        if (this.partial !== '') {
          this.record(this.partial, true);
          this.partial = '';
        }
        running.delete(this);
        const info = this.exitInfo ?? { code, signal, at: Date.now() };
        // Nothing more can arrive: fail whoever still waits now instead of at their timeout.
        const gone = new Error(
          `the server exited (code ${String(info.code)}, signal ${String(info.signal)}) ` +
            `before it was seen; stderr: ${this.stderr || '(empty)'}`,
        );
        for (const waiter of [...this.waiters, ...this.stderrWaiters]) {
          waiter.reject(gone);
        }
        this.waiters = [];
        this.stderrWaiters = [];
        resolveClosed(info);
      });
    });
  }

  /** Spawns the built CLI; `env` is added to a minimal environment. */
  static start(env: Record<string, string> = {}): StdioProcess {
    const proc = new StdioProcess(env);
    running.add(proc);
    return proc;
  }

  /** Kills (SIGKILL) every process a test left running; for afterEach. */
  static async killAll(): Promise<void> {
    await Promise.all([...running].map((proc) => proc.kill()));
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  /** The parsed JSON-RPC messages written so far (batches flattened). */
  get messages(): WireMessage[] {
    return this.lines.flatMap((line) =>
      Array.isArray(line.json) ? (line.json as WireMessage[]) : line.json ? [line.json] : [],
    );
  }

  /** Messages written after the first `count` lines. */
  messagesAfter(count: number): WireMessage[] {
    return this.lines
      .slice(count)
      .flatMap((line) =>
        Array.isArray(line.json) ? (line.json as WireMessage[]) : line.json ? [line.json] : [],
      );
  }

  /** Writes one message as a newline-terminated line. */
  send(message: object): void {
    this.writeRaw(`${JSON.stringify(message)}\n`);
  }

  /** Writes text as is (use it for malformed or over-long frames). */
  writeRaw(text: string): void {
    this.child.stdin.write(text);
  }

  /** Sends a request and waits for the response with its id. */
  async request(
    id: string | number,
    method: string,
    params?: Record<string, unknown>,
    ms = WAIT_MS,
  ): Promise<WireMessage> {
    this.send({ jsonrpc: '2.0', id, method, ...(params ? { params } : {}) });
    return this.response(id, ms);
  }

  /** Waits for the (first) response carrying `id`. */
  response(id: string | number | null, ms = WAIT_MS): Promise<WireMessage> {
    return this.waitFor(
      (m) => isResponse(m) && m.id === id,
      ms,
      `the response to id ${JSON.stringify(id)}`,
    );
  }

  /** Waits for a message (already written or future) matching `predicate`. */
  waitFor(
    predicate: (m: WireMessage) => boolean,
    ms = WAIT_MS,
    what = 'a matching message',
  ): Promise<WireMessage> {
    const found = this.messages.find(predicate);
    if (found) {
      return Promise.resolve(found);
    }
    if (this.child.exitCode !== null || this.child.signalCode !== null) {
      return Promise.reject(new Error(`the server already exited; ${what} never came`));
    }
    const waiting = new Promise<WireMessage>((resolveWait, rejectWait) => {
      this.waiters.push({ predicate, resolve: resolveWait, reject: rejectWait });
    });
    return within(waiting, ms, `waiting for ${what} on stdout (stderr so far: ${this.stderr})`);
  }

  /** Waits until the server's stderr (its log) matches `pattern`. */
  waitForStderr(pattern: RegExp, ms = WAIT_MS): Promise<void> {
    if (pattern.test(this.stderr)) {
      return Promise.resolve();
    }
    const waiting = new Promise<void>((resolveWait, rejectWait) => {
      this.stderrWaiters.push({ pattern, resolve: resolveWait, reject: rejectWait });
    });
    return within(waiting, ms, `waiting for ${String(pattern)} on stderr (got: ${this.stderr})`);
  }

  /** Closes the server's stdin (the client going away, or the spec's shutdown step 1). */
  endInput(): void {
    this.child.stdin.end();
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** Waits for exit (and closed stdio) for at most `ms`. */
  waitForExit(ms: number): Promise<ExitInfo> {
    return within(this.closed, ms, `process exit (stderr: ${this.stderr})`);
  }

  /** SIGKILL unless it already exited; resolves once it is gone. */
  async kill(): Promise<void> {
    if (!this.exited) {
      this.child.kill('SIGKILL');
    }
    await this.closed;
  }

  private onStdout(chunk: string): void {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop() ?? '';
    for (const part of parts) {
      this.record(part, false);
    }
  }

  private record(text: string, unterminated: boolean): void {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    this.lines.push(unterminated ? { text, json, unterminated } : { text, json });
    const messages = Array.isArray(json) ? (json as WireMessage[]) : json ? [json] : [];
    for (const message of messages as WireMessage[]) {
      for (const waiter of [...this.waiters]) {
        if (waiter.predicate(message)) {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          waiter.resolve(message);
        }
      }
    }
  }
}

/** `params` with the 2026-07-28 per-request envelope. */
export function enveloped(
  params: Record<string, unknown> = {},
  capabilities: Record<string, unknown> = {},
  extraMeta: Record<string, unknown> = {},
): Record<string, unknown> {
  const meta = (params._meta as Record<string, unknown> | undefined) ?? {};
  return {
    ...params,
    _meta: {
      ...meta,
      [PROTOCOL_VERSION_KEY]: MODERN,
      [CLIENT_CAPABILITIES_KEY]: capabilities,
      ...extraMeta,
    },
  };
}

/** Runs the 2025 handshake (initialize + notifications/initialized) on a raw process. */
export async function initializeLegacy(
  proc: StdioProcess,
  capabilities: Record<string, unknown> = {},
  id: string | number = 'init',
): Promise<WireMessage> {
  const response = await proc.request(id, 'initialize', {
    protocolVersion: LEGACY,
    capabilities,
    clientInfo: { name: 'stdio-e2e-raw', version: '1.0.0' },
  });
  proc.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  return response;
}

/** The text of the first text content block of a tool or prompt result. */
export function textOf(result: unknown): string | undefined {
  const content = (result as { content?: { type: string; text?: string }[] } | undefined)?.content;
  return content?.find((c) => c.type === 'text')?.text;
}

// ---------------------------------------------------------------------------------------------
// SDK transports: a wire tap and the server child process

export interface TapEntry {
  readonly dir: 'in' | 'out';
  readonly message: WireMessage;
}

interface LooseTransport {
  onmessage?: (...args: unknown[]) => void;
  send: (...args: unknown[]) => Promise<void>;
}

/**
 * Records every message an SDK stdio transport sends and receives, in order. Attach it BEFORE
 * `client.connect()`: it wraps the instance's `send` and turns `onmessage` into an accessor,
 * so the handler the client installs during connect is wrapped too. Only the instance is
 * touched; the SDK v2 version negotiation still sees the base StdioClientTransport prototype
 * (it spawns its disposable probe sibling only for exactly that class).
 */
export class WireTap {
  readonly entries: TapEntry[] = [];

  attach(transport: object): void {
    const t = transport as LooseTransport;
    const send = t.send.bind(transport);
    t.send = (message: unknown, ...rest: unknown[]) => {
      this.entries.push({ dir: 'out', message: message as WireMessage });
      return send(message, ...rest);
    };
    let handler: LooseTransport['onmessage'];
    const record = (message: unknown, ...rest: unknown[]): void => {
      this.entries.push({ dir: 'in', message: message as WireMessage });
      handler?.(message, ...rest);
    };
    Object.defineProperty(transport, 'onmessage', {
      configurable: true,
      enumerable: true,
      get: () => (handler ? record : undefined),
      set: (fn: LooseTransport['onmessage']) => {
        handler = fn;
      },
    });
  }

  get sent(): WireMessage[] {
    return this.entries.filter((e) => e.dir === 'out').map((e) => e.message);
  }

  get received(): WireMessage[] {
    return this.entries.filter((e) => e.dir === 'in').map((e) => e.message);
  }

  /** Outgoing requests of `method` (for a tool or prompt `name`, or a resource `uri`). */
  requests(method: string, name?: string): WireMessage[] {
    return this.sent.filter(
      (m) =>
        m.method === method &&
        m.id !== undefined &&
        (name === undefined || m.params?.name === name || m.params?.uri === name),
    );
  }

  /** Index in `entries` of the response to the outgoing request `id`. */
  responseIndex(id: unknown): number {
    return this.entries.findIndex(
      (e) => e.dir === 'in' && isResponse(e.message) && e.message.id === id,
    );
  }

  indexOf(message: WireMessage): number {
    return this.entries.findIndex((e) => e.message === message);
  }
}

/**
 * The server process an SDK StdioClientTransport spawned. Both SDKs keep it in the private
 * `_process` field and drop the reference in `close()`, so grab it right after connect.
 */
export function serverProcessOf(transport: object): ChildProcess {
  const child = (transport as { _process?: ChildProcess })._process;
  if (!child) {
    throw new Error('the transport has no child process (not started, or already closed)');
  }
  return child;
}

/** Resolves with the exit of `child` (immediately when it already exited). */
export function exitOf(child: ChildProcess): Promise<ExitInfo> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode, at: Date.now() });
  }
  return new Promise((resolveExit) =>
    child.once('exit', (code, signal) => resolveExit({ code, signal, at: Date.now() })),
  );
}

// ---------------------------------------------------------------------------------------------
// What the client answers when a conformance fixture asks

export const ELICITED = { username: 'ada', email: 'ada@example.com' };
export const SAMPLED_TEXT = 'Paris';
export const SAMPLING_MODEL = 'stdio-e2e-model';
export const ROOTS = [
  { uri: 'file:///workspace/app', name: 'app' },
  { uri: 'file:///workspace/lib', name: 'lib' },
];

export const STDIO_CLIENT_CAPABILITIES = {
  elicitation: { form: {} },
  sampling: {},
  roots: { listChanged: true },
};

export type ElicitAnswer =
  { action: 'accept'; content: Record<string, string> } | { action: 'decline' | 'cancel' };

export class FixtureAnswers {
  elicitation: ElicitAnswer = { action: 'accept', content: ELICITED };
  readonly elicitations: Record<string, unknown>[] = [];
  readonly samplings: Record<string, unknown>[] = [];
  rootsListed = 0;

  readonly elicit = (params: Record<string, unknown>): ElicitAnswer => {
    this.elicitations.push(params);
    return this.elicitation;
  };

  readonly sample = (
    params: Record<string, unknown>,
  ): {
    model: string;
    role: 'assistant';
    content: { type: 'text'; text: string };
    stopReason: string;
  } => {
    this.samplings.push(params);
    return {
      model: SAMPLING_MODEL,
      role: 'assistant',
      content: { type: 'text', text: SAMPLED_TEXT },
      stopReason: 'endTurn',
    };
  };

  readonly roots = (): { roots: { uri: string; name: string }[] } => {
    this.rootsListed++;
    return { roots: ROOTS };
  };

  reset(): void {
    this.elicitation = { action: 'accept', content: ELICITED };
    this.elicitations.length = 0;
    this.samplings.length = 0;
    this.rootsListed = 0;
  }
}

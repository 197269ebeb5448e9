/*
 * What suites of queued tool calls share: the fixture upstream MCP server as a child process,
 * `portico worker` processes from the build, a tools/call over HTTP, and Redis cleanup.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import Redis from 'ioredis';
import type { RunningGateway } from './gateway';
import { within } from './sdk';

export const REDIS_URL = 'redis://127.0.0.1:6379';
const MODERN = '2026-07-28';
const ROOT = join(__dirname, '..', '..');
const FIXTURE = join(ROOT, 'libs', 'testing', 'fixtures-upstream', 'upstream-server.mjs');
const WORKER_MAIN = join(ROOT, 'dist', 'apps', 'worker', 'apps', 'worker', 'src', 'main.js');

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- asserted field by field

export interface FixtureUpstream {
  /** Its MCP endpoint, for an `mcp-http` backend. */
  readonly url: string;
  /** Its GET /stats counters. */
  stats(): Promise<Json>;
  stop(): Promise<void>;
}

/**
 * Starts a fixture process (`node script ...args`) that prints `READY <port>` once it listens;
 * resolves with the child and that port. The child is the caller's to stop (stopProcess).
 */
export async function startReadyProcess(
  script: string,
  args: string[],
  timeoutMs = 10_000,
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [script, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout });
  try {
    const port = await within(
      new Promise<number>((resolve, reject) => {
        lines.on('line', (line) => {
          const match = /^READY (\d+)$/.exec(line);
          if (match) {
            resolve(Number(match[1]));
          }
        });
        child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
      }),
      timeoutMs,
      `${script} start`,
    );
    return { child, port };
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
}

/** Starts libs/testing/fixtures-upstream/upstream-server.mjs on a free port. */
export async function startFixtureUpstream(): Promise<FixtureUpstream> {
  const { child, port } = await startReadyProcess(FIXTURE, ['0']);
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    stats: async () => {
      const res = await fetch(`http://127.0.0.1:${port}/stats`);
      return (await res.json()) as Json;
    },
    stop: () => stopProcess(child),
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

/**
 * Starts a `portico worker` process from the build (run `npm run build` first) with the
 * gateway's database, Redis and master keys plus `env`, and waits until it is ready.
 */
export async function startWorkerProcess(
  gateway: RunningGateway,
  env: Record<string, string>,
): Promise<ChildProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [WORKER_MAIN], {
    env: {
      PATH: process.env.PATH ?? '',
      MASTER_KEYS: gateway.config.security.masterKeys
        .map((k) => `${k.id}:${k.key.toString('base64')}`)
        .join(','),
      LOG_LEVEL: 'warn',
      ...env,
      WORKER_PORT: String(port),
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const deadline = Date.now() + 30_000;
  while (
    (await fetch(`http://127.0.0.1:${port}/health/ready`).catch(() => undefined))?.status !== 200
  ) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error('the worker process did not become ready');
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return child;
}

/** Stops a child process (SIGTERM, then SIGKILL after `graceMs`) and waits for its exit. */
export async function stopProcess(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return;
  }
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** What a 2026-07-28 tools/call may carry besides its name and arguments. */
export interface ToolCallOptions {
  readonly signal?: AbortSignal;
  readonly progressToken?: string;
  /** The `_meta` clientCapabilities (none by default). */
  readonly capabilities?: Json;
  /** More params (e.g. a retry's requestState and inputResponses). */
  readonly params?: Json;
}

/** Posts one 2026-07-28 tools/call to the tenant endpoint `slug`; the raw answer. */
export async function postToolCall(
  gateway: RunningGateway,
  slug: string,
  apiKey: string,
  name: string,
  args: Record<string, unknown> = {},
  options: ToolCallOptions = {},
): Promise<{ status: number; text: string }> {
  const res = await fetch(`${gateway.mcpUrl}/${slug}`, {
    method: 'POST',
    signal: options.signal,
    headers: {
      authorization: `Bearer ${apiKey}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN,
      'mcp-method': 'tools/call',
      'mcp-name': name,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: {
        name,
        arguments: args,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': MODERN,
          'io.modelcontextprotocol/clientCapabilities': options.capabilities ?? {},
          ...(options.progressToken ? { progressToken: options.progressToken } : {}),
        },
        ...options.params,
      },
    }),
  });
  return { status: res.status, text: await res.text() };
}

/** The JSON-RPC messages of a JSON or SSE response body. */
export function rpcMessages(text: string): Json[] {
  if (text.startsWith('{')) {
    return [JSON.parse(text)];
  }
  return text
    .split('\n')
    .filter((line) => line.startsWith('data: {'))
    .map((line) => JSON.parse(line.slice(6)));
}

/**
 * One 2026-07-28 tools/call on the tenant endpoint `slug`; resolves to the last JSON-RPC
 * message of the answer (the result or error), or undefined when `signal` aborted it.
 */
export async function callTool(
  gateway: RunningGateway,
  slug: string,
  apiKey: string,
  name: string,
  args: Record<string, unknown>,
  signal?: AbortSignal,
): Promise<Json | undefined> {
  try {
    const { text } = await postToolCall(gateway, slug, apiKey, name, args, { signal });
    return rpcMessages(text).at(-1);
  } catch (err) {
    if (signal?.aborted) {
      return undefined;
    }
    throw err;
  }
}

/** Polls `probe` every 20 ms until it holds; rejects after `ms`, naming `what`. */
export async function until(
  probe: () => Promise<boolean>,
  what: string,
  ms = 20_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) {
      throw new Error(`${what}: not within ${ms} ms`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Deletes every Redis key under `prefix`. */
export async function deleteRedisKeys(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL);
  try {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) {
      await redis.del(...keys);
    }
  } finally {
    await redis.quit();
  }
}

/** What the `hold` tool of test/support/queue-upstream.mjs saw for one key. */
export interface HoldRecord {
  /** Calls that reached the tool. */
  readonly started: number;
  /** Calls whose request was aborted while the tool ran. */
  readonly aborted: number;
  /** Calls that ran to their end or were released. */
  readonly finished: number;
}

export interface QueueUpstream {
  /** Its MCP endpoint, for an `mcp-http` backend. */
  readonly url: string;
  /** What `hold` recorded for `key` (all zero while no call of it arrived). */
  hold(key: string): Promise<HoldRecord>;
  /** Lets the running `hold` calls of `key` finish now; resolves to how many there were. */
  release(key: string): Promise<number>;
  stop(): Promise<void>;
}

const QUEUE_UPSTREAM = join(ROOT, 'test', 'support', 'queue-upstream.mjs');

/**
 * Starts test/support/queue-upstream.mjs on a free port: `steps` (progress) and `hold` (runs
 * until released or aborted, recording both), for following queued calls to the upstream.
 */
export async function startQueueUpstream(): Promise<QueueUpstream> {
  const child = spawn(process.execPath, [QUEUE_UPSTREAM, '0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout });
  const port = await within(
    new Promise<number>((resolve, reject) => {
      lines.on('line', (line) => {
        const match = /^READY (\d+)$/.exec(line);
        if (match) {
          resolve(Number(match[1]));
        }
      });
      child.once('exit', (code) => reject(new Error(`queue upstream exited with ${code}`)));
    }),
    10_000,
    'queue upstream start',
  );
  const base = `http://127.0.0.1:${port}`;
  return {
    url: `${base}/mcp`,
    hold: async (key) => {
      const res = await fetch(`${base}/stats`);
      const { holds } = (await res.json()) as { holds: Record<string, HoldRecord> };
      return holds[key] ?? { started: 0, aborted: 0, finished: 0 };
    },
    release: async (key) => {
      const res = await fetch(`${base}/release/${encodeURIComponent(key)}`, { method: 'POST' });
      return ((await res.json()) as { released: number }).released;
    },
    stop: () => stopProcess(child),
  };
}

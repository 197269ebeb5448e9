/*
 * Upstream sessions: a 2025-era client session gets an upstream session of its own per
 * backend (for stdio: its own child process), opened on its first request there and closed
 * with it; 2026-07-28 requests, stateless, share the backend's pooled session, and so does
 * everyone on a backend set to `sessions: 'pooled'` (or past `maxClientSessions`). What the
 * upstream sends outside any call (a log message, a roots/list request) reaches the client
 * whose upstream session sent it, and no other. The upstream is the fixture
 * libs/testing/fixtures-upstream/upstream-server.mjs over stdio (a 2025-era server, one
 * session per process): `subscriptions` and `roots` tell its pid, `later` logs and asks for
 * roots after its call has ended. The clients are the official SDKs: v1 (2025-11-25 sessions)
 * and v2 pinned to 2026-07-28.
 */
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { TenantService } from '@portico/tenancy';
import { RunningGateway, startGateway } from './support/gateway';
import {
  ClientAnswers,
  ClientEvents,
  closeAll,
  connectV1,
  createV2Client,
  HttpRecorder,
  type FetchLike,
} from './support/sdk';
import { seedTenant } from './support/tenants';

const FIXTURE = join(
  resolve(__dirname, '..'),
  'libs/testing/fixtures-upstream/upstream-server.mjs',
);
const TENANT = 'sessions';
const WAIT_MS = 15_000;

/** Backends of the tenant: the default (per-client), forced pooled, and capped at one. */
const BACKENDS = {
  own: {},
  shared: { sessions: 'pooled' },
  capped: { maxClientSessions: 1 },
  brief: { idleTimeoutMs: 300 },
} as const;
type BackendName = keyof typeof BACKENDS;

/** Answers roots/list with roots of its own, to tell clients apart upstream. */
class OwnRoots extends ClientAnswers {
  constructor(private readonly name: string) {
    super();
  }

  override roots(): { roots: { uri: string; name: string }[] } {
    this.rootsListed++;
    return { roots: [{ uri: `file:///work/${this.name}`, name: this.name }] };
  }
}

function withApiKey(apiKey: string): FetchLike {
  return (url, init) => {
    const headers = new Headers(init?.headers);
    headers.set('authorization', `Bearer ${apiKey}`);
    return fetch(url, { ...init, headers });
  };
}

/** Fixture processes that are children of this process (the gateway runs in it). */
function fixtureChildren(): number[] {
  const out = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], {
    encoding: 'utf8',
  });
  return out
    .split('\n')
    .map((line) => /^\s*(\d+)\s+(.*)$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null && m[2].includes(FIXTURE))
    .map((m) => Number(m[1]));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls `probe` until `accept` takes its value, failing after WAIT_MS. */
async function eventually<T>(
  probe: () => Promise<T> | T,
  accept: (value: T) => boolean,
  what: string,
): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  let last: T | undefined;
  for (;;) {
    last = await Promise.resolve(probe()).catch(() => last);
    if (last !== undefined && accept(last)) {
      return last;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}; last seen: ${JSON.stringify(last)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

let gateway: RunningGateway;
let endpoint: string;
let apiKey: string;
const clients: { close(): Promise<void> }[] = [];

interface Caller {
  call(backend: BackendName, tool: string, args?: Record<string, unknown>): Promise<string>;
  /** The pid of the upstream process serving this client on `backend`. */
  pid(backend: BackendName): Promise<number>;
}

function caller(client: Client | Awaited<ReturnType<typeof connectV1>>['client']): Caller {
  const call = async (backend: BackendName, tool: string, args: Record<string, unknown> = {}) => {
    const result = await client.callTool({ name: `${backend}__${tool}`, arguments: args });
    return (result.content as { type: string; text: string }[])[0].text;
  };
  return {
    call,
    pid: async (backend) =>
      (JSON.parse(await call(backend, 'subscriptions')) as { pid: number }).pid,
  };
}

/** A 2025-11-25 session (SDK v1) with its standalone stream open; `leave` ends it (DELETE). */
async function legacyClient(name: string) {
  const events = new ClientEvents();
  const answers = new OwnRoots(name);
  const recorder = new HttpRecorder(withApiKey(apiKey));
  const { client, transport } = await connectV1(endpoint, { recorder, events, answers });
  clients.push(client);
  // Messages outside calls travel on the standalone stream.
  await recorder.waitFor((e) => e.httpMethod === 'GET' && e.status === 200, WAIT_MS);
  const leave = async () => {
    await transport.terminateSession();
    await client.close();
  };
  return { ...caller(client), client, events, answers, leave };
}

/** A 2026-07-28 client (SDK v2, pinned). */
async function modernClient(name: string) {
  const events = new ClientEvents();
  const answers = new OwnRoots(name);
  const client = createV2Client('modern', { events, answers });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(endpoint), { fetch: withApiKey(apiKey) }),
  );
  clients.push(client);
  return { ...caller(client), client, events, answers };
}

beforeAll(async () => {
  gateway = await startGateway({
    LOG_LEVEL: process.env.E2E_LOG ?? 'silent',
    UPSTREAM_STDIO_ENABLED: 'true',
  });
  const seeded = await seedTenant(gateway.app, { slug: TENANT, fixtures: [] });
  apiKey = seeded.apiKey;
  endpoint = `${gateway.mcpUrl}/${TENANT}`;
  const tenants = gateway.app.get(TenantService);
  for (const [name, settings] of Object.entries(BACKENDS)) {
    await tenants.backends(seeded.tenant.id).insert({
      name,
      kind: 'mcp-stdio',
      target: `"${process.execPath}" "${FIXTURE}" --stdio`,
      settings: { ...settings },
      credentialsSealed: null,
    });
  }
  await tenants.changed(seeded.tenant);
}, 60_000);

afterAll(async () => {
  await closeAll(...clients);
  await gateway?.close();
}, 60_000);

describe('a backend with per-client upstream sessions (the default)', () => {
  it('gives two 2025-era sessions upstream sessions of their own, and 2026-07-28 clients the pooled one', async () => {
    const a = await legacyClient('a');
    const b = await legacyClient('b');
    const m = await modernClient('m');
    const n = await modernClient('n');
    const [aPid, bPid, mPid, nPid] = await Promise.all([
      a.pid('own'),
      b.pid('own'),
      m.pid('own'),
      n.pid('own'),
    ]);
    expect(new Set([aPid, bPid, mPid]).size).toBe(3);
    expect(nPid).toBe(mPid);
    // The same upstream session serves the next request of each.
    expect(await a.pid('own')).toBe(aPid);
    expect(await b.pid('own')).toBe(bPid);
    await Promise.all([a.leave(), b.leave()]);
  });

  it("closes a session's upstream session with it: its child exits", async () => {
    const before = fixtureChildren();
    const a = await legacyClient('a');
    const b = await legacyClient('b');
    const aPid = await a.pid('own');
    const bPid = await b.pid('own');
    // Two new children of the gateway, one per session.
    expect(before).not.toContain(aPid);
    expect(before).not.toContain(bPid);
    expect(fixtureChildren()).toEqual(expect.arrayContaining([aPid, bPid]));

    await a.leave();
    await eventually(fixtureChildren, (pids) => !pids.includes(aPid), "the exit of a's child");
    expect(fixtureChildren()).toContain(bPid);
    await b.leave();
    await eventually(fixtureChildren, (pids) => !pids.includes(bPid), "the exit of b's child");
  });

  it("sends a log message from outside any call to that session's client only", async () => {
    const a = await legacyClient('a');
    const b = await legacyClient('b');
    const m = await modernClient('m');
    await a.client.setLoggingLevel('info');
    await b.client.setLoggingLevel('info');
    const aPid = await a.pid('own');
    await b.pid('own');
    expect(await a.call('own', 'later', { ms: 50 })).toBe('later in 50 ms');
    await a.events.logs.waitFor((log) => log.data === `later from ${aPid}`, WAIT_MS);
    // Whatever b and m do meanwhile, the message was a's: by then it has been sent.
    await Promise.all([
      b.call('own', 'echo', { message: 'x' }),
      m.call('own', 'echo', { message: 'y' }),
    ]);
    expect(b.events.logs.items).toEqual([]);
    expect(m.events.logs.items).toEqual([]);
    await Promise.all([a.leave(), b.leave()]);
  });

  it("asks that session's client for roots outside any call, and no other client", async () => {
    const a = await legacyClient('a');
    const b = await legacyClient('b');
    await Promise.all([a.pid('own'), b.pid('own')]);
    await a.call('own', 'later', { ms: 50 });
    await b.call('own', 'later', { ms: 50 });
    const seenByA = await eventually(
      async () => JSON.parse(await a.call('own', 'roots')) as { roots: unknown },
      (seen) => seen.roots !== null,
      "a's upstream session to hear a's roots",
    );
    const seenByB = await eventually(
      async () => JSON.parse(await b.call('own', 'roots')) as { roots: unknown },
      (seen) => seen.roots !== null,
      "b's upstream session to hear b's roots",
    );
    expect(seenByA.roots).toEqual([{ uri: 'file:///work/a', name: 'a' }]);
    expect(seenByB.roots).toEqual([{ uri: 'file:///work/b', name: 'b' }]);
    await Promise.all([a.leave(), b.leave()]);
  });
});

describe("a session's upstream child that went away", () => {
  it('comes back on the next request after a crash, with a new upstream session', async () => {
    const a = await legacyClient('a');
    const before = await a.pid('own');
    process.kill(before, 'SIGKILL');
    // The upstream session's state (its roots, log level, subscriptions) went with it; the
    // gateway subscribes again, and the upstream asks for roots again if it needs them.
    const after = await eventually(
      () => a.pid('own'),
      (pid) => pid !== before,
      'a new child for the session',
    );
    expect(alive(after)).toBe(true);
    await a.leave();
  });

  it('comes back on the next request after an idle stop', async () => {
    const a = await legacyClient('a');
    const before = await a.pid('brief');
    await eventually(
      () => alive(before),
      (up) => !up,
      'the idle stop of the child',
    );
    const after = await a.pid('brief');
    expect(after).not.toBe(before);
    await a.leave();
    await eventually(
      () => alive(after),
      (up) => !up,
      'the exit of the child with the session',
    );
  });
});

describe("a backend set to sessions: 'pooled'", () => {
  it('serves every client on the one pooled upstream session', async () => {
    const a = await legacyClient('a');
    const b = await legacyClient('b');
    const m = await modernClient('m');
    const pids = await Promise.all([a.pid('shared'), b.pid('shared'), m.pid('shared')]);
    expect(new Set(pids).size).toBe(1);
    await Promise.all([a.leave(), b.leave()]);
    // The pooled session outlives the client sessions.
    expect(await m.pid('shared')).toBe(pids[0]);
  });
});

describe('a backend at its maxClientSessions', () => {
  it('serves the sessions beyond the cap on the pooled session', async () => {
    const m = await modernClient('m');
    const a = await legacyClient('a');
    const b = await legacyClient('b');
    const pooled = await m.pid('capped');
    const aPid = await a.pid('capped');
    const bPid = await b.pid('capped');
    expect(aPid).not.toBe(pooled);
    expect(bPid).toBe(pooled);
    await Promise.all([a.leave(), b.leave()]);
  });
});

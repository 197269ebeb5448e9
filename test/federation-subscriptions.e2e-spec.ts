/*
 * Resource subscriptions through federation: a client of a tenant endpoint subscribes to a
 * resource an upstream serves, and the upstream's `notifications/resources/updated` reaches it.
 * The gateway subscribes upstream once per URI however many clients do (resources/subscribe to
 * a 2025-era upstream, subscriptions/listen to a 2026-07-28 one), lets go with the last
 * client, and subscribes again after the upstream restarts. The upstream is the fixture
 * libs/testing/fixtures-upstream/upstream-server.mjs: 2026-07-28 over Streamable HTTP, 2025-era
 * over stdio; its `subscriptions` tool tells what it is subscribed to, `touch` sends an update.
 * The clients are the official SDKs: v1 (2025-11-25 sessions) and v2 (2026-07-28).
 */
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { TenantService } from '@portico/tenancy';
import { RunningGateway, startGateway } from './support/gateway';
import {
  ClientEvents,
  closeAll,
  connectV1,
  createV2Client,
  HttpRecorder,
  within,
  type FetchLike,
} from './support/sdk';
import { seedTenant } from './support/tenants';

const FIXTURE = join(
  resolve(__dirname, '..'),
  'libs/testing/fixtures-upstream/upstream-server.mjs',
);
const HELLO = 'fixture://hello';
const WAIT_MS = 15_000;

/** The HTTP fixture on `port` (0: any free one); resolves once it listens. */
async function startHttpUpstream(port = 0): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [FIXTURE, String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const bound = await within(
    new Promise<number>((done, fail) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        const match = /^READY (\d+)$/.exec(line);
        if (match) {
          done(Number(match[1]));
        }
      });
      child.once('exit', (code) => fail(new Error(`upstream exited with ${code}`)));
    }),
    WAIT_MS,
    'upstream start',
  );
  return { child, port: bound };
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  }
}

function withApiKey(apiKey: string): FetchLike {
  return (url, init) => {
    const headers = new Headers(init?.headers);
    headers.set('authorization', `Bearer ${apiKey}`);
    return fetch(url, { ...init, headers });
  };
}

/** Waits until `probe` resolves to something `accept` takes (polled), failing after WAIT_MS. */
async function eventually<T>(
  probe: () => Promise<T>,
  accept: (value: T) => boolean,
  what: string,
): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  let last: T | undefined;
  for (;;) {
    last = await probe().catch(() => last);
    if (last !== undefined && accept(last)) {
      return last;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}; last seen: ${JSON.stringify(last)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface UpstreamCase {
  readonly name: string;
  readonly slug: string;
  /** Kills the upstream process; `restart` brings it back (stdio: the gateway does). */
  kill(pid: number): Promise<void>;
}

let gateway: RunningGateway;
let http: { child: ChildProcess; port: number };
const keys = new Map<string, string>();
const clients: { close(): Promise<void> }[] = [];

const UPSTREAMS: UpstreamCase[] = [
  {
    name: 'a 2026-07-28 upstream over Streamable HTTP (subscriptions/listen)',
    slug: 'subs-http',
    async kill() {
      // The same port again: the backend's target does not change.
      await kill(http.child);
      http = await startHttpUpstream(http.port);
    },
  },
  {
    name: 'a 2025-era upstream over stdio (resources/subscribe)',
    slug: 'subs-stdio',
    async kill(pid) {
      process.kill(pid, 'SIGKILL');
    },
  },
];

beforeAll(async () => {
  http = await startHttpUpstream();
  gateway = await startGateway({
    LOG_LEVEL: process.env.E2E_LOG ?? 'silent',
    UPSTREAM_STDIO_ENABLED: 'true',
  });
  const tenants = gateway.app.get(TenantService);
  for (const upstream of UPSTREAMS) {
    const seeded = await seedTenant(gateway.app, { slug: upstream.slug, fixtures: [] });
    keys.set(upstream.slug, seeded.apiKey);
    const stdio = upstream.slug === 'subs-stdio';
    await tenants.backends(seeded.tenant.id).insert({
      name: 'up',
      kind: stdio ? 'mcp-stdio' : 'mcp-http',
      target: stdio
        ? `"${process.execPath}" "${FIXTURE}" --stdio`
        : `http://127.0.0.1:${http.port}/mcp`,
      settings: stdio ? { sessions: 'pooled' } : { internal: true },
      credentialsSealed: null,
    });
    await tenants.changed(seeded.tenant);
  }
}, 60_000);

afterAll(async () => {
  await closeAll(...clients);
  await gateway?.close();
  if (http) {
    await kill(http.child);
  }
}, 60_000);

describe.each(UPSTREAMS.map((u) => [u.name, u] as const))('%s', (_name, upstream) => {
  const endpoint = () => `${gateway.mcpUrl}/${upstream.slug}`;
  const apiKey = () => keys.get(upstream.slug)!;
  let probe: Client;

  /** A 2025-11-25 session (SDK v1) recording its notifications, its standalone stream open. */
  async function legacyClient() {
    const events = new ClientEvents();
    const recorder = new HttpRecorder(withApiKey(apiKey()));
    const { client, transport } = await connectV1(endpoint(), { recorder, events });
    clients.push(client);
    await recorder.waitFor((e) => e.httpMethod === 'GET' && e.status === 200, WAIT_MS);
    /** Ends the session (DELETE), as a client that is done does. */
    const leave = async () => {
      await transport.terminateSession();
      await client.close();
    };
    return { client, events, leave };
  }

  /** A 2026-07-28 client (SDK v2, pinned) recording its notifications. */
  async function modernClient() {
    const events = new ClientEvents();
    const client = createV2Client('modern', { events });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(endpoint()), { fetch: withApiKey(apiKey()) }),
    );
    clients.push(client);
    return { client, events };
  }

  async function callText(name: string, args: Record<string, unknown> = {}): Promise<string> {
    const result = await probe.callTool({ name: `up__${name}`, arguments: args });
    return (result.content as { type: string; text: string }[])[0].text;
  }

  /** What the upstream process says of itself: its pid and the URIs it is subscribed to. */
  async function upstreamState(): Promise<{ pid: number; uris: string[] }> {
    return JSON.parse(await callText('subscriptions')) as { pid: number; uris: string[] };
  }

  const touch = (uri = HELLO) => callText('touch', { uri });

  beforeAll(async () => {
    ({ client: probe } = await modernClient());
  });

  beforeEach(async () => {
    // Every test starts with an upstream nobody is subscribed to.
    await eventually(upstreamState, (s) => s.uris.length === 0, 'no upstream subscriptions');
  });

  it('relays updates to 2025-era sessions and subscribes upstream while any of them is subscribed', async () => {
    const a = await legacyClient();
    const b = await legacyClient();
    await a.client.subscribeResource({ uri: HELLO });
    await a.client.subscribeResource({ uri: HELLO });
    await b.client.subscribeResource({ uri: HELLO });
    // The answer to subscribe comes once the upstream is subscribed.
    expect((await upstreamState()).uris).toEqual([HELLO]);

    await touch();
    await a.events.updates.waitFor((uri) => uri === HELLO, WAIT_MS);
    await b.events.updates.waitFor((uri) => uri === HELLO, WAIT_MS);

    // a's one unsubscribe undoes both its subscribes; b still holds the upstream's.
    await a.client.unsubscribeResource({ uri: HELLO });
    expect((await upstreamState()).uris).toEqual([HELLO]);
    b.events.updates.clear();
    await touch();
    await b.events.updates.waitFor((uri) => uri === HELLO, WAIT_MS);
    expect(a.events.updates.items).toEqual([HELLO]);

    // The last subscriber leaves (its session ends): the upstream is let go.
    await b.leave();
    await eventually(upstreamState, (s) => s.uris.length === 0, 'the upstream unsubscribed');
    await a.leave();
  });

  it('relays updates to a 2026-07-28 client on its subscriptions/listen stream', async () => {
    const { client, events } = await modernClient();
    const subscription = await client.listen({ resourceSubscriptions: [HELLO] });
    expect(subscription.honoredFilter.resourceSubscriptions).toEqual([HELLO]);
    // The acknowledgement comes once the upstream is subscribed.
    expect((await upstreamState()).uris).toEqual([HELLO]);

    await touch();
    await events.updates.waitFor((uri) => uri === HELLO, WAIT_MS);

    await subscription.close();
    await eventually(upstreamState, (s) => s.uris.length === 0, 'the upstream unsubscribed');
  });

  it("keeps subscriptions across a rebuild of the tenant's catalog", async () => {
    const { client, events } = await modernClient();
    const subscription = await client.listen({ resourceSubscriptions: [HELLO] });
    const tenants = gateway.app.get(TenantService);
    const tenant = (await tenants.bySlug(upstream.slug))!;
    // The catalog is rebuilt with new backend sources; the old ones close.
    await tenants.changed(tenant);
    await eventually(
      async () => {
        events.updates.clear();
        await touch();
        return events.updates.waitFor((uri) => uri === HELLO, 500).then(() => true);
      },
      (delivered) => delivered,
      'an update through the rebuilt catalog',
    );
    expect((await upstreamState()).uris).toEqual([HELLO]);
    await subscription.close();
  });

  it('subscribes upstream again after the upstream process restarts', async () => {
    const { client, events, leave } = await legacyClient();
    await client.subscribeResource({ uri: HELLO });
    const before = await upstreamState();
    expect(before.uris).toEqual([HELLO]);

    await upstream.kill(before.pid);
    await eventually(
      upstreamState,
      (s) => s.pid !== before.pid && s.uris.includes(HELLO),
      'the restarted upstream subscribed again',
    );
    await touch();
    await events.updates.waitFor((uri) => uri === HELLO, WAIT_MS);

    await client.unsubscribeResource({ uri: HELLO });
    await leave();
  });
});

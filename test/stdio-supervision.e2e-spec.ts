/*
 * Supervision of `mcp-stdio` backends through the real gateway (in-process, so its children
 * are this process's children): an on-demand backend's child stops when idle and starts again
 * for the next call; an eager backend's child is restarted after a crash; the gateway-wide
 * bound (UPSTREAM_STDIO_MAX_CHILDREN) evicts an idle child or refuses; and after shutdown no
 * child is left. Children are counted with ps, by a marker argument per backend.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { TenantService } from '@portico/tenancy';
import type { TenantEntity } from '@portico/persistence';
import { startGateway, type RunningGateway } from './support/gateway';
import { closeAll, later, rejectionOf } from './support/sdk';
import { seedTenant } from './support/tenants';

const FIXTURE = join(__dirname, '..', 'libs', 'testing', 'fixtures-upstream', 'stdio-server.mjs');
/** Unique to this suite: other children of this process are not counted. */
const MARKER = `portico-supervision-${process.pid}`;
/** Failure guard for what must happen eventually; never a timing assertion. */
const DEADLINE_MS = 20_000;

let gateway: RunningGateway | undefined;
let tenant: TenantEntity;
let apiKey: string;
const clients: Client[] = [];

interface Child {
  pid: number;
  backend: string;
}

/** This process's stdio children, by backend (the marker argument names it). */
function children(backend?: string): Child[] {
  let out = '';
  try {
    out = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], {
      encoding: 'utf8',
    });
  } catch {
    // ps exits 1 when there is no child at all.
  }
  return out
    .split('\n')
    .map((line) => /^\s*(\d+)\s+.*\s(portico-supervision-\d+)-(\w+)(\s|$)/.exec(line))
    .filter((match): match is RegExpExecArray => match !== null && match[2] === MARKER)
    .map((match) => ({ pid: Number(match[1]), backend: match[3] }))
    .filter((child) => backend === undefined || child.backend === backend);
}

async function until<T>(probe: () => T, accept: (value: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const value = probe();
    if (accept(value)) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}: ${JSON.stringify(value)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function backend(name: string, settings: Record<string, unknown>) {
  return {
    name,
    kind: 'mcp-stdio' as const,
    target: `"${process.execPath}" '${FIXTURE}' ${MARKER}-${name}`,
    settings: { internal: true, timeoutMs: 10_000, ...settings },
    credentialsSealed: null,
  };
}

async function connect(): Promise<Client> {
  const client = new Client({ name: 'e2e-supervision', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${gateway!.mcpUrl}/sup`), {
      requestInit: { headers: { Authorization: `Bearer ${apiKey}` } },
    }),
  );
  clients.push(client);
  return client;
}

function text(result: unknown): string | undefined {
  const content = (result as { content?: { type: string; text?: string }[] }).content ?? [];
  return content.find((c) => c.type === 'text')?.text;
}

beforeAll(async () => {
  gateway = await startGateway({
    UPSTREAM_STDIO_ENABLED: 'true',
    UPSTREAM_STDIO_MAX_CHILDREN: '2',
  });
  ({ tenant, apiKey } = await seedTenant(gateway.app, { slug: 'sup', fixtures: [] }));
  const tenants = gateway.app.get(TenantService);
  const backends = tenants.backends(tenant.id);
  // Two on-demand backends and an eager one, one child too many for the bound: at
  // registration the third waits for one of the others to be idle, then takes its place.
  await backends.insert(backend('lazy', { idleTimeoutMs: 500, timeoutMs: 4000 }));
  await backends.insert(backend('spare', { idleTimeoutMs: 600_000, timeoutMs: 20_000 }));
  await backends.insert(
    backend('steady', { start: 'eager', restartInitialMs: 200, timeoutMs: 20_000 }),
  );
  await tenants.changed(tenant);
});

afterAll(async () => {
  await closeAll(...clients);
  await gateway?.close();
});

describe('stdio backend supervision', () => {
  it('registers every backend although they outnumber the bound', async () => {
    const client = await connect();
    const tools = (await client.listTools()).tools.map((t) => t.name);
    expect(tools).toEqual(expect.arrayContaining(['lazy__echo', 'spare__echo', 'steady__echo']));
    expect(children().length).toBeLessThanOrEqual(2);
  });

  it("stops an on-demand backend's idle child and starts one for the next call", async () => {
    const client = await connect();
    await until(
      () => children('lazy'),
      (found) => found.length === 0,
      'the idle child to stop',
    );

    // The call starts a child, which runs while the call is in flight however long it takes
    // (a stop would fail the call with a closed connection).
    const sleeping = later(client.callTool({ name: 'lazy__sleep', arguments: { ms: 1500 } }));
    await until(
      () => children('lazy'),
      (found) => found.length > 0,
      'a child for the call',
    );
    expect(text(await sleeping)).toBe('slept 1500');

    await until(
      () => children('lazy'),
      (found) => found.length === 0,
      'the idle child to stop',
    );
  });

  it("restarts an eager backend's child after it crashed, without any call", async () => {
    const [before] = await until(
      () => children('steady'),
      (found) => found.length === 1,
      'the eager child',
    );
    process.kill(before.pid, 'SIGKILL');
    const [after] = await until(
      () => children('steady'),
      (found) => found.length === 1 && found[0].pid !== before.pid,
      'the restarted child',
    );
    expect(after.pid).not.toBe(before.pid);
    const client = await connect();
    const echoed = await client.callTool({ name: 'steady__echo', arguments: { message: 'up' } });
    expect(text(echoed)).toBe('up');
  });

  it('at the bound, stops the least recently used idle child of another backend', async () => {
    const client = await connect();
    await until(
      () => children('lazy'),
      (found) => found.length === 0,
      'the lazy child to stop',
    );
    await client.callTool({ name: 'spare__echo', arguments: { message: 'spare' } });
    const [spare] = await until(
      () => children('spare'),
      (found) => found.length === 1,
      'the spare child',
    );
    expect(children()).toHaveLength(2);

    // steady (eager) and spare (idle) fill the bound: lazy's call stops spare's child.
    const echoed = await client.callTool({ name: 'lazy__echo', arguments: { message: 'lazy' } });
    expect(text(echoed)).toBe('lazy');
    expect(children('spare').map((c) => c.pid)).not.toContain(spare.pid);
    expect(children().length).toBeLessThanOrEqual(2);
  });

  it('at the bound with no idle child, refuses with a clear error', async () => {
    const client = await connect();
    await until(
      () => children('lazy'),
      (found) => found.length === 0,
      'the lazy child to stop',
    );
    // spare busy for longer than lazy's caller can wait (half its 4 s timeout).
    const sleeping = later(client.callTool({ name: 'spare__sleep', arguments: { ms: 6000 } }));
    await until(
      () => children('spare'),
      (found) => found.length === 1,
      'the spare child',
    );

    const refused = await rejectionOf(
      client.callTool({ name: 'lazy__echo', arguments: { message: 'no room' } }),
    );
    expect(refused.code).toBe(-32603);
    expect(refused.message).toMatch(
      /^Backend lazy unavailable: the gateway already runs its maximum of 2 stdio backends/,
    );
    expect(text(await sleeping)).toBe('slept 6000');
    expect(children().length).toBeLessThanOrEqual(2);
  });

  it('leaves no child behind when the gateway shuts down', async () => {
    expect(children().length).toBeGreaterThan(0);
    await closeAll(...clients.splice(0));
    await gateway!.close();
    gateway = undefined;
    expect(children()).toEqual([]);
  });
});

import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { StdioChildren, StdioSupervisor, StdioUnavailableError } from './stdio-supervisor';
import { STDIO_SUPERVISION_DEFAULTS, type StdioSupervision } from './upstream-transport-settings';

const FIXTURE = join(
  __dirname,
  '..',
  '..',
  '..',
  'testing',
  'fixtures-upstream',
  'stdio-server.mjs',
);
/** Failure guard for what must happen eventually; never a timing assertion. */
const DEADLINE_MS = 15_000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(probe: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS;
  while (!probe()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A supervised backend and the SDK client connected through it, like McpUpstreamSource. */
class Backend {
  readonly supervisor: StdioSupervisor;
  client?: Client;
  transport?: StdioClientTransport;
  closes = 0;
  reconnects = 0;

  constructor(
    children: StdioChildren,
    supervision: Partial<StdioSupervision>,
    command: string = process.execPath,
    maxWaitMs = 10_000,
  ) {
    this.supervisor = new StdioSupervisor(
      'Backend test',
      { ...STDIO_SUPERVISION_DEFAULTS, ...supervision },
      children,
      () => new StdioClientTransport({ command, args: [FIXTURE], stderr: 'ignore' }),
      maxWaitMs,
    );
  }

  /** The source's reconnect(): a new client on a new transport, unless connected. */
  attach(): void {
    this.supervisor.attach({
      reconnect: async () => {
        this.reconnects += 1;
        if (!this.client) {
          await this.connect();
        }
      },
    });
  }

  async connect(): Promise<Client> {
    const transport = (await this.supervisor.open()) as StdioClientTransport;
    const client = new Client({ name: 'spec', version: '1.0.0' });
    try {
      await client.connect(transport);
    } catch (err) {
      await transport.close();
      throw err;
    }
    client.onclose = () => {
      this.closes += 1;
      if (this.client === client) {
        this.client = undefined;
      }
    };
    this.client = client;
    this.transport = transport;
    return client;
  }

  get pid(): number {
    const pid = this.transport?.pid;
    if (typeof pid !== 'number') {
      throw new Error('no child running');
    }
    return pid;
  }

  async call(name: string, args: Record<string, unknown> = {}): Promise<unknown> {
    const client = this.client ?? (await this.connect());
    return client.callTool({ name, arguments: args });
  }

  async close(): Promise<void> {
    this.supervisor.detach();
    await this.client?.close();
  }
}

describe(StdioSupervisor.name, () => {
  let children: StdioChildren;
  const backends: Backend[] = [];
  const backend = (...args: ConstructorParameters<typeof Backend>) => {
    const made = new Backend(...args);
    backends.push(made);
    return made;
  };

  beforeEach(() => {
    children = new StdioChildren(4);
  });

  afterEach(async () => {
    await Promise.all(backends.splice(0).map((b) => b.close()));
    await children.stopAll();
    expect(children.size).toBe(0);
  });

  describe('on-demand', () => {
    it('stops the child once idle, and the next open starts a new one', async () => {
      const sut = backend(children, { idleTimeoutMs: 200 });
      await sut.call('echo', { message: 'hi' });
      const first = sut.pid;
      const transport = sut.transport!;
      expect(children.size).toBe(1);

      await until(() => !alive(first), 'the idle child to exit');
      await until(() => children.size === 0, 'the count to drop');
      expect(sut.closes).toBe(1);
      expect(sut.supervisor.closedOnPurpose(transport)).toBe(true);

      await sut.call('echo', { message: 'again' });
      expect(sut.pid).not.toBe(first);
      expect(alive(sut.pid)).toBe(true);
      expect(children.size).toBe(1);
    });

    it('keeps the child while a request is in flight', async () => {
      const sut = backend(children, { idleTimeoutMs: 100 });
      await sut.connect();
      const pid = sut.pid;
      // Many idle periods long: a stop would fail the call with a closed connection.
      const result = await sut.call('sleep', { ms: 1500 });
      expect(result).toMatchObject({ content: [{ type: 'text', text: 'slept 1500' }] });
      expect(sut.closes).toBe(0);
      expect(alive(pid)).toBe(true);
      await until(() => !alive(pid), 'the child to exit after the call');
    });

    it('keeps a child with an open resource subscription until it is unsubscribed', async () => {
      const sut = backend(children, { idleTimeoutMs: 100 });
      const client = await sut.connect();
      const pid = sut.pid;
      await client.subscribeResource({ uri: 'fixture://items/1' });
      await sleep(1000);
      expect(alive(pid)).toBe(true);
      expect(sut.closes).toBe(0);

      await client.unsubscribeResource({ uri: 'fixture://items/1' });
      await until(() => !alive(pid), 'the child to exit after unsubscribing');
      expect(children.size).toBe(0);
    });

    it('never stops a child when idleTimeoutMs is 0', async () => {
      const sut = backend(children, { idleTimeoutMs: 0 });
      await sut.call('echo', { message: 'hi' });
      await sleep(500);
      expect(alive(sut.pid)).toBe(true);
    });

    it('makes the next open wait out the backoff after a crash, or fail naming the time', async () => {
      const patient = backend(children, { restartInitialMs: 300 });
      await expect(patient.call('crash')).rejects.toThrow();
      await until(() => children.size === 0, 'the crashed child to be counted out');
      // Within what the caller can wait: the open waits, then starts a new child.
      await expect(patient.call('echo', { message: 'back' })).resolves.toMatchObject({
        content: [{ text: 'back' }],
      });

      const hurried = backend(children, { restartInitialMs: 20_000 }, process.execPath, 1000);
      await expect(hurried.call('crash')).rejects.toThrow();
      await until(() => children.size === 1, 'the crashed child to be counted out');
      const refused = await hurried.supervisor.open().catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(StdioUnavailableError);
      expect((refused as Error).message).toMatch(
        /failed 1 time\(s\) in a row; the next start is at \d{4}-\d\d-\d\dT.*Z \(in \d+ s\)/,
      );
      expect(children.size).toBe(1);
    });

    it('doubles the backoff per consecutive crash, up to restartMaxMs', async () => {
      const sut = backend(children, { restartInitialMs: 100, restartMaxMs: 250 });
      const delays: number[] = [];
      for (let crash = 0; crash < 3; crash++) {
        // Each call after the first waits out the delay of the crash before it.
        await expect(sut.call('crash')).rejects.toThrow();
        await until(() => sut.supervisor.liveChildren === 0, 'the crash to be seen');
        delays.push(sut.supervisor.backoffMs);
      }
      expect(delays).toEqual([100, 200, 250]);
    });

    it('counts a command that cannot start, and gives its place back', async () => {
      const sut = backend(children, { restartInitialMs: 20_000 }, '/nonexistent/portico-cmd', 0);
      await expect(sut.connect()).rejects.toThrow();
      expect(children.size).toBe(0);
      await expect(sut.supervisor.open()).rejects.toThrow('failed 1 time(s) in a row');
    });
  });

  describe('eager', () => {
    it('restarts a crashed child through the source after the backoff', async () => {
      const sut = backend(children, { start: 'eager', idleTimeoutMs: 100, restartInitialMs: 200 });
      sut.attach();
      await sut.connect();
      const first = sut.pid;
      // Eager children are never stopped for idleness.
      await sleep(500);
      expect(alive(first)).toBe(true);

      process.kill(first, 'SIGKILL');
      await until(() => sut.reconnects === 1 && sut.client !== undefined, 'the restart');
      expect(sut.pid).not.toBe(first);
      expect(alive(sut.pid)).toBe(true);
      expect(children.size).toBe(1);
    });

    it('stops restarting once detached, and stops its child', async () => {
      const sut = backend(children, { start: 'eager', restartInitialMs: 300 });
      sut.attach();
      await sut.connect();
      const pid = sut.pid;
      process.kill(pid, 'SIGKILL');
      await until(() => children.size === 0, 'the crash to be seen');
      sut.supervisor.detach();
      await sleep(800);
      expect(sut.reconnects).toBe(0);
      await expect(sut.supervisor.open()).rejects.toThrow('the backend is closed');
    });
  });

  describe('the bound on children', () => {
    it('stops the least recently used idle child of another backend to make room', async () => {
      children = new StdioChildren(2);
      const older = backend(children, { idleTimeoutMs: 60_000 });
      const newer = backend(children, { idleTimeoutMs: 60_000 });
      await older.call('echo', { message: 'first' });
      await newer.call('echo', { message: 'second' });
      const [olderPid, newerPid] = [older.pid, newer.pid];
      const sizes: number[] = [];
      const third = backend(children, {});
      const opening = third.call('echo', { message: 'third' });
      await until(() => (sizes.push(children.size), !alive(olderPid)), 'the eviction');
      await expect(opening).resolves.toMatchObject({ content: [{ text: 'third' }] });
      expect(alive(newerPid)).toBe(true);
      expect(Math.max(...sizes)).toBeLessThanOrEqual(2);
      expect(children.size).toBe(2);
      expect(older.supervisor.closedOnPurpose(older.transport!)).toBe(true);
    });

    it('refuses when no other child is idle, and never evicts an eager one', async () => {
      children = new StdioChildren(2);
      const eager = backend(children, { start: 'eager' });
      const busy = backend(children, { idleTimeoutMs: 60_000 });
      await eager.connect();
      await busy.connect();
      const sleeping = busy.call('sleep', { ms: 1500 });
      // Let the call reach the child.
      await sleep(300);
      const third = backend(children, {}, process.execPath, 0);
      await expect(third.supervisor.open()).rejects.toThrow(
        'the gateway already runs its maximum of 2 stdio backends',
      );
      await sleeping;
      expect(children.size).toBe(2);
    });

    it('counts exactly under concurrent opens', async () => {
      children = new StdioChildren(3);
      const many = Array.from({ length: 8 }, () => backend(children, {}, process.execPath, 0));
      const outcomes = await Promise.allSettled(many.map((b) => b.connect()));
      const opened = outcomes.filter((o) => o.status === 'fulfilled').length;
      expect(opened).toBe(3);
      for (const failed of outcomes.filter((o) => o.status === 'rejected')) {
        expect(String(failed.reason)).toContain('maximum of 3');
      }
      expect(children.size).toBe(3);
      await Promise.all(many.map((b) => b.close()));
      await until(() => children.size === 0, 'every child to exit');
    });

    it('waits for a busy child to become idle, up to what the caller can wait', async () => {
      children = new StdioChildren(1);
      const busy = backend(children, { idleTimeoutMs: 60_000 });
      await busy.connect();
      const pid = busy.pid;
      const sleeping = busy.call('sleep', { ms: 1000 });
      await sleep(200);
      const patient = backend(children, {}, process.execPath, 10_000);
      await expect(patient.call('echo', { message: 'after' })).resolves.toMatchObject({
        content: [{ text: 'after' }],
      });
      await expect(sleeping).resolves.toMatchObject({ content: [{ text: 'slept 1000' }] });
      expect(alive(pid)).toBe(false);
      expect(children.size).toBe(1);
    });

    it('gives a child on its way out to the next open, never counting both', async () => {
      children = new StdioChildren(1);
      const first = backend(children, {});
      await first.connect();
      const pid = first.pid;
      const closing = first.close();
      const second = backend(children, {}, process.execPath, 0);
      await expect(second.call('echo', { message: 'next' })).resolves.toMatchObject({
        content: [{ text: 'next' }],
      });
      await closing;
      expect(alive(pid)).toBe(false);
      expect(children.size).toBe(1);
    });

    it('stops every child on shutdown', async () => {
      const a = backend(children, {});
      const b = backend(children, { start: 'eager' });
      await a.connect();
      await b.connect();
      const pids = [a.pid, b.pid];
      await children.stopAll();
      expect(children.size).toBe(0);
      expect(pids.filter(alive)).toEqual([]);
    });
  });
});

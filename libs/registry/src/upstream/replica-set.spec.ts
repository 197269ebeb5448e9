import { McpError } from '@portico/mcp-protocol';
import { Replica, ReplicaSet, replicaName, type ReplicaSetOptions } from './replica-set';
import type { HealthCheckSettings, LoadBalancing } from './upstream-settings';

const HEALTH: HealthCheckSettings = {
  intervalMs: 60_000,
  timeoutMs: 100,
  unhealthyAfter: 2,
  healthyAfter: 2,
};

/** Replicas named a, b, c...; `up` says which start in rotation. */
function replicaSet(
  up: boolean[],
  options: Partial<ReplicaSetOptions<string>> & { loadBalancing?: LoadBalancing } = {},
) {
  const replicas = up.map((isUp, index) => {
    const replica = new Replica<string>(index, String.fromCharCode(97 + index));
    replica.member = replica.name;
    replica.up = isUp;
    return replica;
  });
  /** Whether each replica's next probe succeeds. */
  const answers = new Map<number, boolean>();
  const changes: string[] = [];
  const sut = new ReplicaSet<string>(replicas, {
    label: 'Backend crm',
    loadBalancing: options.loadBalancing ?? 'round-robin',
    healthCheck: options.healthCheck ?? HEALTH,
    probe: (replica) =>
      answers.get(replica.index) === false
        ? Promise.reject(new Error('connection refused'))
        : Promise.resolve(),
    onChange: (replica) => changes.push(`${replica.name} ${replica.up ? 'up' : 'down'}`),
    now: options.now,
  });
  return { sut, replicas, answers, changes };
}

/** The member each of `count` calls ran on, one after the other. */
async function servedBy(sut: ReplicaSet<string>, count: number): Promise<string[]> {
  const served: string[] = [];
  for (let i = 0; i < count; i++) {
    served.push(await sut.run((replica) => Promise.resolve(replica.member!)));
  }
  return served;
}

describe(ReplicaSet.name, () => {
  describe('round robin', () => {
    it('takes the replicas in rotation in turn', async () => {
      const { sut } = replicaSet([true, true, true]);
      expect(await servedBy(sut, 6)).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
    });

    it('skips replicas out of rotation', async () => {
      const { sut } = replicaSet([true, false, true]);
      expect(await servedBy(sut, 4)).toEqual(['a', 'c', 'a', 'c']);
    });
  });

  describe('least in flight', () => {
    it('sends calls to the replica with the fewest calls in flight', async () => {
      const { sut } = replicaSet([true, true, true], { loadBalancing: 'least-in-flight' });
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      // Two long calls: on a, then on b (ties alternate).
      const long = [
        sut.run((r) => held.then(() => r.member!)),
        sut.run((r) => held.then(() => r.member!)),
      ];
      expect(await servedBy(sut, 3)).toEqual(['c', 'c', 'c']);
      release();
      expect(await Promise.all(long)).toEqual(['a', 'b']);
      // Idle again: ties alternate.
      expect(await servedBy(sut, 3)).toHaveLength(3);
      expect(new Set(await servedBy(sut, 3)).size).toBe(3);
    });
  });

  it('fails at once, naming the backend, when no replica is in rotation', async () => {
    const { sut } = replicaSet([false, false]);
    const call = jest.fn(() => Promise.resolve('never'));
    const err = await sut.run(call).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(McpError);
    expect((err as McpError).message).toBe(
      'Backend crm unavailable: none of its 2 replicas is in rotation',
    );
    expect(call).not.toHaveBeenCalled();
  });

  it('sends a call on to the next replica only when told it may, each replica once', async () => {
    const { sut } = replicaSet([true, true, true]);
    const tried: string[] = [];
    const failing = (replica: Replica<string>) => {
      tried.push(replica.member!);
      return Promise.reject(new Error(`failed on ${replica.member}`));
    };
    await expect(sut.run(failing)).rejects.toThrow('failed on a');
    expect(tried).toEqual(['a']);

    tried.length = 0;
    await expect(sut.run(failing, () => true)).rejects.toThrow('failed on a');
    expect(tried).toEqual(['b', 'c', 'a']);
  });

  describe('health', () => {
    it('takes a replica out after unhealthyAfter failed probes in a row', async () => {
      const { sut, replicas, answers, changes } = replicaSet([true, true]);
      answers.set(1, false);
      await sut.checkAll();
      expect(replicas[1].up).toBe(true);
      answers.set(1, true);
      await sut.checkAll(); // a good probe in between starts the count again
      answers.set(1, false);
      await sut.checkAll();
      expect(replicas[1].up).toBe(true);
      await sut.checkAll();
      expect(replicas[1].up).toBe(false);
      expect(changes).toEqual(['b down']);
      expect(await servedBy(sut, 2)).toEqual(['a', 'a']);
    });

    it('brings a replica back after healthyAfter good probes in a row', async () => {
      const { sut, replicas, changes } = replicaSet([true, false]);
      await sut.checkAll();
      expect(replicas[1].up).toBe(false);
      await sut.checkAll();
      expect(replicas[1].up).toBe(true);
      expect(changes).toEqual(['b up']);
    });

    it('takes a replica out at once when a call could not reach it', async () => {
      const { sut, replicas, changes } = replicaSet([true, true]);
      sut.markDown(replicas[0], 'connection refused');
      sut.markDown(replicas[0], 'connection refused');
      expect(changes).toEqual(['a down']);
      expect(await servedBy(sut, 2)).toEqual(['b', 'b']);
    });

    it('keeps a replica whose circuit opened out until the hold has passed', async () => {
      let now = 1_000;
      const { sut, replicas } = replicaSet([true, true], { now: () => now });
      sut.markDown(replicas[0], 'its circuit opened', 500);
      await sut.checkAll();
      await sut.checkAll();
      await sut.checkAll();
      expect(replicas[0].up).toBe(false);
      now = 1_500;
      await sut.checkAll();
      expect(replicas[0].up).toBe(true);
    });

    it('probes every interval once started, and stops when closed', async () => {
      const probed: number[] = [];
      const replica = new Replica<string>(0, 'a');
      const sut = new ReplicaSet<string>([replica], {
        label: 'Backend crm',
        loadBalancing: 'round-robin',
        healthCheck: { ...HEALTH, intervalMs: 10, healthyAfter: 1 },
        probe: () => {
          probed.push(1);
          return Promise.resolve();
        },
      });
      sut.start();
      const deadline = Date.now() + 5_000;
      while (!replica.up && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      sut.close();
      expect(replica.up).toBe(true);
      const count = probed.length;
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(probed.length).toBe(count);
    });
  });

  it('names a replica by host and port only', () => {
    expect(replicaName('https://user:secret@mcp.example.com:8443/mcp?token=x')).toBe(
      'mcp.example.com:8443',
    );
  });
});

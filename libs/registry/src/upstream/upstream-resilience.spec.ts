import { BrokenCircuitError, BulkheadRejectedError, TaskCancelledError } from 'cockatiel';
import type { BreakerState } from '@portico/observability';
import {
  executeAlone,
  refusedByPolicy,
  UncountedFailure,
  UpstreamResilience,
  type UpstreamPolicy,
} from './upstream-resilience';
import { UPSTREAM_DEFAULTS, type UpstreamSettings } from './upstream-settings';

const SETTINGS: UpstreamSettings = {
  ...UPSTREAM_DEFAULTS,
  prefix: 'up',
  timeoutMs: 1000,
  breakerThreshold: 2,
  breakerResetMs: 20,
  internal: true,
};

const fail = (policy: UpstreamPolicy, err: unknown = new Error('ECONNREFUSED')) =>
  policy.execute(() => Promise.reject(err)).catch((caught: unknown) => caught);
const succeed = (policy: UpstreamPolicy) => policy.execute(() => Promise.resolve('ok'));

describe(UpstreamResilience.name, () => {
  let sut: UpstreamResilience;
  let states: BreakerState[];

  beforeEach(() => {
    sut = new UpstreamResilience(SETTINGS);
    states = [];
    sut.onCircuitChange((state) => states.push(state));
  });

  it('reports the circuit opening, half-opening for a trial and closing again', async () => {
    await fail(sut.call);
    expect(states).toEqual([]);
    await fail(sut.call);
    expect(states).toEqual(['open']);
    expect(refusedByPolicy(await fail(sut.call))).toBe(true);

    await new Promise((resolve) => setTimeout(resolve, SETTINGS.breakerResetMs + 10));
    expect(await succeed(sut.call)).toBe('ok');
    expect(states).toEqual(['open', 'half-open', 'closed']);
  });

  it('goes back to open when the half-open trial fails', async () => {
    await fail(sut.call);
    await fail(sut.call);
    await new Promise((resolve) => setTimeout(resolve, SETTINGS.breakerResetMs + 10));
    await fail(sut.call);
    expect(states).toEqual(['open', 'half-open', 'open']);
  });

  it('shares one breaker between calls and lists, and ignores uncounted failures', async () => {
    for (let i = 0; i < 3; i++) {
      await fail(sut.call, new UncountedFailure(new Error('JSON-RPC error')));
    }
    expect(states).toEqual([]);
    await fail(sut.list); // retried once: two counted failures
    expect(states).toEqual(['open']);
    expect(refusedByPolicy(await fail(sut.call))).toBe(true);
  });

  it('stops reporting once the listener is disposed', async () => {
    const later: BreakerState[] = [];
    sut.onCircuitChange((state) => later.push(state)).dispose();
    await fail(sut.call);
    await fail(sut.call);
    expect(states).toEqual(['open']);
    expect(later).toEqual([]);
  });
});

describe(refusedByPolicy.name, () => {
  it.each([
    [new BrokenCircuitError(), true],
    [new BulkheadRejectedError(1, 0), true],
    [new TaskCancelledError(), false],
    [new UncountedFailure(new Error('x')), false],
    [new Error('ECONNREFUSED'), false],
  ])('%p: %p', (err, refused) => {
    expect(refusedByPolicy(err)).toBe(refused);
  });
});

describe(executeAlone.name, () => {
  it('runs many calls at once without piling listeners on one shared signal', async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.name);
    process.on('warning', onWarning);
    try {
      const { call } = new UpstreamResilience({ ...SETTINGS, maxConcurrent: 64 });
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          executeAlone(call, ({ signal }) => {
            expect(signal.aborted).toBe(false);
            return new Promise((resolve) => setTimeout(() => resolve(i), 10));
          }),
        ),
      );
      expect(results).toHaveLength(40);
      // Warnings are emitted on the next tick.
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings).not.toContain('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
    }
  });
});

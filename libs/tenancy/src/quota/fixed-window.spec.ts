import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { FixedWindowCounter } from './fixed-window';

/** The library's verdict for one request: undefined when allowed, else msBeforeNext. */
async function libraryVerdict(limiter: RateLimiterMemory, key: string) {
  try {
    await limiter.consume(key, 1);
    return undefined;
  } catch (err) {
    if (err instanceof RateLimiterRes) {
      return err.msBeforeNext;
    }
    throw err;
  }
}

/** A deterministic pseudo-random sequence (xorshift32). */
function sequence(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

describe(FixedWindowCounter.name, () => {
  beforeEach(() => {
    jest.useFakeTimers({ now: Date.UTC(2026, 10, 25) });
  });

  afterEach(() => {
    jest.useRealTimers();
  });

  it('allows `points` requests per window, then says how long until the window ends', () => {
    const sut = new FixedWindowCounter(3, 60_000);

    expect([sut.consume('a'), sut.consume('a'), sut.consume('a')]).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
    jest.advanceTimersByTime(20_000);
    expect(sut.consume('a')).toBe(40_000);
    expect(sut.consume('b')).toBeUndefined();

    jest.advanceTimersByTime(40_000);
    expect(sut.consume('a')).toBeUndefined();
  });

  it('decides every request as RateLimiterMemory does', async () => {
    const random = sequence(0x5eed);
    const points = 5;
    const library = new RateLimiterMemory({ points, duration: 1 });
    const sut = new FixedWindowCounter(points, 1000);
    const keys = ['tenant:a', 'tenant:b', 'key:c'];
    const decisions: Array<[number | undefined, number | undefined]> = [];

    for (let i = 0; i < 2000; i++) {
      jest.advanceTimersByTime(Math.floor(random() * 120));
      const key = keys[Math.floor(random() * keys.length)];
      decisions.push([await libraryVerdict(library, key), sut.consume(key)]);
    }

    for (const [expected, actual] of decisions) {
      expect(actual).toBe(expected);
    }
    const refused = decisions.filter(([expected]) => expected !== undefined).length;
    expect(refused).toBeGreaterThan(100);
    expect(refused).toBeLessThan(1900);
  });
});

interface Window {
  count: number;
  readonly resetAt: number;
}

/**
 * Requests per key in fixed windows, counted in this process, with the semantics of
 * rate-limiter-flexible's RateLimiterMemory: a key's window opens with its first request and
 * lasts `durationMs`; a request beyond `points` in it is refused (and still counts). Unlike the
 * library's limiter it answers synchronously: a promise per request cost a metered tenant
 * endpoint more than its tenant and credential checks together.
 */
export class FixedWindowCounter {
  private readonly windows = new Map<string, Window>();

  constructor(
    readonly points: number,
    private readonly durationMs: number,
  ) {}

  /**
   * Counts one request of `key`: undefined when it is within the limit, else the milliseconds
   * until the key's window ends.
   */
  consume(key: string, now: number = Date.now()): number | undefined {
    let window = this.windows.get(key);
    if (window === undefined || window.resetAt <= now) {
      const opened: Window = { count: 0, resetAt: now + this.durationMs };
      this.windows.set(key, opened);
      // An idle key does not stay in memory past its window.
      setTimeout(() => {
        if (this.windows.get(key) === opened) {
          this.windows.delete(key);
        }
      }, this.durationMs).unref();
      window = opened;
    }
    window.count += 1;
    return window.count > this.points ? window.resetAt - now : undefined;
  }
}

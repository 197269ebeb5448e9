import {
  BrokenCircuitError,
  BulkheadRejectedError,
  bulkhead,
  circuitBreaker,
  CircuitState,
  ConsecutiveBreaker,
  handleWhen,
  type ICancellationContext,
  type IDisposable,
  type IPolicy,
  retry,
  TaskCancelledError,
  timeout,
  TimeoutStrategy,
  wrap,
} from 'cockatiel';
import type { BreakerState } from '@portico/observability';
import type { UpstreamSettings } from './upstream-settings';

/**
 * A failure that says nothing about the upstream's health (the upstream answered with a
 * JSON-RPC error, or our own caller went away): it passes the breaker uncounted and is never
 * retried. `cause` is what the caller gets to see.
 */
export class UncountedFailure extends Error {
  constructor(readonly failure: unknown) {
    super(failure instanceof Error ? failure.message : String(failure));
    this.name = 'UncountedFailure';
  }
}

export type UpstreamPolicy = IPolicy<ICancellationContext>;

/**
 * Runs `fn` under `policy` with a cancellation signal of its own. Without one, cockatiel hands
 * every execution the same module-wide never-aborted signal, and the timeout policy adds an
 * abort listener to it per call in flight: past ten concurrent calls Node prints a
 * MaxListenersExceededWarning ("possible memory leak"), and each removal walks every listener.
 */
export function executeAlone<T>(
  policy: UpstreamPolicy,
  fn: (context: ICancellationContext) => PromiseLike<T> | T,
): Promise<T> {
  return policy.execute(fn, new AbortController().signal);
}

/** Why a request never reached, or never came back from, the upstream; undefined: other. */
export function policyRefusal(err: unknown, timeoutMs: number): string | undefined {
  if (err instanceof BrokenCircuitError) {
    return 'circuit open';
  }
  if (err instanceof BulkheadRejectedError) {
    return 'too many concurrent requests';
  }
  if (err instanceof TaskCancelledError) {
    return `timed out after ${timeoutMs} ms`;
  }
  return undefined;
}

/** Whether the policies turned the request away before it was sent (circuit or bulkhead). */
export function refusedByPolicy(err: unknown): boolean {
  return err instanceof BrokenCircuitError || err instanceof BulkheadRejectedError;
}

const BREAKER_STATES: Record<CircuitState, BreakerState> = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.HalfOpen]: 'half-open',
  [CircuitState.Open]: 'open',
  [CircuitState.Isolated]: 'open',
};

/**
 * One backend's policies. Outermost first: a bulkhead (bounded concurrency, so a slow upstream
 * cannot hold every gateway socket), the circuit breaker (an open circuit answers at once), and
 * an aggressive timeout whose abort signal cancels the upstream request. Tool calls are never
 * retried (not known to be idempotent); list requests are retried once after a transport
 * failure, on a fresh connection.
 */
export class UpstreamResilience {
  readonly call: UpstreamPolicy;
  readonly list: UpstreamPolicy;
  /** Subscribes to the breaker's state changes; dispose to unsubscribe. */
  readonly onCircuitChange: (listener: (state: BreakerState) => void) => IDisposable;

  constructor(settings: UpstreamSettings) {
    const limit = bulkhead(settings.maxConcurrent, settings.maxQueued);
    const breaker = circuitBreaker(
      handleWhen((err) => !(err instanceof UncountedFailure)),
      {
        halfOpenAfter: settings.breakerResetMs,
        breaker: new ConsecutiveBreaker(settings.breakerThreshold),
      },
    );
    this.onCircuitChange = (listener) =>
      breaker.onStateChange((state) => listener(BREAKER_STATES[state]));
    // A call that returned in time leaves its signal alone: aborting it anyway (cockatiel's
    // default) built a DOMException and woke every listener of the combined signals on each
    // call, about 2 % of a federated call's CPU. A timeout still aborts.
    const deadline = timeout(settings.timeoutMs, {
      strategy: TimeoutStrategy.Aggressive,
      abortOnReturn: false,
    });
    this.call = wrap(limit, breaker, deadline);
    const once = retry(
      handleWhen(
        (err) =>
          !(err instanceof UncountedFailure) &&
          !(err instanceof BrokenCircuitError) &&
          !(err instanceof BulkheadRejectedError),
      ),
      { maxAttempts: 1 },
    );
    this.list = wrap(once, limit, breaker, deadline);
  }
}

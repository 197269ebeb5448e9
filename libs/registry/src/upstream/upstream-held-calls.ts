/*
 * Upstream calls held open across a 2026-07-28 client's input rounds. A 2025-era upstream
 * asks for input in the middle of a call (elicitation, sampling, roots); a 2026-07-28 client
 * answers with a new request. Rather than abandon the upstream call and run the tool again on
 * the retry (twice, side effects included), the gateway keeps the upstream request open, its
 * input requests unanswered, and seals the held call's id into the input round's
 * requestState; the retry takes the call over and answers them. A held call lives on the node
 * that holds it, for at most the backend's timeout; a retry that finds none (another node, a
 * restart, too late) runs the call again from the start, as it did before.
 */
import { randomUUID } from 'node:crypto';
import { ErrorCode, McpError } from '@portico/mcp-protocol';
import type { RelayedCall } from './upstream-relay';

/** One held call: the relay of its upstream request and how that request will end. */
export interface HeldCall {
  readonly id: string;
  readonly call: RelayedCall;
  readonly outcome: Promise<Record<string, unknown>>;
}

/** The calls of one backend held for their client's retry, on this node. */
export class HeldCalls {
  private readonly held = new Map<string, { entry: HeldCall; timer: NodeJS.Timeout }>();

  /** A new held call for `call`, whose upstream request ends with `outcome`. */
  static entry(call: RelayedCall, outcome: Promise<Record<string, unknown>>): HeldCall {
    // Nobody may be waiting for it while held: its end must not go unhandled.
    outcome.catch(() => undefined);
    return { id: randomUUID(), call, outcome };
  }

  /**
   * Keeps `entry` until its retry takes it, at most `ms`; then its upstream request is given
   * up. An upstream request that ends meanwhile (its own timeout) lets the entry go.
   */
  keep(entry: HeldCall, ms: number): void {
    this.drop(entry.id);
    const timer = setTimeout(() => {
      if (this.held.get(entry.id)?.entry === entry) {
        this.held.delete(entry.id);
        entry.call.abort(
          new McpError(ErrorCode.RequestCancelled, 'No retry came for the input round'),
        );
      }
    }, ms);
    timer.unref();
    this.held.set(entry.id, { entry, timer });
    entry.outcome.then(
      () => this.release(entry),
      () => this.release(entry),
    );
  }

  /** The held call a retry names, taken out of the table; undefined when none is here. */
  take(id: string | undefined): HeldCall | undefined {
    if (id === undefined) {
      return undefined;
    }
    const found = this.held.get(id);
    if (!found) {
      return undefined;
    }
    this.drop(id);
    return found.entry;
  }

  /** How many calls are held. */
  get size(): number {
    return this.held.size;
  }

  /** Gives every held call up (the backend closes). */
  close(): void {
    for (const { entry } of [...this.held.values()]) {
      this.drop(entry.id);
      entry.call.abort(new McpError(ErrorCode.RequestCancelled, 'The backend closed'));
    }
  }

  private release(entry: HeldCall): void {
    if (this.held.get(entry.id)?.entry === entry) {
      this.drop(entry.id);
    }
  }

  private drop(id: string): void {
    const found = this.held.get(id);
    if (found) {
      clearTimeout(found.timer);
      this.held.delete(id);
    }
  }
}

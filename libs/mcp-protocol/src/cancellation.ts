import { ErrorCode } from './constants';
import { McpError } from './jsonrpc';

type Listener = (reason: unknown) => void;

/**
 * A request's cancellation: cheap to create (most requests are never cancelled), with a
 * standard AbortSignal made only when a handler asks for one (fetch, timers, child calls).
 */
export class Cancellation {
  private controller?: AbortController;
  private listeners?: Listener[];
  private cause: unknown;
  private done = false;

  get cancelled(): boolean {
    return this.done;
  }

  get reason(): unknown {
    return this.cause;
  }

  /** A standard AbortSignal that aborts with this cancellation, created on first use. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.done) {
        this.controller.abort(this.cause);
      }
    }
    return this.controller.signal;
  }

  cancel(reason: unknown = new McpError(ErrorCode.RequestCancelled, 'Request cancelled')): void {
    if (this.done) {
      return;
    }
    this.done = true;
    this.cause = reason;
    this.controller?.abort(reason);
    const listeners = this.listeners;
    this.listeners = undefined;
    if (listeners) {
      for (const listener of listeners) {
        listener(reason);
      }
    }
  }

  /** Calls `listener` once on cancellation (at once if already cancelled); returns the undo. */
  onCancel(listener: Listener): () => void {
    if (this.done) {
      listener(this.cause);
      return noop;
    }
    (this.listeners ??= []).push(listener);
    return () => {
      const list = this.listeners;
      if (list) {
        const i = list.indexOf(listener);
        if (i >= 0) {
          list.splice(i, 1);
        }
      }
    };
  }

  /** A child that is cancelled with this one (and may also be cancelled on its own). */
  child(): Cancellation {
    const child = new Cancellation();
    if (this.done) {
      child.cancel(this.cause);
    } else {
      const undo = this.onCancel((reason) => child.cancel(reason));
      child.onCancel(undo);
    }
    return child;
  }
}

function noop(): void {}

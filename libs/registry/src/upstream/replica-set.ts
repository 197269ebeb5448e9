import { Logger } from '@nestjs/common';
import { BackendUnavailableError, McpError } from '@portico/mcp-protocol';
import type { HealthCheckSettings, LoadBalancing } from './upstream-settings';

/**
 * One instance of a replicated backend: its place in the settings (0 is the target), its
 * health, and the calls it serves right now. `member` is the connection to it, absent while a
 * replica that was down from the start has not been connected yet.
 */
export class Replica<T> {
  member?: T;
  /** In rotation: calls are sent to it. */
  up = false;
  /** Calls sent to it and not finished yet (least-in-flight). */
  inFlight = 0;
  /** Consecutive good and failed probes, since the last verdict either way. */
  private good = 0;
  private bad = 0;
  /** Not back in rotation before this time (its circuit opened: see holdDown). */
  private heldUntil = 0;
  probing = false;

  constructor(
    readonly index: number,
    /** For logs: host and port only (the URL may carry secrets). */
    readonly name: string,
  ) {}

  /** A probe's outcome; true when it changed the verdict. */
  probed(ok: boolean, health: HealthCheckSettings, now: number): boolean {
    if (ok) {
      this.bad = 0;
      this.good += 1;
      if (!this.up && this.good >= health.healthyAfter && now >= this.heldUntil) {
        this.up = true;
        return true;
      }
      return false;
    }
    this.good = 0;
    this.bad += 1;
    if (this.up && this.bad >= health.unhealthyAfter) {
      this.up = false;
      return true;
    }
    return false;
  }

  /** Out of rotation at once (a call could not reach it); true when it was in. */
  down(now: number, holdMs = 0): boolean {
    const was = this.up;
    this.up = false;
    this.good = 0;
    this.heldUntil = Math.max(this.heldUntil, now + holdMs);
    return was;
  }
}

export interface ReplicaSetOptions<T> {
  /** "Backend <name>", for errors and logs. */
  readonly label: string;
  readonly loadBalancing: LoadBalancing;
  readonly healthCheck: HealthCheckSettings;
  /**
   * One health probe of a replica; rejects when it failed. Called only while no other probe
   * of that replica runs.
   */
  readonly probe: (replica: Replica<T>) => Promise<void>;
  /** A replica went in or out of rotation (metrics, lists). */
  readonly onChange?: (replica: Replica<T>) => void;
  /** The clock the hold after an open circuit is measured on. */
  readonly now?: () => number;
}

/**
 * The replicas of one backend: which of them are in rotation, and which one serves the next
 * call. Every `healthCheck.intervalMs` each replica is probed (not while its last probe still
 * runs); `unhealthyAfter` failed probes in a row take it out of rotation, and `healthyAfter`
 * good ones bring it back. A call that cannot reach a replica takes it out at once
 * (`markDown`), so traffic does not wait for the next probe to leave a dead instance.
 */
export class ReplicaSet<T> {
  private readonly logger = new Logger(ReplicaSet.name);
  private readonly now: () => number;
  private timer?: NodeJS.Timeout;
  /** Where round-robin resumes. */
  private cursor = 0;
  private closed = false;

  constructor(
    readonly replicas: readonly Replica<T>[],
    private readonly options: ReplicaSetOptions<T>,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Starts the periodic health checks (they do not keep the process alive). */
  start(): void {
    if (this.timer || this.closed) {
      return;
    }
    this.timer = setInterval(() => void this.checkAll(), this.options.healthCheck.intervalMs);
    this.timer.unref();
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The replicas in rotation, in their order. */
  healthy(): Replica<T>[] {
    return this.replicas.filter((r) => r.up);
  }

  /**
   * The replica the next call goes to, by the load-balancing policy, among those in rotation
   * and not in `exclude`; undefined when there is none.
   */
  pick(exclude?: ReadonlySet<Replica<T>>): Replica<T> | undefined {
    const count = this.replicas.length;
    let chosen: Replica<T> | undefined;
    for (let step = 0; step < count; step++) {
      const replica = this.replicas[(this.cursor + step) % count];
      if (!replica.up || exclude?.has(replica)) {
        continue;
      }
      if (this.options.loadBalancing === 'round-robin') {
        chosen = replica;
        break;
      }
      // Least in flight; ties go to the first from the cursor, so idle replicas alternate.
      if (!chosen || replica.inFlight < chosen.inFlight) {
        chosen = replica;
      }
    }
    if (chosen) {
      this.cursor = (chosen.index + 1) % count;
    }
    return chosen;
  }

  /**
   * Runs `call` on a replica chosen by pick(). When it fails and `retry(err, replica)` says
   * the call may go elsewhere (it was never sent, or repeating it is harmless), the next
   * replica in rotation gets it, each replica once at most. With none in rotation it fails at
   * once, naming the backend.
   */
  async run<R>(
    call: (replica: Replica<T>) => Promise<R>,
    retry: (err: unknown, replica: Replica<T>) => boolean = () => false,
  ): Promise<R> {
    const tried = new Set<Replica<T>>();
    let failure: unknown;
    for (;;) {
      const replica = this.pick(tried);
      if (!replica) {
        throw tried.size === 0 ? this.noneUp() : failure;
      }
      tried.add(replica);
      replica.inFlight += 1;
      try {
        return await call(replica);
      } catch (err) {
        if (!retry(err, replica)) {
          throw err;
        }
        failure = err;
      } finally {
        replica.inFlight -= 1;
      }
    }
  }

  /**
   * Takes `replica` out of rotation now; it comes back after `healthyAfter` good probes, and
   * not before `holdMs` (an open circuit refuses calls until its reset time anyway).
   */
  markDown(replica: Replica<T>, reason: string, holdMs = 0): void {
    if (replica.down(this.now(), holdMs)) {
      this.logger.warn(
        `${this.options.label}: replica ${replica.index} (${replica.name}) out of rotation: ` +
          reason,
      );
      this.options.onChange?.(replica);
    }
  }

  /** Puts `replica` in rotation now (it has just been connected and answered). */
  admit(replica: Replica<T>): void {
    if (!this.closed && !replica.up) {
      replica.up = true;
      this.options.onChange?.(replica);
    }
  }

  /** A probe's outcome, as the periodic check records it. */
  record(replica: Replica<T>, ok: boolean, reason?: string): void {
    if (this.closed || !replica.probed(ok, this.options.healthCheck, this.now())) {
      return;
    }
    if (replica.up) {
      this.logger.log(`${this.options.label}: replica ${replica.index} (${replica.name}) is up`);
    } else {
      this.logger.warn(
        `${this.options.label}: replica ${replica.index} (${replica.name}) is down: ${reason}`,
      );
    }
    this.options.onChange?.(replica);
  }

  /** Probes every replica whose last probe has finished; resolves when these are done. */
  checkAll(): Promise<void> {
    return Promise.all(this.replicas.map((replica) => this.check(replica))).then(() => undefined);
  }

  private async check(replica: Replica<T>): Promise<void> {
    if (replica.probing || this.closed) {
      return;
    }
    replica.probing = true;
    try {
      await this.options.probe(replica);
      this.record(replica, true);
    } catch (err) {
      this.record(replica, false, err instanceof Error ? err.message : String(err));
    } finally {
      replica.probing = false;
    }
  }

  private noneUp(): McpError {
    const count = this.replicas.length;
    return new BackendUnavailableError(
      `${this.options.label} unavailable: none of its ${count} replicas is in rotation`,
    );
  }
}

/** host:port of a replica's URL, for logs (never its path, query or credentials). */
export function replicaName(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return 'invalid URL';
  }
}

// The stdio client: the bench's own process drives a server child over its
// stdin/stdout (newline-delimited JSON-RPC), one request in flight at a time,
// so every figure is a full round trip: write, pipe, server, pipe, read.
import { createHistogram, performance } from 'node:perf_hooks';
import { cpuPerCall, cpuTimeMs } from './lib/procs.mjs';
import {
  INITIALIZED_NOTIFICATION,
  checkEchoMessage,
  checkInitializeMessage,
  eraFrame,
  initializeMessage,
  nextId,
} from './lib/mcp.mjs';

/** A call unanswered this long ends the round as a timeout. */
const ANSWER_TIMEOUT_MS = 10_000;

/** Line framing over a child's stdio; `onLine` gets each complete stdout line. */
export class StdioPeer {
  constructor(child) {
    this.child = child;
    this.onLine = null;
    this.onExit = null;
    let buffered = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      buffered += chunk;
      let newline;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        if (line.trim()) {
          this.onLine?.(line);
        }
      }
    });
    child.once('exit', (code, signal) => {
      this.exited = `${child.benchName} exited (code ${code}, signal ${signal})`;
      this.onExit?.();
    });
  }

  write(text) {
    this.child.stdin.write(`${text}\n`);
  }

  /** One request and its answer, parsed (setup and checks only, never under load). */
  exchange(text) {
    return new Promise((resolve, reject) => {
      const done = (err, value) => {
        clearTimeout(timer);
        this.onLine = null;
        this.onExit = null;
        if (err) {
          reject(err);
        } else {
          resolve(value);
        }
      };
      if (this.exited) {
        reject(new Error(this.exited));
        return;
      }
      const timer = setTimeout(
        () => done(new Error(`no answer within ${ANSWER_TIMEOUT_MS} ms`)),
        ANSWER_TIMEOUT_MS,
      );
      this.onLine = (line) => {
        let msg;
        try {
          msg = JSON.parse(line);
        } catch {
          done(new Error(`unparseable line on stdout: ${line.slice(0, 300)}`));
          return;
        }
        if (typeof msg?.method !== 'string') {
          done(null, msg); // server-initiated messages are skipped
        }
      };
      this.onExit = () => done(new Error(`${this.exited}\n${this.child.outputTail()}`));
      this.write(text);
    });
  }

  /** The 2025-11-25 handshake: initialize, wait for its result, notifications/initialized. */
  async initialize2025() {
    const id = nextId();
    const reason = checkInitializeMessage(await this.exchange(initializeMessage(id)), id);
    if (reason) {
      throw new Error(reason);
    }
    this.write(INITIALIZED_NOTIFICATION);
  }

  /** Send `count` calls one by one and verify each answer (before and after the load). */
  async sampleCheck(era, count = 3) {
    const frame = eraFrame(era);
    for (let i = 0; i < count; i++) {
      const id = nextId();
      const msg = await this.exchange(frame(id));
      const reason = checkEchoMessage(msg, id);
      if (reason) {
        throw new Error(`sample check failed: ${reason}\n  line: ${JSON.stringify(msg)}`);
      }
    }
  }
}

/**
 * One measured round: sequential tools/call round trips for `durationSec`, the
 * next call written as soon as the previous answer was read. Each call has a
 * unique JSON-RPC id; with `verify` every answer is checked to be the echo
 * result for that id. A stalled server (no answer in 10 s) or a dead one ends
 * the round early, counted as a timeout or an error.
 */
export async function runStdioRound(peer, { era, durationSec, verify = true }) {
  const frame = eraFrame(era);
  const serverPid = peer.child.pid;
  const latencyUs = createHistogram();
  let completed = 0;
  let invalid = 0;
  let timeouts = 0;
  let errors = 0;
  let firstInvalid;
  let firstError;
  const invalidate = (reason, line) => {
    invalid++;
    firstInvalid ??= { reason, body: line.slice(0, 500) };
  };

  const loaderCpu0 = process.cpuUsage();
  const serverCpu0 = cpuTimeMs(serverPid);
  const t0 = performance.now();
  const deadline = t0 + durationSec * 1000;
  let wallMs;
  await new Promise((resolve) => {
    let id;
    let sentAt;
    const finish = () => {
      wallMs = performance.now() - t0;
      clearInterval(stallCheck);
      peer.onLine = null;
      peer.onExit = null;
      resolve();
    };
    const send = () => {
      id = nextId();
      sentAt = performance.now();
      peer.write(frame(id));
    };
    peer.onLine = (line) => {
      const now = performance.now();
      if (verify) {
        let msg;
        try {
          msg = JSON.parse(line);
        } catch {
          invalidate('unparseable line', line); // its call stays unanswered: a timeout
          return;
        }
        if (typeof msg?.method === 'string') {
          return; // a server-initiated message, not an answer
        }
        if (msg?.id !== id) {
          invalidate(
            `answer for unexpected id ${JSON.stringify(msg?.id)} (waiting for ${id})`,
            line,
          );
          return;
        }
        const reason = checkEchoMessage(msg, id);
        if (reason) {
          invalidate(reason, line);
        }
      }
      latencyUs.record(Math.max(1, Math.round((now - sentAt) * 1000)));
      completed++;
      if (now < deadline) {
        send();
      } else {
        finish();
      }
    };
    peer.onExit = () => {
      errors++;
      firstError = peer.exited;
      finish();
    };
    const stallCheck = setInterval(() => {
      if (performance.now() - sentAt > ANSWER_TIMEOUT_MS) {
        timeouts++;
        firstError ??= `no answer to id ${id} within ${ANSWER_TIMEOUT_MS} ms`;
        finish();
      }
    }, 1000);
    if (peer.exited) {
      peer.onExit();
    } else {
      send();
    }
  });
  const loaderCpu = process.cpuUsage(loaderCpu0);
  const serverCpu1 = cpuTimeMs(serverPid);

  const us = (v) => (latencyUs.count ? Math.round(v) : null);
  const pct = (cpuMs) =>
    cpuMs === undefined || Number.isNaN(cpuMs) ? null : Math.round((100 * cpuMs) / wallMs);
  return {
    callsPerSec: Math.round((completed * 1000) / wallMs),
    completed,
    durationSec: Math.round(wallMs) / 1000,
    latencyUs: {
      p50: us(latencyUs.percentile(50)),
      p90: us(latencyUs.percentile(90)),
      p99: us(latencyUs.percentile(99)),
      max: us(latencyUs.max),
    },
    errors,
    firstError,
    timeouts,
    invalid,
    firstInvalid,
    verified: verify,
    cpuPercent: {
      loader: pct((loaderCpu.user + loaderCpu.system) / 1000),
      server: pct(serverCpu1 - serverCpu0),
    },
    serverCpuUsPerCall: cpuPerCall(serverCpu1 - serverCpu0, completed),
  };
}

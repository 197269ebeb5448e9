// The WebSocket load generator: `ws` clients in the bench's own process while
// the server under test lives in a child process (as load.mjs does for HTTP).
import { createHistogram, performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { cpuPerCall, cpuTimeMs } from './lib/procs.mjs';
import {
  INITIALIZED_NOTIFICATION,
  checkEchoMessage,
  checkInitializeMessage,
  eraFrame,
  initializeMessage,
  nextId,
} from './lib/mcp.mjs';

export const SUBPROTOCOL = 'mcp';

/** A request unanswered this long counts as a timeout (like autocannon's `timeout: 10`). */
const ANSWER_TIMEOUT_MS = 10_000;

// The generator shares 2 cores with the server, so it does as little as it
// can: no compression, no UTF-8 re-validation of frames it parses anyway.
const CLIENT_OPTIONS = {
  perMessageDeflate: false,
  skipUTF8Validation: true,
  handshakeTimeout: ANSWER_TIMEOUT_MS,
};

/** Only needed to pair answers with requests when BENCH_VERIFY=0 and pipeline > 1. */
const ID_PATTERN = /"id":(\d+)/;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Open one connection with subprotocol "mcp". For the 2025 era, also run the
 * handshake the way a 2025 client does: initialize, wait for its result, then
 * notifications/initialized.
 */
async function openConnection(url, era) {
  const socket = new WebSocket(url, SUBPROTOCOL, CLIENT_OPTIONS);
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  if (socket.protocol !== SUBPROTOCOL) {
    socket.terminate();
    throw new Error(`server chose subprotocol ${JSON.stringify(socket.protocol)}, not "mcp"`);
  }
  if (era === '2025') {
    const id = nextId();
    try {
      const reason = checkInitializeMessage(await exchange(socket, initializeMessage(id)), id);
      if (reason) {
        throw new Error(reason);
      }
    } catch (err) {
      socket.terminate();
      throw err;
    }
    socket.send(INITIALIZED_NOTIFICATION);
  }
  return socket;
}

/** Open `count` connections at once; all or none. */
async function openConnections(url, era, count) {
  const settled = await Promise.allSettled(
    Array.from({ length: count }, () => openConnection(url, era)),
  );
  const sockets = settled.filter((s) => s.status === 'fulfilled').map((s) => s.value);
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) {
    await closeAll(sockets);
    throw new Error(
      `${settled.length - sockets.length} of ${count} connections failed: ${failed.reason?.message}`,
    );
  }
  return sockets;
}

function closeAll(sockets) {
  return Promise.all(
    sockets.map(
      (socket) =>
        new Promise((resolve) => {
          if (socket.readyState === WebSocket.CLOSED) {
            resolve();
            return;
          }
          const timer = setTimeout(() => socket.terminate(), 2000);
          socket.once('close', () => {
            clearTimeout(timer);
            resolve();
          });
          socket.close(1000);
        }),
    ),
  );
}

/**
 * Send one frame and resolve with the next answer, parsed (setup and checks
 * only, never under load). Server-initiated messages are skipped.
 */
function exchange(socket, text) {
  return new Promise((resolve, reject) => {
    const done = (err, value) => {
      clearTimeout(timer);
      socket.off('message', onMessage);
      socket.off('close', onClose);
      if (err) {
        reject(err);
      } else {
        resolve(value);
      }
    };
    const onMessage = (data) => {
      let msg;
      try {
        msg = JSON.parse(data.toString());
      } catch {
        done(new Error(`unparseable frame: ${data.toString().slice(0, 300)}`));
        return;
      }
      if (typeof msg?.method !== 'string') {
        done(null, msg);
      }
    };
    const onClose = (code, reason) => done(new Error(`connection closed (${code} ${reason})`));
    const timer = setTimeout(
      () => done(new Error(`no answer within ${ANSWER_TIMEOUT_MS} ms`)),
      ANSWER_TIMEOUT_MS,
    );
    socket.on('message', onMessage);
    socket.on('close', onClose);
    socket.send(text);
  });
}

/**
 * Send `count` calls one by one on a fresh connection and verify each answer.
 * Run before the load (so a broken target is never benchmarked) and after it
 * (so a target that degraded under load is noticed).
 */
export async function sampleCheckWs(url, era, count = 3) {
  const socket = await openConnection(url, era);
  try {
    const frame = eraFrame(era);
    for (let i = 0; i < count; i++) {
      const id = nextId();
      const msg = await exchange(socket, frame(id));
      const reason = checkEchoMessage(msg, id);
      if (reason) {
        throw new Error(`sample check failed: ${reason}\n  frame: ${JSON.stringify(msg)}`);
      }
    }
  } finally {
    await closeAll([socket]);
  }
}

/**
 * One measured round: open `connections` connections (and, for the 2025 era,
 * initialize each) before the clock starts; then every connection keeps
 * `pipeline` tools/call requests in flight for `durationSec`, sending the next
 * one as soon as an answer arrives. Each request has a process-wide unique
 * JSON-RPC id; answers are paired with requests by id (an MCP server may
 * answer out of order), and with `verify` every answer is checked to be the
 * echo result for its id. Answers that arrive after the deadline are waited
 * for (up to 10 s, else they are timeouts) and checked, but not counted in
 * req/s.
 */
export async function runWsLoad({
  url,
  era,
  connections,
  pipeline,
  durationSec,
  verify = true,
  serverPid,
}) {
  const frame = eraFrame(era);
  const sockets = await openConnections(url, era, connections);

  const latencyUs = createHistogram();
  let phase = 'run'; // 'run' -> 'drain' (deadline passed) -> 'done'
  let completed = 0;
  let late = 0;
  let outstanding = 0;
  let invalid = 0;
  let errors = 0;
  let firstInvalid;
  let firstError;
  let onDrained;
  const invalidate = (reason, text) => {
    invalid++;
    firstInvalid ??= { reason, body: text.slice(0, 500) };
  };

  const starters = [];
  for (const socket of sockets) {
    const pending = new Map(); // id -> performance.now() when sent
    const send = () => {
      const id = nextId();
      pending.set(id, performance.now());
      outstanding++;
      socket.send(frame(id));
    };
    starters.push(() => {
      for (let i = 0; i < pipeline; i++) {
        send();
      }
    });
    socket.on('message', (data) => {
      const now = performance.now();
      const text = data.toString();
      let id;
      if (verify) {
        let msg;
        try {
          msg = JSON.parse(text);
        } catch {
          invalidate('unparseable frame', text); // its request stays pending: a timeout
          return;
        }
        if (typeof msg?.method === 'string') {
          return; // a server-initiated message, not an answer
        }
        id = msg?.id;
        if (!pending.has(id)) {
          invalidate(`answer for unknown id ${JSON.stringify(id)}`, text);
          return;
        }
        const reason = checkEchoMessage(msg, id);
        if (reason) {
          invalidate(reason, text);
        }
      } else {
        id = pipeline === 1 ? pending.keys().next().value : Number(ID_PATTERN.exec(text)?.[1]);
        if (!pending.has(id)) {
          return;
        }
      }
      const sentAt = pending.get(id);
      pending.delete(id);
      outstanding--;
      latencyUs.record(Math.max(1, Math.round((now - sentAt) * 1000)));
      if (phase === 'run') {
        completed++;
        send();
      } else {
        late++;
        if (outstanding === 0) {
          onDrained?.();
        }
      }
    });
    socket.on('error', (err) => {
      errors++;
      firstError ??= err.message;
    });
    socket.on('close', (code, reason) => {
      if (phase !== 'done' && pending.size) {
        errors += pending.size;
        outstanding -= pending.size;
        firstError ??= `connection closed (${code} ${reason}) with ${pending.size} call(s) unanswered`;
        pending.clear();
        if (phase === 'drain' && outstanding === 0) {
          onDrained?.();
        }
      }
    });
  }

  // CPU time of both sides tells whether the server or the load generator was
  // saturated (see load.mjs).
  const loaderCpu0 = process.cpuUsage();
  const serverCpu0 = serverPid && cpuTimeMs(serverPid);
  const t0 = performance.now();
  for (const start of starters) {
    start();
  }
  await sleep(durationSec * 1000);
  phase = 'drain';
  const wallMs = performance.now() - t0;
  const loaderCpu = process.cpuUsage(loaderCpu0);
  const serverCpu1 = serverPid && cpuTimeMs(serverPid);

  if (outstanding > 0) {
    await new Promise((resolve) => {
      onDrained = resolve;
      setTimeout(resolve, ANSWER_TIMEOUT_MS).unref();
    });
  }
  const timeouts = outstanding;
  phase = 'done';
  await closeAll(sockets);

  const ms = (us) => (latencyUs.count ? Math.round(us) / 1000 : null);
  const pct = (cpuMs) =>
    cpuMs === undefined || Number.isNaN(cpuMs) ? null : Math.round((100 * cpuMs) / wallMs);
  return {
    reqPerSec: Math.round((completed * 1000) / wallMs),
    completed,
    late,
    durationSec: Math.round(wallMs) / 1000,
    latencyMs: {
      p50: ms(latencyUs.percentile(50)),
      p90: ms(latencyUs.percentile(90)),
      p99: ms(latencyUs.percentile(99)),
      max: ms(latencyUs.max),
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
    serverCpuUsPerReq: cpuPerCall(serverCpu1 - serverCpu0, completed),
  };
}

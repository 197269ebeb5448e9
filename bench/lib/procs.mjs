// Child-process lifecycle for the bench: start servers, wait until they
// answer, and make sure every process we started dies with us — on normal exit,
// on error, and on Ctrl-C. Only processes started here are ever signalled, and
// only by their own pid.
import { fork, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';

const children = new Set();

/**
 * Keep the tail of a child's output so a failed start can be explained. A
 * stdio server's stdout is its protocol stream, which the bench reads itself:
 * then only stderr is kept.
 */
function captureTail(child, { stdout = true } = {}, limit = 4000) {
  let tail = '';
  const keep = (chunk) => {
    tail = (tail + chunk).slice(-limit);
  };
  if (stdout) {
    child.stdout?.setEncoding('utf8').on('data', keep);
  }
  child.stderr?.setEncoding('utf8').on('data', keep);
  return () => tail;
}

function track(child, name, captureOptions) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  child.benchName = name;
  child.outputTail = captureTail(child, captureOptions);
  return child;
}

function exitPromise(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve();
    } else {
      child.once('exit', resolve);
    }
  });
}

/** Fail fast with the child's own output if it dies while we wait on it. */
function rejectOnExit(child) {
  return exitPromise(child).then(() => {
    throw new Error(
      `${child.benchName} exited (code ${child.exitCode}, signal ${child.signalCode}) before it was ready.\n` +
        child.outputTail(),
    );
  });
}

function timeout(ms, what) {
  return new Promise((_, reject) => {
    setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms).unref();
  });
}

/**
 * Fork one of the bench/servers/*.mjs fixtures. It listens on an OS-assigned
 * port (no race with other processes) and reports it over IPC.
 */
export async function startFixture(script, name, { readyTimeoutMs = 15_000 } = {}) {
  const child = track(
    fork(script, [], {
      env: { ...process.env, HOST: '127.0.0.1', PORT: '0', NODE_ENV: 'production' },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    }),
    name,
  );
  const ready = new Promise((resolve) => {
    child.on('message', (msg) => msg?.type === 'ready' && resolve(msg.port));
  });
  try {
    const port = await Promise.race([ready, rejectOnExit(child), timeout(readyTimeoutMs, name)]);
    return { child, port };
  } catch (err) {
    await stop(child); // a half-started server must not linger
    throw err;
  }
}

/**
 * Fork a script that does one job and reports back with a single IPC message
 * (the engine microbenchmark). Resolves with that message.
 */
export async function runForked(script, name, { env = {}, timeoutMs }) {
  const child = track(
    fork(script, [], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] }),
    name,
  );
  const message = new Promise((resolve) => child.once('message', resolve));
  try {
    return await Promise.race([message, rejectOnExit(child), timeout(timeoutMs, name)]);
  } finally {
    await stop(child);
  }
}

/** An OS-chosen free loopback port, for servers that need PORT up front. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Spawn an arbitrary server command (used for Portico) and wait until its
 * port accepts TCP connections.
 */
export async function startCommand(
  command,
  args,
  { name, env, cwd, port, readyTimeoutMs = 30_000 },
) {
  const child = track(
    spawn(command, args, {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
    name,
  );
  let waiting = true;
  const poll = (async () => {
    while (waiting && !(await canConnect(port))) {
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  try {
    await Promise.race([
      poll,
      rejectOnExit(child),
      timeout(readyTimeoutMs, `${name} on port ${port}`),
    ]);
    return { child, port };
  } catch (err) {
    await stop(child); // a half-started server must not linger
    throw err;
  } finally {
    waiting = false; // stop polling whichever way the race ended
  }
}

/**
 * Spawn a server that speaks on its stdin/stdout (newline-delimited JSON-RPC).
 * Readiness is the caller's business (a first request that gets answered);
 * `exited` rejects with the child's stderr tail if it dies, for racing.
 */
export function startStdioCommand(command, args, { name, env, cwd }) {
  const child = track(
    spawn(command, args, {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    }),
    name,
    { stdout: false },
  );
  // A stdin write racing the child's exit must not crash the bench (EPIPE).
  child.stdin.on('error', () => {});
  const exited = rejectOnExit(child);
  exited.catch(() => {}); // only matters when someone races it
  return { child, exited };
}

/** SIGTERM, then SIGKILL if the child ignores it. */
export async function stop(child, graceMs = 2000) {
  if (child.exitCode !== null || child.signalCode !== null) {
    return;
  }
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exitPromise(child);
  clearTimeout(timer);
}

export async function stopAll() {
  await Promise.all([...children].map((child) => stop(child)));
}

/**
 * Last-resort cleanup. 'exit' handlers must be synchronous, so they can only
 * SIGKILL; signals and crashes get the graceful path first.
 */
export function installCleanup() {
  process.on('exit', () => {
    for (const child of children) {
      child.kill('SIGKILL');
    }
  });
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      console.error(`\n${signal} received: stopping servers`);
      stopAll().finally(() => process.exit(130));
    });
  }
  const crash = (err) => {
    console.error('bench crashed:', err);
    stopAll().finally(() => process.exit(1));
  };
  process.on('uncaughtException', crash);
  process.on('unhandledRejection', crash);
}

/**
 * CPU time (user + system, ms) consumed so far by a process, from
 * /proc/<pid>/stat. Used to show whether the server or the load generator was
 * the bottleneck. Returns undefined where /proc is unavailable.
 */
/**
 * Server CPU µs per answered call over a round: the server's own cost, without
 * the load generator's share that req/s includes. /proc has 10 ms resolution,
 * plenty over rounds of seconds.
 */
export function cpuPerCall(cpuMs, calls) {
  if (cpuMs === undefined || Number.isNaN(cpuMs) || !calls) {
    return null;
  }
  return Math.round((cpuMs * 10_000) / calls) / 10;
}

export function cpuTimeMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "pid (comm)"; comm may contain spaces, so split after ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
    return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return undefined;
  }
}

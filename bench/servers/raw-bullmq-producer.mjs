// Baseline producer for bench/queue.mjs: a bare BullMQ client keeping a fixed number of
// tool-call jobs in flight, each `queue.add` → `job.waitUntilFinished(queueEvents)`, timed
// from before the add to the result (a µs histogram, like bench/load.mjs keeps for HTTP).
// Forked by the bench and driven over IPC:
//   { type: 'start', redisUrl, queue, prefix, data, jobOptions } → { type: 'started' }
//   { type: 'run', durationSec, inFlight, verify }               → { type: 'result', result }
import { createHistogram } from 'node:perf_hooks';
import { Queue, QueueEvents } from 'bullmq';
import Redis from 'ioredis';

const JOB_NAME = 'tools.call';
/** A job's deadline as Portico sets it by default (DEFAULT_QUEUED_TIMEOUT_MS). */
const TIMEOUT_MS = 60_000;

let setup;
const clients = [];

function connection(url, options) {
  const client = new Redis(url, options);
  clients.push(client);
  return client;
}

/** The same connections as Portico's producer side (tool-call.queue.ts, `producer()`). */
async function start({ redisUrl, queue: name, prefix, data, jobOptions }) {
  const queue = new Queue(name, {
    connection: connection(redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false }),
    prefix,
  });
  const events = new QueueEvents(name, {
    connection: connection(redisUrl, { maxRetriesPerRequest: null }),
    prefix,
  });
  await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
  setup = { queue, events, data, jobOptions };
}

/**
 * `inFlight` loops, each adding a job as soon as its previous one finished, for
 * `durationSec`. Only round trips that end within the window count; the ones still in flight
 * then are awaited (and checked) but not counted, as autocannon does.
 */
async function run({ durationSec, inFlight, verify }) {
  const { queue, events, data, jobOptions } = setup;
  const latencyUs = createHistogram();
  let completed = 0;
  let errors = 0;
  let invalid = 0;
  let firstError;
  let firstInvalid;
  let seq = 0;
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const end = started + durationSec * 1000;

  const loop = async () => {
    while (performance.now() < end) {
      const requestId = ++seq;
      const t0 = performance.now();
      try {
        const job = await queue.add(
          JOB_NAME,
          { ...data, requestId, deadline: Date.now() + TIMEOUT_MS },
          jobOptions,
        );
        const result = await job.waitUntilFinished(events, TIMEOUT_MS);
        const t1 = performance.now();
        if (t1 > end) {
          break;
        }
        completed++;
        latencyUs.record(Math.max(1, Math.round((t1 - t0) * 1000)));
        if (verify && result?.content?.[0]?.text !== data.arguments.message) {
          invalid++;
          firstInvalid ??= { reason: 'result does not echo the message', body: result };
        }
      } catch (err) {
        errors++;
        firstError ??= err.message;
      }
    }
  };
  await Promise.all(Array.from({ length: inFlight }, loop));
  const cpu = process.cpuUsage(cpu0);
  const ms = (us) => (latencyUs.count ? Math.round(us) / 1000 : null);
  return {
    reqPerSec: Math.round(completed / durationSec),
    completed,
    latencyMs: {
      p50: ms(latencyUs.percentile(50)),
      p90: ms(latencyUs.percentile(90)),
      p99: ms(latencyUs.percentile(99)),
      max: ms(latencyUs.max),
    },
    errors,
    firstError,
    invalid,
    firstInvalid,
    /** This process's CPU time over the round (µs), the load generator's share of the cost. */
    cpuUs: cpu.user + cpu.system,
  };
}

process.on('message', async (msg) => {
  try {
    if (msg?.type === 'start') {
      await start(msg);
      process.send({ type: 'started' });
    } else if (msg?.type === 'run') {
      process.send({ type: 'result', result: await run(msg) });
    }
  } catch (err) {
    process.send({ type: 'failed', message: err.message });
  }
});

async function shutdown() {
  await Promise.all([setup?.events.close(), setup?.queue.close()]).catch(() => undefined);
  for (const client of clients) {
    client.disconnect();
  }
  process.exit(0);
}
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);
// Never outlive the bench, even when it is killed.
process.on('disconnect', shutdown);
process.send?.({ type: 'ready' });

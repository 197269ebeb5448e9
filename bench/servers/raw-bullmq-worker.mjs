// Baseline consumer for bench/queue.mjs: a bare BullMQ worker on the tool-call queue whose
// processor answers every job at once with the echo result. Nothing else runs in the process,
// so it is the floor any worker on BullMQ could reach. Forked by the bench; it is configured
// over IPC ({ type: 'start', ... }) and answers { type: 'started' } once it consumes.
import { Worker } from 'bullmq';
import Redis from 'ioredis';

let worker;
let client;

process.on('message', async (msg) => {
  if (msg?.type !== 'start') {
    return;
  }
  // The same connection and worker options as Portico's worker
  // (libs/queue/src/tool-call.queue.ts, startWorker): only the processor differs.
  client = new Redis(msg.redisUrl, { maxRetriesPerRequest: null });
  worker = new Worker(
    msg.queue,
    async (job) => ({
      ...msg.result,
      content: [{ type: 'text', text: job.data.arguments.message }],
    }),
    {
      connection: client,
      prefix: msg.prefix,
      concurrency: msg.concurrency,
      lockDuration: msg.lockMs,
      stalledInterval: Math.max(500, Math.floor(msg.lockMs / 2)),
      maxStalledCount: 1,
    },
  );
  worker.on('error', (err) => console.error(`raw worker: ${err.message}`));
  await worker.waitUntilReady();
  process.send({ type: 'started' });
});

async function shutdown() {
  await worker?.close().catch(() => undefined);
  client?.disconnect();
  process.exit(0);
}
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);
// Never outlive the bench, even when it is killed.
process.on('disconnect', shutdown);
process.send?.({ type: 'ready' });

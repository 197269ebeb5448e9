// Baseline for bench/queue.mjs: the raw BullMQ round trip behind HTTP. A bare Fastify server
// (as servers/bare-fastify.mjs) whose POST /mcp puts the call's arguments on the tool-call
// queue, waits for the result and answers it as a JSON-RPC result; no MCP, no auth. Against
// it, Portico's queued call pays only for what Portico adds: the HTTP hop and the load
// generator's process are on both sides. Forked by the bench and configured over IPC:
//   { type: 'start', redisUrl, queue, prefix, data, jobOptions } → { type: 'started', port }
import Fastify from 'fastify';
import { Queue, QueueEvents } from 'bullmq';
import Redis from 'ioredis';
import { HOST } from './common.mjs';

const JOB_NAME = 'tools.call';
/** A job's deadline as Portico sets it by default (DEFAULT_QUEUED_TIMEOUT_MS). */
const TIMEOUT_MS = 60_000;

const clients = [];
let queue;
let events;

function connection(url, options) {
  const client = new Redis(url, options);
  clients.push(client);
  return client;
}

async function start({ redisUrl, queue: name, prefix, data, jobOptions }) {
  // The same connections as Portico's producer side (tool-call.queue.ts, `producer()`).
  queue = new Queue(name, {
    connection: connection(redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false }),
    prefix,
  });
  events = new QueueEvents(name, {
    connection: connection(redisUrl, { maxRetriesPerRequest: null }),
    prefix,
  });
  await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);

  const app = Fastify({ logger: false });
  app.post('/mcp', async (request) => {
    const msg = request.body;
    const job = await queue.add(
      JOB_NAME,
      {
        ...data,
        arguments: msg.params.arguments,
        requestId: msg.id,
        deadline: Date.now() + TIMEOUT_MS,
      },
      jobOptions,
    );
    return { jsonrpc: '2.0', id: msg.id, result: await job.waitUntilFinished(events, TIMEOUT_MS) };
  });
  await app.listen({ host: HOST, port: 0 });
  return app.server.address().port;
}

process.on('message', async (msg) => {
  if (msg?.type !== 'start') {
    return;
  }
  try {
    process.send({ type: 'started', port: await start(msg) });
  } catch (err) {
    process.send({ type: 'failed', message: err.message });
  }
});

async function shutdown() {
  await Promise.all([events?.close(), queue?.close()]).catch(() => undefined);
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

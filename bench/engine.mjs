// Engine microbenchmark: how many tools/call requests per second the protocol
// engine can parse and dispatch on one core, with no HTTP in the way.
// Target: >= 1,000,000 ops/s.
//
// Run standalone with `node bench/engine.mjs`, or via bench/run.mjs, which forks
// this file so the measurement gets a fresh process (clean JIT and heap state,
// no load generator on the same event loop).
import { pathToFileURL } from 'node:url';

const ECHO_MESSAGE = 'hello';

// ---------------------------------------------------------------------------
// ADAPTER — FILL IN once the protocol engine compiles to dist/.
//
// loadEngine() must return:
//   {
//     name: string,            // shown in the report
//     placeholder: boolean,    // false for the real engine
//     handle(raw: string): unknown | Promise<unknown>,
//   }
// `handle` receives the raw HTTP body of one tools/call request (a JSON string)
// and must do what the gateway does per request before the transport writes:
// parse, validate/classify, dispatch to the `echo` tool, build the response.
// It may return a Promise; the bench then awaits every call (which is the
// honest cost if the engine's dispatch is async).
//
// Sketch (names are guesses — adjust to the real API):
//   import { createRequire } from 'node:module';
//   const require = createRequire(import.meta.url);
//   const proto = require('../dist/libs/mcp-protocol/index.js'); // or wherever nest build puts it
//   const engine = new proto.ProtocolEngine({ catalog: new proto.StaticCatalog({ tools: [echo] }) });
//   return { name: 'portico mcp-protocol', placeholder: false, handle: (raw) => engine.handleRaw(raw) };
// ---------------------------------------------------------------------------
export async function loadEngine() {
  return placeholderEngine();
}

/**
 * PLACEHOLDER: JSON.parse + a Map lookup + building the result object. It is a
 * floor for what the real engine will cost, not a measurement of Portico.
 */
function placeholderEngine() {
  const tools = new Map([
    ['echo', (args) => ({ content: [{ type: 'text', text: String(args.message) }] })],
  ]);
  const methods = new Map([
    [
      'tools/call',
      (params) => {
        const tool = tools.get(params.name);
        if (!tool) {
          throw new Error(`unknown tool ${params.name}`);
        }
        return tool(params.arguments ?? {});
      },
    ],
  ]);
  return {
    name: 'PLACEHOLDER (JSON.parse + trivial dispatch, not Portico)',
    placeholder: true,
    handle(raw) {
      const msg = JSON.parse(raw);
      const method = methods.get(msg.method);
      if (msg.jsonrpc !== '2.0' || !method) {
        throw new Error('bad request');
      }
      return { jsonrpc: '2.0', id: msg.id, result: method(msg.params) };
    },
  };
}

/** A pool of distinct request bodies so nothing can cache one input. */
function buildInputs(count) {
  const inputs = [];
  for (let i = 0; i < count; i++) {
    inputs.push(
      JSON.stringify({
        jsonrpc: '2.0',
        id: i + 1,
        method: 'tools/call',
        params: { name: 'echo', arguments: { message: ECHO_MESSAGE } },
      }),
    );
  }
  return inputs;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Time batches of calls for `seconds` after a warm-up and report the median
 * per-batch throughput (robust against a GC pause or a noisy neighbour hitting
 * one batch).
 */
export async function runEngineBench({ seconds = 3, warmupSeconds = 1 } = {}) {
  const engine = await loadEngine();
  const inputs = buildInputs(1024);
  const mask = inputs.length - 1;
  const BATCH = 20_000;

  // Sanity check first: a fast engine that returns garbage is no result.
  const probe = await engine.handle(inputs[0]);
  if (probe?.result?.content?.[0]?.text !== ECHO_MESSAGE || probe.id !== 1) {
    throw new Error(`engine returned an unexpected response: ${JSON.stringify(probe)}`);
  }
  const isAsync = typeof engine.handle(inputs[1])?.then === 'function';

  let sink = 0; // consumed below so the optimiser cannot drop the calls
  let i = 0;
  const runBatch = isAsync
    ? async () => {
        for (let n = 0; n < BATCH; n++) {
          sink ^= (await engine.handle(inputs[i++ & mask])) ? 1 : 0;
        }
      }
    : async () => {
        for (let n = 0; n < BATCH; n++) {
          sink ^= engine.handle(inputs[i++ & mask]) ? 1 : 0;
        }
      };

  const measureFor = async (ms, samples) => {
    const end = performance.now() + ms;
    while (performance.now() < end) {
      const t0 = process.hrtime.bigint();
      await runBatch();
      const ns = Number(process.hrtime.bigint() - t0);
      samples?.push((BATCH * 1e9) / ns);
    }
  };

  await measureFor(warmupSeconds * 1000);
  const samples = [];
  await measureFor(seconds * 1000, samples);
  globalThis.__benchSink = sink; // publish the sink so the calls stay observable

  return {
    name: engine.name,
    placeholder: engine.placeholder,
    async: isAsync,
    opsPerSec: Math.round(median(samples)),
    minOpsPerSec: Math.round(Math.min(...samples)),
    maxOpsPerSec: Math.round(Math.max(...samples)),
    batches: samples.length,
    seconds,
  };
}

// Entry point when forked by run.mjs (result goes back over IPC) or run by hand.
if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const seconds = Number(process.env.BENCH_ENGINE_SECONDS ?? 3);
  try {
    const result = await runEngineBench({ seconds });
    if (process.send) {
      process.send({ type: 'engine', result });
    } else {
      console.log(JSON.stringify(result, null, 2));
    }
  } catch (err) {
    if (process.send) {
      process.send({ type: 'engine-error', message: String(err?.stack ?? err) });
    } else {
      console.error(err);
    }
    process.exitCode = 1;
  }
}

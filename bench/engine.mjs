// Engine microbenchmark: how many tools/call requests per second the protocol
// engine can parse and dispatch on one core, with no HTTP in the way.
// Target: >= 1,000,000 ops/s.
//
// Run standalone with `node bench/engine.mjs`, or via bench/run.mjs, which forks
// this file so the measurement gets a fresh process (clean JIT and heap state,
// no load generator on the same event loop).
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ECHO_MESSAGE = 'hello';

// The engine as the gateway runs it: compiled by `npm run build` (nest build puts the libs
// the gateway uses under dist/apps/gateway/libs). `handle` does what the HTTP transport asks
// of the engine per request: JSON.parse, classify, validate the 2026-07-28 envelope, dispatch
// to the `echo` tool (ajv-validated arguments) and build the decorated response.
// ---------------------------------------------------------------------------
const DIST = new URL('../dist/apps/gateway/libs/', import.meta.url);

export async function loadEngine() {
  const require = createRequire(import.meta.url);
  let proto;
  let testing;
  try {
    proto = require(fileURLToPath(new URL('mcp-protocol/src/index.js', DIST)));
    testing = require(fileURLToPath(new URL('testing/src/index.js', DIST)));
  } catch {
    console.error('engine bench: dist/ not built (run "npm run build"); measuring the placeholder');
    return placeholderEngine();
  }
  const engine = new proto.McpEngine({
    serverInfo: { name: 'portico-bench', version: '0' },
    catalog: new proto.StaticCatalog({ tools: [testing.echoTool] }),
    secret: 'bench-secret-bench-secret-bench!',
  });
  await engine.warm();
  const outbound = { send() {} };
  const io = { outbound };
  const parse = (raw) => {
    const classified = proto.classify(JSON.parse(raw));
    if (classified.kind !== 'request') {
      throw new Error('not a request');
    }
    return classified.message;
  };
  return {
    name: 'portico mcp-protocol (parse + classify + envelope + dispatch)',
    placeholder: false,
    handle: (raw) => engine.handleModern(parse(raw), io),
    // The two halves, measured alone so the report shows where the time goes.
    parse,
    dispatch: (message) => engine.handleModern(message, io),
  };
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
        params: {
          name: 'echo',
          arguments: { message: ECHO_MESSAGE },
          _meta: {
            'io.modelcontextprotocol/protocolVersion': '2026-07-28',
            'io.modelcontextprotocol/clientCapabilities': {},
            'io.modelcontextprotocol/clientInfo': { name: 'bench', version: '1' },
          },
        },
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
  const measure = async (fn, inputsFor, isAsyncFn) => {
    let i = 0;
    const runBatch = isAsyncFn
      ? async () => {
          for (let n = 0; n < BATCH; n++) {
            sink ^= (await fn(inputsFor[i++ & mask])) ? 1 : 0;
          }
        }
      : async () => {
          for (let n = 0; n < BATCH; n++) {
            sink ^= fn(inputsFor[i++ & mask]) ? 1 : 0;
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
    return samples;
  };

  const samples = await measure(engine.handle, inputs, isAsync);
  const parts = {};
  if (engine.parse && engine.dispatch) {
    parts.parseOnlyOpsPerSec = Math.round(median(await measure(engine.parse, inputs, false)));
    const parsed = inputs.map((raw) => engine.parse(raw));
    parts.dispatchOnlyOpsPerSec = Math.round(median(await measure(engine.dispatch, parsed, true)));
  }
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
    ...parts,
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

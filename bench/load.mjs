// The load generator: autocannon's programmatic API, run in the bench's own
// process while the server under test lives in a child process.
import { createHistogram } from 'node:perf_hooks';
import autocannon from 'autocannon';
import { cpuPerCall, cpuTimeMs } from './lib/procs.mjs';
import { checkEchoResponse, nextId } from './lib/mcp.mjs';

/**
 * Drive POST <url><path> for `durationSec` with `connections` keep-alive
 * connections (no pipelining: MCP clients wait for each answer).
 *
 * Every request gets a fresh JSON-RPC id via setupRequest — stateful servers
 * key in-flight requests by id, so a repeated id would be a protocol error,
 * not a benchmark. With `verify`, every 2xx body is checked to be the echo
 * result for the id that was sent; autocannon keeps one request in flight per
 * connection, so the per-connection `context` reliably pairs them.
 */
export async function runLoad({
  url,
  path,
  headers,
  bodyFor,
  connections,
  durationSec,
  verify = true,
  serverPid,
}) {
  let invalid = 0;
  let firstInvalid;

  const request = {
    method: 'POST',
    path,
    headers,
    setupRequest(req, context) {
      context.id = nextId();
      req.body = bodyFor(context.id);
      return req;
    },
  };
  if (verify) {
    request.onResponse = (status, body, context) => {
      if (status < 200 || status >= 300) {
        return;
      } // counted by autocannon as non-2xx
      const reason = checkEchoResponse(body, context.id);
      if (reason) {
        invalid++;
        firstInvalid ??= { reason, body: body.slice(0, 500) };
      }
    };
  }

  // autocannon's own latency histogram has 1 ms resolution, too coarse for a
  // p50 around a millisecond and a 10 ms p99 budget. Each client emits the
  // exact response time, so keep a microsecond histogram of our own (2xx only,
  // like autocannon).
  const latencyUs = createHistogram();
  const setupClient = (client) => {
    client.on('response', (status, _bytes, responseTimeMs) => {
      if (status >= 200 && status < 300) {
        latencyUs.record(Math.max(1, Math.round(responseTimeMs * 1000)));
      }
    });
  };

  // CPU time of both sides tells whether the server or the load generator was
  // saturated: near 100% on the loader means the server's figure may be a
  // lower bound (the generator, not the server, set the pace).
  const loaderCpu0 = process.cpuUsage();
  const serverCpu0 = serverPid && cpuTimeMs(serverPid);

  const result = await new Promise((resolve, reject) => {
    autocannon(
      {
        url,
        connections,
        duration: durationSec,
        pipelining: 1,
        timeout: 10,
        requests: [request],
        setupClient,
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
  });

  const wallMs = result.duration * 1000;
  const loaderCpu = process.cpuUsage(loaderCpu0);
  const serverCpu1 = serverPid && cpuTimeMs(serverPid);
  const ms = (us) => (latencyUs.count ? Math.round(us) / 1000 : null);
  const pct = (cpuMs) =>
    cpuMs === undefined || Number.isNaN(cpuMs) ? null : Math.round((100 * cpuMs) / wallMs);

  return {
    // requests.total is every completed response; non-2xx must be 0 anyway.
    reqPerSec: Math.round(result.requests.total / result.duration),
    completed: result.requests.total,
    durationSec: result.duration,
    latencyMs: {
      p50: ms(latencyUs.percentile(50)),
      p90: ms(latencyUs.percentile(90)),
      p99: ms(latencyUs.percentile(99)),
      max: ms(latencyUs.max),
    },
    non2xx: result.non2xx,
    statusCodes: result.statusCodeStats,
    errors: result.errors,
    timeouts: result.timeouts,
    invalid,
    firstInvalid,
    verified: verify,
    cpuPercent: {
      loader: pct((loaderCpu.user + loaderCpu.system) / 1000),
      server: pct(serverCpu1 - serverCpu0),
    },
    // Includes the rejected and invalid answers: every one cost the server a request.
    serverCpuUsPerReq: cpuPerCall(serverCpu1 - serverCpu0, result.requests.total),
  };
}

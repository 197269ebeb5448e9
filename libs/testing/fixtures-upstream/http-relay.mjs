// A byte-for-byte HTTP relay for fixtures and scripts: forwards one request to a local server
// and streams the answer back as it arrives (SSE included), with optional extra headers. Host
// and Origin travel as the client sent them, so the target's own checks still apply. When the
// client goes away first, the forwarded request is aborted (closing an SSE stream is how a
// 2026-07-28 client cancels).
import { Agent, request } from 'node:http';

/** Hop-by-hop headers: they describe one connection, never the next one. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
]);

const agent = new Agent({ keepAlive: true });

function endToEnd(headers) {
  const out = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name.toLowerCase())) {
      out[name] = value;
    }
  }
  return out;
}

/**
 * Forwards `req` to `http://host:port` + `req.url` and pipes the answer into `res`.
 * `headers` are set on the forwarded request (e.g. Authorization); `body`, when given, is sent
 * instead of reading `req` (a body that was already read to be inspected).
 */
export function relay(req, res, { port, host = '127.0.0.1', headers = {}, body }) {
  const forwarded = request(
    {
      agent,
      host,
      port,
      method: req.method,
      path: req.url,
      headers: {
        ...endToEnd(req.headers),
        ...headers,
        ...(body !== undefined && { 'content-length': String(Buffer.byteLength(body)) }),
      },
    },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, endToEnd(answer.headers));
      // Headers out now: an SSE client waits for them before the first event.
      res.flushHeaders();
      answer.pipe(res);
      answer.on('error', () => res.destroy());
    },
  );
  forwarded.on('error', () => {
    if (!res.headersSent) {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end('relay: target unreachable');
    } else {
      res.destroy();
    }
  });
  // The client left before the answer was complete: abandon the forwarded request too.
  res.on('close', () => {
    if (!res.writableFinished) {
      forwarded.destroy();
    }
  });
  if (body !== undefined) {
    forwarded.end(body);
  } else {
    req.pipe(forwarded);
  }
}

/** Reads a request body whole (fixture traffic: small JSON-RPC messages). */
export function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

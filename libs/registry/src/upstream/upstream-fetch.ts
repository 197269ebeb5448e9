import { pipeline, Readable } from 'node:stream';
import { Agent, request } from 'undici';
import { RELAY_HEADER, SseRelayTagger } from './upstream-relay';

/** Idle keep-alive connections to an upstream are closed after this long. */
const KEEP_ALIVE_MS = 30_000;

/** Content types whose body is read whole before the Response is built (no stream needed). */
const WHOLE_BODY = /^application\/(?:[\w.+-]*\+)?json\b/i;

/**
 * fetch for the SDK's HTTP transports, made with undici's `request` on a keep-alive Agent of
 * the backend's own. Node's built-in fetch builds web streams, header guards and a request
 * object per call: it was ~40 % of the gateway's CPU on a federated `tools/call` (bench
 * federation, --cpu-prof). What comes back is a real `Response`: a JSON answer read whole into
 * it, anything else (an SSE stream) passed through as a web stream. Redirects are not followed
 * (the SDK decides what to do with a 3xx). One per backend: idle connections close after
 * KEEP_ALIVE_MS and never hold the process open (undici unrefs idle sockets).
 * A request carrying RELAY_HEADER (a call of McpUpstreamSource) goes out without it, and the
 * messages of its SSE answer come back tagged with the header's value (see upstream-relay).
 */
export function upstreamFetch(): typeof fetch {
  const agent = new Agent({ keepAliveTimeout: KEEP_ALIVE_MS });
  const fetchFn = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    if (input instanceof Request) {
      // Not how the SDK calls it; the platform's fetch handles it correctly.
      return fetch(input, init);
    }
    const method = (init?.method ?? 'GET').toUpperCase();
    const sent = headerRecord(init?.headers);
    const relayToken = sent?.[RELAY_HEADER];
    if (relayToken !== undefined) {
      delete sent?.[RELAY_HEADER];
    }
    const { statusCode, headers, body } = await request(input, {
      method,
      headers: sent,
      body: bodyOf(init?.body),
      signal: init?.signal ?? undefined,
      dispatcher: agent,
    });
    const responseHeaders = new Headers();
    for (const [name, value] of Object.entries(headers)) {
      if (Array.isArray(value)) {
        value.forEach((v) => responseHeaders.append(name, v));
      } else if (value !== undefined) {
        responseHeaders.set(name, value);
      }
    }
    const status = { status: statusCode, headers: responseHeaders };
    if (statusCode === 204 || statusCode === 304 || method === 'HEAD') {
      await body.dump();
      return new Response(null, status);
    }
    if (WHOLE_BODY.test(responseHeaders.get('content-type') ?? '')) {
      return new Response(await body.text(), status);
    }
    const stream =
      relayToken === undefined
        ? body
        : pipeline(body, new SseRelayTagger(relayToken), () => undefined);
    return new Response(Readable.toWeb(stream) as ReadableStream<Uint8Array>, status);
  };
  return fetchFn;
}

function headerRecord(headers: RequestInit['headers']): Record<string, string> | undefined {
  if (headers === undefined) {
    return undefined;
  }
  const record: Record<string, string> = {};
  new Headers(headers).forEach((value, name) => {
    record[name] = value;
  });
  return record;
}

function bodyOf(body: RequestInit['body']): string | Uint8Array | undefined {
  if (body === undefined || body === null) {
    return undefined;
  }
  if (typeof body === 'string' || body instanceof Uint8Array) {
    return body;
  }
  throw new TypeError('upstream fetch: only string and byte bodies are sent');
}

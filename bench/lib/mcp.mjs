// The MCP wire shapes the bench sends, and the check that a response is a
// genuine echo result. Kept in one place so every target is loaded with
// byte-for-byte comparable requests.

export const PROTOCOL_2025 = '2025-11-25';
export const PROTOCOL_MODERN = '2026-07-28';
export const ECHO_MESSAGE = 'hello';

const ACCEPT = 'application/json, text/event-stream';
const BASE_HEADERS = { accept: ACCEPT, 'content-type': 'application/json' };
const ECHO_CALL = { name: 'echo', arguments: { message: ECHO_MESSAGE } };

/** Process-wide JSON-RPC id counter: every request the bench sends is unique. */
let lastId = 0;
export const nextId = () => ++lastId;

/**
 * Returns id => body. The body is built by concatenation around a fixed
 * string because the load generator shares the machine with the server and
 * must stay cheap; JSON.stringify per request would cost it measurably.
 */
function toolsCallBody(params) {
  const head = '{"jsonrpc":"2.0","id":';
  const tail = `,"method":"tools/call","params":${JSON.stringify(params)}}`;
  return (id) => head + id + tail;
}

/**
 * The request shape for one protocol era:
 * - 'plain':  bare JSON-RPC, for the no-MCP Fastify baseline;
 * - '2025':   2025-11-25 Streamable HTTP inside an initialized session;
 * - 'modern': 2026-07-28 stateless, per-request `_meta` envelope plus the
 *             Mcp-Method / Mcp-Name routing headers.
 */
export function eraRequest(era, { sessionId } = {}) {
  switch (era) {
    case 'plain':
      return { headers: { ...BASE_HEADERS }, bodyFor: toolsCallBody(ECHO_CALL) };
    case '2025':
      if (!sessionId) {
        throw new Error('2025-era load needs a session id');
      }
      return {
        headers: {
          ...BASE_HEADERS,
          'mcp-session-id': sessionId,
          'mcp-protocol-version': PROTOCOL_2025,
        },
        bodyFor: toolsCallBody(ECHO_CALL),
      };
    case 'modern':
      return {
        headers: {
          ...BASE_HEADERS,
          'mcp-protocol-version': PROTOCOL_MODERN,
          'mcp-method': 'tools/call',
          'mcp-name': 'echo',
        },
        bodyFor: toolsCallBody({
          ...ECHO_CALL,
          _meta: {
            'io.modelcontextprotocol/protocolVersion': PROTOCOL_MODERN,
            'io.modelcontextprotocol/clientCapabilities': {},
            'io.modelcontextprotocol/clientInfo': { name: 'bench', version: '1' },
          },
        }),
      };
    default:
      throw new Error(`unknown era ${era}`);
  }
}

/**
 * Message builders for the message-stream transports (WebSocket, stdio): one
 * JSON-RPC message per frame or line, no headers. Returns id => text.
 * - 'plain':  bare JSON-RPC, for the no-MCP baselines;
 * - '2025':   the same call, sent after the connection's initialize handshake;
 * - 'modern': the 2026-07-28 per-request `_meta` envelope, no handshake.
 */
export function eraFrame(era) {
  switch (era) {
    case 'plain':
    case '2025':
      return toolsCallBody(ECHO_CALL);
    case 'modern':
      return toolsCallBody({
        ...ECHO_CALL,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': PROTOCOL_MODERN,
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      });
    default:
      throw new Error(`unknown era ${era}`);
  }
}

/**
 * Parse a JSON-RPC response body. Servers may legally answer a POST with an
 * SSE stream instead of JSON; then the response is the last `data:` event.
 */
export function parseRpcBody(text) {
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    return JSON.parse(trimmed);
  }
  const events = trimmed
    .split(/\r?\n/)
    .filter((line) => line.startsWith('data:'))
    .map((line) => JSON.parse(line.slice(5)));
  const response = events.reverse().find((msg) => msg && 'id' in msg && !('method' in msg));
  if (!response) {
    throw new Error('no JSON-RPC response in body');
  }
  return response;
}

/** null when `text` is a successful echo result for request `id`, else why not. */
export function checkEchoResponse(text, id) {
  let msg;
  try {
    msg = parseRpcBody(text);
  } catch (err) {
    return `unparseable body (${err.message})`;
  }
  return checkEchoMessage(msg, id);
}

/** The same check on an already parsed JSON-RPC message (WebSocket frames, stdio lines). */
export function checkEchoMessage(msg, id) {
  if (msg?.jsonrpc !== '2.0') {
    return 'missing jsonrpc: "2.0"';
  }
  if (msg.id !== id) {
    return `id mismatch: sent ${id}, got ${JSON.stringify(msg.id)}`;
  }
  if (msg.error) {
    return `JSON-RPC error ${JSON.stringify(msg.error)}`;
  }
  if (msg.result?.isError) {
    return `tool error ${JSON.stringify(msg.result)}`;
  }
  if (msg.result?.content?.[0]?.text !== ECHO_MESSAGE) {
    return 'result does not echo the message';
  }
  return null;
}

/** One POST with fetch (setup and sample checks only, never under load). */
export async function post(url, headers, body) {
  const res = await fetch(url, {
    method: 'POST',
    headers,
    body,
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** The 2025-11-25 `initialize` request (HTTP body, WebSocket frame or stdio line). */
export function initializeMessage(id) {
  return JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'initialize',
    params: {
      protocolVersion: PROTOCOL_2025,
      capabilities: {},
      clientInfo: { name: 'bench', version: '1' },
    },
  });
}

export const INITIALIZED_NOTIFICATION = JSON.stringify({
  jsonrpc: '2.0',
  method: 'notifications/initialized',
});

/** null when `msg` is a successful 2025-11-25 initialize result for `id`, else why not. */
export function checkInitializeMessage(msg, id) {
  if (msg?.jsonrpc !== '2.0' || msg.id !== id) {
    return `initialize: unexpected answer ${JSON.stringify(msg).slice(0, 300)}`;
  }
  if (msg.error) {
    return `initialize failed: ${JSON.stringify(msg.error)}`;
  }
  if (msg.result?.protocolVersion !== PROTOCOL_2025) {
    return `initialize: negotiated ${JSON.stringify(msg.result?.protocolVersion)}, not ${PROTOCOL_2025}`;
  }
  return null;
}

/**
 * The 2025-11-25 handshake: initialize, keep the Mcp-Session-Id, then send
 * notifications/initialized. Returns the session id.
 */
export async function openSession2025(url) {
  const init = await post(url, BASE_HEADERS, initializeMessage(nextId()));
  if (init.status !== 200) {
    throw new Error(`initialize: HTTP ${init.status} ${init.text}`);
  }
  const initResult = parseRpcBody(init.text);
  if (!initResult.result) {
    throw new Error(`initialize failed: ${init.text}`);
  }
  const sessionId = init.headers.get('mcp-session-id');
  if (!sessionId) {
    throw new Error('initialize: no Mcp-Session-Id response header');
  }

  const initialized = await post(
    url,
    { ...BASE_HEADERS, 'mcp-session-id': sessionId, 'mcp-protocol-version': PROTOCOL_2025 },
    INITIALIZED_NOTIFICATION,
  );
  if (initialized.status !== 202 && initialized.status !== 200) {
    throw new Error(`notifications/initialized: HTTP ${initialized.status} ${initialized.text}`);
  }
  return sessionId;
}

/**
 * Send `count` requests one by one and verify each answer. Run before the load
 * (so a broken target is never benchmarked) and after it (so a target that
 * degraded under load is noticed).
 */
export async function sampleCheck(url, { headers, bodyFor }, count = 3) {
  for (let i = 0; i < count; i++) {
    const id = nextId();
    const res = await post(url, headers, bodyFor(id));
    const reason =
      res.status >= 200 && res.status < 300
        ? checkEchoResponse(res.text, id)
        : `HTTP ${res.status}`;
    if (reason) {
      throw new Error(`sample check failed: ${reason}\n  body: ${res.text.slice(0, 500)}`);
    }
  }
}

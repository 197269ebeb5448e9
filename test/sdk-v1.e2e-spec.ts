/*
 * The official MCP TypeScript SDK v1 client (@modelcontextprotocol/sdk 1.32, Client +
 * StreamableHTTPClientTransport, protocol 2025-11-25) against the real gateway: the shared SDK
 * suite (test/support/sdk-suite.ts) over Streamable HTTP, then what only Streamable HTTP has:
 * the session id, the standalone GET stream, stream resumption and session termination.
 *
 * Whether a POST is answered with plain JSON or with an SSE stream is the server's choice: the
 * gateway answers JSON when a handler sends nothing before its result and upgrades to SSE as
 * soon as it emits progress, logs or a server-to-client request. The suite's Streamable HTTP
 * cases check which content type actually came back.
 */
import { closeAll, connectV1 } from './support/sdk';
import {
  describeStreamableHttpSuite,
  itResumesADroppedStream,
  LEGACY,
  useSuiteGateway,
} from './support/sdk-suite';

const VERSION = LEGACY;
const SSE_TYPE = 'text/event-stream';

const env = useSuiteGateway();

describeStreamableHttpSuite('SDK v1 client (Client + StreamableHTTPClientTransport, 2025-11-25)', {
  env,
  sdk: 'v1',
  version: VERSION,
  extra: (suite, http) => {
    describe('session', () => {
      it('initialize is answered with plain JSON and a session id, which later requests carry', async () => {
        const { recorder, transport } = http();
        const [init] = recorder.requestsOf('initialize');
        expect(init.contentType).toBe('application/json');
        const sessionId = init.responseHeaders?.['mcp-session-id'];
        expect(sessionId).toEqual(expect.any(String));
        expect(transport.sessionId).toBe(sessionId);
        await suite.client.page('tools/list');
        const [list] = recorder.requestsOf('tools/list').slice(-1);
        expect(list.requestHeaders['mcp-session-id']).toBe(sessionId);
        expect(list.requestHeaders['mcp-protocol-version']).toBe(VERSION);
      });

      it('opens the standalone GET stream after notifications/initialized', async () => {
        const get = await http().recorder.waitFor((e) => e.httpMethod === 'GET');
        expect(get.status).toBe(200);
        expect(get.contentType).toBe(SSE_TYPE);
      });
    });
  },
});

describe('SDK v1 stream resumption after a dropped SSE response (Last-Event-ID)', () => {
  itResumesADroppedStream(env, 'v1');
});

describe('SDK v1 session termination', () => {
  it('terminateSession() sends DELETE; the gateway then answers the old session with 404', async () => {
    const connection = await connectV1(env.gateway.mcpUrl);
    try {
      const { client, transport, recorder } = connection;
      const sessionId = transport.sessionId;
      await transport.terminateSession();
      const [del] = recorder.exchanges.filter((e) => e.httpMethod === 'DELETE');
      expect(del.requestHeaders['mcp-session-id']).toBe(sessionId);
      expect(del.status).toBe(200);

      // The transport forgot the id; a request that still names it must be refused with 404.
      const stale = await fetch(env.gateway.mcpUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-session-id': sessionId ?? '',
          'mcp-protocol-version': VERSION,
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
      });
      expect(stale.status).toBe(404);
      expect(client.transport).toBeDefined();
    } finally {
      await closeAll(connection.client);
    }
  });
});

/*
 * The official SDK clients' e2e suite (test/support/sdk-suite.ts) over the gateway's other
 * network transports, in every era each one serves:
 *
 * - legacy HTTP+SSE: SDK v1 SSEClientTransport, a 2025-era session;
 * - WebSocket: SDK v1 WebSocketClientTransport (2025 era), and SDK v2's Client over
 *   test/support/ws-client-transport.ts (v2 has no WebSocket transport) pinned to 2026-07-28
 *   and in its legacy (2025) mode.
 *
 * stdio has its own spec (test/stdio.e2e-spec.ts); Streamable HTTP runs the same suite in
 * test/sdk-v1.e2e-spec.ts and test/sdk-v2.e2e-spec.ts. Stream resumption with Last-Event-ID
 * is a Streamable HTTP feature: neither transport here has event ids to resume from.
 */
import { Client } from '@modelcontextprotocol/client';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { WebSocketClientTransport as V1WebSocketTransport } from '@modelcontextprotocol/sdk/client/websocket.js';
import { McpWebSocketGateway } from '../apps/gateway/src/mcp/websocket/mcp-ws.gateway';
import {
  CLIENT_CAPABILITIES,
  closeAll,
  HttpRecorder,
  oneEventPerChunk,
  V2_NEGOTIATION,
} from './support/sdk';
import { describeSdkSuite, LEGACY, MODERN, useSuiteGateway } from './support/sdk-suite';
import { installGlobalWebSocket, WebSocketClientTransport } from './support/ws-client-transport';

const env = useSuiteGateway();
const wsUrl = (): URL => new URL(env.gateway.mcpUrl.replace(/^http/, 'ws'));

/** The connection really is a WebSocket: the gateway's WebSocket side holds it. */
const servedOverWebSocket = (): void => {
  it('is served by the WebSocket transport', () => {
    expect(env.gateway.app.get(McpWebSocketGateway).size).toBeGreaterThanOrEqual(1);
  });
};

describe('legacy HTTP+SSE', () => {
  let recorder: HttpRecorder | undefined;

  describeSdkSuite('SDK v1 Client + SSEClientTransport, 2025-11-25', {
    env,
    client: {
      sdk: 'v1',
      transport: () => {
        const own = new HttpRecorder();
        // One event per chunk: see oneEventPerChunk (an SDK timing issue, not the gateway's).
        own.transformResponses((exchange, response) =>
          exchange.contentType === 'text/event-stream' ? oneEventPerChunk(response) : response,
        );
        recorder ??= own;
        return new SSEClientTransport(new URL(`${env.gateway.mcpUrl}/sse`), { fetch: own.fetch });
      },
    },
    features: { version: LEGACY },
    extra: (suite) => {
      it('answers on the GET stream; each message is a POST to the URI it named, acknowledged with 202', async () => {
        await suite.client.page('tools/list');
        const [stream, ...posts] = recorder!.exchanges.filter((e) => e.status !== undefined);
        expect(stream.httpMethod).toBe('GET');
        expect(stream.url).toBe(`${env.gateway.mcpUrl}/sse`);
        expect(stream.status).toBe(200);
        expect(stream.contentType).toBe('text/event-stream');
        expect(posts.map((e) => e.messages[0]?.method)).toContain('tools/list');
        for (const post of posts) {
          expect(post.httpMethod).toBe('POST');
          expect(post.url).toMatch(/\/mcp\/messages\?sessionId=[\w-]{20,}$/);
          expect(post.status).toBe(202);
        }
      });
    },
  });
});

describe('WebSocket', () => {
  // Node 20 has no global WebSocket; SDK v1's transport expects the WHATWG one.
  let restore: (() => void) | undefined;
  beforeAll(() => {
    restore = installGlobalWebSocket();
  });
  afterAll(() => restore?.());

  describeSdkSuite('SDK v1 Client + WebSocketClientTransport, 2025-11-25', {
    env,
    client: { sdk: 'v1', transport: () => new V1WebSocketTransport(wsUrl()) },
    features: { version: LEGACY },
    extra: servedOverWebSocket,
  });

  for (const [label, version] of [
    ['2026-07-28 (pinned)', MODERN],
    ['2025-11-25 (legacy mode)', LEGACY],
  ]) {
    describeSdkSuite(`SDK v2 Client over WebSocket, ${label}`, {
      env,
      client: { sdk: 'v2', transport: () => new WebSocketClientTransport(wsUrl()) },
      // One shared channel: an aborted 2026-07-28 call is cancelled by notification.
      features: { version, modernCancellation: 'notification' },
      extra: servedOverWebSocket,
    });
  }

  it("SDK v2 'auto' probes with server/discover on the socket and selects 2026-07-28", async () => {
    const transport = new WebSocketClientTransport(wsUrl());
    const client = new Client(
      { name: 'e2e-ws-auto', version: '1.0.0' },
      { capabilities: CLIENT_CAPABILITIES, versionNegotiation: V2_NEGOTIATION.auto },
    );
    try {
      await client.connect(transport);
      expect(transport.protocol).toBe('mcp');
      expect(client.getProtocolEra()).toBe('modern');
      expect(client.getNegotiatedProtocolVersion()).toBe(MODERN);
      const who = await client.callTool({ name: 'whoami', arguments: {} });
      expect(who.structuredContent).toEqual({ era: 'modern', protocolVersion: MODERN });
    } finally {
      await closeAll(client);
    }
  });
});

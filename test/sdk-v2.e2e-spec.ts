/*
 * The official MCP TypeScript SDK v2 client (@modelcontextprotocol/client) against the real
 * gateway, in each of its era modes: pinned 2026-07-28 (stateless), legacy (2025 initialize and
 * session) and auto (probe with server/discover, fall back to initialize). The shared SDK suite
 * (test/support/sdk-suite.ts) runs over Streamable HTTP in both eras; what follows it is
 * specific to SDK v2 or to Streamable HTTP (era selection, the listChanged option, shutdown,
 * earlier 2025 revisions, stream resumption).
 */
import { createE2eCatalog, firstText } from './support/e2e-catalog';
import { startGateway } from './support/gateway';
import {
  closeAll,
  connectV2,
  Exchange,
  HttpRecorder,
  Inbox,
  later,
  legacyOnlyFetch,
  requestMethods,
  V2Connection,
  within,
} from './support/sdk';
import {
  describeStreamableHttpSuite,
  itResumesADroppedStream,
  LEGACY,
  MODERN,
  useSuiteGateway,
} from './support/sdk-suite';

const env = useSuiteGateway();

const isPost = (e: Exchange): boolean => e.httpMethod === 'POST';

describe('SDK v2 era selection (ClientOptions.versionNegotiation.mode)', () => {
  let connection: V2Connection | undefined;

  afterEach(async () => {
    await closeAll(connection?.client);
    connection = undefined;
  });

  it("{ pin: '2026-07-28' } speaks the stateless revision: server/discover, no initialize, no session", async () => {
    connection = await connectV2(env.gateway.mcpUrl, 'modern');
    const { client, recorder, transport } = connection;
    expect(client.getProtocolEra()).toBe('modern');
    expect(client.getNegotiatedProtocolVersion()).toBe(MODERN);
    expect(client.getServerVersion()).toMatchObject({ name: 'portico' });

    const who = await client.callTool({ name: 'whoami', arguments: {} });
    expect(who.structuredContent).toEqual({ era: 'modern', protocolVersion: MODERN });

    const posts = recorder.exchanges.filter(isPost);
    expect(requestMethods(posts[0])).toEqual(['server/discover']);
    expect(recorder.requestsOf('initialize')).toHaveLength(0);
    expect(recorder.exchanges.filter((e) => e.httpMethod !== 'POST')).toHaveLength(0);
    for (const post of posts) {
      expect(post.requestHeaders['mcp-protocol-version']).toBe(MODERN);
      expect(post.responseHeaders?.['mcp-session-id']).toBeUndefined();
    }
    expect(transport.sessionId).toBeUndefined();
  });

  it("'legacy' runs the 2025 initialize handshake and keeps the session the gateway issues", async () => {
    connection = await connectV2(env.gateway.mcpUrl, 'legacy');
    const { client, recorder, transport } = connection;
    expect(client.getProtocolEra()).toBe('legacy');
    expect(client.getNegotiatedProtocolVersion()).toBe(LEGACY);

    const who = await client.callTool({ name: 'whoami', arguments: {} });
    expect(who.structuredContent).toEqual({ era: 'legacy', protocolVersion: LEGACY });

    expect(recorder.requestsOf('server/discover')).toHaveLength(0);
    const [init] = recorder.requestsOf('initialize');
    expect(init.status).toBe(200);
    const sessionId = init.responseHeaders?.['mcp-session-id'];
    expect(sessionId).toEqual(expect.any(String));
    expect(transport.sessionId).toBe(sessionId);
    const [call] = recorder.requestsOf('tools/call', 'whoami');
    expect(call.requestHeaders['mcp-session-id']).toBe(sessionId);
    expect(call.requestHeaders['mcp-protocol-version']).toBe(LEGACY);
  });

  it("'auto' probes with server/discover and selects 2026-07-28 on this gateway", async () => {
    connection = await connectV2(env.gateway.mcpUrl, 'auto');
    const { client, recorder } = connection;
    expect(client.getProtocolEra()).toBe('modern');
    expect(client.getNegotiatedProtocolVersion()).toBe(MODERN);
    expect(requestMethods(recorder.exchanges[0])).toEqual(['server/discover']);
    expect(recorder.requestsOf('initialize')).toHaveLength(0);
    expect(client.getDiscoverResult()?.supportedVersions).toEqual(
      expect.arrayContaining([MODERN, LEGACY]),
    );

    const who = await client.callTool({ name: 'whoami', arguments: {} });
    expect(who.structuredContent).toEqual({ era: 'modern', protocolVersion: MODERN });
  });

  it("'auto' falls back to initialize when the probe meets a 2025-only answer, and the session works", async () => {
    connection = await connectV2(env.gateway.mcpUrl, 'auto', {
      recorder: new HttpRecorder(legacyOnlyFetch),
    });
    const { client, recorder } = connection;
    expect(client.getProtocolEra()).toBe('legacy');
    expect(client.getNegotiatedProtocolVersion()).toBe(LEGACY);
    const methods = recorder.exchanges.filter(isPost).flatMap(requestMethods);
    expect(methods.slice(0, 2)).toEqual(['server/discover', 'initialize']);

    const who = await client.callTool({ name: 'whoami', arguments: {} });
    expect(who.structuredContent).toEqual({ era: 'legacy', protocolVersion: LEGACY });
  });
});

type Mode = 'modern' | 'legacy';

for (const [label, version] of [
  ['2026-07-28 (stateless)', MODERN],
  ['2025-11-25 (session)', LEGACY],
]) {
  describeStreamableHttpSuite(`SDK v2 client, ${label}`, { env, sdk: 'v2', version });
}

describe('SDK v2 listChanged option (auto-refresh on change)', () => {
  it.each<[Mode]>([['modern'], ['legacy']])(
    '%s: a tools change makes the client refetch the list and call onChanged',
    async (mode) => {
      const changed = new Inbox<string[]>();
      const connection = await connectV2(env.gateway.mcpUrl, mode, {
        clientOptions: {
          listChanged: {
            tools: {
              debounceMs: 0,
              onChanged: (error, tools) => {
                if (!error && tools) {
                  changed.push(tools.map((t) => t.name));
                }
              },
            },
          },
        },
      });
      try {
        const { client, recorder } = connection;
        if (mode === 'modern') {
          const sub = client.autoOpenedSubscription;
          expect(sub?.honoredFilter).toEqual({ toolsListChanged: true });
        } else {
          await recorder.waitFor((e) => e.httpMethod === 'GET' && e.status === 200);
        }
        env.e2e.catalog.notify({ type: 'tools-changed' });
        await expect(changed.waitFor()).resolves.toEqual(env.e2e.toolNames);
      } finally {
        await closeAll(connection.client);
      }
    },
  );
});

describe('SDK v2 subscription at gateway shutdown', () => {
  it('a subscriptions/listen stream ends gracefully when the gateway closes', async () => {
    const own = createE2eCatalog();
    const local = await startGateway({ LOG_LEVEL: 'silent' }, { catalog: own.catalog });
    let connection: V2Connection | undefined;
    try {
      connection = await connectV2(local.mcpUrl, 'modern');
      const sub = await connection.client.listen({ toolsListChanged: true });
      const closing = later(local.close());
      await expect(within(sub.closed)).resolves.toBe('graceful');
      await closing;
    } finally {
      await closeAll(connection?.client);
      await local.close().catch(() => undefined);
    }
  });
});

describe('SDK v2 legacy mode on earlier 2025 revisions (ProtocolOptions.supportedProtocolVersions)', () => {
  it.each([['2025-06-18'], ['2025-03-26'], ['2024-11-05']])(
    '%s: negotiated as offered; results carry only fields that revision defines',
    async (offered) => {
      const connection = await connectV2(env.gateway.mcpUrl, 'legacy', {
        clientOptions: { supportedProtocolVersions: [offered] },
      });
      try {
        const { client } = connection;
        expect(client.getNegotiatedProtocolVersion()).toBe(offered);
        const hasStructured = offered >= '2025-06-18';
        const { tools } = await client.listTools(undefined, { cacheMode: 'bypass' });
        const whoami = tools.find((t) => t.name === 'whoami');
        expect(whoami?.outputSchema !== undefined).toBe(hasStructured);
        const result = await client.callTool({ name: 'whoami', arguments: {} });
        expect(firstText(result)).toBe(`legacy ${offered}`);
        expect(result.structuredContent !== undefined).toBe(hasStructured);

        const seen: number[] = [];
        await client.callTool(
          { name: 'progress', arguments: { steps: 2 } },
          { onprogress: (p) => seen.push(p.progress) },
        );
        expect(seen).toEqual([1, 2]);
      } finally {
        await closeAll(connection.client);
      }
    },
  );
});

describe('SDK v2 legacy mode: stream resumption after a dropped SSE response', () => {
  itResumesADroppedStream(env, 'v2');
});

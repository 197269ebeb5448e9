import { Cancellation } from './cancellation';
import { StaticCatalog, uriTemplateMatcher } from './catalog';
import { ErrorCode, META, MODERN_PROTOCOL_VERSION } from './constants';
import { McpEngine } from './engine';
import { classify, JsonObject, JsonRpcMessage, JsonRpcRequest, JsonRpcResponse } from './jsonrpc';
import type { LegacySession } from './session';

const SECRET = 'unit-test-secret-unit-test-secret';
const CAP = 3;

function result(response: JsonRpcResponse | undefined): JsonObject {
  if (!response || !('result' in response)) {
    throw new Error(`expected a result, got ${JSON.stringify(response)}`);
  }
  return response.result;
}

function error(response: JsonRpcResponse | undefined) {
  if (!response || !('error' in response)) {
    throw new Error(`expected an error, got ${JSON.stringify(response)}`);
  }
  return response.error;
}

const sink = () => {
  const sent: JsonRpcMessage[] = [];
  return { sent, outbound: { send: (m: JsonRpcMessage) => void sent.push(m) } };
};

function listen(id: string, resourceSubscriptions: string[]): JsonRpcRequest {
  return {
    jsonrpc: '2.0',
    id,
    method: 'subscriptions/listen',
    params: {
      notifications: { resourceSubscriptions },
      _meta: {
        [META.protocolVersion]: MODERN_PROTOCOL_VERSION,
        [META.clientCapabilities]: {},
        [META.clientInfo]: { name: 'spec', version: '1' },
      },
    },
  };
}

/** Any `test://items/{id}` resolves; every claim made on the provider is recorded. */
function setup() {
  const claims: string[] = [];
  const catalog = new StaticCatalog({
    resourceTemplates: [
      {
        definition: { uriTemplate: 'test://items/{id}', name: 'item' },
        match: uriTemplateMatcher('test://items/{id}'),
        read: (uri) => ({ contents: [{ uri, text: uri }] }),
        subscribe: (uri) => {
          claims.push(uri);
          return Promise.resolve(() => undefined);
        },
      },
    ],
  });
  const sut = new McpEngine({
    serverInfo: { name: 'portico-spec', version: '0.0.0' },
    catalog,
    secret: SECRET,
    maxResourceSubscriptions: CAP,
  });
  return { sut, claims };
}

function openSession(engine: McpEngine): LegacySession {
  const { session } = engine.initialize(
    {
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: '2025-11-25',
        capabilities: {},
        clientInfo: { name: 'c', version: '1' },
      },
    },
    `session-${Math.random()}`,
  );
  session.initialized = true;
  engine.watchSession(session);
  return session;
}

const item = (n: number) => `test://items/${n}`;

describe(`${McpEngine.name} resource subscription cap`, () => {
  describe('2025 era (resources/subscribe)', () => {
    let nextId = 1;
    const request = (engine: McpEngine, session: LegacySession, method: string, uri: string) =>
      engine.handleSession(
        session,
        classify({ jsonrpc: '2.0', id: nextId++, method, params: { uri } }),
        sink(),
      );

    it('refuses a subscription beyond the cap, naming how many the session follows', async () => {
      const { sut, claims } = setup();
      const session = openSession(sut);
      for (let n = 1; n <= CAP; n++) {
        expect(result(await request(sut, session, 'resources/subscribe', item(n)))).toEqual({});
      }
      const refused = error(await request(sut, session, 'resources/subscribe', item(CAP + 1)));
      expect(refused.code).toBe(ErrorCode.InvalidParams);
      expect(refused.code).toBe(-32602);
      expect(refused.message).toContain(`follows ${CAP} resources`);
      expect([...session.subscriptions]).toEqual([item(1), item(2), item(3)]);
      expect(claims).toEqual([item(1), item(2), item(3)]);
    });

    it('accepts re-subscribing a URI the session already follows at the cap', async () => {
      const { sut, claims } = setup();
      const session = openSession(sut);
      for (let n = 1; n <= CAP; n++) {
        await request(sut, session, 'resources/subscribe', item(n));
      }
      expect(result(await request(sut, session, 'resources/subscribe', item(2)))).toEqual({});
      expect(session.subscriptions.size).toBe(CAP);
      expect(claims).toEqual([item(1), item(2), item(3)]);
    });

    it('accepts a new URI once one is unsubscribed', async () => {
      const { sut, claims } = setup();
      const session = openSession(sut);
      for (let n = 1; n <= CAP; n++) {
        await request(sut, session, 'resources/subscribe', item(n));
      }
      expect(error(await request(sut, session, 'resources/subscribe', item(4))).code).toBe(
        ErrorCode.InvalidParams,
      );
      expect(result(await request(sut, session, 'resources/unsubscribe', item(1)))).toEqual({});
      expect(result(await request(sut, session, 'resources/subscribe', item(4)))).toEqual({});
      expect([...session.subscriptions].sort()).toEqual([item(2), item(3), item(4)]);
      expect(claims).toEqual([item(1), item(2), item(3), item(4)]);
      // The freed place is taken again.
      expect(error(await request(sut, session, 'resources/subscribe', item(5))).code).toBe(
        ErrorCode.InvalidParams,
      );
    });

    it('counts each session on its own', async () => {
      const { sut } = setup();
      const a = openSession(sut);
      const b = openSession(sut);
      for (let n = 1; n <= CAP; n++) {
        await request(sut, a, 'resources/subscribe', item(n));
      }
      expect(result(await request(sut, b, 'resources/subscribe', item(4)))).toEqual({});
    });
  });

  describe('2026-07-28 (subscriptions/listen)', () => {
    it('refuses a stream listing more distinct URIs than the cap, claiming nothing', async () => {
      const { sut, claims } = setup();
      const out = sink();
      const refused = error(
        await sut.handleModern(listen('l-over', [item(1), item(2), item(3), item(4)]), out),
      );
      expect(refused.code).toBe(ErrorCode.InvalidParams);
      expect(refused.code).toBe(-32602);
      expect(refused.message).toContain(`lists ${CAP + 1} URIs`);
      expect(refused.message).toContain(`at most ${CAP}`);
      expect(out.sent).toEqual([]);
      expect(claims).toEqual([]);
    });

    it('counts a URI listed several times once', async () => {
      const { sut, claims } = setup();
      const out = sink();
      const cancellation = new Cancellation();
      const uris = [item(1), item(2), item(1), item(3), item(3), item(2)];
      const listening = sut.handleModern(listen('l-dup', uris), { ...out, cancellation });
      await new Promise((resolve) => setImmediate(resolve));
      expect(out.sent).toHaveLength(1);
      const ack = out.sent[0] as { method: string; params: JsonObject };
      expect(ack.method).toBe('notifications/subscriptions/acknowledged');
      expect(ack.params.notifications).toEqual({
        resourceSubscriptions: [item(1), item(2), item(3)],
      });
      expect(claims).toEqual([item(1), item(2), item(3)]);
      cancellation.cancel();
      await expect(listening).resolves.toBeUndefined();
    });

    it('counts each stream on its own', async () => {
      const { sut } = setup();
      const first = sink();
      const second = sink();
      const a = sut.handleModern(listen('l-a', [item(1), item(2), item(3)]), first);
      const b = sut.handleModern(listen('l-b', [item(4), item(5), item(6)]), second);
      await new Promise((resolve) => setImmediate(resolve));
      for (const out of [first, second]) {
        expect(out.sent.map((m) => ('method' in m ? m.method : ''))).toEqual([
          'notifications/subscriptions/acknowledged',
        ]);
      }
      sut.close();
      expect(result(await a).resultType).toBe('complete');
      expect(result(await b).resultType).toBe('complete');
    });
  });
});

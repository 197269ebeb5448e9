/*
 * Virtual servers: named subsets of a tenant's catalog at /mcp/{tenant}/{server}. The admin API
 * (CRUD, validation, audit) and portico.yaml define them; the official SDK clients (v1 on a
 * 2025-era session, v2 on 2026-07-28) see only the subset through the server's endpoint, and
 * everything outside it is answered exactly like something that does not exist; a 2025-era
 * session stays on the endpoint that opened it; a change of the server reaches its connected
 * clients as list_changed; unknown servers are 404 on every transport and on the metadata
 * route; policies, scopes and audit apply as on the tenant endpoint.
 */
import type { IncomingMessage } from 'node:http';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import WebSocket from 'ws';
import { DeclarativeApplyService, parseDeclarativeConfig, TenantService } from '@portico/tenancy';
import { testDatabaseEnv } from '@portico/testing';
import { RunningGateway, startGateway } from './support/gateway';
import {
  closeAll,
  ClientEvents,
  connectV1,
  connectV2,
  type FetchLike,
  HttpRecorder,
  rejectionOf,
} from './support/sdk';
import { createApiKey, createVirtualServer, seedTenant, SeededTenant } from './support/tenants';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const BOOTSTRAP = 'virtual-servers-e2e-bootstrap-token-0123456789';
const LOG_LEVEL = process.env.E2E_LOG ?? 'silent';
const PROBLEM_JSON = 'application/problem+json';
const MODERN = '2026-07-28';
const DATA_TEMPLATE = 'test://template/{id}/data';
const SIMPLE_TEXT = 'This is a simple text response for testing.';
/** Bound for every wait on a condition: generous, a healthy run never waits this long. */
const WAIT_MS = 10_000;

/** What the `crm` server of tenant `acme` exposes (tool names as clients see them). */
const CRM = {
  name: 'crm',
  title: 'CRM',
  tools: ['crm_*', 'test_simple_text', 'test_audio_content'],
  prompts: ['test_simple_prompt'],
  resources: ['test://static-text'],
  resourceTemplates: ['test://template/*'],
};

function withApiKey(apiKey: string): FetchLike {
  return (url, init) => {
    const headers = new Headers(init?.headers);
    headers.set('authorization', `Bearer ${apiKey}`);
    return fetch(url, { ...init, headers });
  };
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

interface Reply {
  status: number;
  headers: Headers;
  body: Json;
}

async function reply(response: Response): Promise<Reply> {
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text === '' ? {} : (JSON.parse(text) as Json),
  };
}

/** A 2026-07-28 request with the envelope and headers the revision requires. */
function modern(
  url: string,
  apiKey: string | undefined,
  method: string,
  params: Json = {},
  name?: string,
): Promise<Reply> {
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN,
      'mcp-method': method,
      ...(name === undefined ? {} : { 'mcp-name': name }),
      ...(apiKey === undefined ? {} : bearer(apiKey)),
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method,
      params: {
        ...params,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': MODERN,
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      },
    }),
  }).then(reply);
}

/** A 2025-era POST (initialize, or a message of the session `sessionId`). */
function legacy(
  url: string,
  apiKey: string,
  message: Json,
  sessionId?: string,
  method = 'POST',
): Promise<Reply> {
  return fetch(url, {
    method,
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      ...bearer(apiKey),
      ...(sessionId === undefined
        ? {}
        : { 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18' }),
    },
    body: method === 'POST' ? JSON.stringify(message) : undefined,
  }).then(reply);
}

const INITIALIZE = {
  jsonrpc: '2.0',
  id: 0,
  method: 'initialize',
  params: {
    protocolVersion: '2025-06-18',
    capabilities: {},
    clientInfo: { name: 'e2e-virtual-servers', version: '1' },
  },
};

type Api = (method: string, path: string, body?: unknown) => Promise<Reply>;

function apiFor(baseUrl: string): Api {
  return async (method, path, body) => {
    const response = await fetch(`${baseUrl}/admin/v1${path}`, {
      method,
      headers: {
        ...bearer(BOOTSTRAP),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return reply(response);
  };
}

function expectProblem(answer: Reply, status: number): void {
  expect(answer.status).toBe(status);
  expect(answer.headers.get('content-type')).toContain(PROBLEM_JSON);
  expect(answer.body).toMatchObject({
    status,
    type: expect.any(String),
    detail: expect.any(String),
  });
}

async function until<T>(probe: () => Promise<T | undefined>, what: string): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const found = await probe();
    if (found !== undefined) {
      return found;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what} did not happen within ${WAIT_MS} ms`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** An upgrade attempt: the open socket, or the HTTP response that refused it. */
function upgrade(
  url: string,
  headers: Record<string, string>,
): Promise<{
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
  socket?: WebSocket;
}> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, ['mcp'], { headers });
    socket.once('open', () => resolve({ status: 101, headers: {}, body: '', socket }));
    socket.once('unexpected-response', (_req, res: IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        socket.terminate();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
    socket.once('error', reject);
  });
}

/** Sends one request over an open WebSocket and waits for its answer. */
function wsRequest(
  socket: WebSocket,
  id: number,
  method: string,
  params: Json = {},
): Promise<Json> {
  return new Promise((resolve) => {
    const onMessage = (data: Buffer): void => {
      const message = JSON.parse(data.toString('utf8')) as Json;
      if (message.id === id) {
        socket.off('message', onMessage);
        resolve(message);
      }
    };
    socket.on('message', onMessage);
    socket.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
  });
}

const names = (items: { name: string }[]): string[] => items.map((i) => i.name).sort();

describe('virtual servers', () => {
  let gateway: RunningGateway;
  let api: Api;
  let acme: SeededTenant;
  let crmUrl: string;

  beforeAll(async () => {
    gateway = await startGateway({ LOG_LEVEL, BOOTSTRAP_ADMIN_TOKEN: BOOTSTRAP });
    api = apiFor(gateway.baseUrl);
    acme = await seedTenant(gateway.app, {
      slug: 'acme',
      fixtures: ['conformance'],
      policies: [
        { tool: 'greet', rename: 'crm_greet' },
        { tool: 'test_audio_content', requiredScopes: ['media'] },
        { tool: 'json_schema_2020_12_tool', requiredScopes: ['secret'] },
      ],
    });
    await createVirtualServer(gateway.app, acme.tenant, CRM);
    await createVirtualServer(gateway.app, acme.tenant, {
      name: 'watch',
      tools: ['test_trigger_resource_update'],
      resources: ['test://watched-*'],
    });
    await createVirtualServer(gateway.app, acme.tenant, {
      name: 'quiet',
      tools: ['test_trigger_resource_update'],
    });
    crmUrl = `${gateway.mcpUrl}/acme/crm`;
  });

  afterAll(async () => {
    await gateway?.close();
  });

  describe('the catalog through a server endpoint', () => {
    it('SDK v1 (2025-era session) lists only the subset, after tool policies', async () => {
      const { client } = await connectV1(crmUrl, {
        recorder: new HttpRecorder(withApiKey(acme.apiKey)),
      });
      try {
        // crm_greet is `greet` renamed by a policy; test_audio_content needs a scope the key
        // lacks, so it stays hidden here as it would on the tenant endpoint.
        expect(names((await client.listTools()).tools)).toEqual(['crm_greet', 'test_simple_text']);
        expect(names((await client.listPrompts()).prompts)).toEqual(['test_simple_prompt']);
        expect((await client.listResources()).resources.map((r) => r.uri)).toEqual([
          'test://static-text',
        ]);
        expect(
          (await client.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate),
        ).toEqual([DATA_TEMPLATE]);

        const called = await client.callTool({ name: 'crm_greet', arguments: { name: 'Ada' } });
        expect(called.content).toEqual([{ type: 'text', text: 'Hello, Ada!' }]);
        const read = await client.readResource({ uri: 'test://template/42/data' });
        expect(read.contents[0]).toMatchObject({ uri: 'test://template/42/data' });
        const prompt = await client.getPrompt({ name: 'test_simple_prompt' });
        expect(prompt.messages.length).toBeGreaterThan(0);
      } finally {
        await closeAll(client);
      }
    });

    it('SDK v1 is refused outside the subset exactly as for names that do not exist', async () => {
      const { client } = await connectV1(crmUrl, {
        recorder: new HttpRecorder(withApiKey(acme.apiKey)),
      });
      try {
        for (const name of ['test_error_handling', 'greet', 'no_such_tool']) {
          const err = await rejectionOf(client.callTool({ name, arguments: {} }));
          expect({ code: err.code, message: err.message }).toEqual({
            code: -32602,
            message: expect.stringContaining(`Unknown tool: ${name}`),
          });
        }
        for (const uri of ['test://static-binary', 'test://nowhere']) {
          const err = await rejectionOf(client.readResource({ uri }));
          expect({ code: err.code, data: err.data }).toEqual({ code: -32002, data: { uri } });
        }
        for (const name of ['test_prompt_with_arguments', 'no_such_prompt']) {
          const err = await rejectionOf(client.getPrompt({ name, arguments: {} }));
          expect({ code: err.code, message: err.message }).toEqual({
            code: -32602,
            message: expect.stringContaining(`Unknown prompt: ${name}`),
          });
        }
        const completion = await rejectionOf(
          client.complete({
            ref: { type: 'ref/prompt', name: 'test_prompt_with_arguments' },
            argument: { name: 'arg1', value: '' },
          }),
        );
        expect(completion.code).toBe(-32602);
      } finally {
        await closeAll(client);
      }
    });

    it('SDK v2 (2026-07-28) lists, calls and is refused outside the subset', async () => {
      const { client } = await connectV2(crmUrl, 'modern', {
        recorder: new HttpRecorder(withApiKey(acme.apiKey)),
      });
      try {
        expect(names((await client.listTools()).tools)).toEqual(['crm_greet', 'test_simple_text']);
        const result = await client.callTool({ name: 'test_simple_text', arguments: {} });
        expect(result.content).toEqual([{ type: 'text', text: SIMPLE_TEXT }]);
        expect(names((await client.listPrompts()).prompts)).toEqual(['test_simple_prompt']);
        const err = await rejectionOf(
          client.callTool({ name: 'test_error_handling', arguments: {} }),
        );
        expect(err.code).toBe(-32602);
        expect(err.message).toContain('Unknown tool: test_error_handling');
      } finally {
        await closeAll(client);
      }
    });

    it('answers a tool outside the subset on the wire byte for byte like an unknown one', async () => {
      const outside = await modern(
        crmUrl,
        acme.apiKey,
        'tools/call',
        { name: 'test_error_handling', arguments: {} },
        'test_error_handling',
      );
      const unknown = await modern(
        `${gateway.mcpUrl}/acme`,
        acme.apiKey,
        'tools/call',
        { name: 'test_error_handling_x', arguments: {} },
        'test_error_handling_x',
      );
      expect(outside.status).toBe(unknown.status);
      expect(outside.body.error).toEqual({
        ...unknown.body.error,
        message: unknown.body.error.message.replace('test_error_handling_x', 'test_error_handling'),
      });
    });

    it('never reveals that a tool outside the subset needs scopes (no 403 step-up)', async () => {
      const onTenant = await modern(
        `${gateway.mcpUrl}/acme`,
        acme.apiKey,
        'tools/call',
        { name: 'json_schema_2020_12_tool', arguments: {} },
        'json_schema_2020_12_tool',
      );
      expect(onTenant.status).toBe(403);
      const onServer = await modern(
        crmUrl,
        acme.apiKey,
        'tools/call',
        { name: 'json_schema_2020_12_tool', arguments: {} },
        'json_schema_2020_12_tool',
      );
      expect(onServer.status).toBe(400);
      expect(onServer.body.error).toMatchObject({
        code: -32602,
        message: expect.stringContaining('Unknown tool'),
      });
    });

    it('asks for the scopes of a tool in the subset, pointing at the server metadata', async () => {
      const refused = await modern(
        crmUrl,
        acme.apiKey,
        'tools/call',
        { name: 'test_audio_content', arguments: {} },
        'test_audio_content',
      );
      expect(refused.status).toBe(403);
      const challenge = refused.headers.get('www-authenticate') ?? '';
      expect(challenge).toContain('error="insufficient_scope"');
      expect(challenge).toContain('scope="media"');
      expect(challenge).toContain(
        `resource_metadata="${gateway.baseUrl}/.well-known/oauth-protected-resource/mcp/acme/crm"`,
      );

      const { secret } = await createApiKey(gateway.app, acme.tenant.id, {
        name: 'media',
        scopes: ['media'],
      });
      const allowed = await modern(
        crmUrl,
        secret,
        'tools/call',
        { name: 'test_audio_content', arguments: {} },
        'test_audio_content',
      );
      expect(allowed.status).toBe(200);
      expect(allowed.body.result.content[0]).toMatchObject({ type: 'audio' });
    });

    it('keeps templates and resource updates to the server that exposes them', async () => {
      const watch = `${gateway.mcpUrl}/acme/watch`;
      const templates = await modern(watch, acme.apiKey, 'resources/templates/list');
      expect(templates.body.result.resourceTemplates).toEqual([]);
      const instance = await modern(
        watch,
        acme.apiKey,
        'resources/read',
        { uri: 'test://template/1/data' },
        'test://template/1/data',
      );
      expect(instance.body.error).toMatchObject({ data: { uri: 'test://template/1/data' } });

      // Both sessions subscribe to the watched resource; only `watch` exposes it.
      const events = { watch: new ClientEvents(), quiet: new ClientEvents() };
      const clients = await Promise.all(
        (['watch', 'quiet'] as const).map(async (server) => {
          const recorder = new HttpRecorder(withApiKey(acme.apiKey));
          const { client } = await connectV1(`${gateway.mcpUrl}/acme/${server}`, {
            recorder,
            events: events[server],
          });
          await recorder.waitFor((e) => e.httpMethod === 'GET' && e.status === 200, WAIT_MS);
          await client.subscribeResource({ uri: 'test://watched-resource' });
          return client;
        }),
      );
      try {
        await clients[1].callTool({ name: 'test_trigger_resource_update', arguments: {} });
        await events.watch.updates.waitFor((uri) => uri === 'test://watched-resource', WAIT_MS);
        // A later change reaches `quiet` (it is connected): the update was withheld, not slow.
        await api('PATCH', `/tenants/acme/servers/${await serverId('quiet')}`, {
          prompts: ['test_simple_prompt'],
        });
        await events.quiet.listChanges.waitFor(undefined, WAIT_MS);
        expect(events.quiet.updates.items).toEqual([]);
      } finally {
        await closeAll(...clients);
      }
    });
  });

  async function serverId(name: string, slug = 'acme'): Promise<string> {
    const listed = await api('GET', `/tenants/${slug}/servers`);
    const found = (listed.body as unknown as { id: string; name: string }[]).find(
      (s) => s.name === name,
    );
    if (!found) {
      throw new Error(`no server ${name}`);
    }
    return found.id;
  }

  describe('sessions', () => {
    it('binds a 2025-era session to the endpoint that opened it', async () => {
      const tenantUrl = `${gateway.mcpUrl}/acme`;
      const opened = await legacy(crmUrl, acme.apiKey, INITIALIZE);
      expect(opened.status).toBe(200);
      const onServer = opened.headers.get('mcp-session-id')!;
      expect(
        (
          await legacy(
            crmUrl,
            acme.apiKey,
            { jsonrpc: '2.0', method: 'notifications/initialized' },
            onServer,
          )
        ).status,
      ).toBe(202);
      const list = { jsonrpc: '2.0', id: 1, method: 'tools/list' };

      for (const elsewhere of [tenantUrl, `${gateway.mcpUrl}/acme/watch`]) {
        const refused = await legacy(elsewhere, acme.apiKey, list, onServer);
        expect(refused.status).toBe(404);
        expect(refused.body.error).toEqual({ code: -32600, message: 'Session not found' });
        expect((await legacy(elsewhere, acme.apiKey, {}, onServer, 'DELETE')).status).toBe(404);
      }
      const served = await legacy(crmUrl, acme.apiKey, list, onServer);
      expect(names(served.body.result.tools)).toEqual(['crm_greet', 'test_simple_text']);

      // And the other way round: the tenant's session is unknown on its servers.
      const tenantSession = (await legacy(tenantUrl, acme.apiKey, INITIALIZE)).headers.get(
        'mcp-session-id',
      )!;
      expect((await legacy(crmUrl, acme.apiKey, list, tenantSession)).status).toBe(404);

      const sessions = await api('GET', '/tenants/acme/sessions');
      expect(sessions.body).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ id: onServer, server: 'crm' }),
          expect.objectContaining({ id: tenantSession }),
        ]),
      );
      const tenantRow = (sessions.body as unknown as Json[]).find((s) => s.id === tenantSession);
      expect(tenantRow).not.toHaveProperty('server');
      expect((await legacy(crmUrl, acme.apiKey, {}, onServer, 'DELETE')).status).toBe(200);
    });
  });

  describe('changes', () => {
    it('tells connected clients of the server (SDK v1 and v2) when its definition changes', async () => {
      await api('POST', '/tenants/acme/servers', { name: 'live', tools: ['test_simple_text'] });
      const url = `${gateway.mcpUrl}/acme/live`;
      const v1Events = new ClientEvents();
      const v1Recorder = new HttpRecorder(withApiKey(acme.apiKey));
      const v1 = await connectV1(url, { recorder: v1Recorder, events: v1Events });
      const v2Events = new ClientEvents();
      const v2 = await connectV2(url, 'modern', {
        recorder: new HttpRecorder(withApiKey(acme.apiKey)),
        events: v2Events,
      });
      try {
        await v1Recorder.waitFor((e) => e.httpMethod === 'GET' && e.status === 200, WAIT_MS);
        const subscription = await v2.client.listen({ toolsListChanged: true });
        expect(names((await v1.client.listTools()).tools)).toEqual(['test_simple_text']);

        const changed = await api('PATCH', `/tenants/acme/servers/${await serverId('live')}`, {
          tools: ['test_simple_text', 'test_error_handling'],
        });
        expect(changed.status).toBe(200);

        await v1Events.listChanges.waitFor(
          (m) => m === 'notifications/tools/list_changed',
          WAIT_MS,
        );
        await v2Events.listChanges.waitFor(
          (m) => m === 'notifications/tools/list_changed',
          WAIT_MS,
        );
        expect(names((await v1.client.listTools()).tools)).toEqual([
          'test_error_handling',
          'test_simple_text',
        ]);
        expect(names((await v2.client.listTools()).tools)).toEqual([
          'test_error_handling',
          'test_simple_text',
        ]);
        await subscription.close();
      } finally {
        await closeAll(v1.client, v2.client);
      }
    });

    it('closes the endpoint of a deleted server: 404, and its sessions are gone', async () => {
      await api('POST', '/tenants/acme/servers', { name: 'doomed', tools: ['*'] });
      const url = `${gateway.mcpUrl}/acme/doomed`;
      const sessionId = (await legacy(url, acme.apiKey, INITIALIZE)).headers.get('mcp-session-id')!;
      expect(
        (await api('DELETE', `/tenants/acme/servers/${await serverId('doomed')}`)).status,
      ).toBe(204);
      const after = await legacy(
        url,
        acme.apiKey,
        { jsonrpc: '2.0', id: 2, method: 'ping' },
        sessionId,
      );
      expect(after.status).toBe(404);
      expect(after.body.error).toEqual({ code: -32600, message: 'Unknown server' });
    });
  });

  describe('unknown servers', () => {
    it('answers 404 with a JSON-RPC error on Streamable HTTP, before credentials', async () => {
      for (const key of [acme.apiKey, undefined]) {
        const refused = await modern(`${gateway.mcpUrl}/acme/nope`, key, 'tools/list');
        expect(refused.status).toBe(404);
        expect(refused.body).toEqual({
          jsonrpc: '2.0',
          id: null,
          error: { code: -32600, message: 'Unknown server' },
        });
      }
      const unknownTenant = await modern(`${gateway.mcpUrl}/nobody/crm`, acme.apiKey, 'tools/list');
      expect(unknownTenant.status).toBe(404);
      expect(unknownTenant.body.error.message).toBe('Unknown tenant');
      // A name no server may have (reserved, or not a slug) is just as unknown.
      for (const name of ['messages', 'UPPER']) {
        const odd = await modern(`${gateway.mcpUrl}/acme/${name}`, acme.apiKey, 'tools/list');
        expect({ status: odd.status, error: odd.body.error }).toEqual({
          status: 404,
          error: expect.objectContaining({ code: -32600 }),
        });
      }
    });

    it('answers 404 on the legacy SSE and WebSocket routes and the metadata route', async () => {
      const sse = await fetch(`${gateway.mcpUrl}/acme/nope/sse`, {
        headers: { accept: 'text/event-stream', ...bearer(acme.apiKey) },
      }).then(reply);
      expect(sse.status).toBe(404);
      expect(sse.body.error).toEqual({ code: -32600, message: 'Unknown server' });

      const wsBase = gateway.mcpUrl.replace(/^http/, 'ws');
      const ws = await upgrade(`${wsBase}/acme/nope`, bearer(acme.apiKey));
      expect(ws.status).toBe(404);
      expect(JSON.parse(ws.body)).toMatchObject({ error: { message: 'Unknown server' } });
      expect((await upgrade(`${wsBase}/acme/crm/extra`, bearer(acme.apiKey))).status).toBe(404);

      const metadata = await fetch(
        `${gateway.baseUrl}/.well-known/oauth-protected-resource/mcp/acme/nope`,
      );
      expect(metadata.status).toBe(404);
    });

    it('challenges a request without credentials to a real server with its own metadata', async () => {
      const refused = await modern(crmUrl, undefined, 'tools/list');
      expect(refused.status).toBe(401);
      expect(refused.headers.get('www-authenticate')).toContain(
        `resource_metadata="${gateway.baseUrl}/.well-known/oauth-protected-resource/mcp/acme/crm"`,
      );
      const metadata = await fetch(
        `${gateway.baseUrl}/.well-known/oauth-protected-resource/mcp/acme/crm`,
      ).then(reply);
      expect(metadata.status).toBe(200);
      expect(metadata.body).toEqual({
        resource: `${gateway.baseUrl}/mcp/acme/crm`,
        // Only the scopes of the server's tools: json_schema_2020_12_tool's `secret` is not one.
        scopes_supported: ['media'],
        bearer_methods_supported: ['header'],
        resource_name: 'Tenant acme: CRM',
      });
    });
  });

  describe('legacy transports', () => {
    it('serves the subset over HTTP+SSE (SDK v1)', async () => {
      const client = new V1Client({ name: 'e2e-virtual-sse', version: '1.0.0' });
      await client.connect(
        new SSEClientTransport(new URL(`${crmUrl}/sse`), {
          requestInit: { headers: bearer(acme.apiKey) },
        }),
      );
      try {
        expect(names((await client.listTools()).tools)).toEqual(['crm_greet', 'test_simple_text']);
      } finally {
        await client.close();
      }
    });

    it("names the server's message endpoint and accepts messages only there", async () => {
      const controller = new AbortController();
      const stream = await fetch(`${crmUrl}/sse`, {
        headers: { accept: 'text/event-stream', ...bearer(acme.apiKey) },
        signal: controller.signal,
      });
      try {
        const reader = stream.body!.getReader();
        let text = '';
        while (!text.includes('\n\n')) {
          text += new TextDecoder().decode((await reader.read()).value);
        }
        const endpoint = /^event: endpoint\ndata: (\S+)\n\n/.exec(text)![1];
        expect(endpoint).toMatch(/^\/mcp\/acme\/crm\/messages\?sessionId=[\w-]{20,}$/);
        const sessionId = new URL(endpoint, gateway.baseUrl).searchParams.get('sessionId');
        const post = (path: string) =>
          fetch(`${gateway.baseUrl}${path}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', ...bearer(acme.apiKey) },
            body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'ping' }),
          });
        for (const elsewhere of [
          `/mcp/acme/messages?sessionId=${sessionId}`,
          `/mcp/acme/watch/messages?sessionId=${sessionId}`,
        ]) {
          const refused = await post(elsewhere);
          expect(refused.status).toBe(404);
          expect(((await refused.json()) as Json).error.message).toBe(
            'Unknown or closed SSE session',
          );
        }
        expect((await post(endpoint)).status).toBe(202);
      } finally {
        controller.abort();
      }
    });

    it('serves the subset over WebSocket', async () => {
      const wsBase = gateway.mcpUrl.replace(/^http/, 'ws');
      const opened = await upgrade(`${wsBase}/acme/crm`, bearer(acme.apiKey));
      expect(opened.status).toBe(101);
      const socket = opened.socket!;
      try {
        await wsRequest(socket, 1, 'initialize', INITIALIZE.params);
        socket.send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
        const listed = await wsRequest(socket, 2, 'tools/list');
        expect(names(listed.result.tools)).toEqual(['crm_greet', 'test_simple_text']);
        const refused = await wsRequest(socket, 3, 'tools/call', {
          name: 'test_error_handling',
          arguments: {},
        });
        expect(refused.error).toMatchObject({ code: -32602 });
      } finally {
        socket.terminate();
      }
    });
  });

  describe('admin API', () => {
    it('creates, lists, reads, changes and deletes servers, audited, bumping the revision', async () => {
      await api('POST', '/tenants', { name: 'Admin', slug: 'adm' });
      const before = (await api('GET', '/tenants/adm')).body.revision as number;
      const created = await api('POST', '/tenants/adm/servers', {
        name: 'sales',
        title: 'Sales',
        tools: ['crm_*'],
        resources: ['crm://accounts/*'],
      });
      expect(created.status).toBe(201);
      expect(created.body).toEqual({
        id: expect.any(String),
        name: 'sales',
        title: 'Sales',
        description: null,
        tools: ['crm_*'],
        prompts: [],
        resources: ['crm://accounts/*'],
        resourceTemplates: [],
        createdAt: expect.any(String),
        updatedAt: expect.any(String),
      });
      const path = `/tenants/adm/servers/${created.body.id}`;
      expect((await api('GET', '/tenants/adm')).body.revision).toBe(before + 1);
      expect((await api('GET', '/tenants/adm/servers')).body).toEqual([created.body]);
      expect((await api('GET', path)).body).toEqual(created.body);

      const patched = await api('PATCH', path, { title: null, prompts: ['brief'] });
      expect(patched.status).toBe(200);
      expect(patched.body).toMatchObject({
        name: 'sales',
        title: null,
        tools: ['crm_*'],
        prompts: ['brief'],
      });

      expectProblem(await api('POST', '/tenants/adm/servers', { name: 'sales' }), 409);
      expect((await api('DELETE', path)).status).toBe(204);
      expectProblem(await api('GET', path), 404);
      expectProblem(await api('DELETE', path), 404);
      expectProblem(await api('PATCH', path, { tools: [] }), 404);

      const audit = await until(async () => {
        const found = await api('GET', '/tenants/adm/audit?limit=50');
        const actions = (found.body.items as { action: string }[]).map((i) => i.action);
        return actions.includes('virtual-server.delete') ? actions : undefined;
      }, 'the audit of the deletion');
      expect(audit).toEqual(
        expect.arrayContaining([
          'virtual-server.create',
          'virtual-server.update',
          'virtual-server.delete',
        ]),
      );
    });

    it('refuses invalid definitions with every bad field, and reserved names', async () => {
      await api('POST', '/tenants', { name: 'Validation', slug: 'val' });
      const invalid = await api('POST', '/tenants/val/servers', {
        name: 'Not A Slug',
        tools: ['ok', 'not ok'],
        prompts: 'brief',
        unknown: true,
      });
      expectProblem(invalid, 400);
      expect((invalid.body.errors as { field: string }[]).map((e) => e.field).sort()).toEqual([
        'name',
        'prompts',
        'tools',
        'unknown',
      ]);
      expect(invalid.body.errors).toEqual(
        expect.arrayContaining([
          { field: 'tools', messages: [expect.stringMatching(/^tools\[1\] must be a tool name/)] },
        ]),
      );
      for (const name of ['sse', 'messages']) {
        const reserved = await api('POST', '/tenants/val/servers', { name });
        expectProblem(reserved, 400);
        expect(reserved.body.errors).toEqual([
          {
            field: 'name',
            messages: [`name "${name}" is reserved by the gateway's routes under /mcp/{tenant}`],
          },
        ]);
      }
      const created = await api('POST', '/tenants/val/servers', { name: 'ok' });
      expectProblem(
        await api('PATCH', `/tenants/val/servers/${created.body.id}`, { name: 'x' }),
        400,
      );
      expect((await api('GET', '/tenants/val/servers')).body).toHaveLength(1);
    });

    it("removes a tenant's servers with the tenant", async () => {
      await api('POST', '/tenants', { name: 'Gone', slug: 'gone' });
      const tenantId = (await api('GET', '/tenants/gone')).body.id as string;
      await api('POST', '/tenants/gone/servers', { name: 'one' });
      await api('POST', '/tenants/gone/servers', { name: 'two' });
      const servers = gateway.app.get(TenantService).servers(tenantId);
      expect(await servers.count()).toBe(2);
      expect((await api('DELETE', '/tenants/gone')).status).toBe(204);
      expect(await servers.count()).toBe(0);
    });

    it('records the server a tool call came through in the audit trail', async () => {
      await modern(
        crmUrl,
        acme.apiKey,
        'tools/call',
        { name: 'test_simple_text', arguments: {} },
        'test_simple_text',
      );
      const item = await until(async () => {
        const found = await api('GET', '/tenants/acme/audit?action=tools/call&limit=100');
        return (found.body.items as Json[]).find((i) => i.details?.server === 'crm');
      }, 'a tools/call audit event naming the server');
      expect(item).toMatchObject({ action: 'tools/call', target: 'test_simple_text' });
    });
  });
});

describe('virtual servers in portico.yaml (PostgreSQL)', () => {
  let gateway: RunningGateway;
  let cleanup: () => Promise<void>;
  const key = `ptk_${'v'.repeat(40)}`;

  const yaml = (servers: string) => `
version: 1
tenants:
  - slug: declared
    name: Declared
    backends:
      - { name: fixtures, kind: fixture, target: conformance }
    apiKeys:
      - { name: ci, secret: { env: VS_KEY }, roles: [tool-user] }
    servers:
${servers}
`;

  async function apply(text: string) {
    const parsed = parseDeclarativeConfig(text, { VS_KEY: key });
    if (!parsed.ok) {
      throw new Error(JSON.stringify(parsed.problems));
    }
    return gateway.app.get(DeclarativeApplyService).apply(parsed.config);
  }

  async function tools(server: string): Promise<Reply> {
    return modern(`${gateway.mcpUrl}/declared/${server}`, key, 'tools/list');
  }

  beforeAll(async () => {
    const database = await testDatabaseEnv('postgres');
    cleanup = database.cleanup;
    gateway = await startGateway({ ...database.env, LOG_LEVEL });
  });

  afterAll(async () => {
    await gateway?.close();
    await cleanup?.();
  });

  it('declares servers, applies idempotently, updates and removes them', async () => {
    const first = await apply(
      yaml(`      - name: basic
        title: Basics
        tools: [test_simple_text]
      - name: media
        tools: ["test_*_content"]`),
    );
    expect(first.created).toEqual(
      expect.arrayContaining(['server:declared/basic', 'server:declared/media']),
    );
    expect(names((await tools('basic')).body.result.tools)).toEqual(['test_simple_text']);
    expect(names((await tools('media')).body.result.tools)).toEqual([
      'test_audio_content',
      'test_image_content',
    ]);

    const again = await apply(
      yaml(`      - name: basic
        title: Basics
        tools: [test_simple_text]
      - name: media
        tools: ["test_*_content"]`),
    );
    expect(again).toEqual({ created: [], updated: [], deleted: [] });

    // The file owns the tenant's servers: one made through the API goes at the next apply.
    const tenant = (await gateway.app.get(TenantService).findBySlugUncached('declared'))!;
    await createVirtualServer(gateway.app, tenant, { name: 'adhoc', tools: ['*'] });
    expect((await tools('adhoc')).status).toBe(200);

    const changed = await apply(
      yaml(`      - name: basic
        tools: [test_simple_text, test_error_handling]`),
    );
    expect(changed).toEqual({
      created: [],
      updated: ['server:declared/basic'],
      deleted: expect.arrayContaining(['server:declared/media', 'server:declared/adhoc']),
    });
    expect(names((await tools('basic')).body.result.tools)).toEqual([
      'test_error_handling',
      'test_simple_text',
    ]);
    expect((await tools('media')).status).toBe(404);
    expect((await tools('adhoc')).status).toBe(404);
  });

  it('refuses a reserved server name in the file', () => {
    const parsed = parseDeclarativeConfig(yaml('      - name: sse'), { VS_KEY: key });
    expect(parsed).toEqual({
      ok: false,
      problems: [
        {
          path: 'tenants[0].servers[0].name',
          message: `"sse" is reserved by the gateway's routes under /mcp/{tenant}`,
        },
      ],
    });
  });
});

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { StaticCatalog } from '@portico/mcp-protocol';
import { echoTool } from '@portico/testing';
import { LegacySseTransport } from '../apps/gateway/src/mcp/legacy-sse.transport';
import { RunningGateway, startGateway } from './support/gateway';

const catalog = () =>
  new StaticCatalog({
    tools: [
      echoTool,
      {
        definition: {
          name: 'greet',
          description: 'Reports progress, asks for a name, greets',
          inputSchema: { type: 'object' },
        },
        call: async (_args, ctx) => {
          await ctx.progress(1, 2, 'asking');
          const answer = await ctx.elicit({
            message: 'Name?',
            requestedSchema: { type: 'object', properties: { name: { type: 'string' } } },
          });
          return { content: [{ type: 'text', text: `hello ${String(answer.content?.name)}` }] };
        },
      },
    ],
  });

describe('Legacy HTTP+SSE transport (2024-11-05)', () => {
  let gateway: RunningGateway;

  beforeEach(async () => {
    gateway = await startGateway({}, { catalog: catalog() });
  });

  afterEach(async () => {
    await gateway.close();
  });

  it('serves the SDK v1 SSE client: tools, progress and a mid-call elicitation', async () => {
    const client = new Client(
      { name: 'e2e-legacy-sse', version: '1.0.0' },
      { capabilities: { elicitation: {} } },
    );
    client.setRequestHandler(ElicitRequestSchema, () => ({
      action: 'accept',
      content: { name: 'Grace' },
    }));
    await client.connect(new SSEClientTransport(new URL(`${gateway.mcpUrl}/sse`)));
    try {
      expect(client.getServerVersion()?.name).toBe('portico');
      const tools = await client.listTools();
      expect(tools.tools.map((t) => t.name)).toEqual(['echo', 'greet']);
      expect(
        (await client.callTool({ name: 'echo', arguments: { message: 'old school' } })).content,
      ).toEqual([{ type: 'text', text: 'old school' }]);
      const progress: number[] = [];
      const greeted = await client.callTool({ name: 'greet', arguments: {} }, undefined, {
        onprogress: (p) => progress.push(p.progress),
      });
      expect(greeted.content).toEqual([{ type: 'text', text: 'hello Grace' }]);
      expect(progress).toEqual([1]);
    } finally {
      await client.close();
    }
  });

  it('opens with an endpoint event naming the message URI', async () => {
    const controller = new AbortController();
    const response = await fetch(`${gateway.mcpUrl}/sse`, {
      headers: { accept: 'text/event-stream' },
      signal: controller.signal,
    });
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = response.body!.getReader();
    let text = '';
    while (!text.includes('\n\n')) {
      text += new TextDecoder().decode((await reader.read()).value);
    }
    expect(text).toMatch(/^event: endpoint\ndata: \/mcp\/messages\?sessionId=[\w-]{20,}\n\n/);
    controller.abort();
  });

  it.each([
    ['an unknown session', '/mcp/messages?sessionId=nope', {}, '{}', 404],
    ['a missing session', '/mcp/messages', {}, '{}', 404],
    ['a non-JSON content type', null, { 'content-type': 'text/plain' }, '{}', 415],
    ['malformed JSON', null, {}, '{oops', 400],
    ['an untrusted Origin', null, { origin: 'http://evil.example.com' }, '{}', 403],
  ])('rejects %s', async (_name, path, headers, body, status) => {
    let endpoint = path;
    const controller = new AbortController();
    if (endpoint === null) {
      const stream = await fetch(`${gateway.mcpUrl}/sse`, {
        headers: { accept: 'text/event-stream' },
        signal: controller.signal,
      });
      const reader = stream.body!.getReader();
      let text = '';
      while (!text.includes('\n\n')) {
        text += new TextDecoder().decode((await reader.read()).value);
      }
      endpoint = /data: (\S+)/.exec(text)![1];
    }
    const response = await fetch(`${gateway.baseUrl}${endpoint}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
    });
    expect(response.status).toBe(status);
    const error = (await response.json()) as { error: { code: number } };
    expect(error.error.code).toBeLessThan(-32000);
    controller.abort();
  });

  it('forgets the session when the stream closes', async () => {
    const controller = new AbortController();
    const stream = await fetch(`${gateway.mcpUrl}/sse`, {
      headers: { accept: 'text/event-stream' },
      signal: controller.signal,
    });
    const reader = stream.body!.getReader();
    await reader.read();
    const transport = gateway.app.get(LegacySseTransport);
    expect(transport.size).toBe(1);
    controller.abort();
    const deadline = Date.now() + 5000;
    while (transport.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(transport.size).toBe(0);
  });
});

// A fixture MCP server over stdio for federation tests, started by the gateway as an
// `mcp-stdio` backend: node libs/testing/fixtures-upstream/stdio-server.mjs [words...]
// SDK v2 McpServer on its StdioServerTransport (both eras). Plain ESM, no build step.
//
// Tools: echo, fail (a tool error), crash (exits mid-call), env (what the process was started
// with: pid, argv, cwd and the variables the tests set). The resource template
// fixture://items/{id} answers id "1" and a JSON-RPC error otherwise.
// If FIXTURE_REFUSE_FILE names an existing file, the process exits at once (a backend that
// keeps crashing at start). It says on stderr that it started, never printing its variables.
// Also the tool sleep (answers after `ms` milliseconds); resource subscriptions are accepted.
import { existsSync } from 'node:fs';
import {
  McpServer,
  ProtocolError,
  ProtocolErrorCode,
  ResourceTemplate,
  fromJsonSchema,
} from '@modelcontextprotocol/server';
import { StdioServerTransport } from '@modelcontextprotocol/server/stdio';

const refuse = process.env.FIXTURE_REFUSE_FILE;
if (refuse && existsSync(refuse)) {
  process.stderr.write(`stdio fixture refusing to start (pid ${process.pid})\n`);
  process.exit(3);
}

const object = (properties, required = Object.keys(properties)) =>
  fromJsonSchema({ type: 'object', properties, required });
const text = (value) => ({ content: [{ type: 'text', text: value }] });

const server = new McpServer(
  { name: 'fixture-stdio', version: '1.0.0' },
  { capabilities: { tools: {}, resources: {} } },
);
server.registerTool(
  'echo',
  { description: 'Echoes the message', inputSchema: object({ message: { type: 'string' } }) },
  async ({ message }) => text(message),
);
server.registerTool('fail', { description: 'Always throws', inputSchema: object({}) }, async () => {
  throw new Error('fixture failure');
});
server.registerTool(
  'crash',
  { description: 'Exits the process without answering', inputSchema: object({}) },
  async () => {
    process.exit(1);
  },
);
server.registerTool(
  'sleep',
  {
    description: 'Answers after `ms` milliseconds',
    inputSchema: object({ ms: { type: 'number' } }),
  },
  async ({ ms }) => {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return text(`slept ${ms}`);
  },
);
server.registerTool(
  'env',
  { description: 'How this process was started', inputSchema: object({}) },
  async () =>
    text(
      JSON.stringify({
        pid: process.pid,
        argv: process.argv.slice(2),
        cwd: process.cwd(),
        token: process.env.FIXTURE_TOKEN ?? null,
        greeting: process.env.FIXTURE_GREETING ?? null,
        inherited: Object.keys(process.env).filter((name) =>
          ['PORTICO_SECRET', 'MASTER_KEYS', 'DATABASE_URL'].includes(name),
        ),
      }),
    ),
);
server.registerResource(
  'item',
  new ResourceTemplate('fixture://items/{id}', { list: undefined }),
  { mimeType: 'text/plain' },
  async (uri, { id }) => {
    if (id !== '1') {
      throw new ProtocolError(ProtocolErrorCode.InvalidParams, `no item ${id}`);
    }
    return { contents: [{ uri: uri.href, mimeType: 'text/plain', text: 'item 1' }] };
  },
);

// resources/subscribe and resources/unsubscribe are accepted (nothing is ever updated): a
// subscription the gateway holds keeps this process from being stopped as idle.
server.server.registerCapabilities({ resources: { subscribe: true } });
server.server.setRequestHandler('resources/subscribe', async () => ({}));
server.server.setRequestHandler('resources/unsubscribe', async () => ({}));

await server.connect(new StdioServerTransport());
process.stderr.write(`stdio fixture started (pid ${process.pid})\n`);

// A 2025-era upstream (SDK v1 server: initialize, sessions) whose tools ask for input mid-call
// and count how often they ran, for the tests of calls held across input rounds:
//   node libs/testing/fixtures-upstream/counting-upstream.mjs --transport http [--port N]
//   node libs/testing/fixtures-upstream/counting-upstream.mjs --transport stdio
// HTTP is stateful Streamable HTTP on /mcp (one session, and one SDK Server, per initialize)
// and prints `READY <port>` once listening on 127.0.0.1. Plain ESM, no build step. The SDK's
// low-level Server keeps the tool schemas plain JSON Schema (McpServer would want zod).
//
// Counters are per process and per `label` argument, shared by every session:
//   side_effect   {label} counts a run FIRST, then elicits (form: a string `answer`) and
//                 returns "<label>:<answer>:run<n>"; an elicitation that was not accepted
//                 renders as "(<action>)", e.g. "<label>:(decline):run1".
//   two_questions {label} counts a run, elicits twice in turn (answers a, then b) and returns
//                 "<label>:<a>+<b>:run<n>".
//   runs          {label} answers JSON text {"runs":n,"cancelled":m}: how many calls of the
//                 label started, and how many of them were cancelled while in flight (their
//                 request's signal aborted: notifications/cancelled from the client).
// Each elicitation's message names the label and the question: "<label>: question <i>".
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import {
  CallToolRequestSchema,
  ElicitResultSchema,
  ErrorCode,
  ListToolsRequestSchema,
  McpError,
  isInitializeRequest,
} from '@modelcontextprotocol/sdk/types.js';

const option = (name, fallback) => {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && process.argv[at + 1] !== undefined ? process.argv[at + 1] : fallback;
};
const transport = option('transport', 'http');
if (!['http', 'stdio'].includes(transport)) {
  process.stderr.write('usage: counting-upstream.mjs --transport http|stdio [--port N]\n');
  process.exit(2);
}

/** Per label: { runs, cancelled }. */
const counters = new Map();
const counterOf = (label) => {
  let counter = counters.get(label);
  if (!counter) {
    counter = { runs: 0, cancelled: 0 };
    counters.set(label, counter);
  }
  return counter;
};

const LABELLED = {
  type: 'object',
  properties: { label: { type: 'string' } },
  required: ['label'],
};
const TOOLS = [
  { name: 'side_effect', description: 'Counts a run, then asks one question' },
  { name: 'two_questions', description: 'Counts a run, then asks two questions' },
  { name: 'runs', description: 'How often a label ran and was cancelled' },
].map((tool) => ({ ...tool, inputSchema: LABELLED }));
const text = (value) => ({ content: [{ type: 'text', text: value }] });
// Longer than any test waits: the gateway, not this process, decides when a held call ends.
const ELICIT_TIMEOUT_MS = 300_000;

/** Asks the client (through the gateway) for an `answer`, on the tool call's own stream. */
async function ask(extra, label, question) {
  const answer = await extra.sendRequest(
    {
      method: 'elicitation/create',
      params: {
        message: `${label}: question ${question}`,
        requestedSchema: {
          type: 'object',
          properties: { answer: { type: 'string' } },
          required: ['answer'],
        },
      },
    },
    ElicitResultSchema,
    { signal: extra.signal, timeout: ELICIT_TIMEOUT_MS },
  );
  return answer.action === 'accept' ? String(answer.content?.answer) : `(${answer.action})`;
}

/** Counts a run of `label` (and its cancellation, should the client cancel it). */
function countRun(label, extra) {
  const counter = counterOf(label);
  counter.runs += 1;
  const run = counter.runs;
  extra.signal.addEventListener('abort', () => (counter.cancelled += 1), { once: true });
  return run;
}

async function callTool(request, extra) {
  const label = String(request.params.arguments?.label ?? '');
  switch (request.params.name) {
    case 'side_effect': {
      const run = countRun(label, extra);
      const answer = await ask(extra, label, 1);
      return text(`${label}:${answer}:run${run}`);
    }
    case 'two_questions': {
      const run = countRun(label, extra);
      const a = await ask(extra, label, 1);
      const b = await ask(extra, label, 2);
      return text(`${label}:${a}+${b}:run${run}`);
    }
    case 'runs':
      return text(JSON.stringify(counterOf(label)));
    default:
      throw new McpError(ErrorCode.InvalidParams, `Tool ${request.params.name} not found`);
  }
}

function mcpServer() {
  const server = new Server(
    { name: 'counting-upstream', version: '1.0.0' },
    { capabilities: { tools: {} } },
  );
  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: TOOLS }));
  server.setRequestHandler(CallToolRequestSchema, callTool);
  return server;
}

// ---------------------------------------------------------------------------------------------
// Transports

function readBody(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

function refuse(res, status, message) {
  res
    .writeHead(status, { 'content-type': 'application/json' })
    .end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32000, message } }));
}

function serveHttp() {
  const sessions = new Map();
  const http = createServer(async (req, res) => {
    try {
      if ((req.url ?? '/').split('?')[0] !== '/mcp') {
        res.writeHead(404).end();
        return;
      }
      const sessionId = req.headers['mcp-session-id'];
      const session = typeof sessionId === 'string' ? sessions.get(sessionId) : undefined;
      if (req.method !== 'POST') {
        if (!session) {
          refuse(res, 400, 'Bad Request: No valid session ID provided');
          return;
        }
        await session.handleRequest(req, res);
        return;
      }
      const body = JSON.parse(await readBody(req));
      if (session) {
        await session.handleRequest(req, res, body);
        return;
      }
      if (sessionId !== undefined || !isInitializeRequest(body)) {
        refuse(res, sessionId === undefined ? 400 : 404, 'Bad Request: No valid session ID');
        return;
      }
      const opened = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => sessions.set(id, opened),
      });
      opened.onclose = () => {
        if (opened.sessionId !== undefined) {
          sessions.delete(opened.sessionId);
        }
      };
      await mcpServer().connect(opened);
      await opened.handleRequest(req, res, body);
    } catch (err) {
      if (!res.headersSent) {
        refuse(res, 500, String(err));
      } else {
        res.end();
      }
    }
  });
  http.listen(Number(option('port', process.env.PORT ?? 0)), '127.0.0.1', () => {
    process.stdout.write(`READY ${http.address().port}\n`);
  });
}

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
if (transport === 'http') {
  serveHttp();
} else {
  await mcpServer().connect(new StdioServerTransport());
}

// A scripted 2026-07-28 upstream with the tasks extension (io.modelcontextprotocol/tasks,
// SEP-2663), for federation tests that must see what reaches the upstream:
//   node libs/testing/fixtures-upstream/tasks-upstream.mjs [--port N]
// Plain node:http and JSON-RPC, no SDK, so every answer is exactly the wire the test expects:
// server/discover advertises `tools` and the extension, `initialize` is refused (-32601, HTTP
// 404) as a 2026-07-28-only server refuses it. Every result carries `resultType`. Prints
// `READY <port>` once listening on 127.0.0.1; the endpoint is POST /mcp.
//
// Tools (a call from a client that did not declare the extension is never a task: `hold`,
// `doomed`, `ask` and `late_ask` then answer -32021, `plain` and `ticks` answer as always):
//   plain   answers at once: "plain answer".
//   hold    a task that stays `working` (statusMessage "Holding until cancelled") until
//           tasks/cancel.
//   doomed  a task whose every tasks/get shows it `failed` with the error DOOMED_ERROR.
//   ask     a task that is `input_required` (inputRequests.approval, an elicitation) until a
//           tasks/update answers `approval`; then `completed` with "approved=<content.ok>".
//   late_ask {ms} a task that stays `working` (statusMessage "Working before asking") for `ms`
//           (default 2000) after its creation, then asks as `ask` does (the first tasks/get
//           after that shows it `input_required`).
//   ticks {n, ms} never a task: answers on an SSE stream, sending notifications/progress
//           (the request's _meta.progressToken; progress i of n, message "tick <i>") every
//           `ms` (default 200) for `n` ticks (default 5), then the result "ticked <n>".
//
// GET /stats answers what arrived: `calls` (each tools/call: name and whether it declared the
// extension), `tasks` (upstream task id → tool and status), `cancels` (the task ids of every
// tasks/cancel, in order), `updates` (each tasks/update: taskId and inputResponses).
import { createServer } from 'node:http';

const MODERN = '2026-07-28';
const EXTENSION = 'io.modelcontextprotocol/tasks';
const POLL_INTERVAL_MS = 100;
const TTL_MS = 600_000;
const DOOMED_ERROR = {
  code: -32603,
  message: 'The upstream job ran out of disk',
  data: { disk: 'full' },
};

const option = (name, fallback) => {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && process.argv[at + 1] !== undefined ? process.argv[at + 1] : fallback;
};

const stats = { calls: [], tasks: {}, cancels: [], updates: [] };
/** Upstream tasks by id: { taskId, tool, status, statusMessage?, createdAt, lastUpdatedAt, ... }. */
const tasks = new Map();
let nextTask = 1;

const TOOLS = [
  { name: 'plain', description: 'Answers at once.' },
  { name: 'hold', description: 'A task that runs until cancelled.' },
  { name: 'doomed', description: 'A task that fails.' },
  { name: 'ask', description: 'A task that asks for an approval.' },
  {
    name: 'late_ask',
    description: 'A task that asks for an approval after a while.',
    properties: { ms: { type: 'number' } },
  },
  {
    name: 'ticks',
    description: 'Reports progress, then answers.',
    properties: { n: { type: 'number' }, ms: { type: 'number' } },
  },
].map(({ properties, ...tool }) => ({
  ...tool,
  inputSchema: { type: 'object', properties: properties ?? {} },
}));

class RpcError extends Error {
  constructor(code, message, data) {
    super(message);
    this.code = code;
    this.data = data;
  }
}

const complete = (result) => ({ resultType: 'complete', ...result });
const text = (value) => ({ content: [{ type: 'text', text: value }] });

function taskFields(task) {
  return {
    taskId: task.taskId,
    status: task.status,
    createdAt: task.createdAt,
    lastUpdatedAt: task.lastUpdatedAt,
    ttlMs: TTL_MS,
    pollIntervalMs: POLL_INTERVAL_MS,
    ...(task.statusMessage !== undefined && { statusMessage: task.statusMessage }),
  };
}

function setStatus(task, status, statusMessage) {
  task.status = status;
  task.statusMessage = statusMessage;
  task.lastUpdatedAt = new Date().toISOString();
  stats.tasks[task.taskId] = { tool: task.tool, status };
}

function createTask(tool, status, statusMessage) {
  const now = new Date().toISOString();
  const task = { taskId: `upstream-task-${nextTask++}`, tool, createdAt: now, lastUpdatedAt: now };
  tasks.set(task.taskId, task);
  setStatus(task, status, statusMessage);
  return { resultType: 'task', ...taskFields(task) };
}

function declaresTasks(params) {
  const caps = params?._meta?.['io.modelcontextprotocol/clientCapabilities'];
  return typeof caps?.extensions?.[EXTENSION] === 'object' && caps.extensions[EXTENSION] !== null;
}

function taskOf(params) {
  const task = tasks.get(params?.taskId);
  if (!task) {
    throw new RpcError(-32602, 'Task not found');
  }
  return task;
}

function callTool(params) {
  const name = params?.name;
  const extension = declaresTasks(params);
  stats.calls.push({ name, extension });
  if (name === 'plain') {
    return complete(text('plain answer'));
  }
  if (!['hold', 'doomed', 'ask', 'late_ask'].includes(name)) {
    throw new RpcError(-32602, `Unknown tool: ${name}`);
  }
  if (!extension) {
    throw new RpcError(-32021, `Missing required client capability: extension ${EXTENSION}`, {
      requiredCapabilities: { extensions: { [EXTENSION]: {} } },
    });
  }
  switch (name) {
    case 'hold':
      return createTask(name, 'working', 'Holding until cancelled');
    case 'doomed':
      return createTask(name, 'working');
    case 'late_ask': {
      const created = createTask(name, 'working', 'Working before asking');
      const ms = params.arguments?.ms;
      tasks.get(created.taskId).askAt = Date.now() + (typeof ms === 'number' ? ms : 2000);
      return created;
    }
    default:
      return createTask(name, 'input_required', 'Waiting for an approval');
  }
}

function getTask(params) {
  const task = taskOf(params);
  if (task.tool === 'doomed' && task.status === 'working') {
    setStatus(task, 'failed', DOOMED_ERROR.message);
  }
  if (task.tool === 'late_ask' && task.status === 'working' && Date.now() >= task.askAt) {
    setStatus(task, 'input_required', 'Waiting for an approval');
  }
  const detailed = complete(taskFields(task));
  if (task.status === 'input_required') {
    detailed.inputRequests = {
      approval: {
        method: 'elicitation/create',
        params: {
          message: 'Approve the upstream job?',
          requestedSchema: {
            type: 'object',
            properties: { ok: { type: 'boolean' } },
            required: ['ok'],
          },
        },
      },
    };
  } else if (task.status === 'completed') {
    detailed.result = complete(task.result);
  } else if (task.status === 'failed') {
    detailed.error = DOOMED_ERROR;
  }
  return detailed;
}

function updateTask(params) {
  const task = taskOf(params);
  const inputResponses = params.inputResponses ?? {};
  stats.updates.push({ taskId: task.taskId, inputResponses });
  const approval = inputResponses.approval;
  if (task.status === 'input_required' && approval !== undefined) {
    task.result = text(`approved=${String(approval.content?.ok)}`);
    setStatus(task, 'completed');
  }
  return complete({});
}

function cancelTask(params) {
  const task = taskOf(params);
  stats.cancels.push(task.taskId);
  if (!['completed', 'failed', 'cancelled'].includes(task.status)) {
    setStatus(task, 'cancelled', 'Cancelled by the client');
  }
  return complete({});
}

function answer(method, params) {
  switch (method) {
    case 'server/discover':
      return complete({
        supportedVersions: [MODERN],
        capabilities: { tools: {}, extensions: { [EXTENSION]: {} } },
        ttlMs: 0,
        cacheScope: 'private',
      });
    case 'tools/list':
      return complete({ tools: TOOLS, ttlMs: 0, cacheScope: 'private' });
    case 'tools/call':
      return callTool(params);
    case 'tasks/get':
      return getTask(params);
    case 'tasks/update':
      return updateTask(params);
    case 'tasks/cancel':
      return cancelTask(params);
    default:
      throw new RpcError(-32601, `Method not found: ${method}`);
  }
}

const positive = (value, fallback) =>
  typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : fallback;

/** `ticks`: progress notifications on the request's SSE stream, then its result. */
function serveTicks(message, res) {
  const params = message.params ?? {};
  stats.calls.push({ name: 'ticks', extension: declaresTasks(params) });
  const n = Math.floor(positive(params.arguments?.n, 5));
  const ms = positive(params.arguments?.ms, 200);
  const token = params._meta?.progressToken;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const event = (body) => res.write(`event: message\ndata: ${JSON.stringify(body)}\n\n`);
  let tick = 0;
  const timer = setInterval(() => {
    if (tick >= n) {
      clearInterval(timer);
      event({ jsonrpc: '2.0', id: message.id, result: complete(text(`ticked ${n}`)) });
      res.end();
      return;
    }
    tick++;
    if (token !== undefined) {
      event({
        jsonrpc: '2.0',
        method: 'notifications/progress',
        params: { progressToken: token, progress: tick, total: n, message: `tick ${tick}` },
      });
    }
  }, ms);
  // The caller gave up (cancelled, timed out): no more ticks.
  res.on('close', () => clearInterval(timer));
}

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

function serveRpc(raw, res) {
  let message;
  try {
    message = JSON.parse(raw);
  } catch {
    send(res, 400, { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } });
    return;
  }
  if (typeof message?.method !== 'string' || message.id === undefined) {
    // A notification or a response: nothing to answer.
    res.writeHead(202).end();
    return;
  }
  if (message.method === 'initialize') {
    send(res, 404, {
      jsonrpc: '2.0',
      id: message.id,
      error: { code: -32601, message: 'Method not found: initialize' },
    });
    return;
  }
  if (message.method === 'tools/call' && message.params?.name === 'ticks') {
    serveTicks(message, res);
    return;
  }
  try {
    send(res, 200, {
      jsonrpc: '2.0',
      id: message.id,
      result: answer(message.method, message.params),
    });
  } catch (err) {
    const error =
      err instanceof RpcError
        ? {
            code: err.code,
            message: err.message,
            ...(err.data !== undefined && { data: err.data }),
          }
        : { code: -32603, message: 'Internal error' };
    send(res, 200, { jsonrpc: '2.0', id: message.id, error });
  }
}

const server = createServer((req, res) => {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method === 'GET' && path === '/stats') {
    send(res, 200, stats);
    return;
  }
  if (path !== '/mcp') {
    res.writeHead(404).end();
    return;
  }
  if (req.method !== 'POST') {
    res.writeHead(405, { allow: 'POST' }).end();
    return;
  }
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => serveRpc(Buffer.concat(chunks).toString('utf8'), res));
  req.on('error', () => res.destroy());
});

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
server.listen(Number(option('port', process.env.PORT ?? 0)), '127.0.0.1', () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});

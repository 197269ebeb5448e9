/*
 * What test/tasks-sdk.e2e-spec.ts needs to drive tasks with the official SDK clients against
 * tenant endpoints: SDK v1 on a 2025-11-25 session and SDK v2 pinned to 2026-07-28 (declaring
 * the io.modelcontextprotocol/tasks extension), both with a tenant API key and an elicitation
 * handler that records what it was asked; a fetch that keeps every JSON-RPC answer the client
 * received (SDK v2 rejects a `resultType: "task"` answer, so the handle is read from there);
 * the 2026-07-28 task results as schemas for SDK v2's `client.request`; and waiting on a
 * condition.
 */
import {
  Client,
  fromJsonSchema,
  StreamableHTTPClientTransport,
} from '@modelcontextprotocol/client';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as V1Transport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { TASKS_EXTENSION } from '@portico/mcp-protocol';

/** Bound for every wait on a condition: generous, a healthy run never waits this long. */
export const WAIT_MS = 30_000;

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- asserted field by field

/** Polls `probe` until it holds; fails after `ms` naming `what`. */
export async function until(
  probe: () => Promise<boolean> | boolean,
  what: string | (() => string),
  ms = WAIT_MS,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) {
      throw new Error(`${typeof what === 'string' ? what : what()}: not within ${ms} ms`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Polls `read` until its value satisfies `wanted`; resolves to that value. */
export async function untilValue<T>(
  read: () => Promise<T>,
  wanted: (value: T) => boolean,
  what: string,
  ms = WAIT_MS,
): Promise<T> {
  let last: T | undefined;
  await until(
    async () => {
      last = await read();
      return wanted(last);
    },
    () => `${what} (last seen: ${JSON.stringify(last)})`,
    ms,
  );
  return last as T;
}

/** The error a promise rejects with; fails the test when it resolves. */
export async function rejectionOf(promise: Promise<unknown>): Promise<Json> {
  let value: unknown;
  try {
    value = await promise;
  } catch (error) {
    return error as Json;
  }
  throw new Error(`expected a rejection, got ${JSON.stringify(value)}`);
}

// ---------------------------------------------------------------------------------------
// What went over the wire

/** A JSON-RPC answer the client received, with the request it answered. */
export interface Answer {
  readonly method: string;
  readonly params: Json;
  readonly result?: Json;
  readonly error?: { code: number; message: string; data?: unknown };
}

function messagesOf(text: string): Json[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    const parsed = JSON.parse(trimmed) as Json | Json[];
    return Array.isArray(parsed) ? parsed : [parsed];
  }
  return trimmed
    .split('\n')
    .filter((line) => line.startsWith('data: {'))
    .map((line) => JSON.parse(line.slice(6)) as Json);
}

/**
 * A fetch for the SDK transports that keeps every JSON-RPC answer to the requests the client
 * POSTed (JSON or SSE), matched to its request by id, without changing what the client gets.
 */
export class AnswerLog {
  readonly answers: Answer[] = [];
  private waiters: { wanted: (a: Answer) => boolean; resolve: (a: Answer) => void }[] = [];

  readonly fetch = async (url: string | URL, init?: RequestInit): Promise<Response> => {
    const sent = typeof init?.body === 'string' ? safeMessages(init.body) : [];
    const requests = new Map(
      sent.filter((m) => m.method !== undefined && m.id !== undefined).map((m) => [m.id, m]),
    );
    const response = await fetch(url, init);
    const type = response.headers.get('content-type') ?? '';
    if (requests.size > 0 && /json|event-stream/.test(type)) {
      response
        .clone()
        .text()
        .then(
          (text) => {
            for (const message of safeMessages(text)) {
              const request = requests.get(message.id);
              if (request && ('result' in message || 'error' in message)) {
                this.add({
                  method: request.method,
                  params: request.params ?? {},
                  result: message.result,
                  error: message.error,
                });
              }
            }
          },
          () => undefined,
        );
    }
    return response;
  };

  /** The first answer satisfying `wanted` from the `from`th answer on (past or future). */
  next(wanted: (answer: Answer) => boolean, from = 0, ms = WAIT_MS): Promise<Answer> {
    const found = this.answers.slice(from).find(wanted);
    if (found) {
      return Promise.resolve(found);
    }
    return new Promise<Answer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no such answer within ${ms} ms`)), ms);
      this.waiters.push({
        wanted,
        resolve: (answer) => {
          clearTimeout(timer);
          resolve(answer);
        },
      });
    });
  }

  private add(answer: Answer): void {
    this.answers.push(answer);
    for (const waiter of [...this.waiters]) {
      if (waiter.wanted(answer)) {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        waiter.resolve(answer);
      }
    }
  }
}

function safeMessages(text: string): Json[] {
  try {
    return messagesOf(text);
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------------------------------
// Client-side answers

export type ElicitAnswer = { action: 'accept'; content: Json };

/**
 * How the client answers form elicitations, and what it was asked. It accepts, filling every
 * field the form asks for: booleans with true, numbers with 1, text with the answer `texts`
 * holds for the question (by its message), 'Ada' otherwise.
 */
export class Elicitations {
  texts: Record<string, string> = {};
  readonly asked: Json[] = [];

  respond(params: Json): ElicitAnswer {
    this.asked.push(params);
    const properties = (params.requestedSchema?.properties ?? {}) as Record<string, Json>;
    const content: Json = {};
    for (const [field, schema] of Object.entries(properties)) {
      content[field] =
        schema.type === 'boolean'
          ? true
          : schema.type === 'number' || schema.type === 'integer'
            ? 1
            : (this.texts[params.message as string] ?? 'Ada');
    }
    return { action: 'accept', content };
  }
}

// ---------------------------------------------------------------------------------------
// SDK v1 (@modelcontextprotocol/sdk), 2025-11-25 session

export interface V1TaskClient {
  readonly client: V1Client;
  readonly elicitations: Elicitations;
  close(): Promise<void>;
}

/** An SDK v1 client on a 2025-11-25 session of `url`, authenticated with `apiKey`. */
export async function connectV1(url: string, apiKey: string): Promise<V1TaskClient> {
  const elicitations = new Elicitations();
  const client = new V1Client(
    { name: 'e2e-tasks-v1', version: '1.0.0' },
    { capabilities: { elicitation: { form: {} } } },
  );
  client.setRequestHandler(ElicitRequestSchema, (request) =>
    elicitations.respond(request.params as Json),
  );
  const transport = new V1Transport(new URL(url), {
    requestInit: { headers: { authorization: `Bearer ${apiKey}` } },
  });
  await client.connect(transport);
  return { client, elicitations, close: () => client.close().catch(() => undefined) };
}

// ---------------------------------------------------------------------------------------
// SDK v2 (@modelcontextprotocol/client), 2026-07-28

export interface V2TaskClient {
  readonly client: Client;
  readonly elicitations: Elicitations;
  readonly wire: AnswerLog;
  close(): Promise<void>;
}

/**
 * An SDK v2 client pinned to 2026-07-28, declaring the tasks extension (its requests carry it
 * in the `_meta` envelope) and form elicitation, authenticated with `apiKey`.
 */
export async function connectV2(url: string, apiKey: string): Promise<V2TaskClient> {
  const elicitations = new Elicitations();
  const wire = new AnswerLog();
  const client = new Client(
    { name: 'e2e-tasks-v2', version: '1.0.0' },
    {
      capabilities: { elicitation: { form: {} }, extensions: { [TASKS_EXTENSION]: {} } },
      versionNegotiation: { mode: { pin: '2026-07-28' } },
    },
  );
  client.setRequestHandler('elicitation/create', (request) =>
    elicitations.respond(request.params as Json),
  );
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    fetch: wire.fetch,
    requestInit: { headers: { authorization: `Bearer ${apiKey}` } },
  });
  await client.connect(transport);
  return { client, elicitations, wire, close: () => client.close().catch(() => undefined) };
}

/** A task as 2026-07-28 `tasks/get` shows it (a DetailedTask). */
export interface DetailedTask {
  readonly taskId: string;
  readonly status: 'working' | 'input_required' | 'completed' | 'failed' | 'cancelled';
  readonly createdAt: string;
  readonly lastUpdatedAt: string;
  readonly ttlMs: number;
  readonly pollIntervalMs?: number;
  readonly statusMessage?: string;
  readonly inputRequests?: Record<string, { method: string; params: Json }>;
  readonly result?: Json;
  readonly error?: { code: number; message: string; data?: unknown };
}

/** DetailedTask as a schema for SDK v2's `client.request` (validated by the SDK). */
export const DetailedTaskSchema = fromJsonSchema<DetailedTask>({
  type: 'object',
  required: ['taskId', 'status', 'createdAt', 'lastUpdatedAt', 'ttlMs'],
  properties: {
    taskId: { type: 'string' },
    status: { enum: ['working', 'input_required', 'completed', 'failed', 'cancelled'] },
    createdAt: { type: 'string' },
    lastUpdatedAt: { type: 'string' },
    ttlMs: { type: 'integer' },
    pollIntervalMs: { type: 'integer' },
    statusMessage: { type: 'string' },
    inputRequests: {
      type: 'object',
      additionalProperties: {
        type: 'object',
        required: ['method', 'params'],
        properties: { method: { type: 'string' }, params: { type: 'object' } },
      },
    },
    result: { type: 'object' },
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'integer' }, message: { type: 'string' } },
    },
  },
});

/** The empty acknowledgement of `tasks/update` and `tasks/cancel` (2026-07-28). */
export const AckSchema = fromJsonSchema<Json>({ type: 'object' });

/*
 * Helpers for driving the official MCP SDK clients against the real gateway: a recording
 * fetch (what went over the wire, and with which response content type), a way to hold or
 * break individual HTTP exchanges, inboxes that wait for notifications, the client-side
 * answers (elicitation, sampling, roots) shared by SDK v1 and v2, and the construction of
 * either SDK's client (over Streamable HTTP here; test/support/sdk-suite.ts takes any transport).
 */
import {
  Client,
  StreamableHTTPClientTransport,
  type ClientOptions,
  type VersionNegotiationOptions,
} from '@modelcontextprotocol/client';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  StreamableHTTPClientTransport as V1Transport,
  type StreamableHTTPReconnectionOptions as V1ReconnectionOptions,
} from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
  PromptListChangedNotificationSchema,
  ResourceListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';

export const DEFAULT_WAIT_MS = 3000;

// ---------------------------------------------------------------------------------------
// Small async utilities

/** Rejects when `promise` has not settled within `ms`. */
export function within<T>(
  promise: Promise<T>,
  ms = DEFAULT_WAIT_MS,
  what = 'operation',
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/**
 * Marks a promise the test will await later as handled, so that if the test fails before
 * awaiting it, its rejection (e.g. "Connection closed" at teardown) cannot crash the worker.
 */
export function later<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

export interface Rejection {
  code: unknown;
  message: string;
  data: unknown;
  error: unknown;
}

/** Awaits a promise that must reject; fails the test when it resolves. */
export async function rejectionOf(promise: Promise<unknown>): Promise<Rejection> {
  let value: unknown;
  try {
    value = await promise;
  } catch (error) {
    const e = error as { code?: unknown; message?: unknown; data?: unknown };
    return { code: e.code, message: String(e.message ?? error), data: e.data, error };
  }
  throw new Error(`expected a rejection, got ${JSON.stringify(value)}`);
}

/** Collects items (notifications, log messages) and waits for the ones a test expects. */
export class Inbox<T> {
  readonly items: T[] = [];
  private waiters: { predicate: (item: T) => boolean; resolve: (item: T) => void }[] = [];

  readonly push = (item: T): void => {
    this.items.push(item);
    for (const waiter of [...this.waiters]) {
      if (waiter.predicate(item)) {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        waiter.resolve(item);
      }
    }
  };

  waitFor(predicate: (item: T) => boolean = () => true, ms = DEFAULT_WAIT_MS): Promise<T> {
    const found = this.items.find(predicate);
    if (found !== undefined) {
      return Promise.resolve(found);
    }
    return within(
      new Promise<T>((resolve) => this.waiters.push({ predicate, resolve })),
      ms,
      'waiting for a notification',
    );
  }

  clear(): void {
    this.items.length = 0;
  }
}

// ---------------------------------------------------------------------------------------
// The recording fetch

export type FetchLike = (url: string | URL, init?: RequestInit) => Promise<Response>;

interface RpcLike {
  id?: string | number | null;
  method?: string;
  params?: Record<string, unknown>;
  result?: unknown;
  error?: unknown;
}

/** One HTTP exchange as the client saw it (recorded when sent, completed on response). */
export interface Exchange {
  readonly seq: number;
  readonly httpMethod: string;
  /** The request URL, as the client gave it. */
  readonly url: string;
  readonly requestHeaders: Record<string, string>;
  /** The JSON-RPC messages of the request body (empty for GET and DELETE). */
  readonly messages: RpcLike[];
  status?: number;
  /** Media type of the response, without parameters. */
  contentType?: string;
  responseHeaders?: Record<string, string>;
  /** The parsed body of an application/json response. */
  json?: unknown;
  /** Set when fetch itself failed (aborted, network error). */
  error?: unknown;
}

/** The JSON-RPC request methods carried by an exchange. */
export function requestMethods(exchange: Exchange): string[] {
  return exchange.messages
    .filter((m) => m.method !== undefined && m.id !== undefined)
    .map((m) => m.method as string);
}

export function notificationMethods(exchange: Exchange): string[] {
  return exchange.messages
    .filter((m) => m.method !== undefined && m.id === undefined)
    .map((m) => m.method as string);
}

/** The JSON-RPC error of a recorded plain-JSON response, if it was one. */
export function wireError(
  exchange: Exchange | undefined,
): { code: number; message: string; data?: unknown } | undefined {
  const body = exchange?.json as { error?: { code: number; message: string; data?: unknown } };
  return body?.error;
}

export const carriesRequest =
  (method: string, name?: string) =>
  (exchange: Exchange): boolean =>
    exchange.messages.some(
      (m) =>
        m.method === method &&
        m.id !== undefined &&
        (name === undefined || m.params?.name === name || m.params?.uri === name),
    );

interface Hold {
  predicate: (exchange: Exchange) => boolean;
  hit: (exchange: Exchange) => void;
  released: Promise<void>;
}

export interface HeldExchange {
  /** Resolves with the exchange once a matching request has been held (wrap it in `within`). */
  readonly hit: Promise<Exchange>;
  /** Lets the held request through. */
  release(): void;
}

type ResponseTransform = (exchange: Exchange, response: Response) => Response;

/**
 * A fetch for the SDK transports that records every exchange, can hold matching requests
 * until released, and can rewrite responses (to simulate a dropped stream).
 */
export class HttpRecorder {
  readonly exchanges: Exchange[] = [];
  private holds: Hold[] = [];
  private transforms: ResponseTransform[] = [];
  private waiters: { predicate: (e: Exchange) => boolean; resolve: (e: Exchange) => void }[] = [];
  private seq = 0;

  constructor(private readonly base: FetchLike = (url, init) => fetch(url, init)) {}

  readonly fetch: FetchLike = async (url, init) => {
    const exchange: Exchange = {
      seq: this.seq++,
      httpMethod: (init?.method ?? 'GET').toUpperCase(),
      url: String(url),
      requestHeaders: headerRecord(init?.headers),
      messages: parseMessages(init?.body),
    };
    this.exchanges.push(exchange);
    const hold = this.holds.find((h) => h.predicate(exchange));
    if (hold) {
      this.holds = this.holds.filter((h) => h !== hold);
      hold.hit(exchange);
      await hold.released;
    }
    let response: Response;
    try {
      response = await this.base(url, init);
    } catch (error) {
      exchange.error = error;
      this.settle(exchange);
      throw error;
    }
    exchange.status = response.status;
    exchange.contentType = (response.headers.get('content-type') ?? '').split(';')[0].trim();
    exchange.responseHeaders = headerRecord(response.headers);
    if (exchange.contentType === 'application/json') {
      exchange.json = await response
        .clone()
        .json()
        .catch(() => undefined);
    }
    this.settle(exchange);
    for (const transform of this.transforms) {
      response = transform(exchange, response);
    }
    return response;
  };

  /** Holds the next request matching `predicate` until `release()`. */
  hold(predicate: (exchange: Exchange) => boolean): HeldExchange {
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let hit!: (exchange: Exchange) => void;
    const hitPromise = new Promise<Exchange>((resolve) => {
      hit = resolve;
    });
    this.holds.push({ predicate, hit, released });
    return { hit: hitPromise, release };
  }

  /** Rewrites responses (applied to every later response; return it unchanged to pass). */
  transformResponses(transform: ResponseTransform): void {
    this.transforms.push(transform);
  }

  /**
   * Resolves with the first exchange (past or future) matching `predicate` once it got its
   * response headers (or failed).
   */
  waitFor(predicate: (exchange: Exchange) => boolean, ms = DEFAULT_WAIT_MS): Promise<Exchange> {
    const found = this.exchanges.find((e) => settled(e) && predicate(e));
    if (found) {
      return Promise.resolve(found);
    }
    return within(
      new Promise<Exchange>((resolve) => this.waiters.push({ predicate, resolve })),
      ms,
      'waiting for an HTTP exchange',
    );
  }

  /** Exchanges that carried a request of `method` (optionally for tool/prompt name or URI). */
  requestsOf(method: string, name?: string): Exchange[] {
    return this.exchanges.filter(carriesRequest(method, name));
  }

  private settle(exchange: Exchange): void {
    for (const waiter of [...this.waiters]) {
      if (waiter.predicate(exchange)) {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        waiter.resolve(exchange);
      }
    }
  }
}

function settled(exchange: Exchange): boolean {
  return exchange.status !== undefined || exchange.error !== undefined;
}

function headerRecord(
  headers: ConstructorParameters<typeof Headers>[0] | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  if (!headers) {
    return out;
  }
  new Headers(headers).forEach((value, key) => {
    out[key.toLowerCase()] = value;
  });
  return out;
}

function parseMessages(body: unknown): RpcLike[] {
  if (typeof body !== 'string') {
    return [];
  }
  try {
    const parsed = JSON.parse(body) as RpcLike | RpcLike[];
    return Array.isArray(parsed) ? parsed : [parsed];
  } catch {
    return [];
  }
}

/**
 * Returns `response` with a body that passes through everything up to and including the first
 * chunk containing `marker`; once `trigger` resolves (e.g. when the client has processed that
 * event), the body fails as a dropped connection would, and the real body is cancelled so the
 * server sees the client go away. Erroring earlier would discard chunks still queued in the
 * client's decoding pipeline.
 */
export function dropStreamAfter(
  response: Response,
  marker: string,
  trigger: Promise<unknown>,
  onDrop: () => void,
): Response {
  const source = response.body;
  if (!source) {
    return response;
  }
  const reader = source.getReader();
  const decoder = new TextDecoder();
  let seen = '';
  let markerPassed = false;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (markerPassed) {
        await trigger;
        await reader.cancel('simulated network drop').catch(() => undefined);
        controller.error(new TypeError('terminated: simulated network drop'));
        onDrop();
        return;
      }
      const { value, done } = await reader.read();
      if (done) {
        controller.close();
        return;
      }
      controller.enqueue(value);
      seen += decoder.decode(value, { stream: true });
      if (seen.includes(marker)) {
        markerPassed = true;
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  return new Response(body, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
}

/**
 * Returns `response` with its SSE body re-cut so that each event is its own chunk, the way a
 * browser's EventSource dispatches each event as its own task. The `eventsource` package (SDK
 * v1's SSEClientTransport) dispatches every event of a network chunk synchronously, while the
 * SDK settles a response synchronously and runs notification handlers a microtask later: a
 * notifications/progress sharing a chunk with its response would find its handler gone.
 */
export function oneEventPerChunk(response: Response): Response {
  if (!response.body) {
    return response;
  }
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  let pending = '';
  const split = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      pending += decoder.decode(chunk, { stream: true });
      const events = pending.split(/(?<=\r?\n\r?\n)/);
      pending = events.pop() ?? '';
      if (/\r?\n\r?\n$/.test(pending)) {
        events.push(pending);
        pending = '';
      }
      for (const event of events) {
        controller.enqueue(encoder.encode(event));
      }
    },
    flush(controller) {
      if (pending !== '') {
        controller.enqueue(encoder.encode(pending));
      }
    },
  });
  return new Response(response.body.pipeThrough(split), {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
}

// ---------------------------------------------------------------------------------------
// Client-side answers to server requests (both SDKs, both eras)

export type ElicitAnswer = {
  action: 'accept' | 'decline' | 'cancel';
  content?: Record<string, string | number | boolean>;
};

export const ROOTS = [
  { uri: 'file:///workspace/app', name: 'app' },
  { uri: 'file:///workspace/lib', name: 'lib' },
];

export const SAMPLED_TEXT = 'four';
export const SAMPLING_MODEL = 'e2e-model';

/** What the client answers when the server asks, and what it was asked. */
export class ClientAnswers {
  elicitation: ElicitAnswer = { action: 'accept', content: { name: 'Ada' } };
  readonly elicitations: Record<string, unknown>[] = [];
  readonly samplings: Record<string, unknown>[] = [];
  rootsListed = 0;

  elicit(params: Record<string, unknown>): ElicitAnswer {
    this.elicitations.push(params);
    return this.elicitation;
  }

  sample(params: Record<string, unknown>): {
    model: string;
    role: 'assistant';
    content: { type: 'text'; text: string };
    stopReason: string;
  } {
    this.samplings.push(params);
    return {
      model: SAMPLING_MODEL,
      role: 'assistant',
      content: { type: 'text', text: SAMPLED_TEXT },
      stopReason: 'endTurn',
    };
  }

  roots(): { roots: { uri: string; name: string }[] } {
    this.rootsListed++;
    return { roots: ROOTS };
  }

  reset(): void {
    this.elicitation = { action: 'accept', content: { name: 'Ada' } };
    this.elicitations.length = 0;
    this.samplings.length = 0;
    this.rootsListed = 0;
  }
}

export const CLIENT_CAPABILITIES = {
  elicitation: { form: {} },
  sampling: {},
  roots: { listChanged: true },
};

// ---------------------------------------------------------------------------------------
// Unsolicited notifications a client receives

export interface LogMessage {
  level: string;
  data: unknown;
  logger?: string;
}

export const LIST_CHANGED = [
  'notifications/tools/list_changed',
  'notifications/prompts/list_changed',
  'notifications/resources/list_changed',
] as const;

/** Log messages, resource updates and list changes, as the client's handlers saw them. */
export class ClientEvents {
  readonly logs = new Inbox<LogMessage>();
  readonly updates = new Inbox<string>();
  readonly listChanges = new Inbox<string>();

  clear(): void {
    this.logs.clear();
    this.updates.clear();
    this.listChanges.clear();
  }
}

/** Watches a transport's messages; attached before connect (see WireTap in ./stdio). */
export interface TransportObserver {
  attach(transport: object): void;
}

/** What every SDK client built here may be given. */
export interface ClientHooks<C> {
  answers?: ClientAnswers;
  events?: ClientEvents;
  /** Defaults to CLIENT_CAPABILITIES (elicitation, sampling, roots). */
  capabilities?: typeof CLIENT_CAPABILITIES | Record<string, never>;
  /** Attached to the transport before connect (connectV1, connectV2). */
  tap?: TransportObserver;
  /** Runs after construction, before connect (register more handlers here). */
  setup?: (client: C) => void;
}

// ---------------------------------------------------------------------------------------
// SDK v2 (@modelcontextprotocol/client)

export type V2Mode = 'modern' | 'legacy' | 'auto';

/**
 * How SDK v2 selects the protocol era: `ClientOptions.versionNegotiation.mode`.
 * `'legacy'` (the default) runs the 2025 initialize handshake; `{ pin: '2026-07-28' }` speaks
 * only the stateless revision; `'auto'` probes with server/discover and falls back.
 */
export const V2_NEGOTIATION: Record<V2Mode, VersionNegotiationOptions> = {
  modern: { mode: { pin: '2026-07-28' } },
  legacy: { mode: 'legacy' },
  auto: { mode: 'auto' },
};

export interface V2Connection {
  client: Client;
  transport: StreamableHTTPClientTransport;
  recorder: HttpRecorder;
}

export interface V2ConnectOptions extends ClientHooks<Client> {
  recorder?: HttpRecorder;
  clientOptions?: Omit<ClientOptions, 'versionNegotiation' | 'capabilities'>;
}

/** An SDK v2 client in `mode` with the answers and event handlers it was given. */
export function createV2Client(mode: V2Mode, options: V2ConnectOptions = {}): Client {
  const client = new Client(
    { name: `e2e-v2-${mode}`, version: '1.0.0' },
    {
      ...options.clientOptions,
      capabilities: options.capabilities ?? CLIENT_CAPABILITIES,
      versionNegotiation: V2_NEGOTIATION[mode],
    },
  );
  const { answers, events } = options;
  if (answers) {
    client.setRequestHandler('elicitation/create', (request) =>
      answers.elicit(request.params as Record<string, unknown>),
    );
    client.setRequestHandler('sampling/createMessage', (request) =>
      answers.sample(request.params as Record<string, unknown>),
    );
    client.setRequestHandler('roots/list', () => answers.roots());
  }
  if (events) {
    client.setNotificationHandler('notifications/message', (n) => events.logs.push(n.params));
    client.setNotificationHandler('notifications/resources/updated', (n) =>
      events.updates.push(n.params.uri),
    );
    for (const method of LIST_CHANGED) {
      client.setNotificationHandler(method, () => events.listChanges.push(method));
    }
  }
  options.setup?.(client);
  return client;
}

export async function connectV2(
  url: string,
  mode: V2Mode,
  options: V2ConnectOptions = {},
): Promise<V2Connection> {
  const recorder = options.recorder ?? new HttpRecorder();
  const client = createV2Client(mode, options);
  const transport = new StreamableHTTPClientTransport(new URL(url), { fetch: recorder.fetch });
  options.tap?.attach(transport);
  await client.connect(transport);
  return { client, transport, recorder };
}

// ---------------------------------------------------------------------------------------
// SDK v1 (@modelcontextprotocol/sdk)

export interface V1Connection {
  client: V1Client;
  transport: V1Transport;
  recorder: HttpRecorder;
}

export interface V1ConnectOptions extends ClientHooks<V1Client> {
  recorder?: HttpRecorder;
  reconnectionOptions?: V1ReconnectionOptions;
}

/** An SDK v1 client with the answers and event handlers it was given. */
export function createV1Client(options: ClientHooks<V1Client> = {}): V1Client {
  const client = new V1Client(
    { name: 'e2e-v1', version: '1.0.0' },
    { capabilities: options.capabilities ?? CLIENT_CAPABILITIES },
  );
  const { answers, events } = options;
  if (answers) {
    client.setRequestHandler(ElicitRequestSchema, (request) =>
      answers.elicit(request.params as Record<string, unknown>),
    );
    client.setRequestHandler(CreateMessageRequestSchema, (request) =>
      answers.sample(request.params as Record<string, unknown>),
    );
    client.setRequestHandler(ListRootsRequestSchema, () => answers.roots());
  }
  if (events) {
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) =>
      events.logs.push(n.params),
    );
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) =>
      events.updates.push(n.params.uri),
    );
    const listChanged = [
      ToolListChangedNotificationSchema,
      PromptListChangedNotificationSchema,
      ResourceListChangedNotificationSchema,
    ] as const;
    for (const schema of listChanged) {
      client.setNotificationHandler(schema, (n: { method: string }) =>
        events.listChanges.push(n.method),
      );
    }
  }
  options.setup?.(client);
  return client;
}

export async function connectV1(
  url: string,
  options: V1ConnectOptions = {},
): Promise<V1Connection> {
  const recorder = options.recorder ?? new HttpRecorder();
  const client = createV1Client(options);
  const transport = new V1Transport(new URL(url), {
    fetch: recorder.fetch,
    ...(options.reconnectionOptions ? { reconnectionOptions: options.reconnectionOptions } : {}),
  });
  options.tap?.attach(transport);
  await client.connect(transport);
  return { client, transport, recorder };
}

/** Closes clients, ignoring the errors a client that already went away may raise. */
export async function closeAll(
  ...clients: ({ close(): Promise<void> } | undefined)[]
): Promise<void> {
  await Promise.all(clients.map((c) => (c ? c.close().catch(() => undefined) : Promise.resolve())));
}

/** Follows `nextCursor` through every page; returns the pages in order. */
export async function walkPages<P extends { nextCursor?: string }>(
  fetchPage: (cursor: string | undefined) => Promise<P>,
  maxPages = 50,
): Promise<P[]> {
  const pages: P[] = [];
  let cursor: string | undefined;
  do {
    const page = await fetchPage(cursor);
    pages.push(page);
    cursor = page.nextCursor;
    if (pages.length > maxPages) {
      throw new Error(`pagination did not end within ${maxPages} pages`);
    }
  } while (cursor !== undefined);
  return pages;
}

/**
 * A fetch that answers `server/discover` the way a 2025-only Streamable HTTP server does
 * (HTTP 400, "Server not initialized": there is no session yet) and passes everything else to
 * the real gateway. Lets SDK v2's 'auto' mode exercise its fallback against the real gateway.
 */
export const legacyOnlyFetch: FetchLike = async (url, init) => {
  if (parseMessages(init?.body).some((m) => m.method === 'server/discover')) {
    return new Response(
      JSON.stringify({
        jsonrpc: '2.0',
        id: null,
        error: { code: -32000, message: 'Bad Request: Server not initialized' },
      }),
      { status: 400, headers: { 'content-type': 'application/json' } },
    );
  }
  return fetch(url, init);
};

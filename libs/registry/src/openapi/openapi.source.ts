import { Logger } from '@nestjs/common';
import type { Span } from '@opentelemetry/api';
import {
  BackendUnavailableError,
  CallToolResult,
  CatalogListener,
  ErrorCode,
  JsonObject,
  McpError,
  PromptHandler,
  RequestContext,
  ResourceHandler,
  ResourceTemplateHandler,
  StaticCatalog,
  ToolHandler,
} from '@portico/mcp-protocol';
import {
  SpanAttr,
  type BackendMetrics,
  type BackendOutcome,
  type BreakerState,
  type GatewayMetrics,
  type ReplicatedBackendMetrics,
  type Tracing,
} from '@portico/observability';
import type { BackendContext, BackendSource } from '../upstream/backend-source';
import { assertReachableTarget, TargetRefusedError } from '../upstream/target-guard';
import { NameMap } from '../upstream/upstream-names';
import { Replica, ReplicaSet, replicaName } from '../upstream/replica-set';
import {
  executeAlone,
  policyRefusal,
  refusedByPolicy,
  UncountedFailure,
  UpstreamResilience,
  type UpstreamPolicy,
} from '../upstream/upstream-resilience';
import { traceUpstream, type UpstreamPeer } from '../upstream/upstream-tracing';
import { parseOpenApiDocument, type OpenApiDocument, type OpenApiServer } from './openapi-document';
import { readOperations, type OperationPlan } from './openapi-operations';
import {
  ArgumentError,
  buildRequest,
  errorResult,
  toToolResult,
  type HttpAnswer,
  type PreparedRequest,
} from './openapi-request';
import { OPENAPI_DEFAULTS, openApiSettings, type OpenApiSettings } from './openapi-settings';

const MAX_REDIRECTS = 5;
const DOCUMENT_ACCEPT = 'application/json, application/yaml;q=0.9, text/yaml;q=0.9, */*;q=0.5';

/** A response body over the size limit (the rest of it is not read). */
class TooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`the response exceeds ${limit} bytes`);
    this.name = 'TooLargeError';
  }
}

/** A 5xx answer: counted by the breaker, then returned to the caller as a tool error. */
class ServerFailure extends Error {
  constructor(readonly result: CallToolResult) {
    super('server error');
    this.name = 'ServerFailure';
  }
}

/** A request that did not reach the service or came back with no HTTP answer. */
class UnreachableError extends BackendUnavailableError {
  constructor(
    message: string,
    /** Whether the request may have reached the service (false: refused before it was sent). */
    readonly sent: boolean,
  ) {
    super(message);
    this.name = 'UnreachableError';
  }
}

/** HTTP methods a request may be repeated with on another replica (RFC 9110 §9.2.2). */
const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set([
  'GET',
  'HEAD',
  'PUT',
  'DELETE',
  'OPTIONS',
]);

/**
 * One base URL the API is served at, with its own policies (breaker, bulkhead) and its share
 * of the backend's series. A backend without replicas has one; each replica adds one.
 */
class RestEndpoint {
  readonly resilience: UpstreamResilience;
  /** The replica set's hooks: a request that could not reach it, its circuit opening. */
  onUnreachable?: (reason: string) => void;
  onCircuit?: (state: BreakerState) => void;
  private readonly stopWatchingCircuit: () => void;

  constructor(
    settings: OpenApiSettings,
    readonly metrics: BackendMetrics | undefined,
    /** Known once the document is read, for the first endpoint (its servers, or baseUrl). */
    public baseUrl?: URL,
  ) {
    this.resilience = new UpstreamResilience(settings);
    const watch = this.resilience.onCircuitChange((state) => {
      this.metrics?.circuit(state);
      this.onCircuit?.(state);
    });
    this.stopWatchingCircuit = () => watch.dispose();
  }

  close(): void {
    this.stopWatchingCircuit();
    this.metrics?.remove();
  }
}

/**
 * A REST service described by an OpenAPI 3.x document, as a catalog source: one tool per
 * operation (namespaced like upstream MCP tools). The document is fetched when the catalog is
 * built, so the tool list is fixed until the tenant's catalog is rebuilt. Calls go through the
 * backend's resilience policies; 5xx answers and network failures count toward its breaker.
 *
 * With settings.replicas, the API is served at several base URLs (the document's or baseUrl,
 * then the replicas), each with its own policies; each call goes to one in rotation, chosen by
 * settings.loadBalancing. A replica leaves rotation when a request cannot reach it, when its
 * circuit opens or when its health checks fail (see RestHealthCheckSettings), and comes back
 * after healthyAfter good probes. A request that could not reach its replica goes to another
 * when it was never sent, or when its HTTP method is idempotent.
 */
export class OpenApiSource implements BackendSource {
  private readonly logger = new Logger(OpenApiSource.name);
  private readonly label: string;
  /** The first base URL's: the document is fetched with its policies too. */
  private readonly primary: RestEndpoint;
  private readonly replicated?: ReplicatedBackendMetrics;
  /** The base URLs in rotation, when the backend has replicas. */
  private replicas?: ReplicaSet<RestEndpoint>;
  private readonly fetch: typeof fetch;
  private readonly peer: UpstreamPeer;
  /** The tools, fixed once built. */
  private catalog = new StaticCatalog();
  private closed = false;

  private constructor(
    private readonly context: BackendContext,
    private readonly settings: OpenApiSettings,
    private readonly documentUrl: URL,
    metrics?: GatewayMetrics,
    private readonly tracing?: Tracing,
  ) {
    this.label = `Backend ${context.backend.name}`;
    const { tenantSlug, backend } = context;
    if (settings.replicaUrls.length > 0) {
      const count = settings.replicaUrls.length + 1;
      this.replicated = metrics?.replicatedBackend(tenantSlug, backend.name, count);
      this.primary = new RestEndpoint(settings, this.replicated?.replica(0));
    } else {
      this.primary = new RestEndpoint(settings, metrics?.backend(tenantSlug, backend.name));
    }
    this.fetch = fetch;
    this.peer = { tenant: context.tenantSlug, backend: context.backend.name, url: documentUrl };
  }

  /**
   * Fetches and reads the document and builds the tools; throws when the settings are invalid,
   * the document's URL is refused or unreachable, or the document cannot be used.
   */
  static async connect(
    context: BackendContext,
    metrics?: GatewayMetrics,
    tracing?: Tracing,
  ): Promise<OpenApiSource> {
    const name = context.backend.name;
    let documentUrl: URL;
    try {
      documentUrl = new URL(context.backend.target);
    } catch {
      throw new Error(`Backend ${name}: target is not a URL`);
    }
    const settings = openApiSettings(context.backend);
    await assertReachableTarget(documentUrl, settings.internal);
    for (const [index, url] of settings.replicaUrls.entries()) {
      await assertReachableTarget(url, settings.internal).catch((err: unknown) => {
        // A name that does not resolve (yet) is an outage; a refused address is not.
        if (err instanceof TargetRefusedError) {
          throw new TargetRefusedError(`${name}: settings.replicas[${index}]: ${err.message}`);
        }
      });
    }
    if (settings.auth) {
      // Only whether the credential exists: its value stays unread until a call.
      credentialFor(settings, context.credentials(), name);
    }
    const source = new OpenApiSource(
      context,
      settings,
      documentUrl,
      metrics,
      tracing?.enabled ? tracing : undefined,
    );
    try {
      await source.load();
      await source.replicate();
    } catch (err) {
      await source.close();
      throw err;
    }
    return source;
  }

  listTools(): readonly ToolHandler[] {
    return this.catalog.listTools();
  }
  getTool(name: string): ToolHandler | undefined {
    return this.catalog.getTool(name);
  }
  listResources(): readonly ResourceHandler[] {
    return [];
  }
  getResource(): ResourceHandler | undefined {
    return undefined;
  }
  listResourceTemplates(): readonly ResourceTemplateHandler[] {
    return [];
  }
  listPrompts(): readonly PromptHandler[] {
    return [];
  }
  getPrompt(): PromptHandler | undefined {
    return undefined;
  }
  /** The tools never change while the source lives: nothing to report. */
  watch(_listener: CatalogListener): () => void {
    return () => undefined;
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.replicas?.close();
      for (const replica of this.replicas?.replicas ?? []) {
        replica.member?.close();
      }
      this.primary.close();
      this.replicated?.remove();
    }
    return Promise.resolve();
  }

  // ---------------------------------------------------------------------------------------
  // Building

  private async load(): Promise<void> {
    const text = await this.fetchDocument();
    let document: OpenApiDocument;
    let plans: OperationPlan[];
    try {
      document = parseOpenApiDocument(text);
      const { operations, skipped } = readOperations(document, this.settings.operations);
      plans = operations;
      for (const skip of skipped) {
        this.logger.warn(`${this.label}: operation ${skip.key} left out: ${skip.reason}`);
      }
    } catch (err) {
      throw new Error(`${this.label}: cannot use its OpenAPI document: ${describe(err)}`);
    }
    const missing = (this.settings.operations ?? []).filter(
      (key) => !plans.some((plan) => plan.key === key),
    );
    if (missing.length > 0) {
      this.logger.warn(
        `${this.label}: settings.operations names operations the document does not have ` +
          `(or that were left out): ${missing.join(', ')}`,
      );
    }
    const baseUrl = this.settings.baseUrl ?? serverUrl(document, this.documentUrl);
    this.primary.baseUrl = baseUrl;
    if (baseUrl.protocol !== 'http:' && baseUrl.protocol !== 'https:') {
      throw new Error(`${this.label}: the API's base URL is not http(s): set settings.baseUrl`);
    }
    const names = new NameMap(this.settings);
    const tools: ToolHandler[] = [];
    for (const plan of plans) {
      const exposed = names.add(plan.key);
      if (exposed === undefined) {
        this.logger.warn(`${this.label}: operation ${plan.key} left out: its tool name is taken`);
        continue;
      }
      tools.push(this.toolHandler(plan, exposed));
    }
    this.catalog = new StaticCatalog({ tools });
  }

  /**
   * With replicas: every base URL is probed once, and those that answer are in rotation; none
   * answering fails the backend like an unreachable target. Then the health checks start.
   */
  private async replicate(): Promise<void> {
    if (this.settings.replicaUrls.length === 0) {
      return;
    }
    const endpoints = [
      this.primary,
      ...this.settings.replicaUrls.map(
        (url, index) => new RestEndpoint(this.settings, this.replicated?.replica(index + 1), url),
      ),
    ];
    const set = new ReplicaSet<RestEndpoint>(
      endpoints.map((endpoint, index) => {
        const replica = new Replica<RestEndpoint>(index, replicaName(endpoint.baseUrl!.href));
        replica.member = endpoint;
        return replica;
      }),
      {
        label: this.label,
        loadBalancing: this.settings.loadBalancing,
        healthCheck: this.settings.healthCheck,
        probe: (replica) => this.probe(replica.member!),
        onChange: (replica) => this.replicated?.health(replica.index, replica.up),
      },
    );
    this.replicas = set;
    for (const replica of set.replicas) {
      const endpoint = replica.member!;
      endpoint.onUnreachable = (reason) => set.markDown(replica, reason);
      endpoint.onCircuit = (state) => {
        if (state === 'open') {
          set.markDown(replica, 'its circuit opened', this.settings.breakerResetMs);
        }
      };
    }
    const failures = await Promise.all(
      set.replicas.map((replica) =>
        this.probe(replica.member!).then(
          () => {
            set.admit(replica);
            return undefined;
          },
          (err: unknown) => `replica ${replica.index}: ${describe(err)}`,
        ),
      ),
    );
    if (set.healthy().length === 0) {
      throw new Error(`${this.label}: no replica could be reached (${failures.join('; ')})`);
    }
    set.start();
  }

  /**
   * One health probe of a base URL, with the backend's credential: GET of
   * healthCheck.path, expecting 2xx; without a path, HEAD of the base URL, any answer.
   */
  private async probe(endpoint: RestEndpoint): Promise<void> {
    const { path, timeoutMs } = this.settings.healthCheck;
    const base = endpoint.baseUrl!;
    const url = path
      ? new URL(path.replace(/^\/+/, ''), base.href.endsWith('/') ? base : `${base.href}/`)
      : base;
    const request: PreparedRequest = {
      method: path ? 'GET' : 'HEAD',
      url,
      headers: new Headers({ accept: '*/*' }),
    };
    this.authenticate(request);
    await assertReachableTarget(request.url, this.settings.internal);
    let response: Response;
    try {
      response = await this.fetch(request.url, {
        method: request.method,
        headers: request.headers,
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw new Error(`health check failed: ${describe(err)}`);
    }
    await response.body?.cancel();
    if (path && (response.status < 200 || response.status >= 300)) {
      throw new Error(`health check answered HTTP ${response.status}`);
    }
  }

  /** The document's text; redirects are followed, each hop through the SSRF guard. */
  private fetchDocument(): Promise<string> {
    return this.run(this.primary, this.primary.resilience.list, async (signal) => {
      let url = this.documentUrl;
      for (let hop = 0; ; hop++) {
        await assertReachableTarget(url, this.settings.internal);
        const response = await this.fetch(url, {
          headers: { accept: DOCUMENT_ACCEPT },
          redirect: 'manual',
          signal,
        });
        const location = response.headers.get('location');
        if (response.status >= 300 && response.status < 400 && location) {
          await response.body?.cancel();
          if (hop >= MAX_REDIRECTS) {
            throw new Error(`more than ${MAX_REDIRECTS} redirects`);
          }
          url = new URL(location, url);
          continue;
        }
        if (!response.ok) {
          await response.body?.cancel();
          throw new Error(`the document request answered HTTP ${response.status}`);
        }
        const body = await readBody(response, OPENAPI_DEFAULTS.maxDocumentBytes);
        return body.toString('utf8');
      }
    }).catch((err: unknown) => {
      throw err instanceof McpError
        ? new Error(`${this.label}: cannot load its OpenAPI document: ${err.message}`)
        : err;
    });
  }

  // ---------------------------------------------------------------------------------------
  // Calls

  private toolHandler(plan: OperationPlan, exposed: string): ToolHandler {
    return {
      definition: { ...plan.tool, name: exposed },
      call: (args: JsonObject, ctx: RequestContext) => this.call(plan, args, ctx),
    };
  }

  private call(
    plan: OperationPlan,
    args: JsonObject,
    ctx: RequestContext,
  ): Promise<CallToolResult> {
    if (!this.replicas) {
      return this.callAt(this.primary, plan, args, ctx);
    }
    const repeatable = IDEMPOTENT_METHODS.has(plan.method.toUpperCase());
    return this.replicas.run(
      (replica) => this.callAt(replica.member!, plan, args, ctx),
      (err) => err instanceof UnreachableError && (!err.sent || repeatable),
    );
  }

  /** One call of `plan` at one base URL. */
  private async callAt(
    endpoint: RestEndpoint,
    plan: OperationPlan,
    args: JsonObject,
    ctx: RequestContext,
  ): Promise<CallToolResult> {
    let request: PreparedRequest;
    try {
      request = buildRequest(plan, args, endpoint.baseUrl!);
    } catch (err) {
      if (err instanceof ArgumentError) {
        return errorResult(`Invalid arguments for tool ${plan.key}: ${err.message}`);
      }
      throw err;
    }
    this.authenticate(request);
    const peer = { ...this.peer, url: request.url };
    return traceUpstream(
      this.tracing,
      peer,
      'tools/call',
      plan.key,
      ctx.trace,
      (carrier, span) => {
        // The request continues the call's trace at the service (W3C traceparent).
        for (const name in carrier) {
          request.headers.set(name, carrier[name]);
        }
        return this.send(endpoint, request, plan, ctx.signal, span);
      },
      { [SpanAttr.httpMethod]: request.method, 'url.template': plan.path },
    );
  }

  /** Adds the backend's credential as configured; decrypted now, never logged or kept. */
  private authenticate(request: PreparedRequest): void {
    const auth = this.settings.auth;
    if (!auth) {
      return;
    }
    const value = credentialFor(this.settings, this.context.credentials(), this.label);
    try {
      switch (auth.type) {
        case 'bearer':
          request.headers.set('authorization', `Bearer ${value}`);
          break;
        case 'header':
          request.headers.set(auth.name!, value);
          break;
        case 'query':
          request.url.searchParams.set(auth.name!, value);
          break;
      }
    } catch {
      // The Headers error could quote the value.
      throw new McpError(
        ErrorCode.InternalError,
        `${this.label}: its credential is not a valid HTTP header value`,
      );
    }
  }

  private async send(
    endpoint: RestEndpoint,
    request: PreparedRequest,
    plan: OperationPlan,
    callerSignal: AbortSignal,
    span?: Span,
  ): Promise<CallToolResult> {
    try {
      return await this.run(
        endpoint,
        endpoint.resilience.call,
        async (signal) => {
          await assertReachableTarget(request.url, this.settings.internal);
          const response = await this.fetch(request.url, {
            method: request.method,
            headers: request.headers,
            body: request.body,
            redirect: 'manual',
            signal,
          });
          span?.setAttribute(SpanAttr.httpStatus, response.status);
          let body: Buffer;
          try {
            body = await readBody(response, this.settings.maxResponseBytes);
          } catch (err) {
            if (err instanceof TooLargeError) {
              // The service answered; the answer is just too big for a tool result.
              throw new UncountedFailure(err);
            }
            throw err;
          }
          const answer: HttpAnswer = {
            status: response.status,
            statusText: response.statusText,
            contentType: response.headers.get('content-type') ?? '',
            location: response.headers.get('location') ?? undefined,
            body,
          };
          const result = toToolResult(answer, plan);
          if (response.status >= 500) {
            throw new ServerFailure(result);
          }
          return result;
        },
        callerSignal,
      );
    } catch (err) {
      if (err instanceof ServerFailure) {
        return err.result;
      }
      if (err instanceof McpError && err.data instanceof TooLargeError) {
        return errorResult(`Response of ${plan.key} not returned: ${err.data.message}`);
      }
      throw err;
    }
  }

  /**
   * Runs `fn` under `policy` (one of `endpoint`'s) with its metrics. `callerSignal` and the
   * policy's timeout both abort the HTTP request. Failures become -32603 "Backend <name>
   * unavailable: …" (an UnreachableError when no HTTP answer came back; a response over the
   * size limit: an McpError whose data is the TooLargeError).
   */
  private async run<T>(
    endpoint: RestEndpoint,
    policy: UpstreamPolicy,
    fn: (signal: AbortSignal) => Promise<T>,
    callerSignal?: AbortSignal,
  ): Promise<T> {
    const metrics = endpoint.metrics;
    try {
      return await executeAlone(policy, async ({ signal: deadline }) => {
        const signal = callerSignal ? AbortSignal.any([deadline, callerSignal]) : deadline;
        const started = performance.now();
        try {
          const value = await fn(signal);
          // A tool error here is an HTTP answer (4xx...): the service is reachable.
          const outcome: BackendOutcome = isErrorResult(value) ? 'error' : 'success';
          metrics?.request(outcome, secondsSince(started));
          metrics?.contact(true);
          return value;
        } catch (err) {
          // Our caller leaving says nothing about the service.
          const failure =
            callerSignal?.aborted && !(err instanceof UncountedFailure)
              ? new UncountedFailure(err)
              : err;
          recordFailure(metrics, failure, started);
          if (!(failure instanceof UncountedFailure) && !(failure instanceof ServerFailure)) {
            endpoint.onUnreachable?.(describe(failure));
          }
          throw failure;
        }
      });
    } catch (err) {
      if (err instanceof ServerFailure) {
        throw err;
      }
      const refused = refusedByPolicy(err);
      if (refused) {
        metrics?.request('refused', 0);
      }
      const failure = err instanceof UncountedFailure ? err.failure : err;
      if (failure instanceof TooLargeError) {
        throw new McpError(ErrorCode.InternalError, failure.message, failure);
      }
      if (callerSignal?.aborted) {
        throw new McpError(ErrorCode.RequestCancelled, 'Request cancelled');
      }
      const reason = policyRefusal(failure, this.settings.timeoutMs) ?? describe(failure);
      const message = `${this.label} unavailable: ${reason}`;
      if (err instanceof UncountedFailure) {
        throw new BackendUnavailableError(message);
      }
      throw new UnreachableError(message, !refused && !(failure instanceof TargetRefusedError));
    }
  }
}

function recordFailure(metrics: BackendMetrics | undefined, err: unknown, started: number): void {
  if (!metrics) {
    return;
  }
  if (err instanceof TargetRefusedError) {
    metrics.request('refused', 0);
    metrics.contact(false);
    return;
  }
  metrics.request('error', secondsSince(started));
  if (err instanceof UncountedFailure) {
    if (err.failure instanceof TooLargeError) {
      metrics.contact(true);
    }
    return;
  }
  // An HTTP answer, even a 5xx, means the service is reachable.
  metrics.contact(err instanceof ServerFailure);
}

/** The credential `settings.auth` names (or the backend's only one). */
function credentialFor(
  settings: OpenApiSettings,
  credentials: Record<string, string>,
  label: string,
): string {
  const keys = Object.keys(credentials);
  const key = settings.auth?.credential ?? (keys.length === 1 ? keys[0] : undefined);
  if (key === undefined || !Object.hasOwn(credentials, key)) {
    throw new Error(
      `${label}: settings.auth needs a credential: ` +
        (settings.auth?.credential === undefined
          ? 'store exactly one, or name one with settings.auth.credential'
          : `the backend has none named ${settings.auth.credential}`),
    );
  }
  return credentials[key];
}

/** The first server of the document (variables at their defaults), relative to its URL. */
function serverUrl(document: OpenApiDocument, documentUrl: URL): URL {
  const server: OpenApiServer | undefined = Array.isArray(document.servers)
    ? (document.servers[0] as OpenApiServer)
    : undefined;
  if (!server || typeof server.url !== 'string') {
    return new URL('/', documentUrl);
  }
  const url = server.url.replace(/\{([^}]+)\}/g, (whole: string, name: string) => {
    const value = server.variables?.[name]?.default;
    return typeof value === 'string' ? value : whole;
  });
  try {
    return new URL(url, documentUrl);
  } catch {
    throw new Error(`the document's server URL ${JSON.stringify(server.url)} is not usable`);
  }
}

/** The body, read up to `limit` bytes: a longer one is abandoned with TooLargeError. */
async function readBody(response: Response, limit: number): Promise<Buffer> {
  const declared = Number(response.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > limit) {
    await response.body?.cancel();
    throw new TooLargeError(limit);
  }
  if (!response.body) {
    return Buffer.alloc(0);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  // Leaving the loop early cancels the stream: the rest is never downloaded.
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > limit) {
      throw new TooLargeError(limit);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

function isErrorResult(value: unknown): boolean {
  return typeof value === 'object' && value !== null && (value as CallToolResult).isError === true;
}

function secondsSince(started: number): number {
  return (performance.now() - started) / 1000;
}

/** An error's message; for fetch's "fetch failed", with the network cause's code. */
function describe(err: unknown): string {
  if (!(err instanceof Error)) {
    return String(err);
  }
  const cause = (err as { cause?: { code?: unknown } }).cause;
  return typeof cause?.code === 'string' ? `${err.message} (${cause.code})` : err.message;
}

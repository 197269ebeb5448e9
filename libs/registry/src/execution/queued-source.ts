import { randomUUID } from 'node:crypto';
import type {
  CatalogListener,
  CatalogScope,
  MaybePromise,
  RequestContext,
  ToolHandler,
} from '@portico/mcp-protocol';
import type { ToolCallQueue } from '@portico/queue';
import type { BackendSource } from '../upstream/backend-source';

/** Default deadline of a queued call when the backend sets no `timeoutMs`. */
export const DEFAULT_QUEUED_TIMEOUT_MS = 60_000;

/**
 * A backend whose tools run on the queue: listings come from the backend itself, calls become
 * jobs that a worker (any node) runs against the same backend, and the caller waits for the
 * result with progress relayed and cancellation forwarded. Everything else passes through.
 */
export class QueuedSource implements BackendSource {
  private readonly wrapped = new WeakMap<ToolHandler, ToolHandler>();

  constructor(
    private readonly inner: BackendSource,
    private readonly queue: ToolCallQueue,
    private readonly target: { tenantId: string; backend: string; timeoutMs: number },
  ) {}

  listTools(scope: CatalogScope): MaybePromise<readonly ToolHandler[]> {
    const tools = this.inner.listTools(scope);
    return tools instanceof Promise
      ? tools.then((list) => list.map((h) => this.queued(h)))
      : tools.map((h) => this.queued(h));
  }

  getTool(name: string, scope: CatalogScope): MaybePromise<ToolHandler | undefined> {
    const tool = this.inner.getTool(name, scope);
    return tool instanceof Promise
      ? tool.then((h) => (h ? this.queued(h) : undefined))
      : tool && this.queued(tool);
  }

  listResources(scope: CatalogScope) {
    return this.inner.listResources(scope);
  }
  getResource(uri: string, scope: CatalogScope) {
    return this.inner.getResource(uri, scope);
  }
  listResourceTemplates(scope: CatalogScope) {
    return this.inner.listResourceTemplates(scope);
  }
  listPrompts(scope: CatalogScope) {
    return this.inner.listPrompts(scope);
  }
  getPrompt(name: string, scope: CatalogScope) {
    return this.inner.getPrompt(name, scope);
  }
  watch(listener: CatalogListener, scope?: CatalogScope) {
    return this.inner.watch(listener, scope);
  }
  async close(): Promise<void> {
    await this.inner.close?.();
  }

  private queued(handler: ToolHandler): ToolHandler {
    let queued = this.wrapped.get(handler);
    if (!queued) {
      const tool = handler.definition.name;
      queued = {
        definition: handler.definition,
        call: (args, ctx) =>
          this.queue.dispatch(
            {
              tenantId: this.target.tenantId,
              backend: this.target.backend,
              tool,
              arguments: args,
              principal: {
                id: ctx.principal?.id ?? 'anonymous',
                tenant: ctx.principal?.tenant,
                scopes: [...(ctx.principal?.scopes ?? [])],
              },
              requestId: ctx.requestId,
              protocolVersion: ctx.protocolVersion,
              deadline: Date.now() + this.target.timeoutMs,
              wantsProgress: true,
            },
            ctx,
            callKey(this.target.tenantId, ctx),
          ),
      };
      this.wrapped.set(handler, queued);
    }
    return queued;
  }
}

/**
 * The identity of one call: a 2025-era request id is unique within its session, so a repeated
 * delivery maps to the same job; a 2026-07-28 request has no session and clients reuse ids,
 * so each call gets its own.
 */
function callKey(tenantId: string, ctx: RequestContext): string {
  const scope = ctx.sessionId ?? `modern:${randomUUID()}`;
  return [tenantId, scope, ctx.principal?.id ?? '', String(ctx.requestId)].join('\u0000');
}

import { randomUUID } from 'node:crypto';
import {
  CallToolResult,
  CatalogListener,
  CatalogScope,
  ErrorCode,
  JsonObject,
  MaybePromise,
  McpError,
  RequestContext,
  ToolHandler,
} from '@portico/mcp-protocol';
import type { TenantLimits } from '@portico/persistence';
import { type JobInput, jobPriority, needsInput, type ToolCallQueue } from '@portico/queue';
import type { BackendSource } from '../upstream/backend-source';
import { askClient } from '../upstream/upstream-relay';
import type { ExecutionPlan } from './execution-plan';

/** Default deadline of a queued call when neither the tool nor the backend sets `timeoutMs`. */
export const DEFAULT_QUEUED_TIMEOUT_MS = 60_000;

/** Whose backend an ExecutorSource serves. */
export interface ExecutorTarget {
  readonly tenantId: string;
  readonly backend: string;
  /**
   * The tenant's plan, as of the catalog build (a change rebuilds it): its `maxConcurrentJobs`
   * travels in each job to the workers, its `queuePriority` orders its jobs unless the tool's
   * settings name a priority of their own.
   */
  readonly limits?: Pick<TenantLimits, 'maxConcurrentJobs' | 'queuePriority'>;
}

/**
 * A backend whose tools run by their execution plan: `queued` tools become jobs that a worker
 * (any node) runs against the same backend while the caller waits, with progress relayed and
 * cancellation forwarded; `inline` tools run here, within their own `timeoutMs` if they have
 * one. Listings and everything else pass through.
 */
export class ExecutorSource implements BackendSource {
  private readonly wrapped = new WeakMap<ToolHandler, ToolHandler>();

  constructor(
    private readonly inner: BackendSource,
    private readonly plan: ExecutionPlan,
    /** Null without REDIS_URL: queued tools then run inline. */
    private readonly queue: ToolCallQueue | null,
    private readonly target: ExecutorTarget,
  ) {}

  listTools(scope: CatalogScope): MaybePromise<readonly ToolHandler[]> {
    const tools = this.inner.listTools(scope);
    return tools instanceof Promise
      ? tools.then((list) => list.map((h) => this.executed(h)))
      : tools.map((h) => this.executed(h));
  }

  getTool(name: string, scope: CatalogScope): MaybePromise<ToolHandler | undefined> {
    const tool = this.inner.getTool(name, scope);
    return tool instanceof Promise
      ? tool.then((h) => (h ? this.executed(h) : undefined))
      : tool && this.executed(tool);
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

  private executed(handler: ToolHandler): ToolHandler {
    let executed = this.wrapped.get(handler);
    if (!executed) {
      const execution = this.plan.forTool(handler);
      if (execution.executor === 'queued' && this.queue) {
        executed = this.queued(handler, this.queue);
      } else {
        const timeoutMs = this.plan.ownTimeoutMs(handler);
        executed = timeoutMs === undefined ? handler : withinBudget(handler, timeoutMs);
      }
      this.wrapped.set(handler, executed);
    }
    return executed;
  }

  private queued(handler: ToolHandler, queue: ToolCallQueue): ToolHandler {
    const tool = handler.definition.name;
    return {
      definition: handler.definition,
      call: async (args, ctx) => {
        // Decided per call: list_changed may have brought new annotations.
        const execution = this.plan.forTool(handler);
        const timeoutMs = execution.timeoutMs ?? DEFAULT_QUEUED_TIMEOUT_MS;
        const { maxConcurrentJobs, queuePriority } = this.target.limits ?? {};
        const key = callKey(this.target.tenantId, ctx);
        const inputs: JobInput[] = [];
        // Each round runs the tool on a worker with the answers so far; a question beyond them
        // is put to the client here (its context knows how, in either era, and in a task) and
        // the call goes back on the queue with the answer.
        for (let round = 0; ; round++) {
          const result = await queue.dispatch(
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
              era: ctx.era,
              clientCapabilities: ctx.clientCapabilities,
              deadline: Date.now() + timeoutMs,
              timeoutMs,
              idempotent: execution.idempotent,
              ...(maxConcurrentJobs && { maxConcurrentJobs }),
              wantsProgress: true,
              ...(inputs.length > 0 && { inputs: [...inputs] }),
            },
            ctx,
            {
              callKey: round === 0 ? key : `${key}#input-${round}`,
              retry: execution.retry,
              priority: jobPriority(execution, queuePriority),
            },
          );
          if (!needsInput(result)) {
            return result;
          }
          if (round >= MAX_INPUT_ROUNDS) {
            throw new McpError(
              ErrorCode.InternalError,
              `${tool} asked for client input more than ${MAX_INPUT_ROUNDS} times`,
            );
          }
          // Asked together, as the tool did: a 2026-07-28 client gets them in one input_required.
          const asked = result.inputRequired;
          const answers = await Promise.all(
            asked.map(({ method, params, key: inputKey }) =>
              askClient(ctx, method, params, inputKey),
            ),
          );
          asked.forEach(({ method }, i) => inputs.push({ method, result: answers[i] }));
        }
      },
    };
  }
}

/** The most questions one queued call may put to its client (each costs a run of the tool). */
export const MAX_INPUT_ROUNDS = 16;

/**
 * An inline tool with its own budget: its context's signal aborts when the budget is spent,
 * and the caller gets a clear error then even if the tool ignores the signal.
 */
function withinBudget(handler: ToolHandler, timeoutMs: number): ToolHandler {
  const name = handler.definition.name;
  return {
    definition: handler.definition,
    call: async (args: JsonObject, ctx: RequestContext): Promise<CallToolResult> => {
      const budget = new AbortController();
      const signal = AbortSignal.any([ctx.signal, budget.signal]);
      // The caller's context with only its signal replaced (methods and state stay shared).
      const scoped = Object.create(ctx, { signal: { value: signal } }) as RequestContext;
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          budget.abort();
          reject(
            new McpError(
              ErrorCode.InternalError,
              `Tool ${name} did not finish within ${timeoutMs} ms`,
            ),
          );
        }, timeoutMs);
      });
      try {
        return await Promise.race([Promise.resolve(handler.call(args, scoped)), expired]);
      } catch (err) {
        if (budget.signal.aborted && !ctx.signal.aborted) {
          throw new McpError(
            ErrorCode.InternalError,
            `Tool ${name} did not finish within ${timeoutMs} ms`,
          );
        }
        throw err;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/**
 * The identity of one call: tenant, session and request id. A 2025-era request id is unique
 * within its session, so a repeated delivery maps to the same job; a 2026-07-28 request has no
 * session and clients reuse ids, so each call gets its own.
 */
function callKey(tenantId: string, ctx: RequestContext): string {
  const scope = ctx.sessionId ?? `modern:${randomUUID()}`;
  return [tenantId, scope, ctx.principal?.id ?? '', String(ctx.requestId)].join('\u0000');
}

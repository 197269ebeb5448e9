import type { CallToolResult, JsonObject } from '@portico/mcp-protocol';

/** The one queue tool calls go through, and its one job name (handled in exactly one place). */
export const TOOL_CALL_QUEUE = 'tool-calls';
export const TOOL_CALL_JOB = 'tools.call';
/** Redis pub/sub channel (under the key prefix) on which cancellations reach running jobs. */
export const TOOL_CALL_CANCEL_CHANNEL = 'tool-calls:cancel';

/** Who called, as the worker needs it to reach the same tenant catalog. */
export interface JobPrincipal {
  readonly id: string;
  readonly tenant?: string;
  readonly scopes: readonly string[];
}

/** A queued tools/call: everything the worker needs, nothing secret. */
export interface ToolJobData {
  readonly tenantId: string;
  /** The backend whose source serves the tool, and the tool's name at that source. */
  readonly backend: string;
  readonly tool: string;
  readonly arguments: JsonObject;
  readonly principal: JobPrincipal;
  /** The client's request id and era, for logs and the handler's context. */
  readonly requestId: string | number;
  readonly protocolVersion: string;
  /** Epoch ms after which the call is failed rather than finished unobserved. */
  readonly deadline: number;
  /** Whether the caller asked for progress (a progress token was sent). */
  readonly wantsProgress: boolean;
  /** W3C trace context (traceparent, tracestate) of the dispatch, when tracing is on. */
  readonly trace?: Readonly<Record<string, string>>;
}

export type ToolJobResult = CallToolResult;

/** Progress and log messages a running job reports, relayed to the client by the gateway. */
export type ToolJobProgress =
  | { readonly kind: 'progress'; progress: number; total?: number; message?: string }
  | { readonly kind: 'log'; level: string; data: unknown; logger?: string };

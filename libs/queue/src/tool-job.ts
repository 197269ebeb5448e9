import { createHash } from 'node:crypto';
import type {
  CallToolResult,
  ClientCapabilities,
  Era,
  InputMethod,
  JsonObject,
} from '@portico/mcp-protocol';

/** The one queue tool calls go through, and its one job name (handled in exactly one place). */
export const TOOL_CALL_QUEUE = 'tool-calls';
export const TOOL_CALL_JOB = 'tools.call';
/** The kind of TaskWorkRef a queued call of a task records; its id is the job id. */
export const TOOL_CALL_WORK = 'tool-call-job';
/** Redis pub/sub channel (under the key prefix) on which cancellations reach running jobs. */
export const TOOL_CALL_CANCEL_CHANNEL = 'tool-calls:cancel';

/**
 * The Redis key (under the key prefix) of a tenant's running-job leases: a sorted set of job
 * ids scored by lease expiry, shared by every worker (see TenantJobSlots).
 */
export function runningJobsKey(keyPrefix: string, tenantId: string): string {
  return `${keyPrefix}tool-calls:running:${tenantId}`;
}

/** The Redis key (under the key prefix) of the lock that lets one priority-ageing sweep run. */
export function priorityAgeingLockKey(keyPrefix: string): string {
  return `${keyPrefix}tool-calls:ageing-lock`;
}

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
  readonly era?: Era;
  /** What the client can answer (elicitation, sampling, roots), as the tool may check. */
  readonly clientCapabilities?: ClientCapabilities;
  /** Epoch ms after which the call is failed rather than finished unobserved. */
  readonly deadline: number;
  /** The call's budget (deadline minus enqueue time), renewed when an operator retries it. */
  readonly timeoutMs: number;
  /** Whether running the tool twice is harmless (annotation or retry policy). */
  readonly idempotent: boolean;
  /**
   * The tenant's cap on its jobs running at once across all workers (its plan's
   * `maxConcurrentJobs`), as it was when the call was accepted: workers read it here, not from
   * the database. Absent: no cap.
   */
  readonly maxConcurrentJobs?: number;
  /**
   * Stalls (a worker died mid-run) an operator's retry already accepted: only stalls beyond
   * these stop a non-idempotent tool from running again.
   */
  readonly stallsAccepted?: number;
  /** Whether the caller asked for progress (a progress token was sent). */
  readonly wantsProgress: boolean;
  /** W3C trace context (traceparent, tracestate) of the dispatch, when tracing is on. */
  readonly trace?: Readonly<Record<string, string>>;
  /**
   * The client's answers to what earlier runs of this call asked (elicitation, sampling,
   * roots), in the order they were asked: the run replays them, and a question beyond them ends
   * the run with `inputRequired` (see JobInputRequest).
   */
  readonly inputs?: readonly JobInput[];
}

/** One answer of the client, replayed to the tool when it asks again. */
export interface JobInput {
  readonly method: InputMethod;
  readonly result: JsonObject;
}

/**
 * A question of a run that no answer covered. The worker cannot reach the client: the run ends
 * with its questions (those asked together, e.g. in a Promise.all), the gateway asks the client (mid-call request in the 2025 era, an
 * `input_required` result in 2026-07-28, a task's input_required status) and queues the call
 * again with the answer added: the tool runs again from the start, as a 2026-07-28 handler
 * does on the client's retry.
 */
export interface JobInputRequest {
  readonly method: InputMethod;
  readonly params: JsonObject;
  readonly key?: string;
}

/** A run's outcome: the tool's result, or the client input it needs first. */
export type ToolJobResult = CallToolResult | InputRequiredJobResult;

export interface InputRequiredJobResult {
  readonly inputRequired: readonly JobInputRequest[];
}

/** Whether a job's result asks for client input rather than being the tool's result. */
export function needsInput(result: ToolJobResult): result is InputRequiredJobResult {
  return 'inputRequired' in result && Array.isArray(result.inputRequired);
}

/** Progress and log messages a running job reports, relayed to the client by the gateway. */
export type ToolJobProgress =
  | { readonly kind: 'progress'; progress: number; total?: number; message?: string }
  | { readonly kind: 'log'; level: string; data: unknown; logger?: string };

/**
 * The job id of a call: the tenant id, then a digest of the call's identity (tenant, session,
 * request id), so a repeated delivery maps to the same job, and a job id names its tenant.
 * BullMQ ids may not contain ':'.
 */
export function toolJobId(tenantId: string, callKey: string): string {
  // 128 bits of the digest: the id stays within URL parameter limits.
  return `${tenantId}.${createHash('sha256').update(callKey).digest('hex').slice(0, 32)}`;
}

/** The tenant a job id belongs to (see toolJobId); undefined for an id of another shape. */
export function tenantOfToolJob(jobId: string): string | undefined {
  const match = /^([0-9A-Za-z-]{1,64})\.[0-9a-f]{32}$/.exec(jobId);
  return match?.[1];
}

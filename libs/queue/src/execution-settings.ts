import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';

/** Where a tool call runs: in the node that accepted it, or as a job on the tool-call queue. */
export const EXECUTORS = ['inline', 'queued'] as const;
export type ExecutorKind = (typeof EXECUTORS)[number];

export const MAX_RETRY_ATTEMPTS = 10;
export const MAX_RETRY_BACKOFF_MS = 60_000;
export const MAX_TIMEOUT_MS = 86_400_000;

/**
 * Queued calls' priorities, as BullMQ orders them: lower starts sooner; calls of one priority
 * start in the order they were queued. Every job gets one (BullMQ runs jobs without a priority
 * before all prioritized ones), DEFAULT_QUEUE_PRIORITY when neither the tool's settings nor the
 * tenant's plan name one.
 */
export const MIN_QUEUE_PRIORITY = 1;
export const MAX_QUEUE_PRIORITY = 10;
export const DEFAULT_QUEUE_PRIORITY = 5;

/** BullMQ attempts and the first exponential backoff step (doubled after each failure). */
export interface RetrySettings {
  readonly attempts: number;
  readonly backoffMs: number;
}

/** Retries of a tool known idempotent only from its annotations (no retry policy configured). */
export const DEFAULT_RETRY: RetrySettings = { attempts: 3, backoffMs: 500 };

/** What `settings.tools["<upstream tool name>"]` may override. */
export interface ToolExecutionSettings {
  readonly executor?: ExecutorKind;
  readonly timeoutMs?: number;
  readonly retry?: RetrySettings;
  /** Queue priority of the calls (MIN_QUEUE_PRIORITY..MAX_QUEUE_PRIORITY): beats the tenant's plan. */
  readonly priority?: number;
}

/** The execution part of a backend's settings; other keys belong to the backend kind. */
export interface BackendExecutionSettings extends ToolExecutionSettings {
  readonly tools?: Readonly<Record<string, ToolExecutionSettings>>;
}

const EXECUTOR_SCHEMA = { type: 'string', enum: EXECUTORS } as const;
const TIMEOUT_SCHEMA = { type: 'integer', minimum: 1, maximum: MAX_TIMEOUT_MS } as const;
const RETRY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['attempts'],
  properties: {
    attempts: { type: 'integer', minimum: 1, maximum: MAX_RETRY_ATTEMPTS },
    backoffMs: { type: 'integer', minimum: 0, maximum: MAX_RETRY_BACKOFF_MS },
  },
} as const;
const PRIORITY_SCHEMA = {
  type: 'integer',
  minimum: MIN_QUEUE_PRIORITY,
  maximum: MAX_QUEUE_PRIORITY,
} as const;
const TOOL_EXECUTION_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    executor: EXECUTOR_SCHEMA,
    timeoutMs: TIMEOUT_SCHEMA,
    retry: RETRY_SCHEMA,
    priority: PRIORITY_SCHEMA,
  },
} as const;

/**
 * JSON Schema (draft-07) of a backend's `settings`: the execution keys are checked, every
 * other key is left to the backend kind. The one definition both the admin API and
 * `portico.yaml` validate against.
 */
export const BACKEND_SETTINGS_SCHEMA = {
  type: 'object',
  properties: {
    executor: EXECUTOR_SCHEMA,
    timeoutMs: TIMEOUT_SCHEMA,
    retry: RETRY_SCHEMA,
    priority: PRIORITY_SCHEMA,
    tools: { type: 'object', additionalProperties: TOOL_EXECUTION_SCHEMA },
  },
} as const;

/** One thing wrong with a backend's settings; `path` is relative to `settings`. */
export interface SettingsProblem {
  readonly path: string;
  readonly message: string;
}

let compiled: ValidateFunction | undefined;

/** Every problem of `settings` against BACKEND_SETTINGS_SCHEMA (empty when valid). */
export function backendSettingsProblems(settings: unknown): SettingsProblem[] {
  compiled ??= new Ajv({ allErrors: true, strict: true }).compile(BACKEND_SETTINGS_SCHEMA);
  return compiled(settings) ? [] : (compiled.errors ?? []).map(problemOf);
}

function problemOf(e: ErrorObject): SettingsProblem {
  const params = e.params as Record<string, unknown>;
  const segments = e.instancePath === '' ? [] : e.instancePath.slice(1).split('/');
  const decoded = segments.map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  switch (e.keyword) {
    case 'required':
      return { path: join([...decoded, String(params.missingProperty)]), message: 'is required' };
    case 'additionalProperties':
      return {
        path: join([...decoded, String(params.additionalProperty)]),
        message: 'is not a known property',
      };
    case 'enum':
      return {
        path: join(decoded),
        message: `must be one of: ${(params.allowedValues as unknown[]).join(', ')}`,
      };
    default:
      return { path: join(decoded), message: e.message ?? 'is invalid' };
  }
}

/** `a.b`, or `a["odd key"]` for keys that are not identifiers (tool names may be anything). */
function join(segments: readonly string[]): string {
  return segments.reduce(
    (path, s) =>
      /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(s)
        ? path === ''
          ? s
          : `${path}.${s}`
        : `${path}[${JSON.stringify(s)}]`,
    '',
  );
}

/**
 * The execution settings of a stored backend. Rows written before validation existed may hold
 * bad values: those are ignored (the default applies) rather than failing the catalog.
 */
export function backendExecutionSettings(
  raw: Readonly<Record<string, unknown>> | null | undefined,
): BackendExecutionSettings {
  const base = toolSettings(raw ?? {});
  const tools: Record<string, ToolExecutionSettings> = {};
  const rawTools = raw?.tools;
  if (isObject(rawTools)) {
    for (const [name, value] of Object.entries(rawTools)) {
      if (isObject(value)) {
        tools[name] = toolSettings(value);
      }
    }
  }
  return { ...base, tools };
}

function toolSettings(raw: Readonly<Record<string, unknown>>): ToolExecutionSettings {
  const executor = EXECUTORS.find((e) => e === raw.executor);
  const timeoutMs = integerIn(raw.timeoutMs, 1, MAX_TIMEOUT_MS);
  const retry = isObject(raw.retry) ? retrySettings(raw.retry) : undefined;
  const priority = integerIn(raw.priority, MIN_QUEUE_PRIORITY, MAX_QUEUE_PRIORITY);
  return {
    ...(executor && { executor }),
    ...(timeoutMs !== undefined && { timeoutMs }),
    ...(retry && { retry }),
    ...(priority !== undefined && { priority }),
  };
}

function retrySettings(raw: Readonly<Record<string, unknown>>): RetrySettings | undefined {
  const attempts = integerIn(raw.attempts, 1, MAX_RETRY_ATTEMPTS);
  if (attempts === undefined) {
    return undefined;
  }
  const backoffMs = raw.backoffMs === undefined ? DEFAULT_RETRY.backoffMs : raw.backoffMs;
  return { attempts, backoffMs: integerIn(backoffMs, 0, MAX_RETRY_BACKOFF_MS) ?? 0 };
}

/** How one tool of a backend is executed, its settings and annotations taken together. */
export interface ToolExecution {
  readonly executor: ExecutorKind;
  /** The call's overall budget when configured (a queued call's deadline, retries included). */
  readonly timeoutMs?: number;
  /** Set when failed attempts may be retried (attempts > 1). */
  readonly retry?: RetrySettings;
  /**
   * Whether running the tool twice is harmless: its `idempotentHint` annotation, or a retry
   * policy of more than one attempt configured for it (the operator's word).
   */
  readonly idempotent: boolean;
  /** The queue priority the operator set for the tool (or its backend), when set. */
  readonly priority?: number;
}

/**
 * The execution of the tool `upstreamName`: the per-tool entry overrides the backend's own
 * `executor`, `timeoutMs`, `retry` and `priority`. Without a retry policy, a tool annotated idempotent gets
 * DEFAULT_RETRY; a policy of `attempts: 1` turns retries off.
 */
export function toolExecution(
  settings: BackendExecutionSettings,
  upstreamName: string | undefined,
  annotations?: { readonly idempotentHint?: boolean },
): ToolExecution {
  const own = ownToolSettings(settings, upstreamName);
  const policy = own?.retry ?? settings.retry;
  const hinted = annotations?.idempotentHint === true;
  const retry = policy ?? (hinted ? DEFAULT_RETRY : undefined);
  const timeoutMs = own?.timeoutMs ?? settings.timeoutMs;
  const priority = own?.priority ?? settings.priority;
  return {
    executor: own?.executor ?? settings.executor ?? 'inline',
    ...(timeoutMs !== undefined && { timeoutMs }),
    ...(retry && retry.attempts > 1 && { retry }),
    idempotent: hinted || (policy !== undefined && policy.attempts > 1),
    ...(priority !== undefined && { priority }),
  };
}

/**
 * The BullMQ priority of a queued call: the tool's (or its backend's) setting, else the
 * tenant's plan, else DEFAULT_QUEUE_PRIORITY. The operator's word on a tool beats the plan: a
 * slow batch tool can be put behind a premium tenant's other calls, and an urgent one ahead.
 */
export function jobPriority(
  execution: Pick<ToolExecution, 'priority'>,
  tenantPriority: number | undefined,
): number {
  return (
    execution.priority ??
    integerIn(tenantPriority, MIN_QUEUE_PRIORITY, MAX_QUEUE_PRIORITY) ??
    DEFAULT_QUEUE_PRIORITY
  );
}

/** The per-tool entry of `upstreamName`, if the backend has one. */
export function ownToolSettings(
  settings: BackendExecutionSettings,
  upstreamName: string | undefined,
): ToolExecutionSettings | undefined {
  const tools = settings.tools ?? {};
  return upstreamName !== undefined && Object.hasOwn(tools, upstreamName)
    ? tools[upstreamName]
    : undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function integerIn(value: unknown, min: number, max: number): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max
    ? value
    : undefined;
}

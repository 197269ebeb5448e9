import { ErrorCode, JsonRpcErrorObject, MaybePromise } from '@portico/mcp-protocol';
import type { GatewayMetrics } from '@portico/observability';
import { QuotaExceededError, QuotaService } from '@portico/tenancy';
import type { McpCaller } from './mcp-access.service';

/** A request refused for its rate: the JSON-RPC error and the Retry-After seconds. */
export interface ChargeRefusal {
  readonly error: JsonRpcErrorObject;
  readonly retryAfterSeconds: number;
}

/**
 * Charges one request of a tenant caller against its tenant and API-key rates. Settles to
 * undefined when allowed, or to the JSON-RPC error (code -32029, `data.retryAfterMs`) and the
 * Retry-After seconds to answer with. Synchronous unless the rates are counted in Redis;
 * anonymous callers and unmetered tenants are not metered at all.
 */
export function chargeRequest(
  quotas: QuotaService,
  caller: McpCaller,
  metrics: GatewayMetrics,
): MaybePromise<ChargeRefusal | undefined> {
  const principal = caller.principal;
  const apiKeyId = principal?.kind === 'api-key' ? principal.subject : undefined;
  if (!caller.tenant || !quotas.meters(caller.tenant, apiKeyId !== undefined)) {
    return undefined;
  }
  const refused = quotas.charge({ tenant: caller.tenant, apiKeyId });
  return refused instanceof Promise
    ? refused.then((err) => err && refusal(err, metrics))
    : refused && refusal(refused, metrics);
}

function refusal(err: QuotaExceededError, metrics: GatewayMetrics): ChargeRefusal {
  metrics.rateLimited(err.limit);
  return { error: quotaError(err), retryAfterSeconds: err.retryAfterSeconds };
}

export function quotaError(err: QuotaExceededError): JsonRpcErrorObject {
  return {
    code: ErrorCode.QuotaExceeded,
    message: err.message,
    data: { retryAfterMs: err.retryAfterMs, limit: err.limit },
  };
}

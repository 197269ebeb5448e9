import { ErrorCode, JsonRpcErrorObject } from '@portico/mcp-protocol';
import type { GatewayMetrics } from '@portico/observability';
import { QuotaExceededError, QuotaService } from '@portico/tenancy';
import type { McpCaller } from './mcp-access.service';

/**
 * Charges one request of a tenant caller against its tenant and API-key rates. Resolves to
 * undefined when allowed, or to the JSON-RPC error (code -32029, `data.retryAfterMs`) and the
 * Retry-After seconds to answer with. Anonymous callers are not metered.
 */
export async function chargeRequest(
  quotas: QuotaService,
  caller: McpCaller,
  metrics: GatewayMetrics,
): Promise<{ error: JsonRpcErrorObject; retryAfterSeconds: number } | undefined> {
  if (!caller.tenant || !quotas.meters(caller.tenant, caller.principal?.kind === 'api-key')) {
    return undefined;
  }
  try {
    await quotas.consumeRequest({
      tenant: caller.tenant,
      apiKeyId: caller.principal?.kind === 'api-key' ? caller.principal.subject : undefined,
    });
    return undefined;
  } catch (err) {
    if (err instanceof QuotaExceededError) {
      metrics.rateLimited(err.limit);
      return { error: quotaError(err), retryAfterSeconds: err.retryAfterSeconds };
    }
    throw err;
  }
}

export function quotaError(err: QuotaExceededError): JsonRpcErrorObject {
  return {
    code: ErrorCode.QuotaExceeded,
    message: err.message,
    data: { retryAfterMs: err.retryAfterMs, limit: err.limit },
  };
}

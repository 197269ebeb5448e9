import {
  type Attributes,
  type Context,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import type {
  JsonObject,
  JsonRpcResponse,
  ObservedRequest,
  RequestObserver,
} from '@portico/mcp-protocol';
import { SpanAttr } from './span-names';
import { hasTraceContext } from './trace-carrier';
import type { Tracing } from './tracing';

/** Longest client-chosen name (tool, prompt, resource) put into a span name. */
const MAX_TARGET_LENGTH = 128;

/**
 * A SERVER span per MCP request, named as the OpenTelemetry MCP conventions name them
 * (`tools/call get_weather`), for every transport and both eras. Its parent is the
 * transport's span (the HTTP request's, passed as `observed.trace`) or, on message transports
 * (WebSocket, SSE, stdio), the trace context the request carries in `params._meta` (SEP-414).
 * The handler gets the span's context as its RequestContext.trace.
 */
export class McpRequestTracer implements RequestObserver {
  constructor(private readonly tracing: Tracing) {}

  /** Off: the engine is given no observer at all. */
  get enabled(): boolean {
    return this.tracing.enabled;
  }

  observe(
    observed: ObservedRequest,
    handle: (trace?: unknown) => Promise<JsonRpcResponse | undefined>,
  ): Promise<JsonRpcResponse | undefined> {
    if (!this.tracing.enabled) {
      return handle();
    }
    const { request } = observed;
    const params = request.params;
    const meta = params?._meta as Record<string, unknown> | undefined;
    const transport = observed.trace as Context | undefined;
    if (transport !== undefined && trace.getSpan(transport)?.isRecording() === false) {
      // The transport's span (HTTP) is not sampled: neither is anything under it.
      return handle();
    }
    // Inside a transport's span (HTTP), that span already continued the client's context.
    const parent = transport ?? (hasTraceContext(meta) ? this.tracing.extract(meta) : ROOT_CONTEXT);
    const method = request.method;
    const target = targetOf(method, params);
    // Plain assignments, not spreads: this runs for every request.
    const attributes: Attributes = {
      [SpanAttr.mcpMethod]: method,
      [SpanAttr.jsonRpcRequestId]: String(request.id),
    };
    if (observed.protocolVersion) {
      attributes[SpanAttr.mcpProtocolVersion] = observed.protocolVersion;
    }
    if (observed.sessionId) {
      attributes[SpanAttr.mcpSessionId] = observed.sessionId;
    }
    const principal = observed.principal;
    if (principal) {
      attributes[SpanAttr.principal] = principal.id;
      if (principal.tenant) {
        attributes[SpanAttr.tenant] = principal.tenant;
      }
    }
    if (target !== undefined) {
      addTargetAttributes(attributes, method, target);
    }
    const span = this.tracing.start(
      target === undefined ? method : `${method} ${target}`,
      { kind: SpanKind.SERVER, attributes },
      parent,
    );
    return handle(trace.setSpan(parent, span)).then(
      (response) => {
        if (response === undefined) {
          span.setAttribute('portico.cancelled', true);
        } else if ('error' in response) {
          span.setStatus({ code: SpanStatusCode.ERROR, message: response.error.message });
          span.setAttribute(SpanAttr.errorType, String(response.error.code));
          span.setAttribute(SpanAttr.jsonRpcErrorCode, String(response.error.code));
        } else if (method === 'tools/call' && response.result.isError === true) {
          // A tool that ran and reported failure: the conventions' `tool_error`.
          span.setStatus({ code: SpanStatusCode.ERROR, message: 'tool_error' });
          span.setAttribute(SpanAttr.errorType, 'tool_error');
        }
        span.end();
        return response;
      },
      (err: unknown) => {
        span.setStatus({ code: SpanStatusCode.ERROR, message: String(err) });
        span.end();
        throw err;
      },
    );
  }
}

function targetOf(method: string, params: JsonObject | undefined): string | undefined {
  const key =
    method === 'tools/call' || method === 'prompts/get'
      ? 'name'
      : method === 'resources/read' || method === 'resources/subscribe'
        ? 'uri'
        : undefined;
  const value = key === undefined ? undefined : params?.[key];
  return typeof value === 'string' ? value.slice(0, MAX_TARGET_LENGTH) : undefined;
}

function addTargetAttributes(attributes: Attributes, method: string, target: string): void {
  switch (method) {
    case 'tools/call':
      attributes[SpanAttr.toolName] = target;
      attributes[SpanAttr.operationName] = 'execute_tool';
      return;
    case 'prompts/get':
      attributes[SpanAttr.promptName] = target;
      return;
    default:
      attributes[SpanAttr.mcpResourceUri] = target;
  }
}

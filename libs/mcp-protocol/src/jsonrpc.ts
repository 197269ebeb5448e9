import { ErrorCode } from './constants';

export type RequestId = string | number;

export type JsonObject = { [key: string]: unknown };

export interface JsonRpcRequest {
  jsonrpc: '2.0';
  id: RequestId;
  method: string;
  params?: JsonObject;
}

export interface JsonRpcNotification {
  jsonrpc: '2.0';
  method: string;
  params?: JsonObject;
}

export interface JsonRpcResultResponse {
  jsonrpc: '2.0';
  id: RequestId;
  result: JsonObject;
}

export interface JsonRpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

export interface JsonRpcErrorResponse {
  jsonrpc: '2.0';
  id: RequestId | null;
  error: JsonRpcErrorObject;
}

export type JsonRpcResponse = JsonRpcResultResponse | JsonRpcErrorResponse;
export type JsonRpcMessage = JsonRpcRequest | JsonRpcNotification | JsonRpcResponse;

/** A protocol error that maps one-to-one onto a JSON-RPC error object. */
export class McpError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = 'McpError';
  }

  toJson(): JsonRpcErrorObject {
    return this.data === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, data: this.data };
  }

  static invalidParams(message: string, data?: unknown): McpError {
    return new McpError(ErrorCode.InvalidParams, message, data);
  }

  static invalidRequest(message: string, data?: unknown): McpError {
    return new McpError(ErrorCode.InvalidRequest, message, data);
  }

  static methodNotFound(method: string): McpError {
    return new McpError(ErrorCode.MethodNotFound, `Method not found: ${method}`);
  }
}

/**
 * A backend could not serve the request: unreachable, its circuit open, its bulkhead full, its
 * attempt timed out, or no replica in rotation. -32603 "Backend <name> unavailable: <reason>"
 * on the wire; the type tells the queue a retry may succeed, where an error the backend itself
 * answered (any other McpError) would only repeat.
 */
export class BackendUnavailableError extends McpError {
  constructor(message: string) {
    super(ErrorCode.InternalError, message);
    this.name = 'BackendUnavailableError';
  }
}

export type Classified =
  | { kind: 'request'; message: JsonRpcRequest }
  | { kind: 'notification'; message: JsonRpcNotification }
  | { kind: 'response'; message: JsonRpcResponse }
  | {
      kind: 'invalid';
      id: RequestId | null;
      error: JsonRpcErrorObject;
      /**
       * Set when the message was shaped like a response (result or error, no method): it must
       * not be answered, since responses never get one; the id names the request it meant.
       */
      responseTo?: RequestId | null;
    };

function isPlainObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function validId(id: unknown): id is RequestId {
  return typeof id === 'string' || (typeof id === 'number' && Number.isSafeInteger(id));
}

/**
 * Classifies one decoded JSON value as a JSON-RPC 2.0 message, without copying it.
 * Anything that is not exactly a request, notification or response is `invalid`
 * with the error object to answer (id recovered when it is usable).
 */
export function classify(value: unknown): Classified {
  if (!isPlainObject(value)) {
    return invalid(null, 'Invalid Request: a JSON-RPC message must be an object');
  }
  const id = value.id;
  const idUsable = validId(id) ? id : null;
  if (value.jsonrpc !== '2.0') {
    return invalid(idUsable, 'Invalid Request: jsonrpc must be "2.0"');
  }
  if ('method' in value) {
    if (typeof value.method !== 'string' || value.method.length === 0) {
      return invalid(idUsable, 'Invalid Request: method must be a non-empty string');
    }
    if (value.params !== undefined && !isPlainObject(value.params)) {
      return invalid(idUsable, 'Invalid Request: params must be an object');
    }
    if (!('id' in value)) {
      return { kind: 'notification', message: value as unknown as JsonRpcNotification };
    }
    if (!validId(id)) {
      return invalid(null, 'Invalid Request: id must be a string or an integer');
    }
    return { kind: 'request', message: value as unknown as JsonRpcRequest };
  }
  if ('result' in value || 'error' in value) {
    const bad = (message: string): Classified => ({
      kind: 'invalid',
      id: null,
      error: { code: ErrorCode.InvalidRequest, message },
      responseTo: idUsable,
    });
    if ('result' in value && 'error' in value) {
      return bad('Invalid response: it has both result and error');
    }
    if ('result' in value && !isPlainObject(value.result)) {
      return bad('Invalid response: result must be an object');
    }
    if ('error' in value) {
      const error = value.error;
      if (
        !isPlainObject(error) ||
        !Number.isSafeInteger(error.code) ||
        typeof error.message !== 'string'
      ) {
        return bad('Invalid response: malformed error object');
      }
      if (id !== null && !validId(id)) {
        return bad('Invalid response: id must be a string or an integer');
      }
    } else if (!validId(id)) {
      return bad('Invalid response: id must be a string or an integer');
    }
    return { kind: 'response', message: value as unknown as JsonRpcResponse };
  }
  return invalid(idUsable, 'Invalid Request: not a request, notification or response');
}

function invalid(id: RequestId | null, message: string): Classified {
  return { kind: 'invalid', id, error: { code: ErrorCode.InvalidRequest, message } };
}

export function resultResponse(id: RequestId, result: JsonObject): JsonRpcResultResponse {
  return { jsonrpc: '2.0', id, result };
}

export function errorResponse(
  id: RequestId | null,
  error: JsonRpcErrorObject,
): JsonRpcErrorResponse {
  return { jsonrpc: '2.0', id, error };
}

export const PARSE_ERROR_RESPONSE: JsonRpcErrorResponse = Object.freeze({
  jsonrpc: '2.0',
  id: null,
  error: Object.freeze({ code: ErrorCode.ParseError, message: 'Parse error: invalid JSON' }),
});

/** Maps anything thrown by a handler onto a JSON-RPC error object, hiding internals. */
export function toErrorObject(err: unknown): JsonRpcErrorObject {
  if (err instanceof McpError) {
    return err.toJson();
  }
  return { code: ErrorCode.InternalError, message: 'Internal error' };
}

export function isRequest(message: JsonRpcMessage): message is JsonRpcRequest {
  return 'method' in message && 'id' in message;
}

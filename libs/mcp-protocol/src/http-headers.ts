/*
 * Request metadata that 2026-07-28 clients mirror into HTTP headers (Mcp-Name, Mcp-Param-*),
 * so intermediaries can route without parsing bodies. A server that acts on the body must
 * check both agree: an intermediary may have decided on the header.
 */
import { ErrorCode } from './constants';
import { JsonObject, McpError } from './jsonrpc';
import type { Tool } from './types';

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
/** RFC 9110 token characters, the only ones a header name may carry. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Decodes a header value: `=?base64?…?=` is strict Base64 of UTF-8 text; anything else is
 * literal. Returns undefined for a malformed encoded value.
 */
export function decodeHeaderValue(value: string): string | undefined {
  if (!value.startsWith('=?base64?') || !value.endsWith('?=') || value.length < 11) {
    return value;
  }
  const payload = value.slice(9, -2);
  if (payload.length % 4 !== 0 || !BASE64.test(payload)) {
    return undefined;
  }
  const bytes = Buffer.from(payload, 'base64');
  const text = bytes.toString('utf8');
  return Buffer.from(text, 'utf8').equals(bytes) ? text : undefined;
}

export interface ParamHeader {
  /** Header suffix: `Mcp-Param-{name}`. */
  readonly name: string;
  /** Property path from the arguments object. */
  readonly path: readonly string[];
  readonly type: 'string' | 'integer' | 'number' | 'boolean';
}

const cache = new WeakMap<object, readonly ParamHeader[]>();

/**
 * The `x-mcp-header` declarations of a tool, reachable through `properties` keys only.
 * Declarations on other types, or duplicated (case-insensitively), are invalid and ignored.
 */
export function paramHeadersOf(tool: Tool): readonly ParamHeader[] {
  let found = cache.get(tool.inputSchema);
  if (found === undefined) {
    const headers: ParamHeader[] = [];
    collect(tool.inputSchema, [], headers);
    const seen = new Map<string, number>();
    for (const h of headers) {
      seen.set(h.name.toLowerCase(), (seen.get(h.name.toLowerCase()) ?? 0) + 1);
    }
    found = headers.filter((h) => seen.get(h.name.toLowerCase()) === 1);
    cache.set(tool.inputSchema, found);
  }
  return found;
}

function collect(schema: JsonObject, path: string[], out: ParamHeader[]): void {
  const properties = schema.properties;
  if (typeof properties !== 'object' || properties === null) {
    return;
  }
  for (const [key, value] of Object.entries(properties as JsonObject)) {
    if (typeof value !== 'object' || value === null) {
      continue;
    }
    const prop = value as JsonObject;
    const header = prop['x-mcp-header'];
    const type = prop.type;
    if (
      typeof header === 'string' &&
      TOKEN.test(header) &&
      (type === 'string' || type === 'integer' || type === 'number' || type === 'boolean')
    ) {
      out.push({ name: header, path: [...path, key], type });
    }
    if (type === 'object') {
      collect(prop, [...path, key], out);
    }
  }
}

/**
 * Checks every declared parameter header against the arguments: present when the argument is,
 * equal after decoding. Returns the -32020 error to answer, or undefined.
 */
export function checkParamHeaders(
  tool: Tool,
  args: JsonObject,
  header: (name: string) => string | undefined,
): McpError | undefined {
  for (const param of paramHeadersOf(tool)) {
    let value: unknown = args;
    for (const key of param.path) {
      value = typeof value === 'object' && value !== null ? (value as JsonObject)[key] : undefined;
    }
    if (value === undefined || value === null) {
      continue;
    }
    const raw = header(`mcp-param-${param.name.toLowerCase()}`);
    if (raw === undefined) {
      return mismatch(`Mcp-Param-${param.name} header is required`);
    }
    const decoded = decodeHeaderValue(raw.trim());
    if (decoded === undefined) {
      return mismatch(`Mcp-Param-${param.name} header is not valid Base64`);
    }
    if (!sameValue(param.type, decoded, value)) {
      return mismatch(`Mcp-Param-${param.name} header does not match the argument`);
    }
  }
  return undefined;
}

function sameValue(type: ParamHeader['type'], header: string, value: unknown): boolean {
  switch (type) {
    case 'string':
      return header === value;
    case 'boolean':
      return header === String(value);
    case 'integer':
    case 'number':
      return header.trim() !== '' && Number(header) === value;
  }
}

function mismatch(message: string): McpError {
  return new McpError(ErrorCode.HeaderMismatch, message);
}

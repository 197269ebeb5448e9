import type { CallToolResult, ContentBlock, JsonObject } from '@portico/mcp-protocol';
import {
  BODY_ARGUMENT,
  isJsonMediaType,
  type OperationPlan,
  type ParameterPlan,
} from './openapi-operations';

/** Tool arguments that cannot be turned into a request (the engine already checked types). */
export class ArgumentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArgumentError';
  }
}

export interface PreparedRequest {
  readonly method: string;
  readonly url: URL;
  readonly headers: Headers;
  readonly body?: string;
}

/** Characters of an error response's body quoted in the tool error. */
export const ERROR_BODY_CHARS = 2_000;

/**
 * The HTTP request for one call of `plan` with `args` against `baseUrl` (its path prefixes the
 * operation's): path parameters percent-encoded, query, header and cookie parameters
 * serialized by their OpenAPI style, the `body` argument as JSON.
 */
export function buildRequest(plan: OperationPlan, args: JsonObject, baseUrl: URL): PreparedRequest {
  let path = plan.path;
  const query = new URLSearchParams();
  const headers = new Headers({ accept: plan.accept });
  const cookies: string[] = [];
  for (const parameter of plan.parameters) {
    const value = args[parameter.argument];
    if (value === undefined) {
      continue;
    }
    switch (parameter.in) {
      case 'path':
        path = path.split(`{${parameter.name}}`).join(pathValue(parameter, value));
        break;
      case 'query':
        for (const [name, text] of queryPairs(parameter, value)) {
          query.append(name, text);
        }
        break;
      case 'header':
        try {
          headers.set(parameter.name, simpleValue(parameter, value));
        } catch {
          throw new ArgumentError(`${parameter.argument} is not a valid HTTP header value`);
        }
        break;
      case 'cookie':
        cookies.push(
          `${parameter.name}=${encodeURIComponent(simpleValue(parameter, value, false))}`,
        );
        break;
    }
  }
  if (cookies.length > 0) {
    headers.set('cookie', cookies.join('; '));
  }
  const url = new URL(baseUrl.href);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}${path}`;
  for (const [name, text] of baseUrl.searchParams) {
    query.append(name, text);
  }
  url.search = query.toString();
  let body: string | undefined;
  if (plan.body && args[BODY_ARGUMENT] !== undefined) {
    body = JSON.stringify(args[BODY_ARGUMENT]);
    headers.set('content-type', plan.body.mediaType);
  }
  return { method: plan.method.toUpperCase(), url, headers, body };
}

/** A JSON value as parameter text: primitives as written, nested values as JSON. */
function scalar(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
    case 'boolean':
      return String(value);
    default:
      return value === null || value === undefined ? '' : JSON.stringify(value);
  }
}

/** Values of an array, or the alternating keys and values of an object (explode=false). */
function flatten(value: unknown): string[] {
  if (Array.isArray(value)) {
    return value.map(scalar);
  }
  return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) => [k, scalar(v)]);
}

function isComposite(value: unknown): boolean {
  return typeof value === 'object' && value !== null;
}

/** `simple` style (headers, and the parts of a path value), optionally percent-encoded. */
function simpleValue(parameter: ParameterPlan, value: unknown, encode = false): string {
  const enc = (text: string) => (encode ? encodeURIComponent(text) : text);
  if (parameter.json) {
    return enc(JSON.stringify(value));
  }
  if (!isComposite(value)) {
    return enc(scalar(value));
  }
  if (!Array.isArray(value) && parameter.explode) {
    return Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => `${enc(k)}=${enc(scalar(v))}`)
      .join(',');
  }
  return flatten(value).map(enc).join(',');
}

function pathValue(parameter: ParameterPlan, value: unknown): string {
  const text = scalar(value);
  // "." and ".." would be resolved as relative segments, reaching other endpoints.
  if (!isComposite(value) && (text === '.' || text === '..' || text === '')) {
    throw new ArgumentError(`${parameter.argument} must not be empty, "." or ".."`);
  }
  const enc = encodeURIComponent;
  switch (parameter.style) {
    case 'label': {
      if (!isComposite(value) || parameter.json) {
        return `.${simpleValue(parameter, value, true)}`;
      }
      const parts = Array.isArray(value)
        ? value.map((v) => enc(scalar(v)))
        : Object.entries(value as Record<string, unknown>).map(([k, v]) =>
            parameter.explode ? `${enc(k)}=${enc(scalar(v))}` : `${enc(k)},${enc(scalar(v))}`,
          );
      return `.${parts.join(parameter.explode ? '.' : ',')}`;
    }
    case 'matrix': {
      const name = enc(parameter.name);
      if (!isComposite(value) || parameter.json) {
        return `;${name}=${simpleValue(parameter, value, true)}`;
      }
      if (parameter.explode) {
        return Array.isArray(value)
          ? value.map((v) => `;${name}=${enc(scalar(v))}`).join('')
          : Object.entries(value as Record<string, unknown>)
              .map(([k, v]) => `;${enc(k)}=${enc(scalar(v))}`)
              .join('');
      }
      return `;${name}=${flatten(value).map(enc).join(',')}`;
    }
    default:
      return simpleValue(parameter, value, true);
  }
}

function queryPairs(parameter: ParameterPlan, value: unknown): [string, string][] {
  const name = parameter.name;
  if (parameter.json) {
    return [[name, JSON.stringify(value)]];
  }
  if (!isComposite(value)) {
    return [[name, scalar(value)]];
  }
  if (parameter.style === 'deepObject' && !Array.isArray(value)) {
    return Object.entries(value as Record<string, unknown>).map(([k, v]) => [
      `${name}[${k}]`,
      scalar(v),
    ]);
  }
  if (Array.isArray(value)) {
    if (parameter.explode) {
      return value.map((v) => [name, scalar(v)]);
    }
    const separator =
      parameter.style === 'spaceDelimited' ? ' ' : parameter.style === 'pipeDelimited' ? '|' : ',';
    return [[name, value.map(scalar).join(separator)]];
  }
  if (parameter.explode) {
    return Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, scalar(v)]);
  }
  return [[name, flatten(value).join(',')]];
}

/** What came back over HTTP, body already read (and within the size limit). */
export interface HttpAnswer {
  readonly status: number;
  readonly statusText: string;
  readonly contentType: string;
  readonly location?: string;
  readonly body: Buffer;
}

/**
 * The tool result for an HTTP answer: 2xx JSON as structuredContent (objects as they are,
 * other JSON values under `result`) plus its text; other text as text; images and audio as
 * such; anything else (redirects, 4xx, 5xx) as a tool error with the status and the start of
 * the body. With `outputSchema`, a 2xx answer that is not a JSON object is an error too.
 */
export function toToolResult(answer: HttpAnswer, plan: OperationPlan): CallToolResult {
  const status = `HTTP ${answer.status}${answer.statusText ? ` ${answer.statusText}` : ''}`;
  const mediaType = answer.contentType.split(';')[0].trim().toLowerCase();
  if (answer.status >= 300 && answer.status < 400) {
    return errorResult(
      `${status}: redirect${answer.location ? ` to ${answer.location}` : ''} not followed`,
    );
  }
  if (answer.status < 200 || answer.status >= 300) {
    const text = decode(answer.body, answer.contentType);
    const quoted = text.length > ERROR_BODY_CHARS ? `${text.slice(0, ERROR_BODY_CHARS)}…` : text;
    return errorResult(quoted.trim() === '' ? status : `${status}: ${quoted}`);
  }
  const expectsObject = plan.tool.outputSchema !== undefined;
  if (answer.body.length === 0) {
    return expectsObject
      ? errorResult(`${status} without the JSON body the operation declares`)
      : { content: [{ type: 'text', text: status }] };
  }
  if (isJsonMediaType(mediaType)) {
    const text = decode(answer.body, answer.contentType);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return expectsObject
        ? errorResult(`${status} with a body that is not valid JSON`)
        : { content: [{ type: 'text', text }] };
    }
    const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
    if (expectsObject && !isObject) {
      return errorResult(`${status} with JSON that is not an object, as the operation declares`);
    }
    return {
      content: [{ type: 'text', text: JSON.stringify(value) }],
      structuredContent: (isObject ? value : { result: value }) as JsonObject,
    };
  }
  if (expectsObject) {
    return errorResult(`${status} with ${mediaType || 'untyped'} content instead of JSON`);
  }
  const block = contentBlock(answer, mediaType);
  return { content: [block] };
}

function contentBlock(answer: HttpAnswer, mediaType: string): ContentBlock {
  if (mediaType.startsWith('image/')) {
    return { type: 'image', data: answer.body.toString('base64'), mimeType: mediaType };
  }
  if (mediaType.startsWith('audio/')) {
    return { type: 'audio', data: answer.body.toString('base64'), mimeType: mediaType };
  }
  if (isTextual(mediaType, answer.contentType)) {
    return { type: 'text', text: decode(answer.body, answer.contentType) };
  }
  return {
    type: 'text',
    text: `Binary response (${mediaType || 'no content type'}, ${answer.body.length} bytes) not shown`,
  };
}

function isTextual(mediaType: string, contentType: string): boolean {
  return (
    mediaType === '' ||
    mediaType.startsWith('text/') ||
    /\+(xml|yaml)$/.test(mediaType) ||
    /^application\/(xml|yaml|x-yaml|javascript|x-www-form-urlencoded|graphql)$/.test(mediaType) ||
    /;\s*charset=/i.test(contentType)
  );
}

function decode(body: Buffer, contentType: string): string {
  const charset = /;\s*charset="?([^";\s]+)/i.exec(contentType)?.[1];
  try {
    return new TextDecoder(charset ?? 'utf-8').decode(body);
  } catch {
    return new TextDecoder('utf-8').decode(body);
  }
}

export function errorResult(text: string): CallToolResult {
  return { content: [{ type: 'text', text }], isError: true };
}

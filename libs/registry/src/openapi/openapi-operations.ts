import type { JsonObject, Tool } from '@portico/mcp-protocol';
import {
  isObject,
  LocalRefResolver,
  OpenApiDocumentError,
  type OpenApiDocument,
} from './openapi-document';
import { isObjectSchema, toJsonSchema } from './openapi-schema';

export const HTTP_METHODS = [
  'get',
  'put',
  'post',
  'delete',
  'options',
  'head',
  'patch',
  'trace',
] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

export type ParameterLocation = 'path' | 'query' | 'header' | 'cookie';

/** Where one tool argument goes in the HTTP request, and how it is serialized. */
export interface ParameterPlan {
  /** The tool argument's name (the parameter's, unless two parameters share it). */
  readonly argument: string;
  readonly name: string;
  readonly in: ParameterLocation;
  readonly style: string;
  readonly explode: boolean;
  /** A `content` parameter: the value is sent as JSON text. */
  readonly json: boolean;
}

/** How a tool call becomes an HTTP request. */
export interface OperationPlan {
  /** operationId, or `{method}_{path}` sanitized: the tool's name before namespacing. */
  readonly key: string;
  readonly method: HttpMethod;
  /** The path template, e.g. `/pets/{petId}`. */
  readonly path: string;
  readonly parameters: readonly ParameterPlan[];
  /** The JSON request body, sent from the `body` argument. */
  readonly body?: { readonly mediaType: string; readonly required: boolean };
  readonly accept: string;
  /** The tool definition under `key`. */
  readonly tool: Tool;
}

/** An operation left out of the catalog, and why. */
export interface SkippedOperation {
  readonly key: string;
  readonly reason: string;
}

export const BODY_ARGUMENT = 'body';

const READ_ONLY: readonly HttpMethod[] = ['get', 'head'];
const IDEMPOTENT: readonly HttpMethod[] = ['get', 'head', 'put', 'delete', 'options', 'trace'];
/** The spec says these header parameters are ignored: the request's own headers cover them. */
const IGNORED_HEADERS = new Set(['accept', 'content-type', 'authorization']);
const DEFAULT_STYLE: Record<ParameterLocation, string> = {
  path: 'simple',
  query: 'form',
  header: 'simple',
  cookie: 'form',
};

/** `application/json`, `application/problem+json`, `application/vnd.x+json; charset=utf-8`. */
export function isJsonMediaType(mediaType: string): boolean {
  const type = mediaType.split(';')[0].trim().toLowerCase();
  return type === 'application/json' || /^[a-z]+\/[^\s;]+\+json$/.test(type);
}

/**
 * The operations of an OpenAPI 3.x document as tools, in document order. `allow`, when given,
 * keeps only the operations whose key (operationId, or the derived name) it lists. Operations
 * the gateway cannot call (a required request body that is not JSON) are returned as skipped.
 * Throws OpenApiDocumentError for a document it cannot read (e.g. a remote $ref in an operation).
 */
export function readOperations(
  document: OpenApiDocument,
  allow?: readonly string[],
): { operations: OperationPlan[]; skipped: SkippedOperation[] } {
  const refs = new LocalRefResolver(document);
  const allowed = allow ? new Set(allow) : undefined;
  const operations: OperationPlan[] = [];
  const skipped: SkippedOperation[] = [];
  for (const [path, rawItem] of Object.entries(document.paths ?? {})) {
    const item = refs.target(rawItem, `paths.${path}`);
    if (!isObject(item)) {
      continue;
    }
    for (const method of HTTP_METHODS) {
      const operation = item[method];
      if (!isObject(operation)) {
        continue;
      }
      const key =
        typeof operation.operationId === 'string' && operation.operationId !== ''
          ? operation.operationId
          : derivedName(method, path);
      if (allowed && !allowed.has(key)) {
        continue;
      }
      const result = planOperation(document, refs, path, method, item, operation, key);
      if ('reason' in result) {
        skipped.push(result);
      } else {
        operations.push(result);
      }
    }
  }
  return { operations, skipped };
}

/** `get /pets/{petId}` → `get_pets_petId`. */
export function derivedName(method: string, path: string): string {
  const name = `${method}_${path}`
    .replace(/[^A-Za-z0-9_.-]+/g, '_')
    .replace(/_+/g, '_')
    .replace(/_$/, '');
  return name;
}

function planOperation(
  document: OpenApiDocument,
  refs: LocalRefResolver,
  path: string,
  method: HttpMethod,
  item: Record<string, unknown>,
  operation: Record<string, unknown>,
  key: string,
): OperationPlan | SkippedOperation {
  const at = `paths.${path}.${method}`;
  // A Map: parameter names such as __proto__ must stay plain keys.
  const properties = new Map<string, JsonObject>();
  const required: string[] = [];

  let body: OperationPlan['body'];
  if (operation.requestBody !== undefined) {
    const requestBody = refs.resolve<Record<string, unknown>>(
      operation.requestBody,
      `${at}.requestBody`,
    );
    const content = isObject(requestBody.content) ? requestBody.content : {};
    const mediaType = Object.keys(content).find(isJsonMediaType);
    const isRequired = requestBody.required === true;
    if (mediaType !== undefined) {
      const media = content[mediaType];
      const schema = toJsonSchema(isObject(media) ? media.schema : undefined, document.openapi);
      if (typeof requestBody.description === 'string' && schema.description === undefined) {
        schema.description = requestBody.description;
      }
      properties.set(BODY_ARGUMENT, schema);
      if (isRequired) {
        required.push(BODY_ARGUMENT);
      }
      body = { mediaType, required: isRequired };
    } else if (isRequired) {
      return {
        key,
        reason: `its request body is not JSON (${Object.keys(content).join(', ') || 'no media type'})`,
      };
    }
  }

  const parameters: ParameterPlan[] = [];
  for (const parameter of mergedParameters(refs, item, operation, at)) {
    const location = parameter.in as ParameterLocation;
    const name = parameter.name as string;
    if (location === 'header' && IGNORED_HEADERS.has(name.toLowerCase())) {
      continue;
    }
    const argument = [name, `${location}_${name}`].find((n) => !properties.has(n));
    if (argument === undefined) {
      return { key, reason: `two parameters both named ${name} in ${location}` };
    }
    const content = isObject(parameter.content) ? parameter.content : undefined;
    const media = content ? Object.values(content)[0] : undefined;
    const rawSchema = content ? (isObject(media) ? media.schema : undefined) : parameter.schema;
    const schema = toJsonSchema(rawSchema, document.openapi);
    if (typeof parameter.description === 'string' && schema.description === undefined) {
      schema.description = parameter.description;
    }
    if (parameter.deprecated === true) {
      schema.deprecated = true;
    }
    properties.set(argument, schema);
    if (location === 'path' || parameter.required === true) {
      required.push(argument);
    }
    parameters.push({
      argument,
      name,
      in: location,
      style: typeof parameter.style === 'string' ? parameter.style : DEFAULT_STYLE[location],
      explode:
        typeof parameter.explode === 'boolean'
          ? parameter.explode
          : (parameter.style ?? DEFAULT_STYLE[location]) === 'form',
      json: content !== undefined,
    });
  }
  for (const match of path.matchAll(/\{([^}]+)\}/g)) {
    if (!parameters.some((p) => p.in === 'path' && p.name === match[1])) {
      return { key, reason: `path parameter ${match[1]} is not declared` };
    }
  }

  const responses = isObject(operation.responses) ? operation.responses : {};
  const successes = Object.entries(responses)
    .filter(([status]) => /^2(\d\d|XX)$/i.test(status))
    .map(([status, response]) =>
      refs.resolve<Record<string, unknown>>(response, `${at}.responses.${status}`),
    );
  const jsonSchemas = successes.map((response) => {
    const content = isObject(response.content) ? response.content : {};
    const mediaType = Object.keys(content).find(isJsonMediaType);
    const media = mediaType !== undefined ? content[mediaType] : undefined;
    return isObject(media) && media.schema !== undefined
      ? toJsonSchema(media.schema, document.openapi)
      : undefined;
  });
  // Declared only when every success answer is a JSON object: the engine holds results to it.
  const outputSchema =
    jsonSchemas.length > 0 && jsonSchemas.every((s) => s !== undefined && isObjectSchema(s))
      ? jsonSchemas[0]
      : undefined;
  const anyJson = successes.some(
    (response) => isObject(response.content) && Object.keys(response.content).some(isJsonMediaType),
  );

  const summary = typeof operation.summary === 'string' ? operation.summary.trim() : '';
  const details = typeof operation.description === 'string' ? operation.description.trim() : '';
  const description = [
    operation.deprecated === true ? 'Deprecated.' : '',
    details || summary || `${method.toUpperCase()} ${path}`,
  ]
    .filter((part) => part !== '')
    .join(' ');

  const inputSchema: JsonObject = {
    type: 'object',
    properties: Object.fromEntries(properties),
    additionalProperties: false,
    ...(required.length > 0 && { required }),
  };
  return {
    key,
    method,
    path,
    parameters,
    body,
    accept: anyJson ? 'application/json, */*;q=0.5' : '*/*',
    tool: {
      name: key,
      ...(summary !== '' && { title: summary }),
      description,
      inputSchema,
      ...(outputSchema && { outputSchema }),
      annotations: {
        readOnlyHint: READ_ONLY.includes(method),
        idempotentHint: IDEMPOTENT.includes(method),
        ...(!READ_ONLY.includes(method) && { destructiveHint: method === 'delete' }),
        openWorldHint: true,
      },
    },
  };
}

/** Path-item parameters overridden by the operation's own (same name and location). */
function mergedParameters(
  refs: LocalRefResolver,
  item: Record<string, unknown>,
  operation: Record<string, unknown>,
  at: string,
): Record<string, unknown>[] {
  const byKey = new Map<string, Record<string, unknown>>();
  for (const [list, where] of [
    [item.parameters, `${at}(path item).parameters`],
    [operation.parameters, `${at}.parameters`],
  ] as const) {
    if (!Array.isArray(list)) {
      continue;
    }
    list.forEach((raw, i) => {
      const parameter = refs.resolve<unknown>(raw, `${where}[${i}]`);
      if (
        !isObject(parameter) ||
        typeof parameter.name !== 'string' ||
        !['path', 'query', 'header', 'cookie'].includes(parameter.in as string)
      ) {
        throw new OpenApiDocumentError(`${where}[${i}] is not a valid parameter`);
      }
      const location = parameter.in as string;
      const name = location === 'header' ? parameter.name.toLowerCase() : parameter.name;
      byKey.set(`${location}:${name}`, parameter);
    });
  }
  return [...byKey.values()];
}

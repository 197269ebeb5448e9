import { fullFormats } from 'ajv-formats/dist/formats';
import type { JsonObject } from '@portico/mcp-protocol';
import { isObject } from './openapi-document';

/** OpenAPI-only keywords with no meaning for JSON Schema validation. */
const OPENAPI_ONLY = new Set(['discriminator', 'xml', 'externalDocs', 'nullable', 'example']);

/** Keywords whose value is one schema. */
const SCHEMA_KEYWORDS = [
  'items',
  'additionalProperties',
  'not',
  'contains',
  'propertyNames',
  'if',
  'then',
  'else',
  'unevaluatedItems',
  'unevaluatedProperties',
  'contentSchema',
] as const;
/** Keywords whose value is a list of schemas. */
const SCHEMA_LIST_KEYWORDS = ['allOf', 'anyOf', 'oneOf', 'prefixItems'] as const;
/** Keywords whose value maps names to schemas. */
const SCHEMA_MAP_KEYWORDS = [
  'properties',
  'patternProperties',
  'dependentSchemas',
  '$defs',
] as const;

/**
 * A (dereferenced) OpenAPI Schema Object as a JSON Schema 2020-12 document the engine's
 * validator accepts: 3.0's `nullable` becomes a `null` type, boolean `exclusiveMinimum` /
 * `exclusiveMaximum` become numeric bounds, `example` becomes `examples`, OpenAPI-only keywords
 * are dropped, and so are formats the validator does not know (OpenAPI allows any format name).
 */
export function toJsonSchema(schema: unknown, version: string): JsonObject {
  const out = convert(schema, version.startsWith('3.0'));
  return isObject(out) ? out : {};
}

function convert(schema: unknown, v30: boolean): unknown {
  if (typeof schema === 'boolean') {
    return schema;
  }
  if (!isObject(schema)) {
    return {};
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    if (OPENAPI_ONLY.has(key) || key.startsWith('x-')) {
      continue;
    }
    if ((SCHEMA_KEYWORDS as readonly string[]).includes(key)) {
      out[key] = typeof value === 'boolean' ? value : convert(value, v30);
    } else if ((SCHEMA_LIST_KEYWORDS as readonly string[]).includes(key) && Array.isArray(value)) {
      out[key] = value.map((item) => convert(item, v30));
    } else if ((SCHEMA_MAP_KEYWORDS as readonly string[]).includes(key) && isObject(value)) {
      out[key] = Object.fromEntries(
        Object.entries(value).map(([name, item]) => [name, convert(item, v30)]),
      );
    } else if (key === 'format') {
      if (typeof value === 'string' && Object.hasOwn(fullFormats, value)) {
        out.format = value;
      }
    } else {
      out[key] = value;
    }
  }
  if (schema.example !== undefined && out.examples === undefined) {
    out.examples = [schema.example];
  }
  if (v30) {
    convertBounds(schema, out);
    if (schema.nullable === true) {
      allowNull(out);
    }
  }
  return out;
}

/** OpenAPI 3.0 (draft 4 style): `exclusiveMaximum: true` qualifies `maximum`. */
function convertBounds(schema: Record<string, unknown>, out: Record<string, unknown>): void {
  for (const [flag, bound] of [
    ['exclusiveMinimum', 'minimum'],
    ['exclusiveMaximum', 'maximum'],
  ] as const) {
    if (typeof schema[flag] !== 'boolean') {
      continue;
    }
    delete out[flag];
    if (schema[flag] === true && typeof schema[bound] === 'number') {
      out[flag] = schema[bound];
      delete out[bound];
    }
  }
}

function allowNull(out: Record<string, unknown>): void {
  if (typeof out.type === 'string') {
    out.type = [out.type, 'null'];
  } else if (Array.isArray(out.type) && !out.type.includes('null')) {
    out.type = [...(out.type as unknown[]), 'null'];
  }
  if (Array.isArray(out.enum) && !out.enum.includes(null)) {
    out.enum = [...(out.enum as unknown[]), null];
  }
}

/** Whether `schema` describes JSON objects only (a usable MCP outputSchema). */
export function isObjectSchema(schema: JsonObject): boolean {
  return schema.type === 'object';
}

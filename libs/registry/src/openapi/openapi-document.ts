import { parse as parseYaml } from 'yaml';

/** A parsed OpenAPI 3.x document (only the parts the gateway reads are typed). */
export interface OpenApiDocument {
  readonly openapi: string;
  readonly servers?: readonly OpenApiServer[];
  readonly paths?: Readonly<Record<string, unknown>>;
  readonly components?: Readonly<Record<string, unknown>>;
  readonly [key: string]: unknown;
}

export interface OpenApiServer {
  readonly url: string;
  readonly variables?: Readonly<Record<string, { default?: unknown }>>;
}

/** A document that cannot be used: not OpenAPI 3.x, malformed, or with unsupported references. */
export class OpenApiDocumentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OpenApiDocumentError';
  }
}

/** Upper bound on the nodes one dereferenced value may expand to (reference bombs). */
const MAX_EXPANDED_NODES = 200_000;

/**
 * Parses the text of an OpenAPI document, JSON or YAML (YAML 1.2 core schema, a JSON superset,
 * so one parser reads both), and checks that it is OpenAPI 3.0 or 3.1.
 */
export function parseOpenApiDocument(text: string): OpenApiDocument {
  let data: unknown;
  try {
    data = parseYaml(text, { schema: 'core', maxAliasCount: 100, uniqueKeys: true });
  } catch (err) {
    throw new OpenApiDocumentError(
      `the document is neither JSON nor YAML: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  if (!isObject(data)) {
    throw new OpenApiDocumentError('the document is not an object');
  }
  if (typeof data.swagger === 'string') {
    throw new OpenApiDocumentError(
      `Swagger ${data.swagger} documents are not supported; convert the document to OpenAPI 3`,
    );
  }
  if (typeof data.openapi !== 'string' || !/^3\.[01]\.\d+/.test(data.openapi)) {
    throw new OpenApiDocumentError('the document is not OpenAPI 3.0 or 3.1 (no "openapi: 3.x.y")');
  }
  if (data.paths !== undefined && !isObject(data.paths)) {
    throw new OpenApiDocumentError('"paths" is not an object');
  }
  return data as OpenApiDocument;
}

/**
 * Resolves the local references (`#/components/...`, any JSON pointer into the document) of
 * the values it is given. Remote references (another file or URL) are refused with the place
 * they occur. A reference cycle (a recursive schema) is cut where it repeats and replaced by
 * an unconstrained schema, `{}`, since tool schemas must be self-contained trees.
 */
export class LocalRefResolver {
  constructor(private readonly document: OpenApiDocument) {}

  /** `value` with every `$ref` inlined; `at` names where it sits, for error messages. */
  resolve<T = unknown>(value: unknown, at: string): T {
    const budget = { nodes: 0 };
    return this.expand(value, at, [], budget) as T;
  }

  /** The object a reference (or a plain value) stands for, one level deep. */
  target(value: unknown, at: string): unknown {
    const seen = new Set<string>();
    let current = value;
    while (isObject(current) && typeof current.$ref === 'string') {
      const ref = current.$ref;
      if (seen.has(ref)) {
        throw new OpenApiDocumentError(`$ref cycle through "${ref}" at ${at}`);
      }
      seen.add(ref);
      current = this.pointer(ref, at);
    }
    return current;
  }

  private expand(value: unknown, at: string, stack: string[], budget: { nodes: number }): unknown {
    if (++budget.nodes > MAX_EXPANDED_NODES) {
      throw new OpenApiDocumentError(`${at} expands to more than ${MAX_EXPANDED_NODES} nodes`);
    }
    if (Array.isArray(value)) {
      return value.map((item, i) => this.expand(item, `${at}[${i}]`, stack, budget));
    }
    if (!isObject(value)) {
      return value;
    }
    if (typeof value.$ref === 'string') {
      const ref = value.$ref;
      if (stack.includes(ref)) {
        return {};
      }
      const resolved = this.expand(this.pointer(ref, at), at, [...stack, ref], budget);
      const siblings = Object.entries(value).filter(([key]) => key !== '$ref');
      // OpenAPI 3.1 allows keywords beside $ref (e.g. a description); they refine the target.
      if (siblings.length === 0 || !isObject(resolved)) {
        return resolved;
      }
      const out: Record<string, unknown> = { ...resolved };
      for (const [key, sibling] of siblings) {
        out[key] = this.expand(sibling, `${at}.${key}`, stack, budget);
      }
      return out;
    }
    const out: Record<string, unknown> = {};
    for (const [key, child] of Object.entries(value)) {
      out[key] = this.expand(child, `${at}.${key}`, stack, budget);
    }
    return out;
  }

  private pointer(ref: string, at: string): unknown {
    if (!ref.startsWith('#')) {
      throw new OpenApiDocumentError(
        `remote $ref "${ref}" at ${at} is not supported: only references inside the document ` +
          '("#/components/...") are',
      );
    }
    const fragment = ref.slice(1);
    if (fragment !== '' && !fragment.startsWith('/')) {
      throw new OpenApiDocumentError(`$ref "${ref}" at ${at} is not a JSON pointer`);
    }
    let current: unknown = this.document;
    for (const raw of fragment === '' ? [] : fragment.slice(1).split('/')) {
      const segment = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
      const next: unknown = Array.isArray(current)
        ? current[Number(segment)]
        : isObject(current) && Object.hasOwn(current, segment)
          ? current[segment]
          : undefined;
      if (next === undefined) {
        throw new OpenApiDocumentError(`$ref "${ref}" at ${at} points to nothing`);
      }
      current = next;
    }
    return current;
  }
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

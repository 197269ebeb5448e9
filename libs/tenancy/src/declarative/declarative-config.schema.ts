/*
 * JSON Schema (draft-07) of `portico.yaml`, the declarative tenant configuration. It covers
 * shapes, formats and defaults; rules that need more than one value at a time (uniqueness, the
 * target format of each backend kind, jwksUri xor publicKey, reserved slugs, environment
 * references) are checked after it in declarative-config.ts, where the messages can say more
 * than a schema keyword can.
 */

import { ASYMMETRIC_JWT_ALGORITHMS, ROLES } from '@portico/auth';
import { BACKEND_KINDS } from '@portico/persistence';
import { BACKEND_SETTINGS_SCHEMA, MAX_QUEUE_PRIORITY, MIN_QUEUE_PRIORITY } from '@portico/queue';
import {
  RESERVED_SLUGS as TENANT_RESERVED_SLUGS,
  SLUG_PATTERN as TENANT_SLUG_PATTERN,
} from '../tenant/tenant.service';
import {
  MAX_EXPOSURE_ENTRIES,
  SERVER_NAME_PATTERN as SERVER_NAME_REGEXP,
} from '../virtual-server/virtual-server-exposure';

/** Environment variable names accepted in secret references. */
export const ENV_NAME_PATTERN = '^[A-Za-z_][A-Za-z0-9_]*$';

/**
 * The string form of a secret reference, `${env:NAME}`. A string secret that does not match it
 * is an inline literal, which the parser reports without echoing.
 */
export const SECRET_REF_STRING_PATTERN = '^\\$\\{env:[A-Za-z_][A-Za-z0-9_]*\\}$';

/** Tenant slugs become URL path segments (`/mcp/{slug}`), hence lowercase and no edge hyphens. */
export const SLUG_PATTERN = TENANT_SLUG_PATTERN.source;

/** Virtual server names: the last segment of `/mcp/{slug}/{name}`, with the slug rules. */
export const SERVER_NAME_PATTERN = SERVER_NAME_REGEXP.source;

/** Names of backends and API keys. */
export const NAME_PATTERN = '^[a-z0-9][a-z0-9_-]{0,62}$';

export const TOOL_NAME_PATTERN = '^[A-Za-z0-9_./-]{1,128}$';

/** RFC 6749 scope-token: printable ASCII except space, `"` and `\`. */
export const SCOPE_PATTERN = '^[\\x21\\x23-\\x5B\\x5D-\\x7E]+$';

export const HTTP_URL_PATTERN = '^https?://';

/** RFC 9110 token: header field names, reused as the field names of other transports. */
export const FIELD_NAME_PATTERN = "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$";

export { BACKEND_KINDS };

/** Path segments the gateway routes itself, so no tenant may own them. */
export const RESERVED_SLUGS: readonly string[] = [...TENANT_RESERVED_SLUGS];

/** Built-in fixture catalogues a `fixture` backend can name. */
export const FIXTURE_TARGETS = ['conformance', 'echo'] as const;

export { ROLES };

/** Asymmetric JWS algorithms only: the gateway verifies with public keys, never shared secrets. */
export const JWT_ALGORITHMS = ASYMMETRIC_JWT_ALGORITHMS;

export const DEFAULT_JWT_ALGORITHMS = ['RS256', 'ES256'] as const;

const TOOL_NAME = { type: 'string', pattern: TOOL_NAME_PATTERN } as const;

const SCOPE = { type: 'string', pattern: SCOPE_PATTERN } as const;

const SCOPES = { type: 'array', items: SCOPE, uniqueItems: true, default: [] } as const;

const POSITIVE_INT = { type: 'integer', minimum: 1 } as const;

const URI = { type: 'string', format: 'uri' } as const;

const HTTP_URI = { type: 'string', format: 'uri', pattern: HTTP_URL_PATTERN } as const;

/*
 * One schema for both reference forms rather than a oneOf: `properties`/`required` only apply to
 * objects and `pattern` only to strings, so a literal produces exactly one error (the pattern)
 * instead of a oneOf cascade. Referenced through `definitions` so that errors under it are
 * recognisable by their schema path.
 */
const SECRET_REF = {
  type: ['object', 'string'],
  properties: { env: { type: 'string', pattern: ENV_NAME_PATTERN } },
  required: ['env'],
  additionalProperties: false,
  pattern: SECRET_REF_STRING_PATTERN,
} as const;

/** Schema path prefix of every ajv error raised inside a secret reference. */
export const SECRET_REF_SCHEMA_PATH = '#/definitions/secretRef/';

const SECRET = { $ref: '#/definitions/secretRef' } as const;

const JWT = {
  type: 'object',
  additionalProperties: false,
  required: ['issuer', 'audience'],
  properties: {
    issuer: URI,
    // A union type rather than anyOf, for the same single-error reason as SECRET_REF.
    audience: {
      type: ['string', 'array'],
      minLength: 1,
      items: { type: 'string', minLength: 1 },
      minItems: 1,
      uniqueItems: true,
    },
    jwksUri: HTTP_URI,
    publicKey: SECRET,
    algorithms: {
      type: 'array',
      items: { type: 'string', enum: JWT_ALGORITHMS },
      minItems: 1,
      uniqueItems: true,
      default: DEFAULT_JWT_ALGORITHMS,
    },
    rolesClaim: { type: 'string', minLength: 1, maxLength: 200 },
    scopesClaim: { type: 'string', minLength: 1, maxLength: 200 },
  },
} as const;

/** How a backend with replicas spreads its calls over them (`settings.loadBalancing`). */
export const LOAD_BALANCING_POLICIES = ['round-robin', 'least-in-flight'] as const;

/** Replicas of one backend at most: the health checks probe each of them. */
export const MAX_REPLICAS = 16;

/** `settings.healthCheck` of a backend with replicas: the periodic probe of each. */
const HEALTH_CHECK_PROPERTIES = {
  intervalMs: { type: 'integer', minimum: 100, maximum: 3_600_000 },
  timeoutMs: { type: 'integer', minimum: 1, maximum: 600_000 },
  unhealthyAfter: { type: 'integer', minimum: 1, maximum: 100 },
  healthyAfter: { type: 'integer', minimum: 1, maximum: 100 },
} as const;

/**
 * Replication settings shared by the backend kinds with URL targets (mcp-http, mcp-sse,
 * mcp-ws, openapi): `replicas` are more instances of the same service, reached with the same
 * credentials (each passes the SSRF guard like the target); the target's scheme rules apply to
 * them when the backend connects.
 */
export const UPSTREAM_REPLICA_SETTINGS = {
  replicas: {
    type: 'array',
    items: { type: 'string', format: 'uri', maxLength: 4096 },
    maxItems: MAX_REPLICAS - 1,
    uniqueItems: true,
  },
  loadBalancing: { type: 'string', enum: LOAD_BALANCING_POLICIES },
  healthCheck: { type: 'object', additionalProperties: false, properties: HEALTH_CHECK_PROPERTIES },
} as const;

/**
 * Upstream sessions of the MCP kinds: a 2025-era client session gets one of its own
 * (`per-client`, up to `maxClientSessions` per backend) or shares the pooled one (`pooled`).
 */
export const UPSTREAM_SESSION_SETTINGS = {
  sessions: { type: 'string', enum: ['per-client', 'pooled'] },
  maxClientSessions: { type: 'integer', minimum: 0, maximum: 10_000 },
} as const;

/** `settings` of an upstream MCP backend reached by URL (mcp-http, mcp-sse, mcp-ws). */
export const MCP_URL_SETTINGS = {
  type: 'object',
  properties: { ...UPSTREAM_REPLICA_SETTINGS, ...UPSTREAM_SESSION_SETTINGS },
} as const;

/** Auth types an `openapi` backend can apply its credentials with. */
export const OPENAPI_AUTH_TYPES = ['bearer', 'header', 'query'] as const;

/**
 * `settings` of an `openapi` backend (REST service described by an OpenAPI 3.x document). Open
 * to the settings every upstream kind shares (prefix, breaker, executor...), typed where known.
 */
export const OPENAPI_SETTINGS = {
  type: 'object',
  properties: {
    baseUrl: HTTP_URI,
    operations: {
      type: 'array',
      items: { type: 'string', minLength: 1, maxLength: 256 },
      uniqueItems: true,
    },
    auth: {
      type: 'object',
      additionalProperties: false,
      required: ['type'],
      properties: {
        type: { type: 'string', enum: OPENAPI_AUTH_TYPES },
        name: { type: 'string', pattern: FIELD_NAME_PATTERN },
        credential: { type: 'string', minLength: 1, maxLength: 128 },
      },
      if: { properties: { type: { enum: ['header', 'query'] } } },
      then: { required: ['name'], properties: { name: { type: 'string' } } },
    },
    timeoutMs: POSITIVE_INT,
    maxResponseBytes: { type: 'integer', minimum: 1, maximum: 67_108_864 },
    internal: { type: 'boolean' },
    prefix: { type: 'string', maxLength: 64 },
    separator: { type: 'string', maxLength: 8 },
    breakerThreshold: POSITIVE_INT,
    breakerResetMs: POSITIVE_INT,
    maxConcurrent: POSITIVE_INT,
    maxQueued: { type: 'integer', minimum: 0 },
    ...UPSTREAM_REPLICA_SETTINGS,
    // For openapi, replicas are more base URLs of the API (the document is read from target).
    replicas: { ...UPSTREAM_REPLICA_SETTINGS.replicas, items: { ...HTTP_URI, maxLength: 4096 } },
    healthCheck: {
      ...UPSTREAM_REPLICA_SETTINGS.healthCheck,
      properties: {
        ...HEALTH_CHECK_PROPERTIES,
        // GET <base URL><path> must answer 2xx; without it, any HTTP answer to HEAD will do.
        path: { type: 'string', minLength: 1, maxLength: 2048, pattern: '^[^#\\s]+$' },
      },
    },
  },
} as const;

/**
 * `settings` of an `mcp-stdio` backend: the command's arguments, directory and environment,
 * and how its process is supervised (started on demand or eagerly, idle stop, restart backoff).
 */
export const STDIO_SETTINGS = {
  type: 'object',
  properties: {
    args: { type: 'array', items: { type: 'string', maxLength: 4096 }, maxItems: 256 },
    cwd: { type: 'string', pattern: '^/', maxLength: 4096 },
    env: {
      type: 'object',
      propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
      additionalProperties: { type: 'string', maxLength: 32768 },
    },
    start: { type: 'string', enum: ['on-demand', 'eager'] },
    idleTimeoutMs: { type: 'integer', minimum: 0, maximum: 2147483647 },
    restartInitialMs: { type: 'integer', minimum: 1, maximum: 2147483647 },
    restartMaxMs: { type: 'integer', minimum: 1, maximum: 2147483647 },
    ...UPSTREAM_SESSION_SETTINGS,
  },
} as const;

/** Kind-specific settings schemas (the other keys are shared by every upstream kind). */
export const BACKEND_KIND_SETTINGS: Readonly<Record<string, object>> = {
  openapi: OPENAPI_SETTINGS,
  'mcp-stdio': STDIO_SETTINGS,
  'mcp-http': MCP_URL_SETTINGS,
  'mcp-sse': MCP_URL_SETTINGS,
  'mcp-ws': MCP_URL_SETTINGS,
};

const BACKEND = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'kind', 'target'],
  allOf: [
    {
      if: { properties: { kind: { enum: ['mcp-http', 'mcp-sse', 'mcp-ws'] } } },
      then: { properties: { settings: MCP_URL_SETTINGS } },
    },
    {
      if: { properties: { kind: { const: 'openapi' } } },
      then: { properties: { settings: OPENAPI_SETTINGS } },
    },
    {
      if: { properties: { kind: { const: 'mcp-stdio' } } },
      then: { properties: { settings: STDIO_SETTINGS } },
    },
  ],
  properties: {
    name: { type: 'string', pattern: NAME_PATTERN },
    kind: { type: 'string', enum: BACKEND_KINDS },
    target: { type: 'string', minLength: 1, maxLength: 4096 },
    // Execution keys (executor, timeoutMs, retry, tools) are checked against the schema the
    // admin API uses too; every other key belongs to the backend kind.
    settings: { ...BACKEND_SETTINGS_SCHEMA, default: {} },
    credentials: {
      type: 'object',
      propertyNames: { pattern: FIELD_NAME_PATTERN },
      additionalProperties: SECRET,
      default: {},
    },
  },
} as const;

const POLICY = {
  type: 'object',
  additionalProperties: false,
  required: ['tool'],
  properties: {
    tool: TOOL_NAME,
    requiredScopes: SCOPES,
    disabled: { type: 'boolean', default: false },
    description: { type: 'string', minLength: 1, maxLength: 4096 },
    rename: TOOL_NAME,
  },
} as const;

const API_KEY = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'secret'],
  properties: {
    name: { type: 'string', pattern: NAME_PATTERN },
    secret: SECRET,
    roles: {
      type: 'array',
      items: { type: 'string', enum: ROLES },
      uniqueItems: true,
      default: [],
    },
    scopes: SCOPES,
    expiresAt: { type: 'string', format: 'date-time' },
  },
} as const;

const ROLE_BINDING = {
  type: 'object',
  additionalProperties: false,
  required: ['subject', 'role'],
  properties: {
    subject: { type: 'string', minLength: 1, maxLength: 256 },
    role: { type: 'string', enum: ROLES },
  },
} as const;

/*
 * One of a virtual server's lists. Entries are checked in declarative-config.ts with the admin
 * API's rules (exact names or `*` globs, per kind), so both report the same problems.
 */
const EXPOSURE_LIST = {
  type: 'array',
  items: { type: 'string' },
  maxItems: MAX_EXPOSURE_ENTRIES,
  default: [],
} as const;

const SERVER = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    // Reserved names are checked semantically, with a message naming the reason.
    name: { type: 'string', pattern: SERVER_NAME_PATTERN },
    title: { type: 'string', minLength: 1, maxLength: 200 },
    description: { type: 'string', minLength: 1, maxLength: 4096 },
    tools: EXPOSURE_LIST,
    prompts: EXPOSURE_LIST,
    resources: EXPOSURE_LIST,
    resourceTemplates: EXPOSURE_LIST,
  },
} as const;

const TENANT = {
  type: 'object',
  additionalProperties: false,
  required: ['slug', 'name'],
  properties: {
    // Reserved slugs are checked semantically, with a message naming the reason.
    slug: { type: 'string', pattern: SLUG_PATTERN },
    name: { type: 'string', minLength: 1, maxLength: 200, pattern: '\\S' },
    status: { type: 'string', enum: ['active', 'suspended'], default: 'active' },
    limits: {
      type: 'object',
      additionalProperties: false,
      properties: {
        maxSessions: POSITIVE_INT,
        maxConcurrentCalls: POSITIVE_INT,
        requestsPerMinute: POSITIVE_INT,
        maxConcurrentJobs: POSITIVE_INT,
        queuePriority: {
          type: 'integer',
          minimum: MIN_QUEUE_PRIORITY,
          maximum: MAX_QUEUE_PRIORITY,
        },
      },
      default: {},
    },
    auth: {
      type: 'object',
      additionalProperties: false,
      properties: {
        jwt: JWT,
        authorizationServers: { type: 'array', items: URI, uniqueItems: true, default: [] },
      },
    },
    backends: { type: 'array', items: BACKEND, default: [] },
    policies: { type: 'array', items: POLICY, default: [] },
    apiKeys: { type: 'array', items: API_KEY, default: [] },
    roleBindings: { type: 'array', items: ROLE_BINDING, default: [] },
    servers: { type: 'array', items: SERVER, default: [] },
  },
} as const;

/** The whole file. Validate with ajv `useDefaults` so omitted optional values get their default. */
export const DECLARATIVE_CONFIG_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://portico.dev/schemas/portico.yaml.json',
  title: 'Portico declarative configuration',
  type: 'object',
  additionalProperties: false,
  required: ['version', 'tenants'],
  definitions: { secretRef: SECRET_REF },
  properties: {
    version: { const: 1 },
    tenants: { type: 'array', items: TENANT },
  },
} as const;

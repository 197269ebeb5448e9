/*
 * Parse and validate half of `portico.yaml`. Three passes, each reporting everything it finds:
 * YAML syntax, the JSON Schema (ajv, allErrors), then rules that span several values. The
 * semantic pass runs even when the schema failed, so a file is fixed in one round; it therefore
 * reads the document defensively instead of trusting its shape.
 *
 * Secrets never appear in the file: they are environment references, resolved against the
 * `env` map passed in (never process.env, to keep the parse pure and testable). No message
 * includes a secret value, whether resolved or written inline by mistake.
 */
import { readFileSync } from 'node:fs';
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { LineCounter, parseDocument } from 'yaml';
import {
  BACKEND_KINDS,
  DECLARATIVE_CONFIG_SCHEMA,
  ENV_NAME_PATTERN,
  FIELD_NAME_PATTERN,
  FIXTURE_TARGETS,
  HTTP_URL_PATTERN,
  JWT_ALGORITHMS,
  NAME_PATTERN,
  BACKEND_KIND_SETTINGS,
  RESERVED_SLUGS,
  ROLES,
  SCOPE_PATTERN,
  SECRET_REF_SCHEMA_PATH,
  SECRET_REF_STRING_PATTERN,
  SLUG_PATTERN,
  TOOL_NAME_PATTERN,
} from './declarative-config.schema';
import {
  EXPOSURE_KINDS,
  exposureListProblems,
  RESERVED_SERVER_NAMES,
} from '../virtual-server/virtual-server-exposure';

/** How the file refers to a secret: `{ env: NAME }`, or the string `${env:NAME}`. */
export type SecretRef = { env: string };

export type BackendKind = (typeof BACKEND_KINDS)[number];

export type DeclaredRole = (typeof ROLES)[number];

export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

export interface DeclaredLimits {
  /** Concurrent 2025-era (Streamable HTTP) sessions. */
  maxSessions?: number;
  /** Concurrent `tools/call` requests. */
  maxConcurrentCalls?: number;
  /** Requests per minute, both protocol eras. */
  requestsPerMinute?: number;
  /** Queued tool calls running at once, on all workers together. */
  maxConcurrentJobs?: number;
  /** Queue priority of queued tool calls: 1 (first) to 10; a tool's own setting wins. */
  queuePriority?: number;
}

export interface DeclaredJwt {
  issuer: string;
  /** Always a list, whether the file gave one audience or several. */
  audience: string[];
  /** Exactly one of jwksUri and publicKey is set. */
  jwksUri?: string;
  /** PEM, resolved from its environment reference. */
  publicKey?: string;
  algorithms: JwtAlgorithm[];
  rolesClaim?: string;
  scopesClaim?: string;
}

export interface DeclaredAuth {
  jwt?: DeclaredJwt;
  /** Advertised in the RFC 9728 protected resource metadata. */
  authorizationServers: string[];
}

export interface DeclaredBackend {
  name: string;
  kind: BackendKind;
  /** Fixture name, URL, or command line (mcp-stdio), checked against the kind. */
  target: string;
  settings: Record<string, unknown>;
  /** Header or field name to resolved secret value. */
  credentials: Record<string, string>;
}

export interface DeclaredPolicy {
  tool: string;
  requiredScopes: string[];
  disabled: boolean;
  description?: string;
  rename?: string;
}

export interface DeclaredApiKey {
  name: string;
  /** The resolved key itself (`ptk_...`); store only a hash of it. */
  secret: string;
  roles: DeclaredRole[];
  scopes: string[];
  /** ISO 8601 date-time with a time zone, as written. */
  expiresAt?: string;
}

export interface DeclaredRoleBinding {
  /** JWT `sub`. */
  subject: string;
  role: DeclaredRole;
}

/** A virtual server: a named subset of the tenant's catalog at `/mcp/{slug}/{name}`. */
export interface DeclaredServer {
  name: string;
  title?: string;
  description?: string;
  /** Exposed tool names (after policies rename them), exact or `*` globs. */
  tools: string[];
  prompts: string[];
  /** Resource URIs, exact or `*` globs. */
  resources: string[];
  /** Resource templates by their URI template, exact or `*` globs. */
  resourceTemplates: string[];
}

export interface DeclaredTenant {
  slug: string;
  name: string;
  status: 'active' | 'suspended';
  limits: DeclaredLimits;
  auth?: DeclaredAuth;
  backends: DeclaredBackend[];
  policies: DeclaredPolicy[];
  apiKeys: DeclaredApiKey[];
  roleBindings: DeclaredRoleBinding[];
  servers: DeclaredServer[];
}

/** A validated `portico.yaml`, defaults applied and secret references resolved. */
export interface DeclarativeConfig {
  version: 1;
  tenants: DeclaredTenant[];
}

/** One thing wrong with the file. */
export interface ConfigProblem {
  /** Where, e.g. `tenants[0].backends[1].target`; `''` for the file as a whole. */
  path: string;
  message: string;
}

export type ParseResult =
  { ok: true; config: DeclarativeConfig } | { ok: false; problems: ConfigProblem[] };

const API_KEY_PATTERN = /^ptk_[A-Za-z0-9_-]{32,}$/;

const ENV_REFERENCE_HINT = 'use an env reference: { env: NAME } or "${env:NAME}"';

/** Readable explanations of the schema's patterns, instead of the regular expressions. */
const PATTERN_HINTS: Readonly<Record<string, string>> = {
  [SLUG_PATTERN]:
    'must be 1 to 48 lowercase letters, digits or hyphens, not starting or ending with a hyphen',
  [NAME_PATTERN]:
    'must be 1 to 63 lowercase letters, digits, "_" or "-", starting with a letter or digit',
  [TOOL_NAME_PATTERN]: 'must be 1 to 128 characters from A-Z a-z 0-9 _ . - /',
  [SCOPE_PATTERN]: 'must be a scope token: printable ASCII without spaces, quotes or backslashes',
  [HTTP_URL_PATTERN]: 'must be an http(s) URL',
  [FIELD_NAME_PATTERN]: 'must be a header field name (RFC 9110 token, at most 128 characters)',
  [ENV_NAME_PATTERN]: 'must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)',
  '\\S': 'must not be blank',
};

const FORMAT_HINTS: Readonly<Record<string, string>> = {
  uri: 'must be an absolute URI',
  'date-time': 'must be an ISO 8601 date-time with a time zone, e.g. 2027-01-01T00:00:00Z',
};

const TYPE_NAMES: Readonly<Record<string, string>> = {
  object: 'an object',
  array: 'an array',
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'a boolean',
  null: 'null',
};

let compiled: ValidateFunction | undefined;

function validator(): ValidateFunction {
  if (compiled === undefined) {
    // verbose: the 'none' algorithm message needs the offending value (never shown for secrets).
    const ajv = new Ajv({
      allErrors: true,
      useDefaults: true,
      verbose: true,
      strict: true,
      allowUnionTypes: true,
    });
    addFormats(ajv, ['uri', 'date-time']);
    compiled = ajv.compile(DECLARATIVE_CONFIG_SCHEMA);
  }
  return compiled;
}

/**
 * Parses and validates the text of a `portico.yaml` (YAML or JSON). Every problem is reported,
 * each with its path; secret references are resolved against `env`. Pure: the same text and
 * environment always give the same result. `source` names the file in syntax error positions.
 */
export function parseDeclarativeConfig(
  text: string,
  env: Readonly<Record<string, string | undefined>>,
  source?: string,
): ParseResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter,
    prettyErrors: false,
    uniqueKeys: true,
    // YAML 1.2 core, the JSON-compatible one: dates and yes/no stay strings, as the schema expects.
    schema: 'core',
  });
  if (doc.errors.length > 0) {
    // The document is unreliable past a syntax error; schema messages would only add noise.
    return {
      ok: false,
      problems: doc.errors.map((error) => {
        const { line, col } = lineCounter.linePos(error.pos[0]);
        const at = source === undefined ? `${line}:${col}` : `${source}:${line}:${col}`;
        return { path: '', message: `YAML syntax error at ${at}: ${error.message}` };
      }),
    };
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return { ok: false, problems: [{ path: '', message: `YAML error: ${errorMessage(err)}` }] };
  }

  const problems = new Problems();
  const validate = validator();
  const valid = validate(data);
  if (!valid) {
    schemaProblems(validate.errors ?? [], problems);
  }
  const secrets = checkSemantics(data, env, problems);
  if (!valid || problems.list.length > 0) {
    return { ok: false, problems: problems.list };
  }
  return { ok: true, config: build(data as RawConfig, secrets) };
}

const settingsValidators = new Map<string, ValidateFunction>();

/**
 * What is wrong with `settings` for a backend of `kind` (paths relative to `settings`, e.g.
 * `auth.name`); empty when they are valid or the kind has no settings schema. The same rules
 * and messages as `portico.yaml`, for the admin API and for sources checking at connect.
 */
export function backendSettingsProblems(kind: string, settings: unknown): ConfigProblem[] {
  const schema = BACKEND_KIND_SETTINGS[kind];
  if (schema === undefined) {
    return [];
  }
  let validate = settingsValidators.get(kind);
  if (validate === undefined) {
    const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
    addFormats(ajv, ['uri']);
    validate = ajv.compile(schema);
    settingsValidators.set(kind, validate);
  }
  if (validate(settings)) {
    return [];
  }
  const problems = new Problems();
  schemaProblems(validate.errors ?? [], problems);
  return problems.list;
}

/**
 * Reads and parses a `portico.yaml` file. A missing or unreadable file is a single problem with
 * path `''`.
 */
export function readDeclarativeConfigFile(
  file: string,
  env: Readonly<Record<string, string | undefined>>,
): ParseResult {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return {
      ok: false,
      problems: [{ path: '', message: `cannot read ${file}: ${errorMessage(err)}` }],
    };
  }
  return parseDeclarativeConfig(text, env, file);
}

class Problems {
  readonly list: ConfigProblem[] = [];
  private readonly seen = new Set<string>();

  add(path: string, message: string): void {
    const key = `${path}\u0000${message}`;
    if (!this.seen.has(key)) {
      this.seen.add(key);
      this.list.push({ path, message });
    }
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** `base.key`, or `base["odd key"]` when the key is not an identifier. */
function member(base: string, key: string): string {
  if (IDENTIFIER.test(key)) {
    return base === '' ? key : `${base}.${key}`;
  }
  return `${base}[${JSON.stringify(key)}]`;
}

/** Converts an ajv instancePath (JSON pointer) to `tenants[0].backends[1].target` style. */
function pathOf(pointer: string, extra?: string): string {
  const segments =
    pointer === ''
      ? []
      : pointer
          .slice(1)
          .split('/')
          .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (extra !== undefined) {
    segments.push(extra);
  }
  return segments.reduce(
    (path, segment) => (/^\d+$/.test(segment) ? `${path}[${segment}]` : member(path, segment)),
    '',
  );
}

/*
 * Ajv's messages quote regular expressions and never the data; these replace them with what a
 * person editing the file needs. Values are deliberately not echoed: some positions hold secrets.
 */
function schemaProblems(errors: readonly ErrorObject[], problems: Problems): void {
  for (const e of errors) {
    const path = pathOf(e.instancePath);
    const params = e.params as Record<string, unknown>;
    const inSecretRef = e.schemaPath.startsWith(SECRET_REF_SCHEMA_PATH);
    switch (e.keyword) {
      case 'required':
        problems.add(pathOf(e.instancePath, String(params.missingProperty)), 'is required');
        break;
      case 'additionalProperties':
        problems.add(
          pathOf(e.instancePath, String(params.additionalProperty)),
          'is not a known property',
        );
        break;
      case 'propertyNames':
        problems.add(
          pathOf(e.instancePath, String(params.propertyName)),
          PATTERN_HINTS[FIELD_NAME_PATTERN],
        );
        break;
      case 'pattern': {
        if (e.propertyName !== undefined) {
          // Reported by the enclosing propertyNames error, at the key's own path.
          break;
        }
        const pattern = String(params.pattern);
        if (pattern === SECRET_REF_STRING_PATTERN) {
          problems.add(path, `is an inline secret, which is not allowed; ${ENV_REFERENCE_HINT}`);
        } else {
          problems.add(path, PATTERN_HINTS[pattern] ?? e.message ?? 'is invalid');
        }
        break;
      }
      case 'type':
        if (inSecretRef && !e.schemaPath.startsWith(`${SECRET_REF_SCHEMA_PATH}properties/`)) {
          problems.add(path, `must be a secret reference; ${ENV_REFERENCE_HINT}`);
        } else {
          const types = Array.isArray(params.type) ? params.type : [params.type];
          problems.add(path, `must be ${types.map((t) => TYPE_NAMES[String(t)]).join(' or ')}`);
        }
        break;
      case 'enum':
        if (
          e.schemaPath.endsWith('/algorithms/items/enum') &&
          typeof e.data === 'string' &&
          e.data.toLowerCase() === 'none'
        ) {
          problems.add(path, '"none" is not allowed: unsigned tokens would authenticate anyone');
        } else {
          const allowed = (params.allowedValues as unknown[]).map(String).join(', ');
          problems.add(path, `must be one of: ${allowed}`);
        }
        break;
      case 'const':
        problems.add(path, `must be ${JSON.stringify(params.allowedValue)}`);
        break;
      case 'if':
        // The failed `then` branch reports the precise problem.
        break;
      case 'format':
        problems.add(path, FORMAT_HINTS[String(params.format)] ?? e.message ?? 'is invalid');
        break;
      default:
        problems.add(path, e.message ?? 'is invalid');
    }
  }
}

type Obj = Record<string, unknown>;

function isObj(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function field(value: unknown, key: string): unknown {
  return isObj(value) ? value[key] : undefined;
}

function items(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

const ENV_NAME = new RegExp(ENV_NAME_PATTERN);
const SECRET_REF_STRING = new RegExp(SECRET_REF_STRING_PATTERN);

/** The variable a well-formed reference names; undefined otherwise (the schema reports it). */
function referencedVariable(ref: unknown): string | undefined {
  if (typeof ref === 'string') {
    return SECRET_REF_STRING.test(ref) ? ref.slice('${env:'.length, -1) : undefined;
  }
  const name = field(ref, 'env');
  return typeof name === 'string' && ENV_NAME.test(name) ? name : undefined;
}

/** Secret values by the path of their reference, for the build step. */
type Secrets = Map<string, string>;

function resolveSecret(
  ref: unknown,
  path: string,
  env: Readonly<Record<string, string | undefined>>,
  secrets: Secrets,
  problems: Problems,
): string | undefined {
  const variable = referencedVariable(ref);
  if (variable === undefined) {
    return undefined;
  }
  const value = env[variable];
  if (value === undefined || value === '') {
    problems.add(
      path,
      `environment variable ${variable} is ${value === undefined ? 'not set' : 'empty'}`,
    );
    return undefined;
  }
  secrets.set(path, value);
  return value;
}

/** Records `value` as seen at `path`; reports it when an earlier path already had it. */
function checkUnique(
  seen: Map<string, string>,
  value: string,
  path: string,
  problems: Problems,
  what: string,
): void {
  const first = seen.get(value);
  if (first === undefined) {
    seen.set(value, path);
  } else {
    problems.add(path, `duplicate ${what} ${JSON.stringify(value)}, first declared at ${first}`);
  }
}

function targetProblem(kind: string, target: string): string | undefined {
  switch (kind) {
    case 'fixture':
      return (FIXTURE_TARGETS as readonly string[]).includes(target)
        ? undefined
        : `must name a fixture for kind fixture: one of ${FIXTURE_TARGETS.join(', ')}`;
    case 'mcp-http':
    case 'mcp-sse':
    case 'openapi':
      return urlProblem(target, 'http', kind);
    case 'mcp-ws':
      return urlProblem(target, 'ws', kind);
    case 'mcp-stdio':
      return target.trim() === ''
        ? 'must be a non-empty command line for kind mcp-stdio'
        : undefined;
    default:
      // An unknown kind is already a schema problem; its target cannot be judged.
      return undefined;
  }
}

function urlProblem(target: string, scheme: 'http' | 'ws', kind: string): string | undefined {
  const expected = `must be ${scheme === 'http' ? 'an http(s)' : 'a ws(s)'} URL for kind ${kind}`;
  const protocols = [`${scheme}:`, `${scheme}s:`];
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return expected;
  }
  // WHATWG URL accepts `http:host`; insisting on `//` keeps targets unambiguous.
  if (!protocols.includes(url.protocol) || !target.slice(url.protocol.length).startsWith('//')) {
    return expected;
  }
  if (url.username !== '' || url.password !== '') {
    // Not echoed: the userinfo is a credential.
    return `must not embed credentials; move them to credentials with an env reference`;
  }
  return undefined;
}

/*
 * Rules over several values: uniqueness, reserved slugs, target formats, jwksUri xor publicKey,
 * and environment references (resolved here, so that missing variables are reported along with
 * everything else). Returns the resolved secrets by path.
 */
function checkSemantics(
  data: unknown,
  env: Readonly<Record<string, string | undefined>>,
  problems: Problems,
): Secrets {
  const secrets: Secrets = new Map();
  const slugs = new Map<string, string>();
  const apiKeySecrets = new Map<string, string>();
  items(field(data, 'tenants')).forEach((tenant, t) => {
    const at = `tenants[${t}]`;
    const slug = str(field(tenant, 'slug'));
    if (slug !== undefined) {
      if (RESERVED_SLUGS.includes(slug)) {
        problems.add(`${at}.slug`, `${JSON.stringify(slug)} is reserved by the gateway's routes`);
      }
      checkUnique(slugs, slug, `${at}.slug`, problems, 'tenant slug');
    }

    const backendNames = new Map<string, string>();
    items(field(tenant, 'backends')).forEach((backend, b) => {
      const bt = `${at}.backends[${b}]`;
      const name = str(field(backend, 'name'));
      if (name !== undefined) {
        checkUnique(backendNames, name, `${bt}.name`, problems, 'backend name');
      }
      const kind = str(field(backend, 'kind'));
      const target = str(field(backend, 'target'));
      if (kind !== undefined && target !== undefined) {
        const problem = targetProblem(kind, target);
        if (problem !== undefined) {
          problems.add(`${bt}.target`, problem);
        }
      }
      const credentials = field(backend, 'credentials');
      if (isObj(credentials)) {
        for (const [key, ref] of Object.entries(credentials)) {
          resolveSecret(ref, member(`${bt}.credentials`, key), env, secrets, problems);
        }
      }
    });

    const tools = new Map<string, string>();
    const renames = new Map<string, string>();
    items(field(tenant, 'policies')).forEach((policy, p) => {
      const tool = str(field(policy, 'tool'));
      if (tool !== undefined) {
        checkUnique(tools, tool, `${at}.policies[${p}].tool`, problems, 'policy for tool');
      }
      const rename = str(field(policy, 'rename'));
      if (rename !== undefined) {
        // Two tools exposed under one name would make calls to it ambiguous.
        checkUnique(renames, rename, `${at}.policies[${p}].rename`, problems, 'rename');
      }
    });

    const jwt = field(field(tenant, 'auth'), 'jwt');
    if (isObj(jwt)) {
      const hasJwks = jwt.jwksUri !== undefined;
      const hasKey = jwt.publicKey !== undefined;
      if (hasJwks === hasKey) {
        problems.add(
          `${at}.auth.jwt`,
          hasJwks
            ? 'sets both jwksUri and publicKey; keep exactly one'
            : 'must set exactly one of jwksUri or publicKey',
        );
      }
      if (hasKey) {
        resolveSecret(jwt.publicKey, `${at}.auth.jwt.publicKey`, env, secrets, problems);
      }
    }

    const keyNames = new Map<string, string>();
    items(field(tenant, 'apiKeys')).forEach((apiKey, k) => {
      const kt = `${at}.apiKeys[${k}]`;
      const name = str(field(apiKey, 'name'));
      if (name !== undefined) {
        checkUnique(keyNames, name, `${kt}.name`, problems, 'API key name');
      }
      const ref = field(apiKey, 'secret');
      const secret = resolveSecret(ref, `${kt}.secret`, env, secrets, problems);
      if (secret === undefined) {
        return;
      }
      if (!API_KEY_PATTERN.test(secret)) {
        problems.add(
          `${kt}.secret`,
          `environment variable ${referencedVariable(ref)} does not hold a valid API key ` +
            '(ptk_ followed by at least 32 of A-Z a-z 0-9 _ -)',
        );
      }
      const first = apiKeySecrets.get(secret);
      if (first === undefined) {
        apiKeySecrets.set(secret, `${kt}.secret`);
      } else {
        // The key is what identifies the caller, so two entries cannot share it.
        problems.add(`${kt}.secret`, `resolves to the same API key as ${first}`);
      }
    });

    const serverNames = new Map<string, string>();
    items(field(tenant, 'servers')).forEach((server, s) => {
      const st = `${at}.servers[${s}]`;
      const name = str(field(server, 'name'));
      if (name !== undefined) {
        if (RESERVED_SERVER_NAMES.includes(name)) {
          problems.add(
            `${st}.name`,
            `${JSON.stringify(name)} is reserved by the gateway's routes under /mcp/{tenant}`,
          );
        }
        checkUnique(serverNames, name, `${st}.name`, problems, 'server name');
      }
      for (const kind of EXPOSURE_KINDS) {
        const list = field(server, kind);
        // The list's own shape and size are the schema's to report; its entries are ours.
        if (Array.isArray(list)) {
          for (const problem of exposureListProblems(kind, list)) {
            if (problem.path !== kind) {
              problems.add(`${st}.${problem.path}`, problem.message);
            }
          }
        }
      }
    });

    const bindings = new Map<string, string>();
    items(field(tenant, 'roleBindings')).forEach((binding, r) => {
      const subject = str(field(binding, 'subject'));
      const role = str(field(binding, 'role'));
      if (subject !== undefined && role !== undefined) {
        checkUnique(
          bindings,
          `${subject} ${role}`,
          `${at}.roleBindings[${r}]`,
          problems,
          'role binding',
        );
      }
    });
  });
  return secrets;
}

/* The validated document, with ajv defaults applied and secrets still as references. */

type RawSecret = SecretRef | string;

interface RawJwt extends Omit<DeclaredJwt, 'audience' | 'publicKey'> {
  audience: string | string[];
  publicKey?: RawSecret;
}

interface RawBackend extends Omit<DeclaredBackend, 'credentials'> {
  credentials: Record<string, RawSecret>;
}

interface RawApiKey extends Omit<DeclaredApiKey, 'secret'> {
  secret: RawSecret;
}

interface RawTenant extends Omit<DeclaredTenant, 'auth' | 'backends' | 'apiKeys'> {
  auth?: { jwt?: RawJwt; authorizationServers: string[] };
  backends: RawBackend[];
  apiKeys: RawApiKey[];
}

interface RawConfig {
  version: 1;
  tenants: RawTenant[];
}

function secretAt(secrets: Secrets, path: string): string {
  const value = secrets.get(path);
  if (value === undefined) {
    // The semantic pass resolves every reference of a valid document; this is a bug guard.
    throw new Error(`unresolved secret at ${path}`);
  }
  return value;
}

/** Copies the document into its public shape: optional values absent, not undefined. */
function build(raw: RawConfig, secrets: Secrets): DeclarativeConfig {
  return {
    version: 1,
    tenants: raw.tenants.map((tenant, t): DeclaredTenant => {
      const at = `tenants[${t}]`;
      const declared: DeclaredTenant = {
        slug: tenant.slug,
        name: tenant.name,
        status: tenant.status,
        limits: { ...tenant.limits },
        backends: tenant.backends.map((backend, b) => ({
          name: backend.name,
          kind: backend.kind,
          target: backend.target,
          // structuredClone: YAML aliases may share one settings object between backends.
          settings: structuredClone(backend.settings),
          credentials: Object.fromEntries(
            Object.keys(backend.credentials).map((key) => [
              key,
              secretAt(secrets, member(`${at}.backends[${b}].credentials`, key)),
            ]),
          ),
        })),
        policies: tenant.policies.map((policy) => ({
          tool: policy.tool,
          requiredScopes: [...policy.requiredScopes],
          disabled: policy.disabled,
          ...optional('description', policy.description),
          ...optional('rename', policy.rename),
        })),
        apiKeys: tenant.apiKeys.map((apiKey, k) => ({
          name: apiKey.name,
          secret: secretAt(secrets, `${at}.apiKeys[${k}].secret`),
          roles: [...apiKey.roles],
          scopes: [...apiKey.scopes],
          ...optional('expiresAt', apiKey.expiresAt),
        })),
        roleBindings: tenant.roleBindings.map((binding) => ({
          subject: binding.subject,
          role: binding.role,
        })),
        servers: tenant.servers.map((server) => ({
          name: server.name,
          ...optional('title', server.title),
          ...optional('description', server.description),
          tools: [...server.tools],
          prompts: [...server.prompts],
          resources: [...server.resources],
          resourceTemplates: [...server.resourceTemplates],
        })),
      };
      if (tenant.auth !== undefined) {
        const { jwt, authorizationServers } = tenant.auth;
        declared.auth = {
          authorizationServers: [...authorizationServers],
          ...(jwt === undefined ? {} : { jwt: buildJwt(jwt, `${at}.auth.jwt`, secrets) }),
        };
      }
      return declared;
    }),
  };
}

function buildJwt(jwt: RawJwt, at: string, secrets: Secrets): DeclaredJwt {
  return {
    issuer: jwt.issuer,
    audience: typeof jwt.audience === 'string' ? [jwt.audience] : [...jwt.audience],
    ...optional('jwksUri', jwt.jwksUri),
    ...(jwt.publicKey === undefined ? {} : { publicKey: secretAt(secrets, `${at}.publicKey`) }),
    algorithms: [...jwt.algorithms],
    ...optional('rolesClaim', jwt.rolesClaim),
    ...optional('scopesClaim', jwt.scopesClaim),
  };
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

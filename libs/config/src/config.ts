import { isIP } from 'node:net';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Ajv from 'ajv';
import { join } from 'node:path';
import { CONFIG_SCHEMA, SENSITIVE_VARIABLES } from './config.schema';

export interface PorticoConfig {
  env: 'development' | 'production' | 'test';
  http: {
    host: string;
    port: number;
    maxBodyBytes: number;
    http2: boolean;
    headersTimeoutMs: number;
    requestTimeoutMs: number;
    keepAliveTimeoutMs: number;
    maxConnections: number;
    /** Reverse proxies whose forwarding headers are believed (empty: none). */
    trustedProxies: readonly string[];
    tls?: { cert: Buffer; key: Buffer; minVersion: 'TLSv1.2' | 'TLSv1.3' };
  };
  mcp: {
    path: string;
    allowedOrigins: readonly string[];
    allowedHosts: readonly string[];
    sessionIdleTimeoutMs: number;
    maxSessions: number;
    maxStreamsPerSession: number;
    maxStreamsPerClient: number;
    sseKeepAliveMs: number;
    sseRetryMs: number;
    wsPingIntervalMs: number;
    wsMaxBufferedBytes: number;
    eventStoreMaxEvents: number;
    clientRequestTimeoutMs: number;
    /** Resource URIs one session or listen stream may follow at once. */
    maxResourceSubscriptions: number;
    requestStateTtlMs: number;
    /** How long a task and its result are kept (from its creation). */
    taskTtlMs: number;
    /** The longest TTL a 2025-era client may ask for a task. */
    taskMaxTtlMs: number;
    /** The polling interval suggested to task clients. */
    taskPollIntervalMs: number;
    /** How long a node's unrenewed lease on its running tasks lasts. */
    taskLeaseMs: number;
    pageSize: number;
    secret: Buffer;
    /** True when the secret was generated at boot (single node only). */
    secretGenerated: boolean;
    fixtureCatalog: 'conformance' | 'none';
  };
  database: {
    /** postgres when DATABASE_URL is set, else the embedded SQLite file. */
    type: 'postgres' | 'sqlite';
    url?: string;
    path: string;
    schema: string;
    poolSize: number;
    poolTimeoutMs: number;
    statementTimeoutMs: number;
    migrate: boolean;
  };
  security: {
    dataDir: string;
    /** Credential encryption keys, the active (encrypting) one first; empty = key file. */
    masterKeys: readonly { id: string; key: Buffer }[];
    bootstrapAdminToken?: string;
    publicUrl?: string;
    apiKeyCacheTtlMs: number;
    apiKeyRequestsPerMinute: number;
  };
  redis?: { url: string; keyPrefix: string };
  declarativeConfigFile?: string;
  /** The credential `portico stdio --tenant` presents (PORTICO_API_KEY). */
  stdioApiKey?: string;
  audit: { flushMs: number; batchSize: number };
  healthCheckTimeoutMs: number;
  worker: {
    embedded: boolean;
    concurrency: number;
    port: number;
    lockMs: number;
    /** How long a queued job waits before each step forward in priority (0: off). */
    priorityAgeingMs: number;
  };
  log: {
    level: string;
    pretty: boolean;
    /** Paths redacted in every log line besides the built-in credential paths. */
    redactPaths: readonly string[];
  };
  dashboard: { enabled: boolean };
  upstream: { stdioEnabled: boolean; stdioMaxChildren: number };
  tracing: {
    /** Whether spans are recorded and exported at all (off: no tracing cost). */
    enabled: boolean;
    protocol: 'http/protobuf' | 'http/json';
    /** OTEL_SERVICE_NAME, else each app's own name. */
    serviceName?: string;
    /** The OTLP traces URL; unset: the exporter's default (localhost:4318). */
    endpoint?: string;
  };
  metrics: {
    enabled: boolean;
    /** Bearer token /metrics requires; unset = open (protect it at the network level). */
    token?: string;
    maxToolLabels: number;
  };
  shutdownGraceMs: number;
  /** How long a draining node keeps accepting connections (readiness already 503). */
  shutdownDrainDelayMs: number;
}

/** The Portico release: server info, telemetry resource, User-Agent. */
export const PORTICO_VERSION = '0.1.0';

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

type Raw = Record<string, string | number | boolean | undefined>;

const LOOPBACK_HOSTS = ['localhost', '127.0.0.1', '[::1]'];

function readTls(
  certFile: string | undefined,
  keyFile: string | undefined,
  minVersion: 'TLSv1.2' | 'TLSv1.3',
): PorticoConfig['http']['tls'] {
  if (certFile === undefined && keyFile === undefined) {
    return undefined;
  }
  if (certFile === undefined || keyFile === undefined) {
    throw new ConfigError([
      `${certFile === undefined ? 'TLS_CERT_FILE' : 'TLS_KEY_FILE'}: required when the other TLS file is set`,
    ]);
  }
  const read = (variable: string, file: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ConfigError([`${variable}=${JSON.stringify(file)}: ${(err as Error).message}`]);
    }
  };
  return { cert: read('TLS_CERT_FILE', certFile), key: read('TLS_KEY_FILE', keyFile), minVersion };
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

function list(value: string): string[] {
  return value
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v.length > 0);
}

/**
 * Reads and validates configuration from an environment map (process.env by default).
 * Throws ConfigError naming every invalid variable.
 */
export function loadConfig(
  env: NodeJS.ProcessEnv | Record<string, string | undefined> = process.env,
): PorticoConfig {
  const raw: Raw = {};
  for (const key of Object.keys(CONFIG_SCHEMA.properties)) {
    const value = env[key];
    if (value !== undefined && value !== '') {
      raw[key] = value;
    }
  }
  const ajv = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: true, strict: false });
  const validate = ajv.compile(CONFIG_SCHEMA);
  if (!validate(raw)) {
    const problems = (validate.errors ?? []).map((e) => {
      const variable = e.instancePath.replace(/^\//, '') || String(e.params?.missingProperty ?? '');
      const shown = SENSITIVE_VARIABLES.has(variable) ? '(hidden)' : JSON.stringify(env[variable]);
      return `${variable}=${shown}: ${e.message ?? 'is invalid'}`;
    });
    throw new ConfigError(problems);
  }
  const v = raw as Record<string, never>;
  const tls = readTls(v.TLS_CERT_FILE, v.TLS_KEY_FILE, v.TLS_MIN_VERSION);
  const host = v.HOST as string;
  const allowedHosts = list(v.ALLOWED_HOSTS);
  const secretText = v.PORTICO_SECRET as string | undefined;
  return {
    env: v.NODE_ENV,
    http: {
      host,
      port: v.PORT,
      maxBodyBytes: v.MAX_BODY_BYTES,
      http2: v.HTTP2,
      headersTimeoutMs: v.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: v.HTTP_REQUEST_TIMEOUT_MS,
      keepAliveTimeoutMs: v.HTTP_KEEPALIVE_TIMEOUT_MS,
      maxConnections: v.HTTP_MAX_CONNECTIONS,
      trustedProxies: parseTrustedProxies(v.TRUSTED_PROXIES),
      tls,
    },
    mcp: {
      path: (v.MCP_PATH as string).replace(/\/+$/, '') || '/mcp',
      allowedOrigins: list(v.ALLOWED_ORIGINS),
      allowedHosts: allowedHosts.length > 0 ? allowedHosts : isLoopback(host) ? LOOPBACK_HOSTS : [],
      sessionIdleTimeoutMs: v.SESSION_IDLE_TIMEOUT_MS,
      maxSessions: v.MAX_SESSIONS,
      maxStreamsPerSession: v.MAX_STREAMS_PER_SESSION,
      maxStreamsPerClient: v.MAX_STREAMS_PER_CLIENT,
      sseKeepAliveMs: v.SSE_KEEPALIVE_MS,
      sseRetryMs: v.SSE_RETRY_MS,
      wsPingIntervalMs: v.WS_PING_INTERVAL_MS,
      wsMaxBufferedBytes: v.WS_MAX_BUFFERED_BYTES,
      eventStoreMaxEvents: v.EVENT_STORE_MAX_EVENTS,
      clientRequestTimeoutMs: v.CLIENT_REQUEST_TIMEOUT_MS,
      maxResourceSubscriptions: v.MAX_RESOURCE_SUBSCRIPTIONS,
      requestStateTtlMs: v.REQUEST_STATE_TTL_MS,
      taskTtlMs: v.TASK_TTL_MS,
      taskMaxTtlMs: Math.max(v.TASK_MAX_TTL_MS, v.TASK_TTL_MS),
      taskPollIntervalMs: v.TASK_POLL_INTERVAL_MS,
      taskLeaseMs: v.TASK_LEASE_MS,
      pageSize: v.PAGE_SIZE,
      secret: secretText ? Buffer.from(secretText, 'utf8') : randomBytes(32),
      secretGenerated: !secretText,
      fixtureCatalog: v.FIXTURE_CATALOG ?? (v.NODE_ENV === 'production' ? 'none' : 'conformance'),
    },
    database: {
      type: v.DATABASE_URL ? 'postgres' : 'sqlite',
      url: v.DATABASE_URL,
      path: v.DATABASE_PATH ?? join(v.DATA_DIR, 'portico.db'),
      schema: v.DATABASE_SCHEMA,
      poolSize: v.DATABASE_POOL_SIZE,
      poolTimeoutMs: v.DATABASE_POOL_TIMEOUT_MS,
      statementTimeoutMs: v.DATABASE_STATEMENT_TIMEOUT_MS,
      migrate: v.DATABASE_MIGRATE,
    },
    security: {
      dataDir: v.DATA_DIR,
      masterKeys: parseMasterKeys(v.MASTER_KEYS),
      bootstrapAdminToken: v.BOOTSTRAP_ADMIN_TOKEN,
      publicUrl: v.PUBLIC_URL,
      apiKeyCacheTtlMs: v.API_KEY_CACHE_TTL_MS,
      apiKeyRequestsPerMinute: v.API_KEY_REQUESTS_PER_MINUTE,
    },
    redis: v.REDIS_URL ? { url: v.REDIS_URL, keyPrefix: v.REDIS_KEY_PREFIX } : undefined,
    declarativeConfigFile: v.PORTICO_CONFIG_FILE,
    stdioApiKey: v.PORTICO_API_KEY,
    audit: { flushMs: v.AUDIT_FLUSH_MS, batchSize: v.AUDIT_BATCH_SIZE },
    healthCheckTimeoutMs: v.HEALTH_CHECK_TIMEOUT_MS,
    worker: {
      embedded: v.WORKER_EMBEDDED,
      concurrency: v.WORKER_CONCURRENCY,
      port: v.WORKER_PORT,
      lockMs: v.WORKER_LOCK_MS,
      priorityAgeingMs: v.QUEUE_PRIORITY_AGEING_MS,
    },
    log: {
      level: v.LOG_LEVEL,
      pretty: v.LOG_PRETTY,
      redactPaths: list(v.LOG_REDACT_PATHS),
    },
    dashboard: { enabled: v.DASHBOARD_ENABLED },
    upstream: {
      stdioEnabled: v.UPSTREAM_STDIO_ENABLED,
      stdioMaxChildren: v.UPSTREAM_STDIO_MAX_CHILDREN,
    },
    tracing: {
      enabled: !v.OTEL_SDK_DISABLED && v.OTEL_TRACES_EXPORTER !== 'none',
      protocol: v.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? v.OTEL_EXPORTER_OTLP_PROTOCOL,
      serviceName: v.OTEL_SERVICE_NAME,
      endpoint:
        v.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ??
        (v.OTEL_EXPORTER_OTLP_ENDPOINT
          ? `${(v.OTEL_EXPORTER_OTLP_ENDPOINT as string).replace(/\/+$/, '')}/v1/traces`
          : undefined),
    },
    metrics: {
      enabled: v.METRICS_ENABLED,
      token: v.METRICS_TOKEN,
      maxToolLabels: v.METRICS_MAX_TOOL_LABELS,
    },
    shutdownGraceMs: v.SHUTDOWN_GRACE_MS,
    shutdownDrainDelayMs: v.SHUTDOWN_DRAIN_DELAY_MS ?? (v.NODE_ENV === 'production' ? 3000 : 0),
  };
}

const PROXY_KEYWORDS = new Set(['loopback', 'linklocal', 'uniquelocal']);

function parseTrustedProxies(value: string): string[] {
  const entries = list(value);
  const bad = entries.filter((entry) => {
    if (PROXY_KEYWORDS.has(entry)) {
      return false;
    }
    const [address, bits, extra] = entry.split('/');
    const family = isIP(address);
    if (family === 0 || extra !== undefined) {
      return true;
    }
    if (bits === undefined) {
      return false;
    }
    const n = Number(bits);
    return !/^\d+$/.test(bits) || n > (family === 4 ? 32 : 128);
  });
  if (bad.length > 0) {
    throw new ConfigError([
      `TRUSTED_PROXIES: ${bad.map((b) => JSON.stringify(b)).join(', ')} is not an IP address, ` +
        'CIDR range, loopback, linklocal or uniquelocal',
    ]);
  }
  return entries;
}

function parseMasterKeys(value: string | undefined): { id: string; key: Buffer }[] {
  if (value === undefined) {
    return [];
  }
  const keys = list(value).map((entry) => {
    const [id, material] = entry.split(':', 2) as [string, string];
    return { id, key: Buffer.from(material, 'base64') };
  });
  const problems: string[] = [];
  for (const { id, key } of keys) {
    if (key.length !== 32) {
      problems.push(`MASTER_KEYS=(hidden): key "${id}" must be 32 bytes of base64`);
    }
  }
  if (new Set(keys.map((k) => k.id)).size !== keys.length) {
    problems.push('MASTER_KEYS=(hidden): key ids must be unique');
  }
  if (problems.length > 0) {
    throw new ConfigError(problems);
  }
  return keys;
}

/**
 * The variables a declarative config file may reference for secrets (`{ env: NAME }`). Only
 * this lib reads process.env; the file parser gets this snapshot.
 */
export function secretEnvironment(): Record<string, string | undefined> {
  return { ...process.env };
}

/** For process entry points: the configuration, or a message naming the bad variables and exit 1. */
export function loadConfigOrExit(): PorticoConfig {
  try {
    return loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`portico: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

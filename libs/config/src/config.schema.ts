/*
 * Every environment variable Portico reads, with its type, default and meaning. The JSON
 * Schema is validated with ajv (coercing strings), so a bad value stops boot with the name of
 * the variable.
 */
export const CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: true,
  properties: {
    NODE_ENV: {
      type: 'string',
      enum: ['development', 'production', 'test'],
      default: 'development',
    },
    HOST: { type: 'string', minLength: 1, default: '127.0.0.1' },
    PORT: { type: 'integer', minimum: 0, maximum: 65535, default: 3000 },
    LOG_LEVEL: {
      type: 'string',
      enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'],
      default: 'info',
    },
    LOG_PRETTY: { type: 'boolean', default: false },
    MCP_PATH: { type: 'string', pattern: '^/[A-Za-z0-9/_.-]*$', default: '/mcp' },
    /** Comma-separated origins allowed to call the MCP endpoint from browsers. */
    ALLOWED_ORIGINS: { type: 'string', default: '' },
    /**
     * Comma-separated Host names accepted (DNS-rebinding protection). Empty: loopback names when
     * bound to loopback, no check otherwise (set it in production).
     */
    ALLOWED_HOSTS: { type: 'string', default: '' },
    /** PEM certificate and key files: both set = HTTPS (HTTP/2 with ALPN when HTTP2 is on). */
    TLS_CERT_FILE: { type: 'string', minLength: 1 },
    TLS_KEY_FILE: { type: 'string', minLength: 1 },
    TLS_MIN_VERSION: { type: 'string', enum: ['TLSv1.2', 'TLSv1.3'], default: 'TLSv1.3' },
    /** HTTP/2 on the listener: with TLS negotiated by ALPN (HTTP/1.1 still served), else h2c. */
    HTTP2: { type: 'boolean', default: false },
    /** Slow-client defences on the listener. */
    HTTP_HEADERS_TIMEOUT_MS: { type: 'integer', minimum: 100, default: 10000 },
    HTTP_REQUEST_TIMEOUT_MS: { type: 'integer', minimum: 100, default: 30000 },
    HTTP_KEEPALIVE_TIMEOUT_MS: { type: 'integer', minimum: 100, default: 72000 },
    /** Open sockets the listener accepts (0: no limit). */
    HTTP_MAX_CONNECTIONS: { type: 'integer', minimum: 0, default: 0 },
    /**
     * Comma-separated addresses or CIDR ranges of reverse proxies (HAProxy) whose
     * X-Forwarded-For / X-Forwarded-Proto are believed, or `loopback`, `linklocal`,
     * `uniquelocal`. Empty: none (the socket's peer is the client).
     */
    TRUSTED_PROXIES: { type: 'string', default: '' },
    /** Requests and streams one 2025-era session may hold open at once. */
    MAX_STREAMS_PER_SESSION: { type: 'integer', minimum: 1, default: 32 },
    /** Open streams and WebSocket connections per client address. */
    MAX_STREAMS_PER_CLIENT: { type: 'integer', minimum: 1, default: 256 },
    MAX_BODY_BYTES: { type: 'integer', minimum: 1024, maximum: 104857600, default: 4194304 },
    SESSION_IDLE_TIMEOUT_MS: { type: 'integer', minimum: 1000, default: 1800000 },
    MAX_SESSIONS: { type: 'integer', minimum: 1, default: 10000 },
    SSE_KEEPALIVE_MS: { type: 'integer', minimum: 1000, default: 15000 },
    SSE_RETRY_MS: { type: 'integer', minimum: 0, default: 1000 },
    /** WebSocket liveness: a client that misses one ping interval's pong is disconnected. */
    WS_PING_INTERVAL_MS: { type: 'integer', minimum: 1000, default: 30000 },
    /** Bytes queued for a WebSocket client before it counts as too slow and is closed. */
    WS_MAX_BUFFERED_BYTES: { type: 'integer', minimum: 65536, default: 8388608 },
    EVENT_STORE_MAX_EVENTS: { type: 'integer', minimum: 0, default: 1000 },
    CLIENT_REQUEST_TIMEOUT_MS: { type: 'integer', minimum: 100, default: 60000 },
    MAX_RESOURCE_SUBSCRIPTIONS: { type: 'integer', minimum: 1, maximum: 1000000, default: 1000 },
    REQUEST_STATE_TTL_MS: { type: 'integer', minimum: 1000, default: 600000 },
    /** How long a task (a tools/call answered with a handle) and its result are kept. */
    TASK_TTL_MS: { type: 'integer', minimum: 1000, maximum: 2592000000, default: 3600000 },
    /** The longest TTL a 2025-11-25 client may ask for a task (requests above are lowered). */
    TASK_MAX_TTL_MS: { type: 'integer', minimum: 1000, maximum: 2592000000, default: 86400000 },
    /** The polling interval suggested to clients for tasks. */
    TASK_POLL_INTERVAL_MS: { type: 'integer', minimum: 10, maximum: 3600000, default: 1000 },
    /** A node that stops renewing its lease on a running task this long is presumed gone. */
    TASK_LEASE_MS: { type: 'integer', minimum: 300, maximum: 3600000, default: 15000 },
    /** Key material for sealing requestState and cursors; every node of a cluster needs the same. */
    PORTICO_SECRET: { type: 'string', minLength: 32 },
    PAGE_SIZE: { type: 'integer', minimum: 1, maximum: 1000, default: 50 },
    SHUTDOWN_GRACE_MS: { type: 'integer', minimum: 0, default: 10000 },
    /**
     * After SIGTERM, how long a node keeps serving with readiness at 503 before it stops
     * accepting connections, so the load balancer's health checks take it out of rotation
     * first. Default: 3000 in production, 0 otherwise.
     */
    SHUTDOWN_DRAIN_DELAY_MS: { type: 'integer', minimum: 0, maximum: 300000 },
    /**
     * A built-in catalog served WITHOUT credentials at MCP_PATH itself, for local development.
     * Default: `conformance` unless NODE_ENV=production, where it is `none` (endpoint off).
     */
    FIXTURE_CATALOG: { type: 'string', enum: ['conformance', 'none'] },
    /** Where embedded state lives: the SQLite file and the generated master key. */
    DATA_DIR: { type: 'string', minLength: 1, default: './data' },
    /** PostgreSQL connection URL; unset = the embedded SQLite file (DATABASE_PATH). */
    DATABASE_URL: { type: 'string', pattern: '^postgres(ql)?://' },
    /** SQLite file (default DATA_DIR/portico.db); `:memory:` for throwaway runs. */
    DATABASE_PATH: { type: 'string', minLength: 1 },
    /** PostgreSQL schema holding Portico's tables (created when missing). */
    DATABASE_SCHEMA: { type: 'string', pattern: '^[a-z_][a-z0-9_]{0,62}$', default: 'public' },
    DATABASE_POOL_SIZE: { type: 'integer', minimum: 1, maximum: 1000, default: 10 },
    /** How long a query waits for a pooled connection before failing with a clear error. */
    DATABASE_POOL_TIMEOUT_MS: { type: 'integer', minimum: 100, default: 5000 },
    DATABASE_STATEMENT_TIMEOUT_MS: { type: 'integer', minimum: 100, default: 15000 },
    /** Run pending migrations at boot (else `portico db migrate` does it). */
    DATABASE_MIGRATE: { type: 'boolean', default: true },
    /**
     * Keys for backend credentials at rest: `kid:base64-32-bytes[,kid:...]`; the first one
     * encrypts, all of them decrypt. Unset: a key generated once in DATA_DIR/master.key.
     */
    MASTER_KEYS: {
      type: 'string',
      pattern:
        '^[A-Za-z0-9_-]{1,32}:[A-Za-z0-9+/=_-]{43,44}(,[A-Za-z0-9_-]{1,32}:[A-Za-z0-9+/=_-]{43,44})*$',
    },
    /** Platform-admin bearer credential for first start (create tenants, then revoke it). */
    BOOTSTRAP_ADMIN_TOKEN: { type: 'string', minLength: 32 },
    /** Declarative tenants/backends/policies/keys applied at boot (`portico config apply`). */
    PORTICO_CONFIG_FILE: { type: 'string', minLength: 1 },
    /** The API key (or JWT) `portico stdio --tenant SLUG` authenticates with. */
    PORTICO_API_KEY: { type: 'string', minLength: 1 },
    /** External base URL (https://gateway.example.com): resource identifiers in OAuth metadata. */
    PUBLIC_URL: { type: 'string', pattern: '^https?://[^/]+$' },
    /** Redis for cluster-wide rate limits (and later sessions and queues). */
    REDIS_URL: { type: 'string', pattern: '^rediss?://' },
    /** Prefix of every Redis key Portico writes. */
    REDIS_KEY_PREFIX: { type: 'string', pattern: '^[A-Za-z0-9:_-]{1,64}$', default: 'portico:' },
    /** How long a verified API key is trusted before the database is asked again. */
    API_KEY_CACHE_TTL_MS: { type: 'integer', minimum: 0, default: 10000 },
    /** Requests per minute per API key (0: no limit); tenants set their own limits too. */
    API_KEY_REQUESTS_PER_MINUTE: { type: 'integer', minimum: 0, default: 0 },
    /** Each readiness check (database, Redis) fails after this long. */
    HEALTH_CHECK_TIMEOUT_MS: { type: 'integer', minimum: 50, default: 1000 },
    /** With REDIS_URL: run queued tool calls in this process too (single-node deployments). */
    WORKER_EMBEDDED: { type: 'boolean', default: true },
    /** Port of a worker process's health endpoints (`portico worker`: /health/live, /health/ready). */
    WORKER_PORT: { type: 'integer', minimum: 0, maximum: 65535, default: 3001 },
    /** A worker that stops renewing a job's lock this long is presumed dead; its job moves on. */
    WORKER_LOCK_MS: { type: 'integer', minimum: 500, default: 30000 },
    /** Queued tool calls one worker process runs at once. */
    WORKER_CONCURRENCY: { type: 'integer', minimum: 1, maximum: 1000, default: 16 },
    /** A queued job waiting this long moves one priority step forward (0: strict priorities). */
    QUEUE_PRIORITY_AGEING_MS: { type: 'integer', minimum: 0, default: 5000 },
    /** Audit events are written in batches, off the request path. */
    AUDIT_FLUSH_MS: { type: 'integer', minimum: 10, default: 500 },
    AUDIT_BATCH_SIZE: { type: 'integer', minimum: 1, maximum: 1000, default: 200 },
    /** Prometheus metrics at /metrics on the main listener. */
    METRICS_ENABLED: { type: 'boolean', default: true },
    /** When set, /metrics requires `Authorization: Bearer <token>`. */
    METRICS_TOKEN: { type: 'string', minLength: 16 },
    /** Distinct tool labels per tenant on tool metrics; further tools are counted as `other`. */
    METRICS_MAX_TOOL_LABELS: { type: 'integer', minimum: 1, maximum: 10000, default: 200 },
    /**
     * Whether `mcp-stdio` backends may start processes on the gateway's host. Off by default:
     * such a backend runs a command of its own; only platform admins may create one.
     */
    UPSTREAM_STDIO_ENABLED: { type: 'boolean', default: false },
    /**
     * Live `mcp-stdio` child processes on this gateway, all tenants together. At the bound an
     * idle on-demand child of another backend is stopped to make room, else the start fails.
     */
    UPSTREAM_STDIO_MAX_CHILDREN: { type: 'integer', minimum: 1, maximum: 10000, default: 32 },
    /** Extra dotted paths (comma-separated) whose values logs show as "[redacted]". */
    LOG_REDACT_PATHS: { type: 'string', default: '' },
    /** The operators' live page at /dashboard (admin credentials required). */
    DASHBOARD_ENABLED: { type: 'boolean', default: true },
    /**
     * OpenTelemetry traces, off by default. The standard variables: OTEL_SDK_DISABLED turns
     * tracing off whatever else is set; OTEL_TRACES_EXPORTER `otlp` turns it on (the exporter
     * then reads OTEL_EXPORTER_OTLP_* itself: endpoint, headers, timeout); OTEL_SERVICE_NAME,
     * OTEL_RESOURCE_ATTRIBUTES and OTEL_TRACES_SAMPLER(_ARG) are read by the SDK.
     */
    OTEL_SDK_DISABLED: { type: 'boolean', default: false },
    OTEL_TRACES_EXPORTER: { type: 'string', enum: ['none', 'otlp'], default: 'none' },
    OTEL_EXPORTER_OTLP_PROTOCOL: {
      type: 'string',
      enum: ['http/protobuf', 'http/json'],
      default: 'http/protobuf',
    },
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: { type: 'string', enum: ['http/protobuf', 'http/json'] },
    OTEL_SERVICE_NAME: { type: 'string', minLength: 1 },
    /** Where spans go: the traces URL as is, or the base URL with /v1/traces appended. */
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: { type: 'string', pattern: '^https?://[^\\s]+$' },
    OTEL_EXPORTER_OTLP_ENDPOINT: { type: 'string', pattern: '^https?://[^\\s]+$' },
  },
} as const;

export const SENSITIVE_VARIABLES = new Set([
  'PORTICO_SECRET',
  'MASTER_KEYS',
  'BOOTSTRAP_ADMIN_TOKEN',
  'DATABASE_URL',
  'REDIS_URL',
  'PORTICO_API_KEY',
  'METRICS_TOKEN',
  'OTEL_EXPORTER_OTLP_HEADERS',
  'OTEL_EXPORTER_OTLP_TRACES_HEADERS',
]);

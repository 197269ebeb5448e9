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
    REQUEST_STATE_TTL_MS: { type: 'integer', minimum: 1000, default: 600000 },
    /** Key material for sealing requestState and cursors; every node of a cluster needs the same. */
    PORTICO_SECRET: { type: 'string', minLength: 32 },
    PAGE_SIZE: { type: 'integer', minimum: 1, maximum: 1000, default: 50 },
    SHUTDOWN_GRACE_MS: { type: 'integer', minimum: 0, default: 10000 },
    /** The built-in demo catalog served on embedded defaults (until the registry serves tenants). */
    FIXTURE_CATALOG: { type: 'string', enum: ['conformance', 'none'], default: 'conformance' },
  },
} as const;

export const SENSITIVE_VARIABLES = new Set(['PORTICO_SECRET']);

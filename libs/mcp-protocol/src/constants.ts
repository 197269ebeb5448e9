/** The current (stateless) revision of the Model Context Protocol. */
export const MODERN_PROTOCOL_VERSION = '2026-07-28';

/** Session-based revisions, newest first. */
export const LEGACY_PROTOCOL_VERSIONS = [
  '2025-11-25',
  '2025-06-18',
  '2025-03-26',
  '2024-11-05',
] as const;

export type LegacyProtocolVersion = (typeof LEGACY_PROTOCOL_VERSIONS)[number];

/** Every revision Portico serves, newest first. */
export const SUPPORTED_PROTOCOL_VERSIONS: readonly string[] = [
  MODERN_PROTOCOL_VERSION,
  ...LEGACY_PROTOCOL_VERSIONS,
];

/** What a 2025-era Streamable HTTP request without MCP-Protocol-Version is assumed to speak. */
export const DEFAULT_LEGACY_HTTP_VERSION: LegacyProtocolVersion = '2025-03-26';

export const META = {
  protocolVersion: 'io.modelcontextprotocol/protocolVersion',
  clientCapabilities: 'io.modelcontextprotocol/clientCapabilities',
  clientInfo: 'io.modelcontextprotocol/clientInfo',
  logLevel: 'io.modelcontextprotocol/logLevel',
  serverInfo: 'io.modelcontextprotocol/serverInfo',
  subscriptionId: 'io.modelcontextprotocol/subscriptionId',
  relatedTask: 'io.modelcontextprotocol/related-task',
  /**
   * Portico's own: the `inputRequests` key a handler named for an input it asks a 2025-era
   * client for mid-call. A gateway federating this server passes the input on to a 2026-07-28
   * client under the same key, so keys do not depend on the path a request took.
   */
  inputKey: 'dev.portico/input-key',
} as const;

export const ErrorCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  /** 2025 era: resource not found. */
  ResourceNotFound: -32002,
  /** 2025 era: a URL-mode elicitation is required first. */
  UrlElicitationRequired: -32042,
  /** Session-era request cancelled or a session-level failure (legacy range). */
  RequestCancelled: -32001,
  /** 2026-07-28: HTTP headers disagree with the body. */
  HeaderMismatch: -32020,
  /** 2026-07-28: the request needs a client capability that was not declared. */
  MissingClientCapability: -32021,
  /** 2026-07-28: protocol version not supported. */
  UnsupportedProtocolVersion: -32022,
  /**
   * Implementation-defined (server range): a tenant or API-key quota is exhausted;
   * `data.retryAfterMs` says when to try again.
   */
  QuotaExceeded: -32029,
} as const;

export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

export const LOG_LEVELS = [
  'debug',
  'info',
  'notice',
  'warning',
  'error',
  'critical',
  'alert',
  'emergency',
] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function logLevelRank(level: LogLevel): number {
  return LOG_LEVELS.indexOf(level);
}

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && (LOG_LEVELS as readonly string[]).includes(value);
}

/** Methods whose HTTP request carries an `Mcp-Name` header (2026-07-28). */
export const NAMED_METHODS: Readonly<Record<string, 'name' | 'uri'>> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
};

/** Methods that may answer with `input_required` (2026-07-28 MRTR). */
export const INPUT_REQUIRED_METHODS = new Set(['tools/call', 'prompts/get', 'resources/read']);

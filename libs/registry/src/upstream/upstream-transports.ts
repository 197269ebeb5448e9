import type { Readable } from 'node:stream';
import { basename } from 'node:path';
import { Logger } from '@nestjs/common';
import {
  SSEClientTransport,
  STDIO_DEFAULT_MAX_BUFFER_SIZE,
  StreamableHTTPClientTransport,
  type Transport,
} from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import type { Attributes } from '@opentelemetry/api';
import { SpanAttr, type Tracing } from '@portico/observability';
import type { BackendContext } from './backend-source';
import { assertReachableTarget, HTTP_SCHEMES, WS_SCHEMES } from './target-guard';
import type { UpstreamSettings } from './upstream-settings';
import { upstreamFetch } from './upstream-fetch';
import { tracedFetch } from './upstream-tracing';
import {
  BackendSettingsError,
  credentialEnvironment,
  stdioLaunch,
  stdioSupervision,
  type StdioLaunch,
  type StdioSupervision,
} from './upstream-transport-settings';
import { StdioChildren, StdioSupervisor } from './stdio-supervisor';
import { WebSocketClientTransport } from './websocket-client.transport';

/** Backend kinds served by McpUpstreamSource, one transport each. */
export const UPSTREAM_MCP_KINDS = ['mcp-http', 'mcp-sse', 'mcp-ws', 'mcp-stdio'] as const;
export type UpstreamMcpKind = (typeof UPSTREAM_MCP_KINDS)[number];

/** Longest stderr line of a stdio backend that reaches the log; the rest of it is cut. */
const STDERR_MAX_LINE = 2048;
/** stderr lines of one stdio backend logged per second at most; the others are counted. */
const STDERR_MAX_LINES_PER_SECOND = 50;

/** How McpUpstreamSource reaches one backend: a fresh SDK transport per connection. */
export interface UpstreamConnector {
  /** The target's URL; none for stdio. */
  readonly url?: URL;
  /** Span attributes describing the peer beyond its URL. */
  readonly peer: Attributes;
  /** Throws TargetRefusedError when the target may not be reached; open() checks again. */
  check(): Promise<void>;
  /** A new transport, not yet started (the SDK client starts it). */
  open(): Promise<Transport>;
  /**
   * Called once by the source that uses this connector, with a way to (re)connect it: a
   * connector that keeps its peer running (an eagerly started stdio child) calls it after a
   * loss. Absent for connectors that only connect on demand.
   */
  attach?(source: ConnectorClient): void;
  /** Called when the source closes: stops whatever attach() started. */
  detach?(): void;
  /**
   * Whether the connector itself closed `transport` (an idle stdio child it stopped): its
   * close is then expected, not a lost connection.
   */
  closedOnPurpose?(transport: Transport): boolean;
}

/** What a source offers its connector (see UpstreamConnector.attach). */
export interface ConnectorClient {
  /** Connects now unless connected or connecting; rejects when the attempt fails. */
  reconnect(): Promise<void>;
}

/** The bound used when a caller passes none: one per process. */
const processStdioChildren = new StdioChildren();

/**
 * The connector of a backend by kind: Streamable HTTP (`mcp-http`), 2024-11-05 HTTP+SSE
 * (`mcp-sse`), WebSocket (`mcp-ws`) or a child process over stdio (`mcp-stdio`). Throws a
 * BackendSettingsError naming the backend when its target or settings are unusable.
 * `stdioChildren`: the gateway's bound on stdio children (UpstreamOptions.stdioChildren).
 */
export function upstreamConnector(
  kind: UpstreamMcpKind,
  context: BackendContext,
  settings: UpstreamSettings,
  tracing?: Tracing,
  stdioChildren: StdioChildren = processStdioChildren,
): UpstreamConnector {
  try {
    switch (kind) {
      case 'mcp-http':
      case 'mcp-sse':
        return httpConnector(kind, context, settings, tracing);
      case 'mcp-ws':
        return wsConnector(context, settings);
      case 'mcp-stdio':
        return stdioConnector(
          context,
          stdioLaunch(context.backend),
          stdioSupervision(context.backend),
          stdioChildren,
          settings,
        );
    }
  } catch (err) {
    if (err instanceof BackendSettingsError) {
      throw new BackendSettingsError(`Backend ${context.backend.name}: ${err.message}`);
    }
    throw err;
  }
}

function targetUrl(target: string): URL {
  try {
    return new URL(target);
  } catch {
    throw new BackendSettingsError('target is not a URL');
  }
}

function httpConnector(
  kind: 'mcp-http' | 'mcp-sse',
  context: BackendContext,
  settings: UpstreamSettings,
  tracing?: Tracing,
): UpstreamConnector {
  const url = targetUrl(context.backend.target);
  const check = () => assertReachableTarget(url, settings.internal, HTTP_SCHEMES);
  // One connection pool per backend, kept across reconnections.
  const base = upstreamFetch();
  const fetchFn = tracing?.enabled ? tracedFetch(base) : base;
  return {
    url,
    peer: {},
    check,
    async open() {
      await check();
      const options = {
        // Decrypted only now, held by the transport alone, never logged.
        requestInit: { headers: credentialHeaders(context.credentials()) },
        fetch: fetchFn,
      };
      // The SSE transport refuses a POST endpoint on another origin than the stream's.
      return kind === 'mcp-http'
        ? new StreamableHTTPClientTransport(url, options)
        : new SSEClientTransport(url, options);
    },
  };
}

function wsConnector(context: BackendContext, settings: UpstreamSettings): UpstreamConnector {
  const url = targetUrl(context.backend.target);
  const check = () => assertReachableTarget(url, settings.internal, WS_SCHEMES);
  return {
    url,
    peer: {},
    check,
    async open() {
      await check();
      return new WebSocketClientTransport(url, {
        headers: Object.fromEntries(credentialHeaders(context.credentials())),
        handshakeTimeoutMs: settings.timeoutMs,
        maxPayload: STDIO_DEFAULT_MAX_BUFFER_SIZE,
      });
    },
  };
}

/**
 * One child process per connection, started by the SDK's stdio transport with only the
 * SDK's safe variables of the gateway's environment (HOME, PATH, USER...), then settings.env,
 * then the credentials: the gateway's own secrets never reach it, and credentials never
 * appear on a command line. Closing the transport closes stdin, then sends SIGTERM and
 * SIGKILL after a grace each. stderr goes to the debug log. A StdioSupervisor counts the
 * children in the gateway's bound, stops idle ones and spaces restarts after crashes; a
 * caller waits out a restart delay up to half the backend's timeout.
 */
function stdioConnector(
  context: BackendContext,
  launch: StdioLaunch,
  supervision: StdioSupervision,
  children: StdioChildren,
  settings: UpstreamSettings,
): UpstreamConnector {
  const label = `Backend ${context.backend.name} (tenant ${context.tenantSlug})`;
  const logger = new Logger('UpstreamStdio');
  const spawn = (): StdioClientTransport => {
    const transport = new StdioClientTransport({
      command: launch.command,
      args: [...launch.args],
      ...(launch.cwd !== undefined && { cwd: launch.cwd }),
      env: { ...launch.env, ...credentialEnvironment(context.credentials()) },
      stderr: 'pipe',
    });
    // Available before start(), so the first lines are not lost.
    const stderr = transport.stderr as Readable | null;
    if (stderr) {
      relayStderr(stderr, (line) => logger.debug(`${label} stderr: ${line}`));
    }
    return transport;
  };
  const supervisor = new StdioSupervisor(
    label,
    supervision,
    children,
    spawn,
    settings.timeoutMs / 2,
  );
  return {
    peer: {
      [SpanAttr.networkTransport]: 'pipe',
      'process.executable.name': basename(launch.command),
    },
    check: () => Promise.resolve(),
    open: () => supervisor.open(),
    attach: (client) => supervisor.attach(client),
    detach: () => supervisor.detach(),
    closedOnPurpose: (transport) => supervisor.closedOnPurpose(transport),
  };
}

/**
 * Reads a child's stderr line by line into `log`: lines longer than STDERR_MAX_LINE are cut,
 * and past STDERR_MAX_LINES_PER_SECOND the rest of that second is counted, not logged. The
 * stream is always drained, so a chatty child never blocks on a full pipe.
 */
export function relayStderr(stream: Readable, log: (line: string) => void): void {
  let line = '';
  let cut = false;
  let windowStart = 0;
  let logged = 0;
  let dropped = 0;
  const emit = () => {
    const text = line.replace(/\r$/, '');
    const wasCut = cut;
    line = '';
    cut = false;
    if (text.trim() === '') {
      return;
    }
    const now = Date.now();
    if (now - windowStart >= 1000) {
      if (dropped > 0) {
        log(`(${dropped} lines not logged)`);
      }
      windowStart = now;
      logged = 0;
      dropped = 0;
    }
    if (logged >= STDERR_MAX_LINES_PER_SECOND) {
      dropped += 1;
      return;
    }
    logged += 1;
    log(wasCut ? `${text} [cut]` : text);
  };
  const append = (piece: string) => {
    if (cut) {
      return;
    }
    const room = STDERR_MAX_LINE - line.length;
    if (piece.length > room) {
      line += piece.slice(0, room);
      cut = true;
    } else {
      line += piece;
    }
  };
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    let start = 0;
    for (;;) {
      const end = chunk.indexOf('\n', start);
      if (end === -1) {
        append(chunk.slice(start));
        return;
      }
      append(chunk.slice(start, end));
      emit();
      start = end + 1;
    }
  });
  stream.on('end', emit);
  stream.on('error', () => undefined);
}

function credentialHeaders(credentials: Record<string, string>): Headers {
  try {
    return new Headers(credentials);
  } catch {
    // The Headers error could quote the value: say only that the shape is wrong.
    throw new Error('credentials are not valid HTTP header names and values');
  }
}

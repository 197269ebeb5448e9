import { DynamicModule, Inject, Injectable, Module, OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LoggerModule, PinoLogger } from 'nestjs-pino';
import { destination, type DestinationStream, type Logger } from 'pino';
import { pinoHttp, type Options } from 'pino-http';
import { ConfigService } from '@portico/config';

/**
 * Paths pino replaces with "[redacted]" wherever they appear in a log line; LOG_REDACT_PATHS
 * adds more (pino path syntax: `a.b`, `*.field`, `a["x-y"]`).
 */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'req.headers["mcp-session-id"]',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'authorization',
  'password',
  'secret',
  'token',
  'apiKey',
  'credentials',
  '*.authorization',
  '*.password',
  '*.secret',
  '*.token',
  '*.accessToken',
  '*.refreshToken',
  '*.apiKey',
  '*.credentials',
  '*.clientSecret',
];

/**
 * A child logger for lines whose fields Portico chooses itself (the per-request and per-tool-
 * call lines): no credential can be among them, so the built-in redaction paths, whose
 * wildcards cost microseconds on every line, are not applied; the operator's LOG_REDACT_PATHS
 * still are.
 */
export function ownFieldsLogger(logger: Logger, redactPaths: readonly string[]): Logger {
  return logger.child({}, { redact: { paths: [...redactPaths], censor: '[redacted]' } });
}

/** Buffered lines reach the output at least this often (a quiet node's last line too). */
const LOG_FLUSH_MS = 250;
/**
 * Lines are handed to the output stream in chunks of about this many characters. sonic-boom
 * measures the byte length of its whole pending buffer on every write, so a line at a time
 * into a 4 KiB buffer cost ~4.5 µs of CPU per line (bench: 300k lines to /dev/null), an 8 KiB
 * chunk at a time ~2.5 µs. Each asynchronous write costs ~25 µs of CPU whatever its size up
 * to a few dozen KiB (its trip through the thread pool), so 64 KiB chunks (~0.9 µs per KiB
 * against ~3.4 at 8 KiB): at info level a tool call writes two lines of ~350 bytes.
 */
const LOG_CHUNK = 65_536;

/**
 * Where JSON lines go. stdout: joined into chunks written asynchronously by sonic-boom (no
 * system call per line), flushed every LOG_FLUSH_MS and, synchronously, on exit. stderr
 * (`portico stdio`, whose stdout is the protocol) stays synchronous: few lines, and none may
 * be lost when the client kills the process.
 */
function logDestination(output: 'stdout' | 'stderr'): DestinationStream {
  if (output === 'stderr') {
    return destination({ dest: 2, sync: true });
  }
  // One write per chunk: sonic-boom would split anything beyond its default 16 KiB.
  const stream = destination({ dest: 1, sync: false, maxWrite: 4 * LOG_CHUNK });
  let pending = '';
  const handOver = (): void => {
    if (pending.length > 0) {
      const chunk = pending;
      pending = '';
      stream.write(chunk);
    }
  };
  setInterval(handOver, LOG_FLUSH_MS).unref();
  process.once('exit', () => {
    handOver();
    try {
      stream.flushSync();
    } catch {
      /* stdout already closed: nothing left to write to */
    }
  });
  return {
    write(line: string): void {
      pending += line;
      if (pending.length >= LOG_CHUNK) {
        handOver();
      }
    },
  };
}

/**
 * Structured JSON logs (pino) for every app. One line per HTTP request with its request id;
 * credentials redacted; pretty output only when LOG_PRETTY is set in development.
 */
const QUIET_PATHS = Symbol('QUIET_PATHS');

/** The part of a Fastify instance the request log hooks into. */
interface OnRequestHost {
  addHook?: (
    name: 'onRequest',
    hook: (
      request: { url: string; raw: IncomingMessage },
      reply: { raw: ServerResponse },
      done: () => void,
    ) => void,
  ) => void;
}

function sessionProps(req: IncomingMessage): Record<string, string> {
  const session = req.headers['mcp-session-id'];
  return typeof session === 'string' ? { sessionId: session.slice(0, 8) } : {};
}

/**
 * One pino-http line per HTTP request outside the quiet paths, from a Fastify hook through
 * the application's root logger. Not nestjs-pino's request middleware: it runs every request
 * in an AsyncLocalStorage, and on Node 20 one such request (a health probe) switches on
 * async_hooks for every promise the process creates from then on, ~12 µs of CPU on each MCP
 * request (bench: 69–74 → 57–61 µs per tools/call with it off). Lines logged while a request
 * is handled therefore carry no request id; the MCP request and tool-call lines carry theirs.
 */
@Injectable()
class HttpRequestLog implements OnModuleInit {
  constructor(
    private readonly adapterHost: HttpAdapterHost,
    @Inject(QUIET_PATHS) private readonly quietPaths: readonly string[],
  ) {}

  onModuleInit(): void {
    const fastify = this.adapterHost.httpAdapter?.getInstance?.<OnRequestHost | undefined>();
    if (typeof fastify?.addHook !== 'function') {
      return;
    }
    // Route patterns (`/mcp/*tenant`) as prefixes.
    const prefixes = this.quietPaths.map((path) => path.replace(/\/\*\w+$/, ''));
    const quiet = (url: string): boolean =>
      prefixes.some((p) => url === p || url.startsWith(`${p}/`) || url.startsWith(`${p}?`));
    let log: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
    fastify.addHook('onRequest', (request, reply, done) => {
      if (!quiet(request.url)) {
        // Created on first use: the root logger is set once nestjs-pino is configured.
        log ??= pinoHttp({ logger: PinoLogger.root, customProps: sessionProps });
        log(request.raw, reply.raw);
      }
      done();
    });
  }
}

@Module({})
export class LoggingModule {
  /**
   * `quietPaths`: routes that log for themselves instead of through pino-http (the MCP
   * endpoint, where a per-request child logger costs ~15 us of CPU even with logging off);
   * `/x/*name` covers everything under `/x/`.
   * `output`: stderr where stdout belongs to a protocol (`portico stdio`).
   */
  static forRoot(
    quietPaths: readonly string[] = [],
    output: 'stdout' | 'stderr' = 'stdout',
  ): DynamicModule {
    return {
      module: LoggingModule,
      imports: [
        LoggerModule.forRootAsync({
          inject: [ConfigService],
          useFactory: (config: ConfigService) => {
            const { level, pretty, redactPaths } = config.values.log;
            const prettyOn = pretty && config.values.env === 'development';
            const options: Options = {
              level,
              errorKey: 'err',
              redact: { paths: [...REDACTED_PATHS, ...redactPaths], censor: '[redacted]' },
              customProps: sessionProps,
              transport: prettyOn
                ? { target: 'pino-pretty', options: { destination: output === 'stderr' ? 2 : 1 } }
                : undefined,
            };
            return {
              // No request middleware (see HttpRequestLog); nestjs-pino still builds the root
              // logger every Logger writes through.
              forRoutes: [],
              pinoHttp: prettyOn ? options : [options, logDestination(output)],
            };
          },
        }),
      ],
      providers: [{ provide: QUIET_PATHS, useValue: quietPaths }, HttpRequestLog],
      exports: [LoggerModule],
    };
  }
}

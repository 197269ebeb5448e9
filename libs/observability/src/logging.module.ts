import { DynamicModule, Module, RequestMethod } from '@nestjs/common';
import { LoggerModule } from 'nestjs-pino';
import { destination, type DestinationStream, type Logger } from 'pino';
import type { Options } from 'pino-http';
import { ConfigService } from '@portico/config';
import { Tracing } from './tracing/tracing';

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
 * Where JSON lines go. stdout is written asynchronously in 4 KiB batches (a synchronous write
 * per line costs a system call each: at info level, two per tool call), flushed every
 * LOG_FLUSH_MS and on exit by pino. stderr (`portico stdio`, whose stdout is the protocol)
 * stays synchronous: few lines, and none may be lost when the client kills the process.
 */
function logDestination(output: 'stdout' | 'stderr'): DestinationStream {
  if (output === 'stderr') {
    return destination({ dest: 2, sync: true });
  }
  const stream = destination({ dest: 1, sync: false, minLength: 4096 });
  setInterval(() => {
    // Throws while the stream is not yet open: the next tick flushes.
    try {
      stream.flush();
    } catch {
      /* not ready yet */
    }
  }, LOG_FLUSH_MS).unref();
  return stream;
}

/**
 * Structured JSON logs (pino) for every app. One line per HTTP request with its request id;
 * credentials redacted; pretty output only when LOG_PRETTY is set in development.
 */
@Module({})
export class LoggingModule {
  /**
   * `quietPaths`: routes that log for themselves instead of through pino-http (the MCP
   * endpoint, where a per-request child logger costs ~15 us of CPU even with logging off).
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
          inject: [ConfigService, { token: Tracing, optional: true }],
          useFactory: (config: ConfigService, tracing?: Tracing) => {
            const { level, pretty, redactPaths } = config.values.log;
            const prettyOn = pretty && config.values.env === 'development';
            const options: Options = {
              level,
              errorKey: 'err',
              redact: { paths: [...REDACTED_PATHS, ...redactPaths], censor: '[redacted]' },
              // Lines written inside a traced request carry its trace id.
              mixin: tracing?.enabled
                ? () => {
                    const traceId = tracing.traceId();
                    return traceId ? { traceId } : {};
                  }
                : undefined,
              customProps: (req) => {
                const session = req.headers['mcp-session-id'];
                return typeof session === 'string' ? { sessionId: session.slice(0, 8) } : {};
              },
              transport: prettyOn
                ? { target: 'pino-pretty', options: { destination: output === 'stderr' ? 2 : 1 } }
                : undefined,
            };
            return {
              // nestjs-pino's default route pattern does not match under Nest 12 + Fastify.
              forRoutes: [{ path: '*path', method: RequestMethod.ALL }],
              exclude: quietPaths.map((path) => ({ method: RequestMethod.ALL, path })),
              pinoHttp: prettyOn ? options : [options, logDestination(output)],
            };
          },
        }),
      ],
      exports: [LoggerModule],
    };
  }
}

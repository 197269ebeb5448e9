import { DynamicModule, Module, RequestMethod } from '@nestjs/common';
import { LoggerModule } from 'nestjs-pino';
import { ConfigService } from '@portico/config';

/** Paths pino replaces with "[redacted]" wherever they appear in a log line. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'req.headers["mcp-session-id"]',
  'res.headers["set-cookie"]',
  '*.password',
  '*.secret',
  '*.token',
  '*.apiKey',
];

/**
 * Structured JSON logs (pino) for every app. One line per HTTP request with its request id;
 * credentials redacted; pretty output only when LOG_PRETTY is set in development.
 */
@Module({})
export class LoggingModule {
  /**
   * `quietPaths`: routes that log for themselves instead of through pino-http (the MCP
   * endpoint, where a per-request child logger costs ~15 us of CPU even with logging off).
   */
  static forRoot(quietPaths: readonly string[] = []): DynamicModule {
    return {
      module: LoggingModule,
      imports: [
        LoggerModule.forRootAsync({
          inject: [ConfigService],
          useFactory: (config: ConfigService) => {
            const { level, pretty } = config.values.log;
            return {
              // nestjs-pino's default route pattern does not match under Nest 12 + Fastify.
              forRoutes: [{ path: '*path', method: RequestMethod.ALL }],
              exclude: quietPaths.map((path) => ({ method: RequestMethod.ALL, path })),
              pinoHttp: {
                level,
                errorKey: 'err',
                redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
                customProps: (req) => {
                  const session = req.headers['mcp-session-id'];
                  return typeof session === 'string' ? { sessionId: session.slice(0, 8) } : {};
                },
                transport:
                  pretty && config.values.env === 'development'
                    ? { target: 'pino-pretty' }
                    : undefined,
              },
            };
          },
        }),
      ],
      exports: [LoggerModule],
    };
  }
}

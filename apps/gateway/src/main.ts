import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { loadConfigOrExit } from '@portico/config';
import { createGatewayApp } from './app.factory';
import { shutDownGracefully } from './shutdown';

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  let app;
  try {
    app = await createGatewayApp(config);
    await app.init();
  } catch (err) {
    // A refused boot (bad config file, unreachable database) is one clear line, not a trace.
    process.stderr.write(`portico: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  const logger = new Logger('Bootstrap');
  if (config.mcp.secretGenerated) {
    logger.warn(
      'PORTICO_SECRET is not set: using a random per-process secret (fine for one node only)',
    );
  }
  await app.listen({ port: config.http.port, host: config.http.host });
  const scheme = config.http.tls ? 'https' : 'http';
  const protocols = config.http.http2
    ? config.http.tls
      ? 'HTTP/2 + HTTP/1.1'
      : 'h2c'
    : 'HTTP/1.1';
  logger.log(
    `Portico listening on ${scheme}://${config.http.host}:${config.http.port}${config.mcp.path} (${protocols})`,
  );

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      return;
    }
    stopping = true;
    const limit = config.shutdownDrainDelayMs + config.shutdownGraceMs;
    logger.log(
      `${signal}: draining (readiness 503 for ${config.shutdownDrainDelayMs} ms), ` +
        `in-flight work gets ${config.shutdownGraceMs} ms more`,
    );
    // The last resort if a shutdown hook hangs.
    setTimeout(() => process.exit(1), limit + 5_000).unref();
    void shutDownGracefully(app, config, logger).then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error(`Shutdown failed: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

void main();

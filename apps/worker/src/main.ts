import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { Logger as PinoLogger } from 'nestjs-pino';
import { loadConfigOrExit } from '@portico/config';
import { WorkerLifecycle } from './worker-lifecycle';
import { WorkerModule } from './worker.module';

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  let app: NestFastifyApplication;
  try {
    app = await NestFactory.create<NestFastifyApplication>(
      WorkerModule.forRoot(config),
      new FastifyAdapter(),
      { bufferLogs: true, abortOnError: false },
    );
    app.useLogger(app.get(PinoLogger));
    await app.listen({ port: config.worker.port, host: config.http.host });
  } catch (err) {
    process.stderr.write(`portico worker: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  const logger = new Logger('Worker');
  logger.log(`Worker health on http://${config.http.host}:${config.worker.port}/health/ready`);

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      return;
    }
    stopping = true;
    app.get(WorkerLifecycle).stop();
    logger.log(`${signal}: finishing running jobs within ${config.shutdownGraceMs} ms`);
    setTimeout(() => process.exit(0), config.shutdownGraceMs).unref();
    void app.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

void main();

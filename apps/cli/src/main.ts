#!/usr/bin/env node
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { loadConfigOrExit } from '@portico/config';
import { McpEngine } from '@portico/mcp-protocol';
import { CliModule } from './cli.module';
import { StdioServer } from './stdio/stdio-server';

const USAGE = `Usage: portico <command>

Commands:
  stdio     Serve MCP over stdin/stdout (newline-delimited JSON-RPC, both protocol eras).
            Logs go to stderr. Configuration comes from the environment (see README).
  help      Show this help.
`;

/** Everything but protocol messages goes to stderr: stdout belongs to the protocol. */
function log(level: 'info' | 'warn' | 'error', message: string): void {
  process.stderr.write(`${JSON.stringify({ level, time: Date.now(), msg: message })}\n`);
}

async function stdio(): Promise<void> {
  const config = loadConfigOrExit();
  // Nest's own logger writes to stdout, which belongs to the protocol here.
  const app = await NestFactory.createApplicationContext(CliModule.forRoot(config), {
    logger: false,
  });
  const server = new StdioServer(app.get(McpEngine), {
    input: process.stdin,
    output: process.stdout,
    maxLineBytes: config.http.maxBodyBytes,
    graceMs: config.shutdownGraceMs,
    log,
  });
  const finish = async (reason: string): Promise<never> => {
    await server.stop(reason);
    await app.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void finish('SIGTERM'));
  process.once('SIGINT', () => void finish('SIGINT'));
  await server.run();
  await finish('stdin closed');
}

async function main(argv: string[]): Promise<void> {
  const command = argv[0] ?? 'help';
  switch (command) {
    case 'stdio':
      return stdio();
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return;
    default:
      process.stderr.write(`portico: unknown command "${command}"\n\n${USAGE}`);
      process.exit(2);
  }
}

void main(process.argv.slice(2));

#!/usr/bin/env node
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { loadConfigOrExit } from '@portico/config';
import { McpEngine } from '@portico/mcp-protocol';
import { CliModule } from './cli.module';
import {
  CommandResult,
  configApply,
  configValidate,
  dbMigrate,
  keysRotate,
} from './commands/admin-commands';
import { parseStdioArgs, StdioStartError, stdioPrincipal } from './stdio/stdio-principal';
import { StdioServer } from './stdio/stdio-server';

const USAGE = `Usage: portico <command>

Commands:
  stdio [--tenant SLUG [--server NAME]]
                           Serve MCP over stdin/stdout (newline-delimited JSON-RPC, both
                           protocol eras). With --tenant, serve that tenant's catalog as the
                           principal of PORTICO_API_KEY; with --server too, only that virtual
                           server's subset (as /mcp/SLUG/NAME). Without, the anonymous
                           development catalog (FIXTURE_CATALOG). Logs go to stderr.
  db migrate               Apply pending database migrations.
  config validate [FILE]   Check a declarative config file (default PORTICO_CONFIG_FILE);
                           every problem is printed with its path.
  config apply [FILE]      Validate, then make the database match the file (idempotent).
  keys rotate              Re-seal backend credentials with the first key of MASTER_KEYS.
  help                     Show this help.

Configuration comes from the environment (see README).
`;

/** Everything but protocol messages goes to stderr: stdout belongs to the protocol. */
function log(level: 'info' | 'warn' | 'error', message: string): void {
  process.stderr.write(`${JSON.stringify({ level, time: Date.now(), msg: message })}\n`);
}

async function stdio(args: string[]): Promise<void> {
  const config = loadConfigOrExit();
  const target = await startOrFail(() => parseStdioArgs(args));
  // Nest's own logger writes to stdout, which belongs to the protocol here.
  const app = await NestFactory.createApplicationContext(CliModule.forRoot(config), {
    logger: false,
  });
  const principal = await startOrFail(() => stdioPrincipal(app, config.stdioApiKey, target));
  const server = new StdioServer(app.get(McpEngine), {
    principal,
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

/** Runs a start-up step; its StdioStartError ends the process with its message and code. */
async function startOrFail<T>(step: () => T | Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (err instanceof StdioStartError) {
      fail(err.code, err.message);
    }
    throw err;
  }
}

function fail(code: number, message: string): never {
  process.stderr.write(`portico: ${message}\n`);
  process.exit(code);
}

async function run(command: Promise<CommandResult> | CommandResult): Promise<void> {
  try {
    const result = await command;
    const stream = result.code === 0 ? process.stdout : process.stderr;
    for (const line of result.out) {
      stream.write(`${line}\n`);
    }
    process.exit(result.code);
  } catch (err) {
    fail(1, err instanceof Error ? err.message : String(err));
  }
}

async function main(argv: string[]): Promise<void> {
  const command = argv[0] ?? 'help';
  const sub = `${command} ${argv[1] ?? ''}`.trim();
  switch (sub) {
    case 'db migrate':
      return run(dbMigrate(loadConfigOrExit()));
    case 'config validate':
      return run(configValidate(loadConfigOrExit(), argv[2]));
    case 'config apply':
      return run(configApply(loadConfigOrExit(), argv[2]));
    case 'keys rotate':
      return run(keysRotate(loadConfigOrExit()));
  }
  switch (command) {
    case 'stdio':
      return stdio(argv.slice(1));
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

/*
 * `portico stdio --tenant SLUG --server NAME`: stdio serves one virtual server of a tenant, the
 * same subset as its /mcp/{tenant}/{server} endpoint. The CLI's module and start-up code run
 * in-process here (stdin/stdout are in-memory streams); the last test spawns the BUILT CLI
 * (dist/, `npm run build` first) for its usage error and exit code.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { createInterface } from 'node:readline';
import type { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ApiKeyService } from '@portico/auth';
import { loadConfig, PorticoConfig } from '@portico/config';
import { McpEngine, type Principal } from '@portico/mcp-protocol';
import { TenantService } from '@portico/tenancy';
import { CliModule } from '../apps/cli/src/cli.module';
import {
  parseStdioArgs,
  StdioStartError,
  stdioPrincipal,
  type StdioTarget,
} from '../apps/cli/src/stdio/stdio-principal';
import { StdioServer } from '../apps/cli/src/stdio/stdio-server';
import { within } from './support/sdk';
import { assertCliBuilt, CLI_MAIN, cliEnv, LEGACY, WAIT_MS } from './support/stdio';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const CRM_TOOLS = ['test_simple_text', 'test_image_content'];

let config: PorticoConfig;
let app: INestApplicationContext;
let apiKey: string;
let operatorKey: string;

/** A stdio session over in-memory streams: what a client would write and read. */
class Session {
  private readonly input = new PassThrough();
  private readonly output = new PassThrough();
  private readonly waiting = new Map<number, (message: Json) => void>();
  private readonly server: StdioServer;
  private readonly running: Promise<void>;
  private nextId = 1;

  constructor(principal: Principal | undefined) {
    this.server = new StdioServer(app.get(McpEngine), {
      principal,
      input: this.input,
      output: this.output,
      maxLineBytes: config.http.maxBodyBytes,
      graceMs: 1000,
      log: () => undefined,
    });
    createInterface({ input: this.output }).on('line', (line) => {
      const message = JSON.parse(line) as Json;
      this.waiting.get(message.id as number)?.(message);
    });
    this.running = this.server.run();
  }

  async request(method: string, params: Json = {}): Promise<Json> {
    const id = this.nextId++;
    const answered = new Promise<Json>((resolve) => this.waiting.set(id, resolve));
    this.input.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`);
    return within(answered, WAIT_MS, method);
  }

  /** A 2025-era session, as the SDK's stdio client opens one. */
  async open(): Promise<this> {
    const init = await this.request('initialize', {
      protocolVersion: LEGACY,
      capabilities: {},
      clientInfo: { name: 'e2e-stdio-server', version: '1.0.0' },
    });
    expect(init.result?.protocolVersion).toBe(LEGACY);
    this.input.write(
      `${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })}\n`,
    );
    return this;
  }

  async toolNames(): Promise<string[]> {
    const listed = await this.request('tools/list');
    return (listed.result?.tools as { name: string }[]).map((t) => t.name).sort();
  }

  async close(): Promise<void> {
    this.input.end();
    await this.running;
  }
}

async function principalFor(args: string[], key: string | undefined) {
  return stdioPrincipal(app, key, parseStdioArgs(args));
}

async function startError(run: () => unknown): Promise<StdioStartError> {
  try {
    await run();
  } catch (err) {
    if (err instanceof StdioStartError) {
      return err;
    }
    throw err;
  }
  throw new Error('expected a StdioStartError');
}

beforeAll(async () => {
  config = loadConfig({
    LOG_LEVEL: 'silent',
    PORTICO_SECRET: 'test-secret-test-secret-test-secret!',
    DATABASE_PATH: ':memory:',
    MASTER_KEYS: `test:${Buffer.alloc(32, 7).toString('base64')}`,
  });
  app = await NestFactory.createApplicationContext(CliModule.forRoot(config), { logger: false });
  const tenants = app.get(TenantService);
  const tenant = await tenants.create({ slug: 'acme', name: 'Acme' });
  await tenants.backends(tenant.id).insert({
    name: 'conformance',
    kind: 'fixture',
    target: 'conformance',
    settings: {},
    credentialsSealed: null,
  });
  await tenants.servers(tenant.id).insert({
    name: 'crm',
    title: 'CRM',
    description: null,
    tools: CRM_TOOLS,
    prompts: [],
    resources: [],
    resourceTemplates: [],
  });
  await tenants.changed(tenant);
  const keys = app.get(ApiKeyService);
  apiKey = (await keys.create(tenant.id, { name: 'stdio', roles: ['tool-user'], scopes: [] }))
    .secret;
  operatorKey = (
    await keys.create(tenant.id, { name: 'ops', roles: ['tenant-operator'], scopes: [] })
  ).secret;
}, 60_000);

afterAll(async () => {
  await app?.close();
});

describe('portico stdio --server', () => {
  it("serves only the virtual server's tools, and refuses a call outside them", async () => {
    const session = await new Session(
      await principalFor(['--tenant', 'acme', '--server', 'crm'], apiKey),
    ).open();
    try {
      expect(await session.toolNames()).toEqual([...CRM_TOOLS].sort());

      const outside = await session.request('tools/call', {
        name: 'test_error_handling',
        arguments: {},
      });
      expect(outside.error).toBeDefined();
      const inside = await session.request('tools/call', {
        name: 'test_simple_text',
        arguments: {},
      });
      expect(inside.result?.content).toEqual([expect.objectContaining({ type: 'text' })]);
    } finally {
      await session.close();
    }
  });

  it("still serves the tenant's whole catalog without --server", async () => {
    const session = await new Session(await principalFor(['--tenant', 'acme'], apiKey)).open();
    try {
      const names = await session.toolNames();
      expect(names).toEqual(expect.arrayContaining([...CRM_TOOLS, 'test_error_handling']));
      expect(names.length).toBeGreaterThan(CRM_TOOLS.length);
    } finally {
      await session.close();
    }
  });

  it('refuses an unknown server, an unknown tenant and a credential without mcp:use', async () => {
    const cases: [string[], string | undefined, string][] = [
      [['--tenant', 'acme', '--server', 'nope'], apiKey, 'no virtual server "nope"'],
      [['--tenant', 'acme', '--server', '../x'], apiKey, 'no virtual server'],
      [['--tenant', 'nope', '--server', 'crm'], apiKey, 'unknown tenant "nope"'],
      [['--tenant', 'acme', '--server', 'crm'], undefined, 'PORTICO_API_KEY must hold'],
      [['--tenant', 'acme', '--server', 'crm'], operatorKey, 'may not use the MCP endpoint'],
      [['--tenant', 'acme', '--server', 'crm'], 'pk_wrong', 'PORTICO_API_KEY was refused'],
    ];
    for (const [args, key, message] of cases) {
      const err = await startError(() => principalFor(args, key));
      expect({ args, code: err.code, message: err.message }).toEqual({
        args,
        code: 1,
        message: expect.stringContaining(message),
      });
    }
  });

  it('refuses malformed options as usage errors', () => {
    const cases: [string[], string][] = [
      [['--server', 'crm'], '--server needs --tenant'],
      [['--tenant', 'acme', '--server'], '--server needs a virtual server name'],
      [['--tenant', '--server', 'crm'], '--tenant needs a tenant slug'],
      [['--tenant', 'a', '--tenant', 'b'], 'given twice'],
      [['--serve', 'crm'], 'unknown stdio option "--serve"'],
    ];
    for (const [args, message] of cases) {
      let caught: unknown;
      try {
        parseStdioArgs(args);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(StdioStartError);
      expect({ args, code: (caught as StdioStartError).code }).toEqual({ args, code: 2 });
      expect((caught as StdioStartError).message).toContain(message);
    }
    const target: StdioTarget = parseStdioArgs(['--server', 'crm', '--tenant', 'acme']);
    expect(target).toEqual({ tenant: 'acme', server: 'crm' });
  });

  it('the built CLI exits 2 with a one-line message for --server without --tenant', async () => {
    assertCliBuilt();
    const child = spawn(process.execPath, [CLI_MAIN, 'stdio', '--server', 'crm'], {
      env: cliEnv(),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    // Nothing to serve: a CLI that started serving anyway ends at once instead of waiting.
    child.stdin.end();
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const [code] = (await within(once(child, 'exit'), WAIT_MS, 'CLI exit')) as [number];

    expect({ code, stdout, stderr: stderr.trim() }).toEqual({
      code: 2,
      stdout: '',
      stderr: 'portico: --server needs --tenant: a virtual server belongs to a tenant',
    });
  });
});

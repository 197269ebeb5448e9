/*
 * REST services as backends: the petstore fixture (libs/testing/fixtures-openapi, its own
 * process) registered through portico.yaml as `openapi` backends of a tenant, its operations
 * called as tools through the built gateway (its own process, so its logs can be read whole)
 * by the official SDK v2 client with the tenant's API key.
 */
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { closeAll, rejectionOf, within } from './support/sdk';

const GATEWAY = resolve(__dirname, '../dist/apps/gateway/apps/gateway/src/main.js');
const FIXTURE = resolve(__dirname, '../libs/testing/fixtures-openapi/rest-server.mjs');
const TIMEOUT_MS = 500;

const secrets = {
  API_KEY: `ptk_${randomBytes(32).toString('base64url')}`,
  PETS_TOKEN: `bearer-${randomBytes(12).toString('hex')}`,
  KEYED_TOKEN: `header-${randomBytes(12).toString('hex')}`,
  QUERY_TOKEN: `query-${randomBytes(12).toString('hex')}`,
};

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) {
    return;
  }
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

/** The fixture REST service; resolves once it prints its port. */
async function startRestService(): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [FIXTURE, '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const port = new Promise<number>((done, fail) => {
    lines.on('line', (line) => {
      const match = /^READY (\d+)$/.exec(line);
      if (match) {
        done(Number(match[1]));
      }
    });
    child.once('exit', (code) => fail(new Error(`REST fixture exited with ${code}`)));
  });
  return { child, port: await within(port, 10_000, 'REST fixture start') };
}

let dir: string;
let rest: { child: ChildProcess; port: number };
let gateway: ChildProcess;
let gatewayUrl: string;
/** Resolves once the gateway's stdout matches `pattern`; fails the test after 5 s. */
async function logged(pattern: RegExp): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!pattern.test(logs)) {
    if (Date.now() > deadline) {
      expect(logs).toMatch(pattern);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Everything the gateway wrote to stdout (its JSON log lines). */
let logs = '';
const clients: Client[] = [];

async function connect(): Promise<Client> {
  const client = new Client({ name: 'e2e-openapi', version: '1.0.0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${gatewayUrl}/mcp/rest`), {
      requestInit: { headers: { Authorization: `Bearer ${secrets.API_KEY}` } },
    }),
  );
  clients.push(client);
  return client;
}

async function serviceStats(): Promise<Record<string, number>> {
  const response = await fetch(`http://127.0.0.1:${rest.port}/stats`);
  return (await response.json()) as Record<string, number>;
}

function text(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] }).content ?? [];
  return content.find((c) => c.type === 'text')?.text ?? '';
}

beforeAll(async () => {
  rest = await startRestService();
  const service = `http://127.0.0.1:${rest.port}`;
  dir = mkdtempSync(join(tmpdir(), 'portico-openapi-'));
  writeFileSync(
    join(dir, 'portico.yaml'),
    [
      'version: 1',
      'tenants:',
      '  - slug: rest',
      '    name: REST tenant',
      '    backends:',
      '      - name: pets',
      '        kind: openapi',
      `        target: ${service}/openapi.yaml`,
      `        settings: { internal: true, timeoutMs: ${TIMEOUT_MS}, auth: { type: bearer } }`,
      '        credentials: { token: { env: PETS_TOKEN } }',
      // JSON this time, behind a redirect; only one operation, under another prefix.
      '      - name: keyed',
      '        kind: openapi',
      `        target: ${service}/moved`,
      '        settings:',
      '          internal: true',
      '          operations: [whoami]',
      '          auth: { type: header, name: X-Api-Key, credential: key }',
      '        credentials: { other: { env: PETS_TOKEN }, key: { env: KEYED_TOKEN } }',
      '      - name: query',
      '        kind: openapi',
      `        target: ${service}/openapi.yaml`,
      '        settings:',
      '          internal: true',
      '          operations: [whoami, big]',
      '          maxResponseBytes: 1000',
      '          auth: { type: query, name: api_key }',
      '        credentials: { token: { env: QUERY_TOKEN } }',
      '      - name: flaky',
      '        kind: openapi',
      `        target: ${service}/openapi.yaml`,
      '        settings:',
      '          internal: true',
      '          operations: [fail, listPets]',
      '          breakerThreshold: 2',
      '          breakerResetMs: 600000',
      // A loopback document without `internal`: the SSRF guard leaves this one out.
      '      - name: ssrf',
      '        kind: openapi',
      `        target: ${service}/openapi.yaml`,
      '    apiKeys:',
      '      - { name: client, secret: { env: API_KEY }, roles: [tool-user] }',
    ].join('\n'),
  );
  const port = await freePort();
  gatewayUrl = `http://127.0.0.1:${port}`;
  gateway = spawn(process.execPath, [GATEWAY], {
    env: {
      PATH: process.env.PATH,
      NODE_ENV: 'production',
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'debug',
      DATA_DIR: dir,
      DATABASE_PATH: ':memory:',
      PORTICO_SECRET: 'openapi-secret-openapi-secret-32!',
      MASTER_KEYS: `test:${Buffer.alloc(32, 9).toString('base64')}`,
      PORTICO_CONFIG_FILE: join(dir, 'portico.yaml'),
      ...secrets,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  gateway.stdout!.on('data', (chunk: Buffer) => (logs += chunk.toString('utf8')));
  const deadline = Date.now() + 20_000;
  for (;;) {
    const ready = await fetch(`${gatewayUrl}/health/ready`).catch(() => undefined);
    if (ready?.status === 200) {
      break;
    }
    if (Date.now() > deadline || gateway.exitCode !== null) {
      throw new Error(`gateway did not become ready:\n${logs}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}, 40_000);

afterAll(async () => {
  await closeAll(...clients);
  await stop(gateway);
  await stop(rest?.child);
  if (dir) {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('openapi backends behind the gateway', () => {
  it('lists one namespaced tool per operation, minus refused backends and operations', async () => {
    const client = await connect();
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name).sort();
    expect(names).toEqual(
      [
        'flaky__fail',
        'flaky__listPets',
        'keyed__whoami',
        'pets__big',
        'pets__createPet',
        'pets__deletePet',
        'pets__fail',
        'pets__getTree',
        'pets__get_pets_petId_photo',
        'pets__listPets',
        'pets__replacePet',
        'pets__showPetById',
        'pets__slow',
        'pets__whoami',
        'query__big',
        'query__whoami',
      ].sort(),
    );
    const show = tools.find((t) => t.name === 'pets__showPetById')!;
    expect(show.title).toBe('Info for a specific pet');
    expect(show.inputSchema).toMatchObject({
      type: 'object',
      required: ['petId'],
      properties: { petId: { type: 'string', description: "The pet's id" } },
    });
    expect(show.outputSchema).toMatchObject({ type: 'object' });
    expect(show.annotations).toMatchObject({ readOnlyHint: true, idempotentHint: true });
    const create = tools.find((t) => t.name === 'pets__createPet')!;
    expect(create.annotations).toMatchObject({ readOnlyHint: false, idempotentHint: false });
    // The SSRF guard's refusal is logged, naming the way to allow it.
    // Logs are written in batches (flushed every 250 ms): wait for the line.
    await logged(/Backend ssrf of tenant rest left out: .*set settings.internal = true/);
  });

  it('calls a GET operation with path, query and header parameters', async () => {
    const client = await connect();
    const shown = await client.callTool({
      name: 'pets__showPetById',
      arguments: { petId: '2', 'X-Request-Id': '6f1d7a2e-3c4b-4d5e-8f90-a1b2c3d4e5f6' },
    });
    expect(shown.isError).toBeFalsy();
    expect(shown.structuredContent).toEqual({ id: '2', name: 'Tom', tag: 'cat' });
    expect(JSON.parse(text(shown))).toEqual({ id: '2', name: 'Tom', tag: 'cat' });

    const listed = await client.callTool({
      name: 'pets__listPets',
      arguments: { tag: ['cat'], limit: 1 },
    });
    expect(listed.structuredContent).toEqual({ result: [{ id: '2', name: 'Tom', tag: 'cat' }] });
  });

  it('calls a POST operation with a JSON body', async () => {
    const client = await connect();
    const created = await client.callTool({
      name: 'pets__createPet',
      arguments: { body: { name: 'Nemo', tag: 'fish' } },
    });
    expect(created.isError).toBeFalsy();
    const pet = created.structuredContent as { id: string; name: string };
    expect(pet).toMatchObject({ name: 'Nemo', tag: 'fish' });
    const shown = await client.callTool({
      name: 'pets__showPetById',
      arguments: { petId: pet.id },
    });
    expect(shown.structuredContent).toEqual(pet);

    const invalid = await client.callTool({ name: 'pets__createPet', arguments: { body: {} } });
    expect(invalid.isError).toBe(true);
    expect(text(invalid)).toMatch(/^Invalid arguments for tool pets__createPet: .*name/);
  });

  it('answers a 404 with a tool error carrying the status and the body', async () => {
    const client = await connect();
    const result = await client.callTool({
      name: 'pets__showPetById',
      arguments: { petId: '99' },
    });
    expect(result.isError).toBe(true);
    expect(text(result)).toBe('HTTP 404 Not Found: {"message":"no pet 99"}');
  });

  it('sends each backend credential as configured, never the client token', async () => {
    const client = await connect();
    const seen = async (tool: string) =>
      (await client.callTool({ name: tool, arguments: {} })).structuredContent;
    expect(await seen('pets__whoami')).toEqual({
      authorization: `Bearer ${secrets.PETS_TOKEN}`,
      apiKey: null,
      queryKey: null,
    });
    expect(await seen('keyed__whoami')).toEqual({
      authorization: null,
      apiKey: secrets.KEYED_TOKEN,
      queryKey: null,
    });
    expect(await seen('query__whoami')).toEqual({
      authorization: null,
      apiKey: null,
      queryKey: secrets.QUERY_TOKEN,
    });
  });

  it('refuses a response larger than maxResponseBytes', async () => {
    const client = await connect();
    const small = await client.callTool({ name: 'query__big', arguments: { bytes: 10 } });
    expect(text(small)).toBe('x'.repeat(10));
    const big = await client.callTool({ name: 'query__big', arguments: { bytes: 5000 } });
    expect(big.isError).toBe(true);
    expect(text(big)).toBe('Response of big not returned: the response exceeds 1000 bytes');
  });

  it('answers a call beyond timeoutMs with a clear error', async () => {
    const client = await connect();
    const failure = await rejectionOf(
      client.callTool({ name: 'pets__slow', arguments: { ms: 5000 } }),
    );
    expect(failure.code).toBe(-32603);
    expect(failure.message).toContain(`Backend pets unavailable: timed out after ${TIMEOUT_MS} ms`);
    const quick = await client.callTool({ name: 'pets__slow', arguments: { ms: 0 } });
    expect(text(quick)).toBe('done');
  });

  it('counts 5xx answers toward the breaker, which then refuses calls without sending them', async () => {
    const client = await connect();
    const before = (await serviceStats())['GET /fail'] ?? 0;
    for (let i = 0; i < 2; i++) {
      const result = await client.callTool({ name: 'flaky__fail', arguments: {} });
      expect(result.isError).toBe(true);
      expect(text(result)).toBe('HTTP 500 Internal Server Error: {"message":"fixture failure"}');
    }
    for (const name of ['flaky__fail', 'flaky__listPets']) {
      const refused = await rejectionOf(client.callTool({ name, arguments: {} }));
      expect(refused.code).toBe(-32603);
      expect(refused.message).toContain('Backend flaky unavailable: circuit open');
    }
    expect((await serviceStats())['GET /fail']).toBe(before + 2);
    // Another backend of the same service keeps its own breaker.
    const other = await client.callTool({ name: 'pets__listPets', arguments: { limit: 1 } });
    expect(other.isError).toBeFalsy();
  });

  it('never writes backend credentials to the logs', async () => {
    // Every call above was logged (LOG_LEVEL=debug); give the last lines time to land.
    const client = await connect();
    await client.callTool({ name: 'query__whoami', arguments: {} });
    await new Promise((r) => setTimeout(r, 200));
    await logged(/"tool":"query__whoami"/);
    for (const [name, value] of Object.entries(secrets)) {
      expect({ name, found: logs.includes(value) }).toEqual({ name, found: false });
    }
  });
});

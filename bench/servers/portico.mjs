// Starts the real Portico gateway (compiled by `npm run build`) as a child
// process. Unlike the fixtures this is not forked with IPC: it is launched
// exactly as in production, `node dist/apps/gateway/apps/gateway/src/main.js`, configured only
// through the environment. The stdio benchmark launches the CLI the same way:
// `node dist/apps/cli/apps/cli/src/main.js stdio`.
import { createSign, generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort, startCommand, startStdioCommand } from '../lib/procs.mjs';

const ROOT = resolve(import.meta.dirname, '..', '..');
/** Override with PORTICO_ENTRY if nest build places main.js elsewhere. */
export const PORTICO_ENTRY = resolve(
  ROOT,
  process.env.PORTICO_ENTRY ?? 'dist/apps/gateway/apps/gateway/src/main.js',
);

/** The CLI (`portico stdio`); override with PORTICO_CLI_ENTRY. */
export const PORTICO_CLI_ENTRY = resolve(
  ROOT,
  process.env.PORTICO_CLI_ENTRY ?? 'dist/apps/cli/apps/cli/src/main.js',
);

/**
 * Credentials for the authenticated targets: a tenant `bench` (echo fixture) declared in a
 * portico.yaml written for this run, an API key and an RS256 JWT for it. The same process
 * also serves the anonymous development endpoint (/mcp) for the unauthenticated targets.
 */
const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
export const BENCH_API_KEY = `ptk_${randomBytes(32).toString('base64url')}`;
export const BENCH_TENANT_PATH = '/mcp/bench';
const JWT_ISSUER = 'https://bench.portico.local/';
const JWT_AUDIENCE = 'portico-bench';
export const BENCH_JWT = signJwt({
  iss: JWT_ISSUER,
  aud: JWT_AUDIENCE,
  sub: 'bench-user',
  iat: Math.floor(Date.now() / 1000),
  exp: Math.floor(Date.now() / 1000) + 24 * 3600,
});

function signJwt(claims) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const input = `${part({ alg: 'RS256', typ: 'JWT' })}.${part(claims)}`;
  const signature = createSign('RSA-SHA256').update(input).sign(privateKey, 'base64url');
  return `${input}.${signature}`;
}

function porticoEnv() {
  const dir = mkdtempSync(join(tmpdir(), 'portico-bench-'));
  const file = join(dir, 'portico.yaml');
  writeFileSync(
    file,
    [
      'version: 1',
      'tenants:',
      '  - slug: bench',
      '    name: Benchmark tenant',
      '    auth:',
      '      jwt:',
      `        issuer: ${JWT_ISSUER}`,
      `        audience: ${JWT_AUDIENCE}`,
      '        publicKey: { env: BENCH_JWT_PUBLIC_KEY }',
      '        algorithms: [RS256]',
      '    backends:',
      '      - { name: echo, kind: fixture, target: echo }',
      '    apiKeys:',
      '      - { name: bench, secret: { env: BENCH_API_KEY }, roles: [tool-user] }',
    ].join('\n'),
  );
  return {
    FIXTURE_CATALOG: 'conformance',
    DATABASE_PATH: ':memory:',
    DATA_DIR: dir,
    PORTICO_CONFIG_FILE: file,
    BENCH_API_KEY,
    BENCH_JWT_PUBLIC_KEY: publicKey.export({ type: 'spki', format: 'pem' }),
  };
}

function assertBuilt(entry) {
  if (!existsSync(entry)) {
    const err = new Error(`${entry} not found — run \`npm run build\` first`);
    err.code = 'PORTICO_NOT_BUILT'; // the expected state while Portico is being written
    throw err;
  }
}

/** Resolves to { child, port }, or throws with an explanation of why not. */
export async function startPortico() {
  assertBuilt(PORTICO_ENTRY);
  const port = await freePort();
  return startCommand(process.execPath, [PORTICO_ENTRY], {
    name: 'portico',
    port,
    cwd: ROOT,
    env: {
      NODE_ENV: 'production',
      ...porticoEnv(),
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
    },
  });
}

/**
 * `node dist/apps/cli/apps/cli/src/main.js stdio`: MCP over the child's
 * stdin/stdout. Returns { child, exited } (see startStdioCommand); it is ready
 * once it answers a first request.
 */
export function startPorticoStdio(name) {
  assertBuilt(PORTICO_CLI_ENTRY);
  return startStdioCommand(process.execPath, [PORTICO_CLI_ENTRY, 'stdio'], {
    name,
    cwd: ROOT,
    env: { NODE_ENV: 'production', ...porticoEnv(), LOG_LEVEL: 'warn' },
  });
}

// Starts the real Portico gateway (compiled by `npm run build`) as a child
// process. Unlike the fixtures this is not forked with IPC: it is launched
// exactly as in production, `node dist/apps/gateway/apps/gateway/src/main.js`, configured only
// through the environment. The stdio benchmark launches the CLI the same way:
// `node dist/apps/cli/apps/cli/src/main.js stdio`.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
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
 * FILL IN if needed: any extra environment Portico needs to expose the
 * fixture `echo` tool ({message: string} -> text content "message").
 * Variables exported in the shell running `npm run bench` are inherited too.
 */
function porticoEnv() {
  return {};
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

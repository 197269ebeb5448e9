// What the benchmarks measure: which server processes exist and which load
// (protocol era) is run against each. Portico serves both eras from one
// process, so over HTTP and WebSocket two targets share the 'portico' server;
// over stdio the era belongs to the connection, so each target has its own.
import { resolve } from 'node:path';
import { startFixture, startStdioCommand } from './lib/procs.mjs';
import {
  BENCH_API_KEY,
  BENCH_JWT,
  BENCH_TENANT_PATH,
  startPortico,
  startPorticoStdio,
} from './servers/portico.mjs';

const fixture = (file, name) => () =>
  startFixture(resolve(import.meta.dirname, 'servers', file), name);

/** Server name -> () => Promise<{ child, port }>. */
export const SERVERS = {
  'bare-fastify': fixture('bare-fastify.mjs', 'bare-fastify'),
  'sdk-v1': fixture('sdk-v1.mjs', 'sdk-v1'),
  'sdk-v2': fixture('sdk-v2.mjs', 'sdk-v2'),
  'bare-ws': fixture('bare-ws.mjs', 'bare-ws'),
  portico: startPortico,
};

/** Start each named server once; a failure is recorded, not thrown. */
export async function startServers(names) {
  const servers = {};
  for (const name of names) {
    process.stdout.write(`starting ${name}… `);
    try {
      servers[name] = await SERVERS[name]();
      console.log(`pid ${servers[name].child.pid}, port ${servers[name].port}`);
    } catch (err) {
      servers[name] = { error: err.message, notBuilt: err.code === 'PORTICO_NOT_BUILT' };
      console.log('FAILED');
      console.log(`  ${err.message.split('\n').join('\n  ')}`);
    }
  }
  return servers;
}

/** stdio server kind -> (name) => { child, exited }; one process per target. */
export const STDIO_SERVERS = {
  'bare-stdio': (name) =>
    startStdioCommand(
      process.execPath,
      [resolve(import.meta.dirname, 'servers', 'bare-stdio.mjs')],
      {
        name,
        env: { NODE_ENV: 'production' },
      },
    ),
  'portico-stdio': startPorticoStdio,
};

/**
 * era: 'plain' (bare JSON-RPC), '2025' (2025-11-25 session) or 'modern'
 * (2026-07-28 stateless envelope); see lib/mcp.mjs. SDK v2's native path is
 * the modern one, so it gets the same requests as Portico's modern era.
 */
export const TARGETS = [
  {
    key: 'a',
    id: 'bare-fastify',
    label: 'bare Fastify JSON echo',
    server: 'bare-fastify',
    era: 'plain',
  },
  { key: 'b', id: 'sdk-v1', label: 'SDK v1 McpServer, stateful', server: 'sdk-v1', era: '2025' },
  { key: 'c', id: 'sdk-v2', label: 'SDK v2 createMcpHandler', server: 'sdk-v2', era: 'modern' },
  {
    key: 'd',
    id: 'portico-2025',
    label: 'Portico, 2025-11-25 session',
    server: 'portico',
    era: '2025',
  },
  {
    key: 'e',
    id: 'portico-modern',
    label: 'Portico, 2026-07-28',
    server: 'portico',
    era: 'modern',
  },
  {
    key: 'f',
    id: 'portico-modern-api-key',
    label: 'Portico, 2026-07-28, tenant + API key',
    server: 'portico',
    era: 'modern',
    path: BENCH_TENANT_PATH,
    headers: { authorization: `Bearer ${BENCH_API_KEY}` },
  },
  {
    key: 'g',
    id: 'portico-modern-jwt',
    label: 'Portico, 2026-07-28, tenant + JWT (RS256)',
    server: 'portico',
    era: 'modern',
    path: BENCH_TENANT_PATH,
    headers: { authorization: `Bearer ${BENCH_JWT}` },
  },
  {
    // The anonymous endpoint ignores credentials: e with g's bytes on the wire, so g / h is the
    // cost of the tenant endpoint and its checks alone, without that of carrying a JWT.
    key: 'h',
    id: 'portico-modern-jwt-bytes',
    label: 'Portico, 2026-07-28, JWT header ignored (anonymous)',
    server: 'portico',
    era: 'modern',
    headers: { authorization: `Bearer ${BENCH_JWT}` },
  },
];

/**
 * tools/call over WebSocket (ws://…/mcp, subprotocol "mcp"). The baseline gets
 * plain JSON-RPC frames; Portico gets the 2026-07-28 envelope, or plain calls
 * after initialize on each connection (see lib/mcp.mjs eraFrame).
 */
export const WS_TARGETS = [
  { key: 'w1', id: 'ws-bare', label: 'bare ws JSON echo', server: 'bare-ws', era: 'plain' },
  {
    key: 'w2',
    id: 'ws-portico-modern',
    label: 'Portico WS, 2026-07-28',
    server: 'portico',
    era: 'modern',
  },
  {
    key: 'w3',
    id: 'ws-portico-2025',
    label: 'Portico WS, 2025-11-25 initialize',
    server: 'portico',
    era: '2025',
  },
];

/** Sequential tools/call round trips over a child's stdin/stdout. */
export const STDIO_TARGETS = [
  {
    key: 's1',
    id: 'stdio-bare',
    label: 'bare Node stdio echo',
    server: 'bare-stdio',
    era: 'plain',
  },
  {
    key: 's2',
    id: 'stdio-portico-modern',
    label: 'Portico stdio, 2026-07-28',
    server: 'portico-stdio',
    era: 'modern',
  },
  {
    key: 's3',
    id: 'stdio-portico-2025',
    label: 'Portico stdio, 2025-11-25 initialize',
    server: 'portico-stdio',
    era: '2025',
  },
];

/** Names that select a whole group of targets. */
const GROUPS = { http: TARGETS, ws: WS_TARGETS, stdio: STDIO_TARGETS };

/**
 * BENCH_ONLY is a comma list of target keys or ids ("a,c", "sdk-v1,e,w2"),
 * group names ("http", "ws", "stdio"), plus "engine" for the microbenchmark.
 * Unset means everything. Ratios need their baseline (a, w1, s1) selected too.
 */
/** Sections that run as a whole (their own servers and variants): BENCH_ONLY names them. */
export const SECTIONS = ['observability', 'queue', 'federation'];

export function parseOnly(value) {
  if (!value?.trim()) {
    return {
      engine: true,
      targets: TARGETS,
      ws: WS_TARGETS,
      stdio: STDIO_TARGETS,
      ...Object.fromEntries(SECTIONS.map((name) => [name, true])),
    };
  }
  const wanted = value
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  const all = [...TARGETS, ...WS_TARGETS, ...STDIO_TARGETS];
  const known = new Set([
    'engine',
    ...SECTIONS,
    ...Object.keys(GROUPS),
    ...all.flatMap((t) => [t.key, t.id]),
  ]);
  const unknown = wanted.filter((w) => !known.has(w));
  if (unknown.length) {
    throw new Error(
      `BENCH_ONLY: unknown ${unknown.join(', ')}; use engine, ${SECTIONS.join(', ')}, ` +
        `${Object.keys(GROUPS).join(', ')} ` +
        `or ${all.map((t) => `${t.key}/${t.id}`).join(', ')}`,
    );
  }
  const pick = (group) =>
    GROUPS[group].filter(
      (t) => wanted.includes(group) || wanted.includes(t.key) || wanted.includes(t.id),
    );
  return {
    engine: wanted.includes('engine'),
    ...Object.fromEntries(SECTIONS.map((name) => [name, wanted.includes(name)])),
    targets: pick('http'),
    ws: pick('ws'),
    stdio: pick('stdio'),
  };
}

// What the HTTP benchmark measures: which server processes exist and which
// load (protocol era) is run against each. Portico serves both eras from one
// process, so two targets share the 'portico' server.
import { resolve } from 'node:path';
import { startFixture } from './lib/procs.mjs';
import { startPortico } from './servers/portico.mjs';

const fixture = (file, name) => () =>
  startFixture(resolve(import.meta.dirname, 'servers', file), name);

/** Server name -> () => Promise<{ child, port }>. */
export const SERVERS = {
  'bare-fastify': fixture('bare-fastify.mjs', 'bare-fastify'),
  'sdk-v1': fixture('sdk-v1.mjs', 'sdk-v1'),
  'sdk-v2': fixture('sdk-v2.mjs', 'sdk-v2'),
  portico: startPortico,
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
];

/**
 * BENCH_ONLY is a comma list of target keys or ids ("a,c", "sdk-v1,e"), plus
 * "engine" for the microbenchmark. Unset means everything.
 */
export function parseOnly(value) {
  if (!value?.trim()) {
    return { engine: true, targets: TARGETS };
  }
  const wanted = value
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  const known = new Set(['engine', ...TARGETS.flatMap((t) => [t.key, t.id])]);
  const unknown = wanted.filter((w) => !known.has(w));
  if (unknown.length) {
    throw new Error(
      `BENCH_ONLY: unknown ${unknown.join(', ')}; use engine or ${TARGETS.map((t) => `${t.key}/${t.id}`).join(', ')}`,
    );
  }
  return {
    engine: wanted.includes('engine'),
    targets: TARGETS.filter((t) => wanted.includes(t.key) || wanted.includes(t.id)),
  };
}

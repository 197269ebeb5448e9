import { createHash } from 'node:crypto';

/** MCP tool and prompt names: at most 128 characters from this set (MCP-CHECKLIST). */
export const MAX_NAME_LENGTH = 128;
const INVALID_NAME_CHARS = /[^A-Za-z0-9_.-]/g;
const HASH_LENGTH = 8;

export interface NamespaceOptions {
  /** '' exposes upstream names unprefixed. */
  readonly prefix: string;
  readonly separator: string;
}

/**
 * The name a client sees for upstream item `name`: `{prefix}{separator}{name}`. A result that
 * breaks the MCP name rules is sanitized and/or truncated, then suffixed with a short hash of
 * the unmodified name, so the mapping is deterministic (stable across restarts and nodes) and
 * two upstream names that differ only in replaced or cut-off characters stay distinct.
 */
export function namespacedName(name: string, options: NamespaceOptions): string {
  const full = options.prefix === '' ? name : `${options.prefix}${options.separator}${name}`;
  const clean = full.replace(INVALID_NAME_CHARS, '_');
  if (clean === full && full.length > 0 && full.length <= MAX_NAME_LENGTH) {
    return full;
  }
  const hash = createHash('sha256').update(full).digest('hex').slice(0, HASH_LENGTH);
  return `${clean.slice(0, MAX_NAME_LENGTH - HASH_LENGTH - 1)}_${hash}`;
}

/**
 * Exposed name → upstream name for one list (tools or prompts). The first upstream item wins
 * an exposed name; a later one mapping to the same name is skipped rather than shadowing it.
 */
export class NameMap {
  private readonly upstreamByExposed = new Map<string, string>();

  constructor(private readonly options: NamespaceOptions) {}

  /** Registers `upstreamName`; returns its exposed name, or undefined when that is taken. */
  add(upstreamName: string): string | undefined {
    const exposed = namespacedName(upstreamName, this.options);
    if (this.upstreamByExposed.has(exposed)) {
      return undefined;
    }
    this.upstreamByExposed.set(exposed, upstreamName);
    return exposed;
  }

  upstreamName(exposed: string): string | undefined {
    return this.upstreamByExposed.get(exposed);
  }
}

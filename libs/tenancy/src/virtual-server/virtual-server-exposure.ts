/*
 * What a virtual server exposes, and the rules its definition follows wherever it is written
 * (admin API, portico.yaml). A virtual server is a named subset of its tenant's governed
 * catalog: tools and prompts by the name clients see (after tool policies rename them),
 * resources by URI, resource templates by their URI template. Each entry is exact, or a glob
 * where `*` stands for any run of characters (none included, `/` included); nothing else is
 * special, and matching is case-sensitive. An empty list exposes nothing of that kind; `*`
 * exposes everything.
 */

/** Server names are the last path segment of `/mcp/{tenant}/{name}`: the tenant slug rules. */
export const SERVER_NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$/;

/**
 * Sub-routes of `/mcp/{tenant}` the gateway serves itself (the legacy HTTP+SSE transport's
 * stream and message endpoints); a server of that name could never be reached.
 */
export const RESERVED_SERVER_NAMES: readonly string[] = ['sse', 'messages'];

export const EXPOSURE_KINDS = ['tools', 'prompts', 'resources', 'resourceTemplates'] as const;
export type ExposureKind = (typeof EXPOSURE_KINDS)[number];

/** The four lists of a virtual server. */
export type Exposure = { readonly [K in ExposureKind]: readonly string[] };

/** Entries per list: enough for any hand-written subset, small enough to match quickly. */
export const MAX_EXPOSURE_ENTRIES = 500;

const TOOL_ENTRY = /^[A-Za-z0-9_./*-]{1,128}$/;

/** C0 controls and DEL: never part of a name or URI a client could send in JSON text. */
function hasControl(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) {
      return true;
    }
  }
  return false;
}

/** Why `name` cannot name a virtual server; undefined when it can. */
export function serverNameProblem(name: string): string | undefined {
  if (!SERVER_NAME_PATTERN.test(name)) {
    return 'must be 1 to 48 lowercase letters, digits or hyphens, not starting or ending with a hyphen';
  }
  if (RESERVED_SERVER_NAMES.includes(name)) {
    return `"${name}" is reserved by the gateway's routes under /mcp/{tenant}`;
  }
  return undefined;
}

/** Why `entry` cannot be an entry of the `kind` list; undefined when it can. */
export function exposureEntryProblem(kind: ExposureKind, entry: unknown): string | undefined {
  if (typeof entry !== 'string') {
    return 'must be a string';
  }
  switch (kind) {
    case 'tools':
      return TOOL_ENTRY.test(entry)
        ? undefined
        : 'must be a tool name (1 to 128 of A-Z a-z 0-9 _ . - /), optionally with * wildcards';
    case 'prompts':
      return entry.length >= 1 && entry.length <= 256 && !hasControl(entry)
        ? undefined
        : 'must be a prompt name (1 to 256 characters, no control characters), optionally with * wildcards';
    case 'resources':
    case 'resourceTemplates':
      return entry.length >= 1 && entry.length <= 2048 && !/\s/.test(entry) && !hasControl(entry)
        ? undefined
        : `must be a ${kind === 'resources' ? 'URI' : 'URI template'} (1 to 2048 characters, ` +
            'no whitespace or control characters), optionally with * wildcards';
    default:
      return assertUnreachable(kind);
  }
}

/** One thing wrong with an exposure list; `path` is relative to the definition (`tools[2]`). */
export interface ExposureProblem {
  readonly path: string;
  readonly message: string;
}

/** Every problem of one list (type, size, entries, duplicates), with paths like `tools[2]`. */
export function exposureListProblems(kind: ExposureKind, list: unknown): ExposureProblem[] {
  if (!Array.isArray(list)) {
    return [{ path: kind, message: 'must be an array of strings' }];
  }
  const problems: ExposureProblem[] = [];
  if (list.length > MAX_EXPOSURE_ENTRIES) {
    problems.push({ path: kind, message: `must have at most ${MAX_EXPOSURE_ENTRIES} entries` });
  }
  const seen = new Map<string, number>();
  list.forEach((entry, i) => {
    const problem = exposureEntryProblem(kind, entry);
    if (problem !== undefined) {
      problems.push({ path: `${kind}[${i}]`, message: problem });
      return;
    }
    const first = seen.get(entry as string);
    if (first === undefined) {
      seen.set(entry as string, i);
    } else {
      problems.push({
        path: `${kind}[${i}]`,
        message: `duplicates ${kind}[${first}] (${JSON.stringify(entry)})`,
      });
    }
  });
  return problems;
}

/** Tests one name, URI or URI template against a list's entries. */
export type EntryMatcher = (value: string) => boolean;

const NOTHING: EntryMatcher = () => false;
const EVERYTHING: EntryMatcher = () => true;

/**
 * Compiles a list's entries into one matcher: exact entries in a set, globs as prefix,
 * suffix and in-order infix checks. No regular expressions: a glob such as `*a*a*a*b` must
 * not make matching backtrack, whoever wrote it.
 */
export function compileEntries(entries: readonly string[]): EntryMatcher {
  if (entries.length === 0) {
    return NOTHING;
  }
  const exact = new Set<string>();
  const globs: EntryMatcher[] = [];
  for (const entry of entries) {
    if (!entry.includes('*')) {
      exact.add(entry);
    } else if (/^\*+$/.test(entry)) {
      return EVERYTHING;
    } else {
      globs.push(globMatcher(entry));
    }
  }
  if (globs.length === 0) {
    return (value) => exact.has(value);
  }
  return (value) => exact.has(value) || globs.some((glob) => glob(value));
}

/**
 * A glob with `*` wildcards only: the first part is a prefix, the last a suffix, and the parts
 * between must occur in order between them. Taking the leftmost occurrence of each inner part
 * is always right, because it leaves the most room for the parts after it.
 */
function globMatcher(glob: string): EntryMatcher {
  const parts = glob.split('*');
  const head = parts[0];
  const tail = parts[parts.length - 1];
  const inner = parts.slice(1, -1).filter((part) => part !== '');
  const shortest = head.length + tail.length + inner.reduce((n, part) => n + part.length, 0);
  return (value) => {
    if (value.length < shortest || !value.startsWith(head) || !value.endsWith(tail)) {
      return false;
    }
    let from = head.length;
    const end = value.length - tail.length;
    for (const part of inner) {
      const at = value.indexOf(part, from);
      if (at < 0 || at + part.length > end) {
        return false;
      }
      from = at + part.length;
    }
    return true;
  };
}

/** A virtual server's lists, compiled once per definition. */
export class CompiledExposure {
  /** Exposes nothing: what a server that no longer exists sees. */
  static readonly NONE = new CompiledExposure({
    tools: [],
    prompts: [],
    resources: [],
    resourceTemplates: [],
  });

  readonly tools: EntryMatcher;
  readonly prompts: EntryMatcher;
  readonly resources: EntryMatcher;
  readonly resourceTemplates: EntryMatcher;

  constructor(exposure: Exposure) {
    this.tools = compileEntries(exposure.tools);
    this.prompts = compileEntries(exposure.prompts);
    this.resources = compileEntries(exposure.resources);
    this.resourceTemplates = compileEntries(exposure.resourceTemplates);
  }
}

function assertUnreachable(value: never): never {
  throw new Error(`Unhandled exposure kind: ${String(value)}`);
}

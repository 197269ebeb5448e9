import type { INestApplicationContext } from '@nestjs/common';
import { AuthError, AuthService } from '@portico/auth';
import type { Principal } from '@portico/mcp-protocol';
import { bindToServer } from '@portico/registry';
import { TenantService } from '@portico/tenancy';

/** What `portico stdio` serves: the anonymous catalog, a tenant's, or one of its servers. */
export interface StdioTarget {
  readonly tenant?: string;
  /** A virtual server of `tenant`: the same subset its `/mcp/{tenant}/{server}` endpoint sees. */
  readonly server?: string;
}

/**
 * Why `portico stdio` cannot start: printed as `portico: {message}` and exiting with `code`
 * (2 for a usage mistake, 1 for a refusal), never with a stack trace.
 */
export class StdioStartError extends Error {
  constructor(
    readonly code: 1 | 2,
    message: string,
  ) {
    super(message);
    this.name = 'StdioStartError';
  }
}

const OPTIONS = { '--tenant': 'a tenant slug', '--server': 'a virtual server name' } as const;
type Option = keyof typeof OPTIONS;

/** `[--tenant SLUG] [--server NAME]`; anything else is a usage error. */
export function parseStdioArgs(args: readonly string[]): StdioTarget {
  const values: Partial<Record<Option, string>> = {};
  for (let i = 0; i < args.length; i += 2) {
    const option = args[i];
    if (!(option in OPTIONS)) {
      throw new StdioStartError(2, `unknown stdio option "${option}"`);
    }
    const value = args[i + 1];
    if (value === undefined || value === '' || value.startsWith('--')) {
      throw new StdioStartError(2, `${option} needs ${OPTIONS[option as Option]}`);
    }
    if (values[option as Option] !== undefined) {
      throw new StdioStartError(2, `${option} is given twice`);
    }
    values[option as Option] = value;
  }
  if (values['--server'] !== undefined && values['--tenant'] === undefined) {
    throw new StdioStartError(2, '--server needs --tenant: a virtual server belongs to a tenant');
  }
  return { tenant: values['--tenant'], server: values['--server'] };
}

/**
 * The caller stdio serves, checked as the HTTP endpoint checks it: stdio has no Authorization
 * header, so the credential (`apiKey`, from PORTICO_API_KEY) stands in for it. With a server,
 * the principal is bound to it and the catalog, sessions and tasks see only its subset;
 * undefined for the anonymous development catalog.
 */
export async function stdioPrincipal(
  app: INestApplicationContext,
  apiKey: string | undefined,
  target: StdioTarget,
): Promise<Principal | undefined> {
  const slug = target.tenant;
  if (slug === undefined) {
    return undefined;
  }
  const tenants = app.get(TenantService);
  const tenant = await tenants.bySlug(slug);
  if (!tenant) {
    throw new StdioStartError(1, `unknown tenant "${slug}"`);
  }
  if (tenant.status !== 'active') {
    throw new StdioStartError(1, `tenant "${slug}" is suspended`);
  }
  // The server before the credential, as on HTTP: an unknown server is the answer either way.
  const server =
    target.server === undefined ? undefined : await tenants.serverNamed(tenant, target.server);
  if (server === null) {
    throw new StdioStartError(1, `tenant "${slug}" has no virtual server "${target.server}"`);
  }
  if (!apiKey) {
    throw new StdioStartError(
      1,
      'PORTICO_API_KEY must hold the API key (or token) to serve a tenant',
    );
  }
  try {
    const principal = await app
      .get(AuthService)
      .authenticate({ authorization: `Bearer ${apiKey}` }, tenant);
    if (!principal.can('mcp:use')) {
      throw new StdioStartError(1, 'PORTICO_API_KEY may not use the MCP endpoint');
    }
    return server ? bindToServer(principal, server.name) : principal;
  } catch (err) {
    if (err instanceof AuthError) {
      throw new StdioStartError(1, `PORTICO_API_KEY was refused: ${err.message}`);
    }
    throw err;
  }
}

import type { Principal } from '@portico/mcp-protocol';
import { Permission, permissionsOf, Role } from './roles';

export type CredentialKind = 'api-key' | 'jwt' | 'bootstrap';

/**
 * An authenticated caller. `id` is stable per credential (`key:<id>`, `jwt:<tenant>:<sub>`,
 * `bootstrap`) and is what sealed requestState and sessions are bound to; `tenant` is the
 * tenant id (absent only for platform-level credentials).
 */
export class AuthPrincipal implements Principal {
  readonly permissions: ReadonlySet<Permission>;

  constructor(
    readonly id: string,
    readonly kind: CredentialKind,
    readonly tenant: string | undefined,
    readonly roles: readonly Role[],
    readonly scopes: readonly string[],
    /** The API key id or the token subject. */
    readonly subject: string,
  ) {
    this.permissions = permissionsOf(roles);
  }

  can(permission: Permission): boolean {
    return this.permissions.has(permission);
  }

  hasScopes(required: readonly string[]): boolean {
    return required.every((scope) => this.scopes.includes(scope));
  }
}

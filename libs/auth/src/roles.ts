/** The roles Portico knows, from most to least powerful. */
export const ROLES = ['platform-admin', 'tenant-admin', 'tenant-operator', 'tool-user'] as const;
export type Role = (typeof ROLES)[number];

/** What a role allows; checks ask for a permission, never for a role name. */
export type Permission =
  /** Create, change and delete tenants. */
  | 'platform:manage'
  /** Read a tenant's configuration, keys (never secrets), sessions and audit trail. */
  | 'tenant:read'
  /** Change a tenant's backends, policies, keys and role bindings; end its sessions. */
  | 'tenant:write'
  /** Use the tenant's MCP endpoint. */
  | 'mcp:use';

const GRANTS: Record<Role, readonly Permission[]> = {
  'platform-admin': ['platform:manage', 'tenant:read', 'tenant:write'],
  'tenant-admin': ['tenant:read', 'tenant:write', 'mcp:use'],
  'tenant-operator': ['tenant:read'],
  'tool-user': ['mcp:use'],
};

export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}

export function permissionsOf(roles: readonly string[]): Set<Permission> {
  const out = new Set<Permission>();
  for (const role of roles) {
    if (isRole(role)) {
      for (const permission of GRANTS[role]) {
        out.add(permission);
      }
    }
  }
  return out;
}

import type { CatalogScope, Principal } from '@portico/mcp-protocol';

/**
 * A principal as seen on a virtual server's endpoint: the tenant's principal plus the name of
 * the server it came through. The engine hands the principal (not the transport's scope) to
 * every catalog call, to the 2025-era session it opens and to its tasks, so the server travels
 * with it and every lookup of that request or session is filtered by the router.
 */
export type ServerBoundPrincipal<P extends Principal = Principal> = P & { readonly server: string };

const bound = new WeakMap<Principal, Map<string, Principal>>();

/**
 * `principal` bound to the virtual server `server`: a copy with the same prototype (methods and
 * `instanceof` keep working), own fields (so it serialises whole) and `server` set. Built once
 * per principal object and server, so a cached principal keeps one identity per server.
 */
export function bindToServer<P extends Principal>(
  principal: P,
  server: string,
): ServerBoundPrincipal<P> {
  let servers = bound.get(principal);
  if (!servers) {
    servers = new Map();
    bound.set(principal, servers);
  }
  let view = servers.get(server);
  if (!view) {
    view = Object.assign(
      Object.create(Object.getPrototypeOf(principal) as object) as P,
      principal,
      {
        server,
      },
    );
    servers.set(server, view);
  }
  return view as ServerBoundPrincipal<P>;
}

/** The virtual server a principal is bound to; undefined on the tenant's own endpoint. */
export function serverOfPrincipal(principal: Principal | undefined): string | undefined {
  const server = (principal as { server?: unknown } | undefined)?.server;
  return typeof server === 'string' ? server : undefined;
}

/** The virtual server a catalog call is for: the scope's own, else its principal's. */
export function serverOfScope(scope: CatalogScope | undefined): string | undefined {
  return scope?.server ?? serverOfPrincipal(scope?.principal);
}

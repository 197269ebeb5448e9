import type { IncomingHttpHeaders } from 'node:http';
import { Injectable } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { ConfigService } from '@portico/config';

export interface GuardProblem {
  status: number;
  message: string;
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/**
 * Origin and Host validation for the MCP endpoints (DNS-rebinding protection). Browsers send
 * Origin on cross-site requests; an Origin we do not trust is refused with 403, and so is a
 * Host header naming a host this gateway does not serve.
 */
@Injectable()
export class HttpGuard {
  private readonly origins: ReadonlySet<string>;
  private readonly hosts: ReadonlySet<string>;

  constructor(config: ConfigService) {
    this.origins = new Set(config.values.mcp.allowedOrigins.map((o) => o.toLowerCase()));
    this.hosts = new Set(config.values.mcp.allowedHosts.map((h) => h.toLowerCase()));
  }

  check(request: FastifyRequest): GuardProblem | undefined {
    return this.checkHeaders(request.headers);
  }

  /** The same checks on raw headers (WebSocket upgrades never reach Fastify's routes). */
  checkHeaders(headers: IncomingHttpHeaders): GuardProblem | undefined {
    if (this.hosts.size > 0) {
      // HTTP/2 carries the host as the :authority pseudo-header.
      const authority = headers.host ?? (headers[':authority'] as string | undefined);
      const host = hostName(authority);
      if (host === undefined || !this.hosts.has(host)) {
        return {
          status: 403,
          message: `Forbidden: Host ${authority ?? '(none)'} is not allowed`,
        };
      }
    }
    const origin = headers.origin;
    if (origin !== undefined && !this.originAllowed(origin)) {
      return { status: 403, message: `Forbidden: Origin ${origin} is not allowed` };
    }
    return undefined;
  }

  private originAllowed(origin: string): boolean {
    const normalized = origin.toLowerCase();
    if (this.origins.has(normalized) || this.origins.has('*')) {
      return true;
    }
    try {
      const url = new URL(normalized);
      // Local pages talking to a local gateway are fine; remote origins must be listed.
      return LOOPBACK.has(url.hostname) && this.origins.size === 0;
    } catch {
      return false;
    }
  }
}

/** The host part of a Host header, lower-case, without the port. */
function hostName(header: string | undefined): string | undefined {
  if (!header) {
    return undefined;
  }
  const value = header.toLowerCase();
  if (value.startsWith('[')) {
    const end = value.indexOf(']');
    return end > 0 ? value.slice(0, end + 1) : undefined;
  }
  const colon = value.indexOf(':');
  return colon >= 0 ? value.slice(0, colon) : value;
}

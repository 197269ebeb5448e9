/**
 * Why a request was refused, in RFC 6750 terms. Transports turn it into 401/403 with a
 * WWW-Authenticate challenge (HTTP) or a JSON-RPC error (WebSocket, SSE, stdio).
 */
export class AuthError extends Error {
  constructor(
    readonly status: 401 | 403,
    readonly error: 'invalid_request' | 'invalid_token' | 'insufficient_scope' | undefined,
    message: string,
    /** For insufficient_scope: the scopes the caller needs. */
    readonly scopes: readonly string[] = [],
  ) {
    super(message);
    this.name = 'AuthError';
  }

  /** No credentials at all: a bare challenge, the client should go and get a token. */
  static missing(): AuthError {
    return new AuthError(401, undefined, 'Authentication required');
  }

  static invalid(message: string): AuthError {
    return new AuthError(401, 'invalid_token', message);
  }

  static badRequest(message: string): AuthError {
    return new AuthError(401, 'invalid_request', message);
  }

  static forbidden(message: string): AuthError {
    return new AuthError(403, undefined, message);
  }

  static insufficientScope(scopes: readonly string[]): AuthError {
    return new AuthError(403, 'insufficient_scope', 'Insufficient scope', scopes);
  }

  /** The WWW-Authenticate header value (RFC 6750 §3, RFC 9728 §5.1). */
  challenge(
    resourceMetadataUrl: string | undefined,
    defaultScopes: readonly string[] = [],
  ): string {
    const parts = ['Bearer realm="portico"'];
    if (resourceMetadataUrl) {
      parts.push(`resource_metadata="${resourceMetadataUrl}"`);
    }
    if (this.error) {
      parts.push(`error="${this.error}"`);
      parts.push(`error_description="${this.message.replace(/["\\]/g, "'")}"`);
    }
    const scopes = this.scopes.length > 0 ? this.scopes : defaultScopes;
    if (scopes.length > 0) {
      parts.push(`scope="${scopes.join(' ')}"`);
    }
    return parts.join(', ');
  }
}

/** Why an admin request failed; mapped to HTTP in exactly one place (problem-details.ts). */
export type AdminErrorCode =
  'not-found' | 'conflict' | 'invalid-input' | 'validation' | 'forbidden';

export interface FieldErrors {
  field: string;
  messages: string[];
}

/** An expected admin failure raised by controllers and the validation pipe. */
export class AdminError extends Error {
  constructor(
    readonly code: AdminErrorCode,
    message: string,
    readonly errors: readonly FieldErrors[] = [],
  ) {
    super(message);
    this.name = 'AdminError';
  }

  static notFound(what: string): AdminError {
    return new AdminError('not-found', `${what} not found`);
  }

  /** Authenticated and allowed on the route, but not to do this particular thing. */
  static forbidden(message: string): AdminError {
    return new AdminError('forbidden', message);
  }

  static validation(errors: readonly FieldErrors[]): AdminError {
    return new AdminError('validation', 'The request is invalid', errors);
  }
}

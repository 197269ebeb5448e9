/** Why an operation on queued jobs failed; mapped to HTTP by the admin controller. */
export type ToolJobErrorCode = 'not-found' | 'not-idempotent' | 'unavailable';

export class ToolJobError extends Error {
  constructor(
    readonly code: ToolJobErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ToolJobError';
  }
}

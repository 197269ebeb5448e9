import { HttpException } from '@nestjs/common';
import { QueryFailedError } from 'typeorm';
import { AuthError } from '@portico/auth';
import { isPoolTimeout } from '@portico/persistence';
import { TenantConflictError, TenantInputError } from '../tenant/tenant.service';
import { AdminError, FieldErrors } from './admin.errors';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** RFC 9457 problem details, as every admin error is returned. */
export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  errors?: FieldErrors[];
  /** Only on 500s: lets an operator find the request in the logs. */
  correlationId?: string;
}

export interface ProblemResponse {
  body: ProblemDetails;
  headers: Record<string, string>;
}

/** Every failure class the admin API distinguishes; the switch below must cover each. */
type ProblemKind =
  | { kind: 'admin'; error: AdminError }
  | { kind: 'auth'; error: AuthError }
  | { kind: 'tenant-conflict'; error: TenantConflictError }
  | { kind: 'tenant-input'; error: TenantInputError }
  | { kind: 'unique-violation' }
  | { kind: 'database-busy' }
  | { kind: 'http'; status: number; detail: string }
  | { kind: 'internal' };

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

const PROBLEM_TYPE = (name: string): string => `urn:portico:problem:${name}`;

/**
 * Turns anything thrown on an admin route (or by Fastify before it, such as a malformed JSON
 * body) into problem details. Internal errors keep their message out of the response: the
 * request id is the only link to the logged cause.
 */
export function toProblem(err: unknown, requestId: string, instance: string): ProblemResponse {
  const classified = classify(err);
  const problem = (
    status: number,
    type: string,
    detail: string,
    extra: Partial<ProblemDetails> = {},
  ): ProblemDetails => ({
    type,
    title: TITLES[status] ?? 'Error',
    status,
    detail,
    instance,
    ...extra,
  });
  switch (classified.kind) {
    case 'admin':
      return { body: fromAdminError(classified.error, problem), headers: {} };
    case 'auth': {
      const { error } = classified;
      // Admin routes have no RFC 9728 metadata: the challenge carries the realm only.
      const headers: Record<string, string> =
        error.status === 401 ? { 'www-authenticate': error.challenge(undefined) } : {};
      const type = error.status === 401 ? 'unauthenticated' : 'forbidden';
      return { body: problem(error.status, PROBLEM_TYPE(type), error.message), headers };
    }
    case 'tenant-conflict':
      return {
        body: problem(409, PROBLEM_TYPE('conflict'), classified.error.message),
        headers: {},
      };
    case 'tenant-input':
      return {
        body: problem(400, PROBLEM_TYPE('invalid-input'), classified.error.message),
        headers: {},
      };
    case 'unique-violation':
      return {
        body: problem(409, PROBLEM_TYPE('conflict'), 'A resource with this name already exists'),
        headers: {},
      };
    case 'database-busy':
      return {
        body: problem(
          503,
          PROBLEM_TYPE('database-busy'),
          'No database connection became free in time; retry shortly',
        ),
        headers: { 'retry-after': '1' },
      };
    case 'http':
      return {
        body: problem(classified.status, 'about:blank', classified.detail),
        headers: {},
      };
    case 'internal':
      return {
        body: problem(
          500,
          PROBLEM_TYPE('internal'),
          `An unexpected error occurred; quote correlation id ${requestId} when reporting it`,
          { correlationId: requestId },
        ),
        headers: {},
      };
    default:
      return assertUnreachable(classified);
  }
}

function fromAdminError(
  error: AdminError,
  problem: (
    status: number,
    type: string,
    detail: string,
    extra?: Partial<ProblemDetails>,
  ) => ProblemDetails,
): ProblemDetails {
  switch (error.code) {
    case 'not-found':
      return problem(404, PROBLEM_TYPE('not-found'), error.message);
    case 'conflict':
      return problem(409, PROBLEM_TYPE('conflict'), error.message);
    case 'invalid-input':
      return problem(400, PROBLEM_TYPE('invalid-input'), error.message);
    case 'forbidden':
      return problem(403, PROBLEM_TYPE('forbidden'), error.message);
    case 'validation':
      return problem(400, PROBLEM_TYPE('validation'), error.message, {
        errors: [...error.errors],
      });
    default:
      return assertUnreachable(error.code);
  }
}

function classify(err: unknown): ProblemKind {
  if (err instanceof AdminError) {
    return { kind: 'admin', error: err };
  }
  if (err instanceof AuthError) {
    return { kind: 'auth', error: err };
  }
  if (err instanceof TenantConflictError) {
    return { kind: 'tenant-conflict', error: err };
  }
  if (err instanceof TenantInputError) {
    return { kind: 'tenant-input', error: err };
  }
  if (err instanceof QueryFailedError && /unique|duplicate/i.test(err.message)) {
    return { kind: 'unique-violation' };
  }
  if (isPoolTimeout(err)) {
    return { kind: 'database-busy' };
  }
  if (err instanceof HttpException && err.getStatus() < 500) {
    return { kind: 'http', status: err.getStatus(), detail: err.message };
  }
  // Fastify's own refusals (malformed JSON, wrong media type, body too large) carry a 4xx.
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return { kind: 'http', status, detail: (err as Error).message };
  }
  return { kind: 'internal' };
}

function assertUnreachable(value: never): never {
  throw new Error(`Unhandled admin error kind: ${JSON.stringify(value)}`);
}

import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AuthError } from '@portico/auth';
import { DashboardError } from './dashboard.errors';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** RFC 9457 problem details, as the admin API writes them. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  correlationId?: string;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

const type = (name: string): string => `urn:portico:problem:${name}`;

/** Every error of the dashboard routes leaves as problem+json; internals stay in the log. */
@Catch()
export class DashboardProblemFilter implements ExceptionFilter {
  private readonly logger = new Logger('Dashboard');

  catch(err: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const reply = http.getResponse<FastifyReply>();
    if (reply.sent || reply.raw.headersSent) {
      // The stream had started: there is no status left to send.
      this.logger.error({ err, requestId: request.id }, 'Dashboard stream failed');
      reply.raw.destroy();
      return;
    }
    const instance = request.url.split('?')[0];
    const problem = (status: number, name: string, detail: string): Problem => ({
      type: name === '' ? 'about:blank' : type(name),
      title: TITLES[status] ?? 'Error',
      status,
      detail,
      instance,
    });
    const headers: Record<string, string> = {};
    let body: Problem;
    if (err instanceof AuthError) {
      if (err.status === 401) {
        headers['www-authenticate'] = err.challenge(undefined);
      }
      body = problem(err.status, err.status === 401 ? 'unauthenticated' : 'forbidden', err.message);
    } else if (err instanceof DashboardError) {
      switch (err.code) {
        case 'not-found':
          body = problem(404, 'not-found', err.message);
          break;
        case 'invalid-input':
          body = problem(400, 'invalid-input', err.message);
          break;
        case 'busy':
          headers['retry-after'] = '5';
          body = problem(503, 'dashboard-busy', err.message);
          break;
        default:
          return assertUnreachable(err.code);
      }
    } else if (err instanceof HttpException && err.getStatus() < 500) {
      body = problem(err.getStatus(), '', err.message);
    } else {
      this.logger.error({ err, requestId: request.id }, 'Dashboard request failed');
      body = {
        ...problem(
          500,
          'internal',
          `An unexpected error occurred; quote correlation id ${request.id} when reporting it`,
        ),
        correlationId: request.id,
      };
    }
    void reply
      .status(body.status)
      .headers({ ...headers, 'cache-control': 'no-store' })
      .type(PROBLEM_CONTENT_TYPE)
      .send(body);
  }
}

function assertUnreachable(value: never): never {
  throw new Error(`Unhandled dashboard error code: ${String(value)}`);
}

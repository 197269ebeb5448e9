import { ArgumentsHost, Catch, ExceptionFilter, Logger } from '@nestjs/common';
import { BaseExceptionFilter } from '@nestjs/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ADMIN_PREFIX } from './admin-prefix';
import { PROBLEM_CONTENT_TYPE, toProblem } from './problem-details';

/** The admin API's only exception filter: every error leaves as application/problem+json. */
@Catch()
export class ProblemDetailsFilter implements ExceptionFilter {
  private readonly logger = new Logger('AdminApi');

  catch(err: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    sendProblem(
      err,
      http.getRequest<FastifyRequest>(),
      http.getResponse<FastifyReply>(),
      this.logger,
    );
  }
}

export function sendProblem(
  err: unknown,
  request: FastifyRequest,
  reply: FastifyReply,
  logger: Logger,
): void {
  const { body, headers } = toProblem(err, request.id, request.url.split('?')[0]);
  if (body.status === 503) {
    // Saturation, not a fault: no stack trace, one line to correlate with pool metrics.
    logger.warn({ requestId: request.id }, `Admin request refused: ${body.detail}`);
  } else if (body.status >= 500) {
    logger.error({ err, requestId: request.id }, 'Admin request failed');
  }
  void reply.status(body.status).headers(headers).type(PROBLEM_CONTENT_TYPE).send(body);
}

/**
 * Errors raised before a controller is chosen (malformed JSON, wrong media type, unknown
 * admin path) only reach global filters. This one answers them as problem+json on admin paths
 * and leaves every other path to Nest's default handling.
 */
@Catch()
export class AdminPathExceptionFilter extends BaseExceptionFilter {
  private readonly logger = new Logger('AdminApi');

  override catch(err: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const request = http.getRequest<FastifyRequest | undefined>();
    if (host.getType() === 'http' && request?.url?.startsWith(`${ADMIN_PREFIX}/`)) {
      sendProblem(err, request, http.getResponse<FastifyReply>(), this.logger);
      return;
    }
    super.catch(err, host);
  }
}

import { ArgumentsHost, Catch, ExceptionFilter, Logger } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ToolJobError } from '@portico/queue';

/**
 * The tool queue cannot be reached (no REDIS_URL, or Redis down): 503 problem+json with a
 * retry hint. Other queue errors are mapped to admin errors by the controller first.
 */
@Catch(ToolJobError)
export class QueueUnavailableFilter implements ExceptionFilter {
  private readonly logger = new Logger('AdminApi');

  catch(err: ToolJobError, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const reply = http.getResponse<FastifyReply>();
    this.logger.warn({ requestId: request.id }, `Admin request refused: ${err.message}`);
    void reply
      .status(503)
      .header('retry-after', '5')
      .type('application/problem+json')
      .send({
        type: 'urn:portico:problem:queue-unavailable',
        title: 'Service Unavailable',
        status: 503,
        detail: err.message,
        instance: request.url.split('?')[0],
      });
  }
}

import { createHash, timingSafeEqual } from 'node:crypto';
import {
  Controller,
  Get,
  Headers,
  NotFoundException,
  Res,
  UnauthorizedException,
} from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { ConfigService } from '@portico/config';
import { GatewayMetrics } from './gateway-metrics.service';

export const METRICS_PATH = 'metrics';

/**
 * Prometheus text exposition of this application's registry (not prom-client's global one,
 * which every gateway in the process would share). With METRICS_TOKEN set, the scraper must
 * present it as a Bearer token.
 */
@Controller(METRICS_PATH)
export class MetricsController {
  private readonly enabled: boolean;
  /** SHA-256 of the token: compared in constant time whatever the presented length. */
  private readonly tokenDigest?: Buffer;

  constructor(
    private readonly metrics: GatewayMetrics,
    config: ConfigService,
  ) {
    this.enabled = config.values.metrics.enabled;
    const token = config.values.metrics.token;
    this.tokenDigest = token === undefined ? undefined : digest(token);
  }

  @Get()
  async index(
    @Headers('authorization') authorization: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<string> {
    if (!this.enabled) {
      throw new NotFoundException();
    }
    if (this.tokenDigest && !this.authorized(authorization, this.tokenDigest)) {
      void reply.header('www-authenticate', 'Bearer realm="metrics"');
      throw new UnauthorizedException();
    }
    const registry = this.metrics.registry;
    void reply.header('content-type', registry.contentType);
    return registry.metrics();
  }

  private authorized(authorization: string | undefined, expected: Buffer): boolean {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    return match !== null && timingSafeEqual(digest(match[1]), expected);
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

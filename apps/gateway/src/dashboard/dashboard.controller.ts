import { createHash } from 'node:crypto';
import {
  Controller,
  Get,
  Header,
  Headers,
  Logger,
  OnModuleDestroy,
  Req,
  Res,
  UseFilters,
} from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AuthError } from '@portico/auth';
import { ConfigService } from '@portico/config';
import { SseWriter } from '../mcp/sse-writer';
import { DASHBOARD_CSS } from './assets/dashboard.css';
import { DASHBOARD_HTML } from './assets/dashboard.html';
import { DASHBOARD_JS } from './assets/dashboard.js';
import {
  credentialsOf,
  DashboardAccess,
  DashboardCredentials,
  DashboardViewer,
} from './dashboard-access.service';
import { DashboardProblemFilter } from './dashboard-problem.filter';
import { DashboardSampler, MAX_DASHBOARD_STREAMS } from './dashboard-sampler.service';
import { DashboardError } from './dashboard.errors';

export const DASHBOARD_PATH = 'dashboard';
/** How often an open stream's credential is checked again (revoked keys, expired tokens). */
export const RECHECK_MS = 5_000;

/** Same-origin script, style and fetch only; nothing inline, nothing third-party. */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
].join('; ');

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
};

interface Asset {
  readonly body: string;
  readonly type: string;
  readonly etag: string;
}

function asset(body: string, type: string): Asset {
  const digest = createHash('sha256').update(body).digest('base64url').slice(0, 22);
  return { body, type, etag: `"${digest}"` };
}

const PAGE = asset(DASHBOARD_HTML, 'text/html; charset=utf-8');
const SCRIPT = asset(DASHBOARD_JS, 'text/javascript; charset=utf-8');
const STYLE = asset(DASHBOARD_CSS, 'text/css; charset=utf-8');

/**
 * The operators' live page. The shell and its script and stylesheet are public and hold no
 * data; `/dashboard/stream` needs admin credentials and sends one JSON frame a second over
 * Server-Sent Events. DASHBOARD_ENABLED=false answers 404 everywhere here.
 */
@Controller(DASHBOARD_PATH)
@UseFilters(DashboardProblemFilter)
export class DashboardController implements OnModuleDestroy {
  private readonly logger = new Logger(DashboardController.name);
  private readonly enabled: boolean;
  private readonly keepAliveMs: number;
  private readonly rechecks = new Set<NodeJS.Timeout>();

  constructor(
    private readonly access: DashboardAccess,
    private readonly sampler: DashboardSampler,
    config: ConfigService,
  ) {
    this.enabled = config.values.dashboard.enabled;
    this.keepAliveMs = config.values.mcp.sseKeepAliveMs;
  }

  onModuleDestroy(): void {
    for (const timer of this.rechecks) {
      clearInterval(timer);
    }
    this.rechecks.clear();
  }

  @Get()
  @Header('content-security-policy', DASHBOARD_CSP)
  @Header('x-frame-options', 'DENY')
  @Header('cross-origin-opener-policy', 'same-origin')
  page(
    @Headers('if-none-match') ifNoneMatch: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): string {
    return this.serve(PAGE, ifNoneMatch, reply);
  }

  @Get('app.js')
  script(
    @Headers('if-none-match') ifNoneMatch: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): string {
    return this.serve(SCRIPT, ifNoneMatch, reply);
  }

  @Get('app.css')
  style(
    @Headers('if-none-match') ifNoneMatch: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): string {
    return this.serve(STYLE, ifNoneMatch, reply);
  }

  /** The live frames. Credentials in the Authorization (or X-API-Key) header only. */
  @Get('stream')
  async stream(@Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    this.assertEnabled();
    const credentials = credentialsOf(request);
    const viewer = await this.access.authorize(credentials);
    if (this.sampler.size >= MAX_DASHBOARD_STREAMS) {
      throw DashboardError.busy(MAX_DASHBOARD_STREAMS);
    }
    reply.hijack();
    let unsubscribe = (): void => undefined;
    const recheck = setInterval(
      () => void this.recheck(credentials, viewer, writer),
      RECHECK_MS,
    ).unref();
    this.rechecks.add(recheck);
    const writer = new SseWriter(
      reply.raw,
      { ...SECURITY_HEADERS, 'cache-control': 'no-store, no-transform' },
      this.keepAliveMs,
      () => {
        clearInterval(recheck);
        this.rechecks.delete(recheck);
        unsubscribe();
      },
    );
    unsubscribe = this.sampler.subscribe({
      scope: viewer.scope,
      tenantId: viewer.tenantId,
      send: (frame) => writer.event(JSON.stringify(frame)),
      end: () => writer.end(),
    });
    if (writer.closed || request.raw.destroyed) {
      // The client left while its credentials were checked.
      writer.end();
      clearInterval(recheck);
      this.rechecks.delete(recheck);
      unsubscribe();
    }
  }

  /** Ends the stream once its credential stops being valid or stops granting this view. */
  private async recheck(
    credentials: DashboardCredentials,
    viewer: DashboardViewer,
    writer: SseWriter,
  ): Promise<void> {
    if (writer.closed) {
      return;
    }
    let detail: string | undefined;
    try {
      const now = await this.access.authorize(credentials);
      if (
        now.principal.id !== viewer.principal.id ||
        now.scope.tenant !== viewer.scope.tenant ||
        now.scope.platform !== viewer.scope.platform
      ) {
        detail = 'The credential no longer grants this view';
      }
    } catch (err) {
      if (err instanceof AuthError || err instanceof DashboardError) {
        detail = err.message;
      } else {
        // A database hiccup is not a revocation: try again next time.
        this.logger.warn({ err }, 'Could not recheck a dashboard credential');
        return;
      }
    }
    if (detail !== undefined) {
      writer.named('revoked', JSON.stringify({ detail }));
      writer.end();
    }
  }

  private serve(asset: Asset, ifNoneMatch: string | undefined, reply: FastifyReply): string {
    this.assertEnabled();
    void reply.headers({ ...SECURITY_HEADERS, etag: asset.etag, 'cache-control': 'no-cache' });
    if (ifNoneMatch === asset.etag) {
      void reply.status(304);
      return '';
    }
    void reply.type(asset.type);
    return asset.body;
  }

  private assertEnabled(): void {
    if (!this.enabled) {
      throw DashboardError.notFound();
    }
  }
}

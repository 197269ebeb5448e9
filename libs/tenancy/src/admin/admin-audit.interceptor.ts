import {
  CallHandler,
  ExecutionContext,
  Injectable,
  NestInterceptor,
  SetMetadata,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { Observable, tap } from 'rxjs';
import { AuthError } from '@portico/auth';
import { AuditService } from '../audit/audit.service';
import { adminContextOf } from './admin-context';

export const AUDIT_ACTION = Symbol('portico.audit-action');

/** Names the audit action of a mutating admin handler (`tenant.create`, `api-key.revoke`). */
export const Audited = (action: string) => SetMetadata(AUDIT_ACTION, action);

const READ_METHODS = new Set(['GET', 'HEAD']);

/**
 * Records one audit event per admin mutation, successful or not, so no handler can forget.
 * A mutating handler without @Audited is a programming error and refuses to run.
 */
@Injectable()
export class AdminAuditInterceptor implements NestInterceptor {
  constructor(
    private readonly reflector: Reflector,
    private readonly audit: AuditService,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    if (READ_METHODS.has(request.method)) {
      return next.handle();
    }
    const action = this.reflector.get<string | undefined>(AUDIT_ACTION, context.getHandler());
    if (action === undefined) {
      throw new Error(`${context.getClass().name}.${context.getHandler().name} lacks @Audited`);
    }
    const admin = adminContextOf(request);
    const params = request.params as { id?: string; slug?: string };
    const started = Date.now();
    const write = (outcome: 'success' | 'error' | 'denied', result?: unknown): void => {
      const resultId = (result as { id?: unknown } | undefined)?.id;
      this.audit.record({
        tenantId: admin.audit.tenantId ?? admin.tenant?.id ?? null,
        actor: admin.principal.id,
        action,
        target:
          admin.audit.target ??
          params.id ??
          (typeof resultId === 'string' ? resultId : undefined) ??
          params.slug ??
          null,
        outcome,
        durationMs: Date.now() - started,
        requestId: request.id,
        details: admin.audit.details ?? null,
      });
    };
    return next.handle().pipe(
      tap({
        next: (result) => write('success', result),
        error: (err: unknown) => write(err instanceof AuthError ? 'denied' : 'error'),
      }),
    );
  }
}

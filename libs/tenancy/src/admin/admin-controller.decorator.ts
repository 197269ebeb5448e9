import {
  applyDecorators,
  Controller,
  UseFilters,
  UseGuards,
  UseInterceptors,
  UsePipes,
  ValidationError,
  ValidationPipe,
} from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiBearerAuth,
  ApiExtraModels,
  ApiForbiddenResponse,
  ApiNotFoundResponse,
  ApiTags,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import { AdminError, FieldErrors } from './admin.errors';
import { ADMIN_PREFIX } from './admin-prefix';
import { AdminAuditInterceptor } from './admin-audit.interceptor';
import { AdminGuard, AdminScope, AdminScopeOf } from './admin.guard';
import { ProblemDetailsDto } from './dto/problem-details.dto';
import { ProblemDetailsFilter } from './problem-details.filter';

/**
 * Validation for admin DTOs only (MCP payloads are validated in mcp-protocol): unknown
 * properties are refused, and every bad field is listed in the problem's `errors`.
 */
export const adminValidationPipe = new ValidationPipe({
  whitelist: true,
  forbidNonWhitelisted: true,
  transform: true,
  exceptionFactory: (errors) => AdminError.validation(flatten(errors)),
});

function flatten(errors: readonly ValidationError[], parent = ''): FieldErrors[] {
  const out: FieldErrors[] = [];
  for (const error of errors) {
    const field = parent ? `${parent}.${error.property}` : error.property;
    if (error.constraints) {
      out.push({ field, messages: Object.values(error.constraints) });
    }
    out.push(...flatten(error.children ?? [], field));
  }
  return out;
}

/**
 * An admin API controller: authenticated and authorised by AdminGuard, validated, audited,
 * errors as problem+json, documented under the bearer scheme.
 */
export function AdminController(path: string, scope: AdminScope, tag: string): ClassDecorator {
  return applyDecorators(
    Controller(`${ADMIN_PREFIX}/${path}`),
    AdminScopeOf(scope),
    UseFilters(ProblemDetailsFilter),
    UseGuards(AdminGuard),
    UsePipes(adminValidationPipe),
    UseInterceptors(AdminAuditInterceptor),
    ApiTags(tag),
    ApiBearerAuth(),
    ApiExtraModels(ProblemDetailsDto),
    ApiBadRequestResponse({ type: ProblemDetailsDto, description: 'Invalid request' }),
    ApiUnauthorizedResponse({ type: ProblemDetailsDto, description: 'Missing or bad credentials' }),
    ApiForbiddenResponse({ type: ProblemDetailsDto, description: 'Insufficient role' }),
    ApiNotFoundResponse({ type: ProblemDetailsDto, description: 'No such tenant or resource' }),
  );
}

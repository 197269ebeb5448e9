import type { BackendEntity } from '@portico/persistence';
import { backendSettingsProblems } from '@portico/tenancy';
import {
  upstreamSettings,
  type HealthCheckSettings,
  type UpstreamSettings,
} from '../upstream/upstream-settings';

export type OpenApiAuthType = 'bearer' | 'header' | 'query';

/** How the backend's credential is sent with every call. */
export interface OpenApiAuth {
  readonly type: OpenApiAuthType;
  /** Header or query parameter name (`header`, `query`). */
  readonly name?: string;
  /** Which of the backend's credentials; default: its only one. */
  readonly credential?: string;
}

/** The health check of a REST replica. */
export interface RestHealthCheckSettings extends HealthCheckSettings {
  /**
   * GET <base URL><path> must answer 2xx. Without it a replica is probed with HEAD on its base
   * URL, where any HTTP answer (even 404) shows the service is there: no health endpoint needed,
   * and a dead or unreachable instance still fails.
   */
  readonly path?: string;
}

/** backend.settings of an `openapi` backend, with defaults applied. */
export interface OpenApiSettings extends UpstreamSettings {
  /** `replicas` as URLs: more base URLs of the API, besides the document's (or baseUrl). */
  readonly replicaUrls: readonly URL[];
  readonly healthCheck: RestHealthCheckSettings;
  /** Overrides the document's servers. */
  readonly baseUrl?: URL;
  /** operationIds (or derived names) to expose; all operations when absent. */
  readonly operations?: readonly string[];
  readonly auth?: OpenApiAuth;
  /** Larger responses are a tool error, and are not read past this size. */
  readonly maxResponseBytes: number;
}

export const OPENAPI_DEFAULTS = {
  maxResponseBytes: 1024 * 1024,
  /** The document itself may be larger than any one response. */
  maxDocumentBytes: 16 * 1024 * 1024,
} as const;

/** The settings of an `openapi` backend; throws naming every invalid setting. */
export function openApiSettings(backend: BackendEntity): OpenApiSettings {
  const raw = backend.settings ?? {};
  const problems = backendSettingsProblems('openapi', raw);
  if (problems.length > 0) {
    throw new Error(
      `Backend ${backend.name}: invalid settings: ` +
        problems.map((p) => `settings.${p.path} ${p.message}`).join('; '),
    );
  }
  const auth = raw.auth as OpenApiAuth | undefined;
  const shared = upstreamSettings(backend);
  const probe = raw.healthCheck as { path?: unknown } | undefined;
  return {
    ...shared,
    replicaUrls: shared.replicas.map((url) => new URL(url)),
    healthCheck: {
      ...shared.healthCheck,
      path: typeof probe?.path === 'string' ? probe.path : undefined,
    },
    baseUrl: typeof raw.baseUrl === 'string' ? new URL(raw.baseUrl) : undefined,
    operations: Array.isArray(raw.operations) ? (raw.operations as string[]) : undefined,
    auth: auth && { type: auth.type, name: auth.name, credential: auth.credential },
    maxResponseBytes:
      typeof raw.maxResponseBytes === 'number'
        ? raw.maxResponseBytes
        : OPENAPI_DEFAULTS.maxResponseBytes,
  };
}

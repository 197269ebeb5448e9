import type {
  Cancellation,
  CatalogProvider,
  JsonObject,
  TaskProgress,
} from '@portico/mcp-protocol';
import type { BackendEntity } from '@portico/persistence';

/** A backend's contribution to its tenant's catalog; closed when the catalog is replaced. */
export interface BackendSource extends CatalogProvider {
  close?(): Promise<void>;
  /**
   * Follows on one of the backend's own tasks that a gateway task followed on a node that
   * stopped (see UPSTREAM_TASK_WORK); undefined when this source cannot.
   */
  resumeTask?(
    taskId: string,
    cancellation: Cancellation,
    progress?: (progress: TaskProgress) => void,
  ): Promise<JsonObject> | undefined;
}

/** What a source factory gets to connect one backend. */
export interface BackendContext {
  readonly tenantId: string;
  readonly tenantSlug: string;
  readonly backend: BackendEntity;
  /** Decrypts the backend's credentials: call only when connecting or calling, never log. */
  readonly credentials: () => Record<string, string>;
}

import type { ToolHandler } from '@portico/mcp-protocol';
import type { BackendEntity } from '@portico/persistence';
import {
  backendExecutionSettings,
  BackendExecutionSettings,
  ownToolSettings,
  toolExecution,
  ToolExecution,
} from '@portico/queue';
import { namespacedName } from '../upstream/upstream-names';
import { upstreamSettings } from '../upstream/upstream-settings';

/**
 * How each tool of one backend runs, from the backend's settings: `executor`, `timeoutMs` and
 * `retry` for the whole backend, overridden per tool under `tools["<upstream tool name>"]`.
 */
export class ExecutionPlan {
  private readonly settings: BackendExecutionSettings;
  /** Name in the catalog → upstream name, for the tools that have their own entry. */
  private readonly upstreamByExposed = new Map<string, string>();

  constructor(backend: BackendEntity) {
    this.settings = backendExecutionSettings(backend.settings);
    // Fixture tools keep their names; upstream tools are namespaced as the source exposes them.
    const exposedName =
      backend.kind === 'fixture'
        ? (name: string) => name
        : (name: string) => namespacedName(name, upstreamSettings(backend));
    for (const name of Object.keys(this.settings.tools ?? {})) {
      this.upstreamByExposed.set(exposedName(name), name);
    }
  }

  /** Whether any tool of the backend asks for the queue. */
  get mayQueue(): boolean {
    return (
      this.settings.executor === 'queued' ||
      Object.values(this.settings.tools ?? {}).some((tool) => tool.executor === 'queued')
    );
  }

  /** Whether any tool has a budget of its own (enforced inline too). */
  get hasToolTimeouts(): boolean {
    return Object.values(this.settings.tools ?? {}).some((tool) => tool.timeoutMs !== undefined);
  }

  forTool(handler: ToolHandler): ToolExecution {
    const upstream = this.upstreamByExposed.get(handler.definition.name);
    return toolExecution(this.settings, upstream, handler.definition.annotations);
  }

  /** The tool's own `timeoutMs` entry (the backend's applies per upstream request already). */
  ownTimeoutMs(handler: ToolHandler): number | undefined {
    const upstream = this.upstreamByExposed.get(handler.definition.name);
    return ownToolSettings(this.settings, upstream)?.timeoutMs;
  }
}

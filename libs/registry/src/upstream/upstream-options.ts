import type { OnApplicationShutdown } from '@nestjs/common';
import { DEFAULT_MAX_STDIO_CHILDREN, StdioChildren } from './stdio-supervisor';

/**
 * Gateway-level switches for upstream backends, provided from config next to
 * UpstreamSourceFactory; without a provider every switch is off.
 */
export class UpstreamOptions implements OnApplicationShutdown {
  /**
   * Whether `mcp-stdio` backends may start processes on the gateway's host
   * (UPSTREAM_STDIO_ENABLED). Off by default: such a backend runs a command of its own choosing.
   */
  readonly stdioEnabled: boolean;
  /**
   * The gateway's live stdio children, bounded by UPSTREAM_STDIO_MAX_CHILDREN: one host
   * serves many tenants, and each child costs a process and its memory.
   */
  readonly stdioChildren: StdioChildren;

  constructor(options: { stdioEnabled?: boolean; stdioMaxChildren?: number } = {}) {
    this.stdioEnabled = options.stdioEnabled ?? false;
    this.stdioChildren = new StdioChildren(options.stdioMaxChildren ?? DEFAULT_MAX_STDIO_CHILDREN);
  }

  /** Backends close their children first; this stops any left, so none outlives the gateway. */
  async onApplicationShutdown(): Promise<void> {
    await this.stdioChildren.stopAll();
  }
}

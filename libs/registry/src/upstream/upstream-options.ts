/**
 * Gateway-level switches for upstream backends, provided from config next to
 * UpstreamSourceFactory; without a provider every switch is off.
 */
export class UpstreamOptions {
  /**
   * Whether `mcp-stdio` backends may start processes on the gateway's host
   * (UPSTREAM_STDIO_ENABLED). Off by default: such a backend runs a command of its own choosing.
   */
  readonly stdioEnabled: boolean;

  constructor(options: { stdioEnabled?: boolean } = {}) {
    this.stdioEnabled = options.stdioEnabled ?? false;
  }
}

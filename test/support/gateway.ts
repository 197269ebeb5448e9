import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { loadConfig, PorticoConfig } from '@portico/config';
import type { CatalogProvider } from '@portico/mcp-protocol';
import { createGatewayApp } from '../../apps/gateway/src/app.factory';

export interface RunningGateway {
  app: NestFastifyApplication;
  config: PorticoConfig;
  /** http://127.0.0.1:PORT */
  baseUrl: string;
  /** The MCP endpoint URL. */
  mcpUrl: string;
  close(): Promise<void>;
}

/**
 * Boots the real gateway (Fastify, all modules) on a free loopback port. `env` entries are
 * read exactly as the process environment would be.
 */
export async function startGateway(
  env: Record<string, string> = {},
  options: { catalog?: CatalogProvider } = {},
): Promise<RunningGateway> {
  const config = loadConfig({
    LOG_LEVEL: 'warn',
    PORTICO_SECRET: 'test-secret-test-secret-test-secret!',
    // A throwaway database per gateway unless the suite points at PostgreSQL or a file.
    DATABASE_PATH: ':memory:',
    MASTER_KEYS: `test:${Buffer.alloc(32, 7).toString('base64')}`,
    AUDIT_FLUSH_MS: '50',
    ...env,
    PORT: '0',
    HOST: '127.0.0.1',
  });
  const app = await createGatewayApp(config, options);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.getHttpServer().address();
  if (address === null || typeof address === 'string') {
    throw new Error('gateway did not bind a TCP port');
  }
  const baseUrl = `${config.http.tls ? 'https' : 'http'}://127.0.0.1:${address.port}`;
  return {
    app,
    config,
    baseUrl,
    mcpUrl: `${baseUrl}${config.mcp.path}`,
    close: () => app.close(),
  };
}

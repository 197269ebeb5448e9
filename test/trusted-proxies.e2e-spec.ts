import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { RunningGateway, startGateway } from './support/gateway';

/** Opens a legacy HTTP+SSE stream (it holds a per-client slot while open). */
function openStream(
  gateway: RunningGateway,
  forwardedFor?: string,
): Promise<{ status: number; close: () => void }> {
  return new Promise((resolve, reject) => {
    const req: ClientRequest = httpRequest(`${gateway.mcpUrl}/sse`, {
      headers: {
        accept: 'text/event-stream',
        ...(forwardedFor && { 'x-forwarded-for': forwardedFor }),
      },
    });
    req.once('response', (res: IncomingMessage) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, close: () => req.destroy() });
    });
    req.once('error', reject);
    req.end();
  });
}

describe('TRUSTED_PROXIES: the client address behind a reverse proxy', () => {
  let open: { close: () => void }[] = [];

  afterEach(() => {
    open.forEach((stream) => stream.close());
    open = [];
  });

  it('counts per-client limits by X-Forwarded-For when the peer is a trusted proxy', async () => {
    const gateway = await startGateway({
      TRUSTED_PROXIES: '127.0.0.1',
      MAX_STREAMS_PER_CLIENT: '1',
    });
    try {
      const first = await openStream(gateway, '203.0.113.9');
      open.push(first);
      expect(first.status).toBe(200);
      // The same client through the proxy: over its limit.
      const again = await openStream(gateway, '203.0.113.9');
      open.push(again);
      expect(again.status).toBe(429);
      // Another client through the same proxy: its own slots.
      const other = await openStream(gateway, '198.51.100.7');
      open.push(other);
      expect(other.status).toBe(200);
    } finally {
      open.forEach((stream) => stream.close());
      await gateway.close();
    }
  });

  it('ignores X-Forwarded-For from peers that are not trusted (the default)', async () => {
    const gateway = await startGateway({ MAX_STREAMS_PER_CLIENT: '1' });
    try {
      const first = await openStream(gateway, '203.0.113.9');
      open.push(first);
      expect(first.status).toBe(200);
      // A forged header does not buy a client new slots.
      const forged = await openStream(gateway, '198.51.100.7');
      open.push(forged);
      expect(forged.status).toBe(429);
    } finally {
      open.forEach((stream) => stream.close());
      await gateway.close();
    }
  });
});

import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiKeyService } from '@portico/auth';
import { startJwksServer, type JwksServer } from '@portico/testing/jwks-server';
import type { DashboardFrame, TenantStats } from '../apps/gateway/src/dashboard/dashboard-model';
import {
  DashboardSampler,
  MAX_DASHBOARD_STREAMS,
} from '../apps/gateway/src/dashboard/dashboard-sampler.service';
import { RunningGateway, startGateway } from './support/gateway';
import { createApiKey, seedTenant } from './support/tenants';

const MODERN = '2026-07-28';
const BOOTSTRAP = 'dashboard-bootstrap-token-0123456789abcdef';
/** How long a helper waits for a frame before failing with what it saw instead. */
const GUARD_MS = 20_000;

interface SseEvent {
  event: string;
  data: string;
}

/** A /dashboard/stream read the way the page reads it: fetch() and a body reader. */
class DashboardStream {
  readonly events: SseEvent[] = [];
  readonly frames: DashboardFrame[] = [];
  comments = 0;
  readonly ended: Promise<void>;
  private readonly controller: AbortController;
  private wake: () => void = () => undefined;

  constructor(
    readonly response: Response,
    controller: AbortController,
  ) {
    this.controller = controller;
    this.ended = this.pump();
  }

  /** The first frame, from the `from`-th on, that satisfies `predicate`. */
  frame(
    predicate: (frame: DashboardFrame) => boolean,
    what: string,
    from = 0,
  ): Promise<DashboardFrame> {
    return this.until(() => this.frames.slice(from).find(predicate), what);
  }

  async event(name: string): Promise<SseEvent> {
    return this.until(() => this.events.find((event) => event.event === name), `a ${name} event`);
  }

  close(): void {
    this.controller.abort();
  }

  private async until<T>(find: () => T | undefined, what: string): Promise<T> {
    const deadline = Date.now() + GUARD_MS;
    for (;;) {
      const found = find();
      if (found !== undefined) {
        return found;
      }
      if (Date.now() > deadline) {
        const last = this.frames.at(-1);
        throw new Error(
          `No ${what} in ${this.events.length} events; last: ${JSON.stringify(last)}`,
        );
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 250).unref();
      });
    }
  }

  private async pump(): Promise<void> {
    const reader = this.response.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) {
          return;
        }
        buffer += decoder.decode(value, { stream: true });
        let end = buffer.indexOf('\n\n');
        while (end >= 0) {
          this.parse(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          end = buffer.indexOf('\n\n');
        }
        this.wake();
      }
    } catch (err) {
      if (!this.controller.signal.aborted) {
        throw err;
      }
    }
  }

  private parse(block: string): void {
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) {
        this.comments++;
      } else if (line.startsWith('event: ')) {
        event = line.slice(7);
      } else if (line.startsWith('data: ')) {
        data.push(line.slice(6));
      }
    }
    if (data.length > 0) {
      this.events.push({ event, data: data.join('\n') });
      if (event === 'message') {
        this.frames.push(JSON.parse(data.join('\n')) as DashboardFrame);
      }
    }
  }
}

async function openStream(
  gateway: RunningGateway,
  token: string | undefined,
  query = '',
): Promise<{ response: Response; stream?: DashboardStream }> {
  const controller = new AbortController();
  const response = await fetch(`${gateway.baseUrl}/dashboard/stream${query}`, {
    headers: {
      accept: 'text/event-stream',
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
    },
    signal: controller.signal,
  });
  if (response.status !== 200) {
    return { response };
  }
  return { response, stream: new DashboardStream(response, controller) };
}

async function mustOpen(gateway: RunningGateway, token: string, query = '') {
  const { response, stream } = await openStream(gateway, token, query);
  expect(response.status).toBe(200);
  return stream!;
}

async function problemOf(response: Response): Promise<Record<string, unknown>> {
  expect(response.headers.get('content-type')).toContain('application/problem+json');
  return (await response.json()) as Record<string, unknown>;
}

/** One modern-era tools/call; resolves to the HTTP status once the body is read. */
async function callTool(url: string, key: string, name: string, args: object = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${key}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN,
      'mcp-method': 'tools/call',
      'mcp-name': name,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: randomBytes(4).readUInt32BE(),
      method: 'tools/call',
      params: {
        name,
        arguments: args,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': MODERN,
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      },
    }),
  });
  await res.arrayBuffer();
  return res.status;
}

function row(frame: DashboardFrame, tenant: string): TenantStats | undefined {
  return frame.tenants.find((r) => r.tenant === tenant);
}

async function eventually(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + GUARD_MS;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`Still not ${what}`);
    }
    await sleep(20);
  }
}

describe('operators dashboard', () => {
  let gateway: RunningGateway;
  let sampler: DashboardSampler;
  let platformKey: string;
  const tenants: Record<string, { id: string; toolKey: string; adminKey: string }> = {};

  beforeAll(async () => {
    gateway = await startGateway({ BOOTSTRAP_ADMIN_TOKEN: BOOTSTRAP, SSE_KEEPALIVE_MS: '1000' });
    sampler = gateway.app.get(DashboardSampler);
    platformKey = (
      await createApiKey(gateway.app, null, { name: 'ops', roles: ['platform-admin'] })
    ).secret;
    for (const slug of ['count-a', 'count-b', 'scope-a', 'scope-b']) {
      const seeded = await seedTenant(gateway.app, { slug, fixtures: ['echo', 'conformance'] });
      const admin = await createApiKey(gateway.app, seeded.tenant.id, {
        name: 'admin',
        roles: ['tenant-admin'],
      });
      tenants[slug] = { id: seeded.tenant.id, toolKey: seeded.apiKey, adminKey: admin.secret };
    }
  });

  afterAll(async () => {
    await gateway.close();
  });

  afterEach(async () => {
    // Every test closes its streams; the sampler must then stop on its own.
    await eventually(() => sampler.size === 0 && !sampler.running, 'idle after the test');
  });

  describe('the page', () => {
    it('is a data-free shell under a strict content security policy', async () => {
      const res = await fetch(`${gateway.baseUrl}/dashboard`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("connect-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toContain('unsafe-inline');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      const html = await res.text();
      expect(html).toContain('<script src="/dashboard/app.js" defer></script>');
      // No inline script or style, no third-party resource, no data.
      expect(html).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/);
      expect(html).not.toMatch(/<style|\sstyle=/);
      expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
      for (const slug of Object.keys(tenants)) {
        expect(html).not.toContain(slug);
      }
    });

    it('serves its script and stylesheet with validators', async () => {
      for (const [path, type] of [
        ['app.js', 'text/javascript; charset=utf-8'],
        ['app.css', 'text/css; charset=utf-8'],
      ]) {
        const res = await fetch(`${gateway.baseUrl}/dashboard/${path}`);
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toBe(type);
        expect((await res.text()).length).toBeGreaterThan(500);
        const etag = res.headers.get('etag')!;
        const again = await fetch(`${gateway.baseUrl}/dashboard/${path}`, {
          headers: { 'if-none-match': etag },
        });
        expect(again.status).toBe(304);
      }
    });
  });

  describe('refusals', () => {
    it('asks for credentials with 401 problem+json and a Bearer challenge', async () => {
      const { response } = await openStream(gateway, undefined);
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toMatch(/^Bearer realm="portico"/);
      expect(await problemOf(response)).toMatchObject({
        type: 'urn:portico:problem:unauthenticated',
        status: 401,
        instance: '/dashboard/stream',
      });
    });

    it('refuses unknown keys, unknown tokens and credentials in the URL', async () => {
      const unknownKey = await openStream(gateway, `ptk_${'x'.repeat(43)}`);
      expect(unknownKey.response.status).toBe(401);
      expect((await problemOf(unknownKey.response)).detail).toBe(
        'Unknown, revoked or expired API key',
      );

      const opaque = await openStream(gateway, 'not-a-credential');
      expect(opaque.response.status).toBe(401);
      expect((await problemOf(opaque.response)).detail).toContain('?tenant=<slug>');

      const inQuery = await openStream(gateway, undefined, `?token=${platformKey}`);
      expect(inQuery.response.status).toBe(401);
      expect(inQuery.response.headers.get('www-authenticate')).toContain('error="invalid_request"');
    });

    it('forbids credentials without tenant:read (403)', async () => {
      const { response } = await openStream(gateway, tenants['scope-a'].toolKey);
      expect(response.status).toBe(403);
      expect(await problemOf(response)).toMatchObject({
        type: 'urn:portico:problem:forbidden',
        detail: 'This credential lacks tenant:read',
      });
    });

    it("answers another tenant's slug like an unknown one (404), and a bad slug with 400", async () => {
      const other = await openStream(gateway, tenants['scope-a'].adminKey, '?tenant=scope-b');
      expect(other.response.status).toBe(404);
      const missing = await openStream(gateway, platformKey, '?tenant=no-such-tenant');
      expect(missing.response.status).toBe(404);
      expect((await problemOf(other.response)).detail).toBe(
        (await problemOf(missing.response)).detail,
      );
      const malformed = await openStream(gateway, platformKey, '?tenant=Not_A_Slug');
      expect(malformed.response.status).toBe(400);
      expect((await problemOf(malformed.response)).type).toBe('urn:portico:problem:invalid-input');
    });

    it(`serves at most ${MAX_DASHBOARD_STREAMS} streams per node (503 beyond)`, async () => {
      const open: DashboardStream[] = [];
      try {
        for (let i = 0; i < MAX_DASHBOARD_STREAMS; i++) {
          open.push(await mustOpen(gateway, platformKey));
        }
        const { response } = await openStream(gateway, platformKey);
        expect(response.status).toBe(503);
        expect(response.headers.get('retry-after')).toBe('5');
        expect((await problemOf(response)).type).toBe('urn:portico:problem:dashboard-busy');
      } finally {
        open.forEach((stream) => stream.close());
      }
    });
  });

  describe('frames', () => {
    it('reflect a known sequence of calls: counters, window rates, errors, latency', async () => {
      const stream = await mustOpen(gateway, platformKey);
      expect(stream.response.headers.get('content-type')).toBe('text/event-stream');
      expect(stream.response.headers.get('cache-control')).toContain('no-store');
      const first = await stream.frame(() => true, 'frame');
      expect(first.scope).toEqual({ tenant: null, platform: true });
      const requestsBefore = first.gateway!.requests;
      expect(row(first, 'count-a')).toBeUndefined();

      const a = `${gateway.mcpUrl}/count-a`;
      const b = `${gateway.mcpUrl}/count-b`;
      for (let i = 0; i < 6; i++) {
        expect(await callTool(a, tenants['count-a'].toolKey, 'echo', { message: `m${i}` })).toBe(
          200,
        );
      }
      for (let i = 0; i < 2; i++) {
        expect(await callTool(a, tenants['count-a'].toolKey, 'test_error_handling')).toBe(200);
      }
      // Sleeps 200 ms: the slowest of the nine, so p99 lies above 0.1 s.
      expect(await callTool(a, tenants['count-a'].toolKey, 'test_reconnection')).toBe(200);
      for (let i = 0; i < 3; i++) {
        expect(await callTool(b, tenants['count-b'].toolKey, 'echo', { message: 'b' })).toBe(200);
      }

      const counted = await stream.frame(
        (f) =>
          row(f, 'count-a')?.calls === 9 &&
          row(f, 'count-b')?.calls === 3 &&
          f.gateway!.requests === requestsBefore + 12,
        'frame with every call counted',
      );
      expect(row(counted, 'count-a')).toMatchObject({ errors: 2 });
      expect(row(counted, 'count-b')).toMatchObject({ errors: 0 });
      expect(counted.gateway!.requestsPerSecond).toBeGreaterThan(0);
      // Tool errors are results, not failed requests.
      expect(counted.gateway!.errorRate).toBe(0);

      // A frame whose window holds the whole sequence.
      const windowed = await stream.frame(
        (f) => row(f, 'count-a')?.windowCalls === 9,
        'frame with all nine calls in its window',
      );
      const stats = row(windowed, 'count-a')!;
      expect(stats.windowErrors).toBe(2);
      expect(stats.errorRate).toBeCloseTo(2 / 9, 10);
      expect(stats.callsPerSecond).toBeCloseTo(9 / windowed.windowSeconds, 10);
      expect(stats.p99).toBeGreaterThan(0.1);
      expect(stats.p50).toBeLessThanOrEqual(stats.p99!);
      // Busiest tenant first.
      const order = windowed.tenants.map((r) => r.tenant);
      expect(order.indexOf('count-a')).toBeLessThan(order.indexOf('count-b'));
      stream.close();
    });

    it("count a tenant's open sessions", async () => {
      const stream = await mustOpen(gateway, tenants['count-b'].adminKey);
      const url = `${gateway.mcpUrl}/count-b`;
      const init = await fetch(url, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${tenants['count-b'].toolKey}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'initialize',
          params: {
            protocolVersion: '2025-11-25',
            capabilities: {},
            clientInfo: { name: 'dashboard-test', version: '1' },
          },
        }),
      });
      await init.arrayBuffer();
      const sessionId = init.headers.get('mcp-session-id')!;
      expect(sessionId).toBeTruthy();
      await stream.frame((f) => f.tenants[0]?.sessions === 1, 'frame with one session');

      const ended = await fetch(url, {
        method: 'DELETE',
        headers: {
          authorization: `Bearer ${tenants['count-b'].toolKey}`,
          'mcp-session-id': sessionId,
          'mcp-protocol-version': '2025-11-25',
        },
      });
      await ended.arrayBuffer();
      expect(ended.status).toBeLessThan(300);
      await stream.frame(
        (f) => f.tenants[0]?.sessions === 0,
        'frame with the session gone',
        stream.frames.length,
      );
      stream.close();
    });

    it('keep the connection alive with comments', async () => {
      const stream = await mustOpen(gateway, platformKey);
      await eventually(() => stream.comments > 0, 'sent a keep-alive comment');
      stream.close();
    });
  });

  describe('tenant administrators', () => {
    it('see their own tenant only: no other tenant, gateway totals or shared queues', async () => {
      const stream = await mustOpen(gateway, tenants['scope-b'].adminKey);
      await stream.frame(() => true, 'frame');
      const a = `${gateway.mcpUrl}/scope-a`;
      const b = `${gateway.mcpUrl}/scope-b`;
      for (let i = 0; i < 4; i++) {
        expect(await callTool(a, tenants['scope-a'].toolKey, 'echo', { message: 'a' })).toBe(200);
      }
      expect(await callTool(b, tenants['scope-b'].toolKey, 'echo', { message: 'b' })).toBe(200);
      expect(await callTool(b, tenants['scope-b'].toolKey, 'test_error_handling')).toBe(200);
      // Wait until scope-a's calls are in the registry, then for one more frame.
      const platform = await mustOpen(gateway, platformKey);
      await platform.frame((f) => row(f, 'scope-a')?.calls === 4, 'platform frame with scope-a');
      platform.close();
      await stream.frame(
        (f) => f.tenants[0]?.calls === 2,
        'later frame of scope-b',
        stream.frames.length,
      );

      for (const frame of stream.frames) {
        expect(frame.scope).toEqual({ tenant: 'scope-b', platform: false });
        expect(frame.gateway).toBeNull();
        expect(frame.queues).toBeNull();
        expect(frame.tenants.map((r) => r.tenant)).toEqual(['scope-b']);
        expect(frame.backends.every((r) => r.tenant === 'scope-b')).toBe(true);
      }
      for (const event of stream.events) {
        for (const other of ['scope-a', 'count-a', 'count-b']) {
          expect(event.data).not.toContain(other);
        }
      }
      expect(stream.frames.at(-1)!.tenants[0]).toMatchObject({ calls: 2, errors: 1 });
      stream.close();
    });

    it('lose the stream when their key is revoked', async () => {
      const key = await createApiKey(gateway.app, tenants['scope-a'].id, {
        name: 'short-lived',
        roles: ['tenant-operator'],
      });
      const stream = await mustOpen(gateway, key.secret);
      await stream.frame((f) => f.scope.tenant === 'scope-a', 'frame');
      await gateway.app.get(ApiKeyService).revoke(tenants['scope-a'].id, key.id);
      const revoked = await stream.event('revoked');
      expect(JSON.parse(revoked.data)).toEqual({ detail: 'Unknown, revoked or expired API key' });
      await stream.ended;
    });

    it('lets a platform administrator focus on one tenant', async () => {
      const stream = await mustOpen(gateway, BOOTSTRAP, '?tenant=scope-a');
      const frame = await stream.frame(() => true, 'frame');
      expect(frame.scope).toEqual({ tenant: 'scope-a', platform: true });
      expect(frame.tenants.map((r) => r.tenant)).toEqual(['scope-a']);
      expect(frame.gateway).not.toBeNull();
      stream.close();
    });
  });

  describe('JWT tenant administrators', () => {
    let jwks: JwksServer;
    const audience = 'urn:portico:dashboard-test';

    beforeAll(async () => {
      jwks = await startJwksServer();
      await seedTenant(gateway.app, {
        slug: 'jwt-tenant',
        auth: { jwt: { issuer: jwks.url, audience, jwksUri: jwks.jwksUri, algorithms: ['RS256'] } },
      });
    });

    afterAll(async () => {
      await jwks.close();
    });

    it('name their tenant with ?tenant= and need an admin role', async () => {
      const admin = await jwks.sign({ roles: ['tenant-admin'] }, { audience });
      const stream = await mustOpen(gateway, admin, '?tenant=jwt-tenant');
      expect((await stream.frame(() => true, 'frame')).scope.tenant).toBe('jwt-tenant');
      stream.close();

      const withoutTenant = await openStream(gateway, admin);
      expect(withoutTenant.response.status).toBe(401);
      const user = await jwks.sign({}, { audience });
      const forbidden = await openStream(gateway, user, '?tenant=jwt-tenant');
      expect(forbidden.response.status).toBe(403);
    });
  });

  it('ends open streams when the gateway stops', async () => {
    const other = await startGateway({ BOOTSTRAP_ADMIN_TOKEN: BOOTSTRAP });
    const stream = await mustOpen(other, BOOTSTRAP);
    await stream.frame(() => true, 'frame');
    await other.close();
    await stream.ended;
    expect(other.app.get(DashboardSampler).size).toBe(0);
  });
});

describe('operators dashboard, switched off', () => {
  let gateway: RunningGateway;

  beforeAll(async () => {
    gateway = await startGateway({ BOOTSTRAP_ADMIN_TOKEN: BOOTSTRAP, DASHBOARD_ENABLED: 'false' });
  });

  afterAll(async () => {
    await gateway.close();
  });

  it('answers 404 on every dashboard route, credentials or not', async () => {
    for (const path of ['/dashboard', '/dashboard/app.js', '/dashboard/app.css']) {
      expect((await fetch(`${gateway.baseUrl}${path}`)).status).toBe(404);
    }
    const { response } = await openStream(gateway, BOOTSTRAP);
    expect(response.status).toBe(404);
    expect((await problemOf(response)).status).toBe(404);
    expect(gateway.app.get(DashboardSampler).running).toBe(false);
  });
});

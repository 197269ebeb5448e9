import { AuditService } from '@portico/tenancy';
import { testDatabaseEnv } from '@portico/testing';
import { RunningGateway, startGateway } from './support/gateway';
import { seedTenant } from './support/tenants';

const MODERN = '2026-07-28';

async function callTool(
  gateway: RunningGateway,
  path: string,
  name: string,
  args: Record<string, unknown>,
  key?: string,
): Promise<number> {
  const res = await fetch(`${gateway.baseUrl}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN,
      'mcp-method': 'tools/call',
      'mcp-name': name,
      ...(key ? { authorization: `Bearer ${key}` } : {}),
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 7,
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

describe('the audit trail of tool calls', () => {
  let env: Record<string, string>;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    ({ env, cleanup } = await testDatabaseEnv('postgres'));
  });

  afterAll(async () => {
    await cleanup();
  });

  it('records every tools/call, survives a graceful shutdown before the first flush', async () => {
    // A flush interval far beyond the test: only the shutdown flush can write these rows.
    const first = await startGateway({ ...env, AUDIT_FLUSH_MS: '600000' });
    const { tenant, apiKey } = await seedTenant(first.app, { slug: 'audited' });
    expect(await callTool(first, '/mcp', 'echo', { message: 'anonymous' })).toBe(200);
    expect(await callTool(first, '/mcp/audited', 'test_simple_text', {}, apiKey)).toBe(200);
    expect(await callTool(first, '/mcp/audited', 'test_error_handling', {}, apiKey)).toBe(200);
    await first.close();

    const second = await startGateway(env);
    try {
      const audit = second.app.get(AuditService);
      const [tenantEvents] = await audit.query(tenant.id, {
        action: 'tools/call',
        skip: 0,
        take: 10,
      });
      expect(tenantEvents.map((e) => [e.target, e.outcome]).sort()).toEqual([
        ['test_error_handling', 'error'],
        ['test_simple_text', 'success'],
      ]);
      for (const event of tenantEvents) {
        expect(event.actor).toMatch(/^key:/);
        expect(event.requestId).toBe('7');
        expect(event.durationMs).toEqual(expect.any(Number));
      }
      const [all] = await audit.query(null, { action: 'tools/call', skip: 0, take: 10 });
      const anonymous = all.filter((e) => e.tenantId === null);
      expect(anonymous).toHaveLength(1);
      expect(anonymous[0]).toMatchObject({
        actor: 'anonymous',
        target: 'echo',
        outcome: 'success',
      });
    } finally {
      await second.close();
    }
  });
});

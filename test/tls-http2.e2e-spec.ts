import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { META } from '@portico/mcp-protocol';
import { RunningGateway, startGateway } from './support/gateway';

const modernCall = (id: number, extraMeta: Record<string, unknown> = {}) =>
  JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: {
      name: 'test_tool_with_progress',
      arguments: {},
      _meta: {
        [META.protocolVersion]: '2026-07-28',
        [META.clientCapabilities]: {},
        ...extraMeta,
      },
    },
  });

const MCP_HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2026-07-28',
  'mcp-method': 'tools/call',
  'mcp-name': 'test_tool_with_progress',
};

/** One request over an HTTP/2 session; resolves with status, content type and body. */
function h2Request(
  session: http2.ClientHttp2Session,
  body: string,
): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': '/mcp', ...MCP_HEADERS });
    let status = 0;
    let type = '';
    let data = '';
    stream.on('response', (headers) => {
      status = Number(headers[':status']);
      type = String(headers['content-type'] ?? '');
    });
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => (data += chunk));
    stream.on('end', () => resolve({ status, type, body: data }));
    stream.on('error', reject);
    stream.end(body);
  });
}

describe('TLS and HTTP/2 on the listener', () => {
  let dir: string;
  let certFile: string;
  let keyFile: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'portico-tls-'));
    certFile = join(dir, 'cert.pem');
    keyFile = join(dir, 'key.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
      ].concat([
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-keyout',
        keyFile,
        '-out',
        certFile,
      ]),
      { stdio: 'ignore' },
    );
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  describe('HTTPS with HTTP/2 (ALPN)', () => {
    let gateway: RunningGateway;

    beforeAll(async () => {
      gateway = await startGateway({
        TLS_CERT_FILE: certFile,
        TLS_KEY_FILE: keyFile,
        HTTP2: 'true',
      });
    });

    afterAll(async () => {
      await gateway.close();
    });

    it('negotiates h2 and serves MCP, streaming SSE over HTTP/2', async () => {
      const session = http2.connect(gateway.baseUrl, { rejectUnauthorized: false });
      try {
        await new Promise<void>((resolve, reject) => {
          session.once('connect', () => resolve());
          session.once('error', reject);
        });
        expect(session.alpnProtocol).toBe('h2');
        const plain = await h2Request(session, modernCall(1));
        expect(plain.status).toBe(200);
        expect(JSON.parse(plain.body).result.resultType).toBe('complete');
        const streamed = await h2Request(session, modernCall(2, { progressToken: 'p' }));
        expect(streamed.status).toBe(200);
        expect(streamed.type).toMatch(/^text\/event-stream/);
        expect(streamed.body).toContain('notifications/progress');
        expect(streamed.body).toContain('"id":2');
      } finally {
        session.close();
      }
    });

    it('still serves HTTP/1.1 clients over TLS', async () => {
      const response = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = https.request(
          `${gateway.baseUrl}/mcp`,
          {
            method: 'POST',
            headers: MCP_HEADERS,
            rejectUnauthorized: false,
            ALPNProtocols: ['http/1.1'],
          } as https.RequestOptions,
          (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => (body += chunk));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          },
        );
        req.on('error', reject);
        req.end(modernCall(3));
      });
      expect(response.status).toBe(200);
      expect(JSON.parse(response.body).id).toBe(3);
    });

    it('refuses TLS 1.2 when the minimum is 1.3', async () => {
      const url = new URL(gateway.baseUrl);
      const outcome = await new Promise<string>((resolve) => {
        const socket = tls.connect({
          host: url.hostname,
          port: Number(url.port),
          maxVersion: 'TLSv1.2',
          rejectUnauthorized: false,
        });
        socket.once('secureConnect', () => {
          socket.destroy();
          resolve('connected');
        });
        socket.once('error', (err) => resolve(err.message));
      });
      expect(outcome).not.toBe('connected');
    });
  });

  describe('cleartext HTTP/2 (h2c)', () => {
    it('serves MCP to prior-knowledge HTTP/2 clients', async () => {
      const gateway = await startGateway({ HTTP2: 'true' });
      const session = http2.connect(gateway.baseUrl);
      try {
        const response = await h2Request(session, modernCall(4));
        expect(response.status).toBe(200);
        expect(JSON.parse(response.body).id).toBe(4);
      } finally {
        session.close();
        await gateway.close();
      }
    });
  });

  it('stops boot naming the variable when only one TLS file is set', async () => {
    await expect(startGateway({ TLS_CERT_FILE: certFile })).rejects.toThrow(/TLS_KEY_FILE/);
  });
});

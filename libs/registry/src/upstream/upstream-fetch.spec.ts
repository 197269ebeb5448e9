import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { upstreamFetch } from './upstream-fetch';
import { RELAY_HEADER, RELAY_META_KEY } from './upstream-relay';

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

describe('upstreamFetch', () => {
  let server: Server;
  let base: string;
  let handler: Handler;
  const fetchFn = upstreamFetch();

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => handler(req, body, res));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('sends method, headers and body, and answers a JSON body as a Response', async () => {
    let seen: { method?: string; auth?: string; type?: string; body?: string } = {};
    handler = (req, body, res) => {
      seen = {
        method: req.method,
        auth: req.headers.authorization,
        type: req.headers['content-type'],
        body,
      };
      res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'abc' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: 1, result: {} }));
    };
    const res = await fetchFn(`${base}/mcp`, {
      method: 'POST',
      headers: new Headers({ authorization: 'Bearer t', 'content-type': 'application/json' }),
      body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
    });
    expect(seen).toEqual({
      method: 'POST',
      auth: 'Bearer t',
      type: 'application/json',
      body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
    });
    expect(res.ok).toBe(true);
    expect(res.headers.get('mcp-session-id')).toBe('abc');
    expect(await res.json()).toEqual({ jsonrpc: '2.0', id: 1, result: {} });
  });

  it('streams an event stream: the first event is readable before the response ends', async () => {
    let finish: () => void = () => undefined;
    handler = (_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: one\n\n');
      finish = () => res.end('data: two\n\n');
    };
    const res = await fetchFn(`${base}/sse`);
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe('data: one\n\n');
    finish();
    let rest = '';
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
      rest += new TextDecoder().decode(chunk.value);
    }
    expect(rest).toBe('data: two\n\n');
  });

  it("keeps a call's relay header to itself and tags the messages of its event stream", async () => {
    let sentHeaders: string[] = [];
    handler = (req, _body, res) => {
      sentHeaders = Object.keys(req.headers);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(
        'data: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":1}}\n\n',
      );
      res.end('data: {"jsonrpc":"2.0","id":1,"result":{}}\n\n');
    };
    const res = await fetchFn(`${base}/mcp`, {
      method: 'POST',
      headers: { [RELAY_HEADER]: '17', accept: 'text/event-stream' },
      body: '{}',
    });
    expect(sentHeaders).toContain('accept');
    expect(sentHeaders).not.toContain(RELAY_HEADER);
    const events = (await res.text())
      .split('\n')
      .filter((line) => line.startsWith('data:'))
      .map((line) => JSON.parse(line.slice(5)) as { params?: { _meta?: object } });
    expect(events[0].params?._meta).toEqual({ [RELAY_META_KEY]: '17' });
    expect(events[1]).toEqual({ jsonrpc: '2.0', id: 1, result: {} });
  });

  it('passes error statuses and empty bodies through', async () => {
    handler = (req, _body, res) => {
      if (req.url === '/gone') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('no such session');
      } else {
        res.writeHead(202).end();
      }
    };
    const gone = await fetchFn(`${base}/gone`, { method: 'DELETE' });
    expect(gone.status).toBe(404);
    expect(await gone.text()).toBe('no such session');
    const accepted = await fetchFn(`${base}/notify`, { method: 'POST', body: '{}' });
    expect(accepted.status).toBe(202);
    expect(await accepted.text()).toBe('');
  });

  it('stops a request when its signal aborts', async () => {
    handler = () => undefined; // never answers
    const controller = new AbortController();
    const pending = fetchFn(`${base}/slow`, { signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    await expect(pending).rejects.toThrow(/abort/i);
  });
});

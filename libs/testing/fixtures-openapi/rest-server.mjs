/*
 * A REST service described by petstore.yaml (next to this file), for tests of `openapi`
 * backends. Usage: node rest-server.mjs [port]; prints "READY <port>" once listening.
 * Serves the document at /openapi.yaml, /openapi.json and /moved (a redirect), the API under
 * /api, and GET /stats (calls seen per operation) outside it.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const here = dirname(fileURLToPath(import.meta.url));
const yamlText = readFileSync(join(here, 'petstore.yaml'), 'utf8');
const jsonText = JSON.stringify(parse(yamlText));
// 1x1 transparent PNG.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=',
  'base64',
);

const pets = new Map([
  ['1', { id: '1', name: 'Rex', tag: 'dog' }],
  ['2', { id: '2', name: 'Tom', tag: 'cat' }],
  ['3', { id: '3', name: 'Kit', tag: 'cat' }],
]);
let nextId = 4;
const stats = {};

function send(res, status, body, type = 'application/json') {
  const text = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': type });
  res.end(text);
}

function readJson(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      try {
        resolve(chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined);
      } catch (err) {
        reject(err);
      }
    });
    req.on('error', reject);
  });
}

async function api(req, res, url, path) {
  const requestId = req.headers['x-request-id'];
  if (requestId) {
    res.setHeader('x-request-id', requestId);
  }
  let match;
  if (path === '/pets' && req.method === 'GET') {
    const tags = url.searchParams.getAll('tag');
    const limit = Number(url.searchParams.get('limit') ?? 100);
    const list = [...pets.values()].filter((p) => tags.length === 0 || tags.includes(p.tag));
    return send(res, 200, list.slice(0, limit));
  }
  if (path === '/pets' && req.method === 'POST') {
    if (req.headers['content-type'] !== 'application/json') {
      return send(res, 415, { message: 'JSON only' });
    }
    const body = await readJson(req).catch(() => undefined);
    if (!body || typeof body.name !== 'string') {
      return send(res, 400, { message: 'name is required' });
    }
    const pet = { id: String(nextId++), name: body.name, tag: body.tag ?? null };
    pets.set(pet.id, pet);
    return send(res, 201, pet);
  }
  if ((match = /^\/pets\/([^/]+)$/.exec(path))) {
    const id = decodeURIComponent(match[1]);
    if (req.method === 'DELETE') {
      pets.delete(id);
      res.writeHead(204).end();
      return;
    }
    const pet = pets.get(id);
    return pet ? send(res, 200, pet) : send(res, 404, { message: `no pet ${id}` });
  }
  if ((match = /^\/pets\/([^/]+)\/photo$/.exec(path))) {
    return send(res, 200, PNG, 'image/png');
  }
  if (path === '/whoami') {
    return send(res, 200, {
      authorization: req.headers.authorization ?? null,
      apiKey: req.headers['x-api-key'] ?? null,
      queryKey: url.searchParams.get('api_key'),
    });
  }
  if (path === '/fail') {
    return send(res, 500, { message: 'fixture failure' });
  }
  if (path === '/slow') {
    const timer = setTimeout(
      () => send(res, 200, 'done', 'text/plain'),
      Number(url.searchParams.get('ms')),
    );
    res.on('close', () => clearTimeout(timer));
    return;
  }
  if (path === '/big') {
    return send(res, 200, 'x'.repeat(Number(url.searchParams.get('bytes'))), 'text/plain');
  }
  return send(res, 404, { message: 'no such endpoint' });
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://fixture');
  if (url.pathname === '/openapi.yaml') {
    return send(res, 200, yamlText, 'application/yaml');
  }
  if (url.pathname === '/openapi.json') {
    return send(res, 200, jsonText);
  }
  if (url.pathname === '/moved') {
    res.writeHead(302, { location: '/openapi.json' }).end();
    return;
  }
  if (url.pathname === '/stats') {
    return send(res, 200, stats);
  }
  if (url.pathname.startsWith('/api/')) {
    const path = url.pathname.slice('/api'.length);
    const key = `${req.method} ${path.replace(/^\/pets\/[^/]+/, '/pets/{petId}')}`;
    stats[key] = (stats[key] ?? 0) + 1;
    api(req, res, url, path).catch((err) => send(res, 500, { message: String(err) }));
    return;
  }
  send(res, 404, { message: 'not found' });
});

server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));

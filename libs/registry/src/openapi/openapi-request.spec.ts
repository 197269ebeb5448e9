import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseOpenApiDocument } from './openapi-document';
import { readOperations, type OperationPlan } from './openapi-operations';
import { ArgumentError, buildRequest, toToolResult, type HttpAnswer } from './openapi-request';

const PETSTORE = readFileSync(
  join(__dirname, '../../../testing/fixtures-openapi/petstore.yaml'),
  'utf8',
);
const BASE = new URL('https://api.example.com/v2/');

function plansOf(text: string): Map<string, OperationPlan> {
  return new Map(readOperations(parseOpenApiDocument(text)).operations.map((p) => [p.key, p]));
}
const petstore = plansOf(PETSTORE);
const op = (key: string) => petstore.get(key)!;

const STYLES = `
openapi: 3.1.0
info: { title: styles, version: '1' }
paths:
  /s/{label}/{matrix}/{simple}:
    get:
      operationId: styles
      parameters:
        - { name: label, in: path, required: true, style: label, explode: true, schema: { type: array } }
        - { name: matrix, in: path, required: true, style: matrix, schema: { type: object } }
        - { name: simple, in: path, required: true, schema: { type: object }, explode: true }
        - { name: ids, in: query, explode: false, schema: { type: array } }
        - { name: pipes, in: query, style: pipeDelimited, explode: false, schema: { type: array } }
        - { name: filter, in: query, style: deepObject, schema: { type: object } }
        - { name: point, in: query, schema: { type: object } }
        - { name: q, in: query, content: { application/json: { schema: { type: object } } } }
        - { name: X-Tags, in: header, schema: { type: array } }
        - { name: session, in: cookie, schema: { type: string } }
      responses: { '204': { description: ok } }
`;
const styles = plansOf(STYLES).get('styles')!;

describe(buildRequest.name, () => {
  it('puts path, query and header arguments where the operation declares them', () => {
    const sut = buildRequest(
      op('showPetById'),
      { petId: 'a b/../c?', 'X-Request-Id': 'r-1' },
      BASE,
    );
    expect(sut.method).toBe('GET');
    expect(sut.url.href).toBe('https://api.example.com/v2/pets/a%20b%2F..%2Fc%3F');
    expect(sut.headers.get('x-request-id')).toBe('r-1');
    expect(sut.headers.get('accept')).toBe('application/json, */*;q=0.5');
    expect(sut.body).toBeUndefined();
  });

  it('repeats exploded query arrays and leaves out absent arguments', () => {
    const sut = buildRequest(op('listPets'), { tag: ['cat', 'dog'], limit: 2 }, BASE);
    expect(sut.url.search).toBe('?limit=2&tag=cat&tag=dog');
    expect(sut.headers.has('x-request-id')).toBe(false);
  });

  it('sends the body argument as JSON with the declared media type', () => {
    const sut = buildRequest(op('createPet'), { body: { name: 'Rex', tag: null } }, BASE);
    expect(sut.method).toBe('POST');
    expect(sut.body).toBe('{"name":"Rex","tag":null}');
    expect(sut.headers.get('content-type')).toBe('application/json');
  });

  it('serializes the other OpenAPI styles', () => {
    const sut = buildRequest(
      styles,
      {
        label: ['a', 'b'],
        matrix: { x: 1, y: 2 },
        simple: { role: 'admin', n: 3 },
        ids: [1, 2, 3],
        pipes: ['a', 'b'],
        filter: { color: 'red', size: 'L' },
        point: { x: 1, y: 2 },
        q: { near: [1, 2] },
        'X-Tags': ['t1', 't2'],
        session: 'a b',
      },
      new URL('http://h/base?fixed=1'),
    );
    expect(sut.url.pathname).toBe('/base/s/.a.b/;matrix=x,1,y,2/role=admin,n=3');
    expect([...sut.url.searchParams]).toEqual([
      ['ids', '1,2,3'],
      ['pipes', 'a|b'],
      ['filter[color]', 'red'],
      ['filter[size]', 'L'],
      ['x', '1'],
      ['y', '2'],
      ['q', '{"near":[1,2]}'],
      ['fixed', '1'],
    ]);
    expect(sut.headers.get('x-tags')).toBe('t1,t2');
    expect(sut.headers.get('cookie')).toBe('session=a%20b');
  });

  it('refuses path values that would climb out of the operation', () => {
    for (const petId of ['..', '.', '']) {
      expect(() => buildRequest(op('showPetById'), { petId }, BASE)).toThrow(ArgumentError);
    }
  });

  it('refuses header values that HTTP cannot carry', () => {
    expect(() =>
      buildRequest(op('showPetById'), { petId: '1', 'X-Request-Id': 'a\r\nX-Evil: 1' }, BASE),
    ).toThrow('X-Request-Id is not a valid HTTP header value');
  });
});

function answer(status: number, contentType: string, body: string | Buffer): HttpAnswer {
  return {
    status,
    statusText: status === 200 ? 'OK' : status === 404 ? 'Not Found' : '',
    contentType,
    body: Buffer.isBuffer(body) ? body : Buffer.from(body),
  };
}

describe(toToolResult.name, () => {
  it('returns a JSON object as structured content and text', () => {
    const result = toToolResult(
      answer(200, 'application/json; charset=utf-8', '{"id":"1","name":"Rex"}'),
      op('showPetById'),
    );
    expect(result).toEqual({
      content: [{ type: 'text', text: '{"id":"1","name":"Rex"}' }],
      structuredContent: { id: '1', name: 'Rex' },
    });
  });

  it('wraps other JSON values under result', () => {
    const result = toToolResult(answer(200, 'application/json', '[1,2]'), op('listPets'));
    expect(result.structuredContent).toEqual({ result: [1, 2] });
  });

  it('fails an answer that breaks the declared object result', () => {
    expect(toToolResult(answer(200, 'application/json', '[1]'), op('showPetById'))).toEqual({
      content: [
        {
          type: 'text',
          text: 'HTTP 200 OK with JSON that is not an object, as the operation declares',
        },
      ],
      isError: true,
    });
    expect(toToolResult(answer(200, 'text/html', '<p>'), op('showPetById')).isError).toBe(true);
  });

  it('returns text, images and empty answers as content', () => {
    expect(toToolResult(answer(200, 'text/plain', 'done'), op('slow'))).toEqual({
      content: [{ type: 'text', text: 'done' }],
    });
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47]);
    expect(toToolResult(answer(200, 'image/png', png), op('get_pets_petId_photo'))).toEqual({
      content: [{ type: 'image', data: png.toString('base64'), mimeType: 'image/png' }],
    });
    expect(toToolResult(answer(204, '', ''), op('deletePet'))).toEqual({
      content: [{ type: 'text', text: 'HTTP 204' }],
    });
  });

  it('turns 4xx and 5xx answers into tool errors with the start of the body', () => {
    expect(
      toToolResult(answer(404, 'application/json', '{"message":"no pet 9"}'), op('showPetById')),
    ).toEqual({
      content: [{ type: 'text', text: 'HTTP 404 Not Found: {"message":"no pet 9"}' }],
      isError: true,
    });
    const long = toToolResult(answer(500, 'text/plain', 'e'.repeat(5000)), op('fail'));
    expect(long.isError).toBe(true);
    expect((long.content[0] as { text: string }).text).toBe(`HTTP 500: ${'e'.repeat(2000)}…`);
  });

  it('does not follow redirects', () => {
    expect(
      toToolResult({ ...answer(302, '', ''), location: 'http://169.254.169.254/' }, op('whoami')),
    ).toEqual({
      content: [
        { type: 'text', text: 'HTTP 302: redirect to http://169.254.169.254/ not followed' },
      ],
      isError: true,
    });
  });
});

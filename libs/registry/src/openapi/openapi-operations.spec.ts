import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SchemaValidator } from '@portico/mcp-protocol';
import { OpenApiDocumentError, parseOpenApiDocument } from './openapi-document';
import { derivedName, readOperations, type OperationPlan } from './openapi-operations';

const PETSTORE = readFileSync(
  join(__dirname, '../../../testing/fixtures-openapi/petstore.yaml'),
  'utf8',
);

function plans(text = PETSTORE, allow?: string[]) {
  return readOperations(parseOpenApiDocument(text), allow);
}

function plan(key: string): OperationPlan {
  const found = plans().operations.find((p) => p.key === key);
  if (!found) {
    throw new Error(`no operation ${key}`);
  }
  return found;
}

describe(readOperations.name, () => {
  it('makes one tool per callable operation, named by operationId or method and path', () => {
    const { operations, skipped } = plans();
    expect(operations.map((p) => p.key)).toEqual([
      'listPets',
      'createPet',
      'showPetById',
      'replacePet',
      'deletePet',
      'get_pets_petId_photo',
      'getTree',
      'whoami',
      'fail',
      'slow',
      'big',
    ]);
    expect(skipped).toEqual([
      { key: 'uploadPhoto', reason: 'its request body is not JSON (application/octet-stream)' },
    ]);
  });

  it('builds the input schema from query and header parameters, resolving $refs', () => {
    const sut = plan('listPets');
    expect(sut.tool.title).toBe('List pets');
    expect(sut.tool.description).toBe('Lists the pets of the store, optionally filtered by tag.');
    expect(sut.tool.inputSchema).toEqual({
      type: 'object',
      additionalProperties: false,
      properties: {
        // OpenAPI 3.0's boolean exclusiveMaximum becomes the 2020-12 numeric bound.
        limit: {
          type: 'integer',
          minimum: 1,
          exclusiveMaximum: 100,
          description: 'How many pets at most',
        },
        tag: { type: 'array', items: { type: 'string' } },
        'X-Request-Id': {
          type: 'string',
          format: 'uuid',
          description: 'Correlation id echoed by the service',
        },
      },
    });
    expect(sut.parameters).toEqual([
      { argument: 'limit', name: 'limit', in: 'query', style: 'form', explode: true, json: false },
      { argument: 'tag', name: 'tag', in: 'query', style: 'form', explode: true, json: false },
      {
        argument: 'X-Request-Id',
        name: 'X-Request-Id',
        in: 'header',
        style: 'simple',
        explode: false,
        json: false,
      },
    ]);
    // An array answer: structured under `result`, so no object outputSchema.
    expect(sut.tool.outputSchema).toBeUndefined();
    expect(sut.accept).toBe('application/json, */*;q=0.5');
  });

  it('takes the JSON request body as a required `body` argument and declares the object result', () => {
    const sut = plan('createPet');
    const newPet = {
      type: 'object',
      required: ['name'],
      properties: {
        name: { type: 'string', minLength: 1, examples: ['Rex'] },
        // nullable: true, and the x- extension dropped.
        tag: { type: ['string', 'null'] },
      },
    };
    expect(sut.tool.inputSchema).toEqual({
      type: 'object',
      additionalProperties: false,
      properties: { body: { ...newPet, description: 'The pet to add' } },
      required: ['body'],
    });
    expect(sut.body).toEqual({ mediaType: 'application/json', required: true });
    expect(sut.tool.outputSchema).toEqual({
      type: 'object',
      allOf: [newPet, { type: 'object', required: ['id'], properties: { id: { type: 'string' } } }],
    });
  });

  it('merges path-item parameters into each operation and requires path parameters', () => {
    const sut = plan('showPetById');
    expect(Object.keys(sut.tool.inputSchema.properties as object)).toEqual([
      'petId',
      'X-Request-Id',
    ]);
    expect(sut.tool.inputSchema.required).toEqual(['petId']);
    expect(plan('deletePet').tool.inputSchema.required).toEqual(['petId']);
  });

  it('hints read-only for GET and idempotent for GET, PUT and DELETE', () => {
    expect(plan('listPets').tool.annotations).toMatchObject({
      readOnlyHint: true,
      idempotentHint: true,
    });
    expect(plan('createPet').tool.annotations).toMatchObject({
      readOnlyHint: false,
      idempotentHint: false,
      destructiveHint: false,
    });
    expect(plan('replacePet').tool.annotations).toMatchObject({
      readOnlyHint: false,
      idempotentHint: true,
    });
    expect(plan('deletePet').tool.annotations).toMatchObject({
      readOnlyHint: false,
      idempotentHint: true,
      destructiveHint: true,
    });
    expect(plan('deletePet').tool.description).toBe('Deprecated. DELETE /pets/{petId}');
  });

  it('cuts a recursive schema where it repeats', () => {
    expect(plan('getTree').tool.outputSchema).toEqual({
      type: 'object',
      properties: {
        name: { type: 'string' },
        // Node's children are Nodes again: left unconstrained instead of expanding forever.
        children: { type: 'array', items: {} },
      },
    });
  });

  it('produces schemas the engine validator compiles and applies', () => {
    const validator = new SchemaValidator();
    for (const sut of plans().operations) {
      expect(validator.compile(sut.tool.inputSchema)).not.toBeInstanceOf(Error);
      if (sut.tool.outputSchema) {
        expect(validator.compile(sut.tool.outputSchema)).not.toBeInstanceOf(Error);
      }
    }
    const list = plan('listPets').tool.inputSchema;
    expect(validator.check(list, { limit: 5, tag: ['cat'] }).valid).toBe(true);
    expect(validator.check(list, { limit: 100 }).valid).toBe(false);
    expect(validator.check(list, { other: 1 }).valid).toBe(false);
    const create = plan('createPet').tool.inputSchema;
    expect(validator.check(create, { body: { name: 'Rex', tag: null } }).valid).toBe(true);
    expect(validator.check(create, { body: { tag: 'dog' } }).valid).toBe(false);
  });

  it('keeps only the allowed operations', () => {
    const { operations } = plans(PETSTORE, ['showPetById', 'get_pets_petId_photo']);
    expect(operations.map((p) => p.key)).toEqual(['showPetById', 'get_pets_petId_photo']);
  });

  it('refuses remote references with where they are', () => {
    const doc = `
openapi: 3.1.0
info: { title: t, version: '1' }
paths:
  /a:
    get:
      operationId: a
      responses:
        '200':
          description: ok
          content:
            application/json:
              schema: { $ref: 'https://example.com/schemas.yaml#/Pet' }
`;
    expect(() => plans(doc)).toThrow(
      new OpenApiDocumentError(
        'remote $ref "https://example.com/schemas.yaml#/Pet" at paths./a.get.responses.200' +
          '.content.application/json.schema is not supported: only references inside the ' +
          'document ("#/components/...") are',
      ),
    );
  });

  it('reports a dangling local reference', () => {
    const doc = `
openapi: 3.0.0
info: { title: t, version: '1' }
paths:
  /a:
    get:
      parameters: [{ $ref: '#/components/parameters/Nope' }]
      responses: { '204': { description: ok } }
`;
    expect(() => plans(doc)).toThrow(
      '$ref "#/components/parameters/Nope" at paths./a.get.parameters[0] points to nothing',
    );
  });

  it('renames a parameter whose name another argument already has', () => {
    const doc = `
openapi: 3.1.0
info: { title: t, version: '1' }
paths:
  /items/{id}:
    post:
      operationId: update
      parameters:
        - { name: id, in: path, required: true, schema: { type: integer } }
        - { name: id, in: query, schema: { type: string } }
        - { name: body, in: query, schema: { type: string } }
      requestBody:
        content: { application/merge-patch+json: { schema: { type: object } } }
      responses: { '204': { description: ok } }
`;
    const [sut] = plans(doc).operations;
    expect(sut.parameters.map((p) => [p.argument, p.in, p.name])).toEqual([
      ['id', 'path', 'id'],
      ['query_id', 'query', 'id'],
      ['query_body', 'query', 'body'],
    ]);
    expect(sut.body).toEqual({ mediaType: 'application/merge-patch+json', required: false });
    expect(sut.tool.inputSchema.required).toEqual(['id']);
  });
});

describe(parseOpenApiDocument.name, () => {
  it('reads JSON as well as YAML', () => {
    const doc = parseOpenApiDocument(
      JSON.stringify({ openapi: '3.1.0', info: { title: 't', version: '1' }, paths: {} }),
    );
    expect(doc.openapi).toBe('3.1.0');
  });

  it('refuses Swagger 2 and documents that are not OpenAPI 3', () => {
    expect(() => parseOpenApiDocument('swagger: "2.0"\npaths: {}')).toThrow(
      'Swagger 2.0 documents are not supported; convert the document to OpenAPI 3',
    );
    expect(() => parseOpenApiDocument('{"openapi": "4.0.0"}')).toThrow(
      'the document is not OpenAPI 3.0 or 3.1',
    );
    expect(() => parseOpenApiDocument('<html></html>')).toThrow('the document is not an object');
    expect(() => parseOpenApiDocument('a: [')).toThrow(/^the document is neither JSON nor YAML/);
  });
});

describe(derivedName.name, () => {
  it('turns method and path into a tool name', () => {
    expect(derivedName('get', '/pets/{petId}/photo')).toBe('get_pets_petId_photo');
    expect(derivedName('post', '/v1/users.search')).toBe('post_v1_users.search');
  });
});

import { checkParamHeaders, decodeHeaderValue, paramHeadersOf } from './http-headers';
import type { Tool } from './types';

const tool: Tool = {
  name: 'route',
  inputSchema: {
    type: 'object',
    properties: {
      region: { type: 'string', 'x-mcp-header': 'Region' },
      shard: { type: 'integer', 'x-mcp-header': 'Shard' },
      dry: { type: 'boolean', 'x-mcp-header': 'Dry-Run' },
      nested: {
        type: 'object',
        properties: { zone: { type: 'string', 'x-mcp-header': 'Zone' } },
      },
      tags: { type: 'array', items: { type: 'string', 'x-mcp-header': 'Tag' } },
      bad: { type: 'string', 'x-mcp-header': 'not a token' },
      obj: { type: 'object', 'x-mcp-header': 'Obj' },
    },
  },
};

const headers =
  (values: Record<string, string>) =>
  (name: string): string | undefined =>
    values[name];

describe('decodeHeaderValue', () => {
  it.each([
    ['=?base64?SGVsbG8=?=', 'Hello'],
    ['SGVsbG8=', 'SGVsbG8='],
    ['=?base64?SGVsbG8=', '=?base64?SGVsbG8='],
    ['=?base64?SGVsbG8?=', undefined],
    ['=?base64?SGVs!!!bG8=?=', undefined],
    ['=?base64?/w==?=', undefined],
  ])('decodes %s', (raw, expected) => {
    expect(decodeHeaderValue(raw)).toBe(expected);
  });
});

describe('paramHeadersOf', () => {
  it('finds declarations reachable through properties, of primitive types, with token names', () => {
    expect(paramHeadersOf(tool).map((h) => h.name)).toEqual(['Region', 'Shard', 'Dry-Run', 'Zone']);
  });

  it('ignores names declared twice', () => {
    const dup: Tool = {
      name: 'dup',
      inputSchema: {
        type: 'object',
        properties: {
          a: { type: 'string', 'x-mcp-header': 'Same' },
          b: { type: 'string', 'x-mcp-header': 'same' },
        },
      },
    };
    expect(paramHeadersOf(dup)).toEqual([]);
  });
});

describe('checkParamHeaders', () => {
  const args = { region: 'eu-west', shard: 42, dry: false, nested: { zone: 'b' } };
  const good = {
    'mcp-param-region': 'eu-west',
    'mcp-param-shard': '42.0',
    'mcp-param-dry-run': 'false',
    'mcp-param-zone': '=?base64?Yg==?=',
  };

  it('accepts headers that agree with the arguments', () => {
    expect(checkParamHeaders(tool, args, headers(good))).toBeUndefined();
  });

  it('does not expect headers for absent or null arguments', () => {
    expect(checkParamHeaders(tool, { region: null }, headers({}))).toBeUndefined();
  });

  it.each([
    ['a missing header', { ...good, 'mcp-param-region': undefined }],
    ['a different value', { ...good, 'mcp-param-region': 'us-east' }],
    ['a different number', { ...good, 'mcp-param-shard': '41' }],
    ['an invalid Base64 value', { ...good, 'mcp-param-zone': '=?base64?Yg?=' }],
  ])('rejects %s with -32020', (_name, values) => {
    const error = checkParamHeaders(tool, args, headers(values as Record<string, string>));
    expect(error?.code).toBe(-32020);
  });
});

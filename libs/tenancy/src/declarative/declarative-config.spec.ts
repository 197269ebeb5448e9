import { join } from 'node:path';
import {
  type ConfigProblem,
  type DeclarativeConfig,
  type ParseResult,
  parseDeclarativeConfig,
  readDeclarativeConfigFile,
} from './declarative-config';

const KEY_A = `ptk_${'a'.repeat(32)}`;
const KEY_B = `ptk_${'B_-9'.repeat(10)}`;
const PEM =
  '-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----';

const ENV = { KEY_A, KEY_B, DEMO_JWT_PUBLIC_KEY: PEM, FIXTURE_TOKEN: 'Bearer fixture-token' };

const EXAMPLE = join(__dirname, '../../../../examples/portico.yaml');

const FULL_YAML = `
version: 1
tenants:
  - slug: demo
    name: Demo tenant
    status: suspended
    limits:
      maxSessions: 100
      maxConcurrentCalls: 20
      requestsPerMinute: 600
    auth:
      jwt:
        issuer: https://idp.example.com/
        audience: https://portico.example.com/mcp/demo
        publicKey: { env: DEMO_JWT_PUBLIC_KEY }
        algorithms: [ES256]
        rolesClaim: roles
        scopesClaim: scope
      authorizationServers: [https://idp.example.com/]
    backends:
      - name: fixtures
        kind: fixture
        target: conformance
        settings: { timeoutMs: 5000, nested: { anything: [1, true] } }
        credentials:
          Authorization: { env: FIXTURE_TOKEN }
          X-Api-Key: "\${env:KEY_B}"
      - name: remote
        kind: mcp-http
        target: https://tools.example.com/mcp
    policies:
      - tool: test_simple_text
        requiredScopes: [tools:basic]
        disabled: false
        description: Overridden description
        rename: simple_text
      - tool: test_error_handling
        disabled: true
    apiKeys:
      - name: ci
        secret: { env: KEY_A }
        roles: [tool-user]
        scopes: [tools:basic]
        expiresAt: 2027-01-01T00:00:00Z
    roleBindings:
      - subject: alice
        role: tenant-admin
    servers:
      - name: crm
        title: CRM tools
        description: What the sales assistant needs
        tools: [crm_*, simple_text]
        prompts: [test_simple_prompt]
        resources: ["test://static-*"]
        resourceTemplates: ["test://template/{id}/data"]
      - name: nothing
  - slug: other
    name: Other tenant
    auth:
      jwt:
        issuer: https://idp.example.com/
        audience: [a, b]
        jwksUri: https://idp.example.com/.well-known/jwks.json
`;

const FULL_CONFIG: DeclarativeConfig = {
  version: 1,
  tenants: [
    {
      slug: 'demo',
      name: 'Demo tenant',
      status: 'suspended',
      limits: { maxSessions: 100, maxConcurrentCalls: 20, requestsPerMinute: 600 },
      auth: {
        jwt: {
          issuer: 'https://idp.example.com/',
          audience: ['https://portico.example.com/mcp/demo'],
          publicKey: PEM,
          algorithms: ['ES256'],
          rolesClaim: 'roles',
          scopesClaim: 'scope',
        },
        authorizationServers: ['https://idp.example.com/'],
      },
      backends: [
        {
          name: 'fixtures',
          kind: 'fixture',
          target: 'conformance',
          settings: { timeoutMs: 5000, nested: { anything: [1, true] } },
          credentials: { Authorization: 'Bearer fixture-token', 'X-Api-Key': KEY_B },
        },
        {
          name: 'remote',
          kind: 'mcp-http',
          target: 'https://tools.example.com/mcp',
          settings: {},
          credentials: {},
        },
      ],
      policies: [
        {
          tool: 'test_simple_text',
          requiredScopes: ['tools:basic'],
          disabled: false,
          description: 'Overridden description',
          rename: 'simple_text',
        },
        { tool: 'test_error_handling', requiredScopes: [], disabled: true },
      ],
      apiKeys: [
        {
          name: 'ci',
          secret: KEY_A,
          roles: ['tool-user'],
          scopes: ['tools:basic'],
          expiresAt: '2027-01-01T00:00:00Z',
        },
      ],
      roleBindings: [{ subject: 'alice', role: 'tenant-admin' }],
      servers: [
        {
          name: 'crm',
          title: 'CRM tools',
          description: 'What the sales assistant needs',
          tools: ['crm_*', 'simple_text'],
          prompts: ['test_simple_prompt'],
          resources: ['test://static-*'],
          resourceTemplates: ['test://template/{id}/data'],
        },
        { name: 'nothing', tools: [], prompts: [], resources: [], resourceTemplates: [] },
      ],
    },
    {
      slug: 'other',
      name: 'Other tenant',
      status: 'active',
      limits: {},
      auth: {
        jwt: {
          issuer: 'https://idp.example.com/',
          audience: ['a', 'b'],
          jwksUri: 'https://idp.example.com/.well-known/jwks.json',
          algorithms: ['RS256', 'ES256'],
        },
        authorizationServers: [],
      },
      backends: [],
      policies: [],
      apiKeys: [],
      roleBindings: [],
      servers: [],
    },
  ],
};

type Json = Record<string, unknown>;

/** A small valid document; tests break one thing in it. */
function baseTenant(overrides: Json = {}): Json {
  return {
    slug: 'demo',
    name: 'Demo',
    backends: [{ name: 'fixtures', kind: 'fixture', target: 'conformance' }],
    apiKeys: [{ name: 'ci', secret: { env: 'KEY_A' } }],
    ...overrides,
  };
}

function parseJson(tenants: Json[], env: Record<string, string | undefined> = ENV): ParseResult {
  return parseDeclarativeConfig(JSON.stringify({ version: 1, tenants }), env);
}

function problemsOf(result: ParseResult): ConfigProblem[] {
  if (result.ok) {
    throw new Error('expected the configuration to be rejected');
  }
  return result.problems;
}

function configOf(result: ParseResult): DeclarativeConfig {
  if (!result.ok) {
    throw new Error(`expected a valid configuration, got ${JSON.stringify(result.problems)}`);
  }
  return result.config;
}

describe(parseDeclarativeConfig.name, () => {
  describe('valid documents', () => {
    it('returns every declared value, secrets resolved and defaults applied', () => {
      expect(configOf(parseDeclarativeConfig(FULL_YAML, ENV))).toStrictEqual(FULL_CONFIG);
    });

    it('accepts the same document written as JSON', () => {
      const yamlResult = configOf(parseDeclarativeConfig(FULL_YAML, ENV));
      const json = JSON.stringify({
        version: 1,
        tenants: [
          {
            ...FULL_CONFIG.tenants[0],
            auth: {
              ...FULL_CONFIG.tenants[0].auth,
              jwt: {
                ...FULL_CONFIG.tenants[0].auth!.jwt,
                audience: 'https://portico.example.com/mcp/demo',
                publicKey: { env: 'DEMO_JWT_PUBLIC_KEY' },
              },
            },
            backends: [
              {
                ...FULL_CONFIG.tenants[0].backends[0],
                credentials: {
                  Authorization: { env: 'FIXTURE_TOKEN' },
                  'X-Api-Key': '${env:KEY_B}',
                },
              },
              FULL_CONFIG.tenants[0].backends[1],
            ],
            apiKeys: [{ ...FULL_CONFIG.tenants[0].apiKeys[0], secret: { env: 'KEY_A' } }],
          },
          { slug: 'other', name: 'Other tenant', auth: { jwt: FULL_CONFIG.tenants[1].auth!.jwt } },
        ],
      });
      expect(configOf(parseDeclarativeConfig(json, ENV))).toStrictEqual(yamlResult);
    });

    it('applies defaults to a minimal tenant', () => {
      const config = configOf(parseJson([{ slug: 'min', name: 'Minimal' }]));
      expect(config.tenants).toStrictEqual([
        {
          slug: 'min',
          name: 'Minimal',
          status: 'active',
          limits: {},
          backends: [],
          policies: [],
          apiKeys: [],
          roleBindings: [],
          servers: [],
        },
      ]);
    });

    it('defaults the JWT algorithms and lists of omitted optional values', () => {
      const config = configOf(
        parseJson([
          baseTenant({
            auth: {
              jwt: { issuer: 'https://idp.example.com/', audience: 'x', jwksUri: 'https://j/k' },
            },
            policies: [{ tool: 'a/b.c-d_e' }],
          }),
        ]),
      );
      expect(config.tenants[0].auth).toStrictEqual({
        jwt: {
          issuer: 'https://idp.example.com/',
          audience: ['x'],
          jwksUri: 'https://j/k',
          algorithms: ['RS256', 'ES256'],
        },
        authorizationServers: [],
      });
      expect(config.tenants[0].policies).toStrictEqual([
        { tool: 'a/b.c-d_e', requiredScopes: [], disabled: false },
      ]);
      expect(config.tenants[0].apiKeys[0]).toStrictEqual({
        name: 'ci',
        secret: KEY_A,
        roles: [],
        scopes: [],
      });
    });

    it('accepts an empty tenant list', () => {
      expect(configOf(parseDeclarativeConfig('version: 1\ntenants: []\n', {}))).toStrictEqual({
        version: 1,
        tenants: [],
      });
    });

    it('gives backends sharing a YAML alias independent settings', () => {
      const config = configOf(
        parseDeclarativeConfig(
          `version: 1
tenants:
  - slug: demo
    name: Demo
    backends:
      - { name: a, kind: fixture, target: echo, settings: &shared { timeoutMs: 1 } }
      - { name: b, kind: fixture, target: echo, settings: *shared }
`,
          {},
        ),
      );
      const [a, b] = config.tenants[0].backends;
      expect(b.settings).toStrictEqual({ timeoutMs: 1 });
      expect(a.settings).not.toBe(b.settings);
    });

    it('is deterministic and reads only the env map it is given', () => {
      process.env.KEY_FROM_PROCESS = KEY_A;
      try {
        const tenants = [
          baseTenant({ apiKeys: [{ name: 'ci', secret: '${env:KEY_FROM_PROCESS}' }] }),
        ];
        expect(problemsOf(parseJson(tenants, {}))).toStrictEqual([
          {
            path: 'tenants[0].apiKeys[0].secret',
            message: 'environment variable KEY_FROM_PROCESS is not set',
          },
        ]);
      } finally {
        delete process.env.KEY_FROM_PROCESS;
      }
      expect(parseDeclarativeConfig(FULL_YAML, ENV)).toStrictEqual(
        parseDeclarativeConfig(FULL_YAML, ENV),
      );
    });
  });

  describe('examples/portico.yaml', () => {
    it('parses clean with PORTICO_DEMO_API_KEY set and declares the demo tenant', () => {
      const config = configOf(readDeclarativeConfigFile(EXAMPLE, { PORTICO_DEMO_API_KEY: KEY_B }));
      expect(config.tenants.map((t) => t.slug)).toStrictEqual(['demo']);
      expect(config.tenants[0].apiKeys.map((k) => k.secret)).toStrictEqual([KEY_B]);
      expect(config.tenants[0].backends.length).toBeGreaterThan(0);
    });

    it('names PORTICO_DEMO_API_KEY when it is not set', () => {
      expect(problemsOf(readDeclarativeConfigFile(EXAMPLE, {}))).toStrictEqual([
        {
          path: 'tenants[0].apiKeys[0].secret',
          message: 'environment variable PORTICO_DEMO_API_KEY is not set',
        },
      ]);
    });
  });

  describe(readDeclarativeConfigFile.name, () => {
    it('reports a missing file as one problem with an empty path', () => {
      const problems = problemsOf(readDeclarativeConfigFile(join(__dirname, 'missing.yaml'), ENV));
      expect(problems).toHaveLength(1);
      expect(problems[0].path).toBe('');
      expect(problems[0].message).toMatch(/cannot read .*missing\.yaml: .*ENOENT/);
    });
  });

  describe('YAML syntax', () => {
    it('reports syntax errors with line and column, and the source name when given', () => {
      const text = 'version: 1\ntenants:\n  - slug: demo\n    name: [unclosed\n  - slug: x\n';
      const problems = problemsOf(parseDeclarativeConfig(text, ENV, 'portico.yaml'));
      expect(problems.length).toBeGreaterThan(0);
      expect(problems[0].path).toBe('');
      expect(problems[0].message).toMatch(/^YAML syntax error at portico\.yaml:\d+:\d+: /);
      const withoutSource = problemsOf(parseDeclarativeConfig(text, ENV));
      expect(withoutSource[0].message).toMatch(/^YAML syntax error at \d+:\d+: /);
    });

    it('points at the exact position of the error', () => {
      const problems = problemsOf(
        parseDeclarativeConfig('version: 1\ntenants: []\nversion: 2\n', ENV, 'p.yaml'),
      );
      expect(problems).toStrictEqual([
        { path: '', message: 'YAML syntax error at p.yaml:3:1: Map keys must be unique' },
      ]);
    });

    it('rejects an empty document as a whole', () => {
      expect(problemsOf(parseDeclarativeConfig('', ENV))).toStrictEqual([
        { path: '', message: 'must be an object' },
      ]);
    });
  });

  describe('schema', () => {
    it('requires version 1 and a tenant list', () => {
      expect(problemsOf(parseDeclarativeConfig('version: 2\n', ENV))).toStrictEqual([
        { path: 'tenants', message: 'is required' },
        { path: 'version', message: 'must be 1' },
      ]);
    });

    it('reports unknown properties at their own path, at every level', () => {
      const problems = problemsOf(
        parseDeclarativeConfig(
          JSON.stringify({
            version: 1,
            extra: true,
            tenants: [
              baseTenant({
                colour: 'blue',
                limits: { maxSessions: 1, burst: 2 },
                backends: [
                  {
                    name: 'fixtures',
                    kind: 'fixture',
                    target: 'conformance',
                    timeout: 5,
                    credentials: { Authorization: { env: 'FIXTURE_TOKEN', default: 'x' } },
                  },
                ],
                policies: [{ tool: 't', scopes: [] }],
              }),
            ],
          }),
          ENV,
        ),
      );
      expect(problems).toStrictEqual(
        [
          'extra',
          'tenants[0].colour',
          'tenants[0].limits.burst',
          'tenants[0].backends[0].timeout',
          'tenants[0].backends[0].credentials.Authorization.default',
          'tenants[0].policies[0].scopes',
        ].map((path) => ({ path, message: 'is not a known property' })),
      );
    });

    it('accepts anything inside settings', () => {
      const settings = { whatever: { deeply: ['nested', 1, null] }, timeoutMs: 10 };
      const config = configOf(
        parseJson([
          baseTenant({ backends: [{ name: 'b', kind: 'fixture', target: 'echo', settings }] }),
        ]),
      );
      expect(config.tenants[0].backends[0].settings).toStrictEqual(settings);
    });

    it('reports missing required values', () => {
      expect(
        problemsOf(
          parseJson([
            {
              backends: [{}],
              apiKeys: [{}],
              policies: [{}],
              roleBindings: [{}],
              auth: { jwt: { jwksUri: 'https://j/k' } },
            },
          ]),
        ),
      ).toStrictEqual(
        [
          'tenants[0].slug',
          'tenants[0].name',
          'tenants[0].auth.jwt.issuer',
          'tenants[0].auth.jwt.audience',
          'tenants[0].backends[0].name',
          'tenants[0].backends[0].kind',
          'tenants[0].backends[0].target',
          'tenants[0].policies[0].tool',
          'tenants[0].apiKeys[0].name',
          'tenants[0].apiKeys[0].secret',
          'tenants[0].roleBindings[0].subject',
          'tenants[0].roleBindings[0].role',
        ].map((path) => ({ path, message: 'is required' })),
      );
    });

    it.each([
      ['status', { status: 'paused' }, 'tenants[0].status', /^must be one of: active, suspended$/],
      ['slug shape', { slug: 'Demo' }, 'tenants[0].slug', /lowercase letters/],
      ['slug edge hyphen', { slug: 'demo-' }, 'tenants[0].slug', /not starting or ending/],
      ['slug length', { slug: 'a'.repeat(49) }, 'tenants[0].slug', /1 to 48/],
      ['blank name', { name: '   ' }, 'tenants[0].name', /^must not be blank$/],
      ['long name', { name: 'n'.repeat(201) }, 'tenants[0].name', /200/],
      ['limit zero', { limits: { maxSessions: 0 } }, 'tenants[0].limits.maxSessions', />= 1/],
      [
        'limit fraction',
        { limits: { requestsPerMinute: 1.5 } },
        'tenants[0].limits.requestsPerMinute',
        /^must be an integer$/,
      ],
      [
        'backend kind',
        { backends: [{ name: 'b', kind: 'grpc', target: 'x' }] },
        'tenants[0].backends[0].kind',
        /^must be one of: fixture, mcp-http, mcp-sse, mcp-ws, mcp-stdio, openapi$/,
      ],
      [
        'backend name',
        { backends: [{ name: '-b', kind: 'fixture', target: 'echo' }] },
        'tenants[0].backends[0].name',
        /lowercase letters, digits/,
      ],
      [
        'credential header name',
        {
          backends: [
            {
              name: 'b',
              kind: 'fixture',
              target: 'echo',
              credentials: { 'A B': { env: 'KEY_A' } },
            },
          ],
        },
        'tenants[0].backends[0].credentials["A B"]',
        /header field name/,
      ],
      [
        'tool name',
        { policies: [{ tool: 'bad tool' }] },
        'tenants[0].policies[0].tool',
        /1 to 128 characters/,
      ],
      [
        'rename',
        { policies: [{ tool: 't', rename: 'x'.repeat(129) }] },
        'tenants[0].policies[0].rename',
        /1 to 128 characters/,
      ],
      [
        'scope',
        { policies: [{ tool: 't', requiredScopes: ['two words'] }] },
        'tenants[0].policies[0].requiredScopes[0]',
        /scope token/,
      ],
      [
        'api key role',
        { apiKeys: [{ name: 'ci', secret: { env: 'KEY_A' }, roles: ['root'] }] },
        'tenants[0].apiKeys[0].roles[0]',
        /^must be one of: platform-admin, tenant-admin, tenant-operator, tool-user$/,
      ],
      [
        'expiresAt',
        { apiKeys: [{ name: 'ci', secret: { env: 'KEY_A' }, expiresAt: '2027-01-01' }] },
        'tenants[0].apiKeys[0].expiresAt',
        /ISO 8601 date-time/,
      ],
      [
        'role binding role',
        { roleBindings: [{ subject: 'alice', role: 'owner' }] },
        'tenants[0].roleBindings[0].role',
        /^must be one of: /,
      ],
      [
        'issuer',
        { auth: { jwt: { issuer: 'not a uri', audience: 'a', jwksUri: 'https://j/k' } } },
        'tenants[0].auth.jwt.issuer',
        /^must be an absolute URI$/,
      ],
      [
        'jwksUri scheme',
        { auth: { jwt: { issuer: 'https://i/', audience: 'a', jwksUri: 'ftp://j/k' } } },
        'tenants[0].auth.jwt.jwksUri',
        /^must be an http\(s\) URL$/,
      ],
      [
        'audience',
        { auth: { jwt: { issuer: 'https://i/', audience: 3, jwksUri: 'https://j/k' } } },
        'tenants[0].auth.jwt.audience',
        /^must be a string or an array$/,
      ],
      [
        'authorization server',
        { auth: { authorizationServers: ['nope'] } },
        'tenants[0].auth.authorizationServers[0]',
        /^must be an absolute URI$/,
      ],
    ])('rejects an invalid %s at its path', (_what, overrides, path, message) => {
      const problems = problemsOf(parseJson([baseTenant(overrides)]));
      expect(problems).toHaveLength(1);
      expect(problems[0].path).toBe(path);
      expect(problems[0].message).toMatch(message);
    });
  });

  describe('secrets', () => {
    const LITERAL = 'sk-live-0123456789abcdef';
    it.each([
      [
        'credential',
        {
          backends: [
            { name: 'b', kind: 'fixture', target: 'echo', credentials: { Authorization: LITERAL } },
          ],
        },
        'tenants[0].backends[0].credentials.Authorization',
      ],
      [
        'API key',
        { apiKeys: [{ name: 'ci', secret: `ptk_${LITERAL}${LITERAL}` }] },
        'tenants[0].apiKeys[0].secret',
      ],
      [
        'JWT public key',
        { auth: { jwt: { issuer: 'https://i/', audience: 'a', publicKey: LITERAL } } },
        'tenants[0].auth.jwt.publicKey',
      ],
    ])('rejects an inline %s without echoing it', (_what, overrides, path) => {
      const result = parseJson([baseTenant(overrides)]);
      const problems = problemsOf(result);
      expect(problems).toStrictEqual([
        {
          path,
          message:
            'is an inline secret, which is not allowed; use an env reference: { env: NAME } or "${env:NAME}"',
        },
      ]);
      expect(JSON.stringify(result)).not.toContain(LITERAL);
    });

    it('rejects a secret of the wrong type and a malformed reference', () => {
      const problems = problemsOf(
        parseJson([
          baseTenant({
            backends: [
              {
                name: 'b',
                kind: 'fixture',
                target: 'echo',
                credentials: { A: 42, B: { env: 'lower-case' }, C: '${env:}', D: {} },
              },
            ],
          }),
        ]),
      );
      const at = 'tenants[0].backends[0].credentials';
      expect(problems).toStrictEqual([
        {
          path: `${at}.A`,
          message:
            'must be a secret reference; use an env reference: { env: NAME } or "${env:NAME}"',
        },
        {
          path: `${at}.B.env`,
          message: 'must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)',
        },
        { path: `${at}.C`, message: expect.stringMatching(/^is an inline secret/) },
        { path: `${at}.D.env`, message: 'is required' },
      ]);
    });

    it('names an unset or empty variable, never a value', () => {
      const tenants = [
        baseTenant({
          backends: [
            {
              name: 'b',
              kind: 'fixture',
              target: 'echo',
              credentials: { Authorization: '${env:UNSET_TOKEN}', 'X-Key': { env: 'EMPTY_TOKEN' } },
            },
          ],
          auth: { jwt: { issuer: 'https://i/', audience: 'a', publicKey: { env: 'NO_PEM' } } },
        }),
      ];
      expect(problemsOf(parseJson(tenants, { ...ENV, EMPTY_TOKEN: '' }))).toStrictEqual([
        {
          path: 'tenants[0].backends[0].credentials.Authorization',
          message: 'environment variable UNSET_TOKEN is not set',
        },
        {
          path: 'tenants[0].backends[0].credentials["X-Key"]',
          message: 'environment variable EMPTY_TOKEN is empty',
        },
        {
          path: 'tenants[0].auth.jwt.publicKey',
          message: 'environment variable NO_PEM is not set',
        },
      ]);
    });

    it('rejects an API key that is not ptk_ plus 32 characters, without echoing it', () => {
      const short = `ptk_${'x'.repeat(31)}`;
      const result = parseJson([baseTenant()], { KEY_A: short });
      expect(problemsOf(result)).toStrictEqual([
        {
          path: 'tenants[0].apiKeys[0].secret',
          message:
            'environment variable KEY_A does not hold a valid API key (ptk_ followed by at least 32 of A-Z a-z 0-9 _ -)',
        },
      ]);
      expect(JSON.stringify(result)).not.toContain(short);
    });

    it('rejects one API key declared twice, across tenants and reference forms', () => {
      const result = parseJson(
        [
          baseTenant(),
          baseTenant({ slug: 'other', apiKeys: [{ name: 'ci', secret: '${env:SAME_AS_A}' }] }),
        ],
        { ...ENV, SAME_AS_A: KEY_A },
      );
      expect(problemsOf(result)).toStrictEqual([
        {
          path: 'tenants[1].apiKeys[0].secret',
          message: 'resolves to the same API key as tenants[0].apiKeys[0].secret',
        },
      ]);
      expect(JSON.stringify(result)).not.toContain(KEY_A);
    });
  });

  describe('semantic rules', () => {
    it('rejects duplicate tenant slugs', () => {
      expect(
        problemsOf(
          parseJson([
            baseTenant(),
            baseTenant({ name: 'Other', apiKeys: [] }),
            baseTenant({ apiKeys: [] }),
          ]),
        ),
      ).toStrictEqual([
        {
          path: 'tenants[1].slug',
          message: 'duplicate tenant slug "demo", first declared at tenants[0].slug',
        },
        {
          path: 'tenants[2].slug',
          message: 'duplicate tenant slug "demo", first declared at tenants[0].slug',
        },
      ]);
    });

    it.each(['sse', 'messages', 'admin', 'health', 'metrics', 'dashboard', 'well-known'])(
      'rejects the reserved slug %s',
      (slug) => {
        expect(problemsOf(parseJson([baseTenant({ slug })]))).toStrictEqual([
          { path: 'tenants[0].slug', message: `"${slug}" is reserved by the gateway's routes` },
        ]);
      },
    );

    it('rejects duplicate names, tools, renames and role bindings within a tenant', () => {
      const problems = problemsOf(
        parseJson(
          [
            baseTenant({
              backends: [
                { name: 'b', kind: 'fixture', target: 'echo' },
                { name: 'b', kind: 'fixture', target: 'conformance' },
              ],
              policies: [{ tool: 't', rename: 'r' }, { tool: 'u', rename: 'r' }, { tool: 't' }],
              apiKeys: [
                { name: 'ci', secret: { env: 'KEY_A' } },
                { name: 'ci', secret: { env: 'KEY_B' } },
              ],
              roleBindings: [
                { subject: 'alice', role: 'tenant-admin' },
                { subject: 'alice', role: 'tool-user' },
                { subject: 'alice', role: 'tenant-admin' },
              ],
            }),
          ],
          ENV,
        ),
      );
      expect(problems).toStrictEqual([
        {
          path: 'tenants[0].backends[1].name',
          message: 'duplicate backend name "b", first declared at tenants[0].backends[0].name',
        },
        {
          path: 'tenants[0].policies[1].rename',
          message: 'duplicate rename "r", first declared at tenants[0].policies[0].rename',
        },
        {
          path: 'tenants[0].policies[2].tool',
          message: 'duplicate policy for tool "t", first declared at tenants[0].policies[0].tool',
        },
        {
          path: 'tenants[0].apiKeys[1].name',
          message: 'duplicate API key name "ci", first declared at tenants[0].apiKeys[0].name',
        },
        {
          path: 'tenants[0].roleBindings[2]',
          message:
            'duplicate role binding "alice tenant-admin", first declared at tenants[0].roleBindings[0]',
        },
      ]);
    });

    it.each(['sse', 'messages'])('rejects the reserved server name %s', (name) => {
      expect(problemsOf(parseJson([baseTenant({ servers: [{ name }] })]))).toStrictEqual([
        {
          path: 'tenants[0].servers[0].name',
          message: `"${name}" is reserved by the gateway's routes under /mcp/{tenant}`,
        },
      ]);
    });

    it('checks virtual servers: names, duplicates and every bad entry by its path', () => {
      const problems = problemsOf(
        parseJson([
          baseTenant({
            servers: [
              { name: 'crm', tools: ['crm_*', 'bad name', 'crm_*'], prompts: ['ok'] },
              { name: 'crm', resources: ['has space'], resourceTemplates: [''] },
              { name: 'Upper', tools: 'crm_*', extra: true },
            ],
          }),
        ]),
      );
      expect(problems).toStrictEqual([
        { path: 'tenants[0].servers[2].extra', message: 'is not a known property' },
        { path: 'tenants[0].servers[2].name', message: expect.stringMatching(/^must be 1 to 48/) },
        { path: 'tenants[0].servers[2].tools', message: 'must be an array' },
        {
          path: 'tenants[0].servers[0].tools[1]',
          message:
            'must be a tool name (1 to 128 of A-Z a-z 0-9 _ . - /), optionally with * wildcards',
        },
        {
          path: 'tenants[0].servers[0].tools[2]',
          message: 'duplicates tools[0] ("crm_*")',
        },
        {
          path: 'tenants[0].servers[1].name',
          message: 'duplicate server name "crm", first declared at tenants[0].servers[0].name',
        },
        {
          path: 'tenants[0].servers[1].resources[0]',
          message: expect.stringMatching(/^must be a URI \(1 to 2048 characters/),
        },
        {
          path: 'tenants[0].servers[1].resourceTemplates[0]',
          message: expect.stringMatching(/^must be a URI template \(1 to 2048 characters/),
        },
      ]);
    });

    it('allows the same server name in different tenants', () => {
      const config = configOf(
        parseJson([
          baseTenant({ servers: [{ name: 'crm', tools: ['*'] }] }),
          baseTenant({ slug: 'other', apiKeys: [], servers: [{ name: 'crm' }] }),
        ]),
      );
      expect(config.tenants.map((t) => t.servers.map((s) => s.name))).toStrictEqual([
        ['crm'],
        ['crm'],
      ]);
    });

    it('allows the same backend, key and tool names in different tenants', () => {
      const shared = {
        backends: [{ name: 'b', kind: 'fixture', target: 'echo' }],
        policies: [{ tool: 't' }],
        roleBindings: [{ subject: 'alice', role: 'tool-user' }],
      };
      const config = configOf(
        parseJson([
          baseTenant(shared),
          baseTenant({
            ...shared,
            slug: 'other',
            apiKeys: [{ name: 'ci', secret: { env: 'KEY_B' } }],
          }),
        ]),
      );
      expect(config.tenants.map((t) => t.apiKeys[0].name)).toStrictEqual(['ci', 'ci']);
    });

    it.each([
      ['neither', {}, 'must set exactly one of jwksUri or publicKey'],
      [
        'both',
        { jwksUri: 'https://j/k', publicKey: { env: 'DEMO_JWT_PUBLIC_KEY' } },
        'sets both jwksUri and publicKey; keep exactly one',
      ],
    ])('requires exactly one JWT key source (%s given)', (_what, keys, message) => {
      const auth = { jwt: { issuer: 'https://i/', audience: 'a', ...keys } };
      expect(problemsOf(parseJson([baseTenant({ auth })]))).toStrictEqual([
        { path: 'tenants[0].auth.jwt', message },
      ]);
    });

    it.each(['none', 'NONE'])('rejects the %s algorithm', (alg) => {
      const auth = {
        jwt: {
          issuer: 'https://i/',
          audience: 'a',
          jwksUri: 'https://j/k',
          algorithms: ['RS256', alg],
        },
      };
      expect(problemsOf(parseJson([baseTenant({ auth })]))).toStrictEqual([
        {
          path: 'tenants[0].auth.jwt.algorithms[1]',
          message: '"none" is not allowed: unsigned tokens would authenticate anyone',
        },
      ]);
    });

    it('rejects symmetric JWT algorithms', () => {
      const auth = {
        jwt: { issuer: 'https://i/', audience: 'a', jwksUri: 'https://j/k', algorithms: ['HS256'] },
      };
      expect(problemsOf(parseJson([baseTenant({ auth })]))).toStrictEqual([
        {
          path: 'tenants[0].auth.jwt.algorithms[0]',
          message: expect.stringMatching(/^must be one of: RS256/),
        },
      ]);
    });

    it.each([
      ['fixture', 'conformance'],
      ['fixture', 'echo'],
      ['mcp-http', 'https://tools.example.com/mcp'],
      ['mcp-http', 'http://localhost:8080/mcp'],
      ['mcp-sse', 'https://tools.example.com/sse'],
      ['openapi', 'https://api.example.com/openapi.json'],
      ['mcp-ws', 'wss://tools.example.com/mcp'],
      ['mcp-ws', 'ws://127.0.0.1:9000'],
      ['mcp-stdio', 'npx -y @modelcontextprotocol/server-everything'],
    ])('accepts a %s backend targeting %s', (kind, target) => {
      const config = configOf(parseJson([baseTenant({ backends: [{ name: 'b', kind, target }] })]));
      expect(config.tenants[0].backends[0]).toMatchObject({ kind, target });
    });

    it.each([
      ['fixture', 'everything', 'must name a fixture for kind fixture: one of conformance, echo'],
      ['mcp-http', 'wss://tools.example.com/mcp', 'must be an http(s) URL for kind mcp-http'],
      ['mcp-http', 'http:tools.example.com', 'must be an http(s) URL for kind mcp-http'],
      ['mcp-sse', 'tools.example.com/sse', 'must be an http(s) URL for kind mcp-sse'],
      ['openapi', './openapi.json', 'must be an http(s) URL for kind openapi'],
      ['mcp-ws', 'https://tools.example.com/mcp', 'must be a ws(s) URL for kind mcp-ws'],
      ['mcp-stdio', '   ', 'must be a non-empty command line for kind mcp-stdio'],
    ])('rejects a %s backend targeting %j', (kind, target, message) => {
      expect(
        problemsOf(parseJson([baseTenant({ backends: [{ name: 'b', kind, target }] })])),
      ).toStrictEqual([{ path: 'tenants[0].backends[0].target', message }]);
    });

    it('rejects credentials embedded in a target URL without echoing them', () => {
      const result = parseJson([
        baseTenant({
          backends: [
            { name: 'b', kind: 'mcp-http', target: 'https://user:hunter2@tools.example.com/' },
          ],
        }),
      ]);
      expect(problemsOf(result)).toStrictEqual([
        {
          path: 'tenants[0].backends[0].target',
          message: 'must not embed credentials; move them to credentials with an env reference',
        },
      ]);
      expect(JSON.stringify(result)).not.toContain('hunter2');
    });
  });

  it('reports schema and semantic problems of the whole file together', () => {
    const problems = problemsOf(
      parseJson(
        [
          baseTenant({
            slug: 'admin',
            status: 'gone',
            backends: [
              { name: 'b', kind: 'mcp-ws', target: 'https://x/' },
              { name: 'b', kind: 'fixture', target: 'echo', credentials: { T: 'inline' } },
            ],
            apiKeys: [{ name: 'ci', secret: { env: 'MISSING' } }],
          }),
          baseTenant({ slug: 'admin', apiKeys: [], policies: [{ tool: 't', extra: 1 }] }),
        ],
        ENV,
      ),
    );
    expect(problems).toStrictEqual([
      { path: 'tenants[0].status', message: 'must be one of: active, suspended' },
      {
        path: 'tenants[0].backends[1].credentials.T',
        message: expect.stringMatching(/^is an inline secret/),
      },
      { path: 'tenants[1].policies[0].extra', message: 'is not a known property' },
      { path: 'tenants[0].slug', message: `"admin" is reserved by the gateway's routes` },
      { path: 'tenants[0].backends[0].target', message: 'must be a ws(s) URL for kind mcp-ws' },
      {
        path: 'tenants[0].backends[1].name',
        message: 'duplicate backend name "b", first declared at tenants[0].backends[0].name',
      },
      { path: 'tenants[0].apiKeys[0].secret', message: 'environment variable MISSING is not set' },
      { path: 'tenants[1].slug', message: `"admin" is reserved by the gateway's routes` },
      {
        path: 'tenants[1].slug',
        message: 'duplicate tenant slug "admin", first declared at tenants[0].slug',
      },
    ]);
  });
});

import {
  StaticCatalog,
  type PromptHandler,
  type RequestContext,
  type ResourceHandler,
  type ResourceTemplateHandler,
  type ToolHandler,
} from '@portico/mcp-protocol';
import {
  CatalogCollision,
  compareNames,
  GovernedCatalog,
  NamedSource,
  ToolPolicy,
} from './governed-catalog';

const tool = (name: string, text = name): ToolHandler => ({
  definition: { name, description: `${name} tool`, inputSchema: { type: 'object' } },
  call: () => ({ content: [{ type: 'text', text }] }),
});

const prompt = (name: string): PromptHandler => ({
  definition: { name },
  get: () => ({ messages: [] }),
});

const resource = (uri: string, name = uri): ResourceHandler => ({
  definition: { uri, name },
  read: () => ({ contents: [] }),
});

const template = (uriTemplate: string): ResourceTemplateHandler => ({
  definition: { uriTemplate, name: uriTemplate },
  match: () => undefined,
  read: () => ({ contents: [] }),
});

const policy = (tool: string, fields: Partial<ToolPolicy>): [string, ToolPolicy] => [
  tool,
  { tool, requiredScopes: [], disabled: false, ...fields },
];

const ctx = { requestId: 1 } as unknown as RequestContext;

async function textOf(handler: ToolHandler | undefined): Promise<string | undefined> {
  const result = await handler?.call({}, ctx);
  const first = result?.content[0];
  return first?.type === 'text' ? first.text : undefined;
}

describe(GovernedCatalog.name, () => {
  let reported: CatalogCollision[];

  const catalogOf = async (
    sources: NamedSource[],
    policies: [string, ToolPolicy][] = [],
  ): Promise<GovernedCatalog> => {
    const sut = new GovernedCatalog(sources, new Map(policies), {}, (c) => reported.push(c));
    await sut.load();
    return sut;
  };

  beforeEach(() => {
    reported = [];
  });

  it('serves the first source on a tool collision and records the others as shadowed', async () => {
    const sut = await catalogOf([
      { name: 'alpha', source: new StaticCatalog({ tools: [tool('echo', 'from alpha')] }) },
      { name: 'beta', source: new StaticCatalog({ tools: [tool('echo', 'from beta')] }) },
      { name: 'gamma', source: new StaticCatalog({ tools: [tool('echo'), tool('only')] }) },
    ]);

    expect(await textOf(sut.getTool('echo', {}))).toBe('from alpha');
    expect(sut.collisions()).toEqual([
      { kind: 'tool', name: 'echo', winner: 'alpha', shadowed: ['beta', 'gamma'] },
    ]);
  });

  it('records prompts, resources (by URI) and templates (by URI template) that collide', async () => {
    const sut = await catalogOf([
      {
        name: 'one',
        source: new StaticCatalog({
          prompts: [prompt('greet'), prompt('solo')],
          resources: [resource('file:///a', 'first')],
          resourceTemplates: [template('file:///{path}')],
        }),
      },
      {
        name: 'two',
        source: new StaticCatalog({
          prompts: [prompt('greet')],
          resources: [resource('file:///a', 'second'), resource('file:///b')],
          resourceTemplates: [template('file:///{path}')],
        }),
      },
    ]);

    expect(sut.collisions()).toEqual([
      { kind: 'prompt', name: 'greet', winner: 'one', shadowed: ['two'] },
      { kind: 'resource', name: 'file:///a', winner: 'one', shadowed: ['two'] },
      { kind: 'resourceTemplate', name: 'file:///{path}', winner: 'one', shadowed: ['two'] },
    ]);
    // What clients read agrees with the recorded winner.
    expect((await sut.getResource('file:///a', {}))?.definition.name).toBe('first');
  });

  it('records a rename policy that lands on a taken name, with the original name', async () => {
    const sut = await catalogOf(
      [
        { name: 'crm', source: new StaticCatalog({ tools: [tool('search', 'crm search')] }) },
        { name: 'docs', source: new StaticCatalog({ tools: [tool('find', 'docs find')] }) },
      ],
      [policy('find', { rename: 'search' })],
    );

    expect(await textOf(sut.getTool('search', {}))).toBe('crm search');
    expect(sut.getTool('find', {})).toBeUndefined();
    expect(sut.collisions()).toEqual([
      { kind: 'tool', name: 'search', winner: 'crm', shadowed: ['docs'], renamedFrom: ['find'] },
    ]);
  });

  it('records a collision inside one backend too (a rename onto a sibling)', async () => {
    const sut = await catalogOf(
      [{ name: 'crm', source: new StaticCatalog({ tools: [tool('a'), tool('b')] }) }],
      [policy('b', { rename: 'a' })],
    );

    expect(sut.collisions()).toEqual([
      { kind: 'tool', name: 'a', winner: 'crm', shadowed: ['crm'], renamedFrom: ['b'] },
    ]);
  });

  it('does not count disabled tools as colliding', async () => {
    const sut = await catalogOf(
      [
        { name: 'alpha', source: new StaticCatalog({ tools: [tool('echo')] }) },
        { name: 'beta', source: new StaticCatalog({ tools: [tool('echo')] }) },
      ],
      [policy('echo', { disabled: true })],
    );

    expect(sut.collisions()).toEqual([]);
    expect(sut.listTools({})).toEqual([]);
  });

  it('reports each collision once per catalog, however often it is reloaded or described', async () => {
    const sources = (): NamedSource[] => [
      { name: 'alpha', source: new StaticCatalog({ tools: [tool('echo')] }) },
      { name: 'beta', source: new StaticCatalog({ tools: [tool('echo')] }) },
    ];
    const sut = await catalogOf(sources());
    await sut.load();
    await sut.describe();
    expect(reported.map((c) => c.name)).toEqual(['echo']);

    // A new catalog (a rebuild) reports its own collisions again.
    await catalogOf(sources());
    expect(reported.map((c) => c.name)).toEqual(['echo', 'echo']);
  });

  it('finds a collision a tools-changed announcement brings, and reports it', async () => {
    const beta = new StaticCatalog();
    const sut = await catalogOf([
      { name: 'alpha', source: new StaticCatalog({ tools: [tool('echo')] }) },
      { name: 'beta', source: beta },
    ]);
    const heard = new Promise<void>((resolve) => sut.watch(() => resolve()));

    beta.addTool(tool('echo'));
    await heard;

    expect(sut.collisions()).toEqual([
      { kind: 'tool', name: 'echo', winner: 'alpha', shadowed: ['beta'] },
    ]);
    expect(reported).toHaveLength(1);
  });

  it('describes the catalog by name, policies applied, with each item its backend', async () => {
    const sut = await catalogOf(
      [
        {
          name: 'b-backend',
          source: new StaticCatalog({
            tools: [tool('zeta'), tool('old'), tool('hidden')],
            prompts: [prompt('p2'), prompt('p1')],
          }),
        },
        {
          name: 'a-backend',
          source: new StaticCatalog({
            tools: [tool('alpha')],
            resources: [resource('x://2'), resource('x://1')],
            resourceTemplates: [template('x://{id}')],
          }),
        },
      ],
      [
        policy('old', { rename: 'new', requiredScopes: ['crm'] }),
        policy('hidden', { disabled: true }),
      ],
    );

    const listing = await sut.describe();

    expect(listing.tools).toEqual([
      { name: 'alpha', backend: 'a-backend', description: 'alpha tool', requiredScopes: [] },
      {
        name: 'new',
        backend: 'b-backend',
        description: 'old tool',
        renamedFrom: 'old',
        requiredScopes: ['crm'],
      },
      { name: 'zeta', backend: 'b-backend', description: 'zeta tool', requiredScopes: [] },
    ]);
    expect(listing.prompts.map((p) => [p.name, p.backend])).toEqual([
      ['p1', 'b-backend'],
      ['p2', 'b-backend'],
    ]);
    expect(listing.resources.map((r) => r.uri)).toEqual(['x://1', 'x://2']);
    expect(listing.resourceTemplates).toEqual([
      { name: 'x://{id}', backend: 'a-backend', uriTemplate: 'x://{id}' },
    ]);
    expect(listing.counts.get('b-backend')).toEqual({
      tools: 3,
      prompts: 2,
      resources: 0,
      resourceTemplates: 0,
    });
  });

  it('leaves a source whose lists fail out of the listing instead of failing the build', async () => {
    const broken = new StaticCatalog({ tools: [tool('works')] });
    broken.listPrompts = () => {
      throw new Error('upstream gone');
    };
    const sut = await catalogOf([{ name: 'broken', source: broken }]);

    const listing = await sut.describe();

    expect(listing.tools.map((t) => t.name)).toEqual(['works']);
    expect(listing.prompts).toEqual([]);
  });
});

describe(compareNames.name, () => {
  it('orders by code unit, not by locale', () => {
    expect(['b', 'B', 'a_x', 'a-x', 'A'].sort(compareNames)).toEqual(['A', 'B', 'a-x', 'a_x', 'b']);
  });
});

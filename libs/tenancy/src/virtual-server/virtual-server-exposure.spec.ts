import { SLUG_PATTERN } from '../tenant/tenant.service';
import {
  CompiledExposure,
  compileEntries,
  exposureEntryProblem,
  exposureListProblems,
  MAX_EXPOSURE_ENTRIES,
  SERVER_NAME_PATTERN,
  serverNameProblem,
} from './virtual-server-exposure';

describe(compileEntries.name, () => {
  it('matches exact entries exactly, case-sensitively', () => {
    const sut = compileEntries(['search', 'crm.read']);
    expect(sut('search')).toBe(true);
    expect(sut('crm.read')).toBe(true);
    expect(sut('Search')).toBe(false);
    expect(sut('search2')).toBe(false);
    expect(sut('crmxread')).toBe(false); // `.` is literal, not "any character"
  });

  it('exposes nothing for an empty list and everything for *', () => {
    expect(compileEntries([])('anything')).toBe(false);
    expect(compileEntries([])('')).toBe(false);
    for (const all of [['*'], ['**'], ['x', '*']]) {
      expect(compileEntries(all)('anything at all')).toBe(true);
    }
  });

  it.each([
    ['crm_*', 'crm_', true],
    ['crm_*', 'crm_accounts', true],
    ['crm_*', 'crm', false],
    ['crm_*', 'xcrm_accounts', false],
    ['*_read', 'accounts_read', true],
    ['*_read', 'accounts_read_all', false],
    ['crm_*_read', 'crm_accounts_read', true],
    ['crm_*_read', 'crm__read', true],
    ['crm_*_read', 'crm_read', false], // the prefix and suffix may not overlap
    ['a*b*c', 'abc', true],
    ['a*b*c', 'aXbYc', true],
    ['a*b*c', 'acb', false],
    ['a*b*c', 'abcb', false],
    ['*a*a*b', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', false],
    ['test://template/*', 'test://template/{id}/data', true],
    ['test://static-*', 'test://static-text', true],
    ['test://static-*', 'test://dynamic', false],
    ['file:///*.md', 'file:///docs/a/b.md', true], // `*` crosses `/`
    ['?', 'x', false], // only `*` is special
    ['[ab]', 'a', false],
  ])('glob %s against %s: %s', (glob, value, expected) => {
    expect(compileEntries([glob])(value)).toBe(expected);
  });

  it('matches when any entry does', () => {
    const sut = compileEntries(['search', 'crm_*', '*_admin']);
    expect(['search', 'crm_x', 'user_admin'].map(sut)).toEqual([true, true, true]);
    expect(['searchx', 'admin', 'crm'].map(sut)).toEqual([false, false, false]);
  });

  it('stays fast on globs written to make a backtracking matcher explode', () => {
    const sut = compileEntries([`${'*a'.repeat(60)}*b`]);
    const value = 'a'.repeat(2000);
    let matched = true;
    for (let i = 0; i < 1000; i++) {
      matched = sut(value);
    }
    expect(matched).toBe(false);
  });
});

describe(CompiledExposure.name, () => {
  it('compiles each list on its own', () => {
    const sut = new CompiledExposure({
      tools: ['crm_*'],
      prompts: ['brief'],
      resources: [],
      resourceTemplates: ['*'],
    });
    expect(sut.tools('crm_read')).toBe(true);
    expect(sut.tools('brief')).toBe(false);
    expect(sut.prompts('brief')).toBe(true);
    expect(sut.resources('test://static-text')).toBe(false);
    expect(sut.resourceTemplates('test://template/{id}/data')).toBe(true);
  });

  it('NONE exposes nothing', () => {
    const { tools, prompts, resources, resourceTemplates } = CompiledExposure.NONE;
    expect([tools, prompts, resources, resourceTemplates].map((m) => m('x'))).toEqual([
      false,
      false,
      false,
      false,
    ]);
  });
});

describe(serverNameProblem.name, () => {
  it('follows the tenant slug rules', () => {
    expect(SERVER_NAME_PATTERN.source).toBe(SLUG_PATTERN.source);
    for (const name of ['crm', 'a', 'sales-2', 'x'.repeat(48)]) {
      expect(serverNameProblem(name)).toBeUndefined();
    }
    for (const name of ['', 'CRM', '-crm', 'crm-', 'a_b', 'a/b', 'x'.repeat(49)]) {
      expect(serverNameProblem(name)).toMatch(/^must be 1 to 48 lowercase/);
    }
  });

  it.each(['sse', 'messages'])('reserves %s, routed under /mcp/{tenant}', (name) => {
    expect(serverNameProblem(name)).toBe(
      `"${name}" is reserved by the gateway's routes under /mcp/{tenant}`,
    );
  });
});

describe(exposureEntryProblem.name, () => {
  it.each([
    ['tools', 'crm_*'],
    ['tools', 'a/b.c-d_e'],
    ['prompts', 'Weekly summary *'],
    ['resources', 'crm://accounts/*'],
    ['resourceTemplates', 'crm://accounts/{id}'],
  ] as const)('accepts %s entry %s', (kind, entry) => {
    expect(exposureEntryProblem(kind, entry)).toBeUndefined();
  });

  it.each([
    ['an empty tool', 'tools', ''],
    ['a tool with a space', 'tools', 'has space'],
    ['a tool of 129 characters', 'tools', 'x'.repeat(129)],
    ['a tool with a colon', 'tools', 'crm:read'],
    ['an empty prompt', 'prompts', ''],
    ['a prompt with a line break', 'prompts', 'line\nbreak'],
    ['a URI with a space', 'resources', 'with space'],
    ['a URI of 2049 characters', 'resources', 'x'.repeat(2049)],
    ['an empty template', 'resourceTemplates', ''],
    ['a template with a tab', 'resourceTemplates', 'tab\there'],
  ] as const)('refuses %s', (_label, kind, entry) => {
    expect(exposureEntryProblem(kind, entry)).toEqual(expect.stringMatching(/^must be a/));
  });

  it('refuses entries that are not strings', () => {
    expect(exposureEntryProblem('tools', 42)).toBe('must be a string');
    expect(exposureEntryProblem('resources', null)).toBe('must be a string');
  });
});

describe(exposureListProblems.name, () => {
  it('lists every bad entry and duplicate by its index', () => {
    expect(exposureListProblems('tools', ['ok', 'not ok', 7, 'ok'])).toEqual([
      { path: 'tools[1]', message: expect.stringMatching(/^must be a tool name/) },
      { path: 'tools[2]', message: 'must be a string' },
      { path: 'tools[3]', message: 'duplicates tools[0] ("ok")' },
    ]);
  });

  it('refuses a list that is not an array, or too long', () => {
    expect(exposureListProblems('prompts', 'brief')).toEqual([
      { path: 'prompts', message: 'must be an array of strings' },
    ]);
    const long = Array.from({ length: MAX_EXPOSURE_ENTRIES + 1 }, (_, i) => `t${i}`);
    expect(exposureListProblems('tools', long)).toEqual([
      { path: 'tools', message: `must have at most ${MAX_EXPOSURE_ENTRIES} entries` },
    ]);
    expect(exposureListProblems('tools', long.slice(1))).toEqual([]);
  });
});

import { MAX_NAME_LENGTH, NameMap, namespacedName } from './upstream-names';

const DEFAULTS = { prefix: 'up', separator: '__' };
const VALID = /^[A-Za-z0-9_.-]{1,128}$/;

describe(namespacedName.name, () => {
  it('joins prefix, separator and name', () => {
    expect(namespacedName('echo', DEFAULTS)).toBe('up__echo');
    expect(namespacedName('echo', { prefix: 'crm', separator: '.' })).toBe('crm.echo');
  });

  it('leaves names unprefixed when the prefix is empty', () => {
    expect(namespacedName('echo', { prefix: '', separator: '__' })).toBe('echo');
  });

  it('keeps a name of exactly 128 characters as is', () => {
    const name = 'a'.repeat(MAX_NAME_LENGTH - 'up__'.length);
    expect(namespacedName(name, DEFAULTS)).toBe(`up__${name}`);
  });

  it('shortens long names deterministically, keeping distinct names distinct', () => {
    const long1 = `${'x'.repeat(200)}1`;
    const long2 = `${'x'.repeat(200)}2`;
    const a = namespacedName(long1, DEFAULTS);
    expect(a).toMatch(VALID);
    expect(a).toHaveLength(MAX_NAME_LENGTH);
    expect(a.startsWith('up__xxx')).toBe(true);
    expect(namespacedName(long1, DEFAULTS)).toBe(a);
    expect(namespacedName(long2, DEFAULTS)).not.toBe(a);
  });

  it('replaces characters outside the MCP name set and adds a hash', () => {
    const spaced = namespacedName('get weather', DEFAULTS);
    const slashed = namespacedName('get/weather', DEFAULTS);
    expect(spaced).toMatch(VALID);
    expect(spaced).toMatch(/^up__get_weather_[0-9a-f]{8}$/);
    expect(slashed).not.toBe(spaced);
    expect(namespacedName('ünïcode', { prefix: 'b ad', separator: ':' })).toMatch(VALID);
  });

  it('never yields an empty name', () => {
    expect(namespacedName('', { prefix: '', separator: '__' })).toMatch(VALID);
  });
});

describe(NameMap.name, () => {
  it('maps exposed names back to upstream names', () => {
    const sut = new NameMap(DEFAULTS);
    expect(sut.add('echo')).toBe('up__echo');
    expect(sut.upstreamName('up__echo')).toBe('echo');
    expect(sut.upstreamName('echo')).toBeUndefined();
  });

  it('lets the first item keep a colliding exposed name', () => {
    const sut = new NameMap({ prefix: '', separator: '__' });
    expect(sut.add('echo')).toBe('echo');
    expect(sut.add('echo')).toBeUndefined();
    expect(sut.upstreamName('echo')).toBe('echo');
  });
});

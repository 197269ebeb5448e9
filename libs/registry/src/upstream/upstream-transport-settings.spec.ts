import {
  BackendSettingsError,
  credentialEnvironment,
  splitCommandLine,
  stdioLaunch,
} from './upstream-transport-settings';

describe(splitCommandLine.name, () => {
  it.each([
    ['node server.mjs', ['node', 'server.mjs']],
    ['  npx   -y  @scope/server  ', ['npx', '-y', '@scope/server']],
    [`"/opt/my tools/bin" 'a b' c\\ d`, ['/opt/my tools/bin', 'a b', 'c d']],
    [
      `say "a \\"quoted\\" \\\\ word" 'single \\n kept'`,
      ['say', 'a "quoted" \\ word', 'single \\n kept'],
    ],
    [`empty "" ''`, ['empty', '', '']],
    [`x$HOME ~ *.js`, ['x$HOME', '~', '*.js']],
    ['joined"quo"ted', ['joinedquoted']],
  ])('splits %j', (line, words) => {
    expect(splitCommandLine(line)).toEqual(words);
  });

  it.each([
    [`node "server.mjs`, /unterminated " quote/],
    [`node 'server.mjs`, /unterminated ' quote/],
    ['node server\\', /unfinished escape/],
  ])('refuses %j', (line, message) => {
    expect(() => splitCommandLine(line)).toThrow(message);
  });
});

describe(stdioLaunch.name, () => {
  it('puts the target words first, then settings.args', () => {
    expect(
      stdioLaunch({
        target: 'node /srv/server.mjs --stdio',
        settings: { args: ['--verbose'], cwd: '/srv', env: { LEVEL: 'debug' } },
      }),
    ).toEqual({
      command: 'node',
      args: ['/srv/server.mjs', '--stdio', '--verbose'],
      cwd: '/srv',
      env: { LEVEL: 'debug' },
    });
  });

  it('takes defaults for absent settings', () => {
    expect(stdioLaunch({ target: 'server', settings: {} })).toEqual({
      command: 'server',
      args: [],
      env: {},
    });
  });

  it.each([
    [{ target: '   ', settings: {} }, 'target must be a non-empty command line'],
    [{ target: 'a', settings: { args: 'b' } }, 'settings.args must be an array of strings'],
    [{ target: 'a', settings: { args: ['b', 1] } }, 'settings.args must be an array of strings'],
    [{ target: 'a', settings: { args: ['b\0'] } }, 'must not contain NUL'],
    [{ target: 'a', settings: { cwd: 'relative/dir' } }, 'settings.cwd must be an absolute path'],
    [{ target: 'a', settings: { cwd: 7 } }, 'settings.cwd must be an absolute path'],
    [{ target: 'a', settings: { env: ['X=1'] } }, 'settings.env must be an object'],
    [{ target: 'a', settings: { env: { 'BAD-NAME': 'x' } } }, '"BAD-NAME" is not a valid'],
    [{ target: 'a', settings: { env: { GOOD: 1 } } }, 'settings.env.GOOD must be a string'],
  ])('refuses %j', (backend, message) => {
    expect(() => stdioLaunch(backend)).toThrow(BackendSettingsError);
    expect(() => stdioLaunch(backend)).toThrow(message);
  });
});

describe(credentialEnvironment.name, () => {
  it('passes credentials named like variables', () => {
    expect(credentialEnvironment({ API_TOKEN: 's3cret' })).toEqual({ API_TOKEN: 's3cret' });
  });

  it('refuses other names without quoting any value', () => {
    const attempt = () => credentialEnvironment({ 'x-api-key': 's3cret' });
    expect(attempt).toThrow('must be named like environment variables');
    expect(attempt).not.toThrow(/s3cret/);
  });
});

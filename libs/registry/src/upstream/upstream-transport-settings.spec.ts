import {
  BackendSettingsError,
  credentialEnvironment,
  splitCommandLine,
  stdioLaunch,
  stdioSupervision,
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

describe(stdioSupervision.name, () => {
  it('starts on demand, stops after 5 minutes idle and backs off from 500 ms to 30 s by default', () => {
    expect(stdioSupervision({ settings: {} })).toEqual({
      start: 'on-demand',
      idleTimeoutMs: 300_000,
      restartInitialMs: 500,
      restartMaxMs: 30_000,
    });
  });

  it('takes the settings given', () => {
    expect(
      stdioSupervision({
        settings: { start: 'eager', idleTimeoutMs: 0, restartInitialMs: 10, restartMaxMs: 10 },
      }),
    ).toEqual({ start: 'eager', idleTimeoutMs: 0, restartInitialMs: 10, restartMaxMs: 10 });
  });

  it.each([
    [{ start: 'lazy' }, 'settings.start must be "on-demand" or "eager"'],
    [{ idleTimeoutMs: -1 }, 'settings.idleTimeoutMs must be an integer number of milliseconds'],
    [{ idleTimeoutMs: '60000' }, 'settings.idleTimeoutMs must be an integer'],
    [{ restartInitialMs: 0 }, 'settings.restartInitialMs must be an integer'],
    [{ restartMaxMs: 1.5 }, 'settings.restartMaxMs must be an integer'],
    [{ idleTimeoutMs: 2 ** 31 }, 'settings.idleTimeoutMs must be an integer'],
    [{ restartInitialMs: 5000, restartMaxMs: 1000 }, 'must not be less than restartInitialMs'],
  ])('refuses %j', (settings, message) => {
    expect(() => stdioSupervision({ settings })).toThrow(message);
  });
});

// Transpile-only (SWC) for speed; `npm run typecheck` type-checks everything once.
const swc = [
  '@swc/jest',
  {
    jsc: {
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
      target: 'es2022',
    },
    module: { type: 'commonjs' },
  },
];

const moduleNameMapper = {
  '^@portico/([a-z-]+)$': '<rootDir>/libs/$1/src',
  '^@portico/([a-z-]+)/(.*)$': '<rootDir>/libs/$1/src/$2',
};

/** @type {import('jest').Config} */
module.exports = {
  projects: [
    {
      displayName: 'unit',
      testEnvironment: 'node',
      rootDir: __dirname,
      roots: ['<rootDir>/apps', '<rootDir>/libs'],
      testMatch: ['**/*.spec.ts'],
      transform: { '^.+\\.ts$': swc },
      moduleNameMapper,
    },
    {
      displayName: 'e2e',
      testEnvironment: 'node',
      rootDir: __dirname,
      roots: ['<rootDir>/test'],
      testMatch: ['**/*.e2e-spec.ts'],
      transform: { '^.+\\.(t|mj|j)s$': swc },
      transformIgnorePatterns: [
        '/node_modules/(?!(@modelcontextprotocol|pkce-challenge|eventsource|eventsource-parser)/)',
      ],
      moduleNameMapper,
      testTimeout: 30000,
    },
  ],
};

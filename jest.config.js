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
  // A global option: Jest ignores it inside a project.
  testTimeout: 30000,
  projects: [
    {
      displayName: 'unit',
      testEnvironment: 'node',
      rootDir: __dirname,
      roots: ['<rootDir>/apps', '<rootDir>/libs'],
      testMatch: ['**/*.spec.ts'],
      transform: { '^.+\\.(t|mj|cj|j)s$': swc },
      transformIgnorePatterns: [],
      moduleNameMapper,
    },
    {
      displayName: 'e2e',
      testEnvironment: 'node',
      rootDir: __dirname,
      roots: ['<rootDir>/test'],
      testMatch: ['**/*.e2e-spec.ts'],
      transform: { '^.+\\.(t|mj|cj|j)s$': swc },
      // Nest 12, the MCP SDKs and several of their dependencies ship ESM only; Jest on Node 20
      // cannot require() ESM, so node_modules are transpiled to CommonJS too (Jest caches it).
      transformIgnorePatterns: [],
      moduleNameMapper,
    },
    {
      // Headless Chromium (Debian's chromium driven by playwright-core): `npm run test:browser`.
      displayName: 'browser',
      testEnvironment: 'node',
      rootDir: __dirname,
      roots: ['<rootDir>/test'],
      testMatch: ['**/*.browser-spec.ts'],
      transform: { '^.+\\.(t|mj|cj|j)s$': swc },
      transformIgnorePatterns: [],
      moduleNameMapper,
    },
    {
      // Several gateway processes behind Debian's HAProxy on loopback: `npm run test:cluster`.
      displayName: 'cluster',
      testEnvironment: 'node',
      rootDir: __dirname,
      roots: ['<rootDir>/test'],
      testMatch: ['**/*.cluster-spec.ts'],
      transform: { '^.+\\.(t|mj|cj|j)s$': swc },
      transformIgnorePatterns: [],
      moduleNameMapper,
    },
  ],
};

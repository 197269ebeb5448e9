export * from './fixtures/echo.tool';
export * from './fixtures/media';
export * from './fixtures/conformance-catalog';
export * from './fixtures/conformance-tools';
export * from './fixtures/conformance-resources';
export * from './fixtures/conformance-prompts';
export * from './databases';

export * from './fixtures/echo.tool';
export * from './fixtures/conformance-catalog';

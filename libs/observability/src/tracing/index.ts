export * from './tracing';
export * from './tracing.module';
export * from './mcp-request-observer';
export * from './span-names';
export * from './trace-carrier';

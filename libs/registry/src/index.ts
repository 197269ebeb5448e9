export * from './catalog.module';
export * from './mcp-engine.module';

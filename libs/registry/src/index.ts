export * from './catalog.module';
export * from './mcp-engine.module';
export * from './tenant-catalog/governed-catalog';
export * from './tenant-catalog/tenant-catalog.router';
export * from './upstream/backend-source';
export * from './upstream/upstream-source.factory';
export { UPSTREAM_TASK_WORK } from './upstream/upstream-tasks';

export * from './config';
export * from './config.module';
export { CONFIG_SCHEMA, SENSITIVE_VARIABLES } from './config.schema';

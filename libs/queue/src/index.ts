export * from './execution-settings';
export * from './tool-call.queue';
export * from './tool-job';
export * from './tool-job.errors';
export * from './queue.module';
export * from './priority-ageing';

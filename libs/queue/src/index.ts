export * from './tool-call.queue';
export * from './tool-job';
export * from './queue.module';

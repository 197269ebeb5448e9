export * from './task.types';
export * from './task-store';
export * from './memory-task.store';
export * from './task-launch';
export * from './task-manager';
export * from './task-wire';

export * from './session.ports';
export * from './memory-session.store';
export * from './memory-event.store';
export * from './memory-message.bus';
export * from './redis-task-store';
export * from './redis-subscriber';

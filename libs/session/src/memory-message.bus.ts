import { EventEmitter } from 'node:events';
import type { BusHandler, MessageBus } from './session.ports';

/** In-process delivery: every subscriber on this node gets every message of its channel. */
export class MemoryMessageBus implements MessageBus {
  private readonly emitter = new EventEmitter().setMaxListeners(0);

  publish(channel: string, message: unknown): Promise<void> {
    this.emitter.emit(channel, message);
    return Promise.resolve();
  }

  subscribe(channel: string, handler: BusHandler): Promise<() => Promise<void>> {
    this.emitter.on(channel, handler);
    return Promise.resolve(() => {
      this.emitter.off(channel, handler);
      return Promise.resolve();
    });
  }
}

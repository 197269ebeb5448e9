import { Injectable } from '@nestjs/common';

/** Whether this node is draining: readiness fails first so the load balancer moves traffic away. */
@Injectable()
export class LifecycleService {
  private drainingSince?: number;

  get draining(): boolean {
    return this.drainingSince !== undefined;
  }

  startDraining(): void {
    this.drainingSince ??= Date.now();
  }
}

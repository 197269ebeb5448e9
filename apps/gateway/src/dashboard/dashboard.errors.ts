/** Why a dashboard request failed (credentials aside: those are AuthErrors). */
export type DashboardErrorCode = 'not-found' | 'invalid-input' | 'busy';

export class DashboardError extends Error {
  constructor(
    readonly code: DashboardErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'DashboardError';
  }

  static notFound(what = 'Resource'): DashboardError {
    return new DashboardError('not-found', `${what} not found`);
  }

  static invalidInput(message: string): DashboardError {
    return new DashboardError('invalid-input', message);
  }

  static busy(max: number): DashboardError {
    return new DashboardError(
      'busy',
      `This node already serves ${max} dashboard streams; retry shortly or use another node`,
    );
  }
}

import { BackendUnavailableError, ErrorCode, McpError } from '@portico/mcp-protocol';
import { isRetryableFailure } from './tool-call.queue';

describe('isRetryableFailure', () => {
  it('retries when the job’s own backend could not serve the call', () => {
    const err = new BackendUnavailableError('Backend crm unavailable: circuit open');
    expect(isRetryableFailure(err, 'crm')).toBe(true);
  });

  it('does not retry what the backend answered, even worded like an outage', () => {
    // An upstream gateway's own "unavailable" reaches us as a JSON-RPC error it answered.
    const answered = new McpError(ErrorCode.InternalError, 'Backend crm unavailable: timeout');
    expect(isRetryableFailure(answered, 'crm')).toBe(false);
    expect(isRetryableFailure(new McpError(ErrorCode.InvalidParams, 'bad'), 'crm')).toBe(false);
    expect(isRetryableFailure(new Error('Backend crm unavailable: x'), 'crm')).toBe(false);
  });

  it('does not retry another backend’s outage', () => {
    const err = new BackendUnavailableError('Backend crm-eu unavailable: circuit open');
    expect(isRetryableFailure(err, 'crm')).toBe(false);
  });

  it('keeps the wire shape: -32603 with the message', () => {
    const err = new BackendUnavailableError('Backend crm unavailable: circuit open');
    expect(err.toJson()).toEqual({
      code: ErrorCode.InternalError,
      message: 'Backend crm unavailable: circuit open',
    });
  });
});

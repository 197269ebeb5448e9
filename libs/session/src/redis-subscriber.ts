import type Redis from 'ioredis';

/**
 * Subscribes `client` to `channel` now and again after every reconnect. ioredis's own
 * re-subscription (autoResubscribe) does not handle a failure of its SUBSCRIBE: when the
 * connection drops again or is closed before Redis answers, that is an unhandled rejection,
 * which ends a Node process. Here a failure is handed to `onError` (the next reconnect tries
 * again). The client must have been created with `autoResubscribe: false`.
 */
export function keepSubscribed(
  client: Redis,
  channel: string,
  onError: (err: unknown) => void = () => undefined,
): Promise<void> {
  // The 'ready' of the first connection needs nothing: the SUBSCRIBE below is sent on it.
  let first = client.status !== 'ready';
  client.on('ready', () => {
    if (first) {
      first = false;
      return;
    }
    client.subscribe(channel).then(() => undefined, onError);
  });
  return client.subscribe(channel).then(() => undefined);
}

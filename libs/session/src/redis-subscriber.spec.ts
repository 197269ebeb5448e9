import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { keepSubscribed } from './redis-subscriber';

const REDIS_URL = 'redis://127.0.0.1:6379';

async function until(probe: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await probe())) {
    if (Date.now() > deadline) {
      throw new Error(`${what}: not within 10 s`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe(keepSubscribed.name, () => {
  const channel = `portico-test-subscriber-${randomBytes(4).toString('hex')}`;
  /** Names the subscriber's connections, so they are found without commands on the client. */
  const connectionName = `${channel}-sut`;
  /** Publishes and kills connections; never subscribes. */
  const admin = new Redis(REDIS_URL);
  let sut: Redis;
  let received: string[];
  let errors: unknown[];

  beforeEach(() => {
    received = [];
    errors = [];
    // disconnect() on a connection already dropped arms a timer (disconnectTimeout) for a close
    // that never comes; a short one keeps Jest from waiting on it.
    sut = new Redis(REDIS_URL, { autoResubscribe: false, connectionName, disconnectTimeout: 100 });
    // A killed connection may be reported as an error; ioredis reconnects regardless.
    sut.on('error', () => undefined);
    sut.on('message', (ch: string, message: string) => {
      if (ch === channel) {
        received.push(message);
      }
    });
  });

  afterEach(() => {
    sut.disconnect();
  });

  afterAll(async () => {
    await admin.quit();
  });

  /**
   * The id of the subscriber's live connection, asked of another client: keepSubscribed must
   * be handed a client that is not yet ready (see its first 'ready'), and Redis refuses
   * CLIENT ID in subscriber mode.
   */
  const connectionId = async (): Promise<string> => {
    let id: string | undefined;
    await until(async () => {
      const list = (await admin.client('LIST', 'TYPE', 'PUBSUB')) as string;
      id = list
        .split('\n')
        .find((line) => line.includes(` name=${connectionName} `))
        ?.match(/^id=(\d+) /)?.[1];
      return id !== undefined;
    }, 'subscriber connection');
    return id as string;
  };

  const kill = async (id: string) => {
    expect(await admin.client('KILL', 'ID', id)).toBe(1);
  };

  /** Publishes `message` until the subscriber has it: a re-subscription lands some time after 'ready'. */
  const deliver = (message: string) =>
    until(async () => {
      await admin.publish(channel, message);
      return received.includes(message);
    }, `delivery of ${message}`);

  const subscribers = async () => ((await admin.pubsub('NUMSUB', channel)) as [string, number])[1];

  it('receives messages published on the channel', async () => {
    await keepSubscribed(sut, channel, (err) => errors.push(err));
    expect(await subscribers()).toBe(1);
    await admin.publish(channel, 'one');
    await until(() => received.includes('one'), 'first message');
    expect(received).toEqual(['one']);
    expect(errors).toEqual([]);
  });

  it('subscribes again after its connection is killed and re-established', async () => {
    await keepSubscribed(sut, channel, (err) => errors.push(err));
    const id = await connectionId();
    await deliver('before');

    const ready = new Promise<void>((resolve) => sut.once('ready', () => resolve()));
    await kill(id);
    await ready;
    await deliver('after');
    expect(await connectionId()).not.toBe(id);
    expect(await subscribers()).toBe(1);
    expect(errors).toEqual([]);
  });

  it('hands a re-subscription cut short by disconnect() to onError, not to the process', async () => {
    await keepSubscribed(sut, channel, (err) => errors.push(err));
    const id = await connectionId();
    // Registered after keepSubscribed's listener, so its SUBSCRIBE is sent; the socket is
    // then dropped before Redis can answer (disconnect() alone would still read the answer).
    const cut = new Promise<void>((resolve) =>
      sut.once('ready', () => {
        sut.disconnect();
        sut.stream.destroy();
        resolve();
      }),
    );
    await kill(id);
    await cut;
    await until(() => errors.length > 0, 'onError');
    expect(String(errors[0])).toMatch(/Connection is closed/);
    await until(() => sut.status === 'end', 'end');
    // A few turns for a stray rejection to be reported; Jest fails the test that has one.
    await new Promise((resolve) => setTimeout(resolve, 50));
  });

  it('stays down when disconnect() comes right after the kill, before the reconnect', async () => {
    await keepSubscribed(sut, channel, (err) => errors.push(err));
    const id = await connectionId();
    let reconnected = false;
    const dropped = new Promise<void>((resolve) =>
      sut.once('close', () => {
        sut.disconnect();
        sut.on('connect', () => (reconnected = true));
        resolve();
      }),
    );
    await kill(id);
    await dropped;
    // Past ioredis's first reconnect delay (50 ms): a reconnect would have started by then.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(reconnected).toBe(false);
    expect(errors).toEqual([]);
    expect(await subscribers()).toBe(0);
  });
});

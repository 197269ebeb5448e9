import { assertReachableTarget, isNonPublicAddress, WS_SCHEMES } from './target-guard';

describe(isNonPublicAddress.name, () => {
  it.each([
    '127.0.0.1',
    '10.1.2.3',
    '172.20.0.1',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '::1',
    '::',
    'fe80::1',
    'fd00::1',
    '::ffff:127.0.0.1',
    '::ffff:a9fe:a9fe',
    'not-an-ip',
  ])('refuses %s', (address) => {
    expect(isNonPublicAddress(address)).toBe(true);
  });

  it.each(['8.8.8.8', '1.1.1.1', '172.32.0.1', '::ffff:8.8.8.8', '2606:4700:4700::1111'])(
    'allows %s',
    (address) => {
      expect(isNonPublicAddress(address)).toBe(false);
    },
  );
});

describe(assertReachableTarget.name, () => {
  it('refuses loopback targets unless internal', async () => {
    await expect(assertReachableTarget(new URL('http://127.0.0.1:1/mcp'), false)).rejects.toThrow(
      /non-public/,
    );
    await expect(assertReachableTarget(new URL('http://[::1]:1/mcp'), false)).rejects.toThrow(
      /non-public/,
    );
    await expect(assertReachableTarget(new URL('http://localhost:1/mcp'), false)).rejects.toThrow(
      /non-public/,
    );
    await expect(assertReachableTarget(new URL('http://127.0.0.1:1/mcp'), true)).resolves.toBe(
      undefined,
    );
  });

  it('refuses other schemes', async () => {
    await expect(assertReachableTarget(new URL('file:///etc/passwd'), true)).rejects.toThrow(
      /scheme/,
    );
  });

  it('takes ws(s) targets only where WebSocket schemes are allowed, under the same guard', async () => {
    await expect(assertReachableTarget(new URL('ws://127.0.0.1:1/mcp'), true)).rejects.toThrow(
      /scheme ws:/,
    );
    await expect(
      assertReachableTarget(new URL('wss://127.0.0.1:1/mcp'), false, WS_SCHEMES),
    ).rejects.toThrow(/non-public/);
    await expect(
      assertReachableTarget(new URL('ws://127.0.0.1:1/mcp'), true, WS_SCHEMES),
    ).resolves.toBe(undefined);
    await expect(
      assertReachableTarget(new URL('http://127.0.0.1:1/mcp'), true, WS_SCHEMES),
    ).rejects.toThrow(/scheme http:/);
  });
});

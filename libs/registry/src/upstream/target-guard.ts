import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

/**
 * Addresses a tenant-supplied upstream URL must not reach unless the backend is marked
 * `internal`: otherwise any tenant could point the gateway at its own network (SSRF).
 */
const NON_PUBLIC = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8], // "this" network
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local, cloud metadata endpoints
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15], // benchmarking
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const) {
  NON_PUBLIC.addSubnet(network, prefix, 'ipv4');
}
// BlockList judges IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) by the IPv4 rules above.
for (const [network, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['64:ff9b::', 96], // NAT64 can reach internal IPv4
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
] as const) {
  NON_PUBLIC.addSubnet(network, prefix, 'ipv6');
}

/** Whether `address` (an IP literal) is private, loopback, link-local or otherwise not public. */
export function isNonPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) {
    return NON_PUBLIC.check(address, 'ipv4');
  }
  if (family === 6) {
    return NON_PUBLIC.check(address, 'ipv6');
  }
  return true; // not an IP at all: refuse rather than guess
}

export class TargetRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TargetRefusedError';
  }
}

export const HTTP_SCHEMES: readonly string[] = ['http:', 'https:'];
export const WS_SCHEMES: readonly string[] = ['ws:', 'wss:'];

/**
 * Throws unless the URL's scheme is one of `schemes` and every address its host resolves to
 * is public, or the backend is `internal`. Checked at every (re)connect, so a DNS change is
 * noticed then.
 */
export async function assertReachableTarget(
  url: URL,
  internal: boolean,
  schemes: readonly string[] = HTTP_SCHEMES,
): Promise<void> {
  if (!schemes.includes(url.protocol)) {
    throw new TargetRefusedError(`unsupported URL scheme ${url.protocol}`);
  }
  if (internal) {
    return;
  }
  // URL keeps IPv6 literals in brackets.
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const addresses = isIP(host) ? [host] : (await lookup(host, { all: true })).map((a) => a.address);
  const refused = addresses.find((address) => isNonPublicAddress(address));
  if (refused !== undefined || addresses.length === 0) {
    throw new TargetRefusedError(
      `${host} resolves to a non-public address (${refused ?? 'none'}); ` +
        'set settings.internal = true to allow it',
    );
  }
}

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  exportJWK,
  exportSPKI,
  generateKeyPair,
  SignJWT,
  type CryptoKey,
  type JWK,
  type JWTHeaderParameters,
} from 'jose';

/** Asymmetric algorithms the test issuer serves keys for. */
export type JwksTestAlgorithm = 'RS256' | 'ES256';

/** Options of {@link JwksServer.sign} and its siblings. */
export interface TestTokenOptions {
  /** Defaults to 'RS256'. */
  alg?: JwksTestAlgorithm;
  /** Overrides the `kid` header (defaults to the current key's kid). */
  kid?: string;
  /** A jose time span ('5m', '-2m') or a number of seconds from now (negative = in the past). Defaults to '5m'. */
  expiresIn?: string | number;
  /** Same format as `expiresIn`; absent means no `nbf` claim. */
  notBefore?: string | number;
  /** Defaults to the server's `url`. */
  issuer?: string;
  audience?: string | string[];
  /** Defaults to 'user-1'; `null` leaves `sub` out. */
  subject?: string | null;
  /** Extra protected header parameters, applied last (they may override `kid` or `typ`). */
  header?: Record<string, unknown>;
}

/** A local OAuth issuer publishing a JWKS over real HTTP, for exercising JWT verifiers end to end. */
export interface JwksServer {
  /** Issuer identifier (`http://127.0.0.1:<port>`), used as the default `iss`. */
  readonly url: string;
  readonly jwksUri: string;
  /** Number of JWKS documents requested so far (cache and rotation assertions). */
  readonly requests: number;
  /** Current kid of the served key for `alg`. */
  kid(alg?: JwksTestAlgorithm): string;
  /** SPKI PEM of the served public key for `alg` (static-key verifiers, algorithm confusion). */
  publicKeyPem(alg?: JwksTestAlgorithm): Promise<string>;
  /** Signs `claims` with the served private key for `opts.alg`. */
  sign(claims: Record<string, unknown>, opts?: TestTokenOptions): Promise<string>;
  /** Signs with a key that is NOT in the JWKS while claiming a served `kid`: a forged signature. */
  foreignKeySign(claims: Record<string, unknown>, opts?: TestTokenOptions): Promise<string>;
  /** Signs with HMAC (HS256) using `secret`; same claim defaults as {@link sign}. */
  hmacSign(
    secret: string | Uint8Array,
    claims: Record<string, unknown>,
    opts?: Omit<TestTokenOptions, 'alg'>,
  ): Promise<string>;
  /** Replaces the RS256 key by a new one with a new kid; the old key leaves the JWKS. */
  rotate(): Promise<void>;
  /** While false, the JWKS endpoint answers 503 (issuer outage). */
  setAvailable(available: boolean): void;
  close(): Promise<void>;
}

interface TestKey {
  kid: string;
  alg: JwksTestAlgorithm;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  jwk: JWK;
}

const JWKS_PATH = '/.well-known/jwks.json';

let kidCounter = 0;

async function createKey(alg: JwksTestAlgorithm): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  // A process-wide counter keeps kids unique across servers, so a cached key can never match by accident.
  const kid = `${alg.toLowerCase()}-${++kidCounter}`;
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicKey, jwk };
}

function toNumericDate(value: string | number): string | number {
  // jose reads a number as an absolute NumericDate; relative seconds are friendlier in tests.
  return typeof value === 'number' ? Math.floor(Date.now() / 1000) + value : value;
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** An unsecured JWT (`alg: none`, empty signature) carrying `claims`, as an attacker would send it. */
export function unsignedToken(claims: Record<string, unknown>): string {
  return `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url(claims)}.`;
}

/** Starts a {@link JwksServer} on 127.0.0.1 with a random port, serving one RS256 and one ES256 key. */
export async function startJwksServer(): Promise<JwksServer> {
  const keys = new Map<JwksTestAlgorithm, TestKey>([
    ['RS256', await createKey('RS256')],
    ['ES256', await createKey('ES256')],
  ]);
  // Generated lazily: only forgery tests need it.
  let foreignKeys: Promise<Map<JwksTestAlgorithm, TestKey>> | undefined;
  let requests = 0;
  let available = true;

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'GET' || req.url !== JWKS_PATH) {
      res.writeHead(404).end();
      return;
    }
    requests++;
    if (!available) {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('unavailable');
      return;
    }
    const body = JSON.stringify({ keys: [...keys.values()].map((key) => key.jwk) });
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;

  const keyFor = (alg: JwksTestAlgorithm = 'RS256'): TestKey => {
    const key = keys.get(alg);
    if (!key) {
      throw new Error(`No ${alg} key`);
    }
    return key;
  };

  const build = (
    claims: Record<string, unknown>,
    opts: TestTokenOptions,
    header: JWTHeaderParameters,
  ): SignJWT => {
    const jwt = new SignJWT(claims)
      .setProtectedHeader({ typ: 'JWT', ...header, ...opts.header })
      .setIssuedAt()
      .setIssuer(opts.issuer ?? url)
      .setExpirationTime(toNumericDate(opts.expiresIn ?? '5m'));
    const subject = opts.subject === undefined ? 'user-1' : opts.subject;
    if (subject !== null) {
      jwt.setSubject(subject);
    }
    if (opts.audience !== undefined) {
      jwt.setAudience(opts.audience);
    }
    if (opts.notBefore !== undefined) {
      jwt.setNotBefore(toNumericDate(opts.notBefore));
    }
    return jwt;
  };

  return {
    url,
    jwksUri: `${url}${JWKS_PATH}`,
    get requests() {
      return requests;
    },
    kid: (alg) => keyFor(alg).kid,
    publicKeyPem: (alg) => exportSPKI(keyFor(alg).publicKey),
    sign: (claims, opts = {}) => {
      const key = keyFor(opts.alg);
      return build(claims, opts, { alg: key.alg, kid: opts.kid ?? key.kid }).sign(key.privateKey);
    },
    foreignKeySign: async (claims, opts = {}) => {
      foreignKeys ??= Promise.all([createKey('RS256'), createKey('ES256')]).then(
        ([rs, es]) =>
          new Map([
            ['RS256', rs],
            ['ES256', es],
          ]),
      );
      const alg = opts.alg ?? 'RS256';
      const foreign = (await foreignKeys).get(alg) as TestKey;
      const header = { alg, kid: opts.kid ?? keyFor(alg).kid };
      return build(claims, opts, header).sign(foreign.privateKey);
    },
    hmacSign: (secret, claims, opts = {}) => {
      const bytes = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret;
      return build(claims, opts, { alg: 'HS256' }).sign(bytes);
    },
    rotate: async () => {
      keys.set('RS256', await createKey('RS256'));
    },
    setAvailable: (up) => {
      available = up;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        // Verifiers keep connections alive; without this close() would wait for them to time out.
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

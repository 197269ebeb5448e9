import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { passportJwtSecret } from 'jwks-rsa';
import { ExtractJwt, Strategy, type StrategyOptionsWithoutRequest } from 'passport-jwt';

/** How to verify the access tokens of one issuer (typically one tenant's identity provider). */
export interface JwtSettings {
  /** JWKS URL of the issuer (keys cached, refetched when an unknown kid appears = rotation). */
  jwksUri?: string;
  /** Static verification key: PEM public key (RS*, ES*, PS*) or an HMAC secret (HS*). Exactly one of jwksUri/publicKey. */
  publicKey?: string;
  /** Must equal the token's `iss`. */
  issuer: string;
  /** The token's `aud` must contain one of them (RFC 8707 resource indicator). */
  audience: string | string[];
  /** Allow-list of JWS algorithms; `none` is never accepted. */
  algorithms: string[];
  /** Leeway for `exp` and `nbf`, in seconds. Defaults to 30. */
  clockToleranceSec?: number;
  /**
   * Claim holding the roles, as an array of strings or a space-separated string. Defaults to 'roles'.
   * A dotted path such as 'realm_access.roles' walks nested objects, unless a claim has that exact name.
   */
  rolesClaim?: string;
  /** Claim holding the scopes, space-separated or an array. Defaults to 'scope'; 'scp' is read when it is absent. */
  scopesClaim?: string;
}

/** The identity carried by a token that passed every check. */
export interface VerifiedToken {
  subject: string;
  roles: string[];
  scopes: string[];
  /** `exp` in seconds since the epoch, when the token has one. */
  expiresAt?: number;
  claims: Record<string, unknown>;
}

/** Why a token was refused. */
export type JwtFailure =
  | 'malformed'
  | 'bad-signature'
  | 'algorithm'
  | 'issuer'
  | 'audience'
  | 'expired'
  | 'not-yet-valid'
  | 'no-subject'
  | 'keys-unavailable';

/** A refused token; `reason` is stable and meant for metrics and error mapping, `message` for logs. */
export class JwtVerificationError extends Error {
  constructor(
    readonly reason: JwtFailure,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'JwtVerificationError';
  }
}

const DEFAULT_CLOCK_TOLERANCE_SEC = 30;
const DEFAULT_ROLES_CLAIM = 'roles';
const DEFAULT_SCOPES_CLAIM = 'scope';
// jwks-rsa memoizes keys per kid, so this only bounds how long a revoked-but-cached key is trusted.
const JWKS_CACHE_MAX_AGE_MS = 10 * 60_000;
// Unknown kids bypass the cache; the limit keeps forged kids from turning us into a DoS on the issuer.
const JWKS_REQUESTS_PER_MINUTE = 10;
const JWKS_TIMEOUT_MS = 5_000;

const HMAC_ALGORITHMS = new Set(['HS256', 'HS384', 'HS512']);
/** Public-key JWS algorithms a tenant may allow. jsonwebtoken 9 (under passport-jwt) verifies exactly these; it has no EdDSA support. */
export const ASYMMETRIC_JWT_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
] as const;
const ASYMMETRIC_ALGORITHMS = new Set<string>(ASYMMETRIC_JWT_ALGORITHMS);
const KEY_TYPE_ALGORITHM_PREFIXES: Record<string, string[]> = {
  rsa: ['RS', 'PS'],
  'rsa-pss': ['PS'],
  ec: ['ES'],
};
const COMPACT_JWS = /^[\w-]+\.[\w-]+\.[\w-]*$/;

interface CachedVerifier {
  strategy: Strategy;
  algorithms: ReadonlySet<string>;
  rolesClaim: string;
  rolesPath: string[] | undefined;
  scopesClaim: string;
  scopesPath: string[] | undefined;
}

/** The callbacks passport attaches to a strategy instance before calling `authenticate`. */
interface StrategyAttempt {
  success(user: unknown, info?: unknown): void;
  fail(challenge?: unknown, status?: number): void;
  error(err: unknown): void;
  authenticate(req: unknown): void;
}

/**
 * Verifies bearer JWTs with passport-jwt, one cached strategy (and JWKS client) per settings key,
 * and reports refusals as {@link JwtVerificationError} with a precise {@link JwtFailure}.
 */
@Injectable()
export class JwtVerifier {
  private readonly verifiers = new Map<string, CachedVerifier>();

  /**
   * Verifies `token` (without the `Bearer ` prefix) against `settings`.
   *
   * `cacheKey` identifies the settings (e.g. tenant id + settings version); strategies/JWKS clients
   * are built once per key and reused, so a key must not be reused for different settings.
   *
   * @throws JwtVerificationError when the token is refused.
   * @throws Error when `settings` are invalid.
   */
  async verify(token: string, cacheKey: string, settings: JwtSettings): Promise<VerifiedToken> {
    let verifier = this.verifiers.get(cacheKey);
    if (!verifier) {
      verifier = buildVerifier(settings);
      this.verifiers.set(cacheKey, verifier);
    }
    checkShape(token, verifier.algorithms);
    const claims = await authenticate(verifier.strategy, token);
    const subject = claims.sub;
    if (typeof subject !== 'string' || subject === '') {
      throw new JwtVerificationError('no-subject', 'The token has no subject (sub)');
    }
    const scopes = claimValue(claims, verifier.scopesClaim, verifier.scopesPath) ?? claims.scp;
    return {
      subject,
      roles: toList(claimValue(claims, verifier.rolesClaim, verifier.rolesPath)),
      scopes: toList(scopes),
      expiresAt: typeof claims.exp === 'number' ? claims.exp : undefined,
      claims,
    };
  }

  /** Drops the cached strategy of `cacheKey` (settings changed); the next verify rebuilds it. */
  forget(cacheKey: string): void {
    this.verifiers.delete(cacheKey);
  }
}

function buildVerifier(settings: JwtSettings): CachedVerifier {
  const algorithms = validateSettings(settings);
  const options = {
    jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(),
    issuer: settings.issuer,
    audience: settings.audience,
    algorithms,
    jsonWebTokenOptions: {
      clockTolerance: settings.clockToleranceSec ?? DEFAULT_CLOCK_TOLERANCE_SEC,
    },
  } as const;
  let strategyOptions: StrategyOptionsWithoutRequest;
  if (settings.jwksUri) {
    strategyOptions = {
      ...options,
      secretOrKeyProvider: passportJwtSecret({
        jwksUri: settings.jwksUri,
        cache: true,
        cacheMaxAge: JWKS_CACHE_MAX_AGE_MS,
        rateLimit: true,
        jwksRequestsPerMinute: JWKS_REQUESTS_PER_MINUTE,
        timeout: JWKS_TIMEOUT_MS,
        // The default handler turns an unknown kid into "no key", which jsonwebtoken then reports
        // as a vague "secret or public key must be provided"; keep the real error instead.
        handleSigningKeyError: (err, cb) => cb(err),
      }),
    };
  } else {
    strategyOptions = {
      ...options,
      // jsonwebtoken accepts a KeyObject as is; a string would be re-parsed on every token.
      secretOrKey: staticKey(settings.publicKey as string, algorithms) as unknown as Buffer,
    };
  }
  const rolesClaim = settings.rolesClaim ?? DEFAULT_ROLES_CLAIM;
  const scopesClaim = settings.scopesClaim ?? DEFAULT_SCOPES_CLAIM;
  return {
    strategy: new Strategy(strategyOptions, (payload: unknown, done) => done(null, payload)),
    algorithms: new Set(algorithms),
    rolesClaim,
    rolesPath: rolesClaim.includes('.') ? rolesClaim.split('.') : undefined,
    scopesClaim,
    scopesPath: scopesClaim.includes('.') ? scopesClaim.split('.') : undefined,
  };
}

type Algorithm = NonNullable<StrategyOptionsWithoutRequest['algorithms']>[number];

function validateSettings(settings: JwtSettings): Algorithm[] {
  const hasJwks = settings.jwksUri !== undefined && settings.jwksUri !== '';
  const hasKey = settings.publicKey !== undefined && settings.publicKey !== '';
  if (hasJwks === hasKey) {
    throw new Error('JWT settings need exactly one of jwksUri and publicKey');
  }
  if (hasJwks) {
    let protocol: string;
    try {
      protocol = new URL(settings.jwksUri as string).protocol;
    } catch {
      throw new Error(`JWT settings: jwksUri "${settings.jwksUri}" is not a valid URL`);
    }
    if (protocol !== 'https:' && protocol !== 'http:') {
      throw new Error(`JWT settings: jwksUri must be an http(s) URL, got "${settings.jwksUri}"`);
    }
  }
  if (typeof settings.issuer !== 'string' || settings.issuer === '') {
    throw new Error('JWT settings need an issuer');
  }
  const audiences = Array.isArray(settings.audience) ? settings.audience : [settings.audience];
  // jsonwebtoken skips the audience check entirely when given an empty string.
  if (audiences.length === 0 || audiences.some((aud) => typeof aud !== 'string' || aud === '')) {
    throw new Error('JWT settings need at least one non-empty audience');
  }
  const tolerance = settings.clockToleranceSec;
  if (tolerance !== undefined && !(Number.isFinite(tolerance) && tolerance >= 0)) {
    throw new Error('JWT settings: clockToleranceSec must be a non-negative number');
  }
  for (const [name, claim] of [
    ['rolesClaim', settings.rolesClaim],
    ['scopesClaim', settings.scopesClaim],
  ] as const) {
    if (claim !== undefined && (claim === '' || claim.split('.').includes(''))) {
      throw new Error(`JWT settings: ${name} "${claim}" is not a claim name or dotted path`);
    }
  }
  const algorithms = settings.algorithms;
  if (!Array.isArray(algorithms) || algorithms.length === 0) {
    throw new Error('JWT settings need a non-empty algorithms allow-list');
  }
  let hmac = 0;
  for (const alg of algorithms) {
    if (typeof alg === 'string' && alg.toLowerCase() === 'none') {
      throw new Error('JWT settings: algorithm "none" is never allowed');
    }
    if (HMAC_ALGORITHMS.has(alg)) {
      hmac++;
    } else if (!ASYMMETRIC_ALGORITHMS.has(alg)) {
      throw new Error(
        `JWT settings: unsupported algorithm "${alg}" (supported: ${[...HMAC_ALGORITHMS, ...ASYMMETRIC_ALGORITHMS].join(', ')})`,
      );
    }
  }
  if (hmac > 0 && hasJwks) {
    throw new Error('JWT settings: HS* algorithms need a shared secret in publicKey, not a JWKS');
  }
  // A mixed list is what algorithm-confusion attacks feed on; one key is one kind anyway.
  if (hmac > 0 && hmac < algorithms.length) {
    throw new Error('JWT settings: HS* algorithms cannot be mixed with asymmetric ones');
  }
  return algorithms as Algorithm[];
}

function staticKey(material: string, algorithms: readonly string[]): KeyObject {
  if (material.includes('PRIVATE KEY')) {
    // createPublicKey would silently derive the public half, hiding a leaked private key.
    throw new Error('JWT settings: publicKey holds a private key; configure the public key only');
  }
  if (HMAC_ALGORITHMS.has(algorithms[0])) {
    if (material.includes('-----BEGIN')) {
      throw new Error('JWT settings: HS* algorithms need a shared secret, not a PEM key');
    }
    const secret = Buffer.from(material);
    // RFC 7518 §3.2: the key must be at least as long as the hash output.
    const minBytes = Math.max(...algorithms.map((alg) => Number(alg.slice(2)) / 8));
    if (secret.length < minBytes) {
      throw new Error(`JWT settings: HMAC secret must be at least ${minBytes} bytes`);
    }
    return createSecretKey(secret);
  }
  let key: KeyObject;
  try {
    key = createPublicKey(material);
  } catch (err) {
    throw new Error('JWT settings: publicKey is not a valid PEM public key', { cause: err });
  }
  const prefixes = KEY_TYPE_ALGORITHM_PREFIXES[key.asymmetricKeyType ?? ''] ?? [];
  if (!algorithms.some((alg) => prefixes.includes(alg.slice(0, 2)))) {
    throw new Error(
      `JWT settings: a ${key.asymmetricKeyType} key cannot verify any of ${algorithms.join(', ')}`,
    );
  }
  return key;
}

/**
 * Refuses what passport-jwt would either mangle (its bearer parser splits on whitespace) or report
 * vaguely: unsigned tokens and disallowed algorithms are decided here, before any JWKS lookup.
 */
function checkShape(token: string, algorithms: ReadonlySet<string>): void {
  if (typeof token !== 'string' || !COMPACT_JWS.test(token)) {
    throw new JwtVerificationError('malformed', 'The token is not a compact JWS');
  }
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(token.slice(0, token.indexOf('.')), 'base64url').toString());
  } catch {
    throw new JwtVerificationError('malformed', 'The token header is not JSON');
  }
  const alg = (header as { alg?: unknown } | null)?.alg;
  if (typeof alg !== 'string') {
    throw new JwtVerificationError('malformed', 'The token header has no alg');
  }
  if (!algorithms.has(alg)) {
    throw new JwtVerificationError('algorithm', `Algorithm "${alg}" is not allowed`);
  }
  if (token.endsWith('.')) {
    throw new JwtVerificationError('bad-signature', 'The token is not signed');
  }
}

function authenticate(strategy: Strategy, token: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    // The way passport runs a strategy: a per-request object inheriting it, given the outcome callbacks.
    const attempt = Object.create(strategy) as StrategyAttempt;
    attempt.success = (user) => {
      if (user !== null && typeof user === 'object' && !Array.isArray(user)) {
        resolve(user as Record<string, unknown>);
      } else {
        reject(new JwtVerificationError('malformed', 'The token payload is not a JSON object'));
      }
    };
    attempt.fail = (challenge) => reject(classify(challenge));
    attempt.error = (err) => reject(classify(err));
    try {
      attempt.authenticate({ headers: { authorization: `Bearer ${token}` } });
    } catch (err) {
      reject(classify(err));
    }
  });
}

/**
 * Maps what passport-jwt hands to `fail` (jsonwebtoken and jwks-rsa errors alike) to a reason.
 * jsonwebtoken only distinguishes most failures by message, hence the string matching.
 */
function classify(err: unknown): JwtVerificationError {
  // Duck-typed: Node's network errors may come from another realm (Jest's vm), failing instanceof.
  if (err === null || typeof err !== 'object' || typeof (err as Error).message !== 'string') {
    return new JwtVerificationError('malformed', String(err));
  }
  const options = { cause: err };
  const { name, message } = err as Error;
  switch (name) {
    case 'TokenExpiredError':
      return new JwtVerificationError('expired', message, options);
    case 'NotBeforeError':
      return new JwtVerificationError('not-yet-valid', message, options);
    case 'SigningKeyNotFoundError':
      return new JwtVerificationError('bad-signature', message, options);
    case 'JwksError':
    case 'JwksRateLimitError':
      return new JwtVerificationError('keys-unavailable', `JWKS: ${message}`, options);
  }
  // Set by jwks-rsa on transport failures (refused connection, timeout, unparsable body).
  if ((err as { isEndpointUnavailable?: boolean }).isEndpointUnavailable) {
    return new JwtVerificationError('keys-unavailable', `JWKS: ${message}`, options);
  }
  if (message === 'invalid signature' || message === 'jwt signature is required') {
    return new JwtVerificationError('bad-signature', message, options);
  }
  if (
    message === 'invalid algorithm' ||
    message.startsWith('secretOrPublicKey must be') ||
    message.startsWith('"alg" parameter')
  ) {
    return new JwtVerificationError('algorithm', message, options);
  }
  if (message.startsWith('jwt issuer invalid')) {
    return new JwtVerificationError('issuer', message, options);
  }
  if (message.startsWith('jwt audience invalid')) {
    return new JwtVerificationError('audience', message, options);
  }
  if (message === 'secretOrPublicKey is not valid key material') {
    return new JwtVerificationError('keys-unavailable', message, options);
  }
  // 'jwt malformed', 'invalid token', 'invalid exp value', JSON syntax errors, and jwks-rsa's
  // "no key" for a token it cannot decode ('secret or public key must be provided').
  return new JwtVerificationError('malformed', message, options);
}

function claimValue(
  claims: Record<string, unknown>,
  name: string,
  path: string[] | undefined,
): unknown {
  // Namespaced claims ('https://example.com/roles') contain dots but are not paths.
  if (Object.hasOwn(claims, name) || !path) {
    return claims[name];
  }
  let current: unknown = claims;
  for (const segment of path) {
    if (current === null || typeof current !== 'object' || !Object.hasOwn(current, segment)) {
      return undefined;
    }
    current = (current as Record<string, unknown>)[segment];
  }
  return current;
}

function toList(value: unknown): string[] {
  if (typeof value === 'string') {
    return value.split(' ').filter((item) => item !== '');
  }
  if (Array.isArray(value)) {
    return value.filter((item): item is string => typeof item === 'string' && item !== '');
  }
  return [];
}

import { startJwksServer, unsignedToken, type JwksServer } from '@portico/testing/jwks-server';
import {
  JwtVerificationError,
  JwtVerifier,
  type JwtFailure,
  type JwtSettings,
  type VerifiedToken,
} from './jwt-verifier';

const AUDIENCE = 'https://portico.test/mcp';
const HMAC_SECRET = 'a-test-hmac-secret-of-at-least-32-bytes!';

describe(JwtVerifier.name, () => {
  let issuer: JwksServer;
  let sut: JwtVerifier;
  let keyCounter = 0;

  /** A fresh cache key per call, so JWKS caches and rate limits never leak between tests. */
  const newKey = (): string => `tenant-${++keyCounter}`;

  const jwksSettings = (overrides: Partial<JwtSettings> = {}): JwtSettings => ({
    jwksUri: issuer.jwksUri,
    issuer: issuer.url,
    audience: AUDIENCE,
    algorithms: ['RS256', 'ES256'],
    ...overrides,
  });

  const verify = (token: string, settings: JwtSettings = jwksSettings()): Promise<VerifiedToken> =>
    sut.verify(token, newKey(), settings);

  const expectFailure = async (promise: Promise<unknown>, reason: JwtFailure): Promise<void> => {
    const error: unknown = await promise.then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(JwtVerificationError);
    expect((error as JwtVerificationError).reason).toBe(reason);
  };

  const now = (): number => Math.floor(Date.now() / 1000);

  beforeAll(async () => {
    issuer = await startJwksServer();
  });

  afterAll(async () => {
    await issuer.close();
  });

  beforeEach(() => {
    sut = new JwtVerifier();
  });

  describe('valid tokens', () => {
    it('accepts an RS256 token whose key comes from the JWKS', async () => {
      const token = await issuer.sign({ aud: AUDIENCE }, { alg: 'RS256', subject: 'alice' });

      const verified = await verify(token);

      expect(verified.subject).toBe('alice');
      expect(verified.claims.iss).toBe(issuer.url);
      expect(verified.expiresAt).toBeGreaterThan(now());
    });

    it('accepts an ES256 token whose key comes from the JWKS', async () => {
      const token = await issuer.sign({ aud: AUDIENCE }, { alg: 'ES256', subject: 'bob' });

      await expect(verify(token)).resolves.toMatchObject({ subject: 'bob' });
    });

    it('accepts a token verified with a static PEM public key', async () => {
      const settings = jwksSettings({
        jwksUri: undefined,
        publicKey: await issuer.publicKeyPem('ES256'),
        algorithms: ['ES256'],
      });
      const token = await issuer.sign({ aud: AUDIENCE }, { alg: 'ES256' });
      const requestsBefore = issuer.requests;

      await expect(verify(token, settings)).resolves.toMatchObject({ subject: 'user-1' });
      expect(issuer.requests).toBe(requestsBefore);
    });

    it('accepts an HS256 token verified with a shared secret', async () => {
      const settings = jwksSettings({
        jwksUri: undefined,
        publicKey: HMAC_SECRET,
        algorithms: ['HS256'],
      });
      const token = await issuer.hmacSign(HMAC_SECRET, { aud: AUDIENCE });

      await expect(verify(token, settings)).resolves.toMatchObject({ subject: 'user-1' });
      await expectFailure(
        verify(await issuer.hmacSign(`${HMAC_SECRET}-other`, { aud: AUDIENCE }), settings),
        'bad-signature',
      );
    });

    it('accepts a token whose audience array contains one of the configured audiences', async () => {
      const settings = jwksSettings({ audience: ['https://other.test', AUDIENCE] });
      const token = await issuer.sign({}, { audience: ['https://unrelated.test', AUDIENCE] });

      await expect(verify(token, settings)).resolves.toMatchObject({ subject: 'user-1' });
    });
  });

  describe('signature and keys', () => {
    it('refuses a token signed by a foreign key that claims a served kid', async () => {
      const token = await issuer.foreignKeySign({ aud: AUDIENCE });

      await expectFailure(verify(token), 'bad-signature');
    });

    it('refuses a token whose kid is not in the JWKS', async () => {
      const token = await issuer.sign({ aud: AUDIENCE }, { kid: 'unknown-kid' });

      await expectFailure(verify(token), 'bad-signature');
    });

    it('refuses an unsigned (alg none) token', async () => {
      const token = unsignedToken({ iss: issuer.url, aud: AUDIENCE, sub: 'mallory' });

      await expectFailure(verify(token), 'algorithm');
      await expectFailure(
        verify(token, jwksSettings({ jwksUri: undefined, publicKey: await issuer.publicKeyPem() })),
        'algorithm',
      );
    });

    it('refuses a token that claims an allowed algorithm but carries no signature', async () => {
      const signed = await issuer.sign({ aud: AUDIENCE }, { kid: 'not-served' });
      const stripped = signed.slice(0, signed.lastIndexOf('.') + 1);

      await expectFailure(verify(stripped), 'bad-signature');
    });

    it('refuses an HS256 token signed with the RSA public key (algorithm confusion)', async () => {
      const pem = await issuer.publicKeyPem('RS256');
      const token = await issuer.hmacSign(pem, { aud: AUDIENCE }, { kid: issuer.kid('RS256') });

      await expectFailure(
        verify(token, jwksSettings({ jwksUri: undefined, publicKey: pem, algorithms: ['RS256'] })),
        'algorithm',
      );
      await expectFailure(verify(token, jwksSettings({ algorithms: ['RS256'] })), 'algorithm');
    });

    it('refuses a token whose algorithm is not in the allow-list', async () => {
      const token = await issuer.sign({ aud: AUDIENCE }, { alg: 'ES256' });

      await expectFailure(verify(token, jwksSettings({ algorithms: ['RS256'] })), 'algorithm');
    });

    it('reports keys-unavailable when the JWKS endpoint fails', async () => {
      const token = await issuer.sign({ aud: AUDIENCE });
      issuer.setAvailable(false);
      try {
        await expectFailure(verify(token), 'keys-unavailable');
      } finally {
        issuer.setAvailable(true);
      }
      await expect(verify(token)).resolves.toMatchObject({ subject: 'user-1' });
    });

    it('reports keys-unavailable when the JWKS endpoint is unreachable', async () => {
      const gone = await startJwksServer();
      const token = await gone.sign({ aud: AUDIENCE });
      const settings = { ...jwksSettings(), jwksUri: gone.jwksUri, issuer: gone.url };
      await gone.close();

      await expectFailure(verify(token, settings), 'keys-unavailable');
    });
  });

  describe('claims', () => {
    it('refuses a token from another issuer', async () => {
      const token = await issuer.sign({ aud: AUDIENCE }, { issuer: 'https://evil.test' });

      await expectFailure(verify(token), 'issuer');
    });

    it('refuses a token for another audience', async () => {
      const token = await issuer.sign({}, { audience: 'https://other-resource.test' });

      await expectFailure(verify(token), 'audience');
    });

    it('refuses a token without an audience', async () => {
      const token = await issuer.sign({});

      await expectFailure(verify(token), 'audience');
    });

    it('refuses an expired token', async () => {
      const token = await issuer.sign({ aud: AUDIENCE }, { expiresIn: -120 });

      await expectFailure(verify(token), 'expired');
    });

    it('refuses a token that is not valid yet', async () => {
      const token = await issuer.sign({ aud: AUDIENCE }, { notBefore: 120 });

      await expectFailure(verify(token), 'not-yet-valid');
    });

    it('tolerates clock skew within clockToleranceSec only', async () => {
      const expired = await issuer.sign({ aud: AUDIENCE }, { expiresIn: -10 });
      const early = await issuer.sign({ aud: AUDIENCE }, { notBefore: 10 });

      await expect(verify(expired)).resolves.toMatchObject({ subject: 'user-1' });
      await expect(verify(early)).resolves.toMatchObject({ subject: 'user-1' });
      await expectFailure(verify(expired, jwksSettings({ clockToleranceSec: 0 })), 'expired');
      await expectFailure(verify(early, jwksSettings({ clockToleranceSec: 0 })), 'not-yet-valid');
    });

    it('refuses a token without a subject', async () => {
      const token = await issuer.sign({ aud: AUDIENCE }, { subject: null });

      await expectFailure(verify(token), 'no-subject');
    });

    it('reads roles from the roles array and scopes from the scope string', async () => {
      const token = await issuer.sign({
        aud: AUDIENCE,
        roles: ['admin', 'viewer', 42],
        scope: 'tools:call  tools:list',
      });

      const verified = await verify(token);

      expect(verified.roles).toEqual(['admin', 'viewer']);
      expect(verified.scopes).toEqual(['tools:call', 'tools:list']);
    });

    it('reads roles from a dotted path and scopes from an scp array', async () => {
      const token = await issuer.sign({
        aud: AUDIENCE,
        roles: ['ignored'],
        realm_access: { roles: ['operator'] },
        scp: ['resources:read'],
      });

      const verified = await verify(token, jwksSettings({ rolesClaim: 'realm_access.roles' }));

      expect(verified.roles).toEqual(['operator']);
      expect(verified.scopes).toEqual(['resources:read']);
    });

    it('prefers a namespaced claim whose name contains dots over a path', async () => {
      const token = await issuer.sign({
        aud: AUDIENCE,
        'https://portico.test/roles': 'auditor reader',
        https: { roles: ['wrong'] },
      });

      const verified = await verify(
        token,
        jwksSettings({ rolesClaim: 'https://portico.test/roles' }),
      );

      expect(verified.roles).toEqual(['auditor', 'reader']);
      expect(verified.scopes).toEqual([]);
    });

    it('reads scopes from a configured claim', async () => {
      const token = await issuer.sign({ aud: AUDIENCE, permissions: ['a', 'b'], scope: 'c' });

      const verified = await verify(token, jwksSettings({ scopesClaim: 'permissions' }));

      expect(verified.scopes).toEqual(['a', 'b']);
    });
  });

  describe('malformed tokens', () => {
    it.each([
      ['an empty string', ''],
      ['a random word', 'garbage'],
      ['two segments', 'abc.def'],
      ['undecodable segments', 'a.b.c'],
      ['whitespace inside', 'eyJhbGciOiJSUzI1NiJ9.e30 .sig'],
      ['a header that is not an object', `${Buffer.from('"x"').toString('base64url')}.e30.c2ln`],
      [
        'a payload that is not JSON',
        `${Buffer.from('{"alg":"RS256","typ":"JWT"}').toString('base64url')}.bm90LWpzb24.c2ln`,
      ],
    ])('refuses %s', async (_label, token) => {
      await expectFailure(verify(token), 'malformed');
    });
  });

  describe('caching and rotation', () => {
    it('fetches the JWKS once per cache key, even for concurrent first calls', async () => {
      const key = newKey();
      const settings = jwksSettings();
      const tokens = await Promise.all(
        ['RS256', 'RS256', 'ES256'].map((alg) =>
          issuer.sign({ aud: AUDIENCE }, { alg: alg as 'RS256' | 'ES256' }),
        ),
      );
      const before = issuer.requests;

      await Promise.all(tokens.slice(0, 2).map((token) => sut.verify(token, key, settings)));
      expect(issuer.requests).toBe(before + 1);
      await sut.verify(tokens[0], key, settings);
      expect(issuer.requests).toBe(before + 1);
      // Keys are cached per kid, so the ES256 key costs one more fetch.
      await sut.verify(tokens[2], key, settings);
      await sut.verify(tokens[2], key, settings);
      expect(issuer.requests).toBe(before + 2);
    });

    it('refetches the JWKS once when a rotated key appears', async () => {
      const key = newKey();
      const settings = jwksSettings();
      await sut.verify(await issuer.sign({ aud: AUDIENCE }), key, settings);
      const before = issuer.requests;

      await issuer.rotate();
      const rotated = await issuer.sign({ aud: AUDIENCE }, { subject: 'after-rotation' });

      await expect(sut.verify(rotated, key, settings)).resolves.toMatchObject({
        subject: 'after-rotation',
      });
      await sut.verify(rotated, key, settings);
      expect(issuer.requests).toBe(before + 1);
    });

    it('applies new settings only after forget()', async () => {
      const key = newKey();
      const token = await issuer.sign({ aud: AUDIENCE });
      const moved = jwksSettings({ audience: 'https://moved.test' });

      await sut.verify(token, key, jwksSettings());
      // Same key: the cached strategy (old audience) is still used, as documented.
      await expect(sut.verify(token, key, moved)).resolves.toMatchObject({ subject: 'user-1' });
      sut.forget(key);

      await expectFailure(sut.verify(token, key, moved), 'audience');
    });
  });

  describe('settings validation', () => {
    const validToken = (): Promise<string> => issuer.sign({ aud: AUDIENCE });

    it.each<[string, Partial<JwtSettings>, RegExp]>([
      ['no key source', { jwksUri: undefined }, /exactly one of jwksUri and publicKey/],
      ['two key sources', { publicKey: HMAC_SECRET }, /exactly one of jwksUri and publicKey/],
      ['an invalid jwksUri', { jwksUri: 'not a url' }, /not a valid URL/],
      ['a non-http jwksUri', { jwksUri: 'file:///etc/jwks.json' }, /http\(s\) URL/],
      ['no algorithms', { algorithms: [] }, /non-empty algorithms/],
      ['alg none', { algorithms: ['RS256', 'none'] }, /"none" is never allowed/],
      ['an unknown algorithm', { algorithms: ['EdDSA'] }, /unsupported algorithm "EdDSA"/],
      ['HS256 with a JWKS', { algorithms: ['HS256'] }, /HS\* algorithms need a shared secret/],
      ['an empty issuer', { issuer: '' }, /need an issuer/],
      ['an empty audience', { audience: '' }, /non-empty audience/],
      ['an empty audience list', { audience: [] }, /non-empty audience/],
      ['a negative clock tolerance', { clockToleranceSec: -1 }, /clockToleranceSec/],
      ['an empty path segment', { rolesClaim: 'realm_access..roles' }, /rolesClaim/],
    ])('rejects %s', async (_label, overrides, message) => {
      await expect(
        sut.verify(await validToken(), newKey(), jwksSettings(overrides)),
      ).rejects.toThrow(message);
    });

    it.each<[string, Partial<JwtSettings>, RegExp]>([
      ['HS and RS mixed', { algorithms: ['HS256', 'RS256'] }, /cannot be mixed/],
      ['a short HMAC secret', { algorithms: ['HS256'], publicKey: 'short' }, /at least 32 bytes/],
      ['a PEM key for HS256', { algorithms: ['HS256'], publicKey: 'PEM' }, /not a PEM key/],
      ['a key that is not PEM', { publicKey: 'not-a-key' }, /not a valid PEM public key/],
      ['a private key', { publicKey: 'PRIVATE' }, /private key/],
      ['a key of the wrong type', { publicKey: 'PEM', algorithms: ['ES256'] }, /rsa key/],
    ])('rejects a static key with %s', async (_label, overrides, message) => {
      const pem = await issuer.publicKeyPem('RS256');
      const publicKey =
        overrides.publicKey === 'PEM'
          ? pem
          : overrides.publicKey === 'PRIVATE'
            ? '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----'
            : (overrides.publicKey ?? pem);
      const settings = jwksSettings({ ...overrides, jwksUri: undefined, publicKey });

      await expect(sut.verify(await validToken(), newKey(), settings)).rejects.toThrow(message);
    });

    it('does not cache settings that failed validation', async () => {
      const key = newKey();
      const token = await validToken();

      await expect(sut.verify(token, key, jwksSettings({ algorithms: [] }))).rejects.toThrow();
      await expect(sut.verify(token, key, jwksSettings())).resolves.toMatchObject({
        subject: 'user-1',
      });
    });
  });
});

import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export interface MasterKey {
  readonly id: string;
  readonly key: Buffer;
}

export class CredentialCipherError extends Error {}

const VERSION = 'v1';

/**
 * AES-256-GCM for secrets at rest (backend credentials). The sealed form names its key id, so
 * several keys can coexist during a rotation; the additional data binds a ciphertext to its
 * row (a sealed value copied to another tenant's backend does not open).
 */
export class CredentialCipher {
  private readonly keys: Map<string, Buffer>;
  private readonly active: MasterKey;

  constructor(keys: readonly MasterKey[]) {
    if (keys.length === 0) {
      throw new CredentialCipherError('At least one master key is required');
    }
    for (const { id, key } of keys) {
      if (key.length !== 32) {
        throw new CredentialCipherError(`Master key "${id}" must be 32 bytes`);
      }
    }
    this.active = keys[0]!;
    this.keys = new Map(keys.map((k) => [k.id, k.key]));
  }

  get activeKeyId(): string {
    return this.active.id;
  }

  seal(plaintext: string, binding: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.active.key, iv);
    cipher.setAAD(Buffer.from(binding, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [
      VERSION,
      this.active.id,
      iv.toString('base64url'),
      cipher.getAuthTag().toString('base64url'),
      body.toString('base64url'),
    ].join('.');
  }

  open(sealed: string, binding: string): string {
    const [version, keyId, iv, tag, body] = sealed.split('.');
    if (version !== VERSION || !keyId || !iv || !tag || body === undefined) {
      throw new CredentialCipherError('Malformed sealed credential');
    }
    const key = this.keys.get(keyId);
    if (!key) {
      throw new CredentialCipherError(`Sealed with unknown master key "${keyId}"`);
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
      decipher.setAAD(Buffer.from(binding, 'utf8'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([
        decipher.update(Buffer.from(body, 'base64url')),
        decipher.final(),
      ]).toString('utf8');
    } catch {
      throw new CredentialCipherError('Sealed credential failed authentication');
    }
  }

  /** The key id a sealed value names, without opening it. */
  static keyIdOf(sealed: string): string | undefined {
    return sealed.split('.')[1];
  }
}

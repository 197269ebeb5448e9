/*
 * Sealed `requestState` for 2026-07-28 input_required round trips. The state travels through
 * the client, so it is encrypted and authenticated (AES-256-GCM), bound to the principal, the
 * original request and an expiry, and usable once.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { McpError } from './jsonrpc';

export interface SealedStatePayload {
  /** Principal the state was issued to ('' for anonymous). */
  p: string;
  /** Method and target (tool name, prompt name or URI). */
  m: string;
  t: string;
  /** Digest of the original arguments. */
  a: string;
  /** Expiry, epoch milliseconds. */
  e: number;
  /** Single-use nonce. */
  n: string;
  /** Answers gathered in earlier rounds, in the order the handler asked. */
  r: { k: string; v: unknown }[];
  /** Keys asked in the round that issued this state. */
  q: string[];
  /** What the handler carried into the retry (carryIntoRetry), if anything. */
  h?: string;
}

/** Remembers used nonces until their state expires (memory here; Redis in a cluster). */
export interface NonceStore {
  /** Returns false when the nonce was already used. */
  consume(nonce: string, expiresAt: number): boolean | Promise<boolean>;
}

export class MemoryNonceStore implements NonceStore {
  private readonly used = new Map<string, number>();
  private lastSweep = 0;

  consume(nonce: string, expiresAt: number): boolean {
    const now = Date.now();
    if (now - this.lastSweep > 10_000) {
      this.lastSweep = now;
      for (const [key, exp] of this.used) {
        if (exp <= now) {
          this.used.delete(key);
        }
      }
    }
    if (this.used.has(nonce)) {
      return false;
    }
    this.used.set(nonce, expiresAt);
    return true;
  }
}

const VERSION = 1;

export class RequestStateSealer {
  private readonly key: Buffer;

  constructor(secret: Buffer | string) {
    const material = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret;
    if (material.length < 16) {
      throw new Error('requestState secret must be at least 16 bytes');
    }
    this.key = Buffer.from(hkdfSync('sha256', material, 'portico', 'mcp-request-state-v1', 32));
  }

  seal(payload: SealedStatePayload): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([cipher.update(JSON.stringify(payload), 'utf8'), cipher.final()]);
    return Buffer.concat([Buffer.from([VERSION]), iv, cipher.getAuthTag(), body]).toString(
      'base64url',
    );
  }

  /** Opens a state or throws -32602; never reveals why beyond "invalid" or "expired". */
  open(token: unknown): SealedStatePayload {
    if (typeof token !== 'string' || token.length > 1_000_000) {
      throw invalidState();
    }
    const raw = Buffer.from(token, 'base64url');
    if (raw.length < 1 + 12 + 16 + 2 || raw[0] !== VERSION) {
      throw invalidState();
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(1, 13));
      decipher.setAuthTag(raw.subarray(13, 29));
      const plain = Buffer.concat([decipher.update(raw.subarray(29)), decipher.final()]);
      return JSON.parse(plain.toString('utf8')) as SealedStatePayload;
    } catch {
      throw invalidState();
    }
  }
}

function invalidState(): McpError {
  return McpError.invalidParams('Invalid requestState');
}

/** Order-independent digest of a JSON value, used to bind a state to the original request. */
export function digestJson(value: unknown): string {
  return createHash('sha256').update(stableStringify(value)).digest('base64url').slice(0, 22);
}

export function stableStringify(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    return JSON.stringify(value) ?? 'null';
  }
  if (Array.isArray(value)) {
    return `[${value.map(stableStringify).join(',')}]`;
  }
  const keys = Object.keys(value).sort();
  return `{${keys
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${stableStringify((value as Record<string, unknown>)[k])}`)
    .join(',')}}`;
}

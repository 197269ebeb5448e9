/*
 * Opaque cursors for list results. A cursor names the list it belongs to and an offset; it is
 * authenticated so a client cannot forge one that walks another list.
 */
import { createHmac } from 'node:crypto';
import { McpError } from './jsonrpc';

export class Paginator {
  constructor(
    private readonly pageSize: number,
    private readonly secret: Buffer,
  ) {}

  page<T>(
    items: readonly T[],
    list: string,
    cursor: unknown,
  ): { items: readonly T[]; nextCursor?: string } {
    const offset = cursor === undefined ? 0 : this.decode(cursor, list);
    if (offset > items.length) {
      throw McpError.invalidParams('Invalid cursor');
    }
    const end = offset + this.pageSize;
    if (offset === 0 && end >= items.length) {
      return { items };
    }
    const slice = items.slice(offset, end);
    return end < items.length
      ? { items: slice, nextCursor: this.encode(list, end) }
      : { items: slice };
  }

  private encode(list: string, offset: number): string {
    const body = `${list}:${offset}`;
    return `${Buffer.from(body).toString('base64url')}.${this.mac(body)}`;
  }

  private decode(cursor: unknown, list: string): number {
    if (typeof cursor !== 'string' || cursor.length > 512) {
      throw McpError.invalidParams('Invalid cursor');
    }
    const [b64, mac] = cursor.split('.');
    if (!b64 || !mac) {
      throw McpError.invalidParams('Invalid cursor');
    }
    const body = Buffer.from(b64, 'base64url').toString('utf8');
    if (this.mac(body) !== mac) {
      throw McpError.invalidParams('Invalid cursor');
    }
    const sep = body.lastIndexOf(':');
    const offset = Number(body.slice(sep + 1));
    if (body.slice(0, sep) !== list || !Number.isSafeInteger(offset) || offset < 0) {
      throw McpError.invalidParams('Invalid cursor');
    }
    return offset;
  }

  private mac(body: string): string {
    return createHmac('sha256', this.secret).update(body).digest('base64url').slice(0, 16);
  }
}

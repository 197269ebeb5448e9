import type { ValueTransformer } from 'typeorm';

/** Instants stored as epoch milliseconds: identical on SQLite and PostgreSQL, no zone games. */
export function epochMs(): ValueTransformer {
  return {
    to: (value: Date | null | undefined): number | null | undefined =>
      value instanceof Date ? value.getTime() : value,
    from: (value: string | number | null): Date | null =>
      value === null || value === undefined ? null : new Date(Number(value)),
  };
}

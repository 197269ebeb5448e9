/**
 * The properties a client actually sent. DTO class fields exist (as undefined) even when absent
 * from the body, and Object.assign-ing them onto an entity would blank its columns.
 */
export function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

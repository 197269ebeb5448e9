import { TimeOrderedIds } from './audit-id';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The Unix milliseconds of a UUIDv7 (its first 48 bits). */
const millisOf = (id: string) => parseInt(id.slice(0, 8) + id.slice(9, 13), 16);

describe(TimeOrderedIds.name, () => {
  let sut: TimeOrderedIds;

  beforeEach(() => {
    sut = new TimeOrderedIds();
  });

  it('makes RFC 9562 version 7 UUIDs carrying the given time', () => {
    const at = Date.UTC(2026, 10, 25, 1, 2, 3, 456);

    const id = sut.next(at);

    expect(id).toMatch(UUID_V7);
    expect(millisOf(id)).toBe(at);
  });

  it('sorts by time as a string, across hex digit boundaries', () => {
    const times = [0, 1, 15, 16, 255, 256, 0xffffffff, 0x100000000, Date.now(), Date.now() + 1];

    const ids = times.map((t) => sut.next(t));

    ids.forEach((id, i) => expect(millisOf(id)).toBe(times[i]));
    expect([...ids].sort()).toEqual(ids);
  });

  it('keeps increasing within a millisecond, past the counter and when the clock steps back', () => {
    const at = Date.now();

    const ids = [
      ...Array.from({ length: 10_000 }, () => sut.next(at)),
      ...Array.from({ length: 10 }, () => sut.next(at - 1000)),
    ];

    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
    for (const id of ids) {
      expect(id).toMatch(UUID_V7);
    }
    expect(millisOf(ids[0])).toBe(at);
    // At most 4096 ids per millisecond: the rest borrow the following milliseconds.
    expect(millisOf(ids[ids.length - 1])).toBeGreaterThan(at);
  });
});

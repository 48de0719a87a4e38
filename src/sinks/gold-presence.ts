/**
 * Which customers have a bucket on each of gold's newest days, as a hashed bitmap per day in
 * shared memory: the gold writer sets a customer's bit before it commits the bucket, and a lookup
 * in the same process seeks only the days whose bit is set instead of every day of its window.
 *
 * Gold keyed by (day, customer) makes one customer's 30-day window one B-tree seek per day,
 * however few of those days the customer has records on; with this a lookup of now seeks the
 * summary and the days that may hold the customer (about 2 µs each) and skips the rest.
 *
 * It is a filter, never the data: a bit set wrongly (two customers hashing alike, a commit that
 * rolled back) costs one seek that finds nothing, and a day the bitmaps do not cover (older than
 * the newest {@link PRESENCE_DAYS}, before the writer built them, in another process) is sought as
 * before. What must hold is that every bucket a reader's snapshot can see has its bit set by the
 * time the reader looks, which is why the writer marks before its COMMIT and a reader looks after
 * its read transaction has started (`FeatureReader.lookup`).
 *
 * Layout of the buffer (Int32 words): [generation, newest day, oldest day built], then D = {@link PRESENCE_DAYS}
 * bitmaps of {@link PRESENCE_BITS} bits; day d is slot d mod D, for the D days up to the newest
 * one. The generation is odd while the layout is stable and even while the writer moves the
 * newest day (clearing the slots it reuses) or rebuilds; a reader that sees it even, or changed
 * between before and after it read the bits, seeks every day. Bits are only ever added between
 * those moves, and a bit a reader misses that way belongs to a commit after its snapshot.
 */
import type { Database } from "better-sqlite3";

/** Days covered: the window of the built-in features (31 days with its first partial one) and up to 32 days not yet folded. */
export const PRESENCE_DAYS = 64;
/** Bits per day: 2^20 (128 KiB). At 100k customers with records on one day, ~9.5% of the others share a bit. */
const BIT_INDEX_BITS = 20;
export const PRESENCE_BITS = 1 << BIT_INDEX_BITS;
const WORDS = PRESENCE_BITS >>> 5;
const HEADER = 3;
const NONE = -0x80000000;
const GENERATION = 0;
const NEWEST = 1;
/** The oldest day the bitmaps hold completely (a rebuild may stop short of the newest 64). */
const COVERED = 2;
/** Buckets a rebuild reads at most (plus the rest of the day it is on): about a second. */
export const PRESENCE_REBUILD_BUCKETS = 1_000_000;

/** The bit of a customer id in a day's bitmap: FNV-1a over the UTF-16 code units, mixed, its top bits (below {@link PRESENCE_BITS}). */
export function presenceBit(customerId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < customerId.length; i++) h = Math.imul(h ^ customerId.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> (32 - BIT_INDEX_BITS);
}

const slotOf = (day: number) => ((day % PRESENCE_DAYS) + PRESENCE_DAYS) % PRESENCE_DAYS;

/**
 * Days a lookup may skip, among the {@link PRESENCE_DAYS} days from `base`: bit i of `lo` (day
 * base + i) or of `hi` (day base + 32 + i) is 0 when that day holds no bucket of the customer.
 * Days before `base` and after those 64 are sought.
 */
export interface PresenceMask {
  readonly base: number;
  readonly lo: number;
  readonly hi: number;
}

/** Every day may hold a bucket. */
const ALL = -1;

export class GoldPresence {
  readonly buffer: SharedArrayBuffer;
  private readonly header: Int32Array;
  private readonly bits: Int32Array;

  /** @param buffer another thread's presence (a reader's view of the writer's bitmaps); a new, empty one when absent. */
  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer((HEADER + PRESENCE_DAYS * WORDS) * 4);
    this.header = new Int32Array(this.buffer, 0, HEADER);
    this.bits = new Int32Array(this.buffer, HEADER * 4, PRESENCE_DAYS * WORDS);
  }

  /** Readers seek every day until the bitmaps are built again (a writer is opening, or has closed). */
  retire(): void {
    // Compare-and-swap: two threads retiring at once (a writer closing, the topology after it) make it even once.
    for (;;) {
      const generation = Atomics.load(this.header, GENERATION);
      if ((generation & 1) === 0 || Atomics.compareExchange(this.header, GENERATION, generation, generation + 1) === generation) return;
    }
  }

  /**
   * Builds the bitmaps of gold's newest {@link PRESENCE_DAYS} days from its buckets, with the
   * writer's connection and before the writer's first commit: every bucket written later is
   * marked. It reads at most about `budget` buckets (~1 µs each), newest day first.
   */
  rebuild(db: Database, budget = PRESENCE_REBUILD_BUCKETS): void {
    this.retire();
    const newest = db.prepare("SELECT max(d) FROM (SELECT max(day) AS d FROM customer_daily UNION ALL SELECT max(day) FROM feature_daily)").pluck().get() as number | null;
    this.bits.fill(0);
    Atomics.store(this.header, NEWEST, newest ?? NONE);
    let covered = newest === null ? NONE : newest + 1;
    if (newest !== null) {
      // Newest day first, whole days only: the days a budget leaves out are sought until they age out.
      const ids = db.prepare("SELECT customer_id FROM customer_daily WHERE day = @day UNION ALL SELECT customer_id FROM feature_daily WHERE day = @day").pluck();
      let read = 0;
      for (let day = newest; day > newest - PRESENCE_DAYS && read < budget; day--) {
        for (const id of ids.iterate({ day }) as Iterable<string>) {
          this.set(day, id);
          read++;
        }
        covered = day;
      }
    }
    Atomics.store(this.header, COVERED, covered);
    Atomics.add(this.header, GENERATION, 1);
  }

  /** Marks a bucket of `customerId` on `day`; call it before the transaction that writes the bucket commits. */
  mark(day: number, customerId: string): void {
    const newest = this.header[NEWEST]!;
    if (newest === NONE || day > newest) this.advance(newest, day);
    else if (day <= newest - PRESENCE_DAYS) return; // Older than the bitmaps: readers seek it.
    this.set(day, customerId);
  }

  /**
   * The days on which `customerId` may have a bucket, among the {@link PRESENCE_DAYS} days up to
   * `dayT` or, when gold's newest day is before `dayT`, up to that day (none after it can hold
   * one). Call it once the read transaction that reads the buckets has its snapshot.
   */
  mask(customerId: string, dayT: number): PresenceMask {
    const generation = Atomics.load(this.header, GENERATION);
    if ((generation & 1) === 0) return { base: dayT - PRESENCE_DAYS + 1, lo: ALL, hi: ALL };
    const newest = Atomics.load(this.header, NEWEST);
    // Anchored at the newest day when T is later (an idle daemon, a lookup of now before today's first record).
    const base = (newest === NONE ? dayT : Math.min(dayT, newest)) - PRESENCE_DAYS + 1;
    const bit = presenceBit(customerId);
    const flag = 1 << (bit & 31);
    const bits = this.bits;
    const end = bits.length;
    // Day base + i: after the newest day nothing this snapshot holds, up to base + old anything (before the bitmaps).
    const last = Math.min(PRESENCE_DAYS - 1, newest - base);
    const old = Math.max(newest - PRESENCE_DAYS, Atomics.load(this.header, COVERED) - 1) - base;
    let at = slotOf(base) * WORDS + (bit >>> 5);
    let lo = 0;
    let hi = 0;
    for (let i = 0; i <= last; i++) {
      // Plain reads: an Atomics.load each costs ~40 ns here, and the read-modify-write below orders them.
      if (i <= old || (bits[at]! & flag) !== 0) {
        if (i < 32) lo |= 1 << i;
        else hi |= 1 << (i - 32);
      }
      at += WORDS;
      if (at >= end) at -= end;
    }
    // An RMW that writes nothing: unlike a load, no read above can be ordered after it. The newest
    // day moved (slots cleared) or the bitmaps were rebuilt meanwhile: seek every day.
    return Atomics.or(this.header, GENERATION, 0) === generation ? { base, lo, hi } : { base, lo: ALL, hi: ALL };
  }

  private set(day: number, customerId: string): void {
    const bit = presenceBit(customerId);
    Atomics.or(this.bits, slotOf(day) * WORDS + (bit >>> 5), 1 << (bit & 31));
  }

  /** Moves the newest day to `day`: the slots of the days after the old newest one are cleared for them. */
  private advance(newest: number, day: number): void {
    const first = newest === NONE ? day - PRESENCE_DAYS + 1 : Math.max(newest + 1, day - PRESENCE_DAYS + 1);
    const stable = (Atomics.load(this.header, GENERATION) & 1) === 1;
    if (stable) Atomics.add(this.header, GENERATION, 1);
    for (let d = first; d <= day; d++) this.bits.fill(0, slotOf(d) * WORDS, (slotOf(d) + 1) * WORDS);
    Atomics.store(this.header, NEWEST, day);
    if (stable) Atomics.add(this.header, GENERATION, 1);
  }
}

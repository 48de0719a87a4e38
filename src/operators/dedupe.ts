import { map, type OperatorFunction } from "rxjs";
import { LRUCache } from "lru-cache";
import type { Staged } from "../types.js";

export interface DedupeOptions {
  /** Event-time span covered: an id is remembered until the watermark passes its event time by this much. */
  readonly windowMs: number;
  /** Most ids remembered at once; the least recently seen go first. */
  readonly maxEntries: number;
}

/**
 * The in-memory dedupe window: remembers the ids of valid event records, bounded by event time and
 * by entry count. It is only a fast path. A miss says nothing, so the silver table's primary key
 * decides exactly whether a record is new; a hit is always a real duplicate.
 */
export class DedupeWindow {
  /** Highest event time seen so far (epoch ms). */
  private watermarkMs = Number.NEGATIVE_INFINITY;
  private readonly cache: LRUCache<string, true>;

  constructor(private readonly options: DedupeOptions) {
    this.cache = new LRUCache<string, true>({
      max: options.maxEntries,
      ttl: options.windowMs,
      ttlResolution: 0,
      ttlAutopurge: false,
      updateAgeOnGet: false,
      // Entries age in event time, not wall-clock time: "now" is the watermark.
      perf: { now: () => this.watermarkMs },
    });
  }

  /**
   * Returns true when `entity`/`id` was already seen inside the window; otherwise remembers it.
   * Records older than the window are not remembered (the silver key handles them).
   */
  check(entity: string, id: string, eventAt: number): boolean {
    if (eventAt > this.watermarkMs) this.watermarkMs = eventAt;
    const key = entity + "\u0000" + id;
    // get() (not has()) so that a hit also counts as recent use for the LRU order.
    if (this.cache.get(key) !== undefined) return true;
    // lru-cache reads a start of 0 as "no TTL"; the epoch itself is nudged by a millisecond.
    if (eventAt + this.options.windowMs > this.watermarkMs) this.cache.set(key, true, { start: eventAt === 0 ? -1 : eventAt });
    return false;
  }

  /** Number of ids currently held (expired ones may linger until touched or evicted). */
  get size(): number {
    return this.cache.size;
  }

  /** Highest event time seen, or null before the first record. */
  get watermark(): number | null {
    return Number.isFinite(this.watermarkMs) ? this.watermarkMs : null;
  }
}

/**
 * Marks a valid event record as a duplicate when the window has seen its id. Customers are
 * profiles, not events, and pass through untouched: the latest profile wins.
 */
export function dedupeRecord(staged: Staged, window: DedupeWindow): Staged {
  const o = staged.outcome;
  if (o.status !== "valid" || o.record.entity === "customers") return staged;
  if (!window.check(o.record.entity, o.record.id, o.record.eventAt)) return staged;
  return { msg: staged.msg, entity: staged.entity, outcome: { status: "duplicate", record: o.record } };
}

/** Pipeable form of {@link dedupeRecord}. */
export function dedupe(window: DedupeWindow): OperatorFunction<Staged, Staged> {
  return map((staged) => dedupeRecord(staged, window));
}

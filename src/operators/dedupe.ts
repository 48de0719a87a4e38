import type { OperatorFunction } from "rxjs";
import { toOperator, type Stage } from "./stage.js";
import type { Staged } from "../types.js";

export interface DedupeOptions {
  /** Event-time span covered: an id is remembered until the watermark passes its event time by this much. */
  readonly windowMs: number;
  /** Most ids remembered at once; the oldest go first. Memory is about 24 bytes per id. */
  readonly maxEntries: number;
}

/** Ids held before the first growth; the window doubles up to `maxEntries` as it fills. */
const INITIAL_CAPACITY = 1024;

/**
 * The in-memory dedupe window: remembers the ids of valid event records, bounded by event time and
 * by entry count. It is only a fast path: silver decides exactly whether a record is new, both for
 * a miss and for a hit, by its table's primary key and, once retention has deleted old records,
 * by the ids it kept of them (`pruned_ids`), so a copy of a deleted record is still a duplicate.
 *
 * Each id is held as a 64-bit hash with its event time in typed arrays (about 24 bytes per id,
 * with no per-entry garbage), in insertion order, with an open-addressing index over the hashes.
 * Two different ids share a hash with a probability of about n² / 2⁶⁵ (3·10⁻⁸ at a million ids);
 * silver's key check then lets the record through, so a collision never drops one.
 */
export class DedupeWindow {
  /** Highest event time seen so far (epoch ms). */
  private watermarkMs = Number.NEGATIVE_INFINITY;
  private capacity = 0;
  private hashHi = new Uint32Array(0);
  private hashLo = new Uint32Array(0);
  private eventAt = new Float64Array(0);
  /** Ring of entries in insertion order: `head` is the oldest, `count` are held. */
  private head = 0;
  private count = 0;
  /** Open addressing, linear probing: slot + 1 of the ring entry, 0 when empty. */
  private index = new Int32Array(0);
  private mask = 0;

  /** @param watermark where the watermark starts (another window's, carried over), or null */
  constructor(
    private readonly options: DedupeOptions,
    watermark: number | null = null,
  ) {
    if (watermark !== null) this.watermarkMs = watermark;
    this.resize(Math.min(INITIAL_CAPACITY, options.maxEntries));
  }

  /**
   * Returns true when `entity`/`id` was already seen inside the window; otherwise remembers it.
   * Records older than the window are not remembered (silver's key and kept ids handle them).
   */
  check(entity: string, id: string, eventAt: number): boolean {
    if (eventAt > this.watermarkMs) this.watermarkMs = eventAt;
    const inWindow = this.watermarkMs - eventAt <= this.options.windowMs;
    // Two 32-bit hashes (FNV-1a and a multiplicative mix) over entity, a separator, then id.
    let hi = 0x811c9dc5;
    let lo = 0x9747b28c;
    for (let i = 0; i < entity.length; i++) {
      const c = entity.charCodeAt(i);
      hi = Math.imul(hi ^ c, 0x01000193);
      lo = Math.imul(lo ^ c, 0x5bd1e995) ^ (lo >>> 15);
    }
    hi = Math.imul(hi ^ 0xffff, 0x01000193);
    lo = Math.imul(lo ^ 0xffff, 0x5bd1e995) ^ (lo >>> 15);
    for (let i = 0; i < id.length; i++) {
      const c = id.charCodeAt(i);
      hi = Math.imul(hi ^ c, 0x01000193);
      lo = Math.imul(lo ^ c, 0x5bd1e995) ^ (lo >>> 15);
    }
    hi >>>= 0;
    lo = (lo ^ (lo >>> 13)) >>> 0;
    const slot = this.find(hi, lo);
    if (slot >= 0) {
      const seenAt = this.eventAt[slot]!;
      if (this.watermarkMs - seenAt <= this.options.windowMs) return true;
      // The copy held has aged out of the window: this one counts as new, and takes its place.
      if (inWindow) this.eventAt[slot] = eventAt;
      return false;
    }
    if (inWindow) this.insert(hi, lo, eventAt);
    return false;
  }

  /** Number of ids currently held (expired ones may linger until evicted). */
  get size(): number {
    return this.count;
  }

  /** Highest event time seen, or null before the first record. */
  get watermark(): number | null {
    return Number.isFinite(this.watermarkMs) ? this.watermarkMs : null;
  }

  private find(hi: number, lo: number): number {
    const index = this.index;
    let pos = (hi ^ lo) & this.mask;
    for (;;) {
      const ref = index[pos]!;
      if (ref === 0) return -1;
      const slot = ref - 1;
      if (this.hashHi[slot] === hi && this.hashLo[slot] === lo) return slot;
      pos = (pos + 1) & this.mask;
    }
  }

  private insert(hi: number, lo: number, eventAt: number): void {
    if (this.count === this.capacity) {
      if (this.capacity < this.options.maxEntries) this.resize(Math.min(this.capacity * 2, this.options.maxEntries));
      else this.evictOldest();
    }
    const slot = (this.head + this.count) % this.capacity;
    this.hashHi[slot] = hi;
    this.hashLo[slot] = lo;
    this.eventAt[slot] = eventAt;
    this.count++;
    let pos = (hi ^ lo) & this.mask;
    while (this.index[pos] !== 0) pos = (pos + 1) & this.mask;
    this.index[pos] = slot + 1;
  }

  /** Drops the oldest entry, closing the gap in its probe run (backward-shift deletion). */
  private evictOldest(): void {
    const slot = this.head;
    const mask = this.mask;
    const index = this.index;
    let pos = (this.hashHi[slot]! ^ this.hashLo[slot]!) & mask;
    while (index[pos] !== slot + 1) pos = (pos + 1) & mask;
    let hole = pos;
    let next = (hole + 1) & mask;
    while (index[next] !== 0) {
      const s = index[next]! - 1;
      const home = (this.hashHi[s]! ^ this.hashLo[s]!) & mask;
      // Move the entry back into the hole unless its home lies cyclically in (hole, next].
      if (((next - home) & mask) >= ((next - hole) & mask)) {
        index[hole] = index[next]!;
        hole = next;
      }
      next = (next + 1) & mask;
    }
    index[hole] = 0;
    this.head = (this.head + 1) % this.capacity;
    this.count--;
  }

  /** Re-lays the entries oldest first in arrays of the new capacity and rebuilds the index. */
  private resize(capacity: number): void {
    const hashHi = new Uint32Array(capacity);
    const hashLo = new Uint32Array(capacity);
    const eventAt = new Float64Array(capacity);
    for (let i = 0; i < this.count; i++) {
      const s = (this.head + i) % this.capacity;
      hashHi[i] = this.hashHi[s]!;
      hashLo[i] = this.hashLo[s]!;
      eventAt[i] = this.eventAt[s]!;
    }
    let size = 2;
    while (size < capacity * 2) size *= 2;
    this.index = new Int32Array(size);
    this.mask = size - 1;
    this.hashHi = hashHi;
    this.hashLo = hashLo;
    this.eventAt = eventAt;
    this.capacity = capacity;
    this.head = 0;
    for (let i = 0; i < this.count; i++) {
      let pos = (hashHi[i]! ^ hashLo[i]!) & this.mask;
      while (this.index[pos] !== 0) pos = (pos + 1) & this.mask;
      this.index[pos] = i + 1;
    }
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

/** The dedupe stage: {@link dedupeRecord} as a named value, for the composed hot path. */
export function dedupeStage(window: DedupeWindow): Stage<Staged, Staged> {
  return { id: "dedupe", apply: (staged) => dedupeRecord(staged, window) };
}

/** Pipeable form of {@link dedupeRecord}, derived from the same stage. */
export function dedupe(window: DedupeWindow): OperatorFunction<Staged, Staged> {
  return toOperator(dedupeStage(window));
}

import { describe, expect, it } from "vitest";
import { from, lastValueFrom, toArray } from "rxjs";
import { DedupeWindow, dedupe, dedupeRecord } from "../../src/operators/dedupe.js";
import type { CustomerRecord, EventRecord, Staged, TransactionRecord, ValidRecord } from "../../src/types.js";
import { sourceMessage, validStaged } from "../helpers/fixtures.js";

const T = Date.UTC(2026, 2, 1);
const DAY = 86_400_000;

const tx = (id: string, eventAt = T, amount = 10): TransactionRecord => ({
  entity: "transactions",
  id,
  customer_id: "c1",
  eventAt,
  amount,
  currency: "USD",
  amount_base: amount,
  customer_segment: "unknown",
});
const ev = (id: string, eventAt = T): EventRecord => ({ entity: "events", id, customer_id: "c1", eventAt, event_type: "login" });
const customer = (id: string, segment = "retail"): CustomerRecord => ({
  entity: "customers",
  id,
  customer_id: id,
  eventAt: null,
  name: null,
  email: null,
  registration_at: null,
  customer_segment: segment,
});

const statusOf = (s: Staged) => s.outcome.status;

describe("DedupeWindow", () => {
  it("reports the first copy as new and later copies as seen", () => {
    const w = new DedupeWindow({ windowMs: 7 * DAY, maxEntries: 100 });
    expect(w.check("transactions", "t1", T)).toBe(false);
    expect(w.check("transactions", "t1", T)).toBe(true);
    expect(w.check("transactions", "t1", T + 1000)).toBe(true);
    expect(w.check("transactions", "t2", T)).toBe(false);
  });

  it("keeps ids per entity", () => {
    const w = new DedupeWindow({ windowMs: 7 * DAY, maxEntries: 100 });
    expect(w.check("transactions", "x1", T)).toBe(false);
    expect(w.check("events", "x1", T)).toBe(false);
    expect(w.check("sessions", "x1", T)).toBe(false);
    expect(w.check("events", "x1", T)).toBe(true);
    expect(w.size).toBe(3);
  });

  it("does not confuse entity/id pairs whose concatenations collide", () => {
    const w = new DedupeWindow({ windowMs: 7 * DAY, maxEntries: 100 });
    expect(w.check("events", "ab", T)).toBe(false);
    expect(w.check("eventsa", "b", T)).toBe(false);
  });

  it("tracks size and the watermark (the highest event time, never going back)", () => {
    const w = new DedupeWindow({ windowMs: 7 * DAY, maxEntries: 100 });
    expect(w.size).toBe(0);
    expect(w.watermark).toBeNull();
    w.check("events", "a", T);
    expect(w.watermark).toBe(T);
    w.check("events", "b", T + 5000);
    expect(w.watermark).toBe(T + 5000);
    w.check("events", "c", T + 1000);
    expect(w.watermark).toBe(T + 5000);
    expect(w.size).toBe(3);
    w.check("events", "a", T);
    expect(w.size).toBe(3);
  });

  it("evicts the oldest ids beyond maxEntries; a miss after eviction reads as new (silver's key catches it)", () => {
    const w = new DedupeWindow({ windowMs: 7 * DAY, maxEntries: 3 });
    for (const id of ["a", "b", "c", "d"]) expect(w.check("events", id, T)).toBe(false);
    expect(w.size).toBe(3);
    expect(w.check("events", "d", T)).toBe(true);
    expect(w.check("events", "c", T)).toBe(true);
    expect(w.check("events", "b", T)).toBe(true);
    // "a" was evicted: by design the window reports it as new rather than guessing.
    expect(w.check("events", "a", T)).toBe(false);
    expect(w.size).toBe(3);
  });

  it("does not remember an id whose event time is older than watermark - window", () => {
    const w = new DedupeWindow({ windowMs: 1000, maxEntries: 100 });
    w.check("events", "now", T);
    expect(w.check("events", "old", T - 1001)).toBe(false);
    expect(w.check("events", "old", T - 1001)).toBe(false);
    expect(w.size).toBe(1);
  });

  it("remembers a late id that is still inside the window", () => {
    const w = new DedupeWindow({ windowMs: 1000, maxEntries: 100 });
    w.check("events", "now", T);
    expect(w.check("events", "late", T - 999)).toBe(false);
    expect(w.check("events", "late", T - 999)).toBe(true);
    expect(w.size).toBe(2);
  });

  it("forgets an id once the watermark passes its event time by more than the window", () => {
    const w = new DedupeWindow({ windowMs: 1000, maxEntries: 100 });
    expect(w.check("events", "a", T)).toBe(false);
    w.check("events", "b", T + 1000);
    expect(w.check("events", "a", T)).toBe(true); // exactly one window behind: still remembered
    w.check("events", "c", T + 1001);
    expect(w.check("events", "a", T)).toBe(false); // now outside the window
  });

  it("ages entries in event time, not wall-clock time", async () => {
    const w = new DedupeWindow({ windowMs: 5, maxEntries: 100 });
    w.check("events", "a", T);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(w.check("events", "a", T)).toBe(true);
  });

  it("uses a re-sent copy's own event time to advance the watermark", () => {
    const w = new DedupeWindow({ windowMs: 1000, maxEntries: 100 });
    expect(w.check("events", "a", T)).toBe(false);
    // The same id far later in event time: the window has moved on and cannot vouch for it.
    expect(w.check("events", "a", T + 5000)).toBe(false);
    expect(w.watermark).toBe(T + 5000);
    expect(w.check("events", "a", T + 5000)).toBe(true);
  });
});

describe("dedupeRecord", () => {
  it("passes the first copy through and marks the second as duplicate", () => {
    const w = new DedupeWindow({ windowMs: 7 * DAY, maxEntries: 100 });
    const first = validStaged(tx("t1", T, 10), 1);
    const second = validStaged(tx("t1", T, 99), 2);
    expect(dedupeRecord(first, w)).toBe(first);
    const out = dedupeRecord(second, w);
    expect(out.outcome.status).toBe("duplicate");
    if (out.outcome.status !== "duplicate") throw new Error("unreachable");
    expect(out.outcome.record).toBe((second.outcome as { record: ValidRecord }).record);
    expect(out.msg).toBe(second.msg);
    expect(out.entity).toBe("transactions");
  });

  it("does not treat the same id in transactions and events as duplicates", () => {
    const w = new DedupeWindow({ windowMs: 7 * DAY, maxEntries: 100 });
    expect(statusOf(dedupeRecord(validStaged(tx("x"), 1), w))).toBe("valid");
    expect(statusOf(dedupeRecord(validStaged(ev("x"), 2), w))).toBe("valid");
    expect(statusOf(dedupeRecord(validStaged(ev("x"), 3), w))).toBe("duplicate");
  });

  it("never marks customer profiles as duplicates and does not remember them", () => {
    const w = new DedupeWindow({ windowMs: 7 * DAY, maxEntries: 100 });
    const a = validStaged(customer("c1", "retail"), 1);
    const b = validStaged(customer("c1", "premium"), 2);
    expect(dedupeRecord(a, w)).toBe(a);
    expect(dedupeRecord(b, w)).toBe(b);
    expect(w.size).toBe(0);
    expect(w.watermark).toBeNull();
  });

  it("passes quarantined records through untouched", () => {
    const w = new DedupeWindow({ windowMs: 7 * DAY, maxEntries: 100 });
    const q: Staged = { msg: sourceMessage(), entity: "transactions", outcome: { status: "quarantined", reason: "invalid_range", field: "amount", detail: "" } };
    expect(dedupeRecord(q, w)).toBe(q);
    expect(dedupeRecord(q, w)).toBe(q);
    expect(w.size).toBe(0);
  });
});

describe("dedupe (pipeable)", () => {
  it("keeps the first copy of each event id in stream order", async () => {
    const w = new DedupeWindow({ windowMs: 7 * DAY, maxEntries: 100 });
    const input = [
      validStaged(tx("t1"), 1),
      validStaged(ev("e1"), 2),
      validStaged(tx("t1", T, 55), 3),
      validStaged(customer("c1"), 4),
      validStaged(customer("c1"), 5),
      validStaged(ev("e1"), 6),
      validStaged(tx("t2"), 7),
    ];
    const out = await lastValueFrom(from(input).pipe(dedupe(w), toArray()));
    expect(out.map(statusOf)).toEqual(["valid", "valid", "duplicate", "valid", "valid", "duplicate", "valid"]);
    expect(w.size).toBe(3);
  });
});

describe("DedupeWindow against a reference model", () => {
  /** The window's contract, written the slow, obvious way: a Map in insertion order. */
  class ModelWindow {
    private readonly seen = new Map<string, number>();
    private watermark = Number.NEGATIVE_INFINITY;
    constructor(private readonly windowMs: number, private readonly maxEntries: number) {}
    check(entity: string, id: string, eventAt: number): boolean {
      this.watermark = Math.max(this.watermark, eventAt);
      const key = `${entity}\u0000${id}`;
      const inWindow = this.watermark - eventAt <= this.windowMs;
      const at = this.seen.get(key);
      if (at !== undefined) {
        if (this.watermark - at <= this.windowMs) return true;
        if (inWindow) this.seen.set(key, eventAt); // keeps its place in insertion order
        return false;
      }
      if (!inWindow) return false;
      if (this.seen.size === this.maxEntries) this.seen.delete(this.seen.keys().next().value!);
      this.seen.set(key, eventAt);
      return false;
    }
    get size(): number {
      return this.seen.size;
    }
  }

  it.each([
    [1, 5_000],
    [7, 20_000],
    [1_000, 50_000],
    [3_000, 50_000],
  ])("answers exactly as the model with maxEntries %i over %i random checks (growth, eviction, expiry)", (maxEntries, n) => {
    let state = maxEntries * 7919 + n;
    const rand = (k: number) => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state % k;
    };
    const w = new DedupeWindow({ windowMs: 60_000, maxEntries });
    const m = new ModelWindow(60_000, maxEntries);
    let t = T;
    let hits = 0;
    for (let i = 0; i < n; i++) {
      t += rand(50);
      const entity = ["transactions", "events", "sessions"][rand(3)]!;
      const id = `id-${rand(maxEntries * 2 + 10)}`;
      const eventAt = t - rand(90_000); // some late enough to fall outside the window
      const expected = m.check(entity, id, eventAt);
      expect(w.check(entity, id, eventAt)).toBe(expected);
      if (expected) hits++;
    }
    expect(w.size).toBe(m.size);
    expect(hits).toBeGreaterThan(0);
  });

  it("holds a million ids in about 24 bytes each", () => {
    const w = new DedupeWindow({ windowMs: 7 * DAY, maxEntries: 1_000_000 });
    const before = process.memoryUsage().arrayBuffers;
    for (let i = 0; i < 1_000_000; i++) w.check("transactions", `tx-${i}`, T + i);
    const bytes = process.memoryUsage().arrayBuffers - before;
    expect(w.size).toBe(1_000_000);
    // 24 B per id once grown; the arrays of the last growth may not be collected yet.
    expect(bytes / 1_000_000).toBeLessThan(48);
    expect(w.check("transactions", "tx-999999", T)).toBe(true);
    expect(w.check("transactions", "tx-1000000", T)).toBe(false);
  });
});

/**
 * Gold's presence bitmaps (`src/sinks/gold-presence.ts`): whatever the order of the marks (new
 * days, late days, days older than the bitmaps, jumps past them), a customer's mask has the bit
 * of every day it was marked on, and the days after the newest one clear; rebuilt from a real
 * gold file it says the same as the marks did; readers seek every day before the build, after
 * the writer retires them, and while another thread moves the newest day; a rebuild cut short by
 * its budget trusts only the days it read whole.
 */
import { describe, expect, it } from "vitest";
import { Worker } from "node:worker_threads";
import Database from "better-sqlite3";
import { GoldPresence, PRESENCE_DAYS, type PresenceMask } from "../src/sinks/gold-presence.js";
import { GoldStore } from "../src/sinks/gold.js";
import { SilverStore } from "../src/sinks/silver.js";
import { tempDirs } from "./helpers/tmp.js";

const tmp = tempDirs("gold-presence");
const storage = { synchronous: "normal" as const, busyTimeout: 1_000 };

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

/** Whether `m` lets a lookup seek `day`. */
function allows(m: PresenceMask, day: number): boolean {
  const i = day - m.base;
  if (i < 0 || i >= PRESENCE_DAYS) return true;
  return ((i < 32 ? m.lo >>> i : m.hi >>> (i - 32)) & 1) === 1;
}

/** A presence built over an empty gold, so marks alone decide. */
function built(): GoldPresence {
  const db = new Database(":memory:");
  db.exec("CREATE TABLE customer_daily (day, customer_id); CREATE TABLE feature_daily (day, customer_id)");
  const p = new GoldPresence();
  p.rebuild(db);
  db.close();
  return p;
}

describe("GoldPresence", () => {
  it("allows every marked day, in any order, and rules out most others", () => {
    const p = built();
    const r = rng(3);
    const marked = new Map<string, Set<number>>();
    let newest = 1_000;
    for (let i = 0; i < 30_000; i++) {
      // Mostly today or recent days, some late, some far older than the bitmaps, now and then a jump ahead.
      const x = r();
      if (x < 0.002) newest += 1 + Math.floor(r() * 90);
      else if (x < 0.02) newest += 1;
      const day = x < 0.9 ? newest - Math.floor(r() * 3) : newest - Math.floor(r() * 200);
      const id = `c${Math.floor(r() * 3_000)}`;
      p.mark(day, id);
      let days = marked.get(id);
      if (!days) marked.set(id, (days = new Set()));
      days.add(day);
    }
    let ruledOut = 0;
    let checked = 0;
    for (let k = 0; k < 3_500; k++) {
      const id = `c${k}`;
      for (const dayT of [newest, newest + 3, newest - 10, newest + 40]) {
        const m = p.mask(id, dayT);
        for (let day = m.base; day <= dayT; day++) {
          const has = marked.get(id)?.has(day) ?? false;
          if (has) expect(allows(m, day), `${id} on ${day} (T's day ${dayT})`).toBe(true);
          if (!has && day > newest - PRESENCE_DAYS && day <= newest) {
            checked++;
            if (!allows(m, day)) ruledOut++;
          }
        }
      }
    }
    // Days before the bitmaps are always sought; of the days they cover, nearly all empty ones are skipped.
    expect(ruledOut / checked).toBeGreaterThan(0.95);
  });

  it("rebuilt from a gold file, says what the marks said; before the build and once retired, allows every day", () => {
    const dir = tmp();
    new SilverStore(dir, storage).close();
    const presence = new GoldPresence();
    expect(presence.mask("c1", 20_000)).toMatchObject({ lo: -1, hi: -1 });
    const gold = new GoldStore(dir, storage, presence);
    const totals = { tx_count: 1, tx_spend_micros: 1, tx_first_at: 0, tx_last_at: 0, session_count: 0, session_ms: 0, interaction_count: 0, event_count: 0, max_at: 0 };
    const days = [20_000, 20_001, 20_050, 20_052, 20_100, 19_990, 20_090];
    days.forEach((day, i) =>
      gold.apply({
        position: i + 1,
        days: [{ customer_id: "c1", day, ...totals }],
        profiles: [],
        features: [{ feature: "f", customer_id: "c2", day: day - 1, n: 1, total: 1, lo: 1, hi: 1, min_at: 0, max_at: 0 }],
      }),
    );
    const marked = [presence.mask("c1", 20_100), presence.mask("c2", 20_100), presence.mask("c3", 20_100)];
    gold.close();
    expect(presence.mask("c1", 20_100)).toMatchObject({ lo: -1, hi: -1 });
    const again = new GoldPresence();
    const reopened = new GoldStore(dir, storage, again);
    try {
      expect([again.mask("c1", 20_100), again.mask("c2", 20_100), again.mask("c3", 20_100)]).toEqual(marked);
      // c1's days the bitmaps cover (the 64 up to 20,100), c2's the day before each, c3 none.
      for (const day of [20_050, 20_052, 20_090, 20_100]) expect(allows(marked[0]!, day)).toBe(true);
      for (const day of [20_049, 20_051, 20_089, 20_099]) expect(allows(marked[1]!, day)).toBe(true);
      for (let day = 20_100 - PRESENCE_DAYS + 1; day <= 20_100; day++) expect(allows(marked[2]!, day)).toBe(false);
      // A rebuild that may read only a bucket or so holds the newest day alone: the others are sought.
      const short = new GoldPresence();
      short.rebuild(reopened.db, 1);
      const c3 = short.mask("c3", 20_100);
      expect(allows(c3, 20_100)).toBe(false);
      for (let day = 20_100 - PRESENCE_DAYS + 1; day < 20_100; day++) expect(allows(c3, day)).toBe(true);
    } finally {
      reopened.close();
    }
  });

  it("once its owner retires it, a writer that never closed (its thread ended) leaves no day skipped for whoever writes next", () => {
    const dir = tmp();
    new SilverStore(dir, storage).close();
    const presence = new GoldPresence();
    const totals = { tx_count: 1, tx_spend_micros: 1, tx_first_at: 0, tx_last_at: 0, session_count: 0, session_ms: 0, interaction_count: 0, event_count: 0, max_at: 0 };
    const first = new GoldStore(dir, storage, presence);
    first.apply({ position: 1, days: [{ customer_id: "c1", day: 20_500, ...totals }], profiles: [], features: [] });
    // The next writer marks nothing here (another process, or a topology of its own).
    const next = new GoldStore(dir, storage);
    next.apply({ position: 2, days: [{ customer_id: "c2", day: 20_500, ...totals }], profiles: [], features: [] });
    expect(allows(presence.mask("c2", 20_500), 20_500)).toBe(false);
    presence.retire();
    presence.retire();
    expect(presence.mask("c2", 20_500)).toMatchObject({ lo: -1, hi: -1 });
    next.close();
    first.db.close();
  });

  it("never rules out a committed day while another thread moves the newest day", async () => {
    const presence = built();
    // The writer marks "x" on each new day, then publishes that day as committed (as a COMMIT
    // would), until told to stop: [committed day, stop].
    const shared = new Int32Array(new SharedArrayBuffer(8));
    const worker = new Worker(
      `const { workerData } = require("node:worker_threads");
       import(workerData.module).then(({ GoldPresence }) => {
         const p = new GoldPresence(workerData.buffer);
         const shared = new Int32Array(workerData.shared);
         for (let day = 10; Atomics.load(shared, 1) === 0; day++) {
           p.mark(day, "x");
           for (let i = 0; i < 20; i++) p.mark(day, "y" + i);
           Atomics.store(shared, 0, day);
         }
       });`,
      { eval: true, workerData: { module: new URL("../dist/src/sinks/gold-presence.js", import.meta.url).href, buffer: presence.buffer, shared: shared.buffer } },
    );
    const exited = new Promise((resolve) => worker.once("exit", resolve));
    let reads = 0;
    const deadline = Date.now() + 30_000;
    try {
      while ((reads < 5_000 || Atomics.load(shared, 0) < 2_000) && Date.now() < deadline) {
        const day = Atomics.load(shared, 0);
        if (day === 0) continue;
        const m = presence.mask("x", day);
        reads++;
        for (let d = Math.max(10, m.base); d <= day; d++) expect(allows(m, d), `x on ${d}, committed up to ${day}`).toBe(true);
      }
    } finally {
      Atomics.store(shared, 1, 1);
      await exited;
    }
    expect(reads).toBeGreaterThanOrEqual(5_000);
    // Once it stopped: x on every day the bitmaps hold, and a customer never marked on none.
    const last = Atomics.load(shared, 0);
    const m = presence.mask("x", last);
    for (let d = last - PRESENCE_DAYS + 1; d <= last; d++) expect(allows(m, d)).toBe(true);
    const nobody = presence.mask("nobody", last);
    expect([nobody.lo, nobody.hi]).toEqual([0, 0]);
  });
});

/**
 * Gold's buckets keyed by day and their compaction into per-customer summaries
 * (sinks/gold-layout.ts), on real SQLite files: whatever the order of commits and fold steps —
 * late records for summarized days, records for the days being folded on either side of the
 * fold's cursor, custom buckets — `customer_daily` and `feature_daily` equal buckets summed
 * independently from the deltas, each summary is exactly its customer's buckets before their
 * boundary, the spend leaders are the summaries' top, and the top customers by spend read through
 * them equal a full sort. Older gold files migrate with every bucket kept.
 */
import { describe, expect, it } from "vitest";
import { GoldStore, GOLD_MIGRATIONS } from "../src/sinks/gold.js";
import { GoldFolder, FOLD_POLICY, SPEND_LEADERS, type FoldPolicy } from "../src/sinks/gold-layout.js";
import { openLayer, type Database } from "../src/sinks/database.js";
import { emptyTotals, type DayDelta, type FeatureDayDelta, type GoldDelta } from "../src/operators/aggregate.js";
import { topCustomersBySpend } from "../src/serving/optimize.js";
import { tempDirs } from "./helpers/tmp.js";

const tmp = tempDirs("gold-layout");
const STORAGE = { synchronous: "normal" as const, busyTimeout: 2_000 };
const DAY = 86_400_000;
const D0 = 20_600;
const SMALL: FoldPolicy = { ...FOLD_POLICY, maxDays: 3, chunkRows: 37 };

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

/** A random batch: mostly records of the newest days, some late ones, for `customers` customers (ids with non-ASCII characters among them). */
function batch(r: () => number, position: number, newest: number, customers = 60, records = 40): GoldDelta {
  const days = new Map<string, DayDelta>();
  const features = new Map<string, FeatureDayDelta>();
  for (let i = 0; i < records; i++) {
    const k = Math.floor(r() * customers);
    const c = k % 7 === 0 ? `c${k}-é` : k % 11 === 0 ? `c${k}-\u{1F600}` : `c${String(k).padStart(2, "0")}`;
    const day = r() < 0.85 ? newest - Math.floor(r() * 2) : newest - 2 - Math.floor(r() * 30);
    const at = day * DAY + Math.floor(r() * DAY);
    const key = `${c}|${day}`;
    const d = days.get(key) ?? { customer_id: c, day, ...emptyTotals(), max_at: null };
    days.set(key, d);
    const micros = Math.floor(r() * 1e8);
    d.tx_count += 1;
    d.tx_spend_micros += micros;
    d.tx_first_at = d.tx_first_at === null ? at : Math.min(d.tx_first_at, at);
    d.tx_last_at = d.tx_last_at === null ? at : Math.max(d.tx_last_at, at);
    d.event_count += r() < 0.3 ? 1 : 0;
    d.max_at = d.max_at === null ? at : Math.max(d.max_at, at);
    const f = features.get(key) ?? { feature: "spend", customer_id: c, day, n: 0, total: 0, lo: null, hi: null, min_at: null, max_at: null };
    features.set(key, f);
    f.n += 1;
    f.total += micros;
    f.lo = f.lo === null ? micros : Math.min(f.lo, micros);
    f.hi = f.hi === null ? micros : Math.max(f.hi, micros);
    f.min_at = f.min_at === null ? at : Math.min(f.min_at, at);
    f.max_at = f.max_at === null ? at : Math.max(f.max_at, at);
  }
  return { position, days: [...days.values()], profiles: [], features: [...features.values()] };
}

/** Buckets summed from the deltas, as customer_daily lists them. */
class Reference {
  readonly days = new Map<string, Record<string, unknown>>();
  readonly features = new Map<string, Record<string, unknown>>();

  add(delta: GoldDelta): void {
    for (const d of delta.days) {
      const key = `${d.customer_id}|${d.day}`;
      const b = this.days.get(key) as Record<string, number | null> | undefined;
      if (!b) this.days.set(key, { ...d });
      else {
        for (const k of ["tx_count", "tx_spend_micros", "session_count", "session_ms", "interaction_count", "event_count"]) (b[k] as number) += d[k as keyof DayDelta] as number;
        b.tx_first_at = Math.min(b.tx_first_at!, d.tx_first_at!);
        b.tx_last_at = Math.max(b.tx_last_at!, d.tx_last_at!);
        b.max_at = Math.max(b.max_at!, d.max_at!);
      }
    }
    for (const f of delta.features) {
      const key = `${f.customer_id}|${f.day}|${f.feature}`;
      const b = this.features.get(key) as Record<string, number> | undefined;
      if (!b) this.features.set(key, { ...f });
      else {
        b.n! += f.n;
        b.total! += f.total;
        b.lo = Math.min(b.lo!, f.lo!);
        b.hi = Math.max(b.hi!, f.hi!);
        b.min_at = Math.min(b.min_at!, f.min_at!);
        b.max_at = Math.max(b.max_at!, f.max_at!);
      }
    }
  }
}

const byKey = (rows: Record<string, unknown>[], key: (r: Record<string, unknown>) => string) => new Map(rows.map((r) => [key(r), r]));

const SUMMARIZED = "(day < l.summarized_to OR (l.moving_to IS NOT NULL AND day < l.moving_to AND customer_id <= l.cursor))";

function expectLayoutHolds(db: Database, ref: Reference): void {
  const buckets = db.prepare("SELECT * FROM customer_daily").all() as Record<string, unknown>[];
  expect(byKey(buckets, (r) => `${r.customer_id}|${r.day}`)).toEqual(ref.days);
  const features = db.prepare("SELECT * FROM feature_daily").all() as Record<string, unknown>[];
  expect(byKey(features, (r) => `${r.customer_id}|${r.day}|${r.feature}`)).toEqual(ref.features);
  // Each summary is exactly its customer's buckets before the boundary.
  const summary = db.prepare("SELECT * FROM customer_summary ORDER BY customer_id").all();
  const summed = db
    .prepare(
      `SELECT customer_id, sum(tx_count) AS tx_count, sum(tx_spend_micros) AS tx_spend_micros, min(tx_first_at) AS tx_first_at, max(tx_last_at) AS tx_last_at,
         sum(session_count) AS session_count, sum(session_ms) AS session_ms, sum(interaction_count) AS interaction_count, sum(event_count) AS event_count,
         min(day) AS first_day, max(day) AS last_day FROM customer_daily, gold_layout l WHERE ${SUMMARIZED} GROUP BY customer_id ORDER BY customer_id`,
    )
    .all();
  expect(summary).toEqual(summed);
  const featureSummary = db.prepare("SELECT * FROM feature_summary ORDER BY customer_id, feature").all();
  const featureSummed = db
    .prepare(
      `SELECT customer_id, feature, sum(n) AS n, sum(total) AS total, min(lo) AS lo, max(hi) AS hi FROM feature_daily, gold_layout l
       WHERE ${SUMMARIZED} GROUP BY customer_id, feature ORDER BY customer_id, feature`,
    )
    .all();
  expect(featureSummary).toEqual(featureSummed);
  // The leaders are the summaries' top by spend (here every summary: fewer than SPEND_LEADERS).
  const leaders = db.prepare("SELECT customer_id, tx_spend_micros FROM spend_leaders ORDER BY tx_spend_micros DESC, customer_id").all();
  const top = db.prepare(`SELECT customer_id, tx_spend_micros FROM customer_summary ORDER BY tx_spend_micros DESC, customer_id LIMIT ${SPEND_LEADERS}`).all();
  expect(leaders).toEqual(top);
  // Every day holding buckets is listed, so lookups find it.
  expect(db.prepare("SELECT count(*) FROM customer_daily WHERE day NOT IN (SELECT day FROM gold_days)").pluck().get()).toBe(0);
}

describe("gold's layout", () => {
  it("keeps every bucket in one place, whatever the order of commits and fold steps", () => {
    const gold = new GoldStore(tmp(), STORAGE);
    const folder = new GoldFolder(gold.db, SMALL);
    const ref = new Reference();
    const r = rng(5);
    let position = 0;
    let moved = 0;
    let midFold = 0;
    try {
      for (let newest = D0; newest < D0 + 40; newest++) {
        for (let i = 0; i < 6; i++) {
          const delta = batch(r, ++position, newest);
          gold.apply(delta);
          ref.add(delta);
          // A fold step between commits: folds start, move a chunk, and wait.
          const s = folder.step({ now: (newest + 1) * DAY });
          moved += s.summaries;
          if (s.more) midFold++;
          if (i === 3) expectLayoutHolds(gold.db, ref);
        }
      }
      expect(moved).toBeGreaterThan(1_000);
      expect(midFold, "commits landed while a fold was half done").toBeGreaterThan(30);
      folder.run({ force: true, now: (D0 + 40) * DAY });
      expectLayoutHolds(gold.db, ref);
      // Only the two newest days holding buckets stay out of the summaries once everything is folded.
      expect(folder.state()).toEqual({ summarized_to: D0 + 38, moving_to: null, cursor: null });
    } finally {
      gold.close();
    }
  });

  it("routes a commit at the fold's cursor, and on either side of it, to where its bucket is", () => {
    const gold = new GoldStore(tmp(), STORAGE);
    // One customer per chunk; ids whose order differs between UTF-16 and UTF-8 (SQLite's order) among them.
    const folder = new GoldFolder(gold.db, { ...SMALL, chunkRows: 1 });
    const ids = ["a", "b", "c-\uFFFD", "c-\u{1F600}", "c-\u{1F600}x", "d", "e\uE000", "e\u{10000}", "f"];
    const ref = new Reference();
    let position = 0;
    const commit = (day: number) => {
      const delta: GoldDelta = {
        position: ++position,
        days: ids.map((c, i) => ({ customer_id: c, day, ...emptyTotals(), tx_count: 1, tx_spend_micros: 1_000 + i, tx_first_at: day * DAY + i, tx_last_at: day * DAY + i, max_at: day * DAY + i })),
        profiles: [],
        features: ids.map((c, i) => ({ feature: "spend", customer_id: c, day, n: 1, total: i, lo: i, hi: i, min_at: day * DAY, max_at: day * DAY + i })),
      };
      gold.apply(delta);
      ref.add(delta);
    };
    try {
      commit(D0);
      commit(D0 + 10);
      let steps = 0;
      for (;;) {
        const s = folder.step({ now: (D0 + 10) * DAY });
        steps++;
        // Buckets of the day being folded, for customers before, at and after the cursor.
        commit(D0);
        expectLayoutHolds(gold.db, ref);
        if (!s.more) break;
      }
      expect(steps).toBeGreaterThanOrEqual(ids.length);
      expect(folder.state().summarized_to).toBe(D0 + 9);
    } finally {
      gold.close();
    }
  });

  it("keeps the spend leaders the top of the summaries once there are more customers than leaders", () => {
    const gold = new GoldStore(tmp(), STORAGE);
    const folder = new GoldFolder(gold.db, { ...SMALL, chunkRows: 500 });
    const ref = new Reference();
    const r = rng(13);
    try {
      let position = 0;
      for (let newest = D0; newest < D0 + 25; newest++) {
        for (let i = 0; i < 4; i++) {
          const delta = batch(r, ++position, newest, 3_000, 400);
          gold.apply(delta);
          ref.add(delta);
          folder.step({ now: (newest + 1) * DAY });
        }
      }
      folder.run({ force: true, now: (D0 + 25) * DAY });
      expect(gold.db.prepare("SELECT count(*) FROM customer_summary").pluck().get()).toBeGreaterThan(SPEND_LEADERS * 2);
      expectLayoutHolds(gold.db, ref);
      for (const n of [10, SPEND_LEADERS]) {
        const full = gold.db.prepare("SELECT customer_id, total_spend_micros FROM customer_features ORDER BY total_spend_micros DESC, customer_id LIMIT ?").all(n);
        expect(topCustomersBySpend(gold.db, n), `top ${n}`).toEqual(full);
      }
    } finally {
      gold.close();
    }
  });

  it("reads the top customers by spend from the summary's index and the recent days, as a full sort does", () => {
    const gold = new GoldStore(tmp(), STORAGE);
    const r = rng(9);
    try {
      for (let p = 1; p <= 300; p++) {
        gold.apply(batch(r, p, D0 + Math.floor(p / 10)));
        if (p % 50 === 0) new GoldFolder(gold.db, SMALL).step({ now: (D0 + 40) * DAY });
      }
      const full = gold.db.prepare("SELECT customer_id, total_spend_micros FROM customer_features ORDER BY total_spend_micros DESC, customer_id LIMIT 10").all();
      expect(topCustomersBySpend(gold.db, 10)).toEqual(full);
    } finally {
      gold.close();
    }
  });

  it("migrates a schema 6 gold: every bucket kept, all but the last two days summed", () => {
    const dir = tmp();
    const v6 = openLayer(dir, "gold", GOLD_MIGRATIONS.slice(0, 6), STORAGE);
    const insert = v6.prepare("INSERT INTO customer_daily VALUES (?, ?, ?, ?, ?, ?, 0, 0, 0, ?, ?)");
    const feature = v6.prepare("INSERT INTO feature_daily VALUES ('spend', ?, ?, ?, ?, ?, ?, NULL, ?)");
    const r = rng(3);
    const rows: unknown[][] = [];
    for (let i = 0; i < 400; i++) {
      const c = `c${Math.floor(r() * 50)}`;
      const day = D0 + Math.floor(r() * 20);
      if (rows.some((x) => x[0] === c && x[1] === day)) continue;
      const row = [c, day, 1, Math.floor(r() * 1e6), day * DAY + 5, day * DAY + 9, Math.floor(r() * 3), r() < 0.5 ? null : day * DAY + 9];
      rows.push(row);
      insert.run(...row);
      feature.run(c, day, 1, row[3], 0.5, 1.5, row[7]);
    }
    v6.close();
    const gold = new GoldStore(dir, STORAGE);
    try {
      const db = gold.db;
      expect(db.pragma("user_version", { simple: true })).toBe(GOLD_MIGRATIONS.length);
      const keys = ["customer_id", "day", "tx_count", "tx_spend_micros", "tx_first_at", "tx_last_at", "event_count", "max_at"];
      const view = db.prepare(`SELECT ${keys.join(", ")} FROM customer_daily ORDER BY customer_id, day`).raw().all();
      expect(view).toEqual([...rows].sort((a, b) => (a[0]! < b[0]! ? -1 : a[0]! > b[0]! ? 1 : (a[1] as number) - (b[1] as number))));
      expect(db.prepare("SELECT count(*) FROM feature_daily").pluck().get()).toBe(rows.length);
      const newest = Math.max(...rows.map((x) => x[1] as number));
      expect(db.prepare("SELECT summarized_to FROM gold_layout").pluck().get()).toBe(newest - 1);
      expect(db.prepare("SELECT max(last_day) FROM customer_summary").pluck().get()).toBeLessThan(newest - 1);
      const ref = new Reference();
      for (const x of db.prepare("SELECT * FROM customer_daily").all() as DayDelta[]) ref.days.set(`${x.customer_id}|${x.day}`, { ...x });
      for (const x of db.prepare("SELECT * FROM feature_daily").all() as FeatureDayDelta[]) ref.features.set(`${x.customer_id}|${x.day}|${x.feature}`, { ...x });
      expectLayoutHolds(db, ref);
    } finally {
      gold.close();
    }
  });
});

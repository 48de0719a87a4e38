/**
 * The layer writer on either thread, and gold's schema migration. Real SQLite files in temp dirs.
 */
import { afterEach, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { createTopology } from "../src/topology.js";
import { GOLD_MIGRATIONS, GoldStore } from "../src/sinks/gold.js";
import { GoldFolder } from "../src/sinks/gold-layout.js";
import { emptyTotals } from "../src/operators/aggregate.js";
import { openLayer } from "../src/sinks/database.js";
import { dumpLayers } from "./helpers/tables.js";
import type { InsertedStage } from "../src/operators/stage.js";

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), "trib-layers-"));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("commit thread", () => {
  it("gives table-identical silver and gold, stats and window gauges wherever the stages run, with small batches", async () => {
    // The built-in stages run on the commit worker; an embedder's stage (a closure) keeps them on
    // the consuming thread; inline, everything is on one thread. All three must agree.
    const passThrough: InsertedStage = { after: "dedupe", id: "pass-through", apply: (s) => s };
    const placements = [
      { name: "stages on the commit worker", commitThread: "worker" as const, stages: [] },
      { name: "stages on the consuming thread", commitThread: "worker" as const, stages: [passThrough] },
      { name: "inline", commitThread: "inline" as const, stages: [] },
    ];
    const runs = [];
    for (const p of placements) {
      const dir = tmp();
      const t = createTopology({
        dataDir: dir,
        source: { kind: "generator", messages: 6_000, seed: 7 },
        config: { storage: { commitThread: p.commitThread }, batch: { maxRecords: 250 } },
        stages: p.stages,
        metrics: "pipeline-only",
      });
      await t.start();
      const stats = await t.done;
      expect(stats.bronze, p.name).toBe(6_000);
      const text = await t.metrics!.text();
      const gauge = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1]);
      runs.push({
        // Each run receives the generated records at its own wall-clock time.
        dump: dumpLayers(dir, ["available_at"]),
        counts: { silver: stats.silver, duplicates: stats.duplicates, quarantined: stats.quarantined, redelivered: stats.redelivered, watermark: stats.watermark },
        window: gauge("tributary_dedupe_cache_entries"),
        watermark: gauge("tributary_watermark_timestamp_seconds"),
        // Silver's latest event time, independently of the window.
        latest: Math.max(...Object.entries(EVENT_TIME).map(([table, column]) => silverMax(dir, table, column))),
      });
    }
    const first = runs[0]!;
    expect(first.dump["gold.customer_daily"]!.length).toBeGreaterThan(100);
    expect(first.counts.duplicates.transactions).toBeGreaterThan(0);
    expect(Object.values(first.counts.quarantined).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(first.window).toBeGreaterThan(1_000);
    // The window's watermark is the highest event time seen: at least silver's latest (quarantined records may be later).
    expect(first.counts.watermark).toBeGreaterThanOrEqual(first.latest);
    expect(first.watermark).toBe(first.counts.watermark! / 1000);
    for (const [i, r] of runs.entries()) {
      expect(r.dump, placements[i]!.name).toEqual(first.dump);
      expect(r.counts, placements[i]!.name).toEqual(first.counts);
      expect([r.window, r.watermark], placements[i]!.name).toEqual([first.window, first.watermark]);
    }
  });
});

/** Each event table's event-time column in silver. */
const EVENT_TIME = { transactions: "transaction_at", interactions: "interaction_at", events: "event_at", sessions: "session_start_at" };

function silverMax(dir: string, table: string, column: string): number {
  const db = new Database(join(dir, "silver.sqlite"), { readonly: true });
  try {
    return db.prepare(`SELECT max(${column}) FROM ${table}`).pluck().get() as number;
  } finally {
    db.close();
  }
}

describe("gold schema 2", () => {
  it("turns schema 1's customer_features table into a view over the buckets, keeping every bucket", () => {
    const dir = tmp();
    const storage = { synchronous: "normal" as const, busyTimeout: 1000 };
    const v1 = openLayer(dir, "gold", GOLD_MIGRATIONS.slice(0, 1), storage);
    v1.prepare("INSERT INTO customer_daily VALUES ('c1', 20500, 2, 5000000, 100, 200, 1, 60000, 0, 3)").run();
    v1.prepare("INSERT INTO customer_daily VALUES ('c1', 20501, 1, 1500000, 300, 300, 0, 0, 4, 0)").run();
    v1.prepare("INSERT INTO customer_profile VALUES ('c2', 'smb', 42, 9)").run();
    v1.prepare("INSERT INTO customer_features (customer_id, purchase_frequency) VALUES ('stale', 99)").run();
    expect(v1.pragma("user_version", { simple: true })).toBe(1);
    v1.close();

    const v2 = openLayer(dir, "gold", GOLD_MIGRATIONS, storage);
    v2.close();
    const db = new Database(join(dir, "gold.sqlite"), { readonly: true });
    try {
      expect(db.pragma("user_version", { simple: true })).toBe(GOLD_MIGRATIONS.length);
      expect(db.prepare("SELECT type FROM sqlite_master WHERE name = 'customer_features'").pluck().get()).toBe("view");
      expect(db.prepare("SELECT count(*) FROM customer_daily").pluck().get()).toBe(2);
      expect(db.prepare("SELECT * FROM customer_features ORDER BY customer_id").all()).toEqual([
        { customer_id: "c1", customer_segment: "unknown", registration_at: null, purchase_frequency: 3, total_spend_micros: 6_500_000, first_transaction_at: 100, last_transaction_at: 300, session_count: 1, session_ms: 60_000, interaction_count: 4, event_count: 3 },
        { customer_id: "c2", customer_segment: "smb", registration_at: 42, purchase_frequency: 0, total_spend_micros: 0, first_transaction_at: null, last_transaction_at: null, session_count: 0, session_ms: 0, interaction_count: 0, event_count: 0 },
      ]);
      expect(db.prepare("SELECT total_spend, avg_transaction_value FROM customer_features_current WHERE customer_id = 'c1'").get()).toEqual({ total_spend: 6.5, avg_transaction_value: 2.17 });
    } finally {
      db.close();
    }
  });
});

describe("gold schema 3", () => {
  it("sums a customer's spend past int64 without failing the view (finite, not an overflow error)", () => {
    const dir = tmp();
    const storage = { synchronous: "normal" as const, busyTimeout: 1000 };
    const gold = new GoldStore(dir, storage);
    const db = gold.db;
    try {
      // 2,000 days of one valid maximal amount each: 2,000 × (2^53 − 1) micros is past int64.
      const day = (d: number) => ({ customer_id: "whale", day: d, ...emptyTotals(), tx_count: 1, tx_spend_micros: Number.MAX_SAFE_INTEGER, tx_first_at: 0, tx_last_at: 0, max_at: 0 });
      gold.apply({ position: 1, days: Array.from({ length: 2_000 }, (_, d) => day(d)), profiles: [], features: [] });
      const check = () => {
        const row = db.prepare("SELECT purchase_frequency, total_spend_micros FROM customer_features").get() as { purchase_frequency: number; total_spend_micros: number };
        expect(row.purchase_frequency).toBe(2_000);
        expect(Number.isFinite(row.total_spend_micros)).toBe(true);
        expect(row.total_spend_micros / (2_000 * Number.MAX_SAFE_INTEGER)).toBeCloseTo(1, 9);
        expect(Number.isFinite(db.prepare("SELECT total_spend FROM customer_features_current").pluck().get() as number)).toBe(true);
      };
      check();
      // The same once the days are summed into the customer's summary.
      new GoldFolder(db).run({ force: true, now: 2_000 * 86_400_000 });
      expect(db.prepare("SELECT tx_count FROM customer_summary").pluck().get()).toBe(1_998);
      check();
    } finally {
      gold.close();
    }
  });
});

/**
 * Adding a custom feature to a data dir that already holds months of history: it is backfilled
 * from silver exactly, in chunks that each commit with their progress, so a backfill stopped part
 * way (an error, or `kill -9`) resumes where it stopped and ends with the same buckets as an
 * uninterrupted one. Real SQLite files, the real CLI.
 */
import { describe, expect, it } from "vitest";
import { cpSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { parse } from "csv-parse/sync";
import { GoldStore } from "../src/sinks/gold.js";
import { compileCustomFeatures } from "../src/model/features.js";
import { silentLogger, type Logger } from "../src/log.js";
import { runCli, startCli } from "./helpers/cli.js";
import { tempDirs } from "./helpers/tmp.js";

const tmp = tempDirs("backfill");
const DAY = 86_400_000;
const FEATURES = compileCustomFeatures([
  { name: "spend_last_7_days", from: "transactions", aggregate: "sum", field: "amount_base", windowDays: 7 },
  { name: "eur_count", from: "transactions", aggregate: "count", where: { currency: "EUR" } },
]);
const CONFIG = `features:
  custom:
    - { name: spend_last_7_days, from: transactions, aggregate: sum, field: amount_base, window: 7d }
    - { name: eur_count, from: transactions, aggregate: count, where: { currency: EUR } }
`;

/** 18 months of transactions over 50 customers, as an NDJSON file. */
function history(dir: string, n: number): { file: string; rows: { customer: string; at: number; amount: number; currency: string }[] } {
  const rows = [];
  const start = Date.UTC(2025, 4, 1);
  let s = 12345;
  const r = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let i = 0; i < n; i++) rows.push({ customer: `k${Math.floor(r() * 50)}`, at: start + Math.floor(r() * 540 * DAY), amount: Math.round(r() * 20_000) / 100, currency: r() < 0.3 ? "EUR" : "USD" });
  const file = join(dir, "transactions.ndjson");
  writeFileSync(file, rows.map((x, i) => JSON.stringify({ transaction_id: `h${i}`, customer_id: x.customer, amount: x.amount, currency: x.currency, transaction_date: new Date(x.at).toISOString() })).join("\n") + "\n");
  return { file, rows };
}

function buckets(dir: string): unknown[] {
  const db = new Database(join(dir, "gold.sqlite"), { readonly: true });
  try {
    return db.prepare("SELECT * FROM feature_daily ORDER BY feature, customer_id, day").all();
  } finally {
    db.close();
  }
}

describe("backfilling a new custom feature", () => {
  it("stops part way, resumes where it stopped, and ends with the buckets of an uninterrupted backfill", async () => {
    const base = tmp();
    const { file } = history(base, 6_000);
    const plain = join(base, "data");
    expect((await runCli(["ingest", file, "--data-dir", plain])).code).toBe(0);
    const whole = join(tmp(), "data");
    const broken = join(tmp(), "data");
    cpSync(plain, whole, { recursive: true });
    cpSync(plain, broken, { recursive: true });

    const storage = { synchronous: "normal" as const, busyTimeout: 1_000 };
    let g = new GoldStore(whole, storage);
    g.syncFeatures(whole, FEATURES, { noBackfill: false, log: silentLogger });
    g.close();

    // A backfill that dies after three chunks (the logger throws, as a crash would stop it).
    let chunks = 0;
    const dying = { ...silentLogger, info: (o: { event?: string }) => {
      if (o.event === "feature_backfill_progress" && ++chunks === 3) throw new Error("crash");
    } } as unknown as Logger;
    g = new GoldStore(broken, storage);
    expect(() => g.syncFeatures(broken, FEATURES, { noBackfill: false, log: dying })).toThrow("crash");
    const state = g.db.prepare("SELECT name, complete, backfilled_through_day FROM feature_defs").all() as { complete: number; backfilled_through_day: number | null }[];
    expect(state).toHaveLength(1);
    expect(state[0]!.complete).toBe(0);
    expect(state[0]!.backfilled_through_day).not.toBeNull();
    const events: { event?: string; resumed?: boolean }[] = [];
    const recording = { ...silentLogger, info: (o: { event?: string; resumed?: boolean }) => void events.push(o) } as unknown as Logger;
    g.syncFeatures(broken, FEATURES, { noBackfill: false, log: recording });
    g.close();
    expect(events.find((e) => e.event === "feature_backfill")?.resumed).toBe(true);
    expect(buckets(broken)).toEqual(buckets(whole));
  });

  it("after kill -9 during a backfill at start, the next start ends exact (the CLI, a real process)", async () => {
    const base = tmp();
    const { file, rows } = history(base, 20_000);
    const dir = join(base, "data");
    expect((await runCli(["ingest", file, "--data-dir", dir])).code).toBe(0);
    const config = join(base, "tributary.yaml");
    writeFileSync(config, CONFIG);
    // Adding the features to the config and re-ingesting the same file (nothing new to read)
    // backfills them; kill it at its first progress line.
    const first = startCli(["ingest", file, "--config", config, "--data-dir", dir], { TRIBUTARY_LOG_LEVEL: "info" });
    first.proc.stderr!.on("data", (d: Buffer) => {
      if (d.toString().includes('"event":"feature_backfill_progress"')) first.proc.kill("SIGKILL");
    });
    await first.result;
    const again = await runCli(["ingest", file, "--config", config, "--data-dir", dir]);
    expect(again.code, again.stderr).toBe(0);

    for (const T of [Date.UTC(2026, 5, 3, 15, 30), Date.UTC(2026, 9, 31, 0, 0), Date.UTC(2025, 11, 24, 8, 0)]) {
      const out = await runCli(["features", "--config", config, "--data-dir", dir, "--as-of", new Date(T).toISOString(), "--format", "csv"]);
      expect(out.code, out.stderr).toBe(0);
      const got = new Map((parse(out.stdout, { columns: true }) as Record<string, string>[]).map((r) => [r.customer_id, r]));
      const want = new Map<string, { spend7: number; eur: number }>();
      for (const x of rows) {
        if (x.at >= T) continue;
        const w = want.get(x.customer) ?? want.set(x.customer, { spend7: 0, eur: 0 }).get(x.customer)!;
        if (x.at >= T - 7 * DAY) w.spend7 += x.amount * (x.currency === "EUR" ? 1.08 : 1);
        if (x.currency === "EUR") w.eur++;
      }
      expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
      for (const [id, w] of want) {
        expect(Number(got.get(id)!.eur_count), `${id} eur_count`).toBe(w.eur);
        expect(Math.abs(Number(got.get(id)!.spend_last_7_days) - w.spend7), `${id} spend_last_7_days`).toBeLessThanOrEqual(0.0101);
      }
    }
  });

  it("puts records before 1970 on the same UTC day as the live path does (floor, not truncation)", async () => {
    const base = tmp();
    const file = join(base, "transactions.ndjson");
    const at = ["1969-12-02T08:00:00Z", "1969-12-31T12:00:00Z", "1970-01-01T00:00:00Z", "1970-01-02T09:00:00Z", "1969-11-02T23:00:00Z"];
    writeFileSync(file, at.map((t, i) => JSON.stringify({ transaction_id: `p${i}`, customer_id: "old", amount: 10 + i, currency: "USD", transaction_date: t })).join("\n") + "\n");
    const limits = 'limits:\n  minEventTime: "1960-01-01T00:00:00Z"\n';
    const withFeatures = join(base, "with.yaml");
    writeFileSync(withFeatures, limits + CONFIG);
    const without = join(base, "without.yaml");
    writeFileSync(without, limits);
    const live = join(base, "live");
    const later = join(base, "later");
    expect((await runCli(["ingest", file, "--config", withFeatures, "--data-dir", live])).code).toBe(0);
    expect((await runCli(["ingest", file, "--config", without, "--data-dir", later])).code).toBe(0);
    const r = await runCli(["ingest", file, "--config", withFeatures, "--data-dir", later]);
    expect(r.code, r.stderr).toBe(0);
    const rows = buckets(live) as { feature: string; day: number }[];
    expect(rows.filter((x) => x.feature === "spend_last_7_days").map((x) => x.day)).toEqual([-60, -30, -1, 0, 1]);
    expect(buckets(later)).toEqual(rows);
  });
});


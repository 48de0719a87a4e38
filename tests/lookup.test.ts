/**
 * One customer's features through `FeatureReader.lookup` (what `features.get`, `GET
 * /features/<id>` and `features --customer` serve), which takes the partial days at the window's
 * edges from gold's buckets when no edge cuts them, against the whole feature table `compute`
 * gives, which always reads those edges from silver:
 * equal rows at midnights, mid-day instants, instants equal to a record's event time or 1 ms
 * after it, instants before future-dated records, for customers with and without records on the
 * edge days, custom features with and without windows included. Also for buckets
 * migrated from a gold without event-time bounds, where only silver can tell.
 */
import { describe, expect, it } from "vitest";
import { Subject, from } from "rxjs";
import Database from "better-sqlite3";
import { join } from "node:path";
import { createTopology } from "../src/topology.js";
import { FeatureReader } from "../src/features.js";
import type { SourceMessage } from "../src/types.js";
import { parseConfig } from "../src/config.js";
import { customFeaturesOf } from "../src/model/features.js";
import { FOLD_POLICY, GoldFolder } from "../src/sinks/gold-layout.js";
import { GOLD_MIGRATIONS } from "../src/sinks/gold.js";
import { SilverStore } from "../src/sinks/silver.js";
import { openLayer } from "../src/sinks/database.js";
import { tempDirs } from "./helpers/tmp.js";
import { until } from "./helpers/poll.js";

const tmp = tempDirs("lookup");
const DAY = 86_400_000;
const HOUR = 3_600_000;
const enc = new TextEncoder();
const BASE = Date.UTC(2026, 5, 1);
const CUSTOM = [
  { name: "spend_7d", from: "transactions", aggregate: "sum", field: "amount_base", window: "7d" },
  { name: "max_tx_2d", from: "transactions", aggregate: "max", field: "amount_base", window: "2d" },
  { name: "mobile_sessions_30d", from: "sessions", aggregate: "count", where: { device_type: "mobile" }, window: "30d" },
  { name: "last_event", from: "events", aggregate: "max", field: "event_timestamp" },
] as const;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

/** Records of 14 customers over 45 days, many of them on the days that the instants below cut. */
interface Placed {
  readonly c: string;
  readonly at: number;
  readonly entity: string;
}

function workload(): { messages: SourceMessage[]; placed: Placed[] } {
  const r = rng(7);
  const bodies: [string, Record<string, unknown>][] = [];
  const placed: Placed[] = [];
  for (let k = 0; k < 12; k++) {
    bodies.push(["customers", { customer_id: `c${k}`, registration_date: k % 4 === 0 ? null : new Date(BASE + Math.floor(r() * 40 * DAY)).toISOString(), customer_segment: k % 3 ? "smb" : "premium" }]);
  }
  for (let i = 0; i < 1_200; i++) {
    const c = `c${Math.floor(r() * 14)}`;
    // Half the records on days 30–32 and 0–2 (today and the window's first day for T on day 31–32).
    const day = r() < 0.5 ? [0, 1, 2, 30, 31, 32][Math.floor(r() * 6)]! : Math.floor(r() * 45);
    const at = BASE + day * DAY + Math.floor(r() * DAY);
    const iso = new Date(at).toISOString();
    const kind = r();
    placed.push({ c, at, entity: kind < 0.4 ? "transactions" : kind < 0.6 ? "sessions" : kind < 0.8 ? "interactions" : "events" });
    if (kind < 0.4) bodies.push(["transactions", { transaction_id: `t${i}`, customer_id: c, amount: Math.round(r() * 50_000) / 100, currency: "USD", transaction_date: iso }]);
    else if (kind < 0.6) bodies.push(["sessions", { session_id: `s${i}`, customer_id: c, session_start: iso, session_end: new Date(at + Math.floor(r() * HOUR)).toISOString(), device_type: r() < 0.5 ? "mobile" : "desktop" }]);
    else if (kind < 0.8) bodies.push(["interactions", { interaction_id: `i${i}`, customer_id: c, interaction_date: iso, interaction_type: "chat" }]);
    else bodies.push(["events", { event_id: `e${i}`, customer_id: c, event_type: "click", event_timestamp: iso }]);
  }
  const messages = bodies.map(([entity, body], i) => ({
    origin: "test:lookup",
    originSeq: i + 1,
    subject: `tributary.${entity}`,
    contentType: "application/json",
    msgId: null,
    receivedAt: BASE + 50 * DAY,
    publishedAt: null,
    data: enc.encode(JSON.stringify(body)),
  }));
  return { messages, placed };
}

/**
 * Midnights and mid-day instants, and instants where an edge falls on a bucket's first or last
 * record: T at, or 1 ms after, the latest record of a customer's day (today's edge), and T − 30
 * days, T − 7 days or T − 2 days at, or 1 ms after, the first or last transaction of a day (the
 * window's first day).
 */
function instants(placed: readonly Placed[]): number[] {
  const out = [BASE + 31 * DAY, BASE + 32 * DAY, BASE + 60 * DAY, BASE + 31 * DAY + 13 * HOUR + 7, BASE + 32 * DAY + 23 * HOUR, BASE + 1 * DAY + 5 * HOUR];
  // Days 41–44: where a fold of everything but the two newest days ends (history's last day, the first recent one).
  for (let d = 41; d <= 44; d++) out.push(BASE + d * DAY, BASE + d * DAY + 11 * HOUR, BASE + d * DAY + 23 * HOUR + 59 * 60_000);
  const buckets = new Map<string, Placed[]>();
  for (const p of placed) {
    const day = Math.floor((p.at - BASE) / DAY);
    if (day % 30 > 2 || !p.c.endsWith("1")) continue;
    const key = `${p.c} ${day}`;
    buckets.set(key, [...(buckets.get(key) ?? []), p]);
  }
  for (const b of buckets.values()) {
    const last = Math.max(...b.map((p) => p.at));
    out.push(last, last + 1);
    const tx = b.filter((p) => p.entity === "transactions").map((p) => p.at);
    if (tx.length === 0) continue;
    for (const edge of [Math.min(...tx), Math.max(...tx)]) for (const w of [30, 7, 2]) out.push(edge + w * DAY, edge + w * DAY + 1);
  }
  return out;
}

async function ingest(dataDir: string, messages: SourceMessage[]): Promise<void> {
  const t = createTopology({
    dataDir,
    source: { kind: "observable", messages: from(messages) },
    metrics: false,
    config: { storage: { commitThread: "inline" }, batch: { maxRecords: 97 }, features: { custom: [...CUSTOM] } },
  });
  await t.start();
  await t.done;
}

function expectSameAsCompute(reader: FeatureReader, ids: readonly string[], Ts: readonly number[]): number {
  let rows = 0;
  for (const T of Ts) {
    const all = new Map(reader.compute(T).map((row) => [row.customer_id, row]));
    for (const id of ids) {
      const got = reader.lookup(T, id);
      expect(got, `${id} at ${new Date(T).toISOString()}`).toEqual(all.get(id) ?? null);
      if (got) rows++;
    }
  }
  return rows;
}

describe("FeatureReader.lookup", () => {
  it("reads a gold an older tributary wrote (schema 5, not yet migrated by a writer) through the whole table", () => {
    const dir = tmp();
    new SilverStore(dir, { synchronous: "normal", busyTimeout: 1_000 }).close();
    const gold = openLayer(dir, "gold", GOLD_MIGRATIONS.slice(0, 5), { synchronous: "normal", busyTimeout: 1_000 });
    const day = Math.floor(BASE / DAY);
    gold.prepare("INSERT INTO customer_daily VALUES ('c1', ?, 2, 7000000, ?, ?, 1, 60000, 0, 3)").run(day, BASE + HOUR, BASE + 2 * HOUR);
    gold.prepare("INSERT INTO customer_daily VALUES ('c2', ?, 1, 1000000, ?, ?, 0, 0, 1, 0)").run(day + 1, BASE + DAY, BASE + DAY);
    gold.prepare("INSERT INTO customer_profile VALUES ('c3', 'smb', NULL, 1)").run();
    gold.close();
    const reader = new FeatureReader(dir);
    try {
      for (const [T, listed] of [[BASE + 3 * DAY, ["c1", "c2", "c3"]], [BASE + DAY + HOUR, ["c1", "c3"]]] as const) {
        const all = reader.compute(T);
        expect(all.map((r) => r.customer_id)).toEqual(listed);
        for (const id of ["c1", "c2", "c3", "nobody"]) expect(reader.lookup(T, id)).toEqual(all.find((r) => r.customer_id === id) ?? null);
      }
    } finally {
      reader.close();
    }
  });

  const custom = customFeaturesOf(parseConfig({ features: { custom: [...CUSTOM] } }).features.custom);
  const ids = [...Array.from({ length: 14 }, (_, k) => `c${k}`), "nobody"];

  it("gives the row compute gives at every instant (midnights, mid-day, at and around records on the edge days), however gold's days are folded", async () => {
    const dir = tmp();
    const { messages, placed } = workload();
    await ingest(dir, messages);
    const reader = new FeatureReader(dir, { features: custom });
    const gold = new Database(join(dir, "gold.sqlite"));
    try {
      const Ts = instants(placed);
      expect(expectSameAsCompute(reader, ids, Ts)).toBeGreaterThan(1_000);
      // Half-way through a fold (some customers' days summed into their summaries, the others not yet), then folded.
      const folder = new GoldFolder(gold, { ...FOLD_POLICY, chunkRows: 40 });
      const now = BASE + 50 * DAY;
      for (let i = 0; i < 3; i++) folder.step({ force: true, now });
      expect(folder.state().moving_to).not.toBeNull();
      expectSameAsCompute(reader, ids, Ts);
      folder.run({ force: true, now });
      expect(gold.prepare("SELECT count(*) FROM customer_summary").pluck().get()).toBeGreaterThan(10);
      expectSameAsCompute(reader, ids, Ts);
    } finally {
      gold.close();
      reader.close();
    }
  });

  // The topology's lookups skip the days its writer's presence bitmaps rule out: built from the
  // buckets a previous run left, then marked by each commit, on the commit thread or inline.
  for (const thread of ["worker", "inline"] as const) {
    it(`features.get of a running topology (${thread} commits) gives compute's row at every instant, with the writer's presence bitmaps`, async () => {
      const dir = tmp();
      const { messages, placed } = workload();
      await ingest(dir, messages.slice(0, 700));
      const source = new Subject<SourceMessage>();
      const t = createTopology({
        dataDir: dir,
        source: { kind: "observable", messages: source },
        metrics: false,
        config: { storage: { commitThread: thread }, batch: { maxRecords: 61, maxWait: 5 }, features: { custom: [...CUSTOM] } },
      });
      await t.start();
      const reader = new FeatureReader(dir, { features: custom });
      const gold = new Database(join(dir, "gold.sqlite"), { readonly: true });
      const position = () => gold.prepare("SELECT position FROM checkpoint WHERE layer = 'gold'").pluck().get() as number;
      const same = (Ts: readonly number[]) => {
        let rows = 0;
        for (const T of Ts) {
          const all = new Map(reader.compute(T).map((row) => [row.customer_id, row]));
          for (const id of ids) {
            const got = t.features.get(id, T);
            expect(got, `${id} at ${new Date(T).toISOString()}`).toEqual(all.get(id) ?? null);
            if (got) rows++;
          }
        }
        return rows;
      };
      try {
        const Ts = instants(placed);
        // Only what the previous run left, through the rebuilt bitmaps.
        expect(same(Ts)).toBeGreaterThan(500);
        // Then the rest, its days in any order (late and new ones), marked as they commit.
        for (const m of messages.slice(700)) source.next(m);
        await until("gold to apply every message", () => position() === messages.length, 60_000);
        expect(same(Ts)).toBeGreaterThan(1_000);
      } finally {
        source.complete();
        await t.done;
        reader.close();
        gold.close();
      }
    });
  }

  it("reads silver for buckets gold wrote before it kept their event times, and still gives compute's row", async () => {
    const dir = tmp();
    const { messages, placed } = workload();
    await ingest(dir, messages);
    // As a gold from before schema 6 left them: no event-time bounds.
    const gold = new Database(join(dir, "gold.sqlite"));
    gold.exec("UPDATE customer_daily SET max_at = NULL WHERE day % 2 = 0; UPDATE feature_daily SET min_at = NULL, max_at = NULL WHERE day % 3 = 0");
    gold.close();
    const reader = new FeatureReader(dir, { features: custom });
    try {
      expectSameAsCompute(reader, ids, instants(placed));
    } finally {
      reader.close();
    }
  });
});

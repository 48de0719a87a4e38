/**
 * Silver retention on real SQLite files: event records gold has applied whose event time is
 * before the horizon go, their ids stay, and a later copy of one is still a duplicate (live and
 * when silver replays bronze); nothing gold has not applied goes; features at instants the horizon
 * does not reach equal those of a data dir without retention, and the others are refused or, at
 * 00:00Z, exact from gold; quarantine counts and each customer's profile after the horizon survive.
 */
import { describe, expect, it } from "vitest";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { Subject, from } from "rxjs";
import Database from "better-sqlite3";
import { createTopology } from "../src/topology.js";
import { pino } from "pino";
import { FeatureReader } from "../src/features.js";
import { startHttpServer } from "../src/http.js";
import { BronzeStore } from "../src/sinks/bronze.js";
import { SilverPruner, silverHorizon } from "../src/sinks/silver.js";
import { readStatus } from "../src/status.js";
import { trainingSet } from "../src/serving/training-set.js";
import type { SourceMessage } from "../src/types.js";
import { tempDirs } from "./helpers/tmp.js";
import { until } from "./helpers/poll.js";
import { runCli } from "./helpers/cli.js";

const tmp = tempDirs("retention-silver");
const DAY = 86_400_000;
const NOW = Date.now();
const SILVER_DAYS = 400;
const enc = new TextEncoder();
const iso = (ms: number) => new Date(ms).toISOString();

/** The horizon (a UTC day) retention may use during this test: the day of now − 400 days. */
const horizonDays = () => new Set([Math.floor((NOW - SILVER_DAYS * DAY) / DAY), Math.floor((Date.now() - SILVER_DAYS * DAY) / DAY)]);

let seq = 0;
function message(entity: string, fields: Record<string, unknown>, at: { receivedAt?: number; publishedAt?: number | null } = {}): SourceMessage {
  seq++;
  return {
    origin: "test:silver-retention",
    originSeq: seq,
    subject: `tributary.${entity}`,
    data: enc.encode(JSON.stringify(fields)),
    receivedAt: at.receivedAt ?? NOW,
    publishedAt: at.publishedAt ?? null,
    contentType: "application/json",
    msgId: null,
  };
}

interface Tx {
  id: string;
  customer: string;
  amount: number;
  at: number;
}
const tx = (t: Tx) => message("transactions", { transaction_id: t.id, customer_id: t.customer, amount: t.amount, currency: "USD", transaction_date: iso(t.at) });

/**
 * 300 transactions 500 days old (before the horizon) and 200 from the last 10 days, over 30
 * customers; 20 quarantined messages received 500 days ago and 5 received now; customer c0's
 * profile in three versions (available 600 and 450 days ago, and 5 days ago), c1's in one old one.
 */
function workload(): { messages: SourceMessage[]; txs: Tx[] } {
  seq = 0;
  const txs: Tx[] = [];
  for (let i = 0; i < 500; i++) {
    const at = i < 300 ? NOW - 500 * DAY + i * 3_600_000 : NOW - 10 * DAY + (i - 300) * 60_000;
    txs.push({ id: `t${i}`, customer: `c${i % 30}`, amount: 1 + (i % 17), at });
  }
  const messages = [
    message("customers", { customer_id: "c0", customer_segment: "bronze" }, { publishedAt: NOW - 600 * DAY }),
    message("customers", { customer_id: "c1", customer_segment: "gold" }, { publishedAt: NOW - 590 * DAY }),
    message("customers", { customer_id: "c0", customer_segment: "silver" }, { publishedAt: NOW - 450 * DAY }),
    ...txs.slice(0, 300).map(tx),
    ...Array.from({ length: 20 }, (_, i) => message("transactions", { transaction_id: `bad${i}` }, { receivedAt: NOW - 500 * DAY + i })),
    message("customers", { customer_id: "c0", customer_segment: "platinum" }, { publishedAt: NOW - 5 * DAY }),
    ...txs.slice(300).map(tx),
    ...Array.from({ length: 5 }, (_, i) => message("transactions", { transaction_id: `worse${i}` })),
  ];
  return { messages, txs };
}

const spendOf = (txs: readonly Tx[]) => {
  const m = new Map<string, number>();
  for (const t of txs) m.set(t.customer, (m.get(t.customer) ?? 0) + t.amount);
  return m;
};

function readSilver<T>(dir: string, f: (db: Database.Database) => T): T {
  const db = new Database(join(dir, "silver.sqlite"), { readonly: true });
  try {
    return f(db);
  } finally {
    db.close();
  }
}
const silverCount = (dir: string, sql: string) => readSilver(dir, (db) => db.prepare(sql).pluck().get() as number);
/** The workload is in, and everything before the horizon has gone: 300 records, 20 quarantine entries and c0's oldest profile. */
const pruneDone = (dir: string) =>
  silverCount(dir, "SELECT (SELECT records FROM retention) = 300 AND (SELECT count(*) FROM quarantine) = 5 AND (SELECT count(*) FROM customer_history) = 3") === 1;

const config = (thread: "inline" | "worker", silver: string | 0 = `${SILVER_DAYS}d`) => ({
  storage: { commitThread: thread },
  retention: { bronze: 0, silver, pruneEvery: "100ms" },
  batch: { maxRecords: 50 },
});

/** Runs `messages` through a topology to the end of its source (which closes it: nothing is pruned then). */
async function runToEnd(dir: string, cfg: object, messages: readonly SourceMessage[]): Promise<void> {
  const t = createTopology({ dataDir: dir, source: { kind: "observable", messages: from(messages) }, metrics: false, config: cfg });
  await t.start();
  await t.done;
  await t.stop();
}

/** Runs `messages` through a topology with a live source until `done` holds, then stops it. */
async function runLive(dir: string, cfg: object, messages: readonly SourceMessage[], done: () => boolean, what: string): Promise<void> {
  const live = new Subject<SourceMessage>();
  const t = createTopology({ dataDir: dir, source: { kind: "observable", messages: live }, metrics: false, config: cfg });
  await t.start();
  for (const m of messages) live.next(m);
  try {
    await until(what, done, 20_000);
  } finally {
    await t.stop();
  }
}

describe("silver retention", () => {
  for (const thread of ["inline", "worker"] as const) {
    it(`deletes applied records before the horizon, keeps their ids, and a later copy is still a duplicate (${thread} commits)`, async () => {
      const dir = tmp();
      const { messages, txs } = workload();
      await runLive(dir, config(thread), messages, () => pruneDone(dir), "retention to delete the 300 old transactions");

      const H = readSilver(dir, (db) => silverHorizon(db));
      expect(horizonDays().has(H! / DAY), `horizon ${iso(H!)}`).toBe(true);
      expect(silverCount(dir, "SELECT min(transaction_at) FROM transactions")).toBe(txs[300]!.at);
      expect(readSilver(dir, (db) => db.prepare("SELECT id FROM pruned_ids WHERE entity = 'transactions' ORDER BY id").pluck().all())).toEqual(
        txs.slice(0, 300).map((t) => t.id).sort(),
      );
      expect(readSilver(dir, (db) => db.prepare("SELECT records FROM retention").pluck().get())).toBe(300);
      // c0's history keeps its latest version before the horizon (silver) and the one after; c1's only one stays.
      expect(readSilver(dir, (db) => db.prepare("SELECT customer_id, customer_segment FROM customer_history ORDER BY bronze_seq").raw().all())).toEqual([
        ["c1", "gold"],
        ["c0", "silver"],
        ["c0", "platinum"],
      ]);
      // Quarantine received before the horizon went, and is still counted; the 5 received now stay.
      let status = readStatus(dir);
      expect(status.quarantine.missing_field).toBe(25);
      expect(silverCount(dir, "SELECT count(*) FROM quarantine")).toBe(5);
      expect(status.silver.transactions).toBe(500);
      expect(status.silverRetention).toEqual({ horizon: iso(H!), pruned: 300 });
      // A training set is computed from silver's records: with some deleted, it refuses, naming the horizon.
      await expect(trainingSet(dir, [{ customer_id: "c0", label_time: new Date().toISOString() }])).rejects.toThrow(
        `silver retention has deleted 301 records with event times before ${iso(H!)}`,
      );

      // Gold keeps every day: the lifetime spend counts the deleted records.
      const spend = spendOf(txs);
      const reader = new FeatureReader(dir);
      try {
        const now = reader.compute(Date.now());
        for (const [c, total] of spend) expect(now.find((r) => r.customer_id === c)?.total_spend, c).toBe(total);
      } finally {
        reader.close();
      }

      // Copies of 50 deleted ids (other amounts, other times) and of 10 kept ones, then a new,
      // late record from before the horizon: only the last one counts.
      const late: Tx = { id: "late-1", customer: "c3", amount: 1000, at: NOW - 480 * DAY };
      const again = [
        ...txs.slice(0, 50).map((t) => tx({ ...t, amount: 99, at: t.at + DAY })),
        ...txs.slice(300, 310).map((t) => tx({ ...t, amount: 99 })),
        tx(late),
      ];
      // The 50 copies of deleted records leave their entries too (swept: their originals are gone)
      // and stay counted; the 10 copies of kept records keep theirs until those go.
      await runLive(
        dir,
        config(thread),
        again,
        () => silverCount(dir, "SELECT count(*) FROM pruned_ids WHERE id = 'late-1'") === 1 && silverCount(dir, "SELECT count(*) FROM duplicates") === 10,
        "the late record to be applied and deleted, and the copies of deleted records swept",
      );
      expect(readSilver(dir, (db) => db.prepare("SELECT entity_id FROM duplicates ORDER BY entity_id").pluck().all())).toEqual(txs.slice(300, 310).map((t) => t.id).sort());
      expect(silverCount(dir, "SELECT n FROM duplicates_pruned WHERE entity = 'transactions'")).toBe(50);
      status = readStatus(dir);
      expect(status.duplicates.transactions).toBe(60);
      expect(status.silver.transactions).toBe(501);
      // Every message once: valid + duplicates + quarantined = bronze (bronze retention is off here).
      const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);
      expect(sum(status.silver) + sum(status.duplicates) + sum(status.quarantine)).toBe(status.bronze.messages);
      spend.set("c3", spend.get("c3")! + 1000);
      const after = new FeatureReader(dir);
      try {
        const now = after.compute(Date.now());
        for (const [c, total] of spend) expect(now.find((r) => r.customer_id === c)?.total_spend, c).toBe(total);
      } finally {
        after.close();
      }
    });
  }

  it("recognises a copy of a deleted record when silver replays it from bronze", async () => {
    const dir = tmp();
    const { messages, txs } = workload();
    await runLive(dir, config("inline"), messages, () => pruneDone(dir), "retention to delete the old records");
    // As after a crash between the bronze and silver commits: bronze holds messages silver has not applied.
    const bronze = new BronzeStore(dir, { synchronous: "normal", busyTimeout: 1000 });
    try {
      bronze.append(txs.slice(0, 20).map((t) => ({ msg: tx({ ...t, amount: 77 }) })));
    } finally {
      bronze.close();
    }
    await runToEnd(dir, config("inline"), []);
    expect(silverCount(dir, "SELECT count(*) FROM duplicates")).toBe(20);
    expect(silverCount(dir, "SELECT count(*) FROM transactions")).toBe(200);
    expect(readStatus(dir).silver.transactions).toBe(500);
  });

  it("never deletes a record gold has not applied, and its delete guard refuses any delete that would forget an id", async () => {
    const dir = tmp();
    const { messages } = workload();
    // A data dir built without retention, then pruned by hand with gold's position held back.
    await runToEnd(dir, config("inline", 0), messages);
    {
      const db = new Database(join(dir, "silver.sqlite"));
      try {
        const seqOf = (id: string) => db.prepare("SELECT bronze_seq FROM transactions WHERE transaction_id = ?").pluck().get(id) as number;
        const applied = seqOf("t149");
        const pruner = new SilverPruner(db);
        const horizonDay = Math.floor((NOW - SILVER_DAYS * DAY) / DAY);
        let deleted = 0;
        for (let n = -1; n !== 0; deleted += n) n = pruner.prune({ applied, horizonDay, limit: 40 }).records;
        // t0..t149 went (in batches of 40); t150..t299, old but above gold's position, stayed.
        expect(deleted).toBe(150);
        expect(db.prepare("SELECT count(*) FROM transactions WHERE transaction_at < ?").pluck().get(horizonDay * DAY)).toBe(150);
        expect(db.prepare("SELECT min(bronze_seq) FROM transactions").pluck().get()).toBe(seqOf("t150"));
        expect(db.prepare("SELECT floor FROM retention").pluck().get()).toBe(applied);
        // The guards: no delete above the floor, none of a record whose id is not kept, no horizon going back.
        db.prepare("INSERT INTO pruned_ids (entity, id) VALUES ('transactions', 't200')").run();
        expect(() => db.prepare("DELETE FROM transactions WHERE transaction_id = 't200'").run()).toThrow(/only records gold has applied/);
        db.prepare("UPDATE retention SET floor = ?").run(seqOf("t300") + 1_000);
        expect(() => db.prepare("DELETE FROM transactions WHERE transaction_id = 't300'").run()).toThrow(/once their ids are kept/);
        expect(db.prepare("DELETE FROM transactions WHERE transaction_id = 't200'").run().changes).toBe(1);
        expect(() => db.prepare("UPDATE retention SET horizon_day = horizon_day - 1").run()).toThrow(/only moves forward/);
        expect(() => db.prepare("UPDATE retention SET horizon_day = NULL").run()).toThrow(/only moves forward/);
      } finally {
        db.close();
      }
    }
  });

  it("gives the features of a data dir without retention wherever the horizon allows, exact from gold at 00:00Z, and refuses the rest naming the horizon", async () => {
    const kept = tmp();
    const pruned = tmp();
    const { messages } = workload();
    await runToEnd(kept, config("inline", 0), messages);
    await runLive(pruned, config("worker"), messages, () => pruneDone(pruned), "retention to delete the old records");
    const H = readSilver(pruned, (db) => silverHorizon(db))!;
    const a = new FeatureReader(kept);
    const b = new FeatureReader(pruned);
    try {
      const exact = [
        Date.now(),
        H + 30 * DAY, // 00:00Z, 30 days after the horizon
        H + 30 * DAY + 1, // the first instant whose window starts after the horizon
        NOW - 8 * DAY + 12_345,
        H - 100 * DAY, // 00:00Z long before: whole days from gold
        Math.floor((NOW - 500 * DAY) / DAY) * DAY + 2 * DAY, // 00:00Z amid the deleted records
      ];
      for (const T of exact) {
        const want = a.compute(T);
        expect(want.length, iso(T)).toBeGreaterThan(0);
        expect(b.compute(T), iso(T)).toEqual(want);
        expect(b.compute(T, "c4"), iso(T)).toEqual(a.compute(T, "c4"));
      }
      const refusal = `silver retention has deleted records before ${iso(H)} (its horizon)`;
      for (const T of [H + 30 * DAY - 1, H + 12 * 3_600_000, NOW - 499 * DAY + 1]) {
        expect(() => b.compute(T), iso(T)).toThrow(refusal);
        expect(a.compute(T).length).toBeGreaterThan(0);
      }
      // Over HTTP the refusal is the client's to change: 422 with the message, not a 500.
      const backend = { metrics: async () => ({ contentType: "text/plain", body: "" }), health: () => ({ ok: true }), ready: () => ({ ok: true }) };
      const { server, address } = await startHttpServer(
        { host: "127.0.0.1", port: 0 },
        { ...backend, features: (id, asOf) => b.compute(asOf ?? Date.now(), id)[0] ?? null },
        pino({ level: "silent" }),
      );
      try {
        const get = async (T: number) => {
          const res = await fetch(`http://127.0.0.1:${address.port}/features/c4?as_of=${iso(T)}`);
          return { status: res.status, body: (await res.json()) as Record<string, unknown> };
        };
        const refused = await get(H + 12 * 3_600_000);
        expect(refused.status).toBe(422);
        expect(refused.body.error).toContain(refusal);
        expect(await get(H + 30 * DAY + 1)).toEqual({ status: 200, body: JSON.parse(JSON.stringify(a.compute(H + 30 * DAY + 1, "c4")[0])) });
      } finally {
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
      }
      // On the command line the refusal fails the same way until the instant changes: exit 2, one line.
      const cli = await runCli(["features", "--data-dir", pruned, "--as-of", iso(H + 12 * 3_600_000)]);
      expect(cli.code, cli.stderr).toBe(2);
      expect(cli.stderr.trim().split("\n")).toEqual([expect.stringContaining(refusal)]);
    } finally {
      a.close();
      b.close();
    }
    // A horizon recorded with nothing deleted under it yet (retention records it first) refuses nothing.
    const db = new Database(join(kept, "silver.sqlite"));
    db.prepare("UPDATE retention SET horizon_day = ?").run(H / DAY);
    db.close();
    const c = new FeatureReader(kept);
    const old = NOW - 499 * DAY + 1;
    let before: unknown;
    try {
      for (const T of [H + 12 * 3_600_000, old]) expect(c.compute(T).length, iso(T)).toBeGreaterThan(0);
      before = c.compute(old);
    } finally {
      c.close();
    }
    // Nor does recovery: gold rebuilt from that silver, and a custom feature backfilled from it, start.
    for (const x of ["", "-wal", "-shm"]) rmSync(join(kept, "gold.sqlite" + x), { force: true });
    const rebuilt = createTopology({
      dataDir: kept,
      source: { kind: "observable", messages: from([]) },
      metrics: false,
      config: { ...config("inline", 0), features: { custom: [{ name: "big_spend", from: "transactions", aggregate: "sum", field: "amount", window: "30d" }] } },
    });
    await rebuilt.start();
    await rebuilt.stop();
    const d = new FeatureReader(kept);
    const e = new FeatureReader(kept, { features: rebuilt.custom });
    try {
      expect(d.compute(old)).toEqual(before);
      expect(e.compute(NOW).some((r) => typeof r.big_spend === "number" && r.big_spend > 0)).toBe(true);
    } finally {
      d.close();
      e.close();
    }
  });

  it("refuses to rebuild gold from a pruned silver, and to backfill a custom feature from it", async () => {
    const dir = tmp();
    const { messages } = workload();
    await runLive(dir, config("inline"), messages, () => pruneDone(dir), "retention to delete the old records");
    const withFeature = {
      ...config("inline"),
      features: { custom: [{ name: "big_spend", from: "transactions", aggregate: "sum", field: "amount", window: "30d" }] },
    };
    const backfill = createTopology({ dataDir: dir, source: { kind: "observable", messages: from([]) }, metrics: false, config: withFeature });
    await expect(backfill.start()).rejects.toThrow(/custom feature big_spend cannot be backfilled: silver retention has deleted the records before/);
    for (const x of ["", "-wal", "-shm"]) rmSync(join(dir, "gold.sqlite" + x), { force: true });
    const rebuild = createTopology({ dataDir: dir, source: { kind: "observable", messages: from([]) }, metrics: false, config: config("inline") });
    await expect(rebuild.start()).rejects.toThrow(/gold cannot be rebuilt from silver/);
  });
});

/**
 * Silver retention under kill -9: a daemon with `retention.silver: 350d` consumes a real
 * JetStream stream whose records span 400 to 310 days ago, so it deletes more than half of them
 * while it ingests, and is killed with SIGKILL in the middle of pruning, twice. Afterwards gold
 * equals an uninterrupted run without retention table for table, silver holds exactly that run's
 * records from the horizon on and the ids of the others, every message is counted once, and the
 * features at instants the horizon allows equal both that run's and an independent computation
 * from the published records; the others are refused, naming the horizon.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { generateWorkload, type GeneratedMessage } from "../src/sources/generator.js";
import { publishAll } from "../src/producers/publisher.js";
import { DEFAULT_RATES } from "../src/config.js";
import { referenceFeatures } from "../src/testing/reference.js";
import { startNatsServer, type NatsServer } from "../src/testing/nats-server.js";
import { runCli, startCli } from "./helpers/cli.js";
import { dumpLayers } from "./helpers/tables.js";
import { until } from "./helpers/poll.js";
import { expectFeaturesMatch, parseFeatureCsv } from "./helpers/compare.js";
import { tempDirs } from "./helpers/tmp.js";

const MESSAGES = 40_000;
const DAY = 86_400_000;
const START = Math.floor((Date.now() - 400 * DAY) / DAY) * DAY;
/** Each event table's event-time column. */
const EVENT_TIME: Record<string, string> = { transactions: "transaction_at", interactions: "interaction_at", events: "event_at", sessions: "session_start_at" };
const ID: Record<string, string> = { transactions: "transaction_id", interactions: "interaction_id", events: "event_id", sessions: "session_id" };
const tmp = tempDirs("retention-silver-e2e");
const iso = (ms: number) => new Date(ms).toISOString();

function query<T>(dir: string, layer: string, sql: string): T | undefined {
  const file = join(dir, `${layer}.sqlite`);
  if (!existsSync(file)) return undefined;
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(sql).pluck().get() as T;
  } catch {
    return undefined; // not created or migrated yet
  } finally {
    db.close();
  }
}
const prunedRecords = (dir: string) => query<number>(dir, "silver", "SELECT records FROM retention") ?? 0;

describe("silver retention and kill -9", () => {
  let server: NatsServer;
  let messages: GeneratedMessage[];
  let refDir: string;
  let reference: Record<string, unknown[]>;
  beforeAll(async () => {
    server = await startNatsServer();
    messages = [...generateWorkload({ seed: 23, messages: MESSAGES, startMs: START, spanDays: 90 })];
    const nc = await connect({ servers: server.url });
    try {
      await (await jetstreamManager(nc)).streams.add({ name: "TRIBUTARY", subjects: ["tributary.>"] });
      await publishAll(nc, messages);
    } finally {
      await nc.close();
    }
    refDir = tmp();
    const r = await runCli(["run", "--drain", "--nats", server.url, "--data-dir", refDir], { TRIBUTARY_NATS_CONSUMER: "reference" });
    expect(r.code, r.stderr).toBe(0);
    reference = dumpLayers(refDir);
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("keeps every count and feature exact when killed in the middle of pruning", async () => {
    const base = tmp();
    const dir = join(base, "data");
    const config = join(base, "tributary.yaml");
    writeFileSync(config, "retention:\n  silver: 350d\n  pruneEvery: 100ms\nbatch:\n  maxRecords: 500\n");
    const env = { TRIBUTARY_NATS_CONSUMER: "pruned" };
    const args = ["run", "--config", config, "--nats", server.url, "--data-dir", dir];
    for (let kill = 1; kill <= 2; kill++) {
      const before = prunedRecords(dir);
      const daemon = startCli(args, env);
      // Killed while pruning is under way: records deleted since this start, and more to come.
      await until(`pruning after start ${kill}`, () => prunedRecords(dir) > before + 500);
      daemon.proc.kill("SIGKILL");
      const r = await daemon.result;
      expect(r.signal ?? r.code).toBe("SIGKILL");
    }

    // A last run to the end of the stream and of the pruning, stopped as a service manager stops it.
    const daemon = startCli(args, env);
    const horizonStart = () => (query<number | null>(dir, "silver", "SELECT horizon_day FROM retention") ?? 0) * DAY;
    const due = () =>
      Object.entries(EVENT_TIME).reduce((n, [t, c]) => n + (query<number>(dir, "silver", `SELECT count(*) FROM ${t} WHERE ${c} < ${horizonStart()}`) ?? 1), 0);
    await until("every message applied and every due record deleted", () => query<number>(dir, "gold", "SELECT position FROM checkpoint WHERE layer = 'gold'") === MESSAGES && due() === 0);
    daemon.proc.kill("SIGTERM");
    const stopped = await daemon.result;
    expect(stopped.code, stopped.stderr).toBe(0);

    const H = horizonStart();
    const expectedDays = [Date.now(), START + 400 * DAY].map((t) => Math.floor((t - 350 * DAY) / DAY) * DAY);
    expect(expectedDays, `horizon ${iso(H)}`).toContain(H);
    const actual = dumpLayers(dir);
    // Gold keeps every day: table for table the run without retention.
    for (const t of ["customer_daily", "customer_profile", "customer_features", "checkpoint"]) expect(actual[`gold.${t}`], `gold.${t}`).toEqual(reference[`gold.${t}`]);
    // Silver: duplicates, quarantine, counts and profiles whole; event records from the horizon on, and the ids of the others.
    for (const t of ["customers", "quarantine", "accepted_counts", "checkpoint", "customer_history"]) expect(actual[`silver.${t}`], `silver.${t}`).toEqual(reference[`silver.${t}`]);
    const keptIds: string[] = [];
    let prunedTotal = 0;
    for (const [t, column] of Object.entries(EVENT_TIME)) {
      const rows = reference[`silver.${t}`] as Record<string, unknown>[];
      const old = rows.filter((r) => (r[column] as number) < H);
      expect(actual[`silver.${t}`], `silver.${t}`).toEqual(rows.filter((r) => (r[column] as number) >= H));
      keptIds.push(...old.map((r) => `${t}/${r[ID[t]!]}`));
      prunedTotal += old.length;
    }
    expect(prunedTotal).toBeGreaterThan(MESSAGES / 3);
    const db = new Database(join(dir, "silver.sqlite"), { readonly: true });
    try {
      expect((db.prepare("SELECT entity || '/' || id FROM pruned_ids").pluck().all() as string[]).sort()).toEqual(keptIds.sort());
      expect(db.prepare("SELECT records FROM retention").pluck().get()).toBe(prunedTotal);
      // Duplicate entries: the run's, less those of pruned originals, each still counted in duplicates_pruned.
      const key = (d: Record<string, unknown>) => `${d.entity}/${d.entity_id}`;
      const pruned = new Set(keptIds);
      const all = reference["silver.duplicates"] as Record<string, unknown>[];
      const left = actual["silver.duplicates"] as Record<string, unknown>[];
      const seqs = new Set(left.map((d) => d.bronze_seq));
      expect(all.filter((d) => seqs.has(d.bronze_seq)), "entries left are the run's").toEqual(left);
      const removed = all.filter((d) => !seqs.has(d.bronze_seq));
      expect(removed.length, "duplicate entries of pruned records removed").toBeGreaterThan(0);
      expect(removed.filter((d) => !pruned.has(key(d))), "removed only with their original").toEqual([]);
      const counted = Object.fromEntries(db.prepare("SELECT entity, n FROM duplicates_pruned").raw().all() as [string, number][]);
      const byEntity: Record<string, number> = {};
      for (const d of removed) byEntity[d.entity as string] = (byEntity[d.entity as string] ?? 0) + 1;
      expect(counted).toEqual(byEntity);
      expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
    } finally {
      db.close();
    }
    // Every message counted once.
    const status = JSON.parse((await runCli(["status", "--data-dir", dir, "--format", "json"])).stdout) as Record<string, Record<string, number>>;
    const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);
    expect(sum(status.silver!) + sum(status.duplicates!) + sum(status.quarantine!)).toBe(MESSAGES);
    expect(status.bronze!.messages).toBe(MESSAGES);

    // Features: exact wherever the horizon allows, equal to the run without retention and to the reference.
    const features = (d: string, T: number) => runCli(["features", "--data-dir", d, "--as-of", iso(T), "--format", "csv"]);
    const expectations = messages.map((m) => m.expect);
    for (const T of [H - 20 * DAY, H, H + 30 * DAY + 49_020_000, H + 45 * DAY + 1]) {
      const [got, want] = await Promise.all([features(dir, T), features(refDir, T)]);
      expect(got.code, got.stderr).toBe(0);
      expect(got.stdout, iso(T)).toBe(want.stdout);
      const expected = referenceFeatures(expectations, DEFAULT_RATES, T);
      expect(expected.length).toBeGreaterThan(100);
      expectFeaturesMatch(parseFeatureCsv(got.stdout), expected);
    }
    for (const T of [H + 5 * DAY + 21_600_000, H - 3 * DAY + 1]) {
      const refused = await features(dir, T);
      expect(refused.code, iso(T)).not.toBe(0);
      expect(refused.stderr).toContain(`silver retention has deleted records before ${iso(H)} (its horizon)`);
      expect((await features(refDir, T)).code).toBe(0);
    }
  });
});

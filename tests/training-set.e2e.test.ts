/**
 * Availability comes from JetStream itself: a record's time of availability is the time the
 * stream stored it. Through a real nats-server and the daemon's `run`: a first part of the stream
 * is stored and drained, a label instant T is taken, then late records (event times before T) are
 * published. `training-set --known-at label` at T must leave the late records out, `latest` must
 * count them, and both are checked against a plain computation over the records.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { parse } from "csv-parse/sync";
import { startNatsServer, type NatsServer } from "../src/testing/nats-server.js";
import { recordMessage } from "../src/producers/publisher.js";
import { DEFAULT_RATES } from "../src/config.js";
import { runCli } from "./helpers/cli.js";
import { publishToStream } from "./helpers/stream.js";
import { tempDirs } from "./helpers/tmp.js";

const tmp = tempDirs("training-e2e");
const HOUR = 3_600_000;

interface Tx {
  id: string;
  c: string;
  at: number;
  amount: number;
}

const txMessage = (t: Tx) => recordMessage("transactions", { transaction_id: t.id, customer_id: t.c, amount: t.amount, currency: "EUR", transaction_date: new Date(t.at).toISOString() });

describe("training sets over JetStream", () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await startNatsServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("take availability from the stream's stored time: label leaves out what arrived after T, latest counts it", async () => {
    const base = tmp();
    const dir = join(base, "data");
    const now = Date.now();
    const early: Tx[] = [];
    const late: Tx[] = [];
    for (let i = 0; i < 60; i++) early.push({ id: `e${i}`, c: `c${i % 6}`, at: now - (10 + i) * HOUR, amount: 10 + i });
    // Late: they happened before T (some before the early ones), but the stream stores them after T.
    for (let i = 0; i < 20; i++) late.push({ id: `l${i}`, c: `c${i % 4}`, at: now - (2 + i * 3) * HOUR, amount: 100 + i });

    expect(await publishToStream(server.url, early.map(txMessage))).toBe(early.length);
    let r = await runCli(["run", "--drain", "--nats", server.url, "--data-dir", dir]);
    expect(r.code, r.stderr).toBe(0);
    // Let the clock move past the early records' stored times, take T, and only then publish the late ones.
    await new Promise((res) => setTimeout(res, 50));
    const T = Date.now();
    await new Promise((res) => setTimeout(res, 50));
    expect(await publishToStream(server.url, late.map(txMessage))).toBe(late.length);
    r = await runCli(["run", "--drain", "--nats", server.url, "--data-dir", dir]);
    expect(r.code, r.stderr).toBe(0);

    // Silver holds the stream's times: every early record available by T, every late one after.
    const silver = new Database(join(dir, "silver.sqlite"), { readonly: true });
    const avail = new Map(silver.prepare("SELECT transaction_id, available_at FROM transactions").raw().all() as [string, number][]);
    silver.close();
    for (const t of early) expect(avail.get(t.id)!, t.id).toBeLessThanOrEqual(T);
    for (const t of late) expect(avail.get(t.id)!, t.id).toBeGreaterThan(T);

    const labels = join(base, "labels.csv");
    const customers = ["c0", "c1", "c2", "c3", "c4", "c5"];
    writeFileSync(labels, ["customer_id,label_time,label", ...customers.map((c) => `${c},${new Date(T).toISOString()},1`)].join("\n") + "\n");
    const expected = (policy: "label" | "latest", c: string) => {
      const counted = [...early, ...(policy === "latest" ? late : [])].filter((t) => t.c === c && t.at < T);
      const micros = counted.reduce((a, t) => a + Math.round(t.amount * DEFAULT_RATES.EUR! * 1e6), 0);
      return { purchase_frequency: String(counted.length), total_spend: String(Math.round(micros / 1e4) / 100) };
    };
    for (const policy of ["label", "latest"] as const) {
      const out = join(base, `${policy}.csv`);
      r = await runCli(["training-set", "--labels", labels, "--out", out, "--known-at", policy, "--data-dir", dir]);
      expect(r.code, r.stderr).toBe(0);
      const rows = parse(readFileSync(out), { columns: true }) as Record<string, string>[];
      expect(rows.map((x) => x.customer_id)).toEqual(customers);
      for (const row of rows) expect(row, `${policy} ${row.customer_id}`).toMatchObject({ ...expected(policy, row.customer_id!), feature_status: "ok", label: "1" });
    }
    // The late records change c0..c3 only, and only under latest.
    expect(expected("label", "c0")).not.toEqual(expected("latest", "c0"));
    expect(expected("label", "c5")).toEqual(expected("latest", "c5"));
  });
});

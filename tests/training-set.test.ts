/**
 * Point-in-time training sets against a brute-force computation over the generated records, on a
 * real topology and real SQLite files. The stream carries a broker time (publishedAt) per message,
 * in stream order, and some records arrive days after their event time, after some label times:
 * `--known-at label` must leave exactly those out, `latest` must count them and equal
 * `features --as-of`. The Parquet is read back with DuckDB; the manifest's digest is stable and
 * follows the content.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { from } from "rxjs";
import { parse } from "csv-parse/sync";
import { createTopology } from "../src/topology.js";
import { FeatureReader } from "../src/features.js";
import { customFeaturesOf } from "../src/model/features.js";
import { computeTrainingSet, labelsFromObjects, trainingSet, type TrainingSetRows } from "../src/serving/training-set.js";
import type { SourceMessage } from "../src/types.js";
import { openParquetWriter } from "../src/serving/parquet.js";
import { runCli } from "./helpers/cli.js";
import { tempDirs } from "./helpers/tmp.js";
import { useDuckDB } from "./helpers/duckdb.js";

const tmp = tempDirs("training");
const DAY = 86_400_000;
const HOUR = 3_600_000;
const RATES: Record<string, number> = { USD: 1, EUR: 1.08 };
const NOW = Date.UTC(2026, 11, 1);
const CUSTOM = [
  { name: "spend_last_7_days", from: "transactions", aggregate: "sum" as const, field: "amount_base", window: "7d" },
  { name: "max_transaction_value", from: "transactions", aggregate: "max" as const, field: "amount_base" },
];
const CONFIG = `currency:\n  rates: { USD: 1, EUR: 1.08 }\nfeatures:\n  custom:\n${CUSTOM.map((c) => `    - { name: ${c.name}, from: ${c.from}, aggregate: ${c.aggregate}, field: ${c.field}${c.window ? `, window: ${c.window}` : ""} }`).join("\n")}\n`;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

type Rec =
  | { kind: "tx"; id: string; c: string; at: number; avail: number; amount: number; currency: string }
  | { kind: "session"; id: string; c: string; at: number; avail: number; ms: number }
  | { kind: "interaction" | "event"; id: string; c: string; at: number; avail: number }
  | { kind: "profile"; c: string; avail: number; segment: string; registration: number | null };

/** 40 customers over 60 days to 2026-11-30; most records available minutes after they happen, one in ten days later. */
function workload(seed: number) {
  const r = rng(seed);
  const start = Date.UTC(2026, 9, 1);
  const recs: Rec[] = [];
  for (let i = 0; i < 2_500; i++) {
    const c = `c${Math.floor(r() * 40)}`;
    const at = start + Math.floor(r() * 60 * DAY);
    const late = r() < 0.1;
    const avail = at + (late ? Math.floor((1 + r() * 6) * DAY) : Math.floor(r() * 30 * 60_000));
    const k = r();
    if (k < 0.55) recs.push({ kind: "tx", id: `t${i}`, c, at, avail, amount: Math.round(r() * 40_000) / 100, currency: r() < 0.6 ? "USD" : "EUR" });
    else if (k < 0.75) recs.push({ kind: "session", id: `s${i}`, c, at, avail, ms: Math.floor(r() * 2 * HOUR) });
    else if (k < 0.9) recs.push({ kind: "interaction", id: `i${i}`, c, at, avail });
    else recs.push({ kind: "event", id: `e${i}`, c, at, avail });
  }
  // Profiles that change segment over time (c0..c19), registered on day 3.
  for (let k = 0; k < 20; k++) {
    for (const [d, segment] of [[2, "smb"], [25, "mid_market"], [50, "enterprise"]] as const) {
      recs.push({ kind: "profile", c: `c${k}`, avail: start + d * DAY + k * 60_000, segment, registration: start + 3 * DAY });
    }
  }
  // Stream order is the order the broker stored them in.
  recs.sort((a, b) => a.avail - b.avail);
  const enc = new TextEncoder();
  const body = (x: Rec): [string, Record<string, unknown>] => {
    const iso = (t: number) => new Date(t).toISOString();
    switch (x.kind) {
      case "tx":
        return ["transactions", { transaction_id: x.id, customer_id: x.c, amount: x.amount, currency: x.currency, transaction_date: iso(x.at) }];
      case "session":
        return ["sessions", { session_id: x.id, customer_id: x.c, session_start: iso(x.at), session_end: iso(x.at + x.ms), device_type: "web" }];
      case "interaction":
        return ["interactions", { interaction_id: x.id, customer_id: x.c, interaction_date: iso(x.at), interaction_type: "call" }];
      case "event":
        return ["events", { event_id: x.id, customer_id: x.c, event_timestamp: iso(x.at), event_type: "click" }];
      case "profile":
        return ["customers", { customer_id: x.c, customer_segment: x.segment, registration_date: x.registration === null ? null : iso(x.registration) }];
    }
  };
  const messages: SourceMessage[] = recs.map((x, i) => {
    const [entity, b] = body(x);
    return { origin: "test:training", originSeq: i + 1, subject: `tributary.${entity}`, data: enc.encode(JSON.stringify(b)), receivedAt: x.avail, publishedAt: x.avail, contentType: "application/json", msgId: null };
  });
  return { recs, messages };
}

const round = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;
const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

/** Every feature of customer c at T, from the records' definitions; null when the customer has no data. */
function bruteForce(recs: readonly Rec[], c: string, T: number, policy: "label" | "latest"): Record<string, unknown> | null {
  const known = (x: Rec) => policy === "latest" || x.avail <= T;
  const mine = recs.filter((x) => x.c === c && x.kind !== "profile" && x.at < T && known(x)) as Exclude<Rec, { kind: "profile" }>[];
  const profiles = recs.filter((x): x is Extract<Rec, { kind: "profile" }> => x.kind === "profile" && x.c === c && (policy === "latest" || x.avail <= T));
  const profile = profiles.at(-1);
  const tx = mine.filter((x): x is Extract<Rec, { kind: "tx" }> => x.kind === "tx");
  const sessions = mine.filter((x): x is Extract<Rec, { kind: "session" }> => x.kind === "session");
  const listed = mine.length > 0 || (profile !== undefined && (profile.registration === null || profile.registration < T));
  if (!listed) return null;
  const micros = (x: Extract<Rec, { kind: "tx" }>) => Math.round(x.amount * RATES[x.currency]! * 1e6);
  const spend = tx.reduce((a, x) => a + micros(x), 0) / 1e6;
  const recent = tx.filter((x) => x.at >= T - 30 * DAY);
  const last = tx.length ? Math.max(...tx.map((x) => x.at)) : null;
  const reg = profile?.registration ?? null;
  return {
    customer_segment: profile?.segment ?? "unknown",
    purchase_frequency: tx.length,
    total_spend: round(spend, 2),
    avg_transaction_value: tx.length ? round(spend / tx.length, 2) : null,
    first_transaction_at: tx.length ? Math.min(...tx.map((x) => x.at)) : null,
    last_transaction_at: last,
    recency_days: last === null ? null : round((T - last) / DAY, 6),
    transactions_last_30_days: recent.length,
    spend_last_30_days: round(recent.reduce((a, x) => a + micros(x), 0) / 1e6, 2),
    session_count: sessions.length,
    avg_session_duration_seconds: sessions.length ? round(sessions.reduce((a, x) => a + x.ms, 0) / 1000 / sessions.length, 3) : null,
    interaction_count: mine.filter((x) => x.kind === "interaction").length,
    event_count: mine.filter((x) => x.kind === "event").length,
    days_since_registration: reg !== null && reg < T ? round((T - reg) / DAY, 6) : null,
    spend_last_7_days: round(tx.filter((x) => x.at >= T - 7 * DAY).reduce((a, x) => a + micros(x), 0) / 1e6, 2),
    max_transaction_value: tx.length ? round(Math.max(...tx.map((x) => micros(x))) / 1e6, 2) : null,
  };
}

/** Label rows: each customer at mid-day instants, including just after late records' event times. */
function labelsFor(recs: readonly Rec[]) {
  const r = rng(3);
  const rows: { customer_id: string; label_time: string; churned: string }[] = [];
  const start = Date.UTC(2026, 9, 1);
  for (let k = 0; k < 42; k++) {
    for (let j = 0; j < 6; j++) rows.push({ customer_id: `c${k}`, label_time: new Date(start + Math.floor(r() * 58 * DAY)).toISOString(), churned: String(j % 2) });
  }
  // Right after a late record happened, before it arrived: label and latest must differ there.
  for (const x of recs.filter((x) => x.kind === "tx" && x.avail - x.at > DAY).slice(0, 15)) {
    rows.push({ customer_id: x.c, label_time: new Date((x as { at: number }).at + HOUR).toISOString(), churned: "1" });
  }
  return rows;
}

const duckdb = useDuckDB();

async function dataDirOf(messages: readonly SourceMessage[]): Promise<string> {
  const dir = tmp();
  const t = createTopology({
    dataDir: dir,
    source: { kind: "observable", messages: from(messages) },
    metrics: false,
    config: { currency: { rates: RATES }, features: { custom: CUSTOM } },
  });
  await t.start();
  await t.done;
  await t.stop();
  return dir;
}

describe("training sets", () => {
  const w = workload(11);
  const labels = labelsFor(w.recs);
  let dir: string;
  beforeAll(async () => {
    dir = await dataDirOf(w.messages);
  });
  const custom = customFeaturesOf(CUSTOM.map((c) => ({ ...c, window: c.window ? 7 * DAY : undefined })));

  it("equal a brute-force computation under both policies, which differ exactly where a late record was not yet known", async () => {
    const sets = {} as Record<"label" | "latest", TrainingSetRows>;
    for (const policy of ["label", "latest"] as const) {
      sets[policy] = (await trainingSet(dir, labels, { knownAt: policy, features: custom, now: NOW })) as TrainingSetRows;
      const rows = sets[policy].rows;
      expect(rows).toHaveLength(labels.length);
      rows.forEach((row, i) => {
        const l = labels[i]!;
        expect(row.customer_id, `row ${i}`).toBe(l.customer_id);
        expect(row.churned).toBe(l.churned);
        const want = bruteForce(w.recs, l.customer_id, Date.parse(l.label_time), policy);
        const label = `${policy} row ${i}: ${l.customer_id} at ${l.label_time}`;
        if (want === null) {
          expect(row.feature_status, label).toBe(l.customer_id === "c40" || l.customer_id === "c41" ? "unknown_customer" : "no_data");
          expect(row.purchase_frequency, label).toBeNull();
          return;
        }
        expect(row.feature_status, label).toBe("ok");
        for (const [k, v] of Object.entries(want)) expect(row[k], `${label} ${k}`).toEqual(v);
      });
    }
    let differ = 0;
    labels.forEach((l, i) => {
      const T = Date.parse(l.label_time);
      const lateUnknown = w.recs.some((x) => x.c === l.customer_id && (x.kind === "profile" ? x.avail > T : x.at < T && x.avail > T));
      const same = JSON.stringify(sets.label.rows[i]) === JSON.stringify(sets.latest.rows[i]);
      const bf = (p: "label" | "latest") => JSON.stringify(bruteForce(w.recs, l.customer_id, T, p));
      expect(same, `row ${i}`).toBe(bf("label") === bf("latest"));
      if (!same) {
        differ++;
        expect(lateUnknown, `row ${i} differs without a late record`).toBe(true);
      }
    });
    expect(differ).toBeGreaterThan(15);
  });

  it("is available from a topology, with its custom features", async () => {
    const t = createTopology({ dataDir: dir, source: { kind: "observable", messages: from([]) }, metrics: false, config: { currency: { rates: RATES }, features: { custom: CUSTOM } } });
    const fromTopology = (await t.trainingSet(labels.slice(0, 20), { knownAt: "label", now: NOW })) as TrainingSetRows;
    const direct = (await trainingSet(dir, labels.slice(0, 20), { knownAt: "label", features: custom, now: NOW })) as TrainingSetRows;
    expect(fromTopology.rows).toEqual(direct.rows);
    expect(fromTopology.columns.map((c) => c.name)).toContain("spend_last_7_days");
  });

  it("under latest, equals features --as-of at each label's instant", () => {
    const set = computeTrainingSet(dir, labelsFromObjects(labels), { knownAt: "latest", features: custom, now: NOW });
    const reader = new FeatureReader(dir, { features: custom });
    try {
      labels.forEach((l, i) => {
        const row = Object.fromEntries(set.columns.map((c, j) => [c.name, set.row(i)[j]]));
        const f = reader.compute(Date.parse(l.label_time), l.customer_id)[0];
        if (f === undefined) return expect(row.feature_status).not.toBe("ok");
        for (const [k, v] of Object.entries(f)) {
          const mine = row[k];
          expect(typeof v === "string" && k.endsWith("_at") ? Date.parse(v) : v, `row ${i} ${k}`).toEqual(mine);
        }
      });
    } finally {
      reader.close();
    }
  });

  it("from the command line: CSV and typed Parquet with a manifest, rejected labels in a side file, byte-identical across runs", async () => {
    const base = tmp();
    const config = join(base, "tributary.yaml");
    writeFileSync(config, CONFIG);
    const labelsFile = join(base, "labels.csv");
    const extra = [
      "c1,not a time,0",
      "nobody,2026-11-01T12:00:00Z,0",
      "c2,2099-01-01T00:00:00Z,1",
      `c3,${Date.UTC(2026, 9, 20, 15, 30)},1`,
      "c5,2026-10-01T00:00:00Z,0",
    ];
    writeFileSync(labelsFile, ["customer_id,label_time,churned", ...labels.map((l) => `${l.customer_id},${l.label_time},${l.churned}`), ...extra].join("\n") + "\n");
    const out = (name: string) => join(base, name);
    const run = (file: string, ...more: string[]) => runCli(["training-set", "--labels", labelsFile, "--out", file, "--data-dir", dir, "--config", config, ...more]);
    let r = await run(out("a.parquet"));
    expect(r.code, r.stderr).toBe(0);
    r = await run(out("b.parquet"));
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(out("a.parquet")).equals(readFileSync(out("b.parquet")))).toBe(true);
    const ma = JSON.parse(readFileSync(out("a.parquet.manifest.json"), "utf8"));
    const mb = JSON.parse(readFileSync(out("b.parquet.manifest.json"), "utf8"));
    expect(ma.digest).toBe(mb.digest);
    expect(ma).toMatchObject({ name: "training_set", format: "parquet", known_at: "label", rows: labels.length + extra.length });
    expect(ma.labels_digest).toMatch(/^[0-9a-f]{64}$/);
    expect(ma.schema.mlflow_colspec.slice(0, 4)).toEqual([
      { type: "string", name: "customer_id", required: false },
      { type: "string", name: "label_time", required: false },
      { type: "string", name: "churned", required: false },
      { type: "string", name: "customer_segment", required: false },
    ]);
    const rejected = parse(readFileSync(out("a.parquet.rejected.csv")), { columns: true }) as Record<string, string>[];
    // c40 and c41 have no records at all; then the extra rows, each with its reason.
    const unknown = labels.flatMap((l, i) => (l.customer_id === "c40" || l.customer_id === "c41" ? [String(i + 1)] : []));
    expect(rejected.filter((x) => Number(x.row) <= labels.length).map((x) => [x.row, x.reason])).toEqual(unknown.map((row) => [row, "unknown_customer"]));
    expect(rejected.filter((x) => Number(x.row) > labels.length)).toEqual([
      { row: String(labels.length + 1), customer_id: "c1", label_time: "not a time", reason: "invalid_label_time" },
      { row: String(labels.length + 2), customer_id: "nobody", label_time: "2026-11-01T12:00:00Z", reason: "unknown_customer" },
      { row: String(labels.length + 3), customer_id: "c2", label_time: "2099-01-01T00:00:00Z", reason: "future_label_time" },
    ]);

    // DuckDB reads the Parquet with the types and values the library computes, in input order.
    const result = await duckdb().runAndReadAll(`SELECT * FROM read_parquet('${out("a.parquet")}')`);
    const types = Object.fromEntries(result.columnNames().map((n, i) => [n, String(result.columnTypes()[i])]));
    expect(types).toMatchObject({
      customer_id: "VARCHAR",
      customer_segment: "VARCHAR",
      purchase_frequency: "BIGINT",
      total_spend: "DOUBLE",
      first_transaction_at: "TIMESTAMP WITH TIME ZONE",
      recency_days: "DOUBLE",
      spend_last_7_days: "DOUBLE",
      max_transaction_value: "DOUBLE",
      feature_status: "VARCHAR",
    });
    const duckRows = result.getRowObjectsJS();
    const lib = (await trainingSet(dir, labelsFile, { features: custom, now: NOW })) as TrainingSetRows;
    expect(duckRows).toHaveLength(lib.rows.length);
    duckRows.forEach((d, i) => {
      for (const [k, v] of Object.entries(lib.rows[i]!)) {
        const got = d[k];
        expect(typeof got === "bigint" ? Number(got) : got instanceof Date ? got.getTime() : got, `row ${i} ${k}`).toEqual(v);
      }
    });
    const tail = lib.rows.slice(-2);
    expect(tail[0]).toMatchObject({ customer_id: "c3", feature_status: "ok" }); // epoch ms label time
    expect(tail[1]).toMatchObject({ customer_id: "c5", feature_status: "no_data", total_spend: null }); // before anything about c5

    // CSV: the same rows, empty for null; latest differs from label.
    r = await run(out("a.csv"), "--known-at", "latest");
    expect(r.code, r.stderr).toBe(0);
    const csv = parse(readFileSync(out("a.csv")), { columns: true }) as Record<string, string>[];
    expect(csv).toHaveLength(labels.length + extra.length);
    expect(csv.at(-1)).toMatchObject({ customer_id: "c5", feature_status: "no_data", total_spend: "" });
    expect(JSON.parse(readFileSync(out("a.csv.manifest.json"), "utf8")).known_at).toBe("latest");

    r = await runCli(["training-set", "--labels", labelsFile, "--out", out("x.csv"), "--data-dir", dir, "--known-at", "sometimes"]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("reads Parquet labels with their types, which pass through to the output", async () => {
    const base = tmp();
    const file = join(base, "labels.parquet");
    const w8 = openParquetWriter(file, [
      { name: "customer_id", type: "string", nullable: false },
      { name: "label_time", type: "datetime", nullable: false },
      { name: "churned", type: "long", nullable: true },
    ]);
    const some = labels.slice(0, 50);
    for (const l of some) w8.write([l.customer_id, Date.parse(l.label_time), Number(l.churned)]);
    w8.close();
    const out = join(base, "set.parquet");
    const r = await runCli(["training-set", "--labels", file, "--out", out, "--data-dir", dir, "--config", (writeFileSync(join(base, "c.yaml"), CONFIG), join(base, "c.yaml"))]);
    expect(r.code, r.stderr).toBe(0);
    const result = await duckdb().runAndReadAll(`SELECT * FROM read_parquet('${out}')`);
    const types = Object.fromEntries(result.columnNames().map((n, i) => [n, String(result.columnTypes()[i])]));
    expect(types).toMatchObject({ customer_id: "VARCHAR", label_time: "TIMESTAMP WITH TIME ZONE", churned: "BIGINT", total_spend: "DOUBLE" });
    const lib = (await trainingSet(dir, labels.slice(0, 50), { features: custom, now: NOW })) as TrainingSetRows;
    result.getRowObjectsJS().forEach((d, i) => {
      expect((d.label_time as Date).getTime()).toBe(Date.parse(some[i]!.label_time));
      expect(Number(d.churned)).toBe(Number(some[i]!.churned));
      expect(d.total_spend, `row ${i}`).toEqual(lib.rows[i]!.total_spend);
      expect(d.feature_status).toBe(lib.rows[i]!.feature_status);
    });
  });

  it("gives the two rows of the README's worked example: one late transaction", async () => {
    const enc = new TextEncoder();
    const at = (t: string) => Date.parse(t);
    const msg = (seq: number, stored: string, body: Record<string, unknown>): SourceMessage => ({
      origin: "test:readme",
      originSeq: seq,
      subject: "tributary.transactions",
      data: enc.encode(JSON.stringify(body)),
      receivedAt: at(stored),
      publishedAt: at(stored),
      contentType: "application/json",
      msgId: null,
    });
    const dir = tmp();
    const t = createTopology({
      dataDir: dir,
      metrics: false,
      source: {
        kind: "observable",
        messages: from([
          msg(1, "2026-03-01T09:00:04Z", { transaction_id: "t1", customer_id: "c42", amount: 100, currency: "EUR", transaction_date: "2026-03-01T09:00:00Z" }),
          msg(2, "2026-03-03T08:00:00Z", { transaction_id: "t2", customer_id: "c42", amount: 50, currency: "USD", transaction_date: "2026-03-01T10:00:00Z" }),
        ]),
      },
    });
    await t.start();
    await t.done;
    await t.stop();
    const label = [{ customer_id: "c42", label_time: "2026-03-02T12:00:00Z", churned: 0 }];
    const row = async (knownAt: "label" | "latest") => ((await trainingSet(dir, label, { knownAt })) as TrainingSetRows).rows[0]!;
    expect(await row("label")).toMatchObject({ churned: 0, purchase_frequency: 1, total_spend: 108, last_transaction_at: at("2026-03-01T09:00:00Z"), feature_status: "ok" });
    expect(await row("latest")).toMatchObject({ churned: 0, purchase_frequency: 2, total_spend: 158, last_transaction_at: at("2026-03-01T10:00:00Z"), feature_status: "ok" });
  });

  it("gives another digest when one record changes", async () => {
    const changed = w.messages.map((m, i) => (i === 100 && m.subject === "tributary.transactions" ? m : m));
    const k = changed.findIndex((m) => m.subject === "tributary.transactions");
    const body = JSON.parse(new TextDecoder().decode(changed[k]!.data));
    changed[k] = { ...changed[k]!, data: new TextEncoder().encode(JSON.stringify({ ...body, amount: body.amount + 1 })) };
    const other = await dataDirOf(changed);
    const a = (await trainingSet(dir, labels, { out: join(tmp(), "a.parquet"), features: custom, now: NOW })) as { manifest: { digest: string; labels_digest: string } };
    const b = (await trainingSet(other, labels, { out: join(tmp(), "b.parquet"), features: custom, now: NOW })) as { manifest: { digest: string; labels_digest: string } };
    expect(a.manifest.labels_digest).toBe(b.manifest.labels_digest);
    expect(a.manifest.digest).not.toBe(b.manifest.digest);
  });
});

/**
 * Custom features (`features.custom`) as a user meets them: declared in a config file for
 * `tributary run`, and passed to `createTopology`, over a real JetStream stream whose records
 * arrive late and out of order, with duplicates. Values are checked against a plain computation
 * over the records at several instants, mid-day ones included; a data dir that already holds the
 * history backfills a newly added feature exactly, also when the backfill is killed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "csv-parse/sync";
import { startNatsServer, type NatsServer } from "../src/testing/nats-server.js";
import { recordMessage, type OutgoingMessage } from "../src/producers/publisher.js";
import { createTopology } from "../src/topology.js";
import { DEFAULT_RATES } from "../src/config.js";
import { runCli, startCli } from "./helpers/cli.js";
import { publishToStream } from "./helpers/stream.js";
import { tempDirs } from "./helpers/tmp.js";

const tmp = tempDirs("custom");
const DAY = 86_400_000;
const CONFIG = `features:
  custom:
    - name: spend_last_7_days        # output column; money is rounded to cents like total_spend
      from: transactions
      aggregate: sum
      field: amount_base             # the amount in the base currency
      window: 7d
    - name: mobile_sessions_last_30_days
      from: sessions
      aggregate: count
      where: { device_type: mobile }
      window: 30d
    - name: max_transaction_value
      from: transactions
      aggregate: max
      field: amount_base
`;

/** A small deterministic PRNG, so the stream is the same on every run. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

interface Tx { id: string; customer: string; at: number; amount: number; currency: string }
interface Session { id: string; customer: string; at: number; end: number; device: string }

/** Records over `days` days ending 2026-11-30, in a shuffled order; some ids sent twice. */
function workload(seed: number, days: number, n: number) {
  const r = rng(seed);
  const end = Date.UTC(2026, 10, 30, 23, 0);
  const tx: Tx[] = [];
  const sessions: Session[] = [];
  for (let i = 0; i < n; i++) {
    const customer = `c${Math.floor(r() * 40)}`;
    const at = end - Math.floor(r() * days * DAY);
    if (r() < 0.7) tx.push({ id: `t${seed}-${i}`, customer, at, amount: Math.round(r() * 50_000) / 100, currency: r() < 0.7 ? "USD" : "EUR" });
    else sessions.push({ id: `s${seed}-${i}`, customer, at, end: at + Math.floor(r() * 3_600_000), device: ["mobile", "desktop", "tablet"][Math.floor(r() * 3)]! });
  }
  const messages: { msg: OutgoingMessage; first: Tx | Session; kind: "tx" | "s" }[] = [];
  for (const t of tx) messages.push({ kind: "tx", first: t, msg: recordMessage("transactions", { transaction_id: t.id, customer_id: t.customer, amount: t.amount, currency: t.currency, transaction_date: new Date(t.at).toISOString() }) });
  for (const s of sessions) messages.push({ kind: "s", first: s, msg: recordMessage("sessions", { session_id: s.id, customer_id: s.customer, session_start: new Date(s.at).toISOString(), session_end: new Date(s.end).toISOString(), device_type: s.device }) });
  // Arrival order has nothing to do with event time.
  for (let i = messages.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [messages[i], messages[j]] = [messages[j]!, messages[i]!];
  }
  // A second copy of some transactions, with another amount and no broker dedupe id: the first
  // copy in stream order wins, so the copy must change nothing.
  const copies = tx.slice(0, 30).map((t) => ({ ...recordMessage("transactions", { transaction_id: t.id, customer_id: t.customer, amount: t.amount + 1000, currency: "USD", transaction_date: new Date(t.at).toISOString() }), msgId: null }));
  return { tx, sessions, messages: messages.map((m) => m.msg), copies };
}

/** The three features, straight from their definitions, with plain loops. */
function expected(tx: readonly Tx[], sessions: readonly Session[], T: number) {
  const out = new Map<string, { spend7: number; mobile30: number; max: number | null }>();
  const row = (c: string) => out.get(c) ?? out.set(c, { spend7: 0, mobile30: 0, max: null }).get(c)!;
  for (const t of tx) {
    if (t.at >= T) continue;
    const base = t.amount * DEFAULT_RATES[t.currency]!;
    const r = row(t.customer);
    if (t.at >= T - 7 * DAY) r.spend7 += base;
    r.max = r.max === null ? base : Math.max(r.max, base);
  }
  for (const s of sessions) {
    if (s.at >= T) continue;
    const r = row(s.customer);
    if (s.device === "mobile" && s.at >= T - 30 * DAY) r.mobile30 += 1;
  }
  return out;
}

function expectMatches(rows: Record<string, unknown>[], want: ReturnType<typeof expected>, label: string) {
  expect(rows.map((r) => r.customer_id).sort(), label).toEqual([...want.keys()].sort());
  for (const r of rows) {
    const w = want.get(r.customer_id as string)!;
    const num = (v: unknown) => (v === "" || v === null ? null : Number(v));
    expect(Math.abs(num(r.spend_last_7_days)! - w.spend7), `${label} ${r.customer_id} spend_last_7_days`).toBeLessThanOrEqual(0.0101);
    expect(num(r.mobile_sessions_last_30_days), `${label} ${r.customer_id} mobile_sessions_last_30_days`).toBe(w.mobile30);
    if (w.max === null) expect(num(r.max_transaction_value)).toBeNull();
    else expect(Math.abs(num(r.max_transaction_value)! - w.max), `${label} ${r.customer_id} max_transaction_value`).toBeLessThanOrEqual(0.0101);
  }
}

const INSTANTS = ["2026-11-20T13:37:00.000Z", "2026-11-25T00:00:00.000Z", "2026-11-28T23:59:59.999Z", "2026-12-01T06:00:00.000Z"];

describe("custom features", () => {
  let server: NatsServer;
  const w = workload(7, 60, 3_000);
  let configFile: string;
  beforeAll(async () => {
    server = await startNatsServer();
    configFile = join(tmp(), "tributary.yaml");
    writeFileSync(configFile, CONFIG);
    // Most records first; the rest, older ones included, arrive after a first drain.
    const cut = Math.floor(w.messages.length * 0.8);
    await publishToStream(server.url, w.messages.slice(0, cut));
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("from a config file: run, then features (CSV and JSON) and --describe, exact at mid-day instants", async () => {
    const dir = tmp();
    let r = await runCli(["run", "--drain", "--config", configFile, "--nats", server.url, "--data-dir", dir]);
    expect(r.code, r.stderr).toBe(0);
    await publishToStream(server.url, [...w.messages.slice(Math.floor(w.messages.length * 0.8)), ...w.copies]);
    r = await runCli(["run", "--drain", "--config", configFile, "--nats", server.url, "--data-dir", dir]);
    expect(r.code, r.stderr).toBe(0);
    for (const T of INSTANTS) {
      const csv = await runCli(["features", "--config", configFile, "--data-dir", dir, "--as-of", T, "--format", "csv"]);
      expect(csv.code, csv.stderr).toBe(0);
      const header = csv.stdout.split("\n")[0]!.split(",");
      expect(header.slice(-3)).toEqual(["spend_last_7_days", "mobile_sessions_last_30_days", "max_transaction_value"]);
      expect(header[14]).toBe("days_since_registration");
      expectMatches(parse(csv.stdout, { columns: true }) as Record<string, unknown>[], expected(w.tx, w.sessions, Date.parse(T)), `csv ${T}`);
    }
    const T = INSTANTS[0]!;
    const one = await runCli(["features", "--config", configFile, "--data-dir", dir, "--as-of", T, "--customer", "c3", "--format", "json"]);
    expect(one.code, one.stderr).toBe(0);
    const row = JSON.parse(one.stdout) as Record<string, unknown>;
    const want = expected(w.tx, w.sessions, Date.parse(T)).get("c3")!;
    expect(row.mobile_sessions_last_30_days).toBe(want.mobile30);
    expect(typeof row.spend_last_7_days).toBe("number");

    const describe = await runCli(["features", "--describe", "--config", configFile, "--format", "json"]);
    expect(describe.code, describe.stderr).toBe(0);
    const d = JSON.parse(describe.stdout) as { name: string; type: string; unit: string | null; definition: string }[];
    expect(d).toHaveLength(18);
    expect(d.at(-3)).toMatchObject({ name: "spend_last_7_days", type: "money", unit: "base currency" });
    expect(d.at(-2)).toMatchObject({ name: "mobile_sessions_last_30_days", type: "integer" });
    expect(d.at(-2)!.definition).toContain("device_type = mobile");

    // Without the config, only the built-in columns; with --no-backfill and another set, a refusal.
    const plain = await runCli(["features", "--data-dir", dir, "--format", "csv"]);
    expect(plain.stdout.split("\n")[0]!.split(",")).toHaveLength(15);
    const other = join(tmp(), "other.yaml");
    writeFileSync(other, "features:\n  custom:\n    - { name: tx_count_3d, from: transactions, aggregate: count, window: 3d }\n");
    const refused = await runCli(["run", "--drain", "--no-backfill", "--config", other, "--nats", server.url, "--data-dir", dir]);
    expect(refused.code, refused.stderr).toBe(2);
    expect(refused.stderr).toMatch(/another set of custom features.*spend_last_7_days \(removed\).*tx_count_3d \(new\)/);
  });

  it("through createTopology, with /features/<id> over HTTP", async () => {
    // Runs after the first test, which published the late part and the copies.
    const published = w.messages.length + w.copies.length;
    const t = createTopology({
      source: { kind: "jetstream" },
      dataDir: tmp(),
      config: {
        nats: { url: server.url, consumer: "embedded" },
        features: {
          custom: [
            { name: "spend_last_7_days", from: "transactions", aggregate: "sum", field: "amount_base", window: "7d" },
            { name: "mobile_sessions_last_30_days", from: "sessions", aggregate: "count", where: { device_type: "mobile" }, window: "30d" },
            { name: "max_transaction_value", from: "transactions", aggregate: "max", field: "amount_base" },
          ],
        },
      },
      metrics: false,
      http: { host: "127.0.0.1", port: 0 },
    });
    await t.start();
    try {
      const deadline = Date.now() + 30_000;
      while (t.stats.goldPosition < published) {
        if (Date.now() > deadline) throw new Error(`gold reached ${t.stats.goldPosition} of ${published}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      for (const T of INSTANTS) {
        const want = expected(w.tx, w.sessions, Date.parse(T));
        const rows = [...want.keys()].map((id) => t.features.get(id, Date.parse(T)));
        expectMatches(rows as unknown as Record<string, unknown>[], want, `library ${T}`);
      }
      const day = "2026-11-25";
      const res = await fetch(`http://127.0.0.1:${t.httpAddress!.port}/features/c5?as_of=${day}`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as Record<string, unknown>;
      expectMatches([body], new Map([["c5", expected(w.tx, w.sessions, Date.parse(day)).get("c5")!]]), "http");
    } finally {
      await t.stop();
    }
  });
});

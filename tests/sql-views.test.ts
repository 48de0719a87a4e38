/**
 * The layers as an analyst reads them with `sqlite3`: silver's `<table>_iso` views, gold's
 * `customer_features_today`, and `tributary quarantine`. Data dirs are built with the CLI
 * (`tributary ingest` of records dated around today, `tributary demo` for MessagePack payloads),
 * and every view is checked against the tables it reads and against `tributary features`.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { parse } from "csv-parse/sync";
import { unpack } from "msgpackr";
import { stringify } from "yaml";
import { runCli } from "./helpers/cli.js";
import { tempDirs } from "./helpers/tmp.js";
import { sourceMessage } from "./helpers/fixtures.js";
import { BUILTIN_ENTITIES, columnOf, silverColumns, type EntityDefinition } from "../src/model/entities.js";
import { SILVER_MIGRATIONS, SilverStore } from "../src/sinks/silver.js";
import { GOLD_MIGRATIONS, GoldStore } from "../src/sinks/gold.js";
import { BronzeStore } from "../src/sinks/bronze.js";
import { openLayer } from "../src/sinks/database.js";
import { FEATURE_COLUMNS, FeatureReader } from "../src/features.js";
import { RETURNS } from "../examples/returns-entity.js";

const tmp = tempDirs("sql-views");
const DAY = 86_400_000;
const HOUR = 3_600_000;
const STORAGE = { synchronous: "normal" as const, busyTimeout: 5_000 };

/** 00:00Z of today, and an ISO time that many ms after it. */
const MIDNIGHT = Math.floor(Date.now() / DAY) * DAY;
const at = (ms: number) => new Date(MIDNIGHT + ms).toISOString();

/** Custom features of every aggregate and field kind, lifetime and windowed, in the config's shape. */
const CUSTOM = [
  { name: "spend_last_7_days", from: "transactions", aggregate: "sum", field: "amount_base", window: "7d" },
  { name: "mobile_sessions_last_30_days", from: "sessions", aggregate: "count", where: { device_type: "mobile" }, window: "30d" },
  { name: "max_transaction_value", from: "transactions", aggregate: "max", field: "amount_base" },
  { name: "smallest_amount_sent", from: "transactions", aggregate: "min", field: "amount" },
  { name: "last_session_start", from: "sessions", aggregate: "max", field: "session_start" },
  { name: "mean_session_seconds", from: "sessions", aggregate: "mean", field: "duration" },
  { name: "longest_session_seconds", from: "sessions", aggregate: "max", field: "duration" },
  { name: "session_seconds_last_30_days", from: "sessions", aggregate: "sum", field: "duration", window: "30d" },
];
const CUSTOM_NAMES = CUSTOM.map((c) => c.name);
/** A config file in `dir` holding these custom features; returns its path. */
function writeConfig(dir: string, name: string, custom: readonly object[]): string {
  const path = join(dir, name);
  writeFileSync(path, stringify({ features: { custom } }));
  return path;
}

const ndjson = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join("\n") + "\n";
/**
 * Records around today's midnight: at both edges of the 30-day and 7-day windows, yesterday's last
 * millisecond, and today's and tomorrow's records, which a view as of 00:00Z must leave out.
 */
function files(): Record<string, string> {
  const tx = (id: string, c: string, amount: unknown, currency: string, when: number) => ({ transaction_id: id, customer_id: c, amount, currency, transaction_date: at(when) });
  const s = (id: string, c: string, start: number, minutes: number, device?: string) => ({
    session_id: id,
    customer_id: c,
    session_start: at(start),
    session_end: at(start + minutes * 60_000 + 7),
    ...(device ? { device_type: device } : {}),
  });
  return {
    "customers.ndjson": ndjson([
      { customer_id: "alice", name: "Alice", registration_date: at(-100 * DAY + 3 * HOUR), customer_segment: "premium" },
      { customer_id: "bob", name: "Bob" },
      { customer_id: "carol", registration_date: at(2 * HOUR), customer_segment: "smb" },
      { customer_id: "dave", registration_date: at(-10 * DAY - 1), customer_segment: "retail" },
      { customer_id: "erin", registration_date: at(HOUR) },
      // An escape (invalid in a text field) and a C1 control that JSON leaves raw: the table shows neither.
      { customer_id: "frank", name: "\u001b[31mred\u009b" },
    ]),
    "transactions.ndjson": ndjson([
      tx("t1", "alice", 33.333, "USD", -45 * DAY),
      tx("t2", "alice", "12.345", "EUR", -31 * DAY + 5 * HOUR),
      tx("t3", "alice", 0.015, "USD", -30 * DAY + 1),
      tx("t4", "alice", 999.99, "GBP", -29 * DAY),
      tx("t5", "bob", 7.77, "EUR", -8 * DAY + HOUR),
      tx("t6", "bob", 100, "USD", -7 * DAY + 2 * HOUR),
      tx("t7", "bob", 0.005, "USD", -1),
      tx("t8", "carol", 41.5, "GBP", -DAY),
      tx("t9", "alice", 5000, "USD", HOUR),
      tx("t10", "bob", 1, "USD", Date.now() - MIDNIGHT + 20 * HOUR),
      tx("bad1", "alice", "abc", "USD", -2 * DAY),
      tx("bad2", "bob", 5, "XYZ", -2 * DAY),
    ]) + '{"transaction_id":"bad3","customer_id":"carol","amount":12345678901234567890,"currency":"USD","transaction_date":"2026-01-01"}\n{"transaction_id": \n',
    "sessions.ndjson": ndjson([
      s("s1", "alice", -40 * DAY, 30, "mobile"),
      s("s2", "alice", -20 * DAY, 61, "mobile"),
      s("s3", "bob", -3 * DAY, 5, "desktop"),
      s("s4", "bob", -HOUR, 120),
      s("s5", "carol", HOUR, 10, "mobile"),
    ]),
    "interactions.ndjson": ndjson([
      { interaction_id: "i1", customer_id: "alice", interaction_date: at(-2 * DAY), interaction_type: "chat" },
      { interaction_id: "i2", customer_id: "gina", interaction_date: at(-5 * DAY), interaction_type: "email_open" },
      { interaction_id: "i3", customer_id: "bob", interaction_date: at(0), interaction_type: "chat" },
    ]),
    "events.ndjson": ndjson([
      { event_id: "e1", customer_id: "alice", event_type: "page_view", event_timestamp: at(-DAY - 1) },
      { event_id: "e2", customer_id: "bob", event_type: "click", event_timestamp: at(3 * HOUR) },
    ]),
  };
}

async function ok(args: string[]): Promise<string> {
  const r = await runCli(args);
  expect(r.stderr, args.join(" ")).toBe("");
  expect(r.code, args.join(" ")).toBe(0);
  return r.stdout;
}

function query(file: string, sql: string, ...params: unknown[]): Record<string, unknown>[] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all(...params) as Record<string, unknown>[];
  } finally {
    db.close();
  }
}

/** The time columns of each silver table, from the entity registry (and the two tables beside it). */
function timeColumns(): Record<string, string[]> {
  const out: Record<string, string[]> = { quarantine: ["received_at"], customer_history: ["available_at", "registration_at"] };
  for (const e of BUILTIN_ENTITIES) out[e.name] = [...e.fields.filter((f) => f.kind === "timestamp").map(columnOf), "available_at"];
  return out;
}

/** Checks each `<table>_iso` against its table: same columns and rows, every time as the ISO text of its epoch ms. */
function expectIsoViewsEqualTables(silver: string): void {
  let times = 0;
  for (const [table, timeCols] of Object.entries(timeColumns())) {
    const rows = query(silver, `SELECT * FROM ${table} ORDER BY 1`);
    const view = query(silver, `SELECT * FROM ${table}_iso ORDER BY 1`);
    const columns = query(silver, "SELECT name FROM pragma_table_info(?)", table).map((c) => c.name as string);
    expect(query(silver, "SELECT name FROM pragma_table_info(?)", `${table}_iso`).map((c) => c.name), table).toEqual(columns);
    expect(view.length, table).toBe(rows.length);
    expect(rows.length, table).toBeGreaterThan(0);
    rows.forEach((row, i) => {
      const v = view[i]!;
      for (const c of columns) {
        if (!timeCols.includes(c) || row[c] === null) {
          expect(v[c], `${table}.${c}`).toEqual(row[c]);
          continue;
        }
        expect(typeof v[c], `${table}.${c}`).toBe("string");
        expect(Date.parse(v[c] as string), `${table}.${c} = ${String(v[c])}`).toBe(row[c]);
        expect(v[c], `${table}.${c}`).toBe(new Date(row[c] as number).toISOString());
        times++;
      }
    });
  }
  expect(times).toBeGreaterThan(10);
}

/** `customer_features_today` and `tributary features --as-of <its as_of>` for the same config, row for row. */
async function expectFeaturesViewEqualsCli(data: string, config: string | null, custom: readonly string[]): Promise<Record<string, unknown>[]> {
  const view = query(join(data, "gold.sqlite"), "SELECT * FROM customer_features_today ORDER BY customer_id");
  expect(query(join(data, "gold.sqlite"), "SELECT name FROM pragma_table_info('customer_features_today')").map((c) => c.name)).toEqual([...FEATURE_COLUMNS, ...custom, "as_of"]);
  const asOf = new Set(view.map((r) => r.as_of));
  expect(asOf.size).toBe(1);
  // Whatever midnight the view read (the clock may pass one between the two reads), ask for that one.
  const [T] = [...asOf] as string[];
  expect(T).toMatch(/T00:00:00\.000Z$/);
  const out = await ok(["features", "--data-dir", data, "--as-of", T!, "--format", "json", ...(config ? ["--config", config] : [])]);
  const cli = (JSON.parse(out) as Record<string, unknown>[]).sort((a, b) => ((a.customer_id as string) < (b.customer_id as string) ? -1 : 1));
  expect(view.map(({ as_of: _, ...r }) => r)).toEqual(cli);
  expect(cli.length).toBeGreaterThan(0);
  return cli;
}

describe("a data dir ingested with records around today", () => {
  const dir = tmp();
  const data = join(dir, "data");
  const config = writeConfig(dir, "tributary.yaml", CUSTOM);
  beforeAll(async () => {
    const paths: string[] = [];
    for (const [name, body] of Object.entries(files())) {
      paths.push(join(dir, name));
      writeFileSync(paths.at(-1)!, body);
    }
    await ok(["ingest", ...paths, "--data-dir", data, "--config", config]);
  });

  it("has an _iso view of every silver table whose times parse back to the table's epoch ms", () => {
    const silver = join(data, "silver.sqlite");
    const views = query(silver, "SELECT name FROM sqlite_master WHERE type = 'view' ORDER BY name").map((r) => r.name);
    expect(views).toEqual([...BUILTIN_ENTITIES.map((e) => `${e.name}_iso`), "customer_history_iso", "quarantine_iso"].sort());
    expectIsoViewsEqualTables(silver);
  });

  it("holds in customer_features_today every feature, built-in and custom, equal to `tributary features --as-of` 00:00Z", async () => {
    const rows = await expectFeaturesViewEqualsCli(data, config, CUSTOM_NAMES);
    const by = Object.fromEntries(rows.map((r) => [r.customer_id, r]));
    // Customers registered today with nothing before are not listed; bob (no date) and dave are.
    expect(Object.keys(by)).toEqual(["alice", "bob", "carol", "dave", "gina"]);
    // The windows' edges: t2 is a day too old for the 30 days, t3 just inside; today's t9 is out.
    expect(by.alice!.transactions_last_30_days).toBe(2);
    expect(by.alice!.purchase_frequency).toBe(4);
    expect(by.bob!.spend_last_7_days).toBe(100.01);
    expect(by.bob!.session_count).toBe(2);
    expect(by.carol!.days_since_registration).toBeNull();
    expect(by.alice!.recency_days).toBe(29);
    expect(by.alice!.mobile_sessions_last_30_days).toBe(1);
  });

  it("follows a changed feature set: dropped features leave the view, a new one joins it once backfilled", async () => {
    const chats = { name: "chats", from: "interactions", aggregate: "count", where: { interaction_type: "chat" } };
    const next = writeConfig(dir, "next.yaml", [...CUSTOM.filter((c) => c.name !== "smallest_amount_sent"), chats]);
    const more = join(dir, "events-more.ndjson");
    writeFileSync(more, ndjson([{ event_id: "e3", customer_id: "carol", event_type: "click", event_timestamp: at(-4 * DAY) }]));
    await ok(["ingest", more, "--data-dir", data, "--config", next]);
    const custom = [...CUSTOM_NAMES.filter((n) => n !== "smallest_amount_sent"), "chats"];
    const rows = await expectFeaturesViewEqualsCli(data, next, custom);
    expect(rows.find((r) => r.customer_id === "alice")!.chats).toBe(1);
    // And back to no custom features at all.
    const none = writeConfig(dir, "none.yaml", []);
    await ok(["ingest", more, "--data-dir", data, "--config", none]);
    await expectFeaturesViewEqualsCli(data, none, []);
  });

  it("prints a JSON payload's big integers as they were sent, and escapes control characters in the table", async () => {
    const json = JSON.parse(await ok(["quarantine", "--data-dir", data, "--format", "json"])) as { reason: string; payload: unknown }[];
    expect(json.map((e) => e.reason).sort()).toEqual(["decode_error", "invalid_range", "invalid_type", "invalid_type", "unknown_currency"]);
    const text = await ok(["quarantine", "--data-dir", data, "--format", "json", "--reason", "invalid_range"]);
    expect(text).toContain('"amount":12345678901234567890');
    const table = await ok(["quarantine", "--data-dir", data, "--reason", "invalid_type"]);
    expect(table).not.toMatch(/[\u001b\u009b]/);
    expect(table).toContain("\\u001b[31mred\\u009b");
    // A payload that does not decode has none; its detail says why.
    const broken = JSON.parse(await ok(["quarantine", "--data-dir", data, "--format", "json", "--reason", "decode_error"])) as { payload: unknown; detail: string }[];
    expect(broken).toHaveLength(1);
    expect(broken[0]!.payload).toBeNull();
    expect(broken[0]!.detail).toMatch(/JSON/);
  });
});

describe("a data dir from `tributary demo` (MessagePack and JSON payloads)", () => {
  let data: string;
  beforeAll(async () => {
    data = join(tmp(), "data");
    const r = await runCli(["demo", "--messages", "3000", "--seed", "11", "--data-dir", data]);
    expect(r.code, r.stderr).toBe(0);
  });

  it("has _iso views equal to the tables", () => {
    expectIsoViewsEqualTables(join(data, "silver.sqlite"));
  });

  it("has customer_features_today equal to `tributary features --as-of` 00:00Z", async () => {
    const rows = await expectFeaturesViewEqualsCli(data, null, []);
    expect(rows.length).toBeGreaterThan(100);
    expect(rows.some((r) => r.avg_session_duration_seconds !== null && r.recency_days !== null && r.days_since_registration !== null)).toBe(true);
  });

  type Entry = { bronze_seq: number; received_at: string; entity: string; subject: string; reason: string; field: string | null; detail: string; payload: unknown };
  const list = async (...args: string[]) => JSON.parse(await ok(["quarantine", "--data-dir", data, "--format", "json", ...args])) as Entry[];

  it("lists every rejected message newest first, with its payload decoded from bronze", async () => {
    const entries = await list("--limit", "100000");
    const stored = query(join(data, "silver.sqlite"), "SELECT * FROM quarantine ORDER BY bronze_seq DESC");
    expect(entries.length).toBe(stored.length);
    expect(entries.length).toBeGreaterThan(10);
    expect(entries.map(({ payload: _, ...e }) => e)).toEqual(stored.map((s) => ({ ...s, received_at: new Date(s.received_at as number).toISOString() })));
    // The view says the same, without payloads.
    expect(query(join(data, "silver.sqlite"), "SELECT * FROM quarantine_iso ORDER BY bronze_seq DESC")).toEqual(entries.map(({ payload: _, ...e }) => e));

    const bronze = new Database(join(data, "bronze.sqlite"), { readonly: true });
    try {
      const get = bronze.prepare("SELECT payload, content_type FROM messages WHERE seq = ?");
      const seen = { msgpack: 0, json: 0 };
      for (const e of entries) {
        if (e.reason === "decode_error" || e.reason === "oversize") continue;
        const m = get.get(e.bronze_seq) as { payload: Buffer; content_type: string | null };
        if (m.payload[0] === 0x7b || m.content_type?.includes("json")) {
          seen.json++;
          expect(e.payload, `seq ${e.bronze_seq}`).toEqual(JSON.parse(m.payload.toString("utf8")));
        } else {
          seen.msgpack++;
          const decoded = JSON.parse(JSON.stringify(unpack(m.payload), (_k, v) => (typeof v === "bigint" ? v.toString() : v)));
          expect(e.payload, `seq ${e.bronze_seq}`).toEqual(decoded);
        }
      }
      expect(seen.msgpack).toBeGreaterThan(0);
      expect(seen.json).toBeGreaterThan(0);
    } finally {
      bronze.close();
    }
  });

  it("filters by reason and stops at the limit", async () => {
    const all = await list("--limit", "100000");
    const reason = "invalid_type";
    const wanted = all.filter((e) => e.reason === reason);
    expect(wanted.length).toBeGreaterThan(3);
    expect(await list("--reason", reason, "--limit", "100000")).toEqual(wanted);
    expect(await list("--reason", reason, "--limit", "2")).toEqual(wanted.slice(0, 2));
    expect(await list("--limit", "5")).toEqual(all.slice(0, 5));
    // The default is the newest 100.
    expect((await list()).length).toBe(Math.min(100, all.length));
  });

  it("prints the same entries as CSV and as an aligned table", async () => {
    const entries = await list("--limit", "30");
    const csv = parse(await ok(["quarantine", "--data-dir", data, "--format", "csv", "--limit", "30"]), { columns: true }) as Record<string, string>[];
    expect(Object.keys(csv[0]!)).toEqual(["bronze_seq", "received_at", "entity", "subject", "reason", "field", "detail", "payload"]);
    expect(csv.map((r) => ({ ...r, bronze_seq: Number(r.bronze_seq), field: r.field || null, payload: r.payload ? JSON.parse(r.payload) : null }))).toEqual(entries);
    const table = (await ok(["quarantine", "--data-dir", data, "--limit", "30"])).trimEnd().split("\n");
    expect(table[0]!.split(/\s+/)).toEqual(["bronze_seq", "received_at", "entity", "subject", "reason", "field", "detail", "payload"]);
    expect(table).toHaveLength(32);
    expect(table.slice(2).map((l) => Number(l.split(" ")[0]))).toEqual(entries.map((e) => e.bronze_seq));
    const payloadAt = table[0]!.indexOf("payload");
    for (const line of table.slice(2)) expect(Array.from(line.slice(payloadAt)).length).toBeLessThanOrEqual(120);
  });

  it("exits 2 with one line for a bad flag", async () => {
    const cases: [string[], RegExp][] = [
      [["--limit", "0"], /^tributary: config error: --limit: expected a whole number of at least 1, got "0"$/],
      [["--limit", "ten"], /^tributary: config error: --limit: expected a whole number of at least 1, got "ten"$/],
      [["--format", "xml"], /^tributary: config error: --format: expected one of table, csv, json, got "xml"$/],
      [["--reason", "invalid_tpye"], /^tributary: config error: --reason: expected one of decode_error, .*oversize, got "invalid_tpye"$/],
      [["--bogus"], /^error: unknown option '--bogus'/],
      [["--limit"], /^error: option '--limit <n>' argument missing$/],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(["quarantine", "--data-dir", data, ...args]);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stdout, args.join(" ")).toBe("");
      const lines = r.stderr.split("\n").filter((l) => l !== "");
      expect(lines, args.join(" ")).toHaveLength(1);
      expect(lines[0], args.join(" ")).toMatch(message);
    }
  });
});

describe("an older data dir", () => {
  it("gets silver's _iso views and gold's customer_features_today when it opens, with its rows kept", () => {
    const dir = tmp();
    const bronze = new BronzeStore(dir, STORAGE);
    const received = MIDNIGHT - 3 * DAY;
    const [seq] = bronze.append([{ msg: sourceMessage({ originSeq: 1, publishedAt: received, receivedAt: received }) }]);
    bronze.close();
    // Silver and gold as the previous version left them: silver schema 2, gold schema 4.
    const silver = openLayer(dir, "silver", SILVER_MIGRATIONS.slice(0, 2), STORAGE);
    silver.prepare("INSERT INTO transactions VALUES ('t1', 'c1', 5, 'USD', 5, ?, 'smb', ?, ?)").run(MIDNIGHT - 2 * DAY + 1, seq, received);
    silver.prepare("INSERT INTO customers VALUES ('c1', 'C', NULL, ?, 'smb', ?, ?)").run(MIDNIGHT - 40 * DAY, seq, received);
    silver.prepare("INSERT INTO customer_history VALUES (?, 'c1', ?, 'smb', ?)").run(seq, received, MIDNIGHT - 40 * DAY);
    silver.prepare("INSERT INTO quarantine VALUES (?, 'events', 'tributary.events', 'missing_field', 'event_id', 'event_id is required', ?)").run(seq! + 1, received);
    silver.close();
    const gold = openLayer(dir, "gold", GOLD_MIGRATIONS.slice(0, 4), STORAGE);
    gold.prepare("INSERT INTO customer_daily VALUES ('c1', ?, 1, 5000000, ?, ?, 0, 0, 0, 0)").run(Math.floor((MIDNIGHT - 2 * DAY) / DAY), MIDNIGHT - 2 * DAY + 1, MIDNIGHT - 2 * DAY + 1);
    gold.prepare("INSERT INTO customer_profile VALUES ('c1', 'smb', ?, ?)").run(MIDNIGHT - 40 * DAY, seq);
    gold.close();

    new SilverStore(dir, STORAGE).close();
    new GoldStore(dir, STORAGE).close();
    const s = join(dir, "silver.sqlite");
    expect(query(s, "PRAGMA user_version")).toEqual([{ user_version: SILVER_MIGRATIONS.length }]);
    expect(query(s, "SELECT transaction_id, transaction_at, available_at FROM transactions_iso")).toEqual([
      { transaction_id: "t1", transaction_at: new Date(MIDNIGHT - 2 * DAY + 1).toISOString(), available_at: new Date(received).toISOString() },
    ]);
    expect(query(s, "SELECT registration_at FROM customers_iso")).toEqual([{ registration_at: new Date(MIDNIGHT - 40 * DAY).toISOString() }]);
    expect(query(s, "SELECT customer_id, registration_at FROM customer_history_iso")).toEqual([{ customer_id: "c1", registration_at: new Date(MIDNIGHT - 40 * DAY).toISOString() }]);
    expect(query(s, "SELECT reason, received_at FROM quarantine_iso")).toEqual([{ reason: "missing_field", received_at: new Date(received).toISOString() }]);

    const g = join(dir, "gold.sqlite");
    expect(query(g, "PRAGMA user_version")).toEqual([{ user_version: GOLD_MIGRATIONS.length }]);
    const view = query(g, "SELECT * FROM customer_features_today");
    const reader = new FeatureReader(dir);
    try {
      expect(view.map(({ as_of: _, ...r }) => r)).toEqual(reader.compute(Date.parse(view[0]!.as_of as string)));
    } finally {
      reader.close();
    }
    expect(view[0]).toMatchObject({ customer_id: "c1", purchase_frequency: 1, total_spend: 5, transactions_last_30_days: 1, days_since_registration: 40 });
  });
});

describe("an entity added by an embedder", () => {
  it("gets its own _iso view when silver opens with it", () => {
    const dir = tmp();
    const entities: EntityDefinition[] = [...BUILTIN_ENTITIES, RETURNS];
    new SilverStore(dir, STORAGE, entities).close();
    const db = new Database(join(dir, "silver.sqlite"));
    try {
      const returnedAt = Date.UTC(2026, 9, 1, 12, 30, 0, 250);
      const columns = silverColumns(RETURNS).map((c) => c.column);
      expect(columns).toContain("returned_at");
      const row: Record<string, unknown> = { return_id: "r1", customer_id: "c1", amount: 3, currency: "USD", returned_at: returnedAt, reason: "damaged", amount_base: 3 };
      db.prepare(`INSERT INTO returns (${columns.join(", ")}, bronze_seq, available_at) VALUES (${columns.map((c) => `@${c}`).join(", ")}, 9, NULL)`).run(row);
      expect(db.prepare("SELECT return_id, returned_at, amount_base, available_at FROM returns_iso").get()).toEqual({
        return_id: "r1",
        returned_at: "2026-10-01T12:30:00.250Z",
        amount_base: 3,
        available_at: null,
      });
    } finally {
      db.close();
    }
    // Opening it again finds the view there.
    new SilverStore(dir, STORAGE, entities).close();
  });
});

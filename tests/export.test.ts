/**
 * `tributary export` as a user meets it: a data dir built with `tributary ingest` (and one with
 * `tributary demo`, whose quarantine holds MessagePack payloads), exported as Parquet and CSV,
 * every file read back with DuckDB. Column types are checked as DuckDB sees them, values against
 * the SQLite tables and `tributary features --format json`, and the manifests against the files.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { parse } from "csv-parse/sync";
import { unpack } from "msgpackr";
import { runCli } from "./helpers/cli.js";
import { tempDirs } from "./helpers/tmp.js";
import { useDuckDB } from "./helpers/duckdb.js";
import { openParquetWriter } from "../src/serving/parquet.js";
import { featureSetHash } from "../src/model/registry-hash.js";
import { customFeaturesOf } from "../src/model/features.js";
import type { ColumnSpec } from "../src/serving/output-file.js";

const tmp = tempDirs("export");
const VERSION = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;

const CONFIG = `features:
  custom:
    - name: max_transaction_value
      from: transactions
      aggregate: max
      field: amount_base
    - name: last_session_start
      from: sessions
      aggregate: max
      field: session_start
    - name: mobile_sessions
      from: sessions
      aggregate: count
      where: { device_type: mobile }
`;
const CUSTOM = [
  { name: "max_transaction_value", from: "transactions", aggregate: "max" as const, field: "amount_base" },
  { name: "last_session_start", from: "sessions", aggregate: "max" as const, field: "session_start" },
  { name: "mobile_sessions", from: "sessions", aggregate: "count" as const, where: { device_type: "mobile" } },
];

const ndjson = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join("\n") + "\n";
const FILES: Record<string, object[]> = {
  "customers.ndjson": [
    { customer_id: "alice", name: "Alice", email: "alice@example.com", registration_date: "2025-12-01", customer_segment: "premium" },
    // A comma, quotes and a line break: CSV must quote them.
    { customer_id: "bob", name: 'Bob "the builder", Jr.', registration_date: null },
    { customer_id: "carol", name: "Carol\nSecond line", email: "c@example.com", registration_date: "2026-02-10T08:00:00Z", customer_segment: "smb" },
  ],
  "transactions.ndjson": [
    { transaction_id: "t1", customer_id: "alice", amount: 100, currency: "USD", transaction_date: "2026-01-05T10:00:00Z" },
    { transaction_id: "t2", customer_id: "alice", amount: "50", currency: "eur", transaction_date: "2026-01-20" },
    { transaction_id: "t3", customer_id: "bob", amount: 10.5, currency: "GBP", transaction_date: "2026-02-01T12:30:00Z" },
    { transaction_id: "t4", customer_id: "carol", amount: 999.99, currency: "USD", transaction_date: "2026-02-15T00:00:00Z" },
    { transaction_id: "t5", customer_id: "carol", amount: "abc", currency: "USD", transaction_date: "2026-02-16T00:00:00Z" },
    { transaction_id: "t1", customer_id: "alice", amount: 999, currency: "USD", transaction_date: "2026-01-06" },
  ],
  "interactions.ndjson": [
    { interaction_id: "i1", customer_id: "alice", interaction_date: "2026-01-10", interaction_type: "chat" },
    { interaction_id: "i2", customer_id: "bob", interaction_date: "2026-03-01", interaction_type: "email_open" },
  ],
  "events.ndjson": [
    { event_id: "e1", customer_id: "alice", event_type: "page_view", event_timestamp: "2026-01-11T09:00:00Z" },
    { event_id: "e2", customer_id: "carol", event_type: "click", event_timestamp: "2026-02-20T00:00:00Z" },
    // Exactly at the silver as-of instant below: not before it.
    { event_id: "e3", customer_id: "bob", event_type: "click", event_timestamp: "2026-02-01T12:00:00Z" },
  ],
  "sessions.ndjson": [
    { session_id: "s1", customer_id: "alice", session_start: "2026-01-05T10:00:00Z", session_end: "2026-01-05T10:30:00Z", device_type: "mobile" },
    { session_id: "s2", customer_id: "bob", session_start: "2026-02-02T00:00:00Z", session_end: "2026-02-02T01:00:00Z" },
  ],
};

const SILVER_TABLES = ["customers", "transactions", "interactions", "events", "sessions"];
const GOLD_TABLES = ["features", "customer_daily", "customer_profile", "feature_daily"];
const SILVER_AS_OF = "2026-02-01T12:00:00Z";
const GOLD_AS_OF = "2026-02-15T12:00:00Z";

/** DuckDB's type of each column tributary writes, by name; `*_at` columns are times. */
const DUCK_TYPES: Record<string, string> = {
  customer_id: "VARCHAR", name: "VARCHAR", email: "VARCHAR", customer_segment: "VARCHAR", transaction_id: "VARCHAR", currency: "VARCHAR",
  interaction_id: "VARCHAR", interaction_type: "VARCHAR", event_id: "VARCHAR", event_type: "VARCHAR", session_id: "VARCHAR", device_type: "VARCHAR",
  entity: "VARCHAR", subject: "VARCHAR", reason: "VARCHAR", field: "VARCHAR", detail: "VARCHAR", payload: "VARCHAR", feature: "VARCHAR",
  amount: "DOUBLE", amount_base: "DOUBLE", lo: "DOUBLE", hi: "DOUBLE",
  bronze_seq: "BIGINT", profile_seq: "BIGINT", day: "BIGINT", n: "BIGINT", total: "BIGINT", tx_count: "BIGINT", tx_spend_micros: "BIGINT",
  session_count: "BIGINT", session_ms: "BIGINT", interaction_count: "BIGINT", event_count: "BIGINT",
  purchase_frequency: "BIGINT", transactions_last_30_days: "BIGINT", mobile_sessions: "BIGINT",
  total_spend: "DOUBLE", avg_transaction_value: "DOUBLE", recency_days: "DOUBLE", spend_last_30_days: "DOUBLE",
  avg_session_duration_seconds: "DOUBLE", days_since_registration: "DOUBLE", max_transaction_value: "DOUBLE",
  first_transaction_at: "TIMESTAMP WITH TIME ZONE", last_transaction_at: "TIMESTAMP WITH TIME ZONE", last_session_start: "TIMESTAMP WITH TIME ZONE",
};
const expectedType = (column: string) => DUCK_TYPES[column] ?? (column.endsWith("_at") ? "TIMESTAMP WITH TIME ZONE" : `no type known for ${column}`);
const MLFLOW_OF_DUCK: Record<string, string> = { VARCHAR: "string", DOUBLE: "double", BIGINT: "long", "TIMESTAMP WITH TIME ZONE": "datetime" };

const duckdb = useDuckDB();

/** A query's column types (as DuckDB names them) and rows, BIGINTs as numbers and times as epoch ms. */
async function query(sql: string): Promise<{ types: Record<string, string>; rows: Record<string, unknown>[] }> {
  const r = await duckdb().runAndReadAll(sql);
  const names = r.columnNames();
  const types = Object.fromEntries(names.map((n, i) => [n, String(r.columnTypes()[i])]));
  const rows = r.getRowObjectsJS().map((row) =>
    Object.fromEntries(Object.entries(row).map(([k, v]) => [k, typeof v === "bigint" ? Number(v) : v instanceof Date ? v.getTime() : v])),
  );
  return { types, rows };
}

/** A SQLite table's rows in primary-key order, as tributary's export reads them. */
function sqliteRows(dataDir: string, layer: string, table: string, where = "", params: unknown[] = []): Record<string, unknown>[] {
  const db = new Database(join(dataDir, `${layer}.sqlite`), { readonly: true });
  try {
    const pk = (db.prepare("SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk").pluck().all(table) as string[]).join(", ");
    return db.prepare(`SELECT * FROM ${table} ${where} ORDER BY ${pk}`).all(...params) as Record<string, unknown>[];
  } finally {
    db.close();
  }
}

const sha256 = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");
const manifestOf = (file: string) => JSON.parse(readFileSync(`${file}.manifest.json`, "utf8"));

async function exportOk(args: string[]): Promise<string> {
  const r = await runCli(["export", ...args]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return r.stdout;
}

describe("tributary export", () => {
  let dir: string;
  let data: string;
  let config: string;

  beforeAll(async () => {
    dir = tmp();
    data = join(dir, "data");
    config = join(dir, "tributary.yaml");
    writeFileSync(config, CONFIG);
    const files = Object.entries(FILES).map(([name, rows]) => {
      writeFileSync(join(dir, name), ndjson(rows));
      return join(dir, name);
    });
    const r = await runCli(["ingest", ...files, "--data-dir", data, "--config", config]);
    expect(r.code, r.stderr).toBe(0);
  });

  it("writes every silver entity table as typed Parquet, equal to the SQLite table", async () => {
    const out = join(dir, "silver");
    const stdout = await exportOk(["--layer", "silver", "--format", "parquet", "--out", out, "--data-dir", data, "--config", config]);
    for (const table of SILVER_TABLES) {
      const file = join(out, `${table}.parquet`);
      expect(stdout).toContain(file);
      const { types, rows } = await query(`SELECT * FROM '${file}'`);
      for (const [column, type] of Object.entries(types)) expect(type, `${table}.${column}`).toBe(expectedType(column));
      expect(rows, table).toEqual(sqliteRows(data, "silver", table));
      expect(rows.length, table).toBeGreaterThan(0);
    }
    // Nulls are real nulls: Bob has no email and no registration date.
    const { rows } = await query(`SELECT email, registration_at, customer_segment FROM '${join(out, "customers.parquet")}' WHERE customer_id = 'bob'`);
    expect(rows).toEqual([{ email: null, registration_at: null, customer_segment: "unknown" }]);
  });

  it("declares UTC microsecond timestamps, OPTIONAL only for nullable columns, and Snappy compression", async () => {
    const file = join(dir, "silver", "customers.parquet");
    const { rows: schema } = await query(`SELECT name, type, logical_type, repetition_type FROM parquet_schema('${file}') WHERE name <> 'root'`);
    const byName = Object.fromEntries(schema.map((s) => [s.name, s]));
    expect(byName.registration_at!.type).toBe("INT64");
    expect(String(byName.registration_at!.logical_type)).toMatch(/isAdjustedToUTC=1.*MICROS=MicroSeconds\(\)/);
    expect(String(byName.customer_id!.logical_type)).toBe("StringType()");
    expect(byName.customer_id!.repetition_type).toBe("REQUIRED");
    expect(byName.bronze_seq!.repetition_type).toBe("REQUIRED");
    expect(byName.email!.repetition_type).toBe("OPTIONAL");
    expect(byName.registration_at!.repetition_type).toBe("OPTIONAL");
    const { rows: codecs } = await query(`SELECT DISTINCT compression FROM parquet_metadata('${file}')`);
    expect(codecs).toEqual([{ compression: "SNAPPY" }]);
    // The manifest's colspec says the same.
    const m = manifestOf(file);
    expect(m.schema.mlflow_colspec.filter((c: { required: boolean }) => !c.required).map((c: { name: string }) => c.name).sort()).toEqual(
      schema.filter((s) => s.repetition_type === "OPTIONAL").map((s) => s.name).sort(),
    );
  });

  it("--as-of exports silver records with event time strictly before T", async () => {
    const out = join(dir, "silver-as-of");
    await exportOk(["--layer", "silver", "--out", out, "--data-dir", data, "--as-of", SILVER_AS_OF]);
    const T = Date.parse(SILVER_AS_OF);
    const time: Record<string, string> = { transactions: "transaction_at", interactions: "interaction_at", events: "event_at", sessions: "session_start_at" };
    for (const [table, column] of Object.entries(time)) {
      const { rows } = await query(`SELECT * FROM '${join(out, `${table}.parquet`)}'`);
      expect(rows, table).toEqual(sqliteRows(data, "silver", table, `WHERE ${column} < ?`, [T]));
    }
    const tx = await query(`SELECT transaction_id FROM '${join(out, "transactions.parquet")}'`);
    expect(tx.rows.map((r) => r.transaction_id)).toEqual(["t1", "t2"]);
    const ev = await query(`SELECT event_id FROM '${join(out, "events.parquet")}'`);
    expect(ev.rows.map((r) => r.event_id)).toEqual(["e1"]);
    // Customers registered before T, or with no registration date (as `features` lists them).
    const c = await query(`SELECT customer_id FROM '${join(out, "customers.parquet")}'`);
    expect(c.rows.map((r) => r.customer_id)).toEqual(["alice", "bob"]);
    expect(manifestOf(join(out, "transactions.parquet")).as_of).toBe("2026-02-01T12:00:00.000Z");
  });

  it("writes gold's feature table with the values `tributary features --format json` prints, custom features included", async () => {
    const out = join(dir, "gold");
    await exportOk(["--layer", "gold", "--out", out, "--data-dir", data, "--config", config, "--as-of", GOLD_AS_OF]);
    const printed = await runCli(["features", "--data-dir", data, "--config", config, "--as-of", GOLD_AS_OF, "--format", "json"]);
    expect(printed.code).toBe(0);
    const want = JSON.parse(printed.stdout) as Record<string, unknown>[];
    const { types, rows } = await query(`SELECT * FROM '${join(out, "features.parquet")}'`);
    expect(Object.keys(types)).toEqual(Object.keys(want[0]!));
    for (const [column, type] of Object.entries(types)) expect(type, column).toBe(expectedType(column));
    const iso = rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, types[k] === "TIMESTAMP WITH TIME ZONE" && v !== null ? new Date(v as number).toISOString() : v])));
    expect(iso).toEqual(want);
    const alice = want.find((r) => r.customer_id === "alice")!;
    expect(alice.last_session_start).toBe("2026-01-05T10:00:00.000Z");
    expect(alice.mobile_sessions).toBe(1);
    // The raw buckets: whole UTC days before T's day.
    for (const table of GOLD_TABLES.slice(1)) {
      const raw = await query(`SELECT * FROM '${join(out, `${table}.parquet`)}'`);
      for (const [column, type] of Object.entries(raw.types)) expect(type, `${table}.${column}`).toBe(expectedType(column));
      const where = table === "customer_profile" ? "WHERE registration_at IS NULL OR registration_at < ?" : "WHERE day < ?";
      const bound = table === "customer_profile" ? Date.parse(GOLD_AS_OF) : Math.floor(Date.parse(GOLD_AS_OF) / 86_400_000);
      expect(raw.rows, table).toEqual(sqliteRows(data, "gold", table, where, [bound]));
    }
  });

  it("writes CSV: the features exactly as `features --format csv`, silver with RFC 4180 quoting, ISO-8601 UTC times and empty nulls", async () => {
    const out = join(dir, "csv");
    await exportOk(["--layer", "gold", "--format", "csv", "--out", out, "--data-dir", data, "--config", config, "--as-of", GOLD_AS_OF]);
    const printed = await runCli(["features", "--data-dir", data, "--config", config, "--as-of", GOLD_AS_OF, "--format", "csv"]);
    expect(readFileSync(join(out, "features.csv"), "utf8")).toBe(printed.stdout);

    await exportOk(["--layer", "silver", "--format", "csv", "--out", out, "--data-dir", data]);
    const text = readFileSync(join(out, "customers.csv"), "utf8");
    expect(text).toContain('"Bob ""the builder"", Jr."');
    expect(text).toContain('"Carol\nSecond line"');
    const parsed = parse(text, { columns: true }) as Record<string, string>[];
    const sqlite = sqliteRows(data, "silver", "customers");
    expect(parsed).toEqual(
      sqlite.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v === null ? "" : k.endsWith("_at") ? new Date(v as number).toISOString() : String(v)]))),
    );
    expect(parsed.find((r) => r.customer_id === "alice")!.registration_at).toBe("2025-12-01T00:00:00.000Z");
    // DuckDB reads it back with the same values.
    const { rows } = await query(`SELECT customer_id, name, email FROM read_csv('${join(out, "customers.csv")}', header = true) ORDER BY customer_id`);
    expect(rows).toEqual(sqlite.map((r) => ({ customer_id: r.customer_id, name: r.name, email: r.email })));
    const tx = await query(`SELECT transaction_id, amount, transaction_at FROM read_csv('${join(out, "transactions.csv")}', header = true) ORDER BY transaction_id`);
    expect(tx.types.transaction_at).toBe("TIMESTAMP WITH TIME ZONE");
    expect(tx.rows).toEqual(sqliteRows(data, "silver", "transactions").map((r) => ({ transaction_id: r.transaction_id, amount: r.amount, transaction_at: r.transaction_at })));
  });

  it("writes a manifest beside every file: digest, schema, rows, as-of, positions, feature hash, version, command line", async () => {
    const out = join(dir, "manifests");
    const args = ["--layer", "gold", "--format", "parquet", "--out", out, "--data-dir", data, "--config", config, "--as-of", "2026-02-15"];
    await exportOk(args);
    const status = JSON.parse((await runCli(["status", "--data-dir", data, "--format", "json"])).stdout);
    for (const table of GOLD_TABLES) {
      const file = join(out, `${table}.parquet`);
      const m = manifestOf(file);
      const { types, rows } = await query(`SELECT * FROM '${file}'`);
      expect(m.name).toBe(`gold.${table}`);
      expect(m.file).toBe(`${table}.parquet`);
      expect(m.format).toBe("parquet");
      expect(m.sha256).toBe(sha256(file));
      expect(m.digest).toBe(m.sha256.slice(0, 10));
      expect(m.bytes).toBe(readFileSync(file).length);
      expect(m.rows).toBe(rows.length);
      expect(m.schema.mlflow_colspec.map((c: { name: string; type: string }) => [c.name, c.type])).toEqual(Object.entries(types).map(([n, t]) => [n, MLFLOW_OF_DUCK[t]]));
      expect(m.as_of).toBe("2026-02-15T00:00:00.000Z");
      expect(m.labels_digest).toBeNull();
      expect(m.known_at).toBeNull();
      expect(m.positions).toEqual(status.positions);
      expect(m.features_hash).toBe(featureSetHash(customFeaturesOf(CUSTOM)));
      expect(m.tributary_version).toBe(VERSION);
      expect(m.command_line).toEqual(["tributary", "export", ...args]);
      expect(m.mlflow).toMatchObject({ name: `gold.${table}`, digest: m.digest, source_type: "local" });
      expect(JSON.parse(m.mlflow.schema)).toEqual(m.schema);
      expect(JSON.parse(m.mlflow.profile)).toEqual({ num_rows: rows.length });
    }
    // Another feature set, another hash.
    expect(manifestOf(join(dir, "silver-as-of", "customers.parquet")).features_hash).toBe(featureSetHash([]));
    expect(featureSetHash([])).not.toBe(featureSetHash(customFeaturesOf(CUSTOM)));
  });

  it("gives byte-identical files and digests for the same data and options; one changed record changes only its table's digest", async () => {
    const copy = join(tmp(), "data");
    cpSync(data, copy, { recursive: true });
    const exportAll = async (d: string, out: string) => {
      await exportOk(["--layer", "silver", "--out", out, "--data-dir", d]);
      await exportOk(["--layer", "gold", "--format", "csv", "--out", out, "--data-dir", d, "--as-of", GOLD_AS_OF]);
      return Object.fromEntries(readdirSync(out).filter((f) => !f.endsWith(".json")).map((f) => [f, manifestOf(join(out, f)).sha256 as string]));
    };
    const first = await exportAll(copy, join(dir, "run1"));
    const second = await exportAll(copy, join(dir, "run2"));
    expect(Object.keys(first)).toHaveLength(SILVER_TABLES.length + GOLD_TABLES.length);
    expect(second).toEqual(first);
    for (const f of Object.keys(first)) expect(readFileSync(join(dir, "run2", f)).equals(readFileSync(join(dir, "run1", f))), f).toBe(true);

    // A profile update: Carol changes segment. Only her rows change.
    const update = join(dir, "customers-update.ndjson");
    writeFileSync(update, ndjson([{ ...FILES["customers.ndjson"]![2]!, customer_segment: "enterprise" }]));
    expect((await runCli(["ingest", update, "--entity", "customers", "--data-dir", copy, "--config", config])).code).toBe(0);
    const third = await exportAll(copy, join(dir, "run3"));
    const changed = Object.keys(first).filter((f) => first[f] !== third[f]).sort();
    expect(changed).toEqual(["customer_profile.csv", "customers.parquet", "features.csv"]);
  });

  it("replaces existing files atomically and leaves no temporary files behind", async () => {
    const out = join(dir, "replace");
    await exportOk(["--layer", "silver", "--out", out, "--data-dir", data]);
    writeFileSync(join(out, "events.parquet"), "not parquet, an older export");
    await exportOk(["--layer", "silver", "--out", out, "--data-dir", data]);
    const { rows } = await query(`SELECT event_id FROM '${join(out, "events.parquet")}'`);
    expect(rows.map((r) => r.event_id)).toEqual(["e1", "e2", "e3"]);
    expect(readdirSync(out).filter((f) => f.startsWith(".") || f.endsWith(".tmp"))).toEqual([]);
    expect(readdirSync(out)).toHaveLength(SILVER_TABLES.length * 2);
  });

  it("rejects an unknown layer or format, a missing --out and an unparsable --as-of with one line and exit 2", async () => {
    const out = join(dir, "never");
    const cases: [string[], RegExp][] = [
      [["--layer", "bronze", "--out", out], /^tributary: config error: --layer: expected one of silver, gold, quarantine, got "bronze"\n$/],
      [["--out", out], /^tributary: config error: --layer: expected one of silver, gold, quarantine, got nothing\n$/],
      [["--layer", "silver", "--format", "xlsx", "--out", out], /^tributary: config error: --format: expected one of parquet, csv, got "xlsx"\n$/],
      [["--layer", "silver"], /^tributary: config error: --out: expected the directory to write the files into\n$/],
      [["--layer", "gold", "--out", out, "--as-of", "last tuesday"], /^tributary: config error: --as-of: expected a date as YYYY-MM-DD or an ISO-8601 time, got "last tuesday"\n$/],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(["export", ...args, "--data-dir", data]);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr, args.join(" ")).toMatch(message);
    }
    expect(existsSync(out)).toBe(false);
  });
});

describe("tributary export --layer quarantine", () => {
  let data: string;
  beforeAll(async () => {
    data = join(tmp(), "data");
    const r = await runCli(["demo", "--messages", "3000", "--seed", "11", "--data-dir", data]);
    expect(r.code, r.stderr).toBe(0);
  });

  it("exports the quarantine table with each payload decoded from bronze (MessagePack or JSON) as JSON text", async () => {
    const out = join(tmp(), "q");
    await exportOk(["--layer", "quarantine", "--out", out, "--data-dir", data]);
    const file = join(out, "quarantine.parquet");
    const { types, rows } = await query(`SELECT * FROM '${file}'`);
    for (const [column, type] of Object.entries(types)) expect(type, column).toBe(expectedType(column));
    const stored = sqliteRows(data, "silver", "quarantine");
    expect(rows.length).toBe(stored.length);
    expect(rows.length).toBeGreaterThan(10);
    expect(rows.map(({ payload: _, ...r }) => r)).toEqual(stored);

    const bronze = new Database(join(data, "bronze.sqlite"), { readonly: true });
    try {
      const get = bronze.prepare("SELECT payload, content_type FROM messages WHERE seq = ?");
      let msgpack = 0;
      for (const r of rows) {
        const m = get.get(r.bronze_seq) as { payload: Buffer; content_type: string | null };
        if (r.reason === "decode_error" || r.reason === "oversize") continue;
        expect(r.payload, `seq ${r.bronze_seq}`).not.toBeNull();
        const json = m.payload[0] === 0x7b || m.content_type?.includes("json");
        if (json) expect(JSON.parse(r.payload as string)).toEqual(JSON.parse(m.payload.toString("utf8")));
        else {
          msgpack++;
          const decoded = unpack(m.payload) as Record<string, unknown>;
          const asJson = JSON.parse(JSON.stringify(decoded, (_k, v) => (typeof v === "bigint" ? v.toString() : v)));
          expect(JSON.parse(r.payload as string), `seq ${r.bronze_seq}`).toEqual(asJson);
        }
      }
      expect(msgpack).toBeGreaterThan(0);
    } finally {
      bronze.close();
    }
    const { rows: valid } = await query(`SELECT count(*) AS n FROM '${file}' WHERE payload IS NOT NULL AND NOT json_valid(payload)`);
    expect(valid).toEqual([{ n: 0 }]);
    expect(manifestOf(file).name).toBe("silver.quarantine");
  });
});

describe("openParquetWriter", () => {
  it("streams row groups of the given size, with exact 64-bit integers, pre-1970 times and nulls", async () => {
    const file = join(tmp(), "t.parquet");
    const columns: ColumnSpec[] = [
      { name: "id", type: "long", nullable: false },
      { name: "at", type: "datetime", nullable: true },
      { name: "x", type: "double", nullable: true },
      { name: "s", type: "string", nullable: true },
      { name: "ok", type: "boolean", nullable: false },
    ];
    const w = openParquetWriter(file, columns, { rowGroupRows: 4 });
    const big = 2n ** 60n + 1n;
    const want: Record<string, unknown>[] = [];
    for (let i = 0; i < 10; i++) {
      const at = i % 3 === 0 ? null : -86_400_000 + i;
      w.write([big + BigInt(i), at, i % 2 ? null : i / 4, i % 4 === 1 ? null : `r${i} ✓`, i % 2 === 0]);
      want.push({ id: big + BigInt(i), at: at === null ? null : new Date(at), x: i % 2 ? null : i / 4, s: i % 4 === 1 ? null : `r${i} ✓`, ok: i % 2 === 0 });
    }
    expect(existsSync(file)).toBe(false);
    const written = w.close();
    expect(written.rows).toBe(10);
    expect(written.sha256).toBe(sha256(file));
    const r = await duckdb().runAndReadAll(`SELECT * FROM '${file}'`);
    expect(r.getRowObjectsJS()).toEqual(want);
    const groups = await query(`SELECT row_group_id, max(row_group_num_rows) AS n FROM parquet_metadata('${file}') GROUP BY ALL ORDER BY 1`);
    expect(groups.rows.map((g) => g.n)).toEqual([4, 4, 2]);
  });

  it("refuses a null in a required column and leaves no file", () => {
    const file = join(tmp(), "bad.parquet");
    const w = openParquetWriter(file, [{ name: "id", type: "long", nullable: false }]);
    expect(() => w.write([null])).toThrow(/id is not nullable/);
    expect(existsSync(file)).toBe(false);
  });
});

/**
 * Gold: per-customer daily buckets (from which any feature can be computed as of any time) and
 * the latest profile per customer, written in one transaction per batch together with gold's
 * bronze position. `customer_features` (lifetime totals), `customer_features_current` (the same in
 * readable units) and `customer_features_today` (every feature as of 00:00Z today) are views over
 * them, so they are always exactly what the buckets say.
 */
import type { Statement } from "better-sqlite3";
import type { GoldDelta } from "../operators/aggregate.js";
import { CHECKPOINT_TABLE, layerPath, openLayer, readPosition, type Database, type StorageOptions } from "./database.js";
import { fieldOf, storedUnits, type CustomFeature } from "../model/features.js";
import { isoTimeSql } from "./silver.js";
import { DAY_MS } from "../timestamps.js";
import { ConfigError } from "../errors.js";
import type { Logger } from "../log.js";
import { DAY_COLUMNS, DAY_MERGE, FEATURE_COLUMNS, FEATURE_MERGE, FEATURE_SUMMARY_MERGE, LAYOUT_MIGRATION, LIFETIME_TOTALS_SQL, lateStatements, summarized, summarizedSql, type LayoutState } from "./gold-layout.js";
import type { GoldPresence } from "./gold-presence.js";

/** `customer_features` in readable units; both schema versions create it the same way. */
const FEATURES_CURRENT_VIEW = `
  CREATE VIEW customer_features_current AS
    SELECT customer_id, customer_segment,
      purchase_frequency,
      round(total_spend_micros / 1e6, 2) AS total_spend,
      CASE WHEN purchase_frequency > 0 THEN round(total_spend_micros / 1e6 / purchase_frequency, 2) END AS avg_transaction_value,
      strftime('%Y-%m-%dT%H:%M:%fZ', first_transaction_at / 1000.0, 'unixepoch') AS first_transaction_at,
      strftime('%Y-%m-%dT%H:%M:%fZ', last_transaction_at / 1000.0, 'unixepoch') AS last_transaction_at,
      session_count,
      CASE WHEN session_count > 0 THEN round(session_ms / 1000.0 / session_count, 3) END AS avg_session_duration_seconds,
      interaction_count, event_count,
      strftime('%Y-%m-%dT%H:%M:%fZ', registration_at / 1000.0, 'unixepoch') AS registration_date
    FROM customer_features;`;

/** `customer_features` from a `totals` CTE of lifetime totals per customer (schema 3 on). */
const customerFeaturesView = (totals: string) => `
  CREATE VIEW customer_features AS
    WITH totals AS (${totals}
    ),
    ids AS (SELECT customer_id FROM customer_profile UNION SELECT customer_id FROM totals)
    SELECT ids.customer_id,
      coalesce(p.customer_segment, 'unknown') AS customer_segment,
      p.registration_at,
      coalesce(t.purchase_frequency, 0) AS purchase_frequency,
      coalesce(t.total_spend_micros, 0) AS total_spend_micros,
      t.first_transaction_at,
      t.last_transaction_at,
      coalesce(t.session_count, 0) AS session_count,
      coalesce(t.session_ms, 0) AS session_ms,
      coalesce(t.interaction_count, 0) AS interaction_count,
      coalesce(t.event_count, 0) AS event_count
    FROM ids LEFT JOIN totals t ON t.customer_id = ids.customer_id LEFT JOIN customer_profile p ON p.customer_id = ids.customer_id;`;

/**
 * `Math.round(x × 10^digits) / 10^digits` in SQL, as the feature reader rounds: the same IEEE
 * operations, so the same doubles. floor(y + 0.5) is truncation here because every rounded value
 * is at least 0 (amounts, durations and the days since a past instant); SQLite's round() rounds
 * the decimal text instead and can differ in the last digit.
 */
function roundSql(x: string, digits: number): string {
  const f = `${10 ** digits}.0`;
  return `(CAST((${x}) * ${f} + 0.5 AS INTEGER) / ${f})`;
}

/** A custom feature's value from its merged bucket `b` (n, total, lo, hi), as `customValue` in src/features.ts computes it. */
function customValueSql(c: CustomFeature, b: string): string {
  if (c.aggregate === "count") return `coalesce(${b}.n, 0)`;
  const kind = fieldOf(c)!.kind;
  const money = kind === "money";
  const unit = money ? `${storedUnits("money")}.0` : "1000.0";
  const digits = money ? 2 : 3;
  if (c.aggregate === "sum") return roundSql(`coalesce(${b}.total, 0) / ${unit}`, digits);
  const v = c.aggregate === "mean" ? `${b}.total / ${unit} / ${b}.n` : c.aggregate === "min" ? `${b}.lo` : `${b}.hi`;
  const value = c.aggregate === "mean" ? roundSql(v, digits) : kind === "time" ? isoTimeSql(v) : money ? roundSql(v, 2) : kind === "duration" ? roundSql(`${v} / 1000.0`, 3) : v;
  return `CASE WHEN ${b}.n > 0 THEN ${value} END`;
}

const sqlString = (s: string) => `'${s.replace(/'/g, "''")}'`;
const sqlName = (s: string) => `"${s.replace(/"/g, '""')}"`;

/**
 * `customer_features_today`: every feature `tributary features --as-of <00:00Z today>` prints, the
 * custom ones given here included, for each customer it lists, plus `as_of`. At a midnight the
 * reader needs no partial day from silver (the 30-day window and every whole-day custom window
 * start at a midnight too), so gold's buckets alone give the exact values, in SQL. The day is the
 * reader's UTC clock (SQLite's 'now'). A customer with custom buckets always has a
 * `customer_daily` row for the same day, so the built-in totals list every customer.
 */
export function featuresTodayViewSql(custom: readonly CustomFeature[] = []): string {
  const buckets = custom.map(
    (c, i) => `,
    f${i} AS (SELECT customer_id, sum(n) AS n, total(total) AS total, min(lo) AS lo, max(hi) AS hi
      FROM feature_daily d, bounds b WHERE d.feature = ${sqlString(c.name)} AND d.day < b.day${c.windowDays === undefined ? "" : ` AND d.day >= b.day - ${c.windowDays}`}
      GROUP BY customer_id)`,
  );
  return `CREATE VIEW customer_features_today AS
    WITH bounds AS (SELECT s * 1000 AS t, s / 86400 AS day FROM (SELECT CAST(strftime('%s', 'now', 'start of day') AS INTEGER) AS s)),
    totals AS (
      SELECT customer_id,
        sum(tx_count) AS tx_count,
        total(tx_spend_micros) AS spend_micros,
        min(tx_first_at) AS first_at,
        max(tx_last_at) AS last_at,
        sum(CASE WHEN d.day >= b.day - 30 THEN tx_count ELSE 0 END) AS recent_tx_count,
        total(CASE WHEN d.day >= b.day - 30 THEN tx_spend_micros ELSE 0 END) AS recent_spend_micros,
        sum(session_count) AS session_count,
        total(session_ms) AS session_ms,
        sum(interaction_count) AS interaction_count,
        sum(event_count) AS event_count
      FROM customer_daily d, bounds b WHERE d.day < b.day GROUP BY customer_id
    )${buckets.join("")},
    ids AS (
      SELECT customer_id FROM totals
      UNION SELECT customer_id FROM customer_profile, bounds b WHERE registration_at IS NULL OR registration_at < b.t
    )
    SELECT ids.customer_id,
      coalesce(p.customer_segment, 'unknown') AS customer_segment,
      coalesce(t.tx_count, 0) AS purchase_frequency,
      ${roundSql("coalesce(t.spend_micros, 0) / 1000000.0", 2)} AS total_spend,
      CASE WHEN t.tx_count > 0 THEN ${roundSql("t.spend_micros / 1000000.0 / t.tx_count", 2)} END AS avg_transaction_value,
      ${isoTimeSql("t.first_at")} AS first_transaction_at,
      ${isoTimeSql("t.last_at")} AS last_transaction_at,
      CASE WHEN t.last_at IS NOT NULL THEN ${roundSql(`(b.t - t.last_at) / ${DAY_MS}.0`, 6)} END AS recency_days,
      coalesce(t.recent_tx_count, 0) AS transactions_last_30_days,
      ${roundSql("coalesce(t.recent_spend_micros, 0) / 1000000.0", 2)} AS spend_last_30_days,
      coalesce(t.session_count, 0) AS session_count,
      CASE WHEN t.session_count > 0 THEN ${roundSql("t.session_ms / 1000.0 / t.session_count", 3)} END AS avg_session_duration_seconds,
      coalesce(t.interaction_count, 0) AS interaction_count,
      coalesce(t.event_count, 0) AS event_count,
      CASE WHEN p.registration_at < b.t THEN ${roundSql(`(b.t - p.registration_at) / ${DAY_MS}.0`, 6)} END AS days_since_registration,${custom
        .map((c, i) => `
      ${customValueSql(c, `f${i}`)} AS ${sqlName(c.name)},`)
        .join("")}
      ${isoTimeSql("b.t")} AS as_of
    FROM ids CROSS JOIN bounds b
      LEFT JOIN totals t ON t.customer_id = ids.customer_id
      LEFT JOIN customer_profile p ON p.customer_id = ids.customer_id${custom.map((_, i) => `
      LEFT JOIN f${i} ON f${i}.customer_id = ids.customer_id`).join("")}`;
}

/** Money columns hold millionths of the base currency; time columns hold epoch milliseconds. */
export const GOLD_MIGRATIONS: readonly string[] = [
  `
  ${CHECKPOINT_TABLE}
  CREATE TABLE customer_daily (
    customer_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    tx_count INTEGER NOT NULL,
    tx_spend_micros INTEGER NOT NULL,
    tx_first_at INTEGER,
    tx_last_at INTEGER,
    session_count INTEGER NOT NULL,
    session_ms INTEGER NOT NULL,
    interaction_count INTEGER NOT NULL,
    event_count INTEGER NOT NULL,
    PRIMARY KEY (customer_id, day)
  ) WITHOUT ROWID;
  CREATE TABLE customer_profile (
    customer_id TEXT PRIMARY KEY,
    customer_segment TEXT NOT NULL,
    registration_at INTEGER,
    profile_seq INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE customer_features (
    customer_id TEXT PRIMARY KEY,
    customer_segment TEXT NOT NULL DEFAULT 'unknown',
    registration_at INTEGER,
    purchase_frequency INTEGER NOT NULL DEFAULT 0,
    total_spend_micros INTEGER NOT NULL DEFAULT 0,
    first_transaction_at INTEGER,
    last_transaction_at INTEGER,
    session_count INTEGER NOT NULL DEFAULT 0,
    session_ms INTEGER NOT NULL DEFAULT 0,
    interaction_count INTEGER NOT NULL DEFAULT 0,
    event_count INTEGER NOT NULL DEFAULT 0
  ) WITHOUT ROWID;
  ${FEATURES_CURRENT_VIEW}
  `,
  // v2: lifetime totals are derived from the buckets instead of upserted at every commit (that
  // upsert was a quarter of all SQLite time). The table held nothing the buckets do not.
  `
  DROP VIEW customer_features_current;
  DROP TABLE customer_features;
  CREATE VIEW customer_features AS
    WITH totals AS (
      SELECT customer_id,
        sum(tx_count) AS purchase_frequency,
        sum(tx_spend_micros) AS total_spend_micros,
        min(tx_first_at) AS first_transaction_at,
        max(tx_last_at) AS last_transaction_at,
        sum(session_count) AS session_count,
        sum(session_ms) AS session_ms,
        sum(interaction_count) AS interaction_count,
        sum(event_count) AS event_count
      FROM customer_daily GROUP BY customer_id
    ),
    ids AS (SELECT customer_id FROM customer_profile UNION SELECT customer_id FROM totals)
    SELECT ids.customer_id,
      coalesce(p.customer_segment, 'unknown') AS customer_segment,
      p.registration_at,
      coalesce(t.purchase_frequency, 0) AS purchase_frequency,
      coalesce(t.total_spend_micros, 0) AS total_spend_micros,
      t.first_transaction_at,
      t.last_transaction_at,
      coalesce(t.session_count, 0) AS session_count,
      coalesce(t.session_ms, 0) AS session_ms,
      coalesce(t.interaction_count, 0) AS interaction_count,
      coalesce(t.event_count, 0) AS event_count
    FROM ids LEFT JOIN totals t ON t.customer_id = ids.customer_id LEFT JOIN customer_profile p ON p.customer_id = ids.customer_id;
  ${FEATURES_CURRENT_VIEW}
  `,
  // v3: money and durations summed with total(), not sum(): sum() of integers raises "integer
  // overflow" past int64, so one customer with ~1,024 maximal (each valid) amounts made the view,
  // and `tributary status`, fail. total() is exact below 2^53 and finite beyond.
  `
  DROP VIEW customer_features_current;
  DROP VIEW customer_features;
  CREATE VIEW customer_features AS
    WITH totals AS (
      SELECT customer_id,
        sum(tx_count) AS purchase_frequency,
        total(tx_spend_micros) AS total_spend_micros,
        min(tx_first_at) AS first_transaction_at,
        max(tx_last_at) AS last_transaction_at,
        sum(session_count) AS session_count,
        total(session_ms) AS session_ms,
        sum(interaction_count) AS interaction_count,
        sum(event_count) AS event_count
      FROM customer_daily GROUP BY customer_id
    ),
    ids AS (SELECT customer_id FROM customer_profile UNION SELECT customer_id FROM totals)
    SELECT ids.customer_id,
      coalesce(p.customer_segment, 'unknown') AS customer_segment,
      p.registration_at,
      coalesce(t.purchase_frequency, 0) AS purchase_frequency,
      coalesce(t.total_spend_micros, 0) AS total_spend_micros,
      t.first_transaction_at,
      t.last_transaction_at,
      coalesce(t.session_count, 0) AS session_count,
      coalesce(t.session_ms, 0) AS session_ms,
      coalesce(t.interaction_count, 0) AS interaction_count,
      coalesce(t.event_count, 0) AS event_count
    FROM ids LEFT JOIN totals t ON t.customer_id = ids.customer_id LEFT JOIN customer_profile p ON p.customer_id = ids.customer_id;
  ${FEATURES_CURRENT_VIEW}
  `,
  // v4: custom features (features.custom): one bucket per feature, customer and UTC day, and the
  // definitions gold holds, each with its hash and how far its backfill from silver has come.
  `
  CREATE TABLE feature_daily (
    feature TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    n INTEGER NOT NULL,
    total INTEGER NOT NULL,
    lo REAL,
    hi REAL,
    PRIMARY KEY (customer_id, day, feature)
  ) WITHOUT ROWID;
  CREATE TABLE feature_defs (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    definition TEXT NOT NULL,
    backfill_position INTEGER NOT NULL,
    backfilled_through_day INTEGER,
    complete INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
  // v5: every feature `tributary features` prints, exact as of 00:00Z of the reader's day, for SQL
  // users. The custom features join it when a topology syncs gold's feature set (syncFeatures).
  `
  ${featuresTodayViewSql()};
  `,
  // v6: the latest event time of each bucket (and the earliest, for custom features, whose windows
  // may cut a day): a reader at T takes a bucket that lies wholly before T from gold instead of
  // reading today's records from silver. NULL (buckets written before) means unknown, and stays so.
  `
  ALTER TABLE customer_daily ADD COLUMN max_at INTEGER;
  ALTER TABLE feature_daily ADD COLUMN min_at INTEGER;
  ALTER TABLE feature_daily ADD COLUMN max_at INTEGER;
  `,
  // v7: buckets keyed by day, so a commit's upserts share the pages of the current day whatever
  // the number of customers, and each customer's totals over the days before a boundary in a
  // summary, folded in large sorted batches: see gold-layout.ts. customer_features reads the
  // summaries and the buckets from the boundary on.
  `
  ${LAYOUT_MIGRATION}
  ${customerFeaturesView(LIFETIME_TOTALS_SQL)}
  ${FEATURES_CURRENT_VIEW}
  ${featuresTodayViewSql()};
  `,
];

/** Days of silver history one backfill transaction covers: the unit of progress and of resumption. */
const BACKFILL_CHUNK_DAYS = 30;

/**
 * The UTC day of an epoch-ms column in SQL, rounding down like `dayOf` also before 1970 (SQLite's
 * integer division truncates towards zero).
 */
function floorDay(column: string): string {
  return `((${column} - ((${column} % ${DAY_MS}) + ${DAY_MS}) % ${DAY_MS}) / ${DAY_MS})`;
}

/** The SQL a custom feature's buckets are computed with from its silver table. */
export function featureSql(c: CustomFeature): { table: string; time: string; where: string; params: string[]; total: string; value: string } {
  const source = c.source;
  const field = fieldOf(c);
  const keys = Object.keys(c.where ?? {});
  const value = field ? field.sql : "NULL";
  const total = !field ? "0" : field.kind === "money" ? `total(CAST(round(${value} * ${storedUnits("money")}) AS INTEGER))` : `total(${value})`;
  return {
    table: source.table,
    time: source.eventTime,
    where: keys.map((k) => ` AND ${source.fields[k]!.sql} = ?`).join(""),
    params: keys.map((k) => c.where![k]!),
    total,
    value,
  };
}

interface HeldFeature {
  name: string;
  hash: string;
  backfill_position: number;
  backfilled_through_day: number | null;
  complete: number;
}

/** The gold layer's file and statements. */
export class GoldStore {
  readonly db: Database;
  private readonly applyTx: (delta: GoldDelta) => void;

  /**
   * @param presence the bitmaps this process's lookups skip days with (`gold-presence.ts`): built
   *   here from gold's newest buckets, then marked for every bucket before it commits. Only the
   *   layers' writer keeps them, after recovery and backfill.
   */
  constructor(
    dataDir: string,
    storage: StorageOptions,
    private readonly presence?: GoldPresence,
  ) {
    this.db = openLayer(dataDir, "gold", GOLD_MIGRATIONS, storage);
    const db = this.db;
    presence?.rebuild(db);
    const values = (n: number) => Array.from({ length: n }, () => "?").join(", ");
    const upsertDay = db.prepare(
      `INSERT INTO customer_daily (${DAY_COLUMNS.join(", ")}) VALUES (${values(DAY_COLUMNS.length)}) ON CONFLICT (day, customer_id) DO UPDATE SET ${DAY_MERGE}`,
    );
    const upsertFeature = db.prepare(
      `INSERT INTO feature_daily (${FEATURE_COLUMNS.join(", ")}) VALUES (${values(FEATURE_COLUMNS.length)}) ON CONFLICT (day, customer_id, feature) DO UPDATE SET ${FEATURE_MERGE}`,
    );
    const late = lateStatements(db);
    const listDay = db.prepare("INSERT OR IGNORE INTO gold_days (day) VALUES (?)");
    const layout = db.prepare("SELECT summarized_to, moving_to, cursor FROM gold_layout");
    const upsertProfile = db.prepare(
      `INSERT INTO customer_profile (customer_id, customer_segment, registration_at, profile_seq) VALUES (?, ?, ?, ?)
       ON CONFLICT (customer_id) DO UPDATE SET customer_segment = excluded.customer_segment,
         registration_at = excluded.registration_at, profile_seq = excluded.profile_seq
       WHERE excluded.profile_seq > customer_profile.profile_seq`,
    );
    const setPosition = db.prepare(
      `INSERT INTO checkpoint (layer, position) VALUES ('gold', ?) ON CONFLICT (layer) DO UPDATE SET position = excluded.position`,
    );
    const tx = db.transaction((delta: GoldDelta) => {
      const l = layout.get() as LayoutState;
      const days = new Set<number>();
      const lateCustomers: string[] = [];
      for (const d of delta.days) {
        const totals = [d.tx_count, d.tx_spend_micros, d.tx_first_at, d.tx_last_at, d.session_count, d.session_ms, d.interaction_count, d.event_count] as const;
        presence?.mark(d.day, d.customer_id);
        upsertDay.run(d.customer_id, d.day, ...totals, d.max_at);
        days.add(d.day);
        if (summarized(l, d.customer_id, d.day)) {
          // A late record, for a day already summed into the customer's summary: it goes there too.
          late.summary.run(d.customer_id, ...totals, d.day, d.day);
          lateCustomers.push(d.customer_id);
        }
      }
      for (const p of delta.profiles) upsertProfile.run(p.customer_id, p.customer_segment, p.registration_at, p.bronzeSeq);
      for (const x of delta.features) {
        presence?.mark(x.day, x.customer_id);
        upsertFeature.run(x.feature, x.customer_id, x.day, x.n, x.total, x.lo, x.hi, x.min_at, x.max_at);
        days.add(x.day);
        if (summarized(l, x.customer_id, x.day)) late.feature.run(x.customer_id, x.feature, x.n, x.total, x.lo, x.hi);
      }
      if (lateCustomers.length > 0) {
        late.promote[0]!.run(JSON.stringify(lateCustomers));
        late.promote[1]!.run();
      }
      for (const day of days) listDay.run(day);
      setPosition.run(delta.position);
    });
    this.applyTx = (delta) => tx.immediate(delta);
  }

  /** Applies one batch's delta and records its bronze position, in one transaction. */
  apply(delta: GoldDelta): void {
    this.applyTx(delta);
  }

  /** The bronze position gold has applied. */
  position(): number {
    return readPosition(this.db, "gold");
  }

  /**
   * Brings gold's custom features to `features`: a removed feature's buckets are dropped, a new
   * one (or a changed one: removal plus addition) is backfilled from silver's records up to
   * gold's position, in chunks of {@link BACKFILL_CHUNK_DAYS} days, each one transaction that
   * also records how far it came, so a killed backfill resumes where it stopped. Must run before
   * gold applies anything newer, so no record is counted twice.
   *
   * @throws ConfigError with `noBackfill` when gold holds another set of features.
   */
  syncFeatures(dataDir: string, features: readonly CustomFeature[], options: { noBackfill: boolean; log: Logger }): void {
    const held = new Map(
      (this.db.prepare("SELECT name, hash, backfill_position, backfilled_through_day, complete FROM feature_defs").all() as HeldFeature[]).map((r) => [r.name, r]),
    );
    const wanted = new Map(features.map((c) => [c.name, c]));
    const removed = [...held.values()].filter((h) => wanted.get(h.name)?.hash !== h.hash);
    const pending = features.filter((c) => !(held.get(c.name)?.hash === c.hash && held.get(c.name)?.complete === 1));
    if (options.noBackfill && (removed.length > 0 || pending.length > 0)) {
      const what = [
        ...removed.map((h) => `${h.name} (${wanted.has(h.name) ? "changed" : "removed"})`),
        ...pending.filter((c) => !held.has(c.name)).map((c) => `${c.name} (new)`),
        ...pending.filter((c) => held.get(c.name)?.hash === c.hash).map((c) => `${c.name} (backfill unfinished)`),
      ];
      throw new ConfigError(`gold holds another set of custom features than the config: ${what.join(", ")}; start without noBackfill (the CLI's --no-backfill) to drop and backfill them`);
    }
    const position = this.position();
    for (const h of removed) {
      this.db.transaction(() => {
        this.dropFeatureBuckets(h.name);
        this.db.prepare("DELETE FROM feature_defs WHERE name = ?").run(h.name);
      }).immediate();
      options.log.info({ event: "feature_dropped", feature: h.name }, `dropped custom feature ${h.name} from gold`);
    }
    // Dropped features leave the view at once; backfilled ones join it when complete.
    this.syncFeaturesView(features);
    if (pending.length === 0) return;
    this.db.prepare("ATTACH DATABASE ? AS silver").run(layerPath(dataDir, "silver"));
    try {
      for (const c of pending) this.backfill(c, position, options.log);
    } finally {
      this.db.prepare("DETACH DATABASE silver").run();
    }
    this.syncFeaturesView(features);
  }

  /**
   * Recreates `customer_features_today` with those of `features` that gold holds completely under
   * the same definition (as readers serve them), in config order, when its columns differ. A
   * window of a fractional day would need silver's records at 00:00Z, so such a feature stays out.
   */
  private syncFeaturesView(features: readonly CustomFeature[]): void {
    const complete = new Set(this.db.prepare("SELECT name || ' ' || hash FROM feature_defs WHERE complete = 1").pluck().all() as string[]);
    const sql = featuresTodayViewSql(features.filter((c) => complete.has(`${c.name} ${c.hash}`) && (c.windowDays === undefined || Number.isInteger(c.windowDays))));
    const held = this.db.prepare("SELECT sql FROM sqlite_master WHERE type = 'view' AND name = 'customer_features_today'").pluck().get();
    if (held === sql) return;
    this.db.transaction(() => this.db.exec(`DROP VIEW IF EXISTS customer_features_today; ${sql};`)).immediate();
  }

  /** Removes a custom feature's buckets and summaries. */
  private dropFeatureBuckets(name: string): void {
    this.db.prepare("DELETE FROM feature_daily WHERE feature = ?").run(name);
    this.db.prepare("DELETE FROM feature_summary WHERE feature = ?").run(name);
  }

  private backfill(c: CustomFeature, position: number, log: Logger): void {
    const h = this.db.prepare("SELECT hash, backfill_position, backfilled_through_day, complete FROM feature_defs WHERE name = ?").get(c.name) as HeldFeature | undefined;
    const resume = h !== undefined && h.hash === c.hash && h.complete === 0 && h.backfill_position === position;
    if (!resume) {
      this.db.transaction(() => {
        this.dropFeatureBuckets(c.name);
        this.db
          .prepare(
            `INSERT INTO feature_defs (name, hash, definition, backfill_position, backfilled_through_day, complete) VALUES (?, ?, ?, ?, NULL, 0)
             ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, definition = excluded.definition, backfill_position = excluded.backfill_position,
               backfilled_through_day = NULL, complete = 0`,
          )
          .run(c.name, c.hash, JSON.stringify({ from: c.from, aggregate: c.aggregate, field: c.field ?? null, where: c.where ?? null, windowDays: c.windowDays ?? null }), position);
      }).immediate();
    }
    const q = featureSql(c);
    const range = this.db
      .prepare(`SELECT min(${q.time}) AS lo, max(${q.time}) AS hi FROM silver.${q.table} WHERE bronze_seq <= ?${q.where}`)
      .get(position, ...q.params) as { lo: number | null; hi: number | null };
    const firstDay = range.lo === null ? 0 : Math.floor(range.lo / DAY_MS);
    const lastDay = range.hi === null ? -1 : Math.floor(range.hi / DAY_MS);
    let from = resume && h!.backfilled_through_day !== null ? h!.backfilled_through_day + 1 : firstDay;
    const insert = this.db.prepare(
      `INSERT INTO feature_daily (feature, customer_id, day, n, total, lo, hi, min_at, max_at)
       SELECT ?, customer_id, ${floorDay(q.time)} AS d, count(*), ${q.total}, min(${q.value}), max(${q.value}), min(${q.time}), max(${q.time})
       FROM silver.${q.table} WHERE bronze_seq <= ? AND ${q.time} >= ? AND ${q.time} < ?${q.where} GROUP BY customer_id, d`,
    );
    // The chunk's days that the customers' summaries cover go into them too (a fold may be under way).
    const summarize = this.db.prepare(
      `INSERT INTO feature_summary SELECT customer_id, feature, sum(n), total(total), min(lo), max(hi)
       FROM feature_daily, gold_layout l WHERE feature = ? AND day >= ? AND day <= ? AND ${summarizedSql()} GROUP BY customer_id, feature
       ON CONFLICT (customer_id, feature) DO UPDATE SET ${FEATURE_SUMMARY_MERGE}`,
    );
    const list = this.db.prepare("INSERT OR IGNORE INTO gold_days (day) SELECT DISTINCT day FROM feature_daily WHERE feature = ? AND day >= ? AND day <= ?");
    const mark = this.db.prepare("UPDATE feature_defs SET backfilled_through_day = ? WHERE name = ?");
    const started = Date.now();
    log.info({ event: "feature_backfill", feature: c.name, fromDay: from, lastDay, resumed: resume }, `backfilling custom feature ${c.name} from silver`);
    while (from <= lastDay) {
      const to = Math.min(lastDay, from + BACKFILL_CHUNK_DAYS - 1);
      const chunk = this.db.transaction(() => {
        const r = insert.run(c.name, position, from * DAY_MS, (to + 1) * DAY_MS, ...q.params);
        summarize.run(c.name, from, to);
        list.run(c.name, from, to);
        mark.run(to, c.name);
        return r.changes;
      });
      const rows = chunk.immediate();
      const done = lastDay === firstDay ? 1 : (to - firstDay + 1) / (lastDay - firstDay + 1);
      log.info({ event: "feature_backfill_progress", feature: c.name, throughDay: new Date(to * DAY_MS).toISOString().slice(0, 10), buckets: rows, percent: Math.round(done * 100) }, `backfill of ${c.name}: ${Math.round(done * 100)}%`);
      from = to + 1;
    }
    this.db.prepare("UPDATE feature_defs SET complete = 1 WHERE name = ?").run(c.name);
    log.info({ event: "feature_backfilled", feature: c.name, ms: Date.now() - started }, `custom feature ${c.name} backfilled`);
  }

  close(): void {
    this.presence?.retire();
    this.db.close();
  }
}

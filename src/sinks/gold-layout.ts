/**
 * Gold's bucket layout and its compaction, the counterpart of Delta's partitioning and OPTIMIZE.
 *
 * A bucket is one customer's totals on one UTC day. `customer_daily` keeps every bucket, keyed by
 * (day, customer): a commit's upserts land in the pages of the days its records fall on, shared
 * by the whole batch whatever the number of customers, where a key of (customer, day) gave each
 * upsert a page of its own. Compaction ("folding") sums whole days, in large sorted batches, into
 * `customer_summary`, each customer's totals over the days before a boundary, so that a
 * customer's lifetime is their summary plus their buckets from the boundary on, a handful of
 * days. Custom features follow the same layout (`feature_daily`, `feature_summary`).
 * `spend_leaders` keeps the summaries' top customers by spend for "top N by total_spend".
 *
 * `gold_layout` records the boundary: buckets of days before `summarized_to` are in the
 * summaries; while a fold adds the days before `moving_to`, so are those days' buckets of the
 * customers up to `cursor` (the fold goes through the customers in key order, one short
 * transaction each). A commit that adds to a summarized day (a late record) adds to the summary
 * too, in its own transaction, so the summaries never depend on arrival order. Every step, commit
 * or fold, is one transaction that also moves the layout's state, so a crash at any point leaves
 * each bucket summed exactly once.
 */
import type { Statement, Transaction } from "better-sqlite3";
import type { Database } from "./database.js";
import { DAY_MS } from "../timestamps.js";

/** A day before any bucket: the boundary until the first fold. */
export const FIRST_DAY = -2_147_483_648;
/** How many of the summaries' top spenders `spend_leaders` keeps: the largest N an index read answers. */
export const SPEND_LEADERS = 1_000;

/** The totals of a day bucket, in the column order the bucket table and the summary share. */
const TOTALS = ["tx_count", "tx_spend_micros", "tx_first_at", "tx_last_at", "session_count", "session_ms", "interaction_count", "event_count"] as const;
/** Columns of a day bucket, in table order. */
export const DAY_COLUMNS = ["customer_id", "day", ...TOTALS, "max_at"] as const;
/** Columns of a custom feature's bucket, in table order. */
export const FEATURE_COLUMNS = ["feature", "customer_id", "day", "n", "total", "lo", "hi", "min_at", "max_at"] as const;

const sum = (c: string) => `${c} = ${c} + excluded.${c}`;
// min()/max() over coalesce() keeps NULL only when both sides are NULL.
const least = (c: string) => `${c} = min(coalesce(${c}, excluded.${c}), coalesce(excluded.${c}, ${c}))`;
const most = (c: string) => `${c} = max(coalesce(${c}, excluded.${c}), coalesce(excluded.${c}, ${c}))`;
// The plain multi-argument min()/max() give NULL when either side is NULL: an event-time bound
// that is unknown (a bucket written before gold schema 6) stays unknown.
const leastKnown = (c: string) => `${c} = min(${c}, excluded.${c})`;
const mostKnown = (c: string) => `${c} = max(${c}, excluded.${c})`;

const TOTALS_MERGE = [sum("tx_count"), sum("tx_spend_micros"), least("tx_first_at"), most("tx_last_at"), sum("session_count"), sum("session_ms"), sum("interaction_count"), sum("event_count")];
/** The ON CONFLICT update that merges a day bucket into another. */
export const DAY_MERGE = [...TOTALS_MERGE, mostKnown("max_at")].join(", ");
/** The ON CONFLICT update that merges a customer's totals into their summary. */
export const SUMMARY_MERGE = [...TOTALS_MERGE, "first_day = min(first_day, excluded.first_day)", "last_day = max(last_day, excluded.last_day)"].join(", ");
const FEATURE_TOTALS_MERGE = [sum("n"), sum("total"), least("lo"), most("hi")];
/** The ON CONFLICT update that merges a custom feature's bucket into another. */
export const FEATURE_MERGE = [...FEATURE_TOTALS_MERGE, leastKnown("min_at"), mostKnown("max_at")].join(", ");
/** The ON CONFLICT update that merges a custom feature's totals into its summary. */
export const FEATURE_SUMMARY_MERGE = FEATURE_TOTALS_MERGE.join(", ");
/**
 * Day buckets summed into one customer's totals. total(), not sum(), for money and durations:
 * sum() of integers raises "integer overflow" past int64; total() is exact below 2^53 and finite beyond.
 */
const SUMMED = "sum(tx_count), total(tx_spend_micros), min(tx_first_at), max(tx_last_at), sum(session_count), total(session_ms), sum(interaction_count), sum(event_count), min(day), max(day)";
const FEATURE_SUMMED = "sum(n), total(total), min(lo), max(hi)";

/**
 * Whether the bucket of `customer_id` on `day` is summed into its summary, against the
 * `gold_layout` row aliased `l`.
 */
export function summarizedSql(day = "day", customer = "customer_id"): string {
  return `(${day} < l.summarized_to OR (l.moving_to IS NOT NULL AND ${day} < l.moving_to AND ${customer} <= l.cursor))`;
}

/** The first day of `customer`'s buckets not in their summary, against `gold_layout l`. */
export function boundarySql(customer: string): string {
  return `CASE WHEN l.moving_to IS NOT NULL AND ${customer} <= l.cursor THEN l.moving_to ELSE l.summarized_to END`;
}

/**
 * Keeps `spend_leaders` the top {@link SPEND_LEADERS} of the summaries by spend after summaries
 * grew: the customers given by `where` (on `s`) that rank at or above the last leader go in (a
 * leader's own spend only grows, so it always does), then the list is trimmed. Spend only grows,
 * so the new top is among the old one and those.
 */
function promoteSql(where: string): string[] {
  return [
    `WITH k AS MATERIALIZED (SELECT tx_spend_micros AS spend, customer_id AS id FROM spend_leaders ORDER BY tx_spend_micros DESC, customer_id LIMIT 1 OFFSET ${SPEND_LEADERS - 1})
     INSERT INTO spend_leaders (customer_id, tx_spend_micros)
       SELECT s.customer_id, s.tx_spend_micros FROM customer_summary s LEFT JOIN k WHERE ${where} AND (
         k.id IS NULL OR s.tx_spend_micros > k.spend OR (s.tx_spend_micros = k.spend AND s.customer_id <= k.id))
       ON CONFLICT (customer_id) DO UPDATE SET tx_spend_micros = excluded.tx_spend_micros`,
    `DELETE FROM spend_leaders WHERE customer_id IN (SELECT customer_id FROM spend_leaders ORDER BY tx_spend_micros DESC, customer_id LIMIT -1 OFFSET ${SPEND_LEADERS})`,
  ];
}

/** The totals' column definitions that buckets and summaries share (part of a shipped migration: never edit). */
const TOTALS_DDL = `tx_count INTEGER NOT NULL,
    tx_spend_micros INTEGER NOT NULL,
    tx_first_at INTEGER,
    tx_last_at INTEGER,
    session_count INTEGER NOT NULL,
    session_ms INTEGER NOT NULL,
    interaction_count INTEGER NOT NULL,
    event_count INTEGER NOT NULL,`;

/**
 * Gold schema 7: the layout above, from schema 6's buckets keyed by customer (the tables keep
 * their names and columns). The last two days holding buckets stay out of the summaries.
 */
export const LAYOUT_MIGRATION = `
  CREATE TABLE gold_layout (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    summarized_to INTEGER NOT NULL,
    moving_to INTEGER,
    cursor TEXT
  );
  INSERT INTO gold_layout (id, summarized_to) SELECT 1, coalesce(max(day) - 1, ${FIRST_DAY}) FROM customer_daily;
  CREATE TABLE customer_daily_by_day (
    customer_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    ${TOTALS_DDL}
    max_at INTEGER,
    PRIMARY KEY (day, customer_id)
  ) WITHOUT ROWID;
  INSERT INTO customer_daily_by_day SELECT ${DAY_COLUMNS.join(", ")} FROM customer_daily ORDER BY day, customer_id;
  CREATE TABLE feature_daily_by_day (
    feature TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    n INTEGER NOT NULL,
    total INTEGER NOT NULL,
    lo REAL,
    hi REAL,
    min_at INTEGER,
    max_at INTEGER,
    PRIMARY KEY (day, customer_id, feature)
  ) WITHOUT ROWID;
  INSERT INTO feature_daily_by_day SELECT ${FEATURE_COLUMNS.join(", ")} FROM feature_daily ORDER BY day, customer_id, feature;
  DROP VIEW customer_features_today;
  DROP VIEW customer_features_current;
  DROP VIEW customer_features;
  DROP TABLE customer_daily;
  DROP TABLE feature_daily;
  ALTER TABLE customer_daily_by_day RENAME TO customer_daily;
  ALTER TABLE feature_daily_by_day RENAME TO feature_daily;
  CREATE TABLE gold_days (day INTEGER PRIMARY KEY);
  INSERT INTO gold_days SELECT DISTINCT day FROM customer_daily;
  INSERT OR IGNORE INTO gold_days SELECT DISTINCT day FROM feature_daily;
  CREATE TABLE customer_summary (
    customer_id TEXT PRIMARY KEY,
    ${TOTALS_DDL}
    first_day INTEGER NOT NULL,
    last_day INTEGER NOT NULL
  ) WITHOUT ROWID;
  INSERT INTO customer_summary SELECT customer_id, ${SUMMED} FROM customer_daily, gold_layout l WHERE day < l.summarized_to GROUP BY customer_id ORDER BY customer_id;
  CREATE TABLE feature_summary (
    customer_id TEXT NOT NULL,
    feature TEXT NOT NULL,
    n INTEGER NOT NULL,
    total INTEGER NOT NULL,
    lo REAL,
    hi REAL,
    PRIMARY KEY (customer_id, feature)
  ) WITHOUT ROWID;
  INSERT INTO feature_summary SELECT customer_id, feature, ${FEATURE_SUMMED} FROM feature_daily, gold_layout l WHERE day < l.summarized_to GROUP BY customer_id, feature ORDER BY customer_id, feature;
  CREATE TABLE spend_leaders (customer_id TEXT PRIMARY KEY, tx_spend_micros INTEGER NOT NULL) WITHOUT ROWID;
  CREATE INDEX spend_leaders_by_spend ON spend_leaders (tx_spend_micros DESC, customer_id);
  INSERT INTO spend_leaders SELECT customer_id, tx_spend_micros FROM customer_summary ORDER BY tx_spend_micros DESC, customer_id LIMIT ${SPEND_LEADERS};`;

/** The buckets not summed into a summary yet, with the summaries: each customer's every bucket once. */
const UNSUMMARIZED = `FROM customer_daily, gold_layout l WHERE day >= l.summarized_to AND NOT ${summarizedSql()}`;

/**
 * Lifetime totals per customer (schema 7's `customer_features` totals): each summary plus the
 * customer's buckets from their boundary on.
 */
export const LIFETIME_TOTALS_SQL = `
      SELECT customer_id,
        sum(tx_count) AS purchase_frequency,
        total(tx_spend_micros) AS total_spend_micros,
        min(tx_first_at) AS first_transaction_at,
        max(tx_last_at) AS last_transaction_at,
        sum(session_count) AS session_count,
        total(session_ms) AS session_ms,
        sum(interaction_count) AS interaction_count,
        sum(event_count) AS event_count
      FROM (
        SELECT customer_id, ${TOTALS.join(", ")} FROM customer_summary
        UNION ALL SELECT customer_id, ${TOTALS.join(", ")} ${UNSUMMARIZED}
      ) GROUP BY customer_id`;

/**
 * The top `@n` customers by lifetime spend (`@n` at most {@link SPEND_LEADERS}), exactly: the
 * leaders of the summaries (an index read), and every customer with buckets past their boundary,
 * each with summary plus those buckets' spend. Spend only grows (no amount is negative), so a
 * customer outside both sets is behind `@n` customers who are in them. Ties go by customer id.
 */
export const TOP_SPEND_SQL = `
  WITH recent AS (SELECT customer_id, total(tx_spend_micros) AS spend ${UNSUMMARIZED} GROUP BY customer_id),
  top AS (SELECT customer_id FROM spend_leaders ORDER BY tx_spend_micros DESC, customer_id LIMIT @n),
  candidates AS (SELECT customer_id FROM top UNION SELECT customer_id FROM recent)
  SELECT c.customer_id, coalesce(s.tx_spend_micros, 0) + coalesce(r.spend, 0.0) AS total_spend_micros
  FROM candidates c LEFT JOIN customer_summary s ON s.customer_id = c.customer_id LEFT JOIN recent r ON r.customer_id = c.customer_id
  ORDER BY total_spend_micros DESC, c.customer_id LIMIT @n`;

/** Where the summaries stand (the row of `gold_layout`). */
export interface LayoutState {
  readonly summarized_to: number;
  readonly moving_to: number | null;
  readonly cursor: string | null;
}

const SURROGATE = /[\uD800-\uDFFF]/;

/**
 * SQLite's order of TEXT (the bytes of UTF-8) for two strings. JavaScript compares UTF-16 code
 * units, which agrees except where a character beyond U+FFFF meets one in U+E000–U+FFFF.
 */
function compareText(a: string, b: string): number {
  if (SURROGATE.test(a) || SURROGATE.test(b)) return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Whether the bucket of `customer` on `day` is summed into its summary under `layout` ({@link summarizedSql} in JavaScript). */
export function summarized(layout: LayoutState, customer: string, day: number): boolean {
  if (day < layout.summarized_to) return true;
  return layout.moving_to !== null && day < layout.moving_to && layout.cursor !== null && compareText(customer, layout.cursor) <= 0;
}

/**
 * The statements a commit runs to keep the summaries whole when it adds to a summarized day;
 * `promote` takes the late customers as a JSON array, once per commit.
 */
export function lateStatements(db: Database): { summary: Statement; feature: Statement; promote: Statement[] } {
  const values = (n: number) => Array.from({ length: n }, () => "?").join(", ");
  return {
    summary: db.prepare(`INSERT INTO customer_summary VALUES (${values(11)}) ON CONFLICT (customer_id) DO UPDATE SET ${SUMMARY_MERGE}`),
    feature: db.prepare(`INSERT INTO feature_summary VALUES (${values(6)}) ON CONFLICT (customer_id, feature) DO UPDATE SET ${FEATURE_SUMMARY_MERGE}`),
    promote: promoteSql("s.customer_id IN (SELECT value FROM json_each(?))").map((sql) => db.prepare(sql)),
  };
}

/** When a fold is due, and how it runs. */
export interface FoldPolicy {
  /** Days holding buckets that stay out of the summaries, counting the newest (not after tomorrow, by the clock). */
  readonly keepDays: number;
  /**
   * Fold once the days not summed yet span more than this many. A fold rewrites the summaries of
   * every customer with a bucket in those days, once; folding a month at a time spreads that over
   * many buckets per customer, and a lookup of now reads the window's 31 days anyway.
   */
  readonly maxDays: number;
  /** Buckets summed per transaction: what a commit waits for at most. */
  readonly chunkRows: number;
}

export const FOLD_POLICY: FoldPolicy = { keepDays: 2, maxDays: 30, chunkRows: 4_000 };

/** What one fold step did. */
export interface FoldStep {
  /** Summaries (customers', and custom features') it brought up to date. */
  readonly summaries: number;
  /** A fold is still in progress after this step. */
  readonly more: boolean;
  readonly ms: number;
}

/**
 * Folds days into the summaries on its own write connection: the daemon's maintenance thread,
 * `tributary optimize`, or the writer itself when it runs inline. Several may work on one file at
 * once; each step reads the layout inside its transaction.
 */
export class GoldFolder {
  private readonly layout: Statement;
  private readonly start: (force: boolean, today: number) => boolean;
  private readonly chunk: Transaction<() => number>;

  constructor(
    private readonly db: Database,
    private readonly policy: FoldPolicy = FOLD_POLICY,
  ) {
    this.layout = db.prepare("SELECT summarized_to, moving_to, cursor FROM gold_layout");
    const latest = db.prepare("SELECT max(day) FROM gold_days WHERE day <= ?").pluck();
    const oldest = db.prepare("SELECT min(day) FROM gold_days WHERE day >= ?").pluck();
    const begin = db.prepare("UPDATE gold_layout SET moving_to = ?, cursor = '' WHERE moving_to IS NULL AND summarized_to = ?");
    // Whether a fold is due is read without the write lock; the fold begins in a write
    // transaction of its own, unless the layout changed meanwhile.
    const plan = db.transaction((force: boolean, today: number): { target: number; from: number } | null => {
      const l = this.layout.get() as LayoutState;
      if (l.moving_to !== null) return { target: l.moving_to, from: l.summarized_to };
      const newest = latest.get(today + 1) as number | null;
      if (newest === null) return null;
      const target = newest - policy.keepDays + 1;
      const first = oldest.get(l.summarized_to) as number | null;
      if (first === null || first >= target) return null;
      return force || target - first > policy.maxDays ? { target, from: l.summarized_to } : null;
    });
    this.start = (force: boolean, today: number): boolean => {
      const p = plan.deferred(force, today);
      if (p === null) return false;
      db.transaction(() => begin.run(p.target, p.from)).immediate();
      return this.state().moving_to !== null;
    };
    const days = db.prepare("SELECT json_group_array(day) FROM gold_days WHERE day >= ? AND day < ?").pluck();
    // The chunk ends at the smallest id that is `k` buckets past the cursor in any day it folds.
    const upper = db.prepare(
      `SELECT min((SELECT customer_id FROM customer_daily WHERE day = d.value AND customer_id > ? ORDER BY customer_id LIMIT 1 OFFSET ?)) FROM json_each(?) AS d`,
    ).pluck();
    const sums = (bounded: boolean) => {
      const range = `customer_id > ?${bounded ? " AND customer_id <= ?" : ""}`;
      const where = `day IN (SELECT value FROM json_each(?)) AND ${range}`;
      return {
        summary: db.prepare(`INSERT INTO customer_summary SELECT customer_id, ${SUMMED} FROM customer_daily WHERE ${where} GROUP BY customer_id ORDER BY customer_id ON CONFLICT (customer_id) DO UPDATE SET ${SUMMARY_MERGE}`),
        features: db.prepare(
          `INSERT INTO feature_summary SELECT customer_id, feature, ${FEATURE_SUMMED} FROM feature_daily WHERE ${where} GROUP BY customer_id, feature ORDER BY customer_id, feature ON CONFLICT (customer_id, feature) DO UPDATE SET ${FEATURE_SUMMARY_MERGE}`,
        ),
        promote: promoteSql(bounded ? "s.customer_id > ? AND s.customer_id <= ?" : "s.customer_id > ?").map((sql) => db.prepare(sql)),
      };
    };
    const bounded = sums(true);
    const unbounded = sums(false);
    const advance = db.prepare("UPDATE gold_layout SET cursor = ?");
    const finish = db.prepare("UPDATE gold_layout SET summarized_to = moving_to, moving_to = NULL, cursor = NULL");
    this.chunk = db.transaction((): number => {
      const l = this.layout.get() as LayoutState;
      if (l.moving_to === null) return -1;
      const list = days.get(l.summarized_to, l.moving_to) as string;
      const n = (JSON.parse(list) as number[]).length;
      const hi = n === 0 ? null : (upper.get(l.cursor, Math.max(1, Math.floor(policy.chunkRows / n)) - 1, list) as string | null);
      let summaries = 0;
      if (n > 0) {
        const s = hi === null ? unbounded : bounded;
        const range = hi === null ? [l.cursor] : [l.cursor, hi];
        summaries = s.summary.run(list, ...range).changes + s.features.run(list, ...range).changes;
        s.promote[0]!.run(...range);
        s.promote[1]!.run();
      }
      if (hi !== null) advance.run(hi);
      else finish.run();
      return summaries;
    });
  }

  /** Whether a gold file has this layout (schema 7 on); an older file is migrated when a writer opens it. */
  static applies(db: Database): boolean {
    return (db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'gold_layout'").pluck().get() as number) > 0;
  }

  /** The layout as it stands. */
  state(): LayoutState {
    return this.layout.get() as LayoutState;
  }

  /**
   * Starts a fold when one is due (always, with `force`, when any bucket can be summed), in a
   * short write transaction. Returns whether a fold is in progress.
   */
  begin(options: { force?: boolean; now?: number } = {}): boolean {
    return this.start(options.force ?? false, Math.floor((options.now ?? Date.now()) / DAY_MS));
  }

  /** Sums one chunk of the fold in progress, in one write transaction (nothing when none is). */
  move(): FoldStep {
    const t0 = performance.now();
    const summaries = this.chunk.immediate();
    return { summaries: Math.max(0, summaries), more: summaries >= 0 && this.state().moving_to !== null, ms: performance.now() - t0 };
  }

  /** One step: {@link begin}, then {@link move} when a fold is in progress. */
  step(options: { force?: boolean; now?: number } = {}): FoldStep {
    const t0 = performance.now();
    if (!this.begin(options)) return { summaries: 0, more: false, ms: performance.now() - t0 };
    const s = this.move();
    return { ...s, ms: performance.now() - t0 };
  }

  /** Folds until nothing more is due (everything that can be summed, with `force`). Returns the summaries brought up to date. */
  run(options: { force?: boolean; now?: number } = {}): number {
    let summaries = 0;
    for (;;) {
      const s = this.step(options);
      summaries += s.summaries;
      if (!s.more) return summaries;
    }
  }
}

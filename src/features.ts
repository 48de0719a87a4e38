/**
 * Point-in-time features: the gold feature table as of any instant T, computed from gold's daily
 * buckets (whole days before T) plus silver's records for the partial days at the edges of the
 * window, restricted to what gold has applied. Only records whose event time is before T count.
 */
import { existsSync } from "node:fs";
import type { Statement } from "better-sqlite3";
import { DAY_MS, formatTimestamp } from "./timestamps.js";
import { emptyTotals, mergeTotals, type Totals } from "./operators/aggregate.js";
import { layerPath, openLayer, type Database } from "./sinks/database.js";
import { GOLD_MIGRATIONS, featureSql } from "./sinks/gold.js";
import { BUILTIN_FEATURES, fieldOf, storedUnits, type CustomFeature } from "./model/features.js";
import { SILVER_MIGRATIONS, checkSilverHorizon } from "./sinks/silver.js";
import { NoDataError, StorageError } from "./errors.js";

/** The built-in feature columns, in output order (the CSV header): the registry's order. */
export const FEATURE_COLUMNS: readonly string[] = BUILTIN_FEATURES.map((f) => f.name);

/** The columns of a feature table: the built-in ones, then the custom ones in config order. */
export function featureColumns(custom: readonly CustomFeature[] = []): string[] {
  return [...FEATURE_COLUMNS, ...custom.map((c) => c.name)];
}

/** One customer's features. Custom features (`features.custom`) follow as further keys. */
export interface FeatureRow {
  [custom: string]: string | number | null;
  customer_id: string;
  customer_segment: string;
  purchase_frequency: number;
  total_spend: number;
  avg_transaction_value: number | null;
  first_transaction_at: string | null;
  last_transaction_at: string | null;
  recency_days: number | null;
  transactions_last_30_days: number;
  spend_last_30_days: number;
  session_count: number;
  avg_session_duration_seconds: number | null;
  interaction_count: number;
  event_count: number;
  days_since_registration: number | null;
}

/** One customer's totals as of T: everything before T, and the 30-day window. */
export interface Window {
  /** Everything before T. */
  all: Totals;
  /** Records in [T − 30 days, T). */
  recent: Totals;
  /** Gold holds a day of this customer before T (an added entity's records leave the built-in totals at zero). */
  seen?: boolean;
}

const round = (x: number, digits: number) => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

/** A custom feature's merge state for one customer: count, stored sum, min and max. */
export interface Bucket {
  n: number;
  total: number;
  lo: number | null;
  hi: number | null;
}

/** `customer_daily` columns of one bucket as {@link FeatureReader.lookup} reads them: day, the totals in {@link Totals} order, max_at. */
type DayRow = [day: number, tx_count: number, tx_spend_micros: number, tx_first_at: number | null, tx_last_at: number | null, session_count: number, session_ms: number, interaction_count: number, event_count: number, max_at: number | null];
const DAY_MAX_AT = 9;
/** `feature_daily` columns of one bucket: feature, day, n, total, lo, hi, min_at, max_at. */
type FeatureBucketRow = [feature: string, day: number, n: number, total: number, lo: number | null, hi: number | null, min_at: number | null, max_at: number | null];

/** What gold holds of one customer, read in one transaction. */
interface GoldCustomer {
  readonly position: number;
  readonly days: readonly DayRow[];
  readonly profile: [segment: string, registration: number | null] | undefined;
  readonly features: readonly FeatureBucketRow[];
}

function bucketTotals(b: DayRow): Totals {
  return { tx_count: b[1], tx_spend_micros: b[2], tx_first_at: b[3], tx_last_at: b[4], session_count: b[5], session_ms: b[6], interaction_count: b[7], event_count: b[8] };
}

/** `a` merged with `b` (a new bucket when `a` is undefined): counts and sums add, min and max keep the extremes. */
function mergeBucket(a: Bucket | undefined, b: Bucket): Bucket {
  if (!a) return { ...b };
  a.n += b.n;
  a.total += b.total;
  a.lo = a.lo === null ? b.lo : b.lo === null ? a.lo : Math.min(a.lo, b.lo);
  a.hi = a.hi === null ? b.hi : b.hi === null ? a.hi : Math.max(a.hi, b.hi);
  return a;
}

/** Reads features from a data directory. Opens the files read-only; safe beside a running daemon. */
export class FeatureReader {
  private readonly gold: Database;
  private readonly silver: Database;
  private readonly custom: readonly CustomFeature[];
  /** Statements prepared on first use: a lookup runs the same few again and again. */
  private readonly statements = new Map<string, Statement>();
  private oneCustomer: ((customerId: string) => GoldCustomer) | null = null;

  /**
   * @param options.features custom features to compute besides the built-in ones; gold must hold
   *   each, completely backfilled under the same definition (else a StorageError).
   */
  constructor(dataDir: string, options: { busyTimeout?: number; features?: readonly CustomFeature[] } = {}) {
    for (const layer of ["gold", "silver"] as const) {
      if (!existsSync(layerPath(dataDir, layer))) {
        throw new NoDataError(`no ${layer} data in ${dataDir}: nothing has been written to it yet`);
      }
    }
    const storage = { synchronous: "normal" as const, busyTimeout: options.busyTimeout ?? 5_000, readonly: true };
    this.gold = openLayer(dataDir, "gold", GOLD_MIGRATIONS, storage);
    this.silver = openLayer(dataDir, "silver", SILVER_MIGRATIONS, storage);
    this.custom = options.features ?? [];
    try {
      this.checkHeld();
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /** The columns {@link compute} fills, in output order. */
  get columns(): string[] {
    return featureColumns(this.custom);
  }

  /** Never serve a custom feature that gold does not hold, completely, under this definition. */
  private checkHeld(): void {
    if (this.custom.length === 0) return;
    const hasDefs = this.gold.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'feature_defs'").pluck().get() as number;
    const held = new Map(
      hasDefs ? (this.gold.prepare("SELECT name, hash, complete FROM feature_defs").all() as { name: string; hash: string; complete: number }[]).map((r) => [r.name, r]) : [],
    );
    for (const c of this.custom) {
      const h = held.get(c.name);
      const why = !h ? "gold does not hold it yet" : h.hash !== c.hash ? "gold holds it under another definition" : h.complete !== 1 ? "its backfill from silver has not finished" : null;
      if (why) throw new StorageError(`custom feature ${c.name} cannot be served: ${why}; a topology started with this feature set backfills it`);
    }
  }

  /**
   * Features of every customer listed as of `asOf` (epoch ms), or of one customer, sorted by id.
   *
   * @example
   * new FeatureReader("./data").compute(Date.parse("2026-03-01T00:00:00Z"), "c42")
   */
  compute(asOf: number, customerId?: string): FeatureRow[] {
    const T = asOf;
    const dayT = Math.floor(T / DAY_MS);
    const windowStart = T - 30 * DAY_MS;
    const firstFullWindowDay = Math.ceil(windowStart / DAY_MS);
    const byCustomer = new Map<string, Window>();
    const get = (id: string) => {
      let w = byCustomer.get(id);
      if (!w) byCustomer.set(id, (w = { all: emptyTotals(), recent: emptyTotals() }));
      return w;
    };
    const one = customerId !== undefined;

    // Gold first: its position bounds what we read from silver, which is never behind gold.
    const readGold = this.gold.transaction(() => {
      const position = (this.gold.prepare("SELECT position FROM checkpoint WHERE layer = 'gold'").pluck().get() as number) ?? 0;
      const sql = `SELECT customer_id,
          day >= ? AS recent, tx_count, tx_spend_micros, tx_first_at, tx_last_at, session_count, session_ms, interaction_count, event_count
        FROM customer_daily WHERE day < ? ${one ? "AND customer_id = ?" : ""}`;
      const params: unknown[] = [firstFullWindowDay, dayT];
      if (one) params.push(customerId);
      for (const row of this.gold.prepare(sql).iterate(...params) as Iterable<Totals & { customer_id: string; recent: number }>) {
        const w = get(row.customer_id);
        w.seen = true;
        mergeTotals(w.all, row);
        if (row.recent) mergeTotals(w.recent, row);
      }
      const profiles = this.gold
        .prepare(`SELECT customer_id, customer_segment, registration_at FROM customer_profile ${one ? "WHERE customer_id = ?" : ""}`)
        .all(...(one ? [customerId] : [])) as { customer_id: string; customer_segment: string; registration_at: number | null }[];
      const custom = this.custom.map((c) => this.customWholeDays(c, T, customerId));
      return { position, profiles, custom };
    });
    const { position, profiles, custom } = readGold();
    this.custom.forEach((c, i) => this.customPartialDays(c, T, position, customerId, custom[i]!));

    // Partial days from silver: the start of today (up to T) and the first day of the window.
    const tailStart = dayT * DAY_MS;
    if (T > tailStart) this.addPartial(tailStart, T, position, customerId, (id, t) => (mergeTotals(get(id).all, t), mergeTotals(get(id).recent, t)));
    const headEnd = firstFullWindowDay * DAY_MS;
    if (windowStart < headEnd) this.addPartial(windowStart, Math.min(headEnd, T), position, customerId, (id, t) => mergeTotals(get(id).recent, t));
    // Refuses T when silver retention deleted records its partial days need (checked after reading, as the horizon may move).
    checkSilverHorizon(this.silver, T, this.windowsMs());

    const segments = new Map<string, { segment: string; registration: number | null }>();
    for (const p of profiles) segments.set(p.customer_id, { segment: p.customer_segment, registration: p.registration_at });

    const ids = new Set<string>();
    for (const [id, w] of byCustomer) if (w.seen || hasAny(w.all)) ids.add(id);
    // Today's records of an added entity are only in its features' buckets.
    for (const buckets of custom) for (const [id, b] of buckets) if (b.n > 0) ids.add(id);
    for (const [id, p] of segments) if (p.registration === null || p.registration < T) ids.add(id);

    const rows: FeatureRow[] = [];
    for (const id of [...ids].sort()) {
      const w = byCustomer.get(id) ?? { all: emptyTotals(), recent: emptyTotals() };
      const p = segments.get(id);
      const row = toRow(id, w, p, T);
      this.custom.forEach((c, i) => (row[c.name] = customValue(c, custom[i]!.get(id))));
      rows.push(row);
    }
    return rows;
  }

  /**
   * Features of one customer as of `asOf` (epoch ms), or null when not listed: the row
   * {@link compute} gives for that customer, read with a few prepared statements. The partial days
   * at the window's edges come from gold too when their buckets lie wholly on one side of the edge
   * (each bucket keeps the latest, and for custom features the earliest, event time of its
   * records), and from silver's records only when an edge cuts a bucket: a lookup of now costs the
   * same however many records today holds.
   *
   * @example
   * new FeatureReader("./data").lookup(Date.now(), "c42")
   */
  lookup(asOf: number, customerId: string): FeatureRow | null {
    const T = asOf;
    const dayT = Math.floor(T / DAY_MS);
    const tailStart = dayT * DAY_MS;
    const windowStart = T - 30 * DAY_MS;
    const firstFullWindowDay = Math.ceil(windowStart / DAY_MS);
    const headDay = windowStart < firstFullWindowDay * DAY_MS ? firstFullWindowDay - 1 : null;
    this.oneCustomer ??= this.gold.transaction((id: string) => this.readCustomer(id));
    const g = this.oneCustomer(customerId);
    const w: Window = { all: emptyTotals(), recent: emptyTotals() };
    let tailFromSilver = false;
    let headFromSilver = false;
    for (const b of g.days) {
      const day = b[0];
      if (day > dayT || (day === dayT && T === tailStart)) break;
      const t = bucketTotals(b);
      if (day === dayT) {
        // Today up to T: the bucket when all its records are before T, silver's records otherwise.
        if (b[DAY_MAX_AT] !== null && b[DAY_MAX_AT] < T) (mergeTotals(w.all, t), mergeTotals(w.recent, t));
        else tailFromSilver = true;
        continue;
      }
      w.seen = true;
      mergeTotals(w.all, t);
      if (day >= firstFullWindowDay) mergeTotals(w.recent, t);
      else if (day === headDay && t.tx_count > 0) {
        // The window's first day: only its transactions count in the window, and only from windowStart on.
        if (t.tx_first_at! >= windowStart) mergeTotals(w.recent, t);
        else if (t.tx_last_at! >= windowStart) headFromSilver = true;
      }
    }
    if (tailFromSilver) this.addPartial(tailStart, T, g.position, customerId, (_, t) => (mergeTotals(w.all, t), mergeTotals(w.recent, t)));
    if (headFromSilver) this.addPartial(windowStart, firstFullWindowDay * DAY_MS, g.position, customerId, (_, t) => mergeTotals(w.recent, t));
    const custom = this.custom.map((c) => this.customBucket(c, T, g, customerId));
    checkSilverHorizon(this.silver, T, this.windowsMs());
    const p = g.profile === undefined ? undefined : { segment: g.profile[0], registration: g.profile[1] };
    const listed = w.seen || hasAny(w.all) || custom.some((b) => b !== undefined && b.n > 0) || (p !== undefined && (p.registration === null || p.registration < T));
    if (!listed) return null;
    const row = toRow(customerId, w, p, T);
    this.custom.forEach((c, i) => (row[c.name] = customValue(c, custom[i])));
    return row;
  }

  /** Gold's `PRAGMA data_version`: it changes whenever another connection commits to gold. */
  goldVersion(): number {
    return this.prepared(this.gold, "PRAGMA data_version").pluck().get() as number;
  }

  /** The windows whose edges need silver's records, for {@link checkSilverHorizon}. */
  private windowsMs(): number[] {
    return [30 * DAY_MS, ...this.custom.flatMap((c) => (c.windowDays === undefined ? [] : [c.windowDays * DAY_MS]))];
  }

  private prepared(db: Database, sql: string): Statement {
    const key = (db === this.gold ? "gold " : "silver ") + sql;
    let stmt = this.statements.get(key);
    if (!stmt) this.statements.set(key, (stmt = db.prepare(sql)));
    return stmt;
  }

  /** One customer's buckets, profile and custom buckets, in one read transaction of gold. */
  private readCustomer(customerId: string): GoldCustomer {
    const position = (this.prepared(this.gold, "SELECT position FROM checkpoint WHERE layer = 'gold'").pluck().get() as number | undefined) ?? 0;
    const days = this.prepared(
      this.gold,
      `SELECT day, tx_count, tx_spend_micros, tx_first_at, tx_last_at, session_count, session_ms, interaction_count, event_count, max_at
       FROM customer_daily WHERE customer_id = ? ORDER BY day`,
    )
      .raw()
      .all(customerId) as DayRow[];
    const profile = this.prepared(this.gold, "SELECT customer_segment, registration_at FROM customer_profile WHERE customer_id = ?").raw().get(customerId) as
      | [string, number | null]
      | undefined;
    const features =
      this.custom.length === 0
        ? []
        : (this.prepared(this.gold, "SELECT feature, day, n, total, lo, hi, min_at, max_at FROM feature_daily WHERE customer_id = ? ORDER BY day").raw().all(customerId) as FeatureBucketRow[]);
    return { position, days, profile, features };
  }

  /**
   * A custom feature's bucket for one customer as of T: whole days from gold, and the edges (today
   * up to T, the window's first day from its start) from gold when no edge cuts their bucket.
   */
  private customBucket(c: CustomFeature, T: number, g: GoldCustomer, customerId: string): Bucket | undefined {
    const dayT = Math.floor(T / DAY_MS);
    const start = c.windowDays === undefined ? null : T - c.windowDays * DAY_MS;
    const firstDay = start === null ? Number.MIN_SAFE_INTEGER : Math.ceil(start / DAY_MS);
    const headEnd = start === null ? null : Math.min(firstDay * DAY_MS, dayT * DAY_MS);
    const headDay = start !== null && start < headEnd! ? Math.floor(start / DAY_MS) : null;
    let b: Bucket | undefined;
    const add = (x: Bucket) => (b = mergeBucket(b, x));
    const spans: [number, number][] = [];
    for (const r of g.features) {
      if (r[0] !== c.name) continue;
      const day = r[1];
      const x = { n: r[2], total: r[3], lo: r[4], hi: r[5] };
      const [minAt, maxAt] = [r[6], r[7]];
      if (day >= firstDay && day < dayT) add(x);
      else if (day === dayT && T > dayT * DAY_MS) {
        if (maxAt !== null && maxAt < T) add(x);
        else spans.push([dayT * DAY_MS, T]);
      } else if (day === headDay) {
        if (minAt !== null && minAt >= start!) add(x);
        else if (maxAt === null || maxAt >= start!) spans.push([start!, headEnd!]);
      }
    }
    if (spans.length > 0) {
      const into = new Map<string, Bucket>(b ? [[customerId, b]] : []);
      this.customPartialSpans(c, spans, g.position, customerId, into);
      b = into.get(customerId);
    }
    return b;
  }

  /** Whole UTC days of a custom feature's window before T's day, from gold's buckets. */
  private customWholeDays(c: CustomFeature, T: number, customerId: string | undefined): Map<string, Bucket> {
    const dayT = Math.floor(T / DAY_MS);
    const firstDay = c.windowDays === undefined ? Number.MIN_SAFE_INTEGER : Math.ceil((T - c.windowDays * DAY_MS) / DAY_MS);
    const out = new Map<string, Bucket>();
    const rows = this.gold
      .prepare(
        `SELECT customer_id, sum(n) AS n, total(total) AS total, min(lo) AS lo, max(hi) AS hi FROM feature_daily
         WHERE feature = ? AND day >= ? AND day < ? ${customerId !== undefined ? "AND customer_id = ?" : ""} GROUP BY customer_id`,
      )
      .all(c.name, firstDay, dayT, ...(customerId !== undefined ? [customerId] : [])) as (Bucket & { customer_id: string })[];
    for (const r of rows) out.set(r.customer_id, { n: r.n, total: r.total, lo: r.lo, hi: r.hi });
    return out;
  }

  /** The partial days at the window's edges, from silver's records up to gold's position. */
  private customPartialDays(c: CustomFeature, T: number, position: number, customerId: string | undefined, into: Map<string, Bucket>): void {
    const dayT = Math.floor(T / DAY_MS);
    const spans: [number, number][] = [];
    if (T > dayT * DAY_MS) spans.push([dayT * DAY_MS, T]);
    if (c.windowDays !== undefined) {
      const start = T - c.windowDays * DAY_MS;
      const headEnd = Math.min(Math.ceil(start / DAY_MS) * DAY_MS, dayT * DAY_MS);
      if (start < headEnd) spans.push([start, headEnd]);
    }
    this.customPartialSpans(c, spans, position, customerId, into);
  }

  /** A custom feature's records in `spans` ([from, to) each) from silver, up to gold's position, merged into `into`. */
  private customPartialSpans(c: CustomFeature, spans: readonly [number, number][], position: number, customerId: string | undefined, into: Map<string, Bucket>): void {
    const q = featureSql(c);
    const stmt = this.prepared(
      this.silver,
      `SELECT customer_id, count(*) AS n, ${q.total} AS total, min(${q.value}) AS lo, max(${q.value}) AS hi FROM ${q.table}
       WHERE ${q.time} >= ? AND ${q.time} < ? AND bronze_seq <= ?${q.where} ${customerId !== undefined ? "AND customer_id = ?" : ""} GROUP BY customer_id`,
    );
    for (const [from, to] of spans) {
      for (const r of stmt.all(from, to, position, ...q.params, ...(customerId !== undefined ? [customerId] : [])) as (Bucket & { customer_id: string })[]) {
        into.set(r.customer_id, mergeBucket(into.get(r.customer_id), { n: r.n, total: r.total, lo: r.lo, hi: r.hi }));
      }
    }
  }

  private addPartial(from: number, to: number, position: number, customerId: string | undefined, add: (id: string, t: Totals) => void): void {
    const one = customerId !== undefined;
    const filter = `BETWEEN ? AND ? AND bronze_seq <= ? ${one ? "AND customer_id = ?" : ""}`;
    const params: unknown[] = [from, to - 1, position];
    if (one) params.push(customerId);
    const q = (sql: string) => this.prepared(this.silver, sql).all(...params) as (Partial<Totals> & { customer_id: string })[];
    const rows = [
      // total(), not sum(): sum() of integers raises "integer overflow" past int64, and one
      // customer with a thousand maximal (each valid) amounts would make every read fail. total()
      // is exact below 2^53 and finite beyond.
      ...q(`SELECT customer_id, count(*) AS tx_count, total(CAST(round(amount_base * 1000000) AS INTEGER)) AS tx_spend_micros,
              min(transaction_at) AS tx_first_at, max(transaction_at) AS tx_last_at
            FROM transactions WHERE transaction_at ${filter} GROUP BY customer_id`),
      ...q(`SELECT customer_id, count(*) AS session_count, sum(session_end_at - session_start_at) AS session_ms
            FROM sessions WHERE session_start_at ${filter} GROUP BY customer_id`),
      ...q(`SELECT customer_id, count(*) AS interaction_count FROM interactions WHERE interaction_at ${filter} GROUP BY customer_id`),
      ...q(`SELECT customer_id, count(*) AS event_count FROM events WHERE event_at ${filter} GROUP BY customer_id`),
    ];
    for (const r of rows) add(r.customer_id, { ...emptyTotals(), ...r });
  }

  close(): void {
    this.gold.close();
    this.silver.close();
  }
}

/** A custom feature's value from its merged bucket: money in cents, durations in seconds, times as ISO-8601. */
export function customValue(c: CustomFeature, b: Bucket | undefined): number | string | null {
  if (c.aggregate === "count") return b?.n ?? 0;
  const kind = fieldOf(c)!.kind;
  const scale = (v: number) => (kind === "money" ? round(v, 2) : kind === "duration" ? round(v / 1000, 3) : v);
  if (c.aggregate === "sum") return kind === "money" ? round((b?.total ?? 0) / storedUnits("money"), 2) : round((b?.total ?? 0) / 1000, 3);
  if (!b || b.n === 0) return null;
  if (c.aggregate === "mean") return kind === "money" ? round(b.total / storedUnits("money") / b.n, 2) : round(b.total / 1000 / b.n, 3);
  const v = c.aggregate === "min" ? b.lo : b.hi;
  if (v === null) return null;
  return kind === "time" ? formatTimestamp(v) : scale(v);
}

/** Whether totals hold any record. */
export function hasAny(t: Totals): boolean {
  return t.tx_count + t.session_count + t.interaction_count + t.event_count > 0;
}

/** The built-in features of one customer as of T, in readable units (what `features` prints). */
export function toRow(id: string, w: Window, p: { segment: string; registration: number | null } | undefined, T: number): FeatureRow {
  const a = w.all;
  const spend = a.tx_spend_micros / 1e6;
  const registration = p?.registration ?? null;
  return {
    customer_id: id,
    customer_segment: p?.segment ?? "unknown",
    purchase_frequency: a.tx_count,
    total_spend: round(spend, 2),
    avg_transaction_value: a.tx_count > 0 ? round(spend / a.tx_count, 2) : null,
    first_transaction_at: a.tx_first_at === null ? null : formatTimestamp(a.tx_first_at),
    last_transaction_at: a.tx_last_at === null ? null : formatTimestamp(a.tx_last_at),
    recency_days: a.tx_last_at === null ? null : round((T - a.tx_last_at) / DAY_MS, 6),
    transactions_last_30_days: w.recent.tx_count,
    spend_last_30_days: round(w.recent.tx_spend_micros / 1e6, 2),
    session_count: a.session_count,
    avg_session_duration_seconds: a.session_count > 0 ? round(a.session_ms / 1000 / a.session_count, 3) : null,
    interaction_count: a.interaction_count,
    event_count: a.event_count,
    days_since_registration: registration !== null && registration < T ? round((T - registration) / DAY_MS, 6) : null,
  };
}

/**
 * Renders feature rows as CSV (header row = `columns`: the built-in {@link FEATURE_COLUMNS}, then
 * any custom ones), JSON or an aligned table.
 */
export function formatFeatures(rows: readonly FeatureRow[], format: "csv" | "json" | "table", columns: readonly string[] = FEATURE_COLUMNS): string {
  if (format === "json") return JSON.stringify(rows, null, 2) + "\n";
  const cells = rows.map((r) => columns.map((c) => cell(r[c] ?? null, format)));
  if (format === "csv") {
    return [columns.join(","), ...cells.map((row) => row.map(csvEscape).join(","))].join("\n") + "\n";
  }
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const line = (row: readonly string[]) => row.map((v, i) => v.padEnd(widths[i]!)).join("  ").trimEnd();
  return [line(columns), line(widths.map((w) => "-".repeat(w))), ...cells.map(line)].join("\n") + "\n";
}

function cell(v: string | number | null, format: "csv" | "table"): string {
  if (v === null) return format === "csv" ? "" : "-";
  return String(v);
}

function csvEscape(v: string): string {
  return /[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

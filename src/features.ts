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
import { boundarySql } from "./sinks/gold-layout.js";
import { BUILTIN_FEATURES, fieldOf, storedUnits, type CustomFeature } from "./model/features.js";
import { SILVER_MIGRATIONS, checkSilverHorizon } from "./sinks/silver.js";
import { GoldPresence, PRESENCE_DAYS } from "./sinks/gold-presence.js";
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

/** A day bucket as {@link FeatureReader.lookup} reads it: kind 2, its day, the totals in {@link Totals} order, and max_at. */
type DayRow = [kind: number, day: number, tx_count: number, tx_spend_micros: number, tx_first_at: number | null, tx_last_at: number | null, session_count: number, session_ms: number, interaction_count: number, event_count: number, max_at: number | null];
const DAY_MAX_AT = 10;
/** A customer's summary: kind 1, the totals, the first and last day it sums. */
type SummaryRow = [kind: 1, tx_count: number, tx_spend_micros: number, tx_first_at: number | null, tx_last_at: number | null, session_count: number, session_ms: number, interaction_count: number, event_count: number, first_day: number, last_day: number];
/** A custom feature's bucket: kind 5, feature, day, n, total, lo, hi, min_at, max_at. */
type FeatureBucketRow = [kind: number, feature: string, day: number, n: number, total: number, lo: number | null, hi: number | null, min_at: number | null, max_at: number | null];

/** What gold holds of one customer, read in one statement (one snapshot). */
interface GoldCustomer {
  readonly position: number;
  /** The first day of the customer's buckets that their summary does not sum. */
  readonly boundary: number;
  /** Totals over the customer's buckets before `boundary`, and the first and last day among them. */
  readonly summary: SummaryRow | undefined;
  /** Buckets up to T's day: from the window's first day or `boundary` when the summary covers days before T only, all of them otherwise. */
  readonly days: DayRow[];
  readonly profile: [segment: string, registration: number | null] | undefined;
  /** Custom features' summaries (feature → n, total, lo, hi) and buckets, as the day buckets. */
  readonly featureSummaries: Map<string, Bucket>;
  readonly features: FeatureBucketRow[];
}

/**
 * The SQL that reads one customer's part of gold (`@id`) up to T's day (`@dayT`): every piece is
 * a row whose first column says what it is. Buckets are read by day (one seek per day gold holds
 * in the range): from `@head` (the earliest window's first day) or the customer's boundary, when
 * the summary covers days before T's day only; from the customer's first day otherwise.
 */
function customerSql(custom: boolean): string {
  const totals = "tx_count, tx_spend_micros, tx_first_at, tx_last_at, session_count, session_ms, interaction_count, event_count";
  const nulls = (n: number) => Array.from({ length: n }, () => "NULL").join(", ");
  const boundary = boundarySql("@id");
  const from = `CASE WHEN ${boundary} <= @dayT THEN min(@head, ${boundary})
    ELSE coalesce((SELECT first_day FROM customer_summary WHERE customer_id = @id), ${boundary}) END`;
  // The first day as one uncorrelated scalar, so gold_days is a range read of its key, not a scan testing each day.
  // Days the presence bitmaps say hold no bucket of the customer are skipped: bit (day − @base) of @lo, then of @hi, is 0.
  const days = `SELECT day FROM gold_days WHERE day <= @dayT AND day >= (SELECT ${from} FROM gold_layout l)
    AND (day < @base OR day > @base + ${PRESENCE_DAYS - 1} OR ((CASE WHEN day - @base < 32 THEN @lo >> (day - @base) ELSE @hi >> (day - @base - 32) END) & 1) = 1)`;
  const parts = [
    `SELECT 0, position, ${nulls(9)} FROM checkpoint WHERE layer = 'gold'`,
    `SELECT 7, ${boundary}, ${nulls(9)} FROM gold_layout l`,
    `SELECT 1, ${totals}, first_day, last_day FROM customer_summary WHERE customer_id = @id`,
    `SELECT 2, day, ${totals}, max_at FROM customer_daily WHERE day IN (${days}) AND customer_id = @id`,
    `SELECT 4, customer_segment, registration_at, ${nulls(8)} FROM customer_profile WHERE customer_id = @id`,
  ];
  if (custom) {
    parts.push(
      `SELECT 8, feature, n, total, lo, hi, ${nulls(5)} FROM feature_summary WHERE customer_id = @id`,
      `SELECT 5, feature, day, n, total, lo, hi, min_at, max_at, NULL, NULL FROM feature_daily WHERE day IN (${days}) AND customer_id = @id`,
    );
  }
  return parts.join("\n  UNION ALL ");
}

function bucketTotals(b: DayRow | SummaryRow): Totals {
  const o = b[0] === 1 ? 1 : 2;
  return {
    tx_count: b[o] as number,
    tx_spend_micros: b[o + 1] as number,
    tx_first_at: b[o + 2] as number | null,
    tx_last_at: b[o + 3] as number | null,
    session_count: b[o + 4] as number,
    session_ms: b[o + 5] as number,
    interaction_count: b[o + 6] as number,
    event_count: b[o + 7] as number,
  };
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
  /** Gold is older than this reader's schema (a reader does not migrate): lookups go through {@link compute}. */
  private readonly legacyGold: boolean;
  /** {@link customerSql} for this reader's features, built once: a lookup only looks its statement up. */
  private readonly customerSql: string;
  /** The writer's presence bitmaps, when this reader is in its process: a lookup seeks only the days they allow. */
  private readonly presence: GoldPresence | null;
  /** A lookup's read transaction when it uses the bitmaps: they are read once its snapshot is taken. */
  private inSnapshot: ((customerId: string, dayT: number, head: number) => unknown[][]) | null = null;
  private customerStatement: Statement | null = null;

  /**
   * @param options.features custom features to compute besides the built-in ones; gold must hold
   *   each, completely backfilled under the same definition (else a StorageError).
   */
  constructor(dataDir: string, options: { busyTimeout?: number; features?: readonly CustomFeature[]; presence?: SharedArrayBuffer } = {}) {
    for (const layer of ["gold", "silver"] as const) {
      if (!existsSync(layerPath(dataDir, layer))) {
        throw new NoDataError(`no ${layer} data in ${dataDir}: nothing has been written to it yet`);
      }
    }
    const storage = { synchronous: "normal" as const, busyTimeout: options.busyTimeout ?? 5_000, readonly: true };
    this.gold = openLayer(dataDir, "gold", GOLD_MIGRATIONS, storage);
    this.silver = openLayer(dataDir, "silver", SILVER_MIGRATIONS, storage);
    this.custom = options.features ?? [];
    this.customerSql = customerSql(this.custom.length > 0);
    this.presence = options.presence ? new GoldPresence(options.presence) : null;
    this.legacyGold = Number(this.gold.pragma("user_version", { simple: true })) < GOLD_MIGRATIONS.length;
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
    if (customerId !== undefined) {
      const row = this.lookup(asOf, customerId);
      return row ? [row] : [];
    }
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

    // Gold first: its position bounds what we read from silver, which is never behind gold.
    const readGold = this.gold.transaction(() => {
      const position = (this.gold.prepare("SELECT position FROM checkpoint WHERE layer = 'gold'").pluck().get() as number) ?? 0;
      const sql = `SELECT customer_id,
          day >= ? AS recent, tx_count, tx_spend_micros, tx_first_at, tx_last_at, session_count, session_ms, interaction_count, event_count
        FROM customer_daily WHERE day < ?`;
      for (const row of this.gold.prepare(sql).iterate(firstFullWindowDay, dayT) as Iterable<Totals & { customer_id: string; recent: number }>) {
        const w = get(row.customer_id);
        w.seen = true;
        mergeTotals(w.all, row);
        if (row.recent) mergeTotals(w.recent, row);
      }
      const profiles = this.gold.prepare("SELECT customer_id, customer_segment, registration_at FROM customer_profile").all() as {
        customer_id: string;
        customer_segment: string;
        registration_at: number | null;
      }[];
      const custom = this.custom.map((c) => this.customWholeDays(c, T));
      return { position, profiles, custom };
    });
    const { position, profiles, custom } = readGold();
    this.custom.forEach((c, i) => this.customPartialDays(c, T, position, undefined, custom[i]!));

    // Partial days from silver: the start of today (up to T) and the first day of the window.
    const tailStart = dayT * DAY_MS;
    if (T > tailStart) this.addPartial(tailStart, T, position, undefined, (id, t) => (mergeTotals(get(id).all, t), mergeTotals(get(id).recent, t)));
    const headEnd = firstFullWindowDay * DAY_MS;
    if (windowStart < headEnd) this.addPartial(windowStart, Math.min(headEnd, T), position, undefined, (id, t) => mergeTotals(get(id).recent, t));
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
    // A gold file an older tributary wrote, not yet opened by a writer of this one: the whole table.
    if (this.legacyGold) return this.compute(asOf).find((r) => r.customer_id === customerId) ?? null;
    const T = asOf;
    const dayT = Math.floor(T / DAY_MS);
    const tailStart = dayT * DAY_MS;
    const windowStart = T - 30 * DAY_MS;
    const firstFullWindowDay = Math.ceil(windowStart / DAY_MS);
    const headDay = windowStart < firstFullWindowDay * DAY_MS ? firstFullWindowDay - 1 : null;
    // The earliest day a window needs: the 30-day one's first day, or a custom window's.
    let head = firstFullWindowDay - 1;
    for (const c of this.custom) if (c.windowDays !== undefined) head = Math.min(head, Math.floor((T - c.windowDays * DAY_MS) / DAY_MS));
    const g = this.readCustomer(customerId, dayT, head);
    const w: Window = { all: emptyTotals(), recent: emptyTotals() };
    // The summary stands for every bucket before the customer's boundary when that is not after T's
    // day; then only the buckets from the windows' first days (or the boundary) on are read.
    const summed = g.boundary <= dayT;
    if (summed && g.summary) {
      mergeTotals(w.all, bucketTotals(g.summary));
      w.seen = true;
    }
    let tailFromSilver = false;
    let headFromSilver = false;
    for (const b of g.days) {
      const day = b[1];
      if (day > dayT || (day === dayT && T === tailStart)) continue;
      const t = bucketTotals(b);
      if (day === dayT) {
        // Today up to T: the bucket when all its records are before T, silver's records otherwise.
        if (b[DAY_MAX_AT] !== null && b[DAY_MAX_AT] < T) (mergeTotals(w.all, t), mergeTotals(w.recent, t));
        else tailFromSilver = true;
        continue;
      }
      if (!(summed && day < g.boundary)) {
        w.seen = true;
        mergeTotals(w.all, t);
      }
      if (day >= firstFullWindowDay) mergeTotals(w.recent, t);
      else if (day === headDay && t.tx_count > 0) {
        // The window's first day: only its transactions count in the window, and only from windowStart on.
        if (t.tx_first_at! >= windowStart) mergeTotals(w.recent, t);
        else if (t.tx_last_at! >= windowStart) headFromSilver = true;
      }
    }
    if (tailFromSilver) this.addPartial(tailStart, T, g.position, customerId, (_, t) => (mergeTotals(w.all, t), mergeTotals(w.recent, t)));
    if (headFromSilver) this.addPartial(windowStart, firstFullWindowDay * DAY_MS, g.position, customerId, (_, t) => mergeTotals(w.recent, t));
    const custom = this.custom.map((c) => this.customBucket(c, T, g, summed, customerId));
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

  /**
   * The rows of {@link customerSql}. With presence bitmaps, in a read transaction: a first read
   * takes the snapshot, then the bitmaps are read (every bucket that snapshot holds was marked
   * before it committed), then the statement skips the days they rule out.
   */
  private customerRows(id: string, dayT: number, head: number): unknown[][] {
    const statement = (this.customerStatement ??= this.gold.prepare(this.customerSql).raw());
    const presence = this.presence;
    if (presence === null) return statement.all({ id, dayT, head, base: dayT + 1, lo: 0, hi: 0 }) as unknown[][];
    if (this.inSnapshot === null) {
      const start = this.gold.prepare("SELECT position FROM checkpoint WHERE layer = 'gold'").pluck();
      const read = this.gold.transaction((customerId: string, day: number, from: number) => {
        start.get();
        const { base, lo, hi } = presence.mask(customerId, day);
        return statement.all({ id: customerId, dayT: day, head: from, base, lo, hi }) as unknown[][];
      });
      this.inSnapshot = (customerId, day, from) => read(customerId, day, from);
    }
    return this.inSnapshot(id, dayT, head);
  }

  /**
   * One customer's summary, buckets, profile and custom buckets, in one statement: one snapshot of
   * gold. History buckets are read from day `from` on when the summary covers days before `dayT` only.
   */
  private readCustomer(customerId: string, dayT: number, head: number): GoldCustomer {
    const rows = this.customerRows(customerId, dayT, head);
    const g = { position: 0, boundary: 0, summary: undefined as SummaryRow | undefined, days: [] as DayRow[], profile: undefined as GoldCustomer["profile"], featureSummaries: new Map<string, Bucket>(), features: [] as FeatureBucketRow[] };
    for (const r of rows) {
      const kind = r[0] as number;
      if (kind === 0) g.position = r[1] as number;
      else if (kind === 7) g.boundary = r[1] as number;
      else if (kind === 1) g.summary = r as SummaryRow;
      else if (kind === 2) g.days.push(r as DayRow);
      else if (kind === 4) g.profile = [r[1] as string, r[2] as number | null];
      else if (kind === 8) g.featureSummaries.set(r[1] as string, { n: r[2] as number, total: r[3] as number, lo: r[4] as number | null, hi: r[5] as number | null });
      else g.features.push(r as unknown as FeatureBucketRow);
    }
    return g;
  }

  /**
   * A custom feature's bucket for one customer as of T: whole days from gold, and the edges (today
   * up to T, the window's first day from its start) from gold when no edge cuts their bucket.
   */
  private customBucket(c: CustomFeature, T: number, g: GoldCustomer, summed: boolean, customerId: string): Bucket | undefined {
    const dayT = Math.floor(T / DAY_MS);
    const start = c.windowDays === undefined ? null : T - c.windowDays * DAY_MS;
    // A lifetime feature's days before the boundary are in its summary when the summary is used.
    const lifetimeSummed = start === null && summed;
    const firstDay = start === null ? (lifetimeSummed ? g.boundary : Number.MIN_SAFE_INTEGER) : Math.ceil(start / DAY_MS);
    const headEnd = start === null ? null : Math.min(firstDay * DAY_MS, dayT * DAY_MS);
    const headDay = start !== null && start < headEnd! ? Math.floor(start / DAY_MS) : null;
    let b: Bucket | undefined;
    const add = (x: Bucket) => (b = mergeBucket(b, x));
    const summary = lifetimeSummed ? g.featureSummaries.get(c.name) : undefined;
    if (summary) add(summary);
    const spans: [number, number][] = [];
    for (const r of g.features) {
      if (r[1] !== c.name) continue;
      const day = r[2];
      const x = { n: r[3], total: r[4], lo: r[5], hi: r[6] };
      const [minAt, maxAt] = [r[7], r[8]];
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
  private customWholeDays(c: CustomFeature, T: number): Map<string, Bucket> {
    const dayT = Math.floor(T / DAY_MS);
    const firstDay = c.windowDays === undefined ? Number.MIN_SAFE_INTEGER : Math.ceil((T - c.windowDays * DAY_MS) / DAY_MS);
    const out = new Map<string, Bucket>();
    const rows = this.gold
      .prepare(
        `SELECT customer_id, sum(n) AS n, total(total) AS total, min(lo) AS lo, max(hi) AS hi FROM feature_daily
         WHERE feature = ? AND day >= ? AND day < ? GROUP BY customer_id`,
      )
      .all(c.name, firstDay, dayT) as (Bucket & { customer_id: string })[];
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

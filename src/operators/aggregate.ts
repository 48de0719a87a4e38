import { map, type OperatorFunction } from "rxjs";
import type { Accepted, ValidRecord } from "../types.js";
import { dayOf } from "../timestamps.js";
import { fieldOf, fieldValue, storedUnits, type CustomFeature } from "../model/features.js";

/**
 * Additive per-customer totals. Every field merges by sum, min or max, so applying deltas in any
 * order gives the same state: this is what makes gold independent of arrival order and lateness.
 */
export interface Totals {
  tx_count: number;
  /** Spend in millionths of the base currency: integers keep sums exact in any order. */
  tx_spend_micros: number;
  tx_first_at: number | null;
  tx_last_at: number | null;
  session_count: number;
  /** Summed session durations in milliseconds. */
  session_ms: number;
  interaction_count: number;
  event_count: number;
}

/** Totals for one customer on one UTC day (`day` = days since 1970-01-01). */
export interface DayDelta extends Totals {
  readonly customer_id: string;
  readonly day: number;
  /**
   * The latest event time among the bucket's records (sessions by their start). A reader at an
   * instant T after it can take the whole bucket as "before T" without reading silver.
   */
  max_at: number | null;
}

/** Totals for one customer across days (see {@link rollUpCustomers}). */
export interface CustomerDelta extends Totals {
  readonly customer_id: string;
}

/** The latest profile of a customer in the batch (stream order). */
export interface ProfileUpdate {
  readonly customer_id: string;
  readonly customer_segment: string;
  readonly registration_at: number | null;
  readonly bronzeSeq: number;
}

/**
 * One custom feature's bucket for one customer on one UTC day: a count, a sum in stored units
 * (money in millionths, durations and times in ms) and the min and max, all of which merge in
 * any order.
 */
export interface FeatureDayDelta {
  readonly feature: string;
  readonly customer_id: string;
  readonly day: number;
  n: number;
  total: number;
  lo: number | null;
  hi: number | null;
  /** The earliest and latest event times among the bucket's records: whether a window's edge cuts it. */
  min_at: number | null;
  max_at: number | null;
}

/** What one batch changes in gold, and the bronze position it brings gold to. */
export interface GoldDelta {
  readonly position: number;
  readonly days: DayDelta[];
  readonly profiles: ProfileUpdate[];
  /** Custom features' buckets (empty without custom features). */
  readonly features: FeatureDayDelta[];
}

/** Accepted records of one silver commit, and the bronze position silver reached with it. */
export interface SilverCommit {
  readonly position: number;
  readonly accepted: readonly Accepted[];
}

/** Empty totals. */
export function emptyTotals(): Totals {
  return {
    tx_count: 0,
    tx_spend_micros: 0,
    tx_first_at: null,
    tx_last_at: null,
    session_count: 0,
    session_ms: 0,
    interaction_count: 0,
    event_count: 0,
  };
}

/** Adds `b` into `a` (in place) and returns `a`. */
export function mergeTotals(a: Totals, b: Totals): Totals {
  a.tx_count += b.tx_count;
  a.tx_spend_micros += b.tx_spend_micros;
  a.tx_first_at = minOf(a.tx_first_at, b.tx_first_at);
  a.tx_last_at = maxOf(a.tx_last_at, b.tx_last_at);
  a.session_count += b.session_count;
  a.session_ms += b.session_ms;
  a.interaction_count += b.interaction_count;
  a.event_count += b.event_count;
  return a;
}

const minOf = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : Math.min(a, b));
const maxOf = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : Math.max(a, b));

/**
 * Folds the accepted records of a batch into per-customer, per-day deltas plus the latest profile
 * per customer.
 *
 * @example
 * aggregateBatch({ position: 7, accepted }).days // [{ customer_id: "c1", day: 20514, tx_count: 2, ... }]
 */
export function aggregateBatch(commit: SilverCommit, custom: readonly CustomFeature[] = []): GoldDelta {
  const days = new Map<string, DayDelta>();
  const features = new Map<string, FeatureDayDelta>();
  const profiles = new Map<string, ProfileUpdate>();
  for (const { record: r, bronzeSeq } of commit.accepted) {
    if (r.entity === "customers") {
      profiles.set(r.customer_id, {
        customer_id: r.customer_id,
        customer_segment: r.customer_segment,
        registration_at: r.registration_at,
        bronzeSeq,
      });
      continue;
    }
    const day = dayOf(r.eventAt);
    const key = r.customer_id + "\u0000" + day;
    let d = days.get(key);
    if (d === undefined) {
      d = { customer_id: r.customer_id, day, ...emptyTotals(), max_at: null };
      days.set(key, d);
    }
    addRecord(d, r);
    d.max_at = maxOf(d.max_at, r.eventAt);
    for (let i = 0; i < custom.length; i++) {
      const c = custom[i]!;
      if (c.from === r.entity && matches(c, r)) addToFeature(features, c, r.customer_id, day, r);
    }
  }
  return { position: commit.position, days: [...days.values()], profiles: [...profiles.values()], features: [...features.values()] };
}

function matches(c: CustomFeature, r: ValidRecord): boolean {
  if (c.where === undefined) return true;
  const fields = r as unknown as Record<string, unknown>;
  for (const k in c.where) if (fields[k] !== c.where[k]) return false;
  return true;
}

function addToFeature(features: Map<string, FeatureDayDelta>, c: CustomFeature, customer_id: string, day: number, r: ValidRecord): void {
  const key = c.name + "\u0000" + customer_id + "\u0000" + day;
  let b = features.get(key);
  if (b === undefined) {
    b = { feature: c.name, customer_id, day, n: 0, total: 0, lo: null, hi: null, min_at: null, max_at: null };
    features.set(key, b);
  }
  b.n += 1;
  b.min_at = minOf(b.min_at, r.eventAt);
  b.max_at = maxOf(b.max_at, r.eventAt);
  const field = fieldOf(c);
  if (field === null) return;
  const v = fieldValue(field, r as unknown as Record<string, unknown>) as number;
  b.total += field.kind === "money" ? Math.round(v * storedUnits("money")) : v;
  b.lo = b.lo === null ? v : Math.min(b.lo, v);
  b.hi = b.hi === null ? v : Math.max(b.hi, v);
}

/**
 * Per-customer totals across days, in the order customers first appear: what gold's
 * `customer_features` view sums, for callers that want it from a delta. Gold itself stores only
 * the daily buckets.
 */
export function rollUpCustomers(days: readonly DayDelta[]): CustomerDelta[] {
  const customers = new Map<string, CustomerDelta>();
  for (const { customer_id, day: _day, max_at: _at, ...t } of days) {
    const c = customers.get(customer_id);
    if (c === undefined) customers.set(customer_id, { customer_id, ...t });
    else mergeTotals(c, t);
  }
  return [...customers.values()];
}

/** Adds one event record into totals (in place). */
export function addRecord(t: Totals, r: Exclude<ValidRecord, { entity: "customers" }>): void {
  switch (r.entity) {
    case "transactions":
      t.tx_count += 1;
      t.tx_spend_micros += toMicros(r.amount_base);
      t.tx_first_at = minOf(t.tx_first_at, r.eventAt);
      t.tx_last_at = maxOf(t.tx_last_at, r.eventAt);
      break;
    case "sessions":
      t.session_count += 1;
      t.session_ms += r.session_end_at - r.eventAt;
      break;
    case "interactions":
      t.interaction_count += 1;
      break;
    case "events":
      t.event_count += 1;
      break;
  }
}

/** Money in millionths of a unit, rounded: the exact, order-independent form gold sums. */
export function toMicros(amount: number): number {
  return Math.round(amount * 1_000_000);
}

/** Pipeable form of {@link aggregateBatch}. */
export function aggregate(custom: readonly CustomFeature[] = []): OperatorFunction<SilverCommit, GoldDelta> {
  return map((commit) => aggregateBatch(commit, custom));
}

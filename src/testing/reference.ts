/**
 * An independent computation of the gold features, straight from the README's definitions, over
 * the generator's own account of each message (not tributary's validator). Deliberately plain:
 * loops over records, no buckets, no SQL.
 */
import type { Expectation } from "../sources/generator.js";
import type { FeatureRow } from "../features.js";

const DAY = 86_400_000;

/** The same columns as tributary's feature rows; the reference fills them independently. */
export type ReferenceRow = FeatureRow;

export interface ReferenceCounts {
  valid: Record<string, number>;
  duplicates: Record<string, number>;
  quarantined: Record<string, number>;
}

type EventExpectation = Extract<Expectation, { valid: true; customerId: string }>;

/** Applies the two order rules (first copy of an id wins; latest profile wins) in stream order. */
export function acceptInOrder(stream: readonly Expectation[]) {
  const seen = new Set<string>();
  const events: EventExpectation[] = [];
  const profiles = new Map<string, { segment: string; registrationAt: number | null }>();
  const counts: ReferenceCounts = { valid: {}, duplicates: {}, quarantined: {} };
  const bump = (m: Record<string, number>, k: string) => (m[k] = (m[k] ?? 0) + 1);
  for (const e of stream) {
    if (!e.valid) {
      bump(counts.quarantined, e.reason);
      continue;
    }
    if (e.entity === "customers") {
      profiles.set(e.id, { segment: e.segment, registrationAt: e.registrationAt });
      bump(counts.valid, e.entity);
      continue;
    }
    const key = `${e.entity}/${e.id}`;
    if (seen.has(key)) {
      bump(counts.duplicates, e.entity);
      continue;
    }
    seen.add(key);
    events.push(e as EventExpectation);
    bump(counts.valid, e.entity);
  }
  return { events, profiles, counts };
}

export function referenceFeatures(stream: readonly Expectation[], rates: Record<string, number>, T: number): ReferenceRow[] {
  const { events, profiles } = acceptInOrder(stream);
  const ids = new Set<string>();
  for (const [id, p] of profiles) if (p.registrationAt === null || p.registrationAt < T) ids.add(id);
  for (const e of events) if (e.eventAt < T) ids.add(e.customerId);
  const byCustomer = new Map<string, EventExpectation[]>();
  for (const e of events) {
    if (e.eventAt >= T) continue;
    let list = byCustomer.get(e.customerId);
    if (!list) byCustomer.set(e.customerId, (list = []));
    list.push(e);
  }
  const rows: ReferenceRow[] = [];
  for (const id of [...ids].sort()) {
    const mine = byCustomer.get(id) ?? [];
    const tx = mine.filter((e) => e.entity === "transactions");
    const sessions = mine.filter((e) => e.entity === "sessions");
    const spend = tx.reduce((a, e) => a + e.amount! * rates[e.currency!]!, 0);
    const recent = tx.filter((e) => e.eventAt >= T - 30 * DAY);
    const first = tx.length ? Math.min(...tx.map((e) => e.eventAt)) : null;
    const last = tx.length ? Math.max(...tx.map((e) => e.eventAt)) : null;
    const p = profiles.get(id);
    const reg = p?.registrationAt ?? null;
    rows.push({
      customer_id: id,
      customer_segment: p?.segment ?? "unknown",
      purchase_frequency: tx.length,
      total_spend: spend,
      avg_transaction_value: tx.length ? spend / tx.length : null,
      first_transaction_at: first === null ? null : new Date(first).toISOString(),
      last_transaction_at: last === null ? null : new Date(last).toISOString(),
      recency_days: last === null ? null : (T - last) / DAY,
      transactions_last_30_days: recent.length,
      spend_last_30_days: recent.reduce((a, e) => a + e.amount! * rates[e.currency!]!, 0),
      session_count: sessions.length,
      avg_session_duration_seconds: sessions.length
        ? sessions.reduce((a, e) => a + (e.sessionEndAt! - e.eventAt) / 1000, 0) / sessions.length
        : null,
      interaction_count: mine.filter((e) => e.entity === "interactions").length,
      event_count: mine.filter((e) => e.entity === "events").length,
      days_since_registration: reg !== null && reg < T ? (T - reg) / DAY : null,
    });
  }
  return rows;
}

const MONEY = new Set(["total_spend", "avg_transaction_value", "spend_last_30_days"]);
const DECIMALS = new Set(["recency_days", "days_since_registration", "avg_session_duration_seconds"]);

/**
 * Compares feature rows as printed in CSV (strings; empty for null) with the reference. Money must
 * agree within 0.01, decimal days and seconds within 0.001, everything else exactly. Returns one
 * line per mismatch; empty when they agree.
 */
export function compareFeatures(actual: readonly Record<string, string>[], expected: readonly ReferenceRow[]): string[] {
  const problems: string[] = [];
  const ids = (rows: readonly { customer_id?: string }[]) => rows.map((r) => r.customer_id).join(",");
  if (ids(actual) !== ids(expected)) {
    const a = new Set(actual.map((r) => r.customer_id!));
    const e = new Set(expected.map((r) => r.customer_id));
    const missing = [...e].filter((id) => !a.has(id)).slice(0, 5);
    const extra = [...a].filter((id) => !e.has(id)).slice(0, 5);
    return [`customers differ: ${actual.length} listed, ${expected.length} expected; missing ${missing.join(" ")}; extra ${extra.join(" ")}`];
  }
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    for (const [k, v] of Object.entries(expected[i]!)) {
      const cell = a[k];
      const where = `${expected[i]!.customer_id}.${k}: got "${cell}", expected ${v}`;
      if (v === null) {
        if (cell !== "") problems.push(where);
      } else if (MONEY.has(k)) {
        if (!(Math.abs(Number(cell) - (v as number)) <= 0.01)) problems.push(where);
      } else if (DECIMALS.has(k)) {
        if (!(Math.abs(Number(cell) - (v as number)) < 1e-3)) problems.push(where);
      } else if (typeof v === "number") {
        if (Number(cell) !== v) problems.push(where);
      } else if (cell !== v) {
        problems.push(where);
      }
    }
  }
  return problems;
}

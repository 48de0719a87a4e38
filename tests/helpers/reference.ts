/**
 * An independent computation of the gold features, straight from the README's definitions, over
 * the generator's own account of each message (not tributary's validator). Deliberately plain:
 * loops over records, no buckets, no SQL.
 */
import type { Expectation } from "../../src/sources/generator.js";

const DAY = 86_400_000;

export interface ReferenceRow {
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

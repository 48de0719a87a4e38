import { describe, expect, it } from "vitest";
import { from, lastValueFrom, toArray } from "rxjs";
import {
  aggregate,
  aggregateBatch,
  rollUpCustomers,
  emptyTotals,
  mergeTotals,
  toMicros,
  type DayDelta,
  type GoldDelta,
  type Totals,
} from "../../src/operators/aggregate.js";
import type { Accepted, CustomerRecord, InteractionRecord, EventRecord, SessionRecord, TransactionRecord, ValidRecord } from "../../src/types.js";
import { dayOf } from "../../src/timestamps.js";
import { compileCustomFeatures } from "../../src/model/features.js";

const DAY = 86_400_000;
const MAR1 = Date.UTC(2026, 2, 1);
const MAR2 = Date.UTC(2026, 2, 2);

const tx = (id: string, customer_id: string, eventAt: number, amount_base: number): TransactionRecord => ({
  entity: "transactions",
  id,
  customer_id,
  eventAt,
  amount: amount_base,
  currency: "USD",
  amount_base,
  customer_segment: "unknown",
});
const session = (id: string, customer_id: string, eventAt: number, durationMs: number): SessionRecord => ({
  entity: "sessions",
  id,
  customer_id,
  eventAt,
  session_end_at: eventAt + durationMs,
  device_type: "mobile",
});
const interaction = (id: string, customer_id: string, eventAt: number): InteractionRecord => ({
  entity: "interactions",
  id,
  customer_id,
  eventAt,
  interaction_type: "chat",
});
const event = (id: string, customer_id: string, eventAt: number): EventRecord => ({ entity: "events", id, customer_id, eventAt, event_type: "login" });
const customer = (id: string, segment: string, registration_at: number | null = null): CustomerRecord => ({
  entity: "customers",
  id,
  customer_id: id,
  eventAt: registration_at,
  name: null,
  email: null,
  registration_at,
  customer_segment: segment,
});

const accepted = (records: ValidRecord[], firstSeq = 1): Accepted[] => records.map((record, i) => ({ bronzeSeq: firstSeq + i, record }));
const dayDelta = (delta: GoldDelta, customer_id: string, day: number) => delta.days.find((d) => d.customer_id === customer_id && d.day === day);
const customerDelta = (delta: GoldDelta, customer_id: string) => rollUpCustomers(delta.days).find((c) => c.customer_id === customer_id);

describe("aggregateBatch", () => {
  it("passes the commit position through", () => {
    expect(aggregateBatch({ position: 77, accepted: accepted([tx("t1", "c1", MAR1, 1)]) }).position).toBe(77);
  });

  it("returns empty deltas for an empty batch", () => {
    expect(aggregateBatch({ position: 5, accepted: [] })).toEqual({ position: 5, days: [], profiles: [], features: [] });
  });

  it("groups by customer and UTC day", () => {
    const delta = aggregateBatch({
      position: 10,
      accepted: accepted([
        tx("t1", "c1", MAR1 + 1000, 5),
        tx("t2", "c1", MAR2 - 1, 7), // 23:59:59.999Z, still March 1
        tx("t3", "c1", MAR2, 11), // March 2
        tx("t4", "c2", MAR1 + 5000, 13),
      ]),
    });
    expect(delta.days).toHaveLength(3);
    expect(dayDelta(delta, "c1", dayOf(MAR1))).toMatchObject({ tx_count: 2, tx_spend_micros: 12_000_000, tx_first_at: MAR1 + 1000, tx_last_at: MAR2 - 1 });
    expect(dayDelta(delta, "c1", dayOf(MAR2))).toMatchObject({ tx_count: 1, tx_spend_micros: 11_000_000, tx_first_at: MAR2, tx_last_at: MAR2 });
    expect(dayDelta(delta, "c2", dayOf(MAR1))).toMatchObject({ tx_count: 1, tx_spend_micros: 13_000_000 });
    expect(rollUpCustomers(delta.days)).toHaveLength(2);
    expect(customerDelta(delta, "c1")).toMatchObject({ tx_count: 3, tx_spend_micros: 23_000_000, tx_first_at: MAR1 + 1000, tx_last_at: MAR2 });
    expect(customerDelta(delta, "c2")).toMatchObject({ tx_count: 1, tx_spend_micros: 13_000_000, tx_first_at: MAR1 + 5000, tx_last_at: MAR1 + 5000 });
  });

  it("uses day numbers since the epoch", () => {
    const delta = aggregateBatch({ position: 1, accepted: accepted([event("e1", "c1", MAR1 + 3600_000)]) });
    expect(delta.days.map((d) => d.day)).toEqual([20513]);
  });

  it("finds the first and last transaction whatever the arrival order", () => {
    const delta = aggregateBatch({
      position: 1,
      accepted: accepted([tx("t1", "c1", MAR1 + 5000, 1), tx("t2", "c1", MAR1 + 1000, 1), tx("t3", "c1", MAR1 + 9000, 1), tx("t4", "c1", MAR1 + 3000, 1)]),
    });
    expect(customerDelta(delta, "c1")).toMatchObject({ tx_first_at: MAR1 + 1000, tx_last_at: MAR1 + 9000 });
  });

  it("counts sessions, their total duration, interactions and events", () => {
    const delta = aggregateBatch({
      position: 1,
      accepted: accepted([
        session("s1", "c1", MAR1, 60_000),
        session("s2", "c1", MAR1 + DAY / 2, 90_000),
        session("s3", "c1", MAR1 + 1000, 0),
        interaction("i1", "c1", MAR1),
        interaction("i2", "c1", MAR1),
        event("e1", "c1", MAR1),
        event("e2", "c1", MAR1),
        event("e3", "c1", MAR1),
      ]),
    });
    const expected: Totals = {
      tx_count: 0,
      tx_spend_micros: 0,
      tx_first_at: null,
      tx_last_at: null,
      session_count: 3,
      session_ms: 150_000,
      interaction_count: 2,
      event_count: 3,
    };
    expect(customerDelta(delta, "c1")).toEqual({ customer_id: "c1", ...expected });
    // max_at: the latest event time of the bucket (sessions by their start), for readers at instants after it.
    expect(delta.days).toEqual([{ customer_id: "c1", day: dayOf(MAR1), ...expected, max_at: MAR1 + DAY / 2 }]);
  });

  it("sums spend in integer micros of the base currency", () => {
    const delta = aggregateBatch({
      position: 1,
      accepted: accepted([tx("t1", "c1", MAR1, 0.1), tx("t2", "c1", MAR1, 0.2), tx("t3", "c1", MAR1, 19.99), tx("t4", "c1", MAR1, 1234.567891)]),
    });
    const spend = customerDelta(delta, "c1")!.tx_spend_micros;
    expect(spend).toBe(100_000 + 200_000 + 19_990_000 + 1_234_567_891);
    expect(Number.isInteger(spend)).toBe(true);
  });

  it("keeps customer profiles out of the totals and reports the latest profile per customer, in batch order", () => {
    const delta = aggregateBatch({
      position: 9,
      accepted: [
        { bronzeSeq: 3, record: customer("c1", "retail", MAR1 - 10 * DAY) },
        { bronzeSeq: 4, record: customer("c2", "smb") },
        { bronzeSeq: 5, record: tx("t1", "c1", MAR1, 1) },
        { bronzeSeq: 6, record: customer("c1", "premium", MAR1 - 5 * DAY) },
        { bronzeSeq: 8, record: customer("c1", "enterprise", null) },
      ],
    });
    expect(delta.profiles).toHaveLength(2);
    expect(delta.profiles.find((p) => p.customer_id === "c1")).toEqual({
      customer_id: "c1",
      customer_segment: "enterprise",
      registration_at: null,
      bronzeSeq: 8,
    });
    expect(delta.profiles.find((p) => p.customer_id === "c2")).toEqual({ customer_id: "c2", customer_segment: "smb", registration_at: null, bronzeSeq: 4 });
    expect(rollUpCustomers(delta.days)).toHaveLength(1);
    expect(customerDelta(delta, "c1")).toMatchObject({ tx_count: 1, session_count: 0, event_count: 0 });
    expect(customerDelta(delta, "c2")).toBeUndefined();
  });
});

describe("toMicros", () => {
  it("converts to rounded millionths", () => {
    expect(toMicros(12.345678)).toBe(12_345_678);
    expect(toMicros(0.1)).toBe(100_000);
    expect(toMicros(19.99)).toBe(19_990_000);
    expect(toMicros(1.0000004)).toBe(1_000_000);
    expect(toMicros(1.0000006)).toBe(1_000_001);
    expect(toMicros(0)).toBe(0);
    expect(toMicros(10 * 1.08)).toBe(10_800_000);
  });

  it("makes sums exact in any order where floats are not", () => {
    const xs = [0.1, 0.2, 0.3];
    expect(xs.reduce((a, b) => a + b, 0)).not.toBe([...xs].reverse().reduce((a, b) => a + b, 0));
    expect(xs.map(toMicros).reduce((a, b) => a + b, 0)).toBe([...xs].reverse().map(toMicros).reduce((a, b) => a + b, 0));
  });
});

describe("mergeTotals", () => {
  it("adds counts, keeps the earliest first and the latest last, and returns its first argument", () => {
    const a: Totals = { ...emptyTotals(), tx_count: 2, tx_spend_micros: 5, tx_first_at: 100, tx_last_at: 200, session_count: 1, session_ms: 10, interaction_count: 1, event_count: 4 };
    const b: Totals = { ...emptyTotals(), tx_count: 1, tx_spend_micros: 7, tx_first_at: 50, tx_last_at: 150, session_ms: 5, session_count: 2, event_count: 1 };
    const out = mergeTotals(a, b);
    expect(out).toBe(a);
    expect(out).toEqual({ tx_count: 3, tx_spend_micros: 12, tx_first_at: 50, tx_last_at: 200, session_count: 3, session_ms: 15, interaction_count: 1, event_count: 5 });
  });

  it("treats null first/last as absent", () => {
    expect(mergeTotals(emptyTotals(), { ...emptyTotals(), tx_first_at: 7, tx_last_at: 9 })).toMatchObject({ tx_first_at: 7, tx_last_at: 9 });
    expect(mergeTotals({ ...emptyTotals(), tx_first_at: 7, tx_last_at: 9 }, emptyTotals())).toMatchObject({ tx_first_at: 7, tx_last_at: 9 });
    expect(mergeTotals(emptyTotals(), emptyTotals())).toEqual(emptyTotals());
  });
});

describe("order independence", () => {
  function prng(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  function workload(): ValidRecord[] {
    const rand = prng(7);
    const out: ValidRecord[] = [];
    for (let i = 0; i < 400; i++) {
      const c = `c${Math.floor(rand() * 6)}`;
      const at = MAR1 + Math.floor(rand() * 5 * DAY);
      const k = rand();
      if (k < 0.5) out.push(tx(`t${i}`, c, at, Math.round(rand() * 100_000) / 100 * [1, 1.08, 1.27, 0.0067][i % 4]!));
      else if (k < 0.7) out.push(session(`s${i}`, c, at, Math.floor(rand() * 3_600_000)));
      else if (k < 0.85) out.push(interaction(`i${i}`, c, at));
      else out.push(event(`e${i}`, c, at));
    }
    return out;
  }

  function shuffle<T>(xs: T[], seed: number): T[] {
    const rand = prng(seed);
    const out = [...xs];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }

  function mergeByKey(deltas: GoldDelta[]) {
    const days = new Map<string, Totals>();
    const customers = new Map<string, Totals>();
    for (const delta of deltas) {
      for (const { customer_id, day, ...t } of delta.days as DayDelta[]) {
        const key = `${customer_id}/${day}`;
        days.set(key, mergeTotals(days.get(key) ?? emptyTotals(), t));
      }
      for (const { customer_id, ...t } of rollUpCustomers(delta.days)) customers.set(customer_id, mergeTotals(customers.get(customer_id) ?? emptyTotals(), t));
    }
    const sorted = (m: Map<string, Totals>) => Object.fromEntries([...m].sort(([a], [b]) => a.localeCompare(b)));
    return { days: sorted(days), customers: sorted(customers) };
  }

  it("gives the same totals for a shuffled list split into batches and merged", () => {
    const records = workload();
    const whole = mergeByKey([aggregateBatch({ position: records.length, accepted: accepted(records) })]);
    expect(Object.keys(whole.customers)).toHaveLength(6);
    expect(Object.keys(whole.days).length).toBeGreaterThan(20);

    for (const seed of [1, 2, 3]) {
      const shuffled = shuffle(records, seed);
      expect(shuffled).not.toEqual(records);
      const batches: GoldDelta[] = [];
      for (let i = 0; i < shuffled.length; i += 37) {
        batches.push(aggregateBatch({ position: i, accepted: accepted(shuffled.slice(i, i + 37), i + 1) }));
      }
      // Merge the batches in reverse too: arrival order must not matter.
      expect(mergeByKey(batches)).toEqual(whole);
      expect(mergeByKey([...batches].reverse())).toEqual(whole);
    }
  });

  it("matches an independent computation of each customer's totals", () => {
    const records = workload();
    const delta = aggregateBatch({ position: 1, accepted: accepted(shuffle(records, 9)) });
    for (const c of rollUpCustomers(delta.days)) {
      const mine = records.filter((r) => r.customer_id === c.customer_id);
      const txs = mine.filter((r): r is TransactionRecord => r.entity === "transactions");
      const sessions = mine.filter((r): r is SessionRecord => r.entity === "sessions");
      expect(c.tx_count).toBe(txs.length);
      expect(c.tx_spend_micros).toBe(txs.reduce((s, r) => s + Math.round(r.amount_base * 1e6), 0));
      expect(c.tx_first_at).toBe(Math.min(...txs.map((r) => r.eventAt)));
      expect(c.tx_last_at).toBe(Math.max(...txs.map((r) => r.eventAt)));
      expect(c.session_count).toBe(sessions.length);
      expect(c.session_ms).toBe(sessions.reduce((s, r) => s + r.session_end_at - r.eventAt, 0));
      expect(c.interaction_count).toBe(mine.filter((r) => r.entity === "interactions").length);
      expect(c.event_count).toBe(mine.filter((r) => r.entity === "events").length);
    }
  });
});

describe("aggregate (pipeable)", () => {
  it("turns each silver commit into one gold delta", async () => {
    const out = await lastValueFrom(
      from([
        { position: 3, accepted: accepted([tx("t1", "c1", MAR1, 2)]) },
        { position: 4, accepted: accepted([event("e1", "c2", MAR2)], 4) },
      ]).pipe(aggregate(), toArray()),
    );
    expect(out.map((d) => d.position)).toEqual([3, 4]);
    expect(rollUpCustomers(out[0]!.days)).toEqual([{ customer_id: "c1", ...emptyTotals(), tx_count: 1, tx_spend_micros: 2_000_000, tx_first_at: MAR1, tx_last_at: MAR1 }]);
    expect(out[1]!.days).toEqual([{ customer_id: "c2", day: dayOf(MAR2), ...emptyTotals(), event_count: 1, max_at: MAR2 }]);
  });
});

describe("aggregateBatch with custom features", () => {
  const custom = compileCustomFeatures([
    { name: "spend", from: "transactions", aggregate: "sum", field: "amount_base", windowDays: 7 },
    { name: "mobile", from: "sessions", aggregate: "count", where: { device_type: "mobile" } },
    { name: "longest", from: "sessions", aggregate: "max", field: "duration" },
  ]);
  const session = (id: string, customer_id: string, eventAt: number, ms: number, device_type: string): SessionRecord => ({
    entity: "sessions",
    id,
    customer_id,
    eventAt,
    session_end_at: eventAt + ms,
    device_type,
  });
  const accepted = (records: ValidRecord[]): Accepted[] => records.map((record, i) => ({ bronzeSeq: i + 1, record }));

  it("folds each matching record into its feature's bucket per customer and day, money in exact micros", () => {
    const delta = aggregateBatch(
      {
        position: 9,
        accepted: accepted([
          tx("t1", "c1", MAR1 + 1000, 0.1),
          tx("t2", "c1", MAR1 + 2000, 0.2),
          tx("t3", "c1", MAR2, 5),
          session("s1", "c1", MAR1, 60_000, "mobile"),
          session("s2", "c1", MAR1 + 5, 120_000, "desktop"),
          session("s3", "c2", MAR2, 30_000, "mobile"),
        ]),
      },
      custom,
    );
    const by = (f: string) => delta.features.filter((x) => x.feature === f).map(({ feature: _f, ...rest }) => rest);
    // min_at and max_at: the earliest and latest event times of the bucket's records.
    expect(by("spend")).toEqual([
      { customer_id: "c1", day: dayOf(MAR1), n: 2, total: 300_000, lo: 0.1, hi: 0.2, min_at: MAR1 + 1000, max_at: MAR1 + 2000 },
      { customer_id: "c1", day: dayOf(MAR2), n: 1, total: 5_000_000, lo: 5, hi: 5, min_at: MAR2, max_at: MAR2 },
    ]);
    // Only device_type = mobile counts.
    expect(by("mobile")).toEqual([
      { customer_id: "c1", day: dayOf(MAR1), n: 1, total: 0, lo: null, hi: null, min_at: MAR1, max_at: MAR1 },
      { customer_id: "c2", day: dayOf(MAR2), n: 1, total: 0, lo: null, hi: null, min_at: MAR2, max_at: MAR2 },
    ]);
    expect(by("longest").map((b) => [b.customer_id, b.hi])).toEqual([
      ["c1", 120_000],
      ["c2", 30_000],
    ]);
  });

  it("gives the same buckets in any order (the merges are commutative)", () => {
    const records = [tx("a", "c1", MAR1, 1.25), tx("b", "c1", MAR1 + 7, 3.5), session("s", "c1", MAR1, 10, "mobile"), tx("c", "c2", MAR2, 2)];
    const sorted = (d: GoldDelta) => [...d.features].sort((x, y) => `${x.feature}${x.customer_id}${x.day}`.localeCompare(`${y.feature}${y.customer_id}${y.day}`));
    expect(sorted(aggregateBatch({ position: 1, accepted: accepted([...records].reverse()) }, custom))).toEqual(
      sorted(aggregateBatch({ position: 1, accepted: accepted(records) }, custom)),
    );
  });
});


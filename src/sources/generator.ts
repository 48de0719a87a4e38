/**
 * A seeded, deterministic synthetic workload: customer profiles and the four event entities, with
 * configurable duplicate, invalid, late and out-of-order rates, as MessagePack or JSON payloads.
 * The same options always give the same messages (byte for byte), so it can feed `npm start`,
 * tests that check results against an independent computation, and the benchmark.
 */
import type { Observable } from "rxjs";
import { pack } from "msgpackr";
import type { Reason, SourceMessage } from "../types.js";
import { DAY_MS } from "../timestamps.js";
import { pulled, type PullOptions } from "./pulled.js";

export interface GeneratorOptions {
  /** PRNG seed; default 42. */
  readonly seed?: number;
  /** Number of messages; default 50,000. */
  readonly messages?: number;
  /** Number of distinct customers; default messages / 20. */
  readonly customers?: number;
  /** Share of messages that re-send an earlier record's id with different contents; default 0.05. */
  readonly duplicateRate?: number;
  /** Share of messages that break the data contract; default 0.01. */
  readonly invalidRate?: number;
  /** Share of records whose event time is 1–20 days behind the stream; default 0.02. */
  readonly lateRate?: number;
  /** Largest jitter of event times around the stream clock (out-of-order arrivals); default 6 h. */
  readonly jitterMs?: number;
  /** Share of payloads sent as JSON instead of MessagePack; default 0.2. */
  readonly jsonRate?: number;
  /** Event time of the first record; default 2026-01-01T00:00:00Z. */
  readonly startMs?: number;
  /** Event-time span the stream covers; default 90 days. */
  readonly spanDays?: number;
}

/** What the generator knows a message should become, independently of the validator. */
export type Expectation =
  | { readonly valid: true; readonly entity: "customers"; readonly id: string; readonly segment: string; readonly registrationAt: number | null }
  | {
      readonly valid: true;
      readonly entity: "transactions" | "interactions" | "events" | "sessions";
      readonly id: string;
      readonly customerId: string;
      readonly eventAt: number;
      /** transactions: amount and currency as sent (normalised), sessions: end time. */
      readonly amount?: number;
      readonly currency?: string;
      readonly sessionEndAt?: number;
    }
  | { readonly valid: false; readonly reason: Reason; readonly field: string | null };

export interface GeneratedMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly contentType: string | null;
  /** A broker-side dedupe id: unique per message, so duplicates reach tributary. */
  readonly msgId: string;
  readonly expect: Expectation;
}

/** mulberry32: small, fast, good enough for workloads; the same numbers for the same seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEGMENTS = ["retail", "premium", "enterprise", "smb"];
const CURRENCIES = ["USD", "EUR", "GBP", "usd", "eur"];
const INTERACTION_TYPES = ["email_open", "support_call", "chat", "review"];
const EVENT_TYPES = ["page_view", "add_to_cart", "search", "login"];
const DEVICES = ["mobile", "desktop", "tablet"];

type Fields = Record<string, unknown>;
interface Draft {
  entity: string;
  fields: Fields | null;
  raw?: Uint8Array;
  expect: Expectation;
}

/** The invalid cases of the data contract, each with the reason and field it must produce. */
const INVALID_CASES: ReadonlyArray<(base: Fields) => { entity: string; fields: Fields | null; raw?: Uint8Array; reason: Reason; field: string | null }> = [
  () => ({ entity: "transactions", fields: null, raw: Uint8Array.from([0xc1, 0xff, 0x00]), reason: "decode_error", field: null }),
  () => ({ entity: "events", fields: null, raw: new TextEncoder().encode('{"event_id": "e1", broken'), reason: "decode_error", field: null }),
  () => ({ entity: "interactions", fields: null, raw: pack([1, 2, 3]), reason: "decode_error", field: null }),
  (b) => ({ entity: "widgets", fields: b, reason: "unknown_entity", field: null }),
  (b) => ({ entity: "transactions", fields: { ...b, amount: undefined }, reason: "missing_field", field: "amount" }),
  (b) => ({ entity: "transactions", fields: { ...b, customer_id: null }, reason: "missing_field", field: "customer_id" }),
  (b) => ({ entity: "transactions", fields: { ...b, transaction_id: "" }, reason: "missing_field", field: "transaction_id" }),
  (b) => ({ entity: "transactions", fields: { ...b, amount: "twelve" }, reason: "invalid_type", field: "amount" }),
  (b) => ({ entity: "transactions", fields: { ...b, transaction_id: 1.5 }, reason: "invalid_type", field: "transaction_id" }),
  (b) => ({ entity: "transactions", fields: { ...b, currency: 840 }, reason: "invalid_type", field: "currency" }),
  (b) => ({ entity: "transactions", fields: { ...b, transaction_date: "2026-13-45" }, reason: "invalid_timestamp", field: "transaction_date" }),
  (b) => ({ entity: "transactions", fields: { ...b, transaction_date: "yesterday" }, reason: "invalid_timestamp", field: "transaction_date" }),
  (b) => ({ entity: "transactions", fields: { ...b, amount: -5 }, reason: "invalid_range", field: "amount" }),
  (b) => ({ entity: "transactions", fields: { ...b, currency: "XYZ" }, reason: "unknown_currency", field: "currency" }),
  (b) => ({ entity: "transactions", fields: { ...b, transaction_date: "2099-01-01T00:00:00Z" }, reason: "future_timestamp", field: "transaction_date" }),
  (b) => ({
    entity: "sessions",
    fields: { session_id: `${b.transaction_id}-s`, customer_id: b.customer_id, session_start: "2026-02-01T10:00:00Z", session_end: "2026-02-01T09:00:00Z" },
    reason: "invalid_range",
    field: "session_end",
  }),
  (b) => ({
    entity: "events",
    fields: { event_id: `${b.transaction_id}-e`, customer_id: b.customer_id, event_type: "login", event_timestamp: 1.5 },
    reason: "invalid_timestamp",
    field: "event_timestamp",
  }),
  (b) => ({
    entity: "interactions",
    fields: { interaction_id: `${b.transaction_id}-i`, customer_id: b.customer_id, interaction_date: "2026-02-01", interaction_type: 42 },
    reason: "invalid_type",
    field: "interaction_type",
  }),
];

/**
 * Generates the workload as plain messages with what each should become.
 *
 * @example
 * for (const m of generateWorkload({ seed: 7, messages: 1000 })) publish(m.subject, m.data)
 */
export function* generateWorkload(options: GeneratorOptions = {}): Generator<GeneratedMessage> {
  const seed = options.seed ?? 42;
  const n = options.messages ?? 50_000;
  const customers = Math.max(1, options.customers ?? Math.ceil(n / 20));
  const duplicateRate = options.duplicateRate ?? 0.05;
  const invalidRate = options.invalidRate ?? 0.01;
  const lateRate = options.lateRate ?? 0.02;
  const jitterMs = options.jitterMs ?? 6 * 3_600_000;
  const jsonRate = options.jsonRate ?? 0.2;
  const startMs = options.startMs ?? Date.UTC(2026, 0, 1);
  const spanMs = (options.spanDays ?? 90) * DAY_MS;
  const rand = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const customerId = (i: number) => String(1_000_000 + i);
  // Recent valid event records, to re-send as duplicates.
  const recent: Draft[] = [];
  let invalidCase = 0;

  for (let i = 0; i < n; i++) {
    const clock = startMs + Math.floor((spanMs * i) / n);
    const r = rand();
    let draft: Draft;
    if (r < invalidRate) {
      const c = INVALID_CASES[invalidCase++ % INVALID_CASES.length]!;
      const base = transactionFields(`tx-bad-${i}`, customerId(Math.floor(rand() * customers)), clock, rand, pick);
      const bad = c(base);
      draft = { entity: bad.entity, fields: bad.fields, raw: bad.raw, expect: { valid: false, reason: bad.reason, field: bad.field } };
    } else if (r < invalidRate + duplicateRate && recent.length > 0) {
      // Same id, different contents: the first copy in stream order must win.
      const original = recent[Math.floor(rand() * recent.length)]!;
      const fields = { ...original.fields };
      if (original.entity === "transactions") fields.amount = Math.round(rand() * 50_000) / 100;
      draft = { entity: original.entity, fields, expect: expectationFor(original.entity, fields) };
    } else {
      let eventAt = clock + Math.floor((rand() * 2 - 1) * jitterMs);
      if (rand() < lateRate) eventAt -= Math.floor((1 + rand() * 19) * DAY_MS);
      const cust = Math.floor(rand() * customers);
      const kind = rand();
      let entity: string;
      let fields: Fields;
      if (kind < 0.06) {
        entity = "customers";
        fields = {
          customer_id: rand() < 0.5 ? 1_000_000 + cust : customerId(cust),
          name: `Customer ${cust}`,
          email: `customer${cust}@example.com`,
          registration_date: rand() < 0.1 ? null : encodeTime(Math.min(eventAt, clock) - Math.floor(rand() * 60) * DAY_MS, rand),
          customer_segment: rand() < 0.1 ? null : pick(SEGMENTS),
        };
      } else if (kind < 0.46) {
        entity = "transactions";
        fields = transactionFields(`tx-${seed}-${i}`, customerId(cust), eventAt, rand, pick);
      } else if (kind < 0.66) {
        entity = "interactions";
        fields = {
          interaction_id: `in-${seed}-${i}`,
          customer_id: customerId(cust),
          interaction_date: encodeTime(eventAt, rand),
          interaction_type: pick(INTERACTION_TYPES),
        };
      } else if (kind < 0.9) {
        entity = "events";
        fields = { event_id: `ev-${seed}-${i}`, customer_id: customerId(cust), event_type: pick(EVENT_TYPES), event_timestamp: encodeTime(eventAt, rand) };
      } else {
        entity = "sessions";
        const durationMs = Math.floor(rand() * 3_600_000);
        fields = {
          session_id: `se-${seed}-${i}`,
          customer_id: customerId(cust),
          session_start: eventAt,
          session_end: new Date(eventAt + durationMs).toISOString(),
          device_type: rand() < 0.1 ? null : pick(DEVICES),
        };
      }
      draft = { entity, fields, expect: expectationFor(entity, fields) };
      if (entity !== "customers") {
        if (recent.length < 2_000) recent.push(draft);
        else recent[Math.floor(rand() * recent.length)] = draft;
      }
    }
    const json = rand() < jsonRate;
    const withHeader = json && rand() < 0.5;
    const data = draft.raw ?? (json ? new TextEncoder().encode(JSON.stringify(draft.fields)) : pack(draft.fields));
    yield {
      subject: `tributary.${draft.entity}`,
      data,
      contentType: draft.raw ? null : withHeader ? "application/json" : null,
      msgId: `gen-${seed}-${i}`,
      expect: draft.expect,
    };
  }
}

function transactionFields(id: string, customer: string, at: number, rand: () => number, pick: <T>(xs: readonly T[]) => T): Fields {
  const cents = Math.round(rand() * 50_000);
  return {
    transaction_id: id,
    customer_id: customer,
    amount: rand() < 0.3 ? (cents / 100).toFixed(2) : cents / 100,
    currency: pick(CURRENCIES),
    transaction_date: encodeTime(at, rand),
  };
}

/** Encodes an instant in one of the accepted timestamp forms. */
function encodeTime(ms: number, rand: () => number): string | number {
  const r = rand();
  const iso = new Date(ms).toISOString();
  if (r < 0.3) return ms;
  if (r < 0.5) return iso.replace("Z", ""); // no zone means UTC
  if (r < 0.6) {
    const shifted = new Date(ms + 2 * 3_600_000).toISOString().replace("Z", "+02:00");
    return shifted;
  }
  return iso;
}

/** The expected outcome of a valid record, computed from the fields the generator wrote. */
function expectationFor(entity: string, f: Fields): Expectation {
  const time = (v: unknown): number => {
    if (typeof v === "number") return v;
    const s = String(v);
    return Date.parse(/Z|[+-]\d{2}:\d{2}$/.test(s) ? s : s.length === 10 ? `${s}T00:00:00Z` : `${s}Z`);
  };
  switch (entity) {
    case "customers":
      return {
        valid: true,
        entity,
        id: String(f.customer_id),
        segment: (f.customer_segment as string | null) ?? "unknown",
        registrationAt: f.registration_date == null ? null : time(f.registration_date),
      };
    case "transactions":
      return {
        valid: true,
        entity,
        id: String(f.transaction_id),
        customerId: String(f.customer_id),
        eventAt: time(f.transaction_date),
        amount: Number(f.amount),
        currency: String(f.currency).toUpperCase(),
      };
    case "interactions":
      return { valid: true, entity, id: String(f.interaction_id), customerId: String(f.customer_id), eventAt: time(f.interaction_date) };
    case "events":
      return { valid: true, entity, id: String(f.event_id), customerId: String(f.customer_id), eventAt: time(f.event_timestamp) };
    default:
      return {
        valid: true,
        entity: "sessions",
        id: String(f.session_id),
        customerId: String(f.customer_id),
        eventAt: time(f.session_start),
        sessionEndAt: time(f.session_end),
      };
  }
}

/**
 * The generator as a source: emits the workload as source messages with origin
 * `generator:<seed>` and the 1-based message index as position. Pulled: with `credit`, each
 * chunk waits until the commits have room for it.
 */
export function generatorSource(options: GeneratorOptions = {}, startAfter = 0, pull: PullOptions = {}): Observable<SourceMessage> {
  return pulled(generatorMessages(options, startAfter), pull);
}

function* generatorMessages(options: GeneratorOptions, startAfter: number): Generator<SourceMessage> {
  const origin = `generator:${options.seed ?? 42}`;
  let i = 0;
  for (const m of generateWorkload(options)) {
    i++;
    if (i <= startAfter) continue;
    yield {
      origin,
      originSeq: i,
      subject: m.subject,
      data: m.data,
      receivedAt: Date.now(),
      publishedAt: null,
      contentType: m.contentType,
      msgId: m.msgId,
    };
  }
}

import { map, type OperatorFunction } from "rxjs";
import type { Entity, Quarantine, Reason, Staged, ValidRecord } from "../types.js";
import { parseTimestamp } from "../timestamps.js";

export interface ValidateOptions {
  /** Currency → multiplier to the base currency. A currency not in this table is `unknown_currency`. */
  readonly rates: Readonly<Record<string, number>>;
  /** How far an event time may lie after the receive time; default 24 h. */
  readonly futureToleranceMs?: number;
}

type FieldKind = "id" | "text" | "timestamp" | "amount" | "currency";
interface FieldSpec {
  readonly name: string;
  readonly kind: FieldKind;
  /** Absent for required fields; the default (possibly null) for optional ones. */
  readonly fallback?: string | null;
}
interface EntityContract {
  readonly fields: readonly FieldSpec[];
  readonly eventTime: string;
}

const req = (name: string, kind: FieldKind): FieldSpec => ({ name, kind });
const opt = (name: string, kind: FieldKind, fallback: string | null): FieldSpec => ({ name, kind, fallback });

/**
 * The data contract, one entry per entity: required fields first, then optional ones with their
 * defaults, in the order the README documents them. Checks run field by field in this order and
 * report the first failure.
 */
export const CONTRACT: Readonly<Record<Entity, EntityContract>> = {
  customers: {
    fields: [
      req("customer_id", "id"),
      opt("name", "text", null),
      opt("email", "text", null),
      opt("registration_date", "timestamp", null),
      opt("customer_segment", "text", "unknown"),
    ],
    eventTime: "registration_date",
  },
  transactions: {
    fields: [
      req("transaction_id", "id"),
      req("customer_id", "id"),
      req("amount", "amount"),
      req("currency", "currency"),
      req("transaction_date", "timestamp"),
    ],
    eventTime: "transaction_date",
  },
  interactions: {
    fields: [req("interaction_id", "id"), req("customer_id", "id"), req("interaction_date", "timestamp"), req("interaction_type", "text")],
    eventTime: "interaction_date",
  },
  events: {
    fields: [req("event_id", "id"), req("customer_id", "id"), req("event_type", "text"), req("event_timestamp", "timestamp")],
    eventTime: "event_timestamp",
  },
  sessions: {
    fields: [
      req("session_id", "id"),
      req("customer_id", "id"),
      req("session_start", "timestamp"),
      req("session_end", "timestamp"),
      opt("device_type", "text", "unknown"),
    ],
    eventTime: "session_start",
  },
};

const NUMERIC = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const CURRENCY = /^[A-Za-z]{3}$/;
const DEFAULT_FUTURE_TOLERANCE_MS = 86_400_000;

type Parsed = { ok: true; value: string | number | null } | { ok: false; reason: Reason; detail: string };
const fail = (reason: Reason, detail: string): Parsed => ({ ok: false, reason, detail });

function isBlank(v: unknown): boolean {
  return v === undefined || v === null || (typeof v === "string" && v.trim() === "");
}

function describe(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === "object") return Array.isArray(v) ? "an array" : v instanceof Date ? "a date" : "an object";
  return `${typeof v} ${String(v)}`;
}

function parseField(kind: FieldKind, v: unknown): Parsed {
  switch (kind) {
    case "id":
      if (typeof v === "string") return { ok: true, value: v.trim() };
      if (typeof v === "number" && Number.isSafeInteger(v)) return { ok: true, value: String(v) };
      if (typeof v === "bigint") return { ok: true, value: v.toString() };
      return fail("invalid_type", `expected a string or integer id, got ${describe(v)}`);
    case "text":
      return typeof v === "string" ? { ok: true, value: v.trim() } : fail("invalid_type", `expected a string, got ${describe(v)}`);
    case "timestamp": {
      if (v instanceof Date) {
        const t = v.getTime();
        return Number.isNaN(t) ? fail("invalid_timestamp", "invalid date") : { ok: true, value: t };
      }
      if (typeof v !== "string" && typeof v !== "number" && typeof v !== "bigint") {
        return fail("invalid_type", `expected an ISO-8601 string or epoch milliseconds, got ${describe(v)}`);
      }
      const t = parseTimestamp(v);
      return t === null ? fail("invalid_timestamp", `not an ISO-8601 timestamp or integer epoch milliseconds: ${describe(v)}`) : { ok: true, value: t };
    }
    case "amount": {
      let n: number;
      if (typeof v === "number") n = v;
      else if (typeof v === "string" && NUMERIC.test(v.trim())) n = Number(v.trim());
      else return fail("invalid_type", `expected a number, got ${describe(v)}`);
      if (!Number.isFinite(n)) return fail("invalid_type", `expected a finite number, got ${describe(v)}`);
      if (n < 0) return fail("invalid_range", `amount must be >= 0, got ${n}`);
      return { ok: true, value: n };
    }
    case "currency":
      if (typeof v !== "string" || !CURRENCY.test(v.trim())) return fail("invalid_type", `expected a three-letter currency code, got ${describe(v)}`);
      return { ok: true, value: v.trim().toUpperCase() };
  }
}

/**
 * Applies the data contract to one decoded record. Returns the typed record, or a quarantine entry
 * with its reason code and field. Staged records that are not `decoded` pass through unchanged.
 *
 * @example
 * validateRecord(staged, { rates: { USD: 1 } }).outcome
 * // { status: "quarantined", reason: "missing_field", field: "amount", ... }
 */
export function validateRecord(staged: Staged, options: ValidateOptions): Staged {
  if (staged.outcome.status !== "decoded") return staged;
  const entity = staged.entity as Entity;
  const contract = CONTRACT[entity];
  const input = staged.outcome.fields;
  const values: Record<string, string | number | null> = {};
  for (const spec of contract.fields) {
    const raw = Object.prototype.hasOwnProperty.call(input, spec.name) ? input[spec.name] : undefined;
    if (isBlank(raw)) {
      if (spec.fallback === undefined) return quarantine(staged, "missing_field", spec.name, `${spec.name} is required`);
      values[spec.name] = spec.fallback;
      continue;
    }
    const parsed = parseField(spec.kind, raw);
    if (!parsed.ok) return quarantine(staged, parsed.reason, spec.name, parsed.detail);
    values[spec.name] = parsed.value;
  }
  if (entity === "transactions" && !(values.currency as string in options.rates)) {
    return quarantine(staged, "unknown_currency", "currency", `currency ${values.currency} is not in the rates table`);
  }
  if (entity === "sessions" && (values.session_end as number) < (values.session_start as number)) {
    return quarantine(staged, "invalid_range", "session_end", "session_end is before session_start");
  }
  const eventAt = values[contract.eventTime] as number | null;
  const tolerance = options.futureToleranceMs ?? DEFAULT_FUTURE_TOLERANCE_MS;
  if (eventAt !== null && eventAt > staged.msg.receivedAt + tolerance) {
    return quarantine(staged, "future_timestamp", contract.eventTime, `event time is more than ${tolerance / 3_600_000} h after receipt`);
  }
  // A session's end feeds session duration: an end far in the future would inflate it.
  if (entity === "sessions" && (values.session_end as number) > staged.msg.receivedAt + tolerance) {
    return quarantine(staged, "future_timestamp", "session_end", `session_end is more than ${tolerance / 3_600_000} h after receipt`);
  }
  return { msg: staged.msg, entity, outcome: { status: "valid", record: toRecord(entity, values, eventAt) } };
}

function toRecord(entity: Entity, v: Record<string, string | number | null>, eventAt: number | null): ValidRecord {
  const customer_id = v.customer_id as string;
  switch (entity) {
    case "customers":
      return {
        entity,
        id: customer_id,
        customer_id,
        eventAt,
        name: v.name as string | null,
        email: v.email as string | null,
        registration_at: eventAt,
        customer_segment: v.customer_segment as string,
      };
    case "transactions":
      return {
        entity,
        id: v.transaction_id as string,
        customer_id,
        eventAt: eventAt!,
        amount: v.amount as number,
        currency: v.currency as string,
        amount_base: Number.NaN,
        customer_segment: "unknown",
      };
    case "interactions":
      return { entity, id: v.interaction_id as string, customer_id, eventAt: eventAt!, interaction_type: v.interaction_type as string };
    case "events":
      return { entity, id: v.event_id as string, customer_id, eventAt: eventAt!, event_type: v.event_type as string };
    case "sessions":
      return {
        entity,
        id: v.session_id as string,
        customer_id,
        eventAt: eventAt!,
        session_end_at: v.session_end as number,
        device_type: v.device_type as string,
      };
  }
}

function quarantine(staged: Staged, reason: Reason, field: string, detail: string): Staged {
  const outcome: Quarantine = { status: "quarantined", reason, field, detail };
  return { msg: staged.msg, entity: staged.entity, outcome };
}

/** Pipeable form of {@link validateRecord}. */
export function validate(options: ValidateOptions): OperatorFunction<Staged, Staged> {
  return map((staged) => validateRecord(staged, options));
}

import type { OperatorFunction } from "rxjs";
import { toOperator, type Stage } from "./stage.js";
import type { Entity, Quarantine, Reason, Staged, ValidRecord } from "../types.js";
import { BUILTIN_ENTITIES, CUSTOMER_FIELD, keyOf, type EntityDefinition, type EntityField, type FieldKind } from "../model/entities.js";
import { formatTimestamp, parseTimestamp } from "../timestamps.js";
import { toMicros } from "./aggregate.js";

export interface ValidateOptions {
  /** Currency → multiplier to the base currency. A currency not in this table is `unknown_currency`. */
  readonly rates: Readonly<Record<string, number>>;
  /** How far any timestamp may lie after the receive time; default 24 h. Later is `future_timestamp`. */
  readonly futureToleranceMs?: number;
  /** Earliest accepted timestamp, epoch ms; default 0 (1970-01-01T00:00:00Z). Earlier is `invalid_range`. */
  readonly minEventTime?: number;
  /** Longest accepted id, in characters (code points); default 256. Longer is `invalid_type`. */
  readonly maxIdLength?: number;
  /** Longest accepted text field, in characters (code points); default 1,024. Longer is `invalid_type`. */
  readonly maxTextLength?: number;
  /** The entities to accept (the registry's built-in ones plus an embedder's); default the built-in five. */
  readonly entities?: readonly EntityDefinition[];
}

/** The contract limits' defaults, which `limits.*` in the config documents and uses. */
export const VALIDATE_DEFAULTS = {
  futureToleranceMs: 86_400_000,
  minEventTime: 0,
  maxIdLength: 256,
  maxTextLength: 1_024,
} as const;

/**
 * The largest money value gold can sum exactly, in millionths of the base currency: 2^53 − 1. An
 * amount whose base-currency micros exceed it is `invalid_range`. The largest accepted amount in
 * the base currency is therefore 9,007,199,254.74099 (the next double up rounds to 2^53 micros);
 * in another currency it is about that divided by the currency's rate.
 */
export const MAX_AMOUNT_MICROS = Number.MAX_SAFE_INTEGER;

/** A field as the validator checks it; derived from the entity registry (`model/entities.ts`). */
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

const specOf = (f: EntityField): FieldSpec => (f.optional ? { name: f.name, kind: f.kind, fallback: f.optional.default } : { name: f.name, kind: f.kind });

/**
 * The built-in data contract, one entry per entity, derived from {@link BUILTIN_ENTITIES}:
 * required fields first, then optional ones with their defaults, in the order the README
 * documents them. Checks run field by field in this order and report the first failure.
 */
export const CONTRACT: Readonly<Record<Entity, EntityContract>> = Object.fromEntries(
  BUILTIN_ENTITIES.map((e) => [e.name, { fields: e.fields.map(specOf), eventTime: e.eventTime }]),
) as unknown as Record<Entity, EntityContract>;

/** What validate does for one entity, compiled once from its definition. */
interface Plan {
  readonly def: EntityDefinition;
  readonly fields: readonly FieldSpec[];
  /** Fields copied into the record under their key (all but the id, customer_id and event time). */
  readonly rest: readonly { readonly name: string; readonly key: string }[];
  readonly amounts: readonly { readonly name: string; readonly currency: string }[];
  readonly notBefore: readonly { readonly name: string; readonly other: string }[];
  readonly timestamps: readonly string[];
  readonly derived: readonly { readonly column: string; readonly initial: string | number }[];
}

const plans = new WeakMap<EntityDefinition, Plan>();

function planOf(def: EntityDefinition): Plan {
  let plan = plans.get(def);
  if (plan !== undefined) return plan;
  const rest: { name: string; key: string }[] = [];
  for (const f of def.fields) {
    const key = keyOf(def, f);
    if (key !== "id" && key !== "customer_id" && key !== "eventAt") rest.push({ name: f.name, key });
  }
  plan = {
    def,
    fields: def.fields.map(specOf),
    rest,
    amounts: def.fields.filter((f) => f.kind === "amount" && f.currency !== undefined).map((f) => ({ name: f.name, currency: f.currency! })),
    notBefore: def.fields.filter((f) => f.notBefore !== undefined).map((f) => ({ name: f.name, other: f.notBefore! })),
    timestamps: def.fields.filter((f) => f.kind === "timestamp").map((f) => f.name),
    // enrich fills these; until then a money value is NaN, so a record that skipped enrich cannot be summed unnoticed.
    derived: (def.derived ?? []).map((d) => ({ column: d.column, initial: d.derive === "segment" ? "unknown" : Number.NaN })),
  };
  plans.set(def, plan);
  return plan;
}

/** Per entity list, the plan of each entity by name. */
const byName = new WeakMap<readonly EntityDefinition[], ReadonlyMap<string, Plan>>();

function plansFor(entities: readonly EntityDefinition[]): ReadonlyMap<string, Plan> {
  let m = byName.get(entities);
  if (m === undefined) {
    m = new Map(entities.map((e) => [e.name, planOf(e)]));
    byName.set(entities, m);
  }
  return m;
}

const NUMERIC = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const CURRENCY = /^[A-Za-z]{3}$/;
/**
 * What an id may not contain: C0 and C1 controls and DEL, which terminals, logs and CSV readers
 * interpret; and the invisible bidirectional controls (ALM, LRM, RLM, the embeddings, overrides
 * and isolates U+202A–202E, U+2066–2069), line and paragraph separators and the BOM, which make
 * two ids that print the same differ. Lone surrogates are checked apart.
 */
const ID_FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]/;
/** Text fields may hold tabs and line breaks, but no other control characters. */
const TEXT_FORBIDDEN = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;

type Parsed = { ok: true; value: string | number | null } | { ok: false; reason: Reason; detail: string };
const fail = (reason: Reason, detail: string): Parsed => ({ ok: false, reason, detail });

/** The limits one call applies, resolved from the options. */
interface Limits {
  readonly minEventTime: number;
  readonly maxIdLength: number;
  readonly maxTextLength: number;
}

function isBlank(v: unknown): boolean {
  return v === undefined || v === null || (typeof v === "string" && v.trim() === "");
}

function describe(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === "object") return Array.isArray(v) ? "an array" : v instanceof Date ? "a date" : "an object";
  return `${typeof v} ${String(v)}`;
}

/** Characters (code points) in `s`, counted only as far as needed to compare with `max`. */
function longerThan(s: string, max: number): boolean {
  if (s.length <= max) return false;
  // Each code point is one or two UTF-16 units.
  if (s.length > 2 * max) return true;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xdc00 || c > 0xdfff) n++;
  }
  return n > max;
}

const isWellFormed = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

function codePointAt(s: string, index: number): string {
  return `U+${s.charCodeAt(index).toString(16).toUpperCase().padStart(4, "0")}`;
}

/** Why a string is not an acceptable id or text, or null when it is. */
function stringProblem(s: string, what: "id" | "text", max: number, forbidden: RegExp): string | null {
  if (longerThan(s, max)) return `${what} of ${s.length} UTF-16 units is longer than limits.max${what === "id" ? "Id" : "Text"}Length (${max} characters)`;
  const at = s.search(forbidden);
  if (at >= 0) return `${what} contains the control character ${codePointAt(s, at)} at ${at}`;
  if (!isWellFormed(s)) return `${what} contains a lone UTF-16 surrogate`;
  return null;
}

function parseField(kind: FieldKind, v: unknown, limits: Limits): Parsed {
  switch (kind) {
    case "id": {
      let id: string;
      if (typeof v === "string") {
        id = v.trim();
        const problem = stringProblem(id, "id", limits.maxIdLength, ID_FORBIDDEN);
        if (problem !== null) return fail("invalid_type", problem);
        return { ok: true, value: id };
      }
      if (typeof v === "number" && Number.isSafeInteger(v)) id = String(v);
      else if (typeof v === "bigint") id = v.toString();
      else return fail("invalid_type", `expected a string or integer id, got ${describe(v)}`);
      if (id.length > limits.maxIdLength) return fail("invalid_type", `id of ${id.length} digits is longer than limits.maxIdLength (${limits.maxIdLength})`);
      return { ok: true, value: id };
    }
    case "text": {
      if (typeof v !== "string") return fail("invalid_type", `expected a string, got ${describe(v)}`);
      const text = v.trim();
      const problem = stringProblem(text, "text", limits.maxTextLength, TEXT_FORBIDDEN);
      return problem === null ? { ok: true, value: text } : fail("invalid_type", problem);
    }
    case "timestamp": {
      let t: number | null;
      if (v instanceof Date) {
        t = v.getTime();
        if (Number.isNaN(t)) return fail("invalid_timestamp", "invalid date");
      } else if (typeof v === "string" || typeof v === "number" || typeof v === "bigint") {
        t = parseTimestamp(v);
        if (t === null) return fail("invalid_timestamp", `not an ISO-8601 timestamp or integer epoch milliseconds: ${describe(v)}`);
      } else {
        return fail("invalid_type", `expected an ISO-8601 string or epoch milliseconds, got ${describe(v)}`);
      }
      if (t < limits.minEventTime) {
        return fail("invalid_range", `${formatTimestamp(t)} is before limits.minEventTime (${formatTimestamp(limits.minEventTime)})`);
      }
      return { ok: true, value: t };
    }
    case "amount": {
      let n: number;
      if (typeof v === "number") n = v;
      else if (typeof v === "string" && NUMERIC.test(v.trim())) n = Number(v.trim());
      else if (typeof v === "bigint") {
        // MessagePack decodes 64-bit integers beyond 2^53 as BigInt: as a number they would round.
        if (v < 0n) return fail("invalid_range", `amount must be >= 0, got ${v}`);
        if (v > BigInt(Number.MAX_SAFE_INTEGER)) return fail("invalid_range", `amount ${v} is beyond the largest accepted amount`);
        n = Number(v);
      } else return fail("invalid_type", `expected a number, got ${describe(v)}`);
      if (!Number.isFinite(n)) return fail("invalid_type", `expected a finite number, got ${describe(v)}`);
      if (n < 0) return fail("invalid_range", `amount must be >= 0, got ${n}`);
      // -0 becomes 0, so that every later sum and printout is plain zero.
      return { ok: true, value: n === 0 ? 0 : n };
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
  const plan = plansFor(options.entities ?? BUILTIN_ENTITIES).get(staged.entity);
  // decode quarantines unknown entities first; a stage of an embedder's may still rename one.
  if (plan === undefined) return quarantine(staged, "unknown_entity", null, `no entity named ${staged.entity}`);
  const input = staged.outcome.fields;
  const limits: Limits = {
    minEventTime: options.minEventTime ?? VALIDATE_DEFAULTS.minEventTime,
    maxIdLength: options.maxIdLength ?? VALIDATE_DEFAULTS.maxIdLength,
    maxTextLength: options.maxTextLength ?? VALIDATE_DEFAULTS.maxTextLength,
  };
  const values: Record<string, string | number | null> = {};
  for (const spec of plan.fields) {
    const raw = Object.prototype.hasOwnProperty.call(input, spec.name) ? input[spec.name] : undefined;
    if (isBlank(raw)) {
      if (spec.fallback === undefined) return quarantine(staged, "missing_field", spec.name, `${spec.name} is required`);
      values[spec.name] = spec.fallback;
      continue;
    }
    const parsed = parseField(spec.kind, raw, limits);
    if (!parsed.ok) return quarantine(staged, parsed.reason, spec.name, parsed.detail);
    values[spec.name] = parsed.value;
  }
  for (const { name, currency: currencyField } of plan.amounts) {
    const currency = values[currencyField] as string;
    if (!Object.hasOwn(options.rates, currency)) {
      return quarantine(staged, "unknown_currency", currencyField, `currency ${currency} is not in the rates table`);
    }
    // Gold sums millionths of the base currency as integers; past 2^53 they would round (or overflow).
    const micros = toMicros((values[name] as number) * options.rates[currency]!);
    if (!(micros <= MAX_AMOUNT_MICROS)) {
      const largest = MAX_AMOUNT_MICROS / 1e6 / options.rates[currency]!;
      return quarantine(staged, "invalid_range", name, `${name} ${values[name]} ${currency} is above the largest accepted, about ${largest.toPrecision(16)} ${currency}`);
    }
  }
  for (const { name, other } of plan.notBefore) {
    const t = values[name] as number | null;
    const o = values[other] as number | null;
    if (t !== null && o !== null && t < o) return quarantine(staged, "invalid_range", name, `${name} is before ${other}`);
  }
  // Every timestamp, not only the event time: a session's end feeds its duration, for one.
  const tolerance = options.futureToleranceMs ?? VALIDATE_DEFAULTS.futureToleranceMs;
  const latest = staged.msg.receivedAt + tolerance;
  for (const name of plan.timestamps) {
    const t = values[name] as number | null;
    if (t !== null && t > latest) {
      return quarantine(staged, "future_timestamp", name, `${name} is more than ${tolerance / 3_600_000} h after receipt`);
    }
  }
  return { msg: staged.msg, entity: staged.entity, outcome: { status: "valid", record: toRecord(plan, values) } };
}

/** The typed record: entity, id, customer_id and event time first, then the other fields by key, then enrich's columns. */
function toRecord(plan: Plan, v: Record<string, string | number | null>): ValidRecord {
  const def = plan.def;
  const r: Record<string, unknown> = {
    entity: def.name,
    id: v[def.id],
    customer_id: v[CUSTOMER_FIELD],
    eventAt: v[def.eventTime],
  };
  for (const { name, key } of plan.rest) r[key] = v[name];
  for (const { column, initial } of plan.derived) r[column] = initial;
  return r as unknown as ValidRecord;
}

function quarantine(staged: Staged, reason: Reason, field: string | null, detail: string): Staged {
  const outcome: Quarantine = { status: "quarantined", reason, field, detail };
  return { msg: staged.msg, entity: staged.entity, outcome };
}

/** The validate stage: {@link validateRecord} as a named value, for the composed hot path. */
export function validateStage(options: ValidateOptions): Stage<Staged, Staged> {
  return { id: "validate", apply: (staged) => validateRecord(staged, options) };
}

/** Pipeable form of {@link validateRecord}, derived from the same stage. */
export function validate(options: ValidateOptions): OperatorFunction<Staged, Staged> {
  return toOperator(validateStage(options));
}

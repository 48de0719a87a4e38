/**
 * The feature registry: every feature tributary serves, declared once as data. The built-in
 * features are described here (name, type, unit, description, definition) and their order is the
 * output's column order; custom features are declared in the config (`features.custom`) with an
 * aggregation that merges in any order, so they stay exact whatever the arrival order or lateness.
 * Gold's custom buckets, the in-memory merge, the partial-day reads from silver, `features`
 * output, `/features/<id>` and `features --describe` all derive from these values.
 */
import { createHash } from "node:crypto";

/** How a feature's value reads. */
export type FeatureType = "text" | "integer" | "decimal" | "money" | "timestamp";

/** What `features --describe` prints for a feature, and the README's feature table. */
export interface FeatureDescription {
  readonly name: string;
  readonly type: FeatureType;
  /** Unit of the value, or null (counts, text). */
  readonly unit: string | null;
  readonly description: string;
  /** How it is computed, in words. */
  readonly definition: string;
  /** Null when the feature can be empty (documented nulls); never for counts. */
  readonly nullable: boolean;
}

const b = (name: string, type: FeatureType, unit: string | null, nullable: boolean, description: string, definition: string): FeatureDescription => ({
  name,
  type,
  unit,
  nullable,
  description,
  definition,
});

/** The built-in features, in output order. Their names and order are the CSV header. */
export const BUILTIN_FEATURES: readonly FeatureDescription[] = [
  b("customer_id", "text", null, false, "the customer", "the customer_id of the records"),
  b("customer_segment", "text", null, false, "the customer's segment", "from the latest profile (stream order); `unknown` when there is none"),
  b("purchase_frequency", "integer", null, false, "number of purchases", "count of distinct transactions"),
  b("total_spend", "money", "base currency", false, "lifetime spend", "sum of amount_base, rounded to cents"),
  b("avg_transaction_value", "money", "base currency", true, "mean purchase", "total_spend / purchase_frequency; empty when 0"),
  b("first_transaction_at", "timestamp", "ISO-8601 UTC", true, "first purchase", "min of transaction_date; empty when none"),
  b("last_transaction_at", "timestamp", "ISO-8601 UTC", true, "latest purchase", "max of transaction_date; empty when none"),
  b("recency_days", "decimal", "days", true, "days since the latest purchase", "(T − last_transaction_at) in days, 6 decimals; empty when none"),
  b("transactions_last_30_days", "integer", null, false, "recent purchases", "count of transactions with event time in [T − 30 days, T)"),
  b("spend_last_30_days", "money", "base currency", false, "recent spend", "sum of amount_base with event time in [T − 30 days, T), rounded to cents"),
  b("session_count", "integer", null, false, "number of sessions", "count of distinct sessions"),
  b("avg_session_duration_seconds", "decimal", "seconds", true, "mean session length", "mean of (session_end − session_start), 3 decimals; empty when none"),
  b("interaction_count", "integer", null, false, "number of interactions", "count of distinct interactions"),
  b("event_count", "integer", null, false, "number of events", "count of distinct events"),
  b("days_since_registration", "decimal", "days", true, "customer age", "(T − registration_date) in days, 6 decimals; empty when unknown or not before T"),
];

/** Aggregations that merge in any order. `mean` is a sum divided by a count. */
export const AGGREGATES = ["count", "sum", "min", "max", "mean"] as const;
export type Aggregate = (typeof AGGREGATES)[number];

/**
 * What a custom feature's value is made of. `money` is summed exactly in millionths; `duration`
 * and `time` in milliseconds. `category` fields can only filter (`where`).
 */
export type FieldKind = "money" | "duration" | "time" | "category";

/** A field a custom feature can aggregate or filter on, and where silver keeps it. */
export interface SourceField {
  readonly kind: FieldKind;
  /** The SQL expression over the entity's silver table. */
  readonly sql: string;
  /** The same value from a validated, enriched record (see `ValidRecord`). */
  readonly value: (r: Record<string, unknown>) => number | string;
}

/** An entity custom features can aggregate: its silver table, event time, and fields. */
export interface SourceEntity {
  readonly table: string;
  /** The silver column holding the event time (epoch ms), which windows and days follow. */
  readonly eventTime: string;
  readonly fields: Readonly<Record<string, SourceField>>;
}

const f = (kind: FieldKind, sql: string, value: (r: Record<string, unknown>) => number | string): SourceField => ({ kind, sql, value });

/** The event entities, as custom features see them. Field names are the data contract's. */
export const FEATURE_SOURCES: Readonly<Record<string, SourceEntity>> = {
  transactions: {
    table: "transactions",
    eventTime: "transaction_at",
    fields: {
      amount: f("money", "amount", (r) => r.amount as number),
      amount_base: f("money", "amount_base", (r) => r.amount_base as number),
      transaction_date: f("time", "transaction_at", (r) => r.eventAt as number),
      currency: f("category", "currency", (r) => r.currency as string),
      customer_segment: f("category", "customer_segment", (r) => r.customer_segment as string),
    },
  },
  sessions: {
    table: "sessions",
    eventTime: "session_start_at",
    fields: {
      session_start: f("time", "session_start_at", (r) => r.eventAt as number),
      session_end: f("time", "session_end_at", (r) => r.session_end_at as number),
      duration: f("duration", "(session_end_at - session_start_at)", (r) => (r.session_end_at as number) - (r.eventAt as number)),
      device_type: f("category", "device_type", (r) => r.device_type as string),
    },
  },
  interactions: {
    table: "interactions",
    eventTime: "interaction_at",
    fields: {
      interaction_date: f("time", "interaction_at", (r) => r.eventAt as number),
      interaction_type: f("category", "interaction_type", (r) => r.interaction_type as string),
    },
  },
  events: {
    table: "events",
    eventTime: "event_at",
    fields: {
      event_timestamp: f("time", "event_at", (r) => r.eventAt as number),
      event_type: f("category", "event_type", (r) => r.event_type as string),
    },
  },
};

/** A custom feature as the config declares it (`features.custom[]`). */
export interface CustomFeatureInput {
  readonly name: string;
  readonly from: string;
  readonly aggregate: Aggregate;
  readonly field?: string;
  readonly where?: Readonly<Record<string, string>>;
  /** Trailing window in whole days; absent for the lifetime. */
  readonly windowDays?: number;
  readonly description?: string;
}

/** A custom feature ready to compute: its definition, resolved fields, and a hash of both. */
export interface CustomFeature extends CustomFeatureInput {
  /** sha256 of the definition: gold records it, so a changed definition is never served stale. */
  readonly hash: string;
}

/** How a stored sum becomes the value (money in millionths, durations and times in ms). */
export function storedUnits(kind: FieldKind): number {
  return kind === "money" ? 1_000_000 : 1;
}

/** The field a feature aggregates (null for `count`). */
export function fieldOf(feature: CustomFeatureInput): SourceField | null {
  return feature.field === undefined ? null : FEATURE_SOURCES[feature.from]!.fields[feature.field]!;
}

/** The stable hash of a definition (its computing keys only, not its description). */
export function definitionHash(d: CustomFeatureInput): string {
  const where = d.where ? Object.keys(d.where).sort().map((k) => [k, d.where![k]]) : [];
  const canonical = JSON.stringify([d.name, d.from, d.aggregate, d.field ?? null, where, d.windowDays ?? null]);
  return createHash("sha256").update(canonical).digest("hex").slice(0, 16);
}

/**
 * Checks custom definitions against the sources and the built-in names. Returns each problem as
 * `[path, message]` (path relative to `features.custom`), so config errors can name the key.
 */
export function checkCustomFeatures(defs: readonly CustomFeatureInput[]): [path: (string | number)[], message: string][] {
  const problems: [(string | number)[], string][] = [];
  const names = new Set(BUILTIN_FEATURES.map((x) => x.name));
  defs.forEach((d, i) => {
    if (names.has(d.name)) problems.push([[i, "name"], `"${d.name}" is already a feature name`]);
    names.add(d.name);
    const source = Object.hasOwn(FEATURE_SOURCES, d.from) ? FEATURE_SOURCES[d.from] : undefined;
    if (!source) {
      problems.push([[i, "from"], `unknown entity "${d.from}"; expected one of ${Object.keys(FEATURE_SOURCES).join(", ")}`]);
      return;
    }
    const fields = Object.keys(source.fields);
    const has = (name: string) => Object.hasOwn(source.fields, name);
    if (d.aggregate === "count") {
      if (d.field !== undefined) problems.push([[i, "field"], `count counts records and takes no field; filter with where`]);
    } else if (d.field === undefined) {
      problems.push([[i, "field"], `aggregate ${d.aggregate} needs a field`]);
    } else {
      const field = has(d.field) ? source.fields[d.field] : undefined;
      if (!field) problems.push([[i, "field"], `unknown field "${d.field}" of ${d.from}; expected one of ${fields.join(", ")}`]);
      else if (field.kind === "category") problems.push([[i, "field"], `${d.field} is categorical: it can filter (where), not be aggregated with ${d.aggregate}`]);
      else if (field.kind === "time" && (d.aggregate === "sum" || d.aggregate === "mean")) {
        problems.push([[i, "aggregate"], `${d.aggregate} of a time (${d.field}) means nothing; use min or max`]);
      }
    }
    for (const [k, v] of Object.entries(d.where ?? {})) {
      const field = has(k) ? source.fields[k] : undefined;
      if (!field) problems.push([[i, "where", k], `unknown field "${k}" of ${d.from}; expected one of ${fields.join(", ")}`]);
      else if (field.kind !== "category") problems.push([[i, "where", k], `where filters by equality on categorical fields (${fields.filter((x) => source.fields[x]!.kind === "category").join(", ")})`]);
      else if (typeof v !== "string" || v.trim() === "") problems.push([[i, "where", k], `expected a non-empty string`]);
    }
  });
  return problems;
}

/** The custom features of a parsed config (`features.custom`, windows in ms), ready to compute. */
export function customFeaturesOf(
  defs: readonly { name: string; from: string; aggregate: Aggregate; field?: string; where?: Record<string, string>; window?: number; description?: string }[],
): CustomFeature[] {
  return compileCustomFeatures(
    defs.map(({ window, ...d }) => (window === undefined ? d : { ...d, windowDays: window / 86_400_000 })),
  );
}

/** Resolves checked definitions into computable features. */
export function compileCustomFeatures(defs: readonly CustomFeatureInput[]): CustomFeature[] {
  return defs.map((d) => ({ ...d, hash: definitionHash(d) }));
}

/** How a custom feature's value reads (`features --describe`). */
export function describeCustom(d: CustomFeatureInput): FeatureDescription {
  const field = fieldOf(d);
  const kind = field?.kind;
  const type: FeatureType =
    d.aggregate === "count" ? "integer" : kind === "money" ? "money" : kind === "time" ? "timestamp" : "decimal";
  const unit = d.aggregate === "count" ? null : kind === "money" ? "base currency" : kind === "time" ? "ISO-8601 UTC" : "seconds";
  const over = d.aggregate === "count" ? `${d.from}` : `${d.field} of ${d.from}`;
  const filter = d.where && Object.keys(d.where).length ? ` where ${Object.entries(d.where).map(([k, v]) => `${k} = ${v}`).join(" and ")}` : "";
  const window = d.windowDays === undefined ? "" : ` with event time in [T − ${d.windowDays} days, T)`;
  const rounding = type === "money" ? ", rounded to cents" : kind === "duration" ? ", in seconds (3 decimals)" : "";
  return {
    name: d.name,
    type,
    unit: d.field === "amount" && kind === "money" ? "transaction currency" : unit,
    nullable: d.aggregate !== "count" && d.aggregate !== "sum",
    description: d.description ?? `${d.aggregate} of ${over}${filter}${window}`,
    definition: `${d.aggregate}(${d.aggregate === "count" ? "*" : d.field}) from ${d.from}${filter}${window}${rounding}${d.aggregate === "count" || d.aggregate === "sum" ? "" : "; empty when none"}`,
  };
}

/** The README's feature table for the built-in features (a test keeps the README equal to it). */
export function featureTableMarkdown(features: readonly FeatureDescription[] = BUILTIN_FEATURES): string {
  const rows = features.map((x) => `| ${x.name} | ${x.type} | ${x.unit ?? ""} | ${x.definition} |`);
  return ["| column | type | unit | meaning |", "|---|---|---|---|", ...rows].join("\n");
}

/**
 * The feature registry: every feature tributary serves, declared once as data. The built-in
 * features are described here (name, type, unit, description, definition) and their order is the
 * output's column order; custom features are declared in the config (`features.custom`) with an
 * aggregation that merges in any order, so they stay exact whatever the arrival order or lateness.
 * Gold's custom buckets, the in-memory merge, the partial-day reads from silver, `features`
 * output, `/features/<id>` and `features --describe` all derive from these values.
 */
import { createHash } from "node:crypto";
import { BUILTIN_ENTITIES, columnOf, eventTimeColumn, fieldNamed, keyOf, type EntityDefinition } from "./entities.js";

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

/**
 * A field a custom feature can aggregate or filter on, and where silver keeps it. Plain data, so a
 * compiled feature crosses the commit thread as it is.
 */
export interface SourceField {
  readonly kind: FieldKind;
  /** The SQL expression over the entity's silver table. */
  readonly sql: string;
  /** The record property holding the value; for a duration, the end (minus `start`). */
  readonly key: string;
  /** For a duration: the record property of its start. */
  readonly start?: string;
}

/** An entity custom features can aggregate: its silver table, event time, and fields. */
export interface SourceEntity {
  readonly table: string;
  /** The silver column holding the event time (epoch ms), which windows and days follow. */
  readonly eventTime: string;
  readonly fields: Readonly<Record<string, SourceField>>;
}

/** A field's value in a validated, enriched record (see `ValidRecord`). */
export function fieldValue(field: SourceField, r: Record<string, unknown>): number | string {
  return field.start === undefined ? (r[field.key] as number | string) : (r[field.key] as number) - (r[field.start] as number);
}

/**
 * What custom features can read from an event entity, derived from its definition: timestamps as
 * times, amounts and base amounts as money, texts, currencies and segments as categories, and its
 * computed durations. Ids are neither aggregated nor filtered on.
 */
export function sourceOf(e: EntityDefinition): SourceEntity {
  const fields: Record<string, SourceField> = {};
  const KIND: Partial<Record<string, FieldKind>> = { timestamp: "time", amount: "money", text: "category", currency: "category" };
  for (const x of e.fields) {
    const kind = KIND[x.kind];
    if (kind !== undefined) fields[x.name] = { kind, sql: columnOf(x), key: keyOf(e, x) };
  }
  for (const d of e.derived ?? []) fields[d.column] = { kind: d.derive === "segment" ? "category" : "money", sql: d.column, key: d.column };
  for (const c of e.computed ?? []) {
    const end = fieldNamed(e, c.end)!;
    const start = fieldNamed(e, c.start)!;
    fields[c.name] = { kind: "duration", sql: `(${columnOf(end)} - ${columnOf(start)})`, key: keyOf(e, end), start: keyOf(e, start) };
  }
  return { table: e.name, eventTime: eventTimeColumn(e), fields };
}

/** The sources of a set of entities: every event entity (profiles are not aggregated). */
export function featureSources(entities: readonly EntityDefinition[]): Readonly<Record<string, SourceEntity>> {
  return Object.fromEntries(entities.filter((e) => e.keep === "first").map((e) => [e.name, sourceOf(e)]));
}

/** The built-in event entities, as custom features see them. Field names are the data contract's. */
export const FEATURE_SOURCES: Readonly<Record<string, SourceEntity>> = featureSources(BUILTIN_ENTITIES);

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

/** A custom feature ready to compute: its definition, resolved source, and a hash of both. */
export interface CustomFeature extends CustomFeatureInput {
  /** sha256 of the definition: gold records it, so a changed definition is never served stale. */
  readonly hash: string;
  /** Where its records are: the entity's silver table, event time and fields. */
  readonly source: SourceEntity;
}

/** How a stored sum becomes the value (money in millionths, durations and times in ms). */
export function storedUnits(kind: FieldKind): number {
  return kind === "money" ? 1_000_000 : 1;
}

/** The field a feature aggregates (null for `count`). */
export function fieldOf(feature: CustomFeature): SourceField | null {
  return feature.field === undefined ? null : feature.source.fields[feature.field]!;
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
export function checkCustomFeatures(
  defs: readonly CustomFeatureInput[],
  sources: Readonly<Record<string, SourceEntity>> = FEATURE_SOURCES,
): [path: (string | number)[], message: string][] {
  const problems: [(string | number)[], string][] = [];
  const names = new Set(BUILTIN_FEATURES.map((x) => x.name));
  defs.forEach((d, i) => {
    if (names.has(d.name)) problems.push([[i, "name"], `"${d.name}" is already a feature name`]);
    names.add(d.name);
    const source = Object.hasOwn(sources, d.from) ? sources[d.from] : undefined;
    if (!source) {
      problems.push([[i, "from"], `unknown entity "${d.from}"; expected one of ${Object.keys(sources).join(", ")}`]);
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
  entities: readonly EntityDefinition[] = BUILTIN_ENTITIES,
): CustomFeature[] {
  return compileCustomFeatures(
    defs.map(({ window, ...d }) => (window === undefined ? d : { ...d, windowDays: window / 86_400_000 })),
    entities,
  );
}

/**
 * Resolves definitions into computable features against the entities. Throws a TypeError naming
 * the first problem (the config reports them all, with their key paths, before this runs).
 */
export function compileCustomFeatures(defs: readonly CustomFeatureInput[], entities: readonly EntityDefinition[] = BUILTIN_ENTITIES): CustomFeature[] {
  const sources = entities === BUILTIN_ENTITIES ? FEATURE_SOURCES : featureSources(entities);
  const problems = checkCustomFeatures(defs, sources);
  if (problems.length > 0) {
    const [path, message] = problems[0]!;
    throw new TypeError(`features.custom${path.map((p) => (typeof p === "number" ? `[${p}]` : `.${p}`)).join("")}: ${message}`);
  }
  return defs.map((d) => ({ ...d, hash: definitionHash(d), source: sources[d.from]! }));
}

/** How a custom feature's value reads (`features --describe`). */
export function describeCustom(d: CustomFeature): FeatureDescription {
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

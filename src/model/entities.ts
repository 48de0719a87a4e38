/**
 * The entity registry: every entity tributary accepts, declared once as plain data. Each entity
 * names its fields (with kind, required or optional, and default), its id, its event time, and
 * how a record lands in silver (table, columns, the record key each column comes from). The
 * validator, silver's DDL, inserts and recovery reads, the JSON Schema (`tributary schema`), the
 * README's data contract table and the fields custom features can aggregate all derive from
 * these values. Definitions are data (no functions), so they cross the commit thread as they are.
 *
 * An embedder adds an entity by passing an {@link EntityDefinition} to `createTopology({ entities })`
 * (see the README's Library section): its records arrive on `tributary.<name>`, are validated
 * against its fields, deduplicated by id like the built-in events, and kept in a silver table of
 * its own, and custom features can aggregate them.
 */

/** How a field's value is read and checked (see the README's data contract). */
export type FieldKind = "id" | "text" | "timestamp" | "amount" | "currency";

/** One field of an entity, as producers send it. */
export interface EntityField {
  /** The name in the payload (and in the JSON Schema). */
  readonly name: string;
  readonly kind: FieldKind;
  /** Optional fields declare a default (possibly null) that applies when absent, null or blank. */
  readonly optional?: { readonly default: string | null };
  /** The silver column; defaults to the name. */
  readonly column?: string;
  /** The property of the validated record; defaults to the column. The id is always `id`, the event time `eventAt`. */
  readonly key?: string;
  /** For an amount: the field holding its currency, converted with `currency.rates`. */
  readonly currency?: string;
  /** This timestamp must not be before that one (`session_end` after `session_start`), else `invalid_range`. */
  readonly notBefore?: string;
}

/** A silver column that no producer sends: enrich sets it. */
export interface DerivedColumn {
  readonly column: string;
  /** `base_amount`: the amount field in `currency.base`; `segment`: the customer's segment at that point of the stream. */
  readonly derive: { readonly baseAmountOf: string } | "segment";
  /** The silver column it follows; absent, it goes after the fields. */
  readonly after?: string;
}

/** A value custom features can aggregate that is computed from two fields (a session's duration). */
export interface ComputedField {
  readonly name: string;
  readonly kind: "duration";
  /** `end − start`, both timestamp fields of the entity. */
  readonly end: string;
  readonly start: string;
}

export interface EntityDefinition {
  /** The entity's name: the subject's second token, the silver table, the metric label. Lower case. */
  readonly name: string;
  readonly description?: string;
  /** The field that identifies a record. */
  readonly id: string;
  /** The timestamp field windows and days follow. */
  readonly eventTime: string;
  /**
   * `first`: an event; the first record with an id wins and later ones are duplicates.
   * `latest`: a profile; the latest in stream order wins (customers).
   */
  readonly keep: "first" | "latest";
  /** In the order they are checked and documented: required first, then optional. */
  readonly fields: readonly EntityField[];
  readonly derived?: readonly DerivedColumn[];
  readonly computed?: readonly ComputedField[];
}

const req = (name: string, kind: FieldKind, more: Partial<EntityField> = {}): EntityField => ({ name, kind, ...more });
const opt = (name: string, kind: FieldKind, fallback: string | null, more: Partial<EntityField> = {}): EntityField => ({
  name,
  kind,
  optional: { default: fallback },
  ...more,
});

/** The five entities of the data contract, in the order they are documented. */
export const BUILTIN_ENTITIES: readonly EntityDefinition[] = [
  {
    name: "customers",
    description: "a customer profile",
    id: "customer_id",
    eventTime: "registration_date",
    keep: "latest",
    fields: [
      req("customer_id", "id"),
      opt("name", "text", null),
      opt("email", "text", null),
      opt("registration_date", "timestamp", null, { column: "registration_at" }),
      opt("customer_segment", "text", "unknown"),
    ],
  },
  {
    name: "transactions",
    description: "a purchase",
    id: "transaction_id",
    eventTime: "transaction_date",
    keep: "first",
    fields: [
      req("transaction_id", "id"),
      req("customer_id", "id"),
      req("amount", "amount", { currency: "currency" }),
      req("currency", "currency"),
      req("transaction_date", "timestamp", { column: "transaction_at" }),
    ],
    derived: [
      { column: "amount_base", derive: { baseAmountOf: "amount" }, after: "currency" },
      { column: "customer_segment", derive: "segment" },
    ],
  },
  {
    name: "interactions",
    description: "a contact with the customer",
    id: "interaction_id",
    eventTime: "interaction_date",
    keep: "first",
    fields: [
      req("interaction_id", "id"),
      req("customer_id", "id"),
      req("interaction_date", "timestamp", { column: "interaction_at" }),
      req("interaction_type", "text"),
    ],
  },
  {
    name: "events",
    description: "a product event",
    id: "event_id",
    eventTime: "event_timestamp",
    keep: "first",
    fields: [req("event_id", "id"), req("customer_id", "id"), req("event_type", "text"), req("event_timestamp", "timestamp", { column: "event_at" })],
  },
  {
    name: "sessions",
    description: "a visit",
    id: "session_id",
    eventTime: "session_start",
    keep: "first",
    fields: [
      req("session_id", "id"),
      req("customer_id", "id"),
      req("session_start", "timestamp", { column: "session_start_at" }),
      req("session_end", "timestamp", { column: "session_end_at", notBefore: "session_start" }),
      opt("device_type", "text", "unknown"),
    ],
    computed: [{ name: "duration", kind: "duration", end: "session_end", start: "session_start" }],
  },
];

/** The column a field is kept in. */
export const columnOf = (f: EntityField): string => f.column ?? f.name;

/**
 * The property of a validated record that holds a field: `id` for the entity's id (customers
 * keep `customer_id` too), `eventAt` for its event time, else the field's key or column.
 */
export function keyOf(entity: EntityDefinition, f: EntityField): string {
  if (f.name === "customer_id") return "customer_id";
  if (f.name === entity.id) return "id";
  if (f.name === entity.eventTime && entity.keep === "first") return "eventAt";
  return f.key ?? columnOf(f);
}

/** A silver column and where its value comes from in a validated record. */
export interface SilverColumn {
  readonly column: string;
  /** The record property. */
  readonly key: string;
  readonly sqlType: "TEXT" | "INTEGER" | "REAL";
  readonly notNull: boolean;
}

const SQL_TYPE: Readonly<Record<FieldKind, SilverColumn["sqlType"]>> = { id: "TEXT", text: "TEXT", timestamp: "INTEGER", amount: "REAL", currency: "TEXT" };

/** The entity's silver columns in table order (the id first; `bronze_seq` is added by silver). */
export function silverColumns(entity: EntityDefinition): SilverColumn[] {
  const derived = entity.derived ?? [];
  const out: SilverColumn[] = [];
  const derivedColumn = (d: DerivedColumn): SilverColumn => ({
    column: d.column,
    key: d.column,
    sqlType: d.derive === "segment" ? "TEXT" : "REAL",
    notNull: true,
  });
  for (const f of entity.fields) {
    const key = keyOf(entity, f);
    // The id is the primary key; a profile's id doubles as its customer_id.
    out.push({ column: columnOf(f), key: f.name === entity.id ? "id" : key, sqlType: SQL_TYPE[f.kind], notNull: f.optional === undefined || f.optional.default !== null });
    for (const d of derived) if (d.after === f.name) out.push(derivedColumn(d));
  }
  for (const d of derived) if (d.after === undefined) out.push(derivedColumn(d));
  return out;
}

/** A field by name, or undefined. */
export function fieldNamed(entity: EntityDefinition, name: string): EntityField | undefined {
  return entity.fields.find((f) => f.name === name);
}

/** The column holding the entity's event time. */
export function eventTimeColumn(entity: EntityDefinition): string {
  return columnOf(fieldNamed(entity, entity.eventTime)!);
}

/**
 * Silver's DDL for one entity: the table keyed by id (`WITHOUT ROWID`) and, for events, an index
 * by event time (partial-day reads and windows scan by it).
 */
export function silverTableSql(entity: EntityDefinition, { ifNotExists = false, availableAt = false } = {}): string {
  const cols = silverColumns(entity);
  const lines = cols.map((c, i) => `    ${c.column} ${c.sqlType}${i === 0 ? " PRIMARY KEY" : c.notNull ? " NOT NULL" : ""}`);
  lines.push("    bronze_seq INTEGER NOT NULL");
  // Silver's migration 2 added it to the built-in tables; an added entity's table has it from the start.
  if (availableAt) lines.push("    available_at INTEGER");
  const ine = ifNotExists ? "IF NOT EXISTS " : "";
  let sql = `  CREATE TABLE ${ine}${entity.name} (\n${lines.join(",\n")}\n  ) WITHOUT ROWID;\n`;
  if (entity.keep === "first") sql += `  CREATE INDEX ${ine}${entity.name}_by_time ON ${entity.name}(${eventTimeColumn(entity)});\n`;
  return sql;
}

/** The customer-id field every entity carries: records belong to a customer. */
export const CUSTOMER_FIELD = "customer_id";

const NAME = /^[a-z][a-z0-9_]{0,62}$/;
/** Silver's own tables: an entity may not take their names. */
const RESERVED_TABLES = new Set(["checkpoint", "quarantine", "duplicates", "accepted_counts", "customer_history", "pending_fill", "retention", "pruned_ids", "quarantine_pruned", "duplicates_pruned"]);
const KINDS: readonly FieldKind[] = ["id", "text", "timestamp", "amount", "currency"];

/**
 * Checks entity definitions (the built-in ones plus an embedder's). Returns each problem as
 * `[path, message]`, relative to the list, so errors can name the key.
 */
export function checkEntities(defs: readonly EntityDefinition[]): [path: (string | number)[], message: string][] {
  const problems: [(string | number)[], string][] = [];
  const seen = new Set<string>();
  defs.forEach((e, i) => {
    const at = (...p: (string | number)[]) => [i, ...p];
    if (typeof e.name !== "string" || !NAME.test(e.name)) {
      problems.push([at("name"), `entity name must be lower case letters, digits and _ (starting with a letter), got ${JSON.stringify(e.name)}`]);
      return;
    }
    if (seen.has(e.name)) problems.push([at("name"), `entity "${e.name}" is defined twice`]);
    if (RESERVED_TABLES.has(e.name) || e.name.endsWith("_iso")) problems.push([at("name"), `"${e.name}" is the name of one of silver's own tables or views`]);
    seen.add(e.name);
    if (e.keep !== "first" && e.keep !== "latest") problems.push([at("keep"), `keep must be "first" (events) or "latest" (profiles)`]);
    if (e.keep === "latest" && e.name !== "customers") problems.push([at("keep"), `only customers are profiles; an added entity keeps the first record per id ("first")`]);
    const names = new Set<string>();
    const columns = new Set<string>(["bronze_seq", "available_at"]);
    (e.fields ?? []).forEach((f, j) => {
      if (typeof f.name !== "string" || !NAME.test(f.name)) problems.push([at("fields", j, "name"), `field name must be lower case letters, digits and _, got ${JSON.stringify(f.name)}`]);
      if (names.has(f.name)) problems.push([at("fields", j, "name"), `field "${f.name}" is defined twice`]);
      names.add(f.name);
      if (!KINDS.includes(f.kind)) problems.push([at("fields", j, "kind"), `unknown kind "${String(f.kind)}"; expected one of ${KINDS.join(", ")}`]);
      const column = columnOf(f);
      if (!NAME.test(column)) problems.push([at("fields", j, "column"), `column must be lower case letters, digits and _, got ${JSON.stringify(column)}`]);
      if (columns.has(column)) problems.push([at("fields", j, "column"), `column "${column}" is used twice (bronze_seq and available_at are silver's)`]);
      if (f.name === CUSTOMER_FIELD && column !== CUSTOMER_FIELD) problems.push([at("fields", j, "column"), `the ${CUSTOMER_FIELD} field keeps its name as its column`]);
      columns.add(column);
    });
    const has = (name: string, kind?: FieldKind) => e.fields?.some((f) => f.name === name && (kind === undefined || f.kind === kind)) ?? false;
    if (!has(e.id, "id")) problems.push([at("id"), `id "${e.id}" must name a field of kind id`]);
    else if (fieldNamed(e, e.id)!.optional) problems.push([at("id"), `the id field "${e.id}" must be required`]);
    if (!has(CUSTOMER_FIELD, "id")) problems.push([at("fields"), `every entity needs a required ${CUSTOMER_FIELD} field of kind id: records belong to a customer`]);
    if (!has(e.eventTime, "timestamp")) problems.push([at("eventTime"), `eventTime "${e.eventTime}" must name a field of kind timestamp`]);
    else if (e.keep === "first" && fieldNamed(e, e.eventTime)!.optional) problems.push([at("eventTime"), `an event's time "${e.eventTime}" must be required`]);
    (e.fields ?? []).forEach((f, j) => {
      if (f.currency !== undefined && (f.kind !== "amount" || !has(f.currency, "currency"))) problems.push([at("fields", j, "currency"), `currency must be on an amount and name a currency field`]);
      if (f.kind === "amount" && f.currency === undefined) problems.push([at("fields", j, "currency"), `an amount needs its currency field (currency: <field>)`]);
      if (f.notBefore !== undefined && (f.kind !== "timestamp" || !has(f.notBefore, "timestamp"))) problems.push([at("fields", j, "notBefore"), `notBefore must be on a timestamp and name another timestamp field`]);
    });
    (e.derived ?? []).forEach((d, j) => {
      if (typeof d.column !== "string" || !NAME.test(d.column) || columns.has(d.column)) problems.push([at("derived", j, "column"), `a derived column needs a new lower-case name`]);
      columns.add(d.column);
      if (d.derive !== "segment") {
        const amount = fieldNamed(e, d.derive?.baseAmountOf ?? "");
        if (!amount || amount.kind !== "amount") problems.push([at("derived", j, "derive"), `baseAmountOf must name an amount field`]);
      }
      if (d.after !== undefined && !has(d.after)) problems.push([at("derived", j, "after"), `after must name a field of ${e.name}`]);
    });
    (e.computed ?? []).forEach((c, j) => {
      if (!has(c.end, "timestamp") || !has(c.start, "timestamp")) problems.push([at("computed", j), `a duration's end and start must name timestamp fields`]);
    });
  });
  return problems;
}

/**
 * The entities a topology accepts: the built-in ones, then an embedder's. Throws a TypeError
 * naming the first problem, for library callers.
 */
export function resolveEntities(extra: readonly EntityDefinition[] = []): readonly EntityDefinition[] {
  if (extra.length === 0) return BUILTIN_ENTITIES;
  const all = [...BUILTIN_ENTITIES, ...extra];
  const problems = checkEntities(all);
  if (problems.length > 0) {
    const [[i, ...path], message] = problems[0]!;
    throw new TypeError(`entities[${(i as number) - BUILTIN_ENTITIES.length}]${path.map((p) => (typeof p === "number" ? `[${p}]` : `.${p}`)).join("")}: ${message}`);
  }
  return all;
}

/** The entity named `name`, or undefined. */
export function entityNamed(entities: readonly EntityDefinition[], name: string): EntityDefinition | undefined {
  for (const e of entities) if (e.name === name) return e;
  return undefined;
}

/** The README's data contract table (a test keeps the README equal to it). */
export function contractTableMarkdown(entities: readonly EntityDefinition[] = BUILTIN_ENTITIES): string {
  const rows = entities.map((e) => {
    const required = e.fields.filter((f) => !f.optional).map((f) => f.name);
    const optional = e.fields
      .filter((f) => f.optional)
      .map((f) => (f.optional!.default === null ? f.name : `${f.name} (→ \`${f.optional!.default}\`)`));
    return `| ${e.name} | ${required.join(", ")} | ${optional.length ? optional.join(", ") : "—"} | ${e.eventTime} |`;
  });
  return ["| entity | required fields | optional fields (null → default) | event time |", "|---|---|---|---|", ...rows].join("\n");
}

/** The README's table of silver columns per entity (a test keeps the README equal to it). */
export function silverTableMarkdown(entities: readonly EntityDefinition[] = BUILTIN_ENTITIES): string {
  const rows = entities.map((e) => `| ${e.name} | ${silverColumns(e).map((c) => c.column).join(", ")}, bronze_seq, available_at | ${e.keep === "first" ? "first record per id" : "latest in stream order"} |`);
  return ["| silver table | columns | keeps |", "|---|---|---|", ...rows].join("\n");
}

/**
 * Silver: one typed table per entity keyed by its id, a `quarantine` table, a `duplicates` table,
 * and per-entity accepted counts, all written in one transaction per batch together with the
 * bronze position silver has applied.
 */
import type { Statement } from "better-sqlite3";
import type { Accepted, Staged, ValidRecord } from "../types.js";
import {
  BUILTIN_ENTITIES,
  CUSTOMER_FIELD,
  columnOf,
  eventTimeColumn,
  fieldNamed,
  silverColumns,
  silverTableSql,
  type EntityDefinition,
} from "../model/entities.js";
import type { SilverCommit } from "../operators/aggregate.js";
import { existsSync } from "node:fs";
import { CHECKPOINT_TABLE, layerPath, openLayer, readPosition, type Database, type StorageOptions } from "./database.js";
import { CheckpointError } from "../errors.js";

export const SILVER_MIGRATIONS: readonly string[] = [
  `
  ${CHECKPOINT_TABLE}
${BUILTIN_ENTITIES.map((e) => silverTableSql(e)).join("")}  CREATE TABLE quarantine (
    bronze_seq INTEGER PRIMARY KEY,
    entity TEXT NOT NULL,
    subject TEXT NOT NULL,
    reason TEXT NOT NULL,
    field TEXT,
    detail TEXT NOT NULL,
    received_at INTEGER NOT NULL
  );
  CREATE INDEX quarantine_by_reason ON quarantine(reason);
  CREATE TABLE duplicates (
    bronze_seq INTEGER PRIMARY KEY,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL
  );
  CREATE TABLE accepted_counts (
    entity TEXT PRIMARY KEY,
    n INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
  // 2: when each record became available (the broker's stored time, or when a file was ingested),
  // and every customer profile in stream order, for point-in-time training sets. Existing rows get
  // their availability from bronze when silver opens (pending_fill); history starts from each
  // customer's current profile.
  `
  ${BUILTIN_ENTITIES.map((e) => `ALTER TABLE ${e.name} ADD COLUMN available_at INTEGER;`).join("\n  ")}
  CREATE TABLE customer_history (
    bronze_seq INTEGER PRIMARY KEY,
    customer_id TEXT NOT NULL,
    available_at INTEGER,
    customer_segment TEXT NOT NULL,
    registration_at INTEGER
  );
  CREATE INDEX customer_history_by_customer ON customer_history(customer_id, bronze_seq);
  INSERT INTO customer_history (bronze_seq, customer_id, customer_segment, registration_at)
    SELECT bronze_seq, customer_id, customer_segment, registration_at FROM customers;
  CREATE TABLE pending_fill (what TEXT PRIMARY KEY) WITHOUT ROWID;
  INSERT INTO pending_fill (what) SELECT 'available_at' WHERE EXISTS (SELECT 1 FROM customers)
    ${BUILTIN_ENTITIES.filter((e) => e.name !== "customers").map((e) => `OR EXISTS (SELECT 1 FROM ${e.name})`).join(" ")};
  `,
  // 3: views for people who read silver with `sqlite3`: every entity table, the profile history and
  // the quarantine as `<table>_iso`, with times as ISO-8601 text. A view is fixed when created, so
  // a later change to a built-in entity's columns must recreate its view in a migration of its own.
  `
${[
  ...BUILTIN_ENTITIES.map((e) => entityIsoViewSql(e)),
  isoViewSql("customer_history", [["bronze_seq"], ["customer_id"], ["available_at", true], ["customer_segment"], ["registration_at", true]]),
  isoViewSql("quarantine", [["bronze_seq"], ["entity"], ["subject"], ["reason"], ["field"], ["detail"], ["received_at", true]]),
].join("")}  `,
];

/** SQL turning an epoch-ms column into ISO-8601 UTC text with milliseconds, as `tributary features` prints times. */
export function isoTimeSql(column: string): string {
  return `strftime('%Y-%m-%dT%H:%M:%fZ', ${column} / 1000.0, 'unixepoch')`;
}

/**
 * A view `<table>_iso` of `table` with the same columns in the same order, those marked as times
 * (epoch ms in the table) as ISO-8601 text under the same names.
 */
function isoViewSql(table: string, columns: readonly (readonly [column: string, time?: boolean])[], { ifNotExists = false } = {}): string {
  const select = columns.map(([c, time]) => (time ? `${isoTimeSql(c)} AS ${c}` : c)).join(",\n      ");
  return `  CREATE VIEW ${ifNotExists ? "IF NOT EXISTS " : ""}${table}_iso AS\n    SELECT ${select}\n    FROM ${table};\n`;
}

/** The `<entity>_iso` view of an entity's silver table: its timestamp fields and `available_at` as ISO-8601 text. */
export function entityIsoViewSql(entity: EntityDefinition, options: { ifNotExists?: boolean } = {}): string {
  const times = new Set(entity.fields.filter((f) => f.kind === "timestamp").map(columnOf));
  const columns = silverColumns(entity).map((c) => [c.column, times.has(c.column)] as const);
  return isoViewSql(entity.name, [...columns, ["bronze_seq"], ["available_at", true]], options);
}

/** Binds a record's columns (by key) and the bronze sequence to a prepared insert, without building an array. */
function binder(stmt: Statement, keys: readonly string[]): (r: Record<string, unknown>, seq: number, at: number) => number {
  const [a, b, c, d, e, f, g, h] = keys as [string, string, string, string, string, string, string, string];
  switch (keys.length) {
    case 3:
      return (r, s, t) => stmt.run(r[a], r[b], r[c], s, t).changes;
    case 4:
      return (r, s, t) => stmt.run(r[a], r[b], r[c], r[d], s, t).changes;
    case 5:
      return (r, s, t) => stmt.run(r[a], r[b], r[c], r[d], r[e], s, t).changes;
    case 6:
      return (r, s, t) => stmt.run(r[a], r[b], r[c], r[d], r[e], r[f], s, t).changes;
    case 7:
      return (r, s, t) => stmt.run(r[a], r[b], r[c], r[d], r[e], r[f], r[g], s, t).changes;
    case 8:
      return (r, s, t) => stmt.run(r[a], r[b], r[c], r[d], r[e], r[f], r[g], r[h], s, t).changes;
    default:
      return (r, s, t) => stmt.run(...keys.map((k) => r[k]), s, t).changes;
  }
}

/** How one entity is written to and read back from silver, compiled from its definition. */
interface EntityTable {
  readonly def: EntityDefinition;
  /** Writes a record; returns the rows changed (0 when an event's id is already there). */
  readonly write: (r: Record<string, unknown>, bronzeSeq: number, availableAt: number) => number;
  /** Reads accepted records with bronze_seq in (after, upTo]. */
  readonly select: Statement;
  readonly toRecord: (row: Record<string, unknown>) => ValidRecord;
}

function entityTable(db: Database, def: EntityDefinition): EntityTable {
  const cols = silverColumns(def);
  const names = cols.map((c) => c.column);
  const id = names[0]!;
  const insert = `INSERT INTO ${def.name} (${names.join(", ")}, bronze_seq, available_at) VALUES (${names.map(() => "?").join(", ")}, ?, ?)`;
  const sql =
    def.keep === "first"
      ? `${insert} ON CONFLICT DO NOTHING`
      : // A profile: the latest in stream order wins, whatever order silver applies them in.
        `${insert} ON CONFLICT (${id}) DO UPDATE SET ${[...names.slice(1), "bronze_seq", "available_at"].map((n) => `${n} = excluded.${n}`).join(", ")}
         WHERE excluded.bronze_seq > ${def.name}.bronze_seq`;
  const write = binder(db.prepare(sql), cols.map((c) => c.key));
  const customerColumn = columnOf(fieldNamed(def, CUSTOMER_FIELD)!);
  const timeColumn = eventTimeColumn(def);
  const rest = cols.filter((c) => c.key !== "id" && c.key !== "customer_id" && c.key !== "eventAt");
  return {
    def,
    write: def.keep === "first" ? write : (r, s, t) => (write(r, s, t), 1),
    select: db.prepare(`SELECT ${names.join(", ")}, bronze_seq FROM ${def.name} WHERE bronze_seq > ? AND bronze_seq <= ?`),
    toRecord: (row) => {
      const r: Record<string, unknown> = { entity: def.name, id: row[id], customer_id: row[customerColumn], eventAt: row[timeColumn] };
      for (const c of rest) r[c.key] = row[c.column];
      return r as unknown as ValidRecord;
    },
  };
}

/**
 * Gives rows written before silver kept availability times their time from bronze (the broker's
 * stored time, else the receive time), in chunks, once: `pending_fill` says whether it is due.
 * A data dir whose bronze is gone keeps nulls, which training sets read as "available now".
 */
function fillAvailability(db: Database, dataDir: string): void {
  const due = db.prepare("SELECT count(*) FROM pending_fill WHERE what = 'available_at'").pluck().get() as number;
  if (!due) return;
  const bronze = layerPath(dataDir, "bronze");
  if (existsSync(bronze)) {
    db.prepare("ATTACH DATABASE ? AS bronze_src").run(bronze);
    try {
      for (const [table, key] of [...BUILTIN_ENTITIES.map((e) => [e.name, silverColumns(e)[0]!.column] as const), ["customer_history", "bronze_seq"] as const]) {
        // Key ranges of 50,000 rows, each its own transaction: a kill mid-way resumes at the next start.
        const next = db.prepare(`SELECT max(${key}) FROM (SELECT ${key} FROM ${table} WHERE ${key} > ? ORDER BY ${key} LIMIT 50000)`).pluck();
        const fill = db.prepare(
          `UPDATE ${table} SET available_at = (SELECT coalesce(m.published_at, m.received_at) FROM bronze_src.messages m WHERE m.seq = ${table}.bronze_seq)
           WHERE ${key} > ? AND ${key} <= ? AND available_at IS NULL`,
        );
        let from: string | number = key === "bronze_seq" ? -1 : "";
        for (let to = next.get(from) as string | number | null; to !== null; from = to, to = next.get(from) as string | number | null) fill.run(from, to);
      }
    } finally {
      db.prepare("DETACH DATABASE bronze_src").run();
    }
  }
  db.prepare("DELETE FROM pending_fill WHERE what = 'available_at'").run();
}

/** A staged record together with the bronze sequence it was committed under. */
export interface Committed {
  readonly staged: Staged;
  readonly bronzeSeq: number;
}

/** What one silver commit did: the accepted records (for gold) and what it turned away. */
export interface SilverResult extends SilverCommit {
  readonly duplicates: ReadonlyMap<string, number>;
  /** Keyed `<entity>|<reason>` (entity as the subject named it, `unknown` when not ours). */
  readonly quarantined: ReadonlyMap<string, number>;
}

/** The silver layer's file and statements. */
export class SilverStore {
  readonly db: Database;
  private readonly tables: ReadonlyMap<string, EntityTable>;
  private readonly insertQuarantine: Statement;
  private readonly insertDuplicate: Statement;
  private readonly insertHistory: Statement;
  private readonly addCount: Statement;
  private readonly setPosition: Statement;
  private readonly selectSegment: Statement;
  private readonly applyTx: (items: readonly Committed[], position: number) => SilverResult;

  /**
   * Opens (and migrates) silver. `entities` are the registry's: the built-in five, whose tables the
   * migrations create, then an embedder's, whose tables are created here when absent.
   */
  constructor(dataDir: string, storage: StorageOptions, entities: readonly EntityDefinition[] = BUILTIN_ENTITIES) {
    this.db = openLayer(dataDir, "silver", SILVER_MIGRATIONS, storage);
    const db = this.db;
    // By name: definitions reach the commit thread as copies.
    const added = entities.filter((e) => !BUILTIN_ENTITIES.some((b) => b.name === e.name));
    if (added.length > 0) {
      db.exec(added.map((e) => silverTableSql(e, { ifNotExists: true, availableAt: true }) + entityIsoViewSql(e, { ifNotExists: true })).join(""));
    }
    fillAvailability(db, dataDir);
    this.tables = new Map(entities.map((e) => [e.name, entityTable(db, e)]));
    const entityLabel = (entity: string): string => (this.tables.has(entity) ? entity : "unknown");
    this.insertQuarantine = db.prepare(
      `INSERT INTO quarantine (bronze_seq, entity, subject, reason, field, detail, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
    this.insertHistory = db.prepare(
      `INSERT INTO customer_history (bronze_seq, customer_id, available_at, customer_segment, registration_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
    );
    this.insertDuplicate = db.prepare(`INSERT INTO duplicates (bronze_seq, entity, entity_id) VALUES (?, ?, ?)`);
    this.addCount = db.prepare(
      `INSERT INTO accepted_counts (entity, n) VALUES (?, ?) ON CONFLICT (entity) DO UPDATE SET n = n + excluded.n`,
    );
    this.setPosition = db.prepare(
      `INSERT INTO checkpoint (layer, position) VALUES ('silver', ?) ON CONFLICT (layer) DO UPDATE SET position = excluded.position`,
    );
    this.selectSegment = db.prepare("SELECT customer_segment FROM customers WHERE customer_id = ?").pluck();
    const tx = db.transaction((items: readonly Committed[], position: number): SilverResult => {
      const accepted: Accepted[] = [];
      const counts = new Map<string, number>();
      const duplicates = new Map<string, number>();
      const quarantined = new Map<string, number>();
      const bump = <K>(m: Map<K, number>, k: K) => m.set(k, (m.get(k) ?? 0) + 1);
      for (const { staged, bronzeSeq } of items) {
        const o = staged.outcome;
        switch (o.status) {
          case "quarantined":
            this.insertQuarantine.run(bronzeSeq, staged.entity, staged.msg.subject, o.reason, o.field, o.detail, staged.msg.receivedAt);
            bump(quarantined, `${entityLabel(staged.entity)}|${o.reason}`);
            break;
          case "duplicate":
          case "valid":
            // Silver's key decides in both cases: a window miss may be an id it has forgotten, and
            // a window hit may (very rarely) be a different id with the same 64-bit hash.
            // Available when the broker stored it (JetStream), else when tributary first received it.
            if (this.write(o.record, bronzeSeq, staged.msg.publishedAt ?? staged.msg.receivedAt)) {
              accepted.push({ bronzeSeq, record: o.record });
              bump(counts, o.record.entity);
            } else {
              this.insertDuplicate.run(bronzeSeq, o.record.entity, o.record.id);
              bump(duplicates, o.record.entity);
            }
            break;
          case "decoded":
            throw new CheckpointError(`bronze seq ${bronzeSeq} reached silver without validation (a topology bug)`);
        }
      }
      for (const [entity, n] of counts) this.addCount.run(entity, n);
      this.setPosition.run(position);
      return { position, accepted, duplicates, quarantined };
    });
    this.applyTx = (items, position) => tx.immediate(items, position);
  }

  /** Writes a valid record; returns false when its id is already in silver (a duplicate). */
  private write(r: ValidRecord, bronzeSeq: number, availableAt: number): boolean {
    const table = this.tables.get(r.entity);
    if (table === undefined) throw new CheckpointError(`silver has no table for entity ${r.entity} (a topology bug)`);
    if (r.entity === "customers") this.insertHistory.run(bronzeSeq, r.customer_id, availableAt, r.customer_segment, r.registration_at);
    return table.write(r as unknown as Record<string, unknown>, bronzeSeq, availableAt) === 1;
  }

  /**
   * Applies a batch in one transaction and records `position` (the highest bronze sequence of the
   * batch) as silver's checkpoint. Returns the records that were accepted, for gold.
   */
  apply(items: readonly Committed[], position: number): SilverResult {
    return this.applyTx(items, position);
  }

  /** The bronze position silver has applied. */
  position(): number {
    return readPosition(this.db, "silver");
  }

  /** The customer's current segment, or undefined when silver has no profile. */
  segmentOf(customerId: string): string | undefined {
    return this.selectSegment.get(customerId) as string | undefined;
  }

  /**
   * Accepted records with bronze sequence in (after, upTo], in bronze order: what gold must apply
   * to catch up after a crash between the silver and gold commits. It scans the tables (there is
   * no index on bronze_seq: it would cost every insert, and this runs only during recovery).
   */
  readAccepted(after: number, upTo: number): Accepted[] {
    const out: Accepted[] = [];
    for (const t of this.tables.values()) {
      for (const row of t.select.iterate(after, upTo) as Iterable<Record<string, unknown>>) {
        out.push({ bronzeSeq: row.bronze_seq as number, record: t.toRecord(row) });
      }
    }
    return out.sort((a, b) => a.bronzeSeq - b.bronzeSeq);
  }

  close(): void {
    this.db.close();
  }
}

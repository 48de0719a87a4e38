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
import { CheckpointError, SilverHorizonError } from "../errors.js";
import { DAY_MS, formatTimestamp } from "../timestamps.js";

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
  // 4: retention (retention.silver). Event records older than the horizon go once gold has applied
  // them; their ids stay in pruned_ids, so a later copy is still a duplicate. The horizon, the gold
  // position pruning read (floor) and the customer_history cursor only move forward; a record's
  // delete fails unless its id is kept and gold had applied it.
  `
  CREATE TABLE retention (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    horizon_day INTEGER,
    floor INTEGER NOT NULL,
    records INTEGER NOT NULL,
    history INTEGER NOT NULL,
    history_cursor INTEGER NOT NULL
  );
  INSERT INTO retention (id, horizon_day, floor, records, history, history_cursor) VALUES (1, NULL, 0, 0, 0, 0);
  CREATE TRIGGER retention_forward BEFORE UPDATE ON retention
    WHEN coalesce(NEW.horizon_day, -1e18) < coalesce(OLD.horizon_day, -1e18) OR NEW.floor < OLD.floor OR NEW.history_cursor < OLD.history_cursor
    BEGIN SELECT RAISE(ABORT, 'silver retention only moves forward'); END;
  CREATE TABLE pruned_ids (
    entity TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (entity, id)
  ) WITHOUT ROWID;
  CREATE TABLE quarantine_pruned (
    entity TEXT NOT NULL,
    reason TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (entity, reason)
  ) WITHOUT ROWID;
  CREATE TRIGGER customer_history_prune_guard BEFORE DELETE ON customer_history WHEN OLD.bronze_seq > (SELECT history_cursor FROM retention)
    BEGIN SELECT RAISE(ABORT, 'customer_history deletes only rows retention has reduced'); END;
${BUILTIN_ENTITIES.map((e) => pruneGuardSql(e)).join("")}  `,
  // 5: duplicates under retention. A duplicate's entry goes with its original (same id, the same
  // event time) and stays counted in duplicates_pruned; entries of copies that arrive after their
  // original was pruned are swept behind a cursor. Without this the table grew by every copy forever.
  `
  CREATE INDEX duplicates_by_id ON duplicates (entity, entity_id);
  CREATE TABLE duplicates_pruned (entity TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
  ALTER TABLE retention ADD COLUMN duplicates_cursor INTEGER NOT NULL DEFAULT 0;
  `,
];

/**
 * A trigger that refuses to delete an event record unless gold had applied it (its sequence is at
 * most retention's floor) and its id is in `pruned_ids`: whoever deletes, no id is forgotten.
 */
export function pruneGuardSql(entity: EntityDefinition, { ifNotExists = false } = {}): string {
  if (entity.keep !== "first") return "";
  const id = silverColumns(entity)[0]!.column;
  return `  CREATE TRIGGER ${ifNotExists ? "IF NOT EXISTS " : ""}${entity.name}_prune_guard BEFORE DELETE ON ${entity.name}
    WHEN OLD.bronze_seq > (SELECT floor FROM retention) OR NOT EXISTS (SELECT 1 FROM pruned_ids WHERE entity = '${entity.name}' AND id = OLD.${id})
    BEGIN SELECT RAISE(ABORT, 'silver deletes only records gold has applied, once their ids are kept'); END;
`;
}

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
  private readonly selectPruned: Statement;
  private readonly anyPruned: Statement;
  /** Whether retention has pruned any id yet (once true, it stays true). */
  private pruning = false;
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
      db.exec(
        added.map((e) => silverTableSql(e, { ifNotExists: true, availableAt: true }) + entityIsoViewSql(e, { ifNotExists: true }) + pruneGuardSql(e, { ifNotExists: true })).join(""),
      );
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
    this.selectPruned = db.prepare("SELECT 1 FROM pruned_ids WHERE entity = ? AND id = ?").pluck();
    this.anyPruned = db.prepare("SELECT EXISTS (SELECT 1 FROM pruned_ids)").pluck();
    const tx = db.transaction((items: readonly Committed[], position: number): SilverResult => {
      // Retention prunes on another connection; inside this write transaction its last commit is visible.
      this.pruning ||= this.anyPruned.get() === 1;
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
            // Silver's key (and the ids retention pruned) decides in both cases: a window miss may be
            // an id it has forgotten, and a window hit may (very rarely) be a different id with the
            // same 64-bit hash.
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

  /** Writes a valid record; returns false when its id is already in silver, or was and retention pruned it (a duplicate). */
  private write(r: ValidRecord, bronzeSeq: number, availableAt: number): boolean {
    const table = this.tables.get(r.entity);
    if (table === undefined) throw new CheckpointError(`silver has no table for entity ${r.entity} (a topology bug)`);
    if (this.pruning && table.def.keep === "first" && this.selectPruned.get(r.entity, r.id) !== undefined) return false;
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

  /** The entities silver keeps, in registry order. */
  get entities(): EntityDefinition[] {
    return [...this.tables.values()].map((t) => t.def);
  }

  /** The gold position retention last pruned under: records gold had applied up to it may be gone (0 when nothing was pruned). */
  retentionFloor(): number {
    return this.db.prepare("SELECT floor FROM retention").pluck().get() as number;
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

/** What one silver pruning step may delete. */
export interface SilverPruneBounds {
  /** The highest bronze sequence gold has applied: only records at or below it go. */
  readonly applied: number;
  /**
   * The horizon, a UTC day: event records whose event time is before its start go, quarantine
   * entries received before it, and customer_history rows available before it (all but each
   * customer's latest one).
   */
  readonly horizonDay: number;
  /** At most this many rows, of all kinds together. */
  readonly limit: number;
}

/** What one step deleted. */
export interface SilverPruned {
  readonly records: number;
  readonly quarantine: number;
  readonly history: number;
  /** Duplicate entries deleted (counted on in `duplicates_pruned`). */
  readonly duplicates: number;
  /** Duplicate entries the sweep looked at and kept (their original is not pruned): work, not deletes. */
  readonly swept: number;
}

interface PrunedTable {
  readonly entity: string;
  readonly due: Statement;
  readonly remove: Statement;
}

/**
 * Silver retention on one connection: each {@link prune} is one short transaction. Event records
 * move to `pruned_ids` (their id only) as they are deleted, so the dedupe that the primary key did
 * goes on. Profiles (`customers`) are current state and stay. `customer_history` keeps, for each
 * customer, the latest row available before the horizon, so the profile as of any instant after
 * the horizon is still known: rows are visited in stream order behind a cursor, and each row
 * available before the horizon replaces its customer's previous one.
 */
export class SilverPruner {
  private readonly tables: readonly PrunedTable[];
  private readonly keepId: Statement;
  private readonly oldestQuarantine: Statement;
  private readonly removeQuarantine: Statement;
  private readonly countQuarantine: Statement;
  private readonly nextHistory: Statement;
  private readonly removeHistory: Statement;
  private readonly state: Statement;
  private readonly advance: Statement;
  private readonly count: Statement;
  private readonly removeDuplicatesOf: Statement;
  private readonly nextDuplicates: Statement;
  private readonly removeDuplicate: Statement;
  private readonly countDuplicates: Statement;
  private readonly duplicatesCursor: Statement;
  private readonly advanceDuplicates: Statement;
  private readonly stepTx: (bounds: SilverPruneBounds) => SilverPruned;

  constructor(
    private readonly db: Database,
    entities: readonly EntityDefinition[] = BUILTIN_ENTITIES,
  ) {
    // As silver's writer does: a power cut may roll back the last batches, each whole.
    db.pragma("synchronous = NORMAL");
    const existing = new Set(db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[]);
    this.tables = entities
      .filter((e) => e.keep === "first" && existing.has(e.name))
      .map((e) => {
        const id = silverColumns(e)[0]!.column;
        const time = eventTimeColumn(e);
        return {
          entity: e.name,
          due: db.prepare(`SELECT ${id} FROM ${e.name} WHERE ${time} < ? AND bronze_seq <= ? ORDER BY ${time} LIMIT ?`).pluck(),
          remove: db.prepare(`DELETE FROM ${e.name} WHERE ${id} = ?`),
        };
      });
    this.keepId = db.prepare("INSERT INTO pruned_ids (entity, id) VALUES (?, ?) ON CONFLICT DO NOTHING");
    this.oldestQuarantine = db.prepare("SELECT bronze_seq, entity, reason, received_at FROM quarantine ORDER BY bronze_seq LIMIT ?").raw();
    this.removeQuarantine = db.prepare("DELETE FROM quarantine WHERE bronze_seq <= ?");
    this.countQuarantine = db.prepare(
      "INSERT INTO quarantine_pruned (entity, reason, n) VALUES (?, ?, ?) ON CONFLICT (entity, reason) DO UPDATE SET n = n + excluded.n",
    );
    this.nextHistory = db.prepare("SELECT bronze_seq, customer_id, available_at FROM customer_history WHERE bronze_seq > ? ORDER BY bronze_seq LIMIT ?").raw();
    this.removeHistory = db.prepare("DELETE FROM customer_history WHERE customer_id = ? AND bronze_seq < ? AND available_at < ?");
    this.state = db.prepare("SELECT history_cursor FROM retention").pluck();
    this.advance = db.prepare("UPDATE retention SET horizon_day = max(coalesce(horizon_day, ?), ?), floor = max(floor, ?), history_cursor = max(history_cursor, ?)");
    this.count = db.prepare("UPDATE retention SET records = records + ?, history = history + ?");
    this.removeDuplicatesOf = db.prepare("DELETE FROM duplicates WHERE entity = ? AND entity_id = ?");
    this.nextDuplicates = db
      .prepare(
        `SELECT d.bronze_seq, d.entity, EXISTS (SELECT 1 FROM pruned_ids p WHERE p.entity = d.entity AND p.id = d.entity_id)
         FROM duplicates d WHERE d.bronze_seq > ? ORDER BY d.bronze_seq LIMIT ?`,
      )
      .raw();
    this.removeDuplicate = db.prepare("DELETE FROM duplicates WHERE bronze_seq = ?");
    this.countDuplicates = db.prepare("INSERT INTO duplicates_pruned (entity, n) VALUES (?, ?) ON CONFLICT (entity) DO UPDATE SET n = n + excluded.n");
    this.duplicatesCursor = db.prepare("SELECT duplicates_cursor FROM retention").pluck();
    this.advanceDuplicates = db.prepare("UPDATE retention SET duplicates_cursor = max(duplicates_cursor, ?)");
    const tx = db.transaction((bounds: SilverPruneBounds) => this.step(bounds));
    this.stepTx = (bounds) => tx.immediate(bounds);
  }

  /** Deletes at most `bounds.limit` rows in one transaction; all zeros when nothing is due. */
  prune(bounds: SilverPruneBounds): SilverPruned {
    return this.stepTx(bounds);
  }

  private step({ applied, horizonDay, limit }: SilverPruneBounds): SilverPruned {
    const before = horizonDay * DAY_MS;
    let records = 0;
    const ids: [PrunedTable, unknown[]][] = [];
    for (const t of this.tables) {
      if (records >= limit) break;
      const due = t.due.all(before, applied, limit - records);
      if (due.length > 0) ids.push([t, due]);
      records += due.length;
    }

    const quarantined: [seq: number, entity: string, reason: string][] = [];
    if (records < limit) {
      // Iterated, so a round with nothing due reads one row, not a batch.
      for (const row of this.oldestQuarantine.iterate(limit - records) as Iterable<[number, string, string, number]>) {
        if (row[0] > applied || row[3] >= before) break;
        quarantined.push([row[0], row[1], row[2]]);
      }
    }

    // customer_history behind its cursor: each row available before the horizon replaces its customer's previous rows.
    const cursor = this.state.get() as number;
    let reach = cursor;
    const replacing: [customer: string, seq: number][] = [];
    if (records + quarantined.length < limit) {
      for (const [seq, customer, availableAt] of this.nextHistory.iterate(cursor, limit - records - quarantined.length) as Iterable<[number, string, number | null]>) {
        if (seq > applied || (availableAt !== null && availableAt >= before)) break;
        // A row with no availability (from before silver kept it) is never pruned, and replaces nothing.
        if (availableAt !== null) replacing.push([customer, seq]);
        reach = seq;
      }
    }
    // Duplicate entries behind their cursor whose original is pruned (copies that arrived after it
    // went). Those whose original is still here go with it, below.
    const dupCursor = this.duplicatesCursor.get() as number;
    let dupReach = dupCursor;
    const strays: [seq: number, entity: string][] = [];
    const room = limit - records - quarantined.length - replacing.length;
    let examined = 0;
    if (room > 0) {
      for (const [seq, entity, pruned] of this.nextDuplicates.iterate(dupCursor, room) as Iterable<[number, string, number]>) {
        if (pruned) strays.push([seq, entity]);
        dupReach = seq;
        examined++;
      }
    }
    if (ids.length === 0 && quarantined.length === 0 && reach === cursor && dupReach === dupCursor) return { records: 0, quarantine: 0, history: 0, duplicates: 0, swept: 0 };
    // The horizon, floor and cursor are recorded before the first delete, in the same transaction:
    // the delete guards read them, and no reader sees a record missing under an older horizon.

    this.advance.run(horizonDay, horizonDay, applied, reach);
    const duplicatesGone = new Map<string, number>();
    const gone = (entity: string, n: number) => n > 0 && duplicatesGone.set(entity, (duplicatesGone.get(entity) ?? 0) + n);
    for (const [t, due] of ids) {
      for (const id of due) {
        this.keepId.run(t.entity, id);
        t.remove.run(id);
        gone(t.entity, this.removeDuplicatesOf.run(t.entity, id).changes);
      }
    }
    for (const [seq, entity] of strays) gone(entity, this.removeDuplicate.run(seq).changes);
    if (dupReach !== dupCursor) this.advanceDuplicates.run(dupReach);
    let duplicates = 0;
    for (const [entity, n] of duplicatesGone) {
      this.countDuplicates.run(entity, n);
      duplicates += n;
    }
    if (quarantined.length > 0) {
      this.removeQuarantine.run(quarantined[quarantined.length - 1]![0]);
      const counts = new Map<string, [string, string, number]>();
      for (const [, entity, reason] of quarantined) {
        const k = `${entity}|${reason}`;
        const c = counts.get(k);
        if (c) c[2]++;
        else counts.set(k, [entity, reason, 1]);
      }
      for (const [entity, reason, n] of counts.values()) this.countQuarantine.run(entity, reason, n);
    }
    let history = 0;
    for (const [customer, seq] of replacing) history += this.removeHistory.run(customer, seq, before).changes;
    this.count.run(records, history);
    return { records, quarantine: quarantined.length, history, duplicates, swept: examined - strays.length };
  }
}

/** Each connection's statement reading the horizon, once its file has the retention table. */
const horizonStatements = new WeakMap<Database, Statement>();

/**
 * Silver's retention horizon: the start (epoch ms, a 00:00Z) of the day before which retention
 * has deleted records (event records by event time, quarantine entries by arrival, superseded
 * profile history by availability). Null when it has deleted none, or the file predates retention.
 * Anything computed from silver's records before it is incomplete; gold's daily buckets are not.
 *
 * @example
 * const h = silverHorizon(db); // 1771891200000 (2026-02-24T00:00:00.000Z), or null
 */
export function silverHorizon(db: Database): number | null {
  let read = horizonStatements.get(db);
  if (read === undefined) {
    if ((db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'retention'").pluck().get() as number) === 0) return null;
    horizonStatements.set(db, (read = db.prepare("SELECT horizon_day FROM retention").pluck()));
  }
  const day = read.get() as number | null;
  return day === null ? null : day * DAY_MS;
}

/** Each connection's statement reading the horizon once something under it was deleted. */
const prunedStatements = new WeakMap<Database, Statement>();

/**
 * {@link silverHorizon} once retention has deleted anything under it (records or profile
 * history): retention records the horizon before it deletes, and until the first delete commits
 * every record is still there. Null otherwise.
 */
export function prunedHorizon(db: Database): number | null {
  let read = prunedStatements.get(db);
  if (read === undefined) {
    if (silverHorizon(db) === null) return null;
    prunedStatements.set(db, (read = db.prepare("SELECT CASE WHEN records + history > 0 THEN horizon_day END FROM retention").pluck()));
  }
  const day = read.get() as number | null;
  return day === null ? null : day * DAY_MS;
}

/**
 * Refuses, with a {@link SilverHorizonError} naming the horizon, features as of `asOf` that needed silver's
 * records from before {@link silverHorizon}: their partial days (today up to T, the first day of
 * each window, `windowsMs` long) are read from silver. Whole days come from gold, so an instant at
 * 00:00Z (with whole-day windows) is always exact. Call it after reading silver: retention may
 * advance the horizon during the read, and it records the horizon before it deletes.
 */
export function checkSilverHorizon(db: Database, asOf: number, windowsMs: readonly number[]): void {
  let earliest = asOf % DAY_MS === 0 ? Number.POSITIVE_INFINITY : Math.floor(asOf / DAY_MS) * DAY_MS;
  for (const w of windowsMs) if ((asOf - w) % DAY_MS !== 0) earliest = Math.min(earliest, asOf - w);
  if (earliest === Number.POSITIVE_INFINITY) return;
  const horizon = prunedHorizon(db);
  if (horizon === null || earliest >= horizon) return;
  const exactFrom = horizon + Math.max(0, ...windowsMs);
  throw new SilverHorizonError(
    `features as of ${formatTimestamp(asOf)} need silver's records from ${formatTimestamp(earliest)}, but silver retention has deleted records before ${formatTimestamp(horizon)} (its horizon): ask for an instant at 00:00Z (whole days come from gold), or one from ${formatTimestamp(exactFrom)} on`,
  );
}

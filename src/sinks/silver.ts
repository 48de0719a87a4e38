/**
 * Silver: one typed table per entity keyed by its id, a `quarantine` table, a `duplicates` table,
 * and per-entity accepted counts, all written in one transaction per batch together with the
 * bronze position silver has applied.
 */
import type { Statement } from "better-sqlite3";
import { ENTITIES, type Accepted, type Entity, type Staged, type ValidRecord } from "../types.js";
import type { SilverCommit } from "../operators/aggregate.js";
import { CHECKPOINT_TABLE, openLayer, readPosition, type Database, type StorageOptions } from "./database.js";
import { CheckpointError } from "../errors.js";

export const SILVER_MIGRATIONS: readonly string[] = [
  `
  ${CHECKPOINT_TABLE}
  CREATE TABLE customers (
    customer_id TEXT PRIMARY KEY,
    name TEXT,
    email TEXT,
    registration_at INTEGER,
    customer_segment TEXT NOT NULL,
    bronze_seq INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE transactions (
    transaction_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    amount REAL NOT NULL,
    currency TEXT NOT NULL,
    amount_base REAL NOT NULL,
    transaction_at INTEGER NOT NULL,
    customer_segment TEXT NOT NULL,
    bronze_seq INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX transactions_by_time ON transactions(transaction_at);
  CREATE TABLE interactions (
    interaction_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    interaction_type TEXT NOT NULL,
    interaction_at INTEGER NOT NULL,
    bronze_seq INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX interactions_by_time ON interactions(interaction_at);
  CREATE TABLE events (
    event_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    event_at INTEGER NOT NULL,
    bronze_seq INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX events_by_time ON events(event_at);
  CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    session_start_at INTEGER NOT NULL,
    session_end_at INTEGER NOT NULL,
    device_type TEXT NOT NULL,
    bronze_seq INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX sessions_by_time ON sessions(session_start_at);
  CREATE TABLE quarantine (
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
];

const OURS: ReadonlySet<string> = new Set(ENTITIES);
/** The entity a quarantine count is kept under: ours, or `unknown` (bounded, like the metric label). */
const entityLabel = (entity: string): string => (OURS.has(entity) ? entity : "unknown");

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
  private readonly inserts: Record<Exclude<Entity, "customers">, Statement>;
  private readonly upsertCustomer: Statement;
  private readonly insertQuarantine: Statement;
  private readonly insertDuplicate: Statement;
  private readonly addCount: Statement;
  private readonly setPosition: Statement;
  private readonly selectSegment: Statement;
  private readonly applyTx: (items: readonly Committed[], position: number) => SilverResult;

  constructor(dataDir: string, storage: StorageOptions) {
    this.db = openLayer(dataDir, "silver", SILVER_MIGRATIONS, storage);
    const db = this.db;
    this.inserts = {
      transactions: db.prepare(
        `INSERT INTO transactions (transaction_id, customer_id, amount, currency, amount_base, transaction_at, customer_segment, bronze_seq)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      ),
      interactions: db.prepare(
        `INSERT INTO interactions (interaction_id, customer_id, interaction_type, interaction_at, bronze_seq)
         VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      ),
      events: db.prepare(
        `INSERT INTO events (event_id, customer_id, event_type, event_at, bronze_seq) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      ),
      sessions: db.prepare(
        `INSERT INTO sessions (session_id, customer_id, session_start_at, session_end_at, device_type, bronze_seq)
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      ),
    };
    this.upsertCustomer = db.prepare(
      `INSERT INTO customers (customer_id, name, email, registration_at, customer_segment, bronze_seq) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (customer_id) DO UPDATE SET name = excluded.name, email = excluded.email,
         registration_at = excluded.registration_at, customer_segment = excluded.customer_segment, bronze_seq = excluded.bronze_seq
       WHERE excluded.bronze_seq > customers.bronze_seq`,
    );
    this.insertQuarantine = db.prepare(
      `INSERT INTO quarantine (bronze_seq, entity, subject, reason, field, detail, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
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
            if (this.write(o.record, bronzeSeq)) {
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
  private write(r: ValidRecord, bronzeSeq: number): boolean {
    switch (r.entity) {
      case "customers":
        this.upsertCustomer.run(r.customer_id, r.name, r.email, r.registration_at, r.customer_segment, bronzeSeq);
        return true;
      case "transactions":
        return (
          this.inserts.transactions.run(r.id, r.customer_id, r.amount, r.currency, r.amount_base, r.eventAt, r.customer_segment, bronzeSeq)
            .changes === 1
        );
      case "interactions":
        return this.inserts.interactions.run(r.id, r.customer_id, r.interaction_type, r.eventAt, bronzeSeq).changes === 1;
      case "events":
        return this.inserts.events.run(r.id, r.customer_id, r.event_type, r.eventAt, bronzeSeq).changes === 1;
      case "sessions":
        return this.inserts.sessions.run(r.id, r.customer_id, r.eventAt, r.session_end_at, r.device_type, bronzeSeq).changes === 1;
    }
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
    const q = (sql: string) => this.db.prepare(sql).all(after, upTo) as Record<string, never>[];
    for (const r of q(`SELECT * FROM customers WHERE bronze_seq > ? AND bronze_seq <= ?`)) {
      out.push({
        bronzeSeq: r.bronze_seq,
        record: {
          entity: "customers",
          id: r.customer_id,
          customer_id: r.customer_id,
          eventAt: r.registration_at,
          name: r.name,
          email: r.email,
          registration_at: r.registration_at,
          customer_segment: r.customer_segment,
        },
      });
    }
    for (const r of q(`SELECT * FROM transactions WHERE bronze_seq > ? AND bronze_seq <= ?`)) {
      out.push({
        bronzeSeq: r.bronze_seq,
        record: {
          entity: "transactions",
          id: r.transaction_id,
          customer_id: r.customer_id,
          eventAt: r.transaction_at,
          amount: r.amount,
          currency: r.currency,
          amount_base: r.amount_base,
          customer_segment: r.customer_segment,
        },
      });
    }
    for (const r of q(`SELECT * FROM interactions WHERE bronze_seq > ? AND bronze_seq <= ?`)) {
      out.push({
        bronzeSeq: r.bronze_seq,
        record: { entity: "interactions", id: r.interaction_id, customer_id: r.customer_id, eventAt: r.interaction_at, interaction_type: r.interaction_type },
      });
    }
    for (const r of q(`SELECT * FROM events WHERE bronze_seq > ? AND bronze_seq <= ?`)) {
      out.push({
        bronzeSeq: r.bronze_seq,
        record: { entity: "events", id: r.event_id, customer_id: r.customer_id, eventAt: r.event_at, event_type: r.event_type },
      });
    }
    for (const r of q(`SELECT * FROM sessions WHERE bronze_seq > ? AND bronze_seq <= ?`)) {
      out.push({
        bronzeSeq: r.bronze_seq,
        record: {
          entity: "sessions",
          id: r.session_id,
          customer_id: r.customer_id,
          eventAt: r.session_start_at,
          session_end_at: r.session_end_at,
          device_type: r.device_type,
        },
      });
    }
    return out.sort((a, b) => a.bronzeSeq - b.bronzeSeq);
  }

  close(): void {
    this.db.close();
  }
}

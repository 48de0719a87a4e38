/**
 * Gold: per-customer daily buckets (from which any feature can be computed as of any time) and
 * the latest profile per customer, written in one transaction per batch together with gold's
 * bronze position. `customer_features` (lifetime totals) and `customer_features_current` are views
 * over them, so they are always exactly what the buckets say.
 */
import type { Statement } from "better-sqlite3";
import type { GoldDelta } from "../operators/aggregate.js";
import { CHECKPOINT_TABLE, openLayer, readPosition, type Database, type StorageOptions } from "./database.js";

/** `customer_features` in readable units; both schema versions create it the same way. */
const FEATURES_CURRENT_VIEW = `
  CREATE VIEW customer_features_current AS
    SELECT customer_id, customer_segment,
      purchase_frequency,
      round(total_spend_micros / 1e6, 2) AS total_spend,
      CASE WHEN purchase_frequency > 0 THEN round(total_spend_micros / 1e6 / purchase_frequency, 2) END AS avg_transaction_value,
      strftime('%Y-%m-%dT%H:%M:%fZ', first_transaction_at / 1000.0, 'unixepoch') AS first_transaction_at,
      strftime('%Y-%m-%dT%H:%M:%fZ', last_transaction_at / 1000.0, 'unixepoch') AS last_transaction_at,
      session_count,
      CASE WHEN session_count > 0 THEN round(session_ms / 1000.0 / session_count, 3) END AS avg_session_duration_seconds,
      interaction_count, event_count,
      strftime('%Y-%m-%dT%H:%M:%fZ', registration_at / 1000.0, 'unixepoch') AS registration_date
    FROM customer_features;`;

/** Money columns hold millionths of the base currency; time columns hold epoch milliseconds. */
export const GOLD_MIGRATIONS: readonly string[] = [
  `
  ${CHECKPOINT_TABLE}
  CREATE TABLE customer_daily (
    customer_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    tx_count INTEGER NOT NULL,
    tx_spend_micros INTEGER NOT NULL,
    tx_first_at INTEGER,
    tx_last_at INTEGER,
    session_count INTEGER NOT NULL,
    session_ms INTEGER NOT NULL,
    interaction_count INTEGER NOT NULL,
    event_count INTEGER NOT NULL,
    PRIMARY KEY (customer_id, day)
  ) WITHOUT ROWID;
  CREATE TABLE customer_profile (
    customer_id TEXT PRIMARY KEY,
    customer_segment TEXT NOT NULL,
    registration_at INTEGER,
    profile_seq INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE customer_features (
    customer_id TEXT PRIMARY KEY,
    customer_segment TEXT NOT NULL DEFAULT 'unknown',
    registration_at INTEGER,
    purchase_frequency INTEGER NOT NULL DEFAULT 0,
    total_spend_micros INTEGER NOT NULL DEFAULT 0,
    first_transaction_at INTEGER,
    last_transaction_at INTEGER,
    session_count INTEGER NOT NULL DEFAULT 0,
    session_ms INTEGER NOT NULL DEFAULT 0,
    interaction_count INTEGER NOT NULL DEFAULT 0,
    event_count INTEGER NOT NULL DEFAULT 0
  ) WITHOUT ROWID;
  ${FEATURES_CURRENT_VIEW}
  `,
  // v2: lifetime totals are derived from the buckets instead of upserted at every commit (that
  // upsert was a quarter of all SQLite time). The table held nothing the buckets do not.
  `
  DROP VIEW customer_features_current;
  DROP TABLE customer_features;
  CREATE VIEW customer_features AS
    WITH totals AS (
      SELECT customer_id,
        sum(tx_count) AS purchase_frequency,
        sum(tx_spend_micros) AS total_spend_micros,
        min(tx_first_at) AS first_transaction_at,
        max(tx_last_at) AS last_transaction_at,
        sum(session_count) AS session_count,
        sum(session_ms) AS session_ms,
        sum(interaction_count) AS interaction_count,
        sum(event_count) AS event_count
      FROM customer_daily GROUP BY customer_id
    ),
    ids AS (SELECT customer_id FROM customer_profile UNION SELECT customer_id FROM totals)
    SELECT ids.customer_id,
      coalesce(p.customer_segment, 'unknown') AS customer_segment,
      p.registration_at,
      coalesce(t.purchase_frequency, 0) AS purchase_frequency,
      coalesce(t.total_spend_micros, 0) AS total_spend_micros,
      t.first_transaction_at,
      t.last_transaction_at,
      coalesce(t.session_count, 0) AS session_count,
      coalesce(t.session_ms, 0) AS session_ms,
      coalesce(t.interaction_count, 0) AS interaction_count,
      coalesce(t.event_count, 0) AS event_count
    FROM ids LEFT JOIN totals t ON t.customer_id = ids.customer_id LEFT JOIN customer_profile p ON p.customer_id = ids.customer_id;
  ${FEATURES_CURRENT_VIEW}
  `,
  // v3: money and durations summed with total(), not sum(): sum() of integers raises "integer
  // overflow" past int64, so one customer with ~1,024 maximal (each valid) amounts made the view,
  // and `tributary status`, fail. total() is exact below 2^53 and finite beyond.
  `
  DROP VIEW customer_features_current;
  DROP VIEW customer_features;
  CREATE VIEW customer_features AS
    WITH totals AS (
      SELECT customer_id,
        sum(tx_count) AS purchase_frequency,
        total(tx_spend_micros) AS total_spend_micros,
        min(tx_first_at) AS first_transaction_at,
        max(tx_last_at) AS last_transaction_at,
        sum(session_count) AS session_count,
        total(session_ms) AS session_ms,
        sum(interaction_count) AS interaction_count,
        sum(event_count) AS event_count
      FROM customer_daily GROUP BY customer_id
    ),
    ids AS (SELECT customer_id FROM customer_profile UNION SELECT customer_id FROM totals)
    SELECT ids.customer_id,
      coalesce(p.customer_segment, 'unknown') AS customer_segment,
      p.registration_at,
      coalesce(t.purchase_frequency, 0) AS purchase_frequency,
      coalesce(t.total_spend_micros, 0) AS total_spend_micros,
      t.first_transaction_at,
      t.last_transaction_at,
      coalesce(t.session_count, 0) AS session_count,
      coalesce(t.session_ms, 0) AS session_ms,
      coalesce(t.interaction_count, 0) AS interaction_count,
      coalesce(t.event_count, 0) AS event_count
    FROM ids LEFT JOIN totals t ON t.customer_id = ids.customer_id LEFT JOIN customer_profile p ON p.customer_id = ids.customer_id;
  ${FEATURES_CURRENT_VIEW}
  `,
];

/** The gold layer's file and statements. */
export class GoldStore {
  readonly db: Database;
  private readonly upsertDay: Statement;
  private readonly upsertProfile: Statement;
  private readonly setPosition: Statement;
  private readonly applyTx: (delta: GoldDelta) => void;

  constructor(dataDir: string, storage: StorageOptions) {
    this.db = openLayer(dataDir, "gold", GOLD_MIGRATIONS, storage);
    const db = this.db;
    // min()/max() over coalesce() keeps NULL only when both sides are NULL.
    this.upsertDay = db.prepare(
      `INSERT INTO customer_daily (customer_id, day, tx_count, tx_spend_micros, tx_first_at, tx_last_at, session_count, session_ms, interaction_count, event_count)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (customer_id, day) DO UPDATE SET
         tx_count = tx_count + excluded.tx_count,
         tx_spend_micros = tx_spend_micros + excluded.tx_spend_micros,
         tx_first_at = min(coalesce(tx_first_at, excluded.tx_first_at), coalesce(excluded.tx_first_at, tx_first_at)),
         tx_last_at = max(coalesce(tx_last_at, excluded.tx_last_at), coalesce(excluded.tx_last_at, tx_last_at)),
         session_count = session_count + excluded.session_count,
         session_ms = session_ms + excluded.session_ms,
         interaction_count = interaction_count + excluded.interaction_count,
         event_count = event_count + excluded.event_count`,
    );
    this.upsertProfile = db.prepare(
      `INSERT INTO customer_profile (customer_id, customer_segment, registration_at, profile_seq) VALUES (?, ?, ?, ?)
       ON CONFLICT (customer_id) DO UPDATE SET customer_segment = excluded.customer_segment,
         registration_at = excluded.registration_at, profile_seq = excluded.profile_seq
       WHERE excluded.profile_seq > customer_profile.profile_seq`,
    );
    this.setPosition = db.prepare(
      `INSERT INTO checkpoint (layer, position) VALUES ('gold', ?) ON CONFLICT (layer) DO UPDATE SET position = excluded.position`,
    );
    const tx = db.transaction((delta: GoldDelta) => {
      for (const d of delta.days) {
        this.upsertDay.run(
          d.customer_id,
          d.day,
          d.tx_count,
          d.tx_spend_micros,
          d.tx_first_at,
          d.tx_last_at,
          d.session_count,
          d.session_ms,
          d.interaction_count,
          d.event_count,
        );
      }
      for (const p of delta.profiles) {
        this.upsertProfile.run(p.customer_id, p.customer_segment, p.registration_at, p.bronzeSeq);
      }
      this.setPosition.run(delta.position);
    });
    this.applyTx = (delta) => tx.immediate(delta);
  }

  /** Applies one batch's delta and records its bronze position, in one transaction. */
  apply(delta: GoldDelta): void {
    this.applyTx(delta);
  }

  /** The bronze position gold has applied. */
  position(): number {
    return readPosition(this.db, "gold");
  }

  close(): void {
    this.db.close();
  }
}

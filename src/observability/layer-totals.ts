/**
 * What a data dir holds, counted from its layers: each layer's position, silver's records,
 * duplicates and quarantine, and the watermark. `tributary status` prints these, and a topology
 * seeds its gauges with them at start, so `/metrics` shows the data dir's numbers before the
 * first commit of a run.
 */
import type { Database } from "better-sqlite3";
import { readPosition } from "../sinks/database.js";
import { BUILTIN_ENTITIES, eventTimeColumn, type EntityDefinition } from "../model/entities.js";

/** The layers' totals, read in one pass; counts keyed by entity as silver stores it. */
export interface LayerTotals {
  /** The bronze sequence each layer has applied: bronze's highest, silver's and gold's checkpoints. */
  readonly positions: { readonly bronze: number; readonly silver: number; readonly gold: number };
  /** Valid records silver has accepted, per entity (profile updates included): `accepted_counts`. */
  readonly silver: ReadonlyMap<string, number>;
  /** Valid records silver listed as duplicates, per entity. */
  readonly duplicates: ReadonlyMap<string, number>;
  /** Quarantined messages per entity and reason, those silver retention deleted included. */
  readonly quarantine: readonly { readonly entity: string; readonly reason: string; readonly n: number }[];
  /**
   * The highest event time (epoch ms) among the event records silver holds (customers are
   * profiles, not events), or null when it holds none: where the dedupe window's watermark stood.
   */
  readonly watermark: number | null;
}

/** The three layers' connections (read-only ones do). */
export interface LayerConnections {
  readonly bronze: Database;
  readonly silver: Database;
  readonly gold: Database;
}

function tableExists(db: Database, name: string): boolean {
  return (db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?").pluck().get(name) as number) > 0;
}

/**
 * Reads the totals. The watermark is one index lookup per event table; duplicates and quarantine
 * are counted by scanning their tables, once.
 */
export function readLayerTotals(db: LayerConnections, entities: readonly EntityDefinition[] = BUILTIN_ENTITIES): LayerTotals {
  const byEntity = (sql: string) => new Map((db.silver.prepare(sql).raw().all() as [string, number][]).map(([k, n]) => [k, n]));
  let watermark: number | null = null;
  for (const e of entities) {
    if (e.keep !== "first" || !tableExists(db.silver, e.name)) continue;
    const t = db.silver.prepare(`SELECT max(${eventTimeColumn(e)}) FROM ${e.name}`).pluck().get() as number | null;
    if (t !== null && (watermark === null || t > watermark)) watermark = t;
  }
  return {
    positions: {
      bronze: db.bronze.prepare("SELECT coalesce(max(seq), 0) FROM messages").pluck().get() as number,
      silver: readPosition(db.silver, "silver"),
      gold: readPosition(db.gold, "gold"),
    },
    silver: byEntity("SELECT entity, n FROM accepted_counts"),
    // Entries silver retention deleted are still counted (duplicates_pruned).
    duplicates: byEntity(
      tableExists(db.silver, "duplicates_pruned")
        ? "SELECT entity, sum(n) FROM (SELECT entity, count(*) AS n FROM duplicates GROUP BY entity UNION ALL SELECT entity, n FROM duplicates_pruned) GROUP BY entity"
        : "SELECT entity, count(*) FROM duplicates GROUP BY entity",
    ),
    // Entries silver retention deleted are still counted (quarantine_pruned).
    quarantine: db.silver
      .prepare(
        tableExists(db.silver, "quarantine_pruned")
          ? "SELECT entity, reason, sum(n) AS n FROM (SELECT entity, reason, count(*) AS n FROM quarantine GROUP BY entity, reason UNION ALL SELECT entity, reason, n FROM quarantine_pruned) GROUP BY entity, reason"
          : "SELECT entity, reason, count(*) AS n FROM quarantine GROUP BY entity, reason",
      )
      .all() as LayerTotals["quarantine"][number][],
    watermark,
  };
}

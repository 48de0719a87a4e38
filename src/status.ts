/**
 * `tributary status`: what a data directory holds, read from the three layers. Valid records +
 * quarantined + duplicates = bronze messages once silver has caught up with bronze.
 */
import { existsSync } from "node:fs";
import { layerPath, openLayer, readPosition } from "./sinks/database.js";
import { BRONZE_MIGRATIONS } from "./sinks/bronze.js";
import { SILVER_MIGRATIONS } from "./sinks/silver.js";
import { GOLD_MIGRATIONS } from "./sinks/gold.js";
import { ENTITIES, REASONS } from "./types.js";
import { StorageError } from "./errors.js";

export interface Status {
  bronze: { messages: number; position: number };
  silver: Record<string, number>;
  duplicates: Record<string, number>;
  quarantine: Record<string, number>;
  positions: { bronze: number; silver: number; gold: number };
  customers: number;
  /**
   * What bronze read from each source, by origin: the last position, and for JetStream origins
   * the stream's name and identity (creation time, first sequence) as bronze recorded them.
   */
  origins: { origin: string; position: number; stream: string | null; created: string | null; firstSeq: number | null }[];
}

/** Reads the status of a data directory (read-only; safe beside a running daemon). */
export function readStatus(dataDir: string): Status {
  for (const layer of ["bronze", "silver", "gold"] as const) {
    if (!existsSync(layerPath(dataDir, layer))) throw new StorageError(`no ${layer} data in ${dataDir}`);
  }
  const storage = { synchronous: "normal" as const, busyTimeout: 5_000, readonly: true };
  const bronze = openLayer(dataDir, "bronze", BRONZE_MIGRATIONS, storage);
  const silver = openLayer(dataDir, "silver", SILVER_MIGRATIONS, storage);
  const gold = openLayer(dataDir, "gold", GOLD_MIGRATIONS, storage);
  try {
    const b = bronze.prepare("SELECT count(*) AS n, coalesce(max(seq), 0) AS p FROM messages").get() as { n: number; p: number };
    const counts = (sql: string, keys: readonly string[]) => {
      const out: Record<string, number> = Object.fromEntries(keys.map((k) => [k, 0]));
      for (const r of silver.prepare(sql).all() as { k: string; n: number }[]) out[r.k] = r.n;
      return out;
    };
    return {
      bronze: { messages: b.n, position: b.p },
      silver: counts("SELECT entity AS k, n FROM accepted_counts", ENTITIES),
      duplicates: counts("SELECT entity AS k, count(*) AS n FROM duplicates GROUP BY entity", ENTITIES.slice(1)),
      quarantine: counts("SELECT reason AS k, count(*) AS n FROM quarantine GROUP BY reason", REASONS),
      positions: { bronze: b.p, silver: readPosition(silver, "silver"), gold: readPosition(gold, "gold") },
      customers: gold.prepare("SELECT count(*) FROM customer_features").pluck().get() as number,
      origins: readOrigins(bronze),
    };
  } finally {
    bronze.close();
    silver.close();
    gold.close();
  }
}

function readOrigins(bronze: ReturnType<typeof openLayer>): Status["origins"] {
  // A bronze file from before stream identities (schema 1) has no streams table.
  const hasStreams = (bronze.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'streams'").pluck().get() as number) > 0;
  const identity = hasStreams ? "s.stream, s.created, s.first_seq" : "NULL, NULL, NULL";
  return (
    bronze
      .prepare(
        `SELECT o.name AS origin, (SELECT coalesce(max(m.origin_seq), 0) FROM messages m WHERE m.origin_id = o.id) AS position, ${identity}
         FROM origins o ${hasStreams ? "LEFT JOIN streams s ON s.origin_id = o.id" : ""} ORDER BY o.id`,
      )
      .raw()
      .all() as [string, number, string | null, string | null, number | null][]
  ).map(([origin, position, stream, created, firstSeq]) => ({ origin, position, stream, created, firstSeq }));
}


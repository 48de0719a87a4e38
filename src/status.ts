/**
 * `tributary status`: what a data directory holds, read from the three layers, and, when NATS
 * answers, how far bronze is behind the stream. Valid records + quarantined + duplicates = bronze
 * messages once silver has caught up with bronze.
 *
 * Words: a layer's **position** is the highest bronze sequence it has applied; a **sequence**
 * (`lastSeq`, `firstSeq`) numbers messages in their source: the stream sequence for JetStream, the
 * record index for a file.
 */
import { existsSync } from "node:fs";
import { layerPath, openLayer } from "./sinks/database.js";
import { BRONZE_MIGRATIONS, prunedCount } from "./sinks/bronze.js";
import { SILVER_MIGRATIONS, silverHorizon } from "./sinks/silver.js";
import { GOLD_MIGRATIONS } from "./sinks/gold.js";
import { ENTITIES, REASONS } from "./types.js";
import { StorageError } from "./errors.js";
import { readLayerTotals } from "./observability/layer-totals.js";
import { jetstreamOrigin } from "./sources/jetstream.js";
import type { StreamProbe } from "./sources/stream-probe.js";

export interface Status {
  /** `messages` bronze holds now; `pruned` those retention deleted (held + pruned = every message stored). */
  bronze: { messages: number; pruned: number; position: number };
  /**
   * Silver retention (`retention.silver`): the horizon (ISO-8601; event records before it have
   * been deleted, their ids kept for dedupe) and the records deleted so far. Null horizon: nothing
   * has been pruned.
   */
  silverRetention: { horizon: string | null; pruned: number };
  silver: Record<string, number>;
  duplicates: Record<string, number>;
  quarantine: Record<string, number>;
  positions: { bronze: number; silver: number; gold: number };
  customers: number;
  /** The highest event time among the event records silver holds (ISO-8601), or null. */
  watermark: string | null;
  /**
   * What bronze read from each source, by origin: the last sequence it holds, and for JetStream
   * origins the stream's name and identity (creation time, first sequence) as bronze recorded them.
   */
  origins: { origin: string; lastSeq: number; stream: string | null; created: string | null; firstSeq: number | null }[];
  /** The stream as NATS reports it, when status asked (`readStreamStatus`). */
  stream?: StreamStatus;
}

/** The stream's state beside bronze's, or why NATS could not say. */
export type StreamStatus =
  | (Extract<StreamProbe, { reachable: true }> & {
      /** The origin bronze records this stream under, or null when bronze has read nothing from it. */
      origin: string | null;
      /** The highest stream sequence bronze holds from this stream (0 when none). */
      bronzeLastSeq: number;
      /** Stream sequences bronze has not read: `lastSeq − bronzeLastSeq`; null when they are not comparable (see `note`). */
      lag: number | null;
      note?: string;
    })
  | Extract<StreamProbe, { reachable: false }>;

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
    const totals = readLayerTotals({ bronze, silver, gold });
    const counts = (keys: readonly string[], entries: Iterable<[string, number]>) => {
      const out: Record<string, number> = Object.fromEntries(keys.map((k) => [k, 0]));
      for (const [k, n] of entries) out[k] = (out[k] ?? 0) + n;
      return out;
    };
    return {
      bronze: { messages: bronze.prepare("SELECT count(*) FROM messages").pluck().get() as number, pruned: prunedCount(bronze), position: totals.positions.bronze },
      silverRetention: readSilverRetention(silver),
      silver: counts(ENTITIES, totals.silver),
      duplicates: counts(ENTITIES.slice(1), totals.duplicates),
      quarantine: counts(REASONS, totals.quarantine.map((q) => [q.reason, q.n])),
      positions: { ...totals.positions },
      customers: gold.prepare("SELECT count(*) FROM customer_features").pluck().get() as number,
      watermark: totals.watermark === null ? null : new Date(totals.watermark).toISOString(),
      origins: readOrigins(bronze),
    };
  } finally {
    bronze.close();
    silver.close();
    gold.close();
  }
}

/**
 * The stream's state beside what bronze read from it: the origin bronze records it under is the
 * one with the stream's identity (or, for a data dir from before identities, `jetstream:<name>`).
 */
export function readStreamStatus(status: Status, probe: StreamProbe): StreamStatus {
  if (!probe.reachable) return probe;
  const recorded = status.origins.filter((o) => o.stream === probe.name);
  const origin =
    recorded.find((o) => o.created === probe.created) ??
    (recorded.length === 0 ? status.origins.find((o) => o.origin === jetstreamOrigin(probe.name) && o.stream === null) : undefined);
  if (!origin) {
    if (recorded.length > 0) {
      const note = `the server's stream ${probe.name} (created ${probe.created}) is not the one bronze read (created ${recorded[recorded.length - 1]!.created})`;
      return { ...probe, origin: null, bronzeLastSeq: 0, lag: null, note };
    }
    return { ...probe, origin: null, bronzeLastSeq: 0, lag: probe.lastSeq };
  }
  const lag = probe.lastSeq - origin.lastSeq;
  if (lag < 0) {
    return { ...probe, origin: origin.origin, bronzeLastSeq: origin.lastSeq, lag: null, note: `the stream ends at sequence ${probe.lastSeq}, before bronze's ${origin.lastSeq}` };
  }
  return { ...probe, origin: origin.origin, bronzeLastSeq: origin.lastSeq, lag };
}

function readSilverRetention(silver: ReturnType<typeof openLayer>): Status["silverRetention"] {
  const horizon = silverHorizon(silver);
  // A silver file from before retention has no retention table.
  const hasTable = (silver.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'retention'").pluck().get() as number) > 0;
  const pruned = hasTable ? ((silver.prepare("SELECT records FROM retention").pluck().get() as number | undefined) ?? 0) : 0;
  return { horizon: horizon === null ? null : new Date(horizon).toISOString(), pruned };
}

function readOrigins(bronze: ReturnType<typeof openLayer>): Status["origins"] {
  // A bronze file from before stream identities (schema 1) has no streams table.
  const hasStreams = (bronze.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'streams'").pluck().get() as number) > 0;
  const identity = hasStreams ? "s.stream, s.created, s.first_seq" : "NULL, NULL, NULL";
  return (
    bronze
      .prepare(
        `SELECT o.name AS origin, (SELECT coalesce(max(m.origin_seq), 0) FROM messages m WHERE m.origin_id = o.id) AS last_seq, ${identity}
         FROM origins o ${hasStreams ? "LEFT JOIN streams s ON s.origin_id = o.id" : ""} ORDER BY o.id`,
      )
      .raw()
      .all() as [string, number, string | null, string | null, number | null][]
  ).map(([origin, lastSeq, stream, created, firstSeq]) => ({ origin, lastSeq, stream, created, firstSeq }));
}

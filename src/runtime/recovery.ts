/**
 * Recovery at start: gold takes on the config's custom features, gold catches up from silver,
 * then silver and gold from bronze, replaying bronze through the same stages as live
 * consumption. Runs before consumption starts, so a crash at any point of the commit protocol
 * loses nothing and counts nothing twice.
 */
import type { SourceMessage, Staged } from "../types.js";
import type { BronzeStore } from "../sinks/bronze.js";
import { StorageError } from "../errors.js";
import type { SilverStore } from "../sinks/silver.js";
import type { GoldStore } from "../sinks/gold.js";
import { aggregateBatch } from "../operators/aggregate.js";
import type { CustomFeature } from "../model/features.js";
import { summarizeSilver, type SilverSummary } from "./layer-writer.js";
import { checkSilverRetention } from "./retention.js";
import type { Logger } from "../log.js";

export interface RecoveryContext {
  readonly dataDir: string;
  readonly bronze: BronzeStore;
  readonly silver: SilverStore;
  readonly gold: GoldStore;
  readonly custom: readonly CustomFeature[];
  /** Refuse to start when gold holds another set of custom features, instead of backfilling them. */
  readonly noBackfill: boolean;
  /** Bronze messages replayed per transaction. */
  readonly batchSize: number;
  /** The per-record stages, as live consumption runs them. */
  readonly run: (m: SourceMessage) => Staged;
  /** Told of each silver commit the replay makes, for the stats. */
  readonly onSilver: (summary: SilverSummary) => void;
  readonly log: Logger;
}

/** Syncs gold's custom features, then brings gold up to silver, then silver and gold up to bronze. */
export function recoverLayers(ctx: RecoveryContext): void {
  const { bronze, silver, gold, custom, log } = ctx;
  // Pruned silver records are in gold alone: gold is never rebuilt, nor a feature backfilled, without them.
  checkSilverRetention(silver, gold, custom);
  // Custom features gold does not hold yet are backfilled from silver up to gold's position,
  // before recovery applies anything newer, so nothing is counted twice.
  gold.syncFeatures(ctx.dataDir, custom, { noBackfill: ctx.noBackfill, log });
  let silverPos = silver.position();
  const goldPos = gold.position();
  if (goldPos < silverPos) {
    const accepted = silver.readAccepted(goldPos, silverPos);
    gold.apply(aggregateBatch({ position: silverPos, accepted }, custom));
    log.info({ event: "recovered", layer: "gold", from: goldPos, to: silverPos, records: accepted.length }, "gold caught up from silver");
  }
  const bronzePos = bronze.position();
  if (silverPos >= bronzePos) return;
  // Retention deleted what both layers had applied; a silver behind that (deleted, or restored
  // from an old copy) cannot be rebuilt from bronze, and must not be rebuilt partly.
  const floor = bronze.retentionFloor();
  if (silverPos < floor) {
    throw new StorageError(
      `silver is at bronze position ${silverPos}, but bronze retention has deleted messages up to ${floor}: silver cannot be rebuilt from bronze; restore silver.sqlite and gold.sqlite from a backup newer than that, or start a new data dir from the stream`,
    );
  }
  const from0 = silverPos;
  while (silverPos < bronzePos) {
    const rows = bronze.readRange(silverPos, bronzePos, ctx.batchSize);
    if (rows.length === 0) break;
    const items = rows.map((m) => ({ staged: ctx.run(m), bronzeSeq: m.bronzeSeq! }));
    const position = items[items.length - 1]!.bronzeSeq;
    const commit = silver.apply(items, position);
    ctx.onSilver(summarizeSilver(commit));
    gold.apply(aggregateBatch(commit, custom));
    silverPos = position;
  }
  log.info({ event: "recovered", layer: "silver", from: from0, to: silverPos }, "silver and gold caught up from bronze");
}

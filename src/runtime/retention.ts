/**
 * Retention, run off the commit path: on the checkpoint thread beside the WAL checkpoints (or
 * after commits, with the inline committer). Each round reads the positions silver and gold have
 * committed, then deletes small batches, each its own short transaction, so a kill in the middle
 * of a prune leaves every layer whole up to its last batch, and no commit waits for more than one.
 *
 * - Bronze: messages both layers have applied that arrived longer ago than `retention.bronze`.
 *   The bronze trigger refuses deletes above the floor the pruner sets.
 * - Silver: event records gold has applied whose event time is before the horizon, the start of
 *   the UTC day `retention.silver` ago (see {@link SilverPruner}). Their ids stay, for dedupe.
 *
 * Positions only grow, so a stale read deletes less, never more.
 */
import type { Database } from "better-sqlite3";
import { pruneBronze } from "../sinks/bronze.js";
import { SilverPruner, prunedHorizon, type SilverStore } from "../sinks/silver.js";
import type { GoldStore } from "../sinks/gold.js";
import { BUILTIN_ENTITIES, type EntityDefinition } from "../model/entities.js";
import type { CustomFeature } from "../model/features.js";
import { DAY_MS, formatTimestamp } from "../timestamps.js";
import { StorageError } from "../errors.js";

export interface RetentionOptions {
  /** Age (by arrival) after which applied messages go; 0 keeps everything. */
  readonly bronzeMs: number;
  /** Age (by event time, in whole UTC days) after which silver's applied event records go; 0 or absent keeps everything. */
  readonly silverMs?: number;
  /** Time between pruning rounds. */
  readonly everyMs: number;
  /** Bronze messages per batch: one short transaction each. */
  readonly batch?: number;
  /**
   * Silver rows per batch. Silver's tables are keyed by id, so each deleted record dirties a page
   * of its own (and one of `pruned_ids`): about 40 µs per record here, 20 ms per batch of 500.
   */
  readonly silverBatch?: number;
  /** Longest each layer's part of a round may take before it yields until the next round. */
  readonly budgetMs?: number;
}

/** Whether these options prune anything. */
export function retains(options: RetentionOptions | undefined): boolean {
  return options !== undefined && (options.bronzeMs > 0 || (options.silverMs ?? 0) > 0);
}

/**
 * The silver horizon for a clock reading: the UTC day whose start records must not be older than.
 *
 * @example
 * silverHorizonDay(Date.parse("2026-12-01T14:00:00Z"), 400 * DAY_MS); // the day of 2025-10-27
 */
export function silverHorizonDay(now: number, silverMs: number): number {
  return Math.floor((now - silverMs) / DAY_MS);
}

const POSITION = "SELECT coalesce((SELECT position FROM checkpoint WHERE layer = ?), 0)";

/**
 * Prunes bronze and silver by rounds; `due(now)` says whether a round should run. Given `pause`
 * (a thread of its own may block), silver yields the write lock between batches for as long as
 * each took, so a waiting commit gets it, and a round that ran out of budget with more due makes
 * the next one due at once: silver keeps up with ingest instead of a batch per `pruneEvery`.
 */
export class Retention {
  private nextAt = 0;
  private bronzeTotal = 0;
  private silverTotal = 0;
  /** Silver's last round stopped at its budget with more due. */
  private silverBacklog = false;
  private readonly silverPruner: SilverPruner | null;

  constructor(
    private readonly bronze: Database,
    private readonly silver: Database,
    private readonly gold: Database,
    private readonly options: RetentionOptions,
    entities: readonly EntityDefinition[] = BUILTIN_ENTITIES,
    private readonly pause?: (ms: number) => void,
  ) {
    this.silverPruner = (options.silverMs ?? 0) > 0 ? new SilverPruner(silver, entities) : null;
  }

  /** Rows deleted by this process so far: bronze messages plus silver rows. */
  get pruned(): number {
    return this.bronzeTotal + this.silverTotal;
  }

  /** Silver rows (records, quarantine entries, superseded profile history) deleted by this process so far. */
  get silverPruned(): number {
    return this.silverTotal;
  }

  due(now: number): boolean {
    return retains(this.options) && (now >= this.nextAt || this.silverBacklog);
  }

  /** One round: batches until nothing is due or the budget is spent. Returns the rows deleted. */
  round(now = Date.now()): number {
    const scheduled = now >= this.nextAt;
    if (scheduled) this.nextAt = now + this.options.everyMs;
    const budget = this.options.budgetMs ?? 50;
    let deleted = 0;
    if (scheduled && this.options.bronzeMs > 0) {
      const limit = this.options.batch ?? 2_000;
      const applied = Math.min(this.position(this.silver, "silver"), this.position(this.gold, "gold"));
      const bounds = { applied, receivedBefore: now - this.options.bronzeMs, limit };
      const { total } = batches(() => pruneBronze(this.bronze, bounds), limit, budget);
      this.bronzeTotal += total;
      deleted += total;
    }
    if (this.silverPruner && (scheduled || this.silverBacklog)) {
      const limit = this.options.silverBatch ?? 500;
      // Gold's position: silver is never behind it, and a record gold has not applied stays.
      const bounds = { applied: this.position(this.gold, "gold"), horizonDay: silverHorizonDay(now, this.options.silverMs!), limit };
      const pruner = this.silverPruner;
      // Rows deleted; the batches also count the duplicate entries the sweep looked at and kept.
      let removed = 0;
      try {
        const { more } = batches(
          () => {
            const r = pruner.prune(bounds);
            removed += r.records + r.quarantine + r.history + r.duplicates;
            return r.records + r.quarantine + r.history + r.duplicates + r.swept;
          },
          limit,
          this.pause ? 2 * budget : budget,
          this.pause,
        );
        this.silverTotal += removed;
        deleted += removed;
        this.silverBacklog = more && this.pause !== undefined;
      } catch (err) {
        this.silverBacklog = false;
        throw new StorageError(`silver retention: ${(err as Error).message}`, { cause: err });
      }
    }
    return deleted;
  }

  private position(db: Database, layer: "silver" | "gold"): number {
    return db.prepare(POSITION).pluck().get(layer) as number;
  }
}

/**
 * Runs `step` (one batch of at most `limit`) until one comes back short or `budgetMs` is spent,
 * pausing after each batch as long as it took when given `pause`. Returns the total, and whether
 * the budget ran out with more due.
 */
function batches(step: () => number, limit: number, budgetMs: number, pause?: (ms: number) => void): { total: number; more: boolean } {
  const until = Date.now() + budgetMs;
  let total = 0;
  for (;;) {
    const started = Date.now();
    const n = step();
    total += n;
    if (n < limit) return { total, more: false };
    if (Date.now() >= until) return { total, more: true };
    pause?.(Math.max(1, Date.now() - started));
  }
}

/**
 * What recovery must not do once silver retention has pruned: rebuild gold from silver (gold
 * deleted, or restored from a copy older than the pruning), or backfill a custom feature gold
 * does not hold yet from silver's records. Either would silently miss the pruned records.
 *
 * @throws StorageError naming the horizon.
 */
export function checkSilverRetention(silver: SilverStore, gold: GoldStore, custom: readonly CustomFeature[]): void {
  // A horizon recorded with nothing deleted under it yet (retention records it first) has lost nothing.
  const horizon = prunedHorizon(silver.db);
  if (horizon === null) return;
  const floor = silver.retentionFloor();
  const goldPos = gold.position();
  if (goldPos < floor) {
    throw new StorageError(
      `gold is at bronze position ${goldPos}, but silver retention has deleted records gold had applied up to ${floor} (event times before ${formatTimestamp(horizon)}): gold cannot be rebuilt from silver; restore gold.sqlite from a backup at least that recent, or start a new data dir from the stream`,
    );
  }
  const complete = new Set(gold.db.prepare("SELECT name || ' ' || hash FROM feature_defs WHERE complete = 1").pluck().all() as string[]);
  const missing = custom.filter((c) => !complete.has(`${c.name} ${c.hash}`)).map((c) => c.name);
  if (missing.length > 0) {
    throw new StorageError(
      `custom feature ${missing.join(", ")} cannot be backfilled: silver retention has deleted the records before ${formatTimestamp(horizon)} it would be computed from; keep features.custom as gold holds it, or start a new data dir from the stream`,
    );
  }
}

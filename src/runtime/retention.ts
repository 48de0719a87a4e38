/**
 * Bronze retention, run off the commit path: on the checkpoint thread beside the WAL checkpoints
 * (or after commits, with the inline committer). Each step reads the positions silver and gold
 * have committed, and deletes at most one small batch of messages both have applied that arrived
 * longer ago than `retention.bronze`. Positions only grow, so a stale read deletes less, never
 * more. The bronze trigger refuses deletes above the floor the pruner sets (a guard against any
 * other writer, not against a wrong floor), and each batch is its own
 * transaction, so a kill in the middle of a prune leaves bronze whole up to the last batch.
 */
import type { Database } from "better-sqlite3";
import { pruneBronze } from "../sinks/bronze.js";

export interface RetentionOptions {
  /** Age (by arrival) after which applied messages go; 0 keeps everything. */
  readonly bronzeMs: number;
  /** Time between pruning rounds. */
  readonly everyMs: number;
  /** Messages per batch (one short transaction each). */
  readonly batch?: number;
  /** Longest a round may take before it yields until the next one. */
  readonly budgetMs?: number;
}

const POSITION = "SELECT coalesce((SELECT position FROM checkpoint WHERE layer = ?), 0)";

/** Prunes bronze by rounds; `due(now)` says whether a round should run. */
export class BronzeRetention {
  private nextAt = 0;
  private total = 0;

  constructor(
    private readonly bronze: Database,
    private readonly silver: Database,
    private readonly gold: Database,
    private readonly options: RetentionOptions,
  ) {}

  /** Deleted by this process so far. */
  get pruned(): number {
    return this.total;
  }

  due(now: number): boolean {
    return this.options.bronzeMs > 0 && now >= this.nextAt;
  }

  /** One round: batches until nothing is due or the budget is spent. Returns the messages deleted. */
  round(now = Date.now()): number {
    this.nextAt = now + this.options.everyMs;
    if (this.options.bronzeMs <= 0) return 0;
    const applied = Math.min(this.position(this.silver, "silver"), this.position(this.gold, "gold"));
    const bounds = { applied, receivedBefore: now - this.options.bronzeMs, limit: this.options.batch ?? 2_000 };
    const until = Date.now() + (this.options.budgetMs ?? 50);
    let deleted = 0;
    for (;;) {
      const n = pruneBronze(this.bronze, bounds);
      deleted += n;
      if (n < bounds.limit || Date.now() >= until) break;
    }
    this.total += deleted;
    return deleted;
  }

  private position(db: Database, layer: "silver" | "gold"): number {
    return db.prepare(POSITION).pluck().get(layer) as number;
  }
}

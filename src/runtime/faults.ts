/**
 * Test hooks for the commit path: crash points and slow commits, which the crash tests inject
 * through `TopologyOptions.faults` (or, for the `tributary` CLI they run, its environment).
 * Kept apart from the layer writer so the production path only ever sees {@link NO_FAULTS}.
 */

/** Named points of the commit protocol where `TRIBUTARY_CRASH_POINT` can kill the process. */
export const CRASH_POINTS = ["before_bronze", "after_bronze", "after_silver", "after_gold"] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

/** Fault injection for tests: kills or slows the commit path. */
export interface Faults {
  readonly crashPoint: CrashPoint | null;
  /** The crash point fires on this batch (1-based) or later. */
  readonly crashAfterBatches: number;
  /** Sleep this long before each bronze commit, so acks arrive after ack_wait. */
  readonly commitDelayMs: number;
  /** Wait this long after each transaction of gold's background compaction, so a fold stays half done a while. */
  readonly foldDelayMs?: number;
}

/** No faults: what every topology runs with unless a test passes some. */
export const NO_FAULTS: Faults = { crashPoint: null, crashAfterBatches: 0, commitDelayMs: 0 };

/** The environment variables {@link faultsFromEnv} reads. */
export const FAULT_ENV_VARS = ["TRIBUTARY_CRASH_POINT", "TRIBUTARY_CRASH_AFTER_BATCHES", "TRIBUTARY_FAULT_COMMIT_DELAY_MS", "TRIBUTARY_FAULT_FOLD_DELAY_MS"] as const;

/**
 * Reads `TRIBUTARY_CRASH_POINT`, `TRIBUTARY_CRASH_AFTER_BATCHES`, `TRIBUTARY_FAULT_COMMIT_DELAY_MS` and
 * `TRIBUTARY_FAULT_FOLD_DELAY_MS`.
 * Only the `tributary` CLI calls this, for the crash tests that run it; an embedded topology
 * takes faults from `TopologyOptions.faults` alone, so an embedder's environment cannot kill it.
 */
export function faultsFromEnv(env: NodeJS.ProcessEnv = process.env): Faults {
  const point = env.TRIBUTARY_CRASH_POINT;
  return {
    crashPoint: point && (CRASH_POINTS as readonly string[]).includes(point) ? (point as CrashPoint) : null,
    crashAfterBatches: Number(env.TRIBUTARY_CRASH_AFTER_BATCHES ?? 0),
    commitDelayMs: Number(env.TRIBUTARY_FAULT_COMMIT_DELAY_MS ?? 0),
    foldDelayMs: Number(env.TRIBUTARY_FAULT_FOLD_DELAY_MS ?? 0),
  };
}

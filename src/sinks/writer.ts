/**
 * The layer writer: commits one batch to bronze, then silver, then gold, each in its own
 * transaction, reporting after each commit. It owns the three write connections. The topology
 * runs it either on a worker thread (the default, so SQLite never blocks the NATS client) or
 * inline on the calling thread; both run exactly this code.
 */
import type { SourceMessage, Staged } from "../types.js";
import { aggregateBatch } from "../operators/aggregate.js";
import type { CustomFeature } from "../model/features.js";
import { BronzeStore } from "./bronze.js";
import { SilverStore, type Committed, type SilverResult } from "./silver.js";
import { GoldStore } from "./gold.js";
import { SMALL_CACHE_KIB, derivedLayerStorage, type StorageOptions } from "./database.js";

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
}

/** No faults: what every topology runs with unless a test passes some. */
export const NO_FAULTS: Faults = { crashPoint: null, crashAfterBatches: 0, commitDelayMs: 0 };

/** The environment variables {@link faultsFromEnv} reads. */
export const FAULT_ENV_VARS = ["TRIBUTARY_CRASH_POINT", "TRIBUTARY_CRASH_AFTER_BATCHES", "TRIBUTARY_FAULT_COMMIT_DELAY_MS"] as const;

/**
 * Reads `TRIBUTARY_CRASH_POINT`, `TRIBUTARY_CRASH_AFTER_BATCHES` and `TRIBUTARY_FAULT_COMMIT_DELAY_MS`.
 * Only the `tributary` CLI calls this, for the crash tests that run it; an embedded topology
 * takes faults from `TopologyOptions.faults` alone, so an embedder's environment cannot kill it.
 */
export function faultsFromEnv(env: NodeJS.ProcessEnv = process.env): Faults {
  const point = env.TRIBUTARY_CRASH_POINT;
  return {
    crashPoint: point && (CRASH_POINTS as readonly string[]).includes(point) ? (point as CrashPoint) : null,
    crashAfterBatches: Number(env.TRIBUTARY_CRASH_AFTER_BATCHES ?? 0),
    commitDelayMs: Number(env.TRIBUTARY_FAULT_COMMIT_DELAY_MS ?? 0),
  };
}

/** A staged record reduced to what the layers store: plain data, no ack handle. */
export interface WireRecord {
  readonly msg: Omit<SourceMessage, "ack">;
  readonly entity: string;
  readonly outcome: Staged["outcome"];
}

/** What a silver commit did, in counts: what the topology needs for stats and metrics. */
export interface SilverSummary {
  readonly position: number;
  readonly accepted: [entity: string, n: number][];
  readonly duplicates: [entity: string, n: number][];
  /** Keyed `<entity>|<reason>`. */
  readonly quarantined: [key: string, n: number][];
}

/** Reports from one batch's commits, in this order. Durations are milliseconds. */
export interface CommitReports {
  /** Bronze committed: each record's bronze sequence, or null for one bronze already held. */
  bronze(seqs: (number | null)[], ms: number): void;
  silver(summary: SilverSummary, ms: number): void;
  gold(position: number, ms: number): void;
}

/** Counts of a silver commit, for stats. */
export function summarizeSilver(result: SilverResult): SilverSummary {
  const accepted = new Map<string, number>();
  for (const a of result.accepted) accepted.set(a.record.entity, (accepted.get(a.record.entity) ?? 0) + 1);
  return { position: result.position, accepted: [...accepted], duplicates: [...result.duplicates], quarantined: [...result.quarantined] };
}

/** Opens the three layers for writing and commits batches to them in protocol order. */
export class LayerWriter {
  private readonly bronze: BronzeStore;
  private readonly silver: SilverStore;
  private readonly gold: GoldStore;
  private batches = 0;

  constructor(
    dataDir: string,
    storage: StorageOptions,
    private readonly faults: Faults,
    private readonly features: readonly CustomFeature[] = [],
  ) {
    this.bronze = new BronzeStore(dataDir, { ...storage, cacheKib: SMALL_CACHE_KIB });
    try {
      this.silver = new SilverStore(dataDir, derivedLayerStorage(storage));
      try {
        this.gold = new GoldStore(dataDir, derivedLayerStorage(storage));
      } catch (err) {
        this.silver.close();
        throw err;
      }
    } catch (err) {
      this.bronze.close();
      throw err;
    }
  }

  /**
   * Commits one batch: bronze, then silver, then gold. A record bronze already holds (a
   * redelivery) goes no further. Throws on the first failed commit; what committed before stays.
   */
  commit(batch: readonly WireRecord[], reports: CommitReports): void {
    this.batches++;
    this.crash("before_bronze");
    if (this.faults.commitDelayMs > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, this.faults.commitDelayMs);
    let t = performance.now();
    const seqs = this.bronze.append(batch);
    this.crash("after_bronze");
    reports.bronze(seqs, performance.now() - t);
    const items: Committed[] = [];
    for (let i = 0; i < batch.length; i++) {
      const seq = seqs[i];
      if (seq !== null && seq !== undefined) items.push({ staged: batch[i] as Staged, bronzeSeq: seq });
    }
    if (items.length === 0) return;
    t = performance.now();
    const result = this.silver.apply(items, items[items.length - 1]!.bronzeSeq);
    this.crash("after_silver");
    reports.silver(summarizeSilver(result), performance.now() - t);
    t = performance.now();
    const delta = aggregateBatch(result, this.features);
    this.gold.apply(delta);
    this.crash("after_gold");
    reports.gold(delta.position, performance.now() - t);
  }

  close(): void {
    this.bronze.close();
    this.silver.close();
    this.gold.close();
  }

  private crash(point: CrashPoint): void {
    if (this.faults.crashPoint !== point || this.batches < this.faults.crashAfterBatches) return;
    process.kill(process.pid, "SIGKILL");
  }
}

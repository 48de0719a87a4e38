/**
 * The layer writer: commits one batch to bronze, then silver, then gold, each in its own
 * transaction, reporting after each commit. It owns the three write connections. The topology
 * runs it either on a worker thread (the default, so SQLite never blocks the NATS client) or
 * inline on the calling thread; both run exactly this code.
 */
import type { SourceMessage, Staged } from "../types.js";
import { aggregateBatch } from "../operators/aggregate.js";
import type { CustomFeature } from "../model/features.js";
import type { EntityDefinition } from "../model/entities.js";
import { Retention, type RetentionOptions } from "./retention.js";
import { BronzeStore } from "../sinks/bronze.js";
import { SilverStore, type Committed, type SilverResult } from "../sinks/silver.js";
import { GoldStore } from "../sinks/gold.js";
import { GoldPresence } from "../sinks/gold-presence.js";
import { SMALL_CACHE_KIB, derivedLayerStorage, type StorageOptions } from "../sinks/database.js";
import { entityLabel } from "../observability/labels.js";
import type { CrashPoint, Faults } from "./faults.js";

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
  /** The dedupe window after this batch, when the commit thread ran the stages (and so holds the window). */
  readonly window?: WindowReading;
}

/** What the dedupe window holds: its entries and its watermark (null before the first record). */
export interface WindowReading {
  readonly size: number;
  readonly watermark: number | null;
}

/** Reports from one batch's commits, in this order. Durations are milliseconds. */
export interface CommitReports {
  /**
   * Bronze committed: each record's bronze sequence (null for one bronze already held), and the
   * new messages per entity label.
   */
  bronze(seqs: (number | null)[], ms: number, perEntity: [label: string, n: number][]): void;
  silver(summary: SilverSummary, ms: number): void;
  /** Gold committed up to `position`; `customers` are those of the batch's records, each once. */
  gold(position: number, ms: number, customers: string[]): void;
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
    entities?: readonly EntityDefinition[],
    presence?: SharedArrayBuffer,
  ) {
    this.bronze = new BronzeStore(dataDir, { ...storage, cacheKib: SMALL_CACHE_KIB });
    try {
      this.silver = new SilverStore(dataDir, derivedLayerStorage(storage), entities);
      try {
        this.gold = new GoldStore(dataDir, derivedLayerStorage(storage), presence && new GoldPresence(presence));
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
    const ms = performance.now() - t;
    const items: Committed[] = [];
    const perEntity = new Map<string, number>();
    for (let i = 0; i < batch.length; i++) {
      const seq = seqs[i];
      if (seq === null || seq === undefined) continue;
      items.push({ staged: batch[i] as Staged, bronzeSeq: seq });
      const label = entityLabel(batch[i]!.entity);
      perEntity.set(label, (perEntity.get(label) ?? 0) + 1);
    }
    reports.bronze(seqs, ms, [...perEntity]);
    if (items.length === 0) return;
    t = performance.now();
    const result = this.silver.apply(items, items[items.length - 1]!.bronzeSeq);
    this.crash("after_silver");
    reports.silver(summarizeSilver(result), performance.now() - t);
    t = performance.now();
    const delta = aggregateBatch(result, this.features);
    this.gold.apply(delta);
    this.crash("after_gold");
    reports.gold(delta.position, performance.now() - t, customersOf(batch));
  }

  /** The segment silver holds for a customer, as this writer's connection sees it (for enrich on the commit thread). */
  segmentOf(customerId: string): string | undefined {
    return this.silver.segmentOf(customerId);
  }

  /** Gold's write connection, for its compaction when the writer runs inline. */
  get goldDb(): GoldStore["db"] {
    return this.gold.db;
  }

  /** Retention over this writer's connections (for the inline committer). */
  retention(options: RetentionOptions): Retention {
    return new Retention(this.bronze.db, this.silver.db, this.gold.db, options, this.silver.entities);
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

/** The customers of a batch's valid and duplicate records, each once. */
function customersOf(batch: readonly WireRecord[]): string[] {
  const seen = new Set<string>();
  for (const r of batch) {
    const o = r.outcome;
    if (o.status === "valid" || o.status === "duplicate") seen.add(o.record.customer_id);
  }
  return [...seen];
}

/**
 * The topology: the only place that knows the whole graph. It wires a source through the pure
 * operators into the bronze, silver and gold sinks, owns batching, checkpoints and acks, and is
 * the embedding API (`createTopology`).
 *
 *   source ─▶ admit ─▶ decode ─▶ validate ─▶ dedupe ─▶ enrich ─▶ batch ─▶ bronze ─▶ (ack)
 *                                                                          │
 *                                                     gold ◀─ aggregate ◀─ silver
 *
 * Commit protocol: a batch is appended to bronze in one transaction; only then are its messages
 * acknowledged. Silver applies the batch and records the highest bronze sequence it applied in
 * the same transaction; gold does the same. After a crash, silver and gold catch up from bronze.
 * The commits run on a worker thread by default (`storage.commitThread`), so the thread that runs
 * the NATS client and the operators never waits for SQLite; several batches may be in flight.
 */
import { BehaviorSubject, Observable, Subject, filter, from, map, mergeMap, takeUntil, toArray, type OperatorFunction } from "rxjs";
import { LRUCache } from "lru-cache";
import type { Config, ConfigInput } from "./config.js";
import { parseConfig } from "./config.js";
import type { Entity, Reason, SourceMessage, Staged } from "./types.js";
import { ENTITIES, REASONS } from "./types.js";
import { decodeStage } from "./operators/decode.js";
import { validateStage } from "./operators/validate.js";
import { DedupeWindow, dedupeStage } from "./operators/dedupe.js";
import { enrichStage, type SegmentDirectory } from "./operators/enrich.js";
import { composeStages, type InsertedStage } from "./operators/stage.js";
import { batchForCommit, type BatchGate } from "./operators/batch.js";
import { aggregateBatch } from "./operators/aggregate.js";
import { BRONZE_MIGRATIONS, BronzeStore } from "./sinks/bronze.js";
import { SILVER_MIGRATIONS, SilverStore } from "./sinks/silver.js";
import { GOLD_MIGRATIONS, GoldStore } from "./sinks/gold.js";
import { SMALL_CACHE_KIB, derivedLayerStorage, preflight } from "./sinks/database.js";
import { PipelineMetrics, entityLabel } from "./sinks/metrics.js";
import { startHttpServer, type HttpListen } from "./http.js";
import type { Server } from "node:http";
import { accessSync, constants as fsConstants } from "node:fs";
import { JetStreamSource } from "./sources/jetstream.js";
import { filesSource } from "./sources/files.js";
import { generatorSource, type GeneratorOptions } from "./sources/generator.js";
import { FeatureReader, type FeatureRow } from "./features.js";
import { silentLogger, type Logger } from "./log.js";
import { CheckpointError } from "./errors.js";
import { openCommitter, type Committer } from "./sinks/committer.js";
import { WriterLock } from "./runtime/writer-lock.js";
import { customFeaturesOf, type CustomFeature } from "./model/features.js";
import { NO_FAULTS, summarizeSilver, type Faults, type SilverSummary } from "./sinks/writer.js";
import { CommitCredit } from "./runtime/commit-credit.js";

/** Where records come from. */
export type SourceSpec =
  | {
      readonly kind: "jetstream";
      readonly drain?: boolean;
      readonly connectTimeoutMs?: number;
      /** Read a stream that is not the one bronze read (deleted and recreated, restored) as a new origin. */
      readonly newStream?: boolean;
      /** Continue past messages the stream no longer holds (purged or expired before they were read). */
      readonly acceptGap?: boolean;
    }
  | { readonly kind: "files"; readonly files: readonly string[]; readonly entity?: string }
  | ({ readonly kind: "generator" } & GeneratorOptions)
  /**
   * Any Observable of messages. Its messages' `ack` callbacks tell it when each one is durable in
   * bronze (see {@link SourceMessage.ack}); it is not pulled, so it should not outrun them.
   */
  | { readonly kind: "observable"; readonly messages: Observable<SourceMessage> };

export interface TopologyOptions {
  /** Configuration (validated, defaults applied). `dataDir` here wins over `config.dataDir`. */
  readonly config?: Config | ConfigInput;
  readonly dataDir?: string;
  readonly source: SourceSpec;
  readonly log?: Logger;
  /**
   * Prometheus metrics: true (default) for tributary's metrics plus prom-client's process
   * metrics, `"pipeline-only"` without the process metrics, false for none.
   */
  readonly metrics?: boolean | "pipeline-only";
  /**
   * Refuse to start when gold holds another set of custom features than the config, instead of
   * dropping and backfilling them (the CLI's `--no-backfill`).
   */
  readonly noBackfill?: boolean;
  /**
   * Stages of your own, each placed right after a built-in one (`decode`, `validate`, `dedupe`,
   * `enrich`): to redact a field, or route records to quarantine with a reason of your own. They
   * run on the hot path and in bronze replay, so they must be synchronous and deterministic.
   */
  readonly stages?: readonly InsertedStage[];
  /** What the data dir's writer lock names as its holder (default `tributary`; the CLI says `tributary run`, …). */
  readonly holder?: string;
  /** Serve `/metrics`, `/healthz`, `/readyz` and `/features/<id>` (port 0 picks a free port). Off by default. */
  readonly http?: HttpListen | false;
  /**
   * Test hook: crash points and slow commits for the crash tests. None by default; the library
   * never reads them from the environment (only the `tributary` CLI does, for its tests).
   * @internal
   */
  readonly faults?: Faults;
}

/** Counts for the current run, emitted after every commit. */
export interface PipelineStats {
  /** Messages appended to bronze. */
  bronze: number;
  /** Messages received again that bronze already held (redeliveries), skipped. */
  redelivered: number;
  /** Valid records accepted into silver, per entity (profile updates included). */
  silver: Record<Entity, number>;
  duplicates: Record<string, number>;
  quarantined: Record<Reason, number>;
  batches: number;
  /** Bronze position gold has reached. */
  goldPosition: number;
  /** Highest event time seen (epoch ms), or null. */
  watermark: number | null;
  startedAt: number;
  elapsedMs: number;
}

/** A `checkpoint` log line at most this often (each commit is logged at debug level). */
const CHECKPOINT_LOG_INTERVAL_MS = 10_000;

export { CRASH_POINTS, type CrashPoint } from "./sinks/writer.js";

/**
 * Batches handed to the committer and not yet through gold, at most. Enough to keep the commit
 * thread busy while the next batch forms. The broker's max_ack_pending bounds what a JetStream
 * source delivers past that; a pulled source (files, generator) waits for {@link CommitCredit}
 * of one more batch than this.
 */
const MAX_BATCHES_IN_FLIGHT = 4;

function emptyStats(): PipelineStats {
  return {
    bronze: 0,
    redelivered: 0,
    silver: Object.fromEntries(ENTITIES.map((e) => [e, 0])) as Record<Entity, number>,
    duplicates: {},
    quarantined: Object.fromEntries(REASONS.map((r) => [r, 0])) as Record<Reason, number>,
    batches: 0,
    goldPosition: 0,
    watermark: null,
    startedAt: Date.now(),
    elapsedMs: 0,
  };
}

/** Segments known to silver, through a bounded cache; profiles in flight update it first. */
class SilverSegments implements SegmentDirectory {
  // `null` caches "no profile in silver", so customers without one cost one query, not one per record.
  private readonly cache = new LRUCache<string, string | typeof NO_PROFILE>({ max: 100_000 });
  constructor(private readonly silver: SilverStore) {}
  get(customerId: string): string | undefined {
    let s = this.cache.get(customerId);
    if (s === undefined) {
      s = this.silver.segmentOf(customerId) ?? NO_PROFILE;
      this.cache.set(customerId, s);
    }
    return s === NO_PROFILE ? undefined : s;
  }
  set(customerId: string, segment: string): void {
    this.cache.set(customerId, segment);
  }
}

const NO_PROFILE = "\u0000none";

/**
 * Open while no batch is waiting for its bronze commit. Partial batches wait behind it, so under
 * load they grow to what the commit thread keeps up with (fewer, larger commits), while under
 * light load they leave after `batch.maxWait`.
 */
class CommitGate implements BatchGate {
  private waiting = 0;
  private readonly listeners = new Set<() => void>();
  get open(): boolean {
    return this.waiting === 0;
  }
  submitted(): void {
    this.waiting++;
  }
  bronzeCommitted(): void {
    this.waiting--;
    // Not synchronously: an inline committer is still inside this batch's commit (silver and
    // gold follow), and the next batch must not start before it ends.
    queueMicrotask(() => {
      for (const l of [...this.listeners]) l();
    });
  }
  onOpen(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/**
 * A running (or runnable) tributary pipeline.
 *
 * @example
 * const t = createTopology({ source: { kind: "generator", messages: 10_000 }, dataDir: "./data" });
 * await t.start();
 * const stats = await t.done;
 * console.log(t.features.get("1000042"));
 */
export class Topology {
  readonly config: Config;
  /** The custom features this topology computes (`features.custom`), after the built-in ones. */
  readonly custom: readonly CustomFeature[];
  private readonly log: Logger;
  private readonly statsSubject = new BehaviorSubject<PipelineStats>(emptyStats());
  private readonly stop$ = new Subject<void>();
  private bronze: BronzeStore | null = null;
  private silver: SilverStore | null = null;
  private gold: GoldStore | null = null;
  private jetstream: JetStreamSource | null = null;
  private reader: FeatureReader | null = null;
  private window: DedupeWindow;
  private readonly faults: Faults;
  /** Backpressure for pulled sources (files, generator): records not yet in bronze, bounded. */
  private credit: CommitCredit | null = null;
  private committer: Committer | null = null;
  private lock: WriterLock | null = null;
  /** Aborts start-up work that waits (connecting to the broker) when {@link stop} comes first. */
  private readonly starting = new AbortController();
  private resolveDone!: (s: PipelineStats) => void;
  private rejectDone!: (e: unknown) => void;
  private started = false;
  /** Cached feature lookups: customer → (as-of ms → row or null). */
  private readonly featureCache = new LRUCache<string, Map<number, FeatureRow | null>>({ max: 10_000 });
  private http: Server | null = null;
  /** Where the HTTP server listens, once started. */
  httpAddress: HttpListen | null = null;
  private failure: Error | null = null;
  private lastCheckpointLog = Date.now();
  private running = false;
  /** Prometheus metrics; null when disabled. */
  readonly metrics: PipelineMetrics | null;
  /** Highest origin sequence committed to bronze, per origin. */
  private readonly committed = new Map<string, number>();

  /** Resolves with the run's stats when the source completes (or after {@link stop}). */
  readonly done: Promise<PipelineStats>;
  /** Pipeline stats, emitted after every commit. */
  readonly stats$: Observable<PipelineStats> = this.statsSubject.asObservable();

  constructor(private readonly options: TopologyOptions) {
    const config = parseConfig(options.config ?? {});
    this.config = options.dataDir ? { ...config, dataDir: options.dataDir } : config;
    this.custom = customFeaturesOf(this.config.features.custom);
    this.log = options.log ?? silentLogger;
    this.window = new DedupeWindow({ windowMs: this.config.dedupe.window, maxEntries: this.config.dedupe.maxEntries });
    this.metrics =
      options.metrics === false
        ? null
        : new PipelineMetrics(
            {
              dedupeEntries: () => this.window.size,
              watermark: () => this.window.watermark,
              consumer: async () => {
                if (!this.jetstream) return null;
                const info = await this.jetstream.info();
                return { pending: info.num_pending, ackPending: info.num_ack_pending };
              },
            },
            { defaultMetrics: options.metrics !== "pipeline-only" },
          );
    this.faults = options.faults ?? NO_FAULTS;
    this.done = new Promise<PipelineStats>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    this.done.catch(() => undefined);
  }

  /** Current stats of this run. */
  get stats(): PipelineStats {
    return this.statsSubject.value;
  }

  /**
   * Point-in-time feature lookups against this topology's gold layer. Lookups for a given as-of
   * time are cached per customer; every gold commit drops the entries of the customers it touched.
   */
  readonly features = {
    /**
     * Features of one customer as of `asOf` (epoch ms or Date; default now), or null when not listed.
     * Throws a TypeError or RangeError for an `asOf` that is not a valid time (an invalid Date, NaN).
     */
    get: (customerId: string, asOf?: number | Date): FeatureRow | null => {
      if (typeof customerId !== "string") throw new TypeError(`features.get: customerId must be a string, got ${describeValue(customerId)}`);
      if (asOf === undefined) return this.featureReader().compute(Date.now(), customerId)[0] ?? null;
      const t = asOfMillis("features.get", asOf);
      let perCustomer = this.featureCache.get(customerId);
      const hit = perCustomer?.get(t);
      if (hit !== undefined) return hit;
      const row = this.featureReader().compute(t, customerId)[0] ?? null;
      if (!perCustomer) this.featureCache.set(customerId, (perCustomer = new Map()));
      perCustomer.set(t, row);
      return row;
    },
    /** Features of every customer listed as of `asOf` (default now); throws for an invalid `asOf`, as `get` does. */
    all: (asOf: number | Date = Date.now()): FeatureRow[] => {
      const t = asOfMillis("features.all", asOf);
      return this.featureReader().compute(t);
    },
  };

  private featureReader(): FeatureReader {
    this.reader ??= new FeatureReader(this.config.dataDir, { busyTimeout: this.config.storage.busyTimeout, features: this.custom });
    return this.reader;
  }

  /**
   * Opens the data directory, brings silver and gold up to bronze, connects the source and starts
   * consuming. Resolves once consumption has started; {@link done} resolves when it ends.
   */
  async start(): Promise<void> {
    if (this.started) throw new Error("topology already started");
    this.started = true;
    const storage = this.config.storage;
    const dir = this.config.dataDir;
    try {
      // First of all: a second writer must stop before it touches a file or a port.
      this.lock = WriterLock.acquire(dir, this.options.holder ?? "tributary");
      preflight(dir, { bronze: BRONZE_MIGRATIONS.length, silver: SILVER_MIGRATIONS.length, gold: GOLD_MIGRATIONS.length });
      // This thread writes only while recovering; afterwards it looks up positions and segments.
      const small = { ...storage, cacheKib: SMALL_CACHE_KIB };
      this.bronze = new BronzeStore(dir, small);
      this.silver = new SilverStore(dir, derivedLayerStorage(small));
      this.gold = new GoldStore(dir, derivedLayerStorage(small));
    } catch (err) {
      await this.close();
      this.rejectDone(err);
      throw err;
    }
    this.log.info(
      { event: "storage_opened", dataDir: dir, journalMode: "wal", synchronous: { bronze: storage.synchronous, silver: "normal", gold: "normal" }, schema: { bronze: BRONZE_MIGRATIONS.length, silver: SILVER_MIGRATIONS.length, gold: GOLD_MIGRATIONS.length } },
      "opened bronze, silver and gold",
    );
    let source$: Observable<SourceMessage>;
    try {
      if (this.options.http) await this.startHttp(this.options.http);
      // Custom features gold does not hold yet are backfilled from silver up to gold's position,
      // before recovery applies anything newer, so nothing is counted twice.
      this.gold.syncFeatures(dir, this.custom, { noBackfill: this.options.noBackfill ?? false, log: this.log });
      this.recover();
      // From here on the committer owns the writes; this thread keeps bronze and silver open
      // only to read positions and segments.
      this.gold.close();
      this.gold = null;
      this.committer = await openCommitter({ dataDir: dir, storage, faults: this.faults, thread: storage.commitThread, features: this.custom });
      source$ = await this.openSource();
    } catch (err) {
      await this.close();
      // Stopped before the source was open (a SIGTERM while the broker is unreachable): a clean stop.
      if (this.starting.signal.aborted) {
        this.log.info({ event: "shutdown", ...summaryFields(this.finalStats()) }, "stopped before consuming");
        this.resolveDone(this.finalStats());
        return;
      }
      this.rejectDone(err);
      throw err;
    }
    const segments = new SilverSegments(this.silver);
    const committer = this.committer;
    const cumulativeAck = this.options.source.kind === "jetstream";
    const gate = new CommitGate();

    const pipeline$ = source$.pipe(
      takeUntil(this.stop$),
      this.admit(),
      this.stages(segments),
      batchForCommit<Staged>({ maxRecords: this.config.batch.maxRecords, maxWaitMs: this.config.batch.maxWait, gate }),
      mergeMap((batch) => this.commit(committer, batch, cumulativeAck, gate), MAX_BATCHES_IN_FLIGHT),
    );
    this.running = true;
    pipeline$.subscribe({
      error: (err) => {
        const wrapped =
          err instanceof Error && err.name === "SqliteError"
            ? new CheckpointError(`SQLite commit failed (${err.message}); nothing after the last commit was acknowledged`, { cause: err })
            : err;
        this.failure = wrapped as Error;
        this.metrics?.up.set(0);
        this.log.error({ event: "pipeline_failed", reason: (wrapped as Error).message }, "pipeline failed");
        void this.close().finally(() => this.rejectDone(wrapped));
      },
      complete: () => {
        void this.close().then(() => {
          const stats = this.finalStats();
          this.log.info({ event: "shutdown", ...summaryFields(stats) }, "pipeline finished");
          this.resolveDone(stats);
        }, this.rejectDone);
      },
    });
  }

  /**
   * Stops consuming: the batch in flight is committed and acknowledged, then {@link done}
   * resolves. Safe to call more than once.
   */
  async stop(): Promise<PipelineStats> {
    if (!this.started) {
      this.started = true;
      this.resolveDone(this.finalStats());
      return this.done;
    }
    this.starting.abort();
    this.jetstream?.stop();
    this.stop$.next();
    return this.done;
  }

  /** The per-record operator chain, shared by live consumption and bronze replay. */
  private stages(segments: SegmentDirectory): OperatorFunction<SourceMessage, Staged> {
    const c = this.config;
    const { maxPayloadBytes, maxDepth, maxFields, maxIdLength, maxTextLength, minEventTime } = c.limits;
    const decodeOptions = { maxPayloadBytes, maxDepth, maxFields };
    const validateOptions = { rates: c.currency.rates, minEventTime, maxIdLength, maxTextLength };
    const enrichOptions = { rates: c.currency.rates, segments };
    // decode → validate → dedupe → enrich (with any embedder's stages at their points), composed
    // into one step: the same stage values the pipeable operators are made of, without a
    // subscriber hop per stage on the hot path.
    const run = composeStages(
      decodeStage(decodeOptions),
      [validateStage(validateOptions), dedupeStage(this.window), enrichStage(enrichOptions)],
      this.options.stages ?? [],
    );
    return map(run);
  }

  /**
   * Admits only messages past what this run has already admitted for their origin (delivery is in
   * stream order, so anything at or below is a redelivery). A redelivery of a message bronze has
   * committed is acknowledged; one still in the batch in flight is dropped, and the batch's own
   * ack covers it once it commits.
   */
  private admit(): OperatorFunction<SourceMessage, SourceMessage> {
    const admitted = new Map<string, number>();
    const bronze = this.bronze!;
    return filter((m) => {
      let last = admitted.get(m.origin);
      if (last === undefined) {
        last = bronze.lastOriginSeq(m.origin);
        this.committed.set(m.origin, last);
      }
      if (m.originSeq <= last) {
        if (m.originSeq <= (this.committed.get(m.origin) ?? 0)) m.ack?.();
        this.credit?.release(1);
        this.statsSubject.value.redelivered++;
        admitted.set(m.origin, last);
        return false;
      }
      admitted.set(m.origin, m.originSeq);
      return true;
    });
  }

  /**
   * Hands a batch to the committer and follows its commits: after bronze, the batch is
   * acknowledged (one cumulative ack for JetStream); after silver and gold, stats, metrics and the
   * features cache are brought up to date.
   */
  private commit(committer: Committer, batch: Staged[], cumulativeAck: boolean, gate: CommitGate): Promise<void> {
    // Take what the reports need now, so the batch itself can be collected while it commits:
    // records that outlive a young-generation GC get promoted, and old-generation GC is costly.
    const n = batch.length;
    const labels = new Array<string>(n);
    const customers = new Array<string | null>(n);
    const published = new Array<number | null>(n);
    const lastByOrigin = new Map<string, number>();
    const acks: (() => void)[] = [];
    for (let i = 0; i < n; i++) {
      const s = batch[i]!;
      const m = s.msg;
      labels[i] = entityLabel(s.entity);
      const o = s.outcome;
      customers[i] = o.status === "valid" || o.status === "duplicate" ? o.record.customer_id : null;
      published[i] = m.publishedAt;
      // Positions only grow within an origin, so the last message of each origin is enough.
      lastByOrigin.set(m.origin, m.originSeq);
      if (!cumulativeAck && m.ack) acks.push(m.ack);
    }
    if (cumulativeAck && batch[n - 1]!.msg.ack) acks.push(batch[n - 1]!.msg.ack!);
    let publishedAt: number[] = [];
    let perEntity = new Map<string, number>();
    gate.submitted();
    return committer.submit(batch, {
      bronze: (seqs, ms) => {
        this.metrics?.commitSeconds.observe({ layer: "bronze" }, ms / 1000);
        for (const [origin, seq] of lastByOrigin) if ((this.committed.get(origin) ?? 0) < seq) this.committed.set(origin, seq);
        for (const ack of acks) ack();
        this.credit?.release(n);
        let committed = 0;
        let last = 0;
        for (let i = 0; i < n; i++) {
          const seq = seqs[i];
          if (seq === null || seq === undefined) {
            this.statsSubject.value.redelivered++;
            this.metrics?.redelivered.inc();
            continue;
          }
          committed++;
          last = seq;
          perEntity.set(labels[i]!, (perEntity.get(labels[i]!) ?? 0) + 1);
          const p = published[i];
          if (p !== null && p !== undefined) publishedAt.push(p);
        }
        this.statsSubject.value.bronze += committed;
        if (this.metrics) {
          for (const [entity, k] of perEntity) this.metrics.messages.inc({ layer: "bronze", entity }, k);
          this.metrics.batchSize.observe(n);
          if (committed > 0) this.metrics.position.set({ layer: "bronze" }, last);
        }
        gate.bronzeCommitted();
      },
      silver: (summary, ms) => {
        this.metrics?.commitSeconds.observe({ layer: "silver" }, ms / 1000);
        perEntity = this.countSilver(summary);
      },
      gold: (position, ms) => {
        this.metrics?.commitSeconds.observe({ layer: "gold" }, ms / 1000);
        if (this.featureCache.size > 0) for (const c of customers) if (c !== null) this.featureCache.delete(c);
        this.afterGold(position, perEntity, publishedAt);
        publishedAt = [];
      },
    });
  }

  /** Adds a silver commit to the stats; returns its accepted records per entity. */
  private countSilver(commit: SilverSummary): Map<string, number> {
    const s = this.statsSubject.value;
    const perEntity = new Map<string, number>(commit.accepted);
    for (const [entity, n] of commit.accepted) s.silver[entity as Entity] += n;
    for (const [entity, n] of commit.duplicates) s.duplicates[entity] = (s.duplicates[entity] ?? 0) + n;
    for (const [key, n] of commit.quarantined) {
      const [entity, reason] = splitQuarantineKey(key);
      s.quarantined[reason] = (s.quarantined[reason] ?? 0) + n;
      this.metrics?.countQuarantine(entity, reason, n);
    }
    if (this.metrics) {
      for (const [entity, n] of perEntity) this.metrics.messages.inc({ layer: "silver", entity }, n);
      for (const [entity, n] of commit.duplicates) this.metrics.duplicates.inc({ entity }, n);
      this.metrics.position.set({ layer: "silver" }, commit.position);
    }
    return perEntity;
  }

  /** After a gold commit: metrics, stats and the checkpoint log. */
  private afterGold(position: number, perEntity: ReadonlyMap<string, number>, publishedAt: readonly number[]): void {
    if (this.metrics) {
      for (const [entity, n] of perEntity) this.metrics.messages.inc({ layer: "gold", entity }, n);
      this.metrics.position.set({ layer: "gold" }, position);
      const now = Date.now();
      for (const t of publishedAt) this.metrics.endToEnd.observe((now - t) / 1000);
    }
    this.publishStats(position);
    const now = Date.now();
    if (now - this.lastCheckpointLog >= CHECKPOINT_LOG_INTERVAL_MS) {
      this.lastCheckpointLog = now;
      const st = this.statsSubject.value;
      this.log.info(
        { event: "checkpoint", position, bronze: st.bronze, batches: st.batches, watermark: st.watermark === null ? null : new Date(st.watermark).toISOString() },
        `checkpoint at bronze sequence ${position}`,
      );
    } else {
      this.log.debug({ event: "commit", position }, "batch committed");
    }
  }

  /**
   * The last position bronze holds for a source origin (0 when none): where a custom source must
   * continue numbering its messages so that a restart neither skips nor re-counts any.
   */
  position(origin: string): number {
    if (!this.bronze) throw new Error("topology not started");
    return Math.max(this.committed.get(origin) ?? 0, this.bronze.lastOriginSeq(origin));
  }

  /**
   * Messages the broker still holds for this topology (not yet delivered, or delivered and not
   * acknowledged), or null without a broker source.
   */
  async pending(): Promise<number | null> {
    if (!this.jetstream) return null;
    const info = await this.jetstream.info();
    return info.num_pending + info.num_ack_pending;
  }

  private publishStats(position: number): void {
    const s = this.statsSubject.value;
    s.batches++;
    s.goldPosition = position;
    s.watermark = this.window.watermark;
    s.elapsedMs = Date.now() - s.startedAt;
    this.statsSubject.next(s);
  }

  /**
   * Brings gold up to silver, then silver and gold up to bronze, replaying bronze through the
   * same operators. Runs before consumption starts, so a crash at any point loses nothing.
   */
  private recover(): void {
    const bronze = this.bronze!;
    const silver = this.silver!;
    const gold = this.gold!;
    let silverPos = silver.position();
    const goldPos = gold.position();
    if (goldPos < silverPos) {
      const accepted = silver.readAccepted(goldPos, silverPos);
      gold.apply(aggregateBatch({ position: silverPos, accepted }, this.custom));
      this.log.info({ event: "recovered", layer: "gold", from: goldPos, to: silverPos, records: accepted.length }, "gold caught up from silver");
    }
    const bronzePos = bronze.position();
    if (silverPos >= bronzePos) return;
    const segments = new SilverSegments(silver);
    const from0 = silverPos;
    while (silverPos < bronzePos) {
      const rows = bronze.readRange(silverPos, bronzePos, this.config.batch.maxRecords);
      if (rows.length === 0) break;
      const staged = this.runSync(rows, segments);
      const items = staged.map((s) => ({ staged: s, bronzeSeq: s.msg.bronzeSeq! }));
      const position = items[items.length - 1]!.bronzeSeq;
      const commit = silver.apply(items, position);
      this.countSilver(summarizeSilver(commit));
      gold.apply(aggregateBatch(commit, this.custom));
      silverPos = position;
    }
    this.log.info({ event: "recovered", layer: "silver", from: from0, to: silverPos }, "silver and gold caught up from bronze");
  }

  /** Runs messages through the operator chain synchronously (all operators are synchronous). */
  private runSync(messages: SourceMessage[], segments: SegmentDirectory): Staged[] {
    let out: Staged[] = [];
    from(messages)
      .pipe(this.stages(segments), toArray())
      .subscribe((xs) => (out = xs));
    return out;
  }

  private async openSource(): Promise<Observable<SourceMessage>> {
    const spec = this.options.source;
    const c = this.config;
    switch (spec.kind) {
      case "jetstream": {
        const bronze = this.bronze!;
        this.jetstream = await JetStreamSource.open(
          {
            url: c.nats.url,
            stream: c.nats.stream,
            subjects: c.nats.subjects,
            consumer: c.nats.consumer,
            ackWaitMs: c.nats.ackWait,
            maxAckPending: c.nats.maxAckPending,
            pullSize: Math.min(c.batch.maxRecords * 2, c.nats.maxAckPending),
            connectTimeoutMs: spec.connectTimeoutMs,
            auth: c.nats,
            policy: { newStream: spec.newStream ?? false, acceptGap: spec.acceptGap ?? false },
            stallMs: c.nats.stallTimeout,
            signal: this.starting.signal,
            log: this.log,
          },
          {
            streamOrigin: (stream) => bronze.streamOrigin(stream),
            lastSeq: (origin) => bronze.lastOriginSeq(origin),
            messageAt: (origin, seq) => bronze.messageAt(origin, seq),
            recordStream: (stream, origin, identity) => bronze.recordStream(stream, { origin, ...identity }),
          },
        );
        return this.jetstream.messages(spec.drain ?? false);
      }
      case "files":
        return filesSource(spec.files, { entity: spec.entity, startAfter: (o) => this.bronze!.lastOriginSeq(o), ...this.pull() });
      case "generator": {
        const { kind: _kind, ...gen } = spec;
        return generatorSource(gen, this.bronze!.lastOriginSeq(`generator:${gen.seed ?? 42}`), this.pull());
      }
      case "observable":
        return spec.messages;
    }
  }

  /**
   * Credit for a pulled source: one batch more than the committer holds, so a batch is always
   * forming while the others commit, and never more.
   */
  private pull(): { credit: CommitCredit; chunkSize: number } {
    const maxRecords = this.config.batch.maxRecords;
    this.credit = new CommitCredit((MAX_BATCHES_IN_FLIGHT + 1) * maxRecords);
    return { credit: this.credit, chunkSize: Math.min(maxRecords, 1_000) };
  }

  private finalStats(): PipelineStats {
    const s = this.statsSubject.value;
    s.elapsedMs = Date.now() - s.startedAt;
    s.watermark = this.window.watermark;
    return s;
  }

  private async startHttp(listen: HttpListen): Promise<void> {
    const { server, address } = await startHttpServer(
      listen,
      {
        metrics: async () => ({ contentType: this.metrics?.registry.contentType ?? "text/plain", body: (await this.metrics?.text()) ?? "" }),
        health: () => (this.failure ? { ok: false, reason: this.failure.message } : { ok: true }),
        ready: () => this.readiness(),
        features: (id, asOf) => this.features.get(id, asOf),
      },
      this.log,
      { token: this.config.http.token },
    );
    this.http = server;
    this.httpAddress = address;
  }

  /** Ready when running, connected to the broker (for JetStream) and the data dir is writable. */
  readiness(): { ok: boolean; reason?: string } {
    if (this.failure) return { ok: false, reason: `pipeline failed: ${this.failure.message}` };
    if (!this.running) return { ok: false, reason: this.options.source.kind === "jetstream" ? "connecting to NATS" : "starting" };
    if (this.jetstream && !this.jetstream.connected) return { ok: false, reason: "disconnected from NATS; reconnecting" };
    const stalled = this.jetstream?.stalled;
    if (stalled) return { ok: false, reason: stalled };
    try {
      accessSync(this.config.dataDir, fsConstants.W_OK);
    } catch (err) {
      return { ok: false, reason: `data dir ${this.config.dataDir} is not writable: ${(err as NodeJS.ErrnoException).code}` };
    }
    return { ok: true };
  }

  private async close(): Promise<void> {
    this.running = false;
    try {
      await this.jetstream?.close();
    } catch (err) {
      this.log.warn({ event: "close_failed", reason: (err as Error).message }, "closing the NATS connection failed");
    }
    this.reader?.close();
    this.reader = null;
    if (this.http) {
      const server = this.http;
      this.http = null;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    try {
      await this.committer?.close();
    } catch (err) {
      this.log.warn({ event: "close_failed", reason: (err as Error).message }, "closing the commit thread failed");
    }
    this.committer = null;
    this.bronze?.close();
    this.silver?.close();
    this.gold?.close();
    this.lock?.release();
  }
}

function splitQuarantineKey(key: string): [string, Reason] {
  const i = key.indexOf("|");
  return [key.slice(0, i), key.slice(i + 1) as Reason];
}

/** `asOf` as epoch milliseconds; a TypeError for anything but a number or Date, a RangeError for an invalid time. */
function asOfMillis(method: string, asOf: unknown): number {
  if (typeof asOf !== "number" && !(asOf instanceof Date)) {
    throw new TypeError(`${method}: asOf must be epoch milliseconds or a Date, got ${describeValue(asOf)}`);
  }
  const t = typeof asOf === "number" ? asOf : asOf.getTime();
  // The range a Date can hold (±8.64e15 ms); NaN is what `new Date("bogus")` holds.
  if (!Number.isFinite(t) || Math.abs(t) > 8.64e15) {
    throw new RangeError(`${method}: asOf is not a valid time (${asOf instanceof Date ? "an invalid Date" : String(asOf)})`);
  }
  return t;
}

function describeValue(v: unknown): string {
  if (v === null) return "null";
  if (typeof v === "string") return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v)}`;
  return typeof v === "object" ? (v.constructor?.name ?? "an object") : typeof v;
}

/** Fields for a one-line run summary. */
export function summaryFields(s: PipelineStats): Record<string, unknown> {
  const quarantined = Object.fromEntries(Object.entries(s.quarantined).filter(([, n]) => n > 0));
  return {
    bronze: s.bronze,
    redelivered: s.redelivered,
    silver: s.silver,
    duplicates: s.duplicates,
    quarantined,
    elapsedMs: s.elapsedMs,
  };
}

/**
 * Creates a topology: the embedding API for edge services and the engine behind the CLI.
 *
 * @example
 * import { createTopology } from "tributary-stream";
 * const t = createTopology({ source: { kind: "jetstream" }, config: { nats: { url: "nats://127.0.0.1:4222" } } });
 * await t.start();
 * process.on("SIGTERM", () => t.stop());
 */
export function createTopology(options: TopologyOptions): Topology {
  return new Topology(options);
}


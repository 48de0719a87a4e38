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
import { Observable, Subject, filter, map, mergeMap, takeUntil, type OperatorFunction } from "rxjs";
import type { Config, ConfigInput } from "./config.js";
import { parseConfig } from "./config.js";
import type { SourceMessage, Staged } from "./types.js";
import { decodeStage } from "./operators/decode.js";
import { validateStage } from "./operators/validate.js";
import { DedupeWindow, dedupeStage } from "./operators/dedupe.js";
import { enrichStage, type SegmentDirectory } from "./operators/enrich.js";
import { composeStages, type InsertedStage } from "./operators/stage.js";
import { batchForCommit } from "./operators/batch.js";
import { BRONZE_MIGRATIONS, BronzeStore } from "./sinks/bronze.js";
import { SILVER_MIGRATIONS, SilverStore } from "./sinks/silver.js";
import { GOLD_MIGRATIONS, GoldStore } from "./sinks/gold.js";
import { SMALL_CACHE_KIB, derivedLayerStorage, preflight } from "./sinks/database.js";
import { PipelineMetrics, entityLabel } from "./observability/metrics.js";
import { startHttpServer, type HttpListen } from "./http.js";
import type { Server } from "node:http";
import { accessSync, constants as fsConstants } from "node:fs";
import type { JetStreamSource } from "./sources/jetstream.js";
import { openSource, type SourceSpec } from "./sources/factory.js";
import { silentLogger, type Logger } from "./log.js";
import { CheckpointError } from "./errors.js";
import { openCommitter, type Committer } from "./runtime/committer.js";
import { WriterLock } from "./runtime/writer-lock.js";
import { CommitGate } from "./runtime/commit-gate.js";
import { SegmentCache } from "./runtime/segments.js";
import { RunStats, summaryFields, type PipelineStats } from "./runtime/stats.js";
import { recoverLayers } from "./runtime/recovery.js";
import { CommitCredit } from "./runtime/commit-credit.js";
import { FeatureService, type FeatureLookups } from "./serving/features.js";
import { customFeaturesOf, type CustomFeature } from "./model/features.js";
import { NO_FAULTS, type Faults } from "./runtime/faults.js";

export type { SourceSpec } from "./sources/factory.js";
export type { PipelineStats } from "./runtime/stats.js";
export { summaryFields } from "./runtime/stats.js";

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

export { CRASH_POINTS, type CrashPoint } from "./runtime/faults.js";

/**
 * Batches handed to the committer and not yet through gold, at most. Enough to keep the commit
 * thread busy while the next batch forms. The broker's max_ack_pending bounds what a JetStream
 * source delivers past that; a pulled source (files, generator) waits for {@link CommitCredit}
 * of one more batch than this.
 */
const MAX_BATCHES_IN_FLIGHT = 4;

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
  /** Prometheus metrics; null when disabled. */
  readonly metrics: PipelineMetrics | null;
  /**
   * Point-in-time feature lookups against this topology's gold layer. Lookups for a given as-of
   * time are cached per customer; every gold commit drops the entries of the customers it touched.
   */
  readonly features: FeatureLookups;
  /** Resolves with the run's stats when the source completes (or after {@link stop}). */
  readonly done: Promise<PipelineStats>;
  /** Pipeline stats, emitted after every commit. */
  readonly stats$: Observable<PipelineStats>;
  /** Where the HTTP server listens, once started. */
  httpAddress: HttpListen | null = null;

  private readonly log: Logger;
  private readonly run: RunStats;
  private readonly serving: FeatureService;
  private readonly window: DedupeWindow;
  private readonly faults: Faults;
  private readonly stop$ = new Subject<void>();
  /** Aborts start-up work that waits (connecting to the broker) when {@link stop} comes first. */
  private readonly starting = new AbortController();
  /** Highest origin sequence committed to bronze, per origin. */
  private readonly committed = new Map<string, number>();
  private bronze: BronzeStore | null = null;
  private silver: SilverStore | null = null;
  private gold: GoldStore | null = null;
  private jetstream: JetStreamSource | null = null;
  /** Backpressure for pulled sources (files, generator): records not yet in bronze, bounded. */
  private credit: CommitCredit | null = null;
  private committer: Committer | null = null;
  private lock: WriterLock | null = null;
  private http: Server | null = null;
  private resolveDone!: (s: PipelineStats) => void;
  private rejectDone!: (e: unknown) => void;
  private started = false;
  private running = false;
  private failure: Error | null = null;

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
    this.run = new RunStats(this.metrics, this.log, () => this.window.watermark);
    this.stats$ = this.run.stats$;
    this.serving = new FeatureService(this.config.dataDir, { busyTimeout: this.config.storage.busyTimeout, features: this.custom });
    this.features = { get: (id, asOf) => this.serving.get(id, asOf), all: (asOf) => this.serving.all(asOf) };
    this.faults = options.faults ?? NO_FAULTS;
    this.done = new Promise<PipelineStats>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    this.done.catch(() => undefined);
  }

  /** Current stats of this run. */
  get stats(): PipelineStats {
    return this.run.value;
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
      const silver = this.silver;
      recoverLayers({
        bronze: this.bronze,
        silver,
        gold: this.gold,
        custom: this.custom,
        batchSize: this.config.batch.maxRecords,
        run: this.stages(new SegmentCache((id) => silver.segmentOf(id))),
        onSilver: (summary) => this.run.silverCommitted(summary),
        log: this.log,
      });
      // From here on the committer owns the writes; this thread keeps bronze and silver open
      // only to read positions and segments.
      this.gold.close();
      this.gold = null;
      this.committer = await openCommitter({ dataDir: dir, storage, faults: this.faults, thread: storage.commitThread, features: this.custom });
      const opened = await openSource(this.options.source, {
        config: this.config,
        bronze: this.bronze,
        log: this.log,
        signal: this.starting.signal,
        pull: () => this.pull(),
      });
      this.jetstream = opened.jetstream;
      source$ = opened.messages;
    } catch (err) {
      await this.close();
      // Stopped before the source was open (a SIGTERM while the broker is unreachable): a clean stop.
      if (this.starting.signal.aborted) {
        this.log.info({ event: "shutdown", ...summaryFields(this.run.final()) }, "stopped before consuming");
        this.resolveDone(this.run.final());
        return;
      }
      this.rejectDone(err);
      throw err;
    }
    const silver = this.silver;
    const run = this.stages(new SegmentCache((id) => silver.segmentOf(id)));
    const committer = this.committer;
    const cumulativeAck = this.options.source.kind === "jetstream";
    const gate = new CommitGate();

    const pipeline$ = source$.pipe(
      takeUntil(this.stop$),
      this.admit(),
      map(run),
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
          const stats = this.run.final();
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
      this.resolveDone(this.run.final());
      return this.done;
    }
    this.starting.abort();
    this.jetstream?.stop();
    this.stop$.next();
    return this.done;
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

  /** Ready when running, connected to the broker and consuming (for JetStream), and the data dir is writable. */
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

  /**
   * The per-record stages, composed into one function: decode → validate → dedupe → enrich, with
   * any embedder's stages at their points. Live consumption and bronze replay run the same one.
   */
  private stages(segments: SegmentDirectory): (m: SourceMessage) => Staged {
    const c = this.config;
    const { maxPayloadBytes, maxDepth, maxFields, maxIdLength, maxTextLength, minEventTime } = c.limits;
    return composeStages(
      decodeStage({ maxPayloadBytes, maxDepth, maxFields }),
      [validateStage({ rates: c.currency.rates, minEventTime, maxIdLength, maxTextLength }), dedupeStage(this.window), enrichStage({ rates: c.currency.rates, segments })],
      this.options.stages ?? [],
    );
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
        this.run.redelivered();
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
        for (const [origin, seq] of lastByOrigin) if ((this.committed.get(origin) ?? 0) < seq) this.committed.set(origin, seq);
        for (const ack of acks) ack();
        this.credit?.release(n);
        let committed = 0;
        let last = 0;
        for (let i = 0; i < n; i++) {
          const seq = seqs[i];
          if (seq === null || seq === undefined) {
            this.run.redelivered(true);
            continue;
          }
          committed++;
          last = seq;
          perEntity.set(labels[i]!, (perEntity.get(labels[i]!) ?? 0) + 1);
          const p = published[i];
          if (p !== null && p !== undefined) publishedAt.push(p);
        }
        this.run.bronzeCommitted(perEntity, committed, n, last, ms);
        gate.bronzeCommitted();
      },
      silver: (summary, ms) => {
        perEntity = this.run.silverCommitted(summary, ms);
      },
      gold: (position, ms) => {
        this.serving.invalidate(customers);
        this.run.goldCommitted(position, perEntity, publishedAt, ms);
        publishedAt = [];
      },
    });
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

  private async close(): Promise<void> {
    this.running = false;
    try {
      await this.jetstream?.close();
    } catch (err) {
      this.log.warn({ event: "close_failed", reason: (err as Error).message }, "closing the NATS connection failed");
    }
    this.serving.close();
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


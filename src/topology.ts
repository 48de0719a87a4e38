/**
 * The topology: the only place that knows the whole graph, and the embedding API
 * (`createTopology`). A lifecycle facade: it opens the data dir, recovers, opens the committer
 * and the source, wires them through the commit loop, and closes everything in order.
 *
 *   source ─▶ admit ─▶ decode ─▶ validate ─▶ dedupe ─▶ enrich ─▶ batch ─▶ bronze ─▶ (ack)
 *                                                                          │
 *                                                     gold ◀─ aggregate ◀─ silver
 *
 * Commit protocol: a batch is appended to bronze in one transaction; only then are its messages
 * acknowledged. Silver and gold each record the highest bronze sequence they applied in the same
 * transaction as the data, and catch up from bronze after a crash (`runtime/recovery.ts`).
 * Admission, batching, acks and positions are the commit loop's (`runtime/commit-loop.ts`); the
 * commits run on a worker thread by default (`runtime/committer.ts`), so the thread that runs the
 * NATS client never waits for SQLite, and several batches may be in flight. The per-record stages
 * run on that worker too, right before bronze, unless the embedder gave stages of its own (closures
 * stay on this thread); the graph is the same either way, only where it runs differs.
 */
import { Subject, takeUntil, type Observable } from "rxjs";
import type { Config } from "./config.js";
import { topologyMetrics, type PipelineMetrics } from "./observability/metrics.js";
import { startHttpServer, startHttpThread, type HttpHandle, type HttpListen } from "./http.js";
import type { JetStreamSource } from "./sources/jetstream.js";
import { openSource } from "./sources/factory.js";
import type { Logger } from "./log.js";
import { openCommitter, type Committer } from "./runtime/committer.js";
import { openDataDir, type LocalDataDir } from "./runtime/data-dir.js";
import { SegmentCache } from "./runtime/segments.js";
import { RunStats, WindowReadings, summaryFields, type PipelineStats } from "./runtime/stats.js";
import { readLayerTotals } from "./observability/layer-totals.js";
import { recoverLayers } from "./runtime/recovery.js";
import { CommitLoop, commitFailure } from "./runtime/commit-loop.js";
import { committerOptions, resolveOptions, type ResolvedOptions, type TopologyOptions } from "./runtime/options.js";
import { FeatureService, type FeatureLookups } from "./serving/features.js";
import { GoldPresence } from "./sinks/gold-presence.js";
import { trainingSet } from "./serving/training-set.js";
import { readinessOf, topologyEndpoints } from "./serving/endpoints.js";
import type { CustomFeature } from "./model/features.js";
import type { SourceMessage, Staged } from "./types.js";

export type { SourceSpec } from "./sources/factory.js";
export type { PipelineStats } from "./runtime/stats.js";
export { summaryFields } from "./runtime/stats.js";
export type { TopologyOptions } from "./runtime/options.js";
export { CRASH_POINTS, type CrashPoint } from "./runtime/faults.js";

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
  private readonly resolved: ResolvedOptions;
  private readonly run: RunStats;
  private readonly serving: FeatureService;
  private readonly stop$ = new Subject<void>();
  /** Aborts start-up work that waits (connecting to the broker) when {@link stop} comes first. */
  private readonly starting = new AbortController();
  /** The data dir's lock and layers as this thread holds them. */
  private local: LocalDataDir | null = null;
  private loop: CommitLoop | null = null;
  private jetstream: JetStreamSource | null = null;
  private committer: Committer | null = null;
  private http: HttpHandle | null = null;
  private resolveDone!: (s: PipelineStats) => void;
  private rejectDone!: (e: unknown) => void;
  private started = false;
  private running = false;
  private failure: Error | null = null;
  /** Which customers have buckets on gold's newest days: the writer marks them, this process's lookups skip the other days. */
  private readonly presence = new GoldPresence();

  constructor(private readonly options: TopologyOptions) {
    ({ config: this.config, custom: this.custom, log: this.log } = this.resolved = resolveOptions(options));
    const window = new WindowReadings(this.resolved.window);
    this.metrics = topologyMetrics(options.metrics, window, () => this.jetstream);
    this.run = new RunStats(this.metrics, this.log, window);
    this.stats$ = this.run.stats$;
    this.serving = new FeatureService(this.config.dataDir, { busyTimeout: this.config.storage.busyTimeout, features: this.custom, presence: this.presence.buffer });
    this.features = { get: (id, asOf) => this.serving.get(id, asOf), all: (asOf) => this.serving.all(asOf) };
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
    const { storage, dataDir: dir, batch } = this.config;
    let pipeline$: Observable<void>;
    try {
      const local = (this.local = openDataDir(dir, storage, this.options.holder ?? "tributary", this.log, this.resolved.entities));
      const { bronze, silver, gold } = local;
      const cumulativeAck = this.options.source.kind === "jetstream";
      const loop = (this.loop = new CommitLoop({ bronze, run: this.run, batch, cumulativeAck, goldCommitted: (customers) => this.serving.invalidate(customers) }));
      // The data dir's numbers, before /metrics serves anything: a restart does not read 0.
      this.metrics?.seed(readLayerTotals({ bronze: bronze.db, silver: silver.db, gold: gold.db }, this.resolved.entities));
      if (this.options.http) await this.startHttp(this.options.http);
      const stages = () => this.resolved.stages(new SegmentCache((id) => silver.segmentOf(id)));
      recoverLayers({
        dataDir: dir,
        bronze,
        silver,
        gold,
        custom: this.custom,
        noBackfill: this.options.noBackfill ?? false,
        batchSize: batch.maxRecords,
        run: stages(),
        onSilver: (summary) => this.run.silverCommitted(summary),
        log: this.log,
      });
      this.metrics?.seedPositions({ bronze: bronze.position(), silver: silver.position(), gold: gold.position() });
      // From here on the committer owns the writes.
      local.closeGold();
      const committer = (this.committer = await openCommitter({ ...committerOptions(this.resolved), presence: this.presence.buffer }));
      const opened = await openSource(this.options.source, { config: this.config, bronze, log: this.log, signal: this.starting.signal, pull: () => loop.pull() });
      this.jetstream = opened.jetstream;
      // With the stages on the commit thread, this thread only admits, batches and acknowledges.
      const live: (m: SourceMessage) => Staged | SourceMessage = committer.runsStages ? (m) => m : stages();
      pipeline$ = loop.consume(opened.messages.pipe(takeUntil(this.stop$)), this.run.timed(live), committer);
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
    this.running = true;
    pipeline$.subscribe({
      error: (err) => {
        const failure = (this.failure = commitFailure(err));
        this.metrics?.up.set(0);
        this.log.error({ event: "pipeline_failed", reason: failure.message }, "pipeline failed");
        void this.close().finally(() => this.rejectDone(failure));
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
   * A point-in-time training set over this topology's data dir, with its custom features (see
   * `trainingSet`): labels as a CSV or Parquet file or as objects; with `out`, written with its manifest.
   */
  trainingSet(labels: Parameters<typeof trainingSet>[1], options: Parameters<typeof trainingSet>[2] = {}): ReturnType<typeof trainingSet> {
    return trainingSet(this.config.dataDir, labels, { features: this.custom, busyTimeout: this.config.storage.busyTimeout, ...options });
  }

  /**
   * The last position bronze holds for a source origin (0 when none): where a custom source must
   * continue numbering its messages so that a restart neither skips nor re-counts any.
   */
  position(origin: string): number {
    if (!this.loop) throw new Error("topology not started");
    return this.loop.position(origin);
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
    return readinessOf({ failure: this.failure, running: this.running, broker: this.options.source.kind === "jetstream", jetstream: this.jetstream, dataDir: this.config.dataDir });
  }

  private async startHttp(listen: HttpListen): Promise<void> {
    const backend = topologyEndpoints({ metrics: this.metrics, features: this.features, failure: () => this.failure, readiness: () => this.readiness() });
    const token = this.config.http.token;
    // With worker threads, lookups get a thread of their own; `inline` keeps everything on this one.
    if (this.config.storage.commitThread === "worker") this.http = await startHttpThread(listen, backend, this.log, { token, lookups: this.serving.source });
    else {
      const { server, address } = await startHttpServer(listen, backend, this.log, { token });
      this.http = { address, close: () => (server.closeAllConnections(), new Promise<void>((resolve) => server.close(() => resolve()))) };
    }
    this.httpAddress = this.http.address;
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
      const http = this.http;
      this.http = null;
      await http.close();
    }
    try {
      await this.committer?.close();
    } catch (err) {
      this.log.warn({ event: "close_failed", reason: (err as Error).message }, "closing the commit thread failed");
    }
    this.committer = null;
    // The writer marks no more buckets, even if its thread ended without closing gold (terminated,
    // out of memory): from here lookups seek every day, as whoever writes the data dir next does not mark.
    this.presence.retire();
    this.local?.close();
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


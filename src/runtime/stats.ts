/**
 * The run's stats and metrics, kept as observers of the commit reports: what bronze, silver and
 * gold committed is counted here, and nowhere else, for `stats$`, the Prometheus metrics and the
 * checkpoint log.
 */
import { BehaviorSubject, type Observable } from "rxjs";
import type { Entity, Reason } from "../types.js";
import { ENTITIES, REASONS } from "../types.js";
import { entityLabel, type PipelineMetrics } from "../observability/metrics.js";
import type { SilverSummary, WindowReading } from "./layer-writer.js";
import type { Logger } from "../log.js";

/** Counts for the current run, emitted after every commit. */
export interface PipelineStats {
  /** Messages appended to bronze. */
  bronze: number;
  /** Messages received again that bronze already held (redeliveries), skipped. */
  redelivered: number;
  /** Valid records accepted into silver, per entity (profile updates included). */
  silver: Record<Entity, number>;
  duplicates: Record<string, number>;
  /** Quarantined records per reason, the built-in ones and any an embedder's stage gives. */
  quarantined: Record<Reason, number>;
  batches: number;
  /** Bronze position gold has reached. */
  goldPosition: number;
  /** Highest event time seen (epoch ms), or null. */
  watermark: number | null;
  startedAt: number;
  elapsedMs: number;
  /**
   * Time the run held work (ms): from a message entering the stages while nothing was in flight
   * to the commit that left nothing in flight, summed. Waiting for messages is not counted.
   */
  busyMs: number;
}

/** A `checkpoint` log line at most this often (each commit is logged at debug level). */
const CHECKPOINT_LOG_INTERVAL_MS = 10_000;

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
    busyMs: 0,
  };
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
    busyMs: s.busyMs,
  };
}

function splitQuarantineKey(key: string): [string, Reason] {
  const i = key.indexOf("|");
  return [key.slice(0, i), key.slice(i + 1) as Reason];
}

/**
 * The dedupe window's readings, wherever the window is: this thread's own, or, when the commit
 * thread runs the stages, the one its silver reports bring back.
 */
export class WindowReadings implements WindowReading {
  private reported: WindowReading | null = null;
  constructor(private readonly local: WindowReading) {}
  get size(): number {
    return (this.reported ?? this.local).size;
  }
  get watermark(): number | null {
    return (this.reported ?? this.local).watermark;
  }
  /** The commit thread's window after a batch. */
  report(reading: WindowReading): void {
    this.reported = reading;
  }
}

/** The stats of one run, with its metrics (null when disabled) and the watermark it reports. */
export class RunStats {
  private readonly subject = new BehaviorSubject<PipelineStats>(emptyStats());
  private lastCheckpointLog = Date.now();
  /** Messages that entered the stages and whose batch has not finished committing. */
  private inFlight = 0;
  /** When {@link inFlight} last rose from 0. */
  private busySince = 0;
  /** Sizes of the batches through bronze whose silver and gold reports are still to come, oldest first. */
  private readonly awaitingGold: number[] = [];
  /** Emitted after every gold commit. */
  readonly stats$: Observable<PipelineStats> = this.subject.asObservable();

  constructor(
    private readonly metrics: PipelineMetrics | null,
    private readonly log: Logger,
    private readonly window: WindowReadings,
  ) {}

  get value(): PipelineStats {
    return this.subject.value;
  }

  /**
   * The stages as live consumption runs them, counting each message in: the run is busy from the
   * moment one enters while nothing is in flight until its batch (and any after it) is committed.
   */
  timed<T, R>(stages: (m: T) => R): (m: T) => R {
    return (m) => {
      if (this.inFlight++ === 0) this.busySince = performance.now();
      return stages(m);
    };
  }

  /** `n` messages are through their last commit. */
  private finished(n: number): void {
    if (n === 0 || this.inFlight === 0) return;
    this.inFlight = Math.max(0, this.inFlight - n);
    if (this.inFlight === 0) this.subject.value.busyMs += performance.now() - this.busySince;
  }

  /** A message bronze already held, recognised before or at its commit. */
  redelivered(recordedInMetrics = false): void {
    this.subject.value.redelivered++;
    if (recordedInMetrics) this.metrics?.redelivered.inc();
  }

  /** A bronze commit: `committed` new messages per entity label, in a batch of `size`, up to `last`. */
  bronzeCommitted(perEntity: ReadonlyMap<string, number>, committed: number, size: number, last: number, ms: number): void {
    this.subject.value.bronze += committed;
    // A batch bronze held entirely goes no further; any other one finishes at its gold commit.
    if (committed > 0) this.awaitingGold.push(size);
    else this.finished(size);
    if (!this.metrics) return;
    this.metrics.commitSeconds.observe({ layer: "bronze" }, ms / 1000);
    for (const [entity, k] of perEntity) this.metrics.messages.inc({ layer: "bronze", entity }, k);
    this.metrics.batchSize.observe(size);
    if (committed > 0) this.metrics.position.set({ layer: "bronze" }, last);
  }

  /** A silver commit (live or in recovery); returns its accepted records per entity. */
  silverCommitted(commit: SilverSummary, ms?: number): Map<string, number> {
    const s = this.subject.value;
    if (commit.window) this.window.report(commit.window);
    if (ms !== undefined) this.metrics?.commitSeconds.observe({ layer: "silver" }, ms / 1000);
    const perEntity = new Map<string, number>(commit.accepted);
    for (const [entity, n] of commit.accepted) s.silver[entity as Entity] += n;
    for (const [entity, n] of commit.duplicates) s.duplicates[entity] = (s.duplicates[entity] ?? 0) + n;
    for (const [key, n] of commit.quarantined) {
      const [entity, reason] = splitQuarantineKey(key);
      s.quarantined[reason] = (s.quarantined[reason] ?? 0) + n;
      this.metrics?.countQuarantine(entity, reason, n);
    }
    if (this.metrics) {
      for (const [entity, n] of perEntity) {
        this.metrics.messages.inc({ layer: "silver", entity }, n);
        this.metrics.silverRecords.inc({ entity: entityLabel(entity) }, n);
      }
      for (const [entity, n] of commit.duplicates) {
        this.metrics.duplicates.inc({ entity }, n);
        this.metrics.silverDuplicates.inc({ entity: entityLabel(entity) }, n);
      }
      this.metrics.position.set({ layer: "silver" }, commit.position);
    }
    return perEntity;
  }

  /** A gold commit: metrics, end-to-end latency, the stats emission and the checkpoint log. */
  goldCommitted(position: number, perEntity: ReadonlyMap<string, number>, publishedAt: readonly number[], ms: number): void {
    if (this.metrics) {
      this.metrics.commitSeconds.observe({ layer: "gold" }, ms / 1000);
      for (const [entity, n] of perEntity) this.metrics.messages.inc({ layer: "gold", entity }, n);
      this.metrics.position.set({ layer: "gold" }, position);
      const now = Date.now();
      for (const t of publishedAt) this.metrics.endToEnd.observe((now - t) / 1000);
    }
    this.finished(this.awaitingGold.shift() ?? 0);
    const s = this.subject.value;
    s.batches++;
    s.goldPosition = position;
    s.watermark = this.window.watermark;
    s.elapsedMs = Date.now() - s.startedAt;
    this.subject.next(s);
    const now = Date.now();
    if (now - this.lastCheckpointLog >= CHECKPOINT_LOG_INTERVAL_MS) {
      this.lastCheckpointLog = now;
      this.log.info(
        { event: "checkpoint", position, bronze: s.bronze, batches: s.batches, watermark: s.watermark === null ? null : new Date(s.watermark).toISOString() },
        `checkpoint at bronze sequence ${position}`,
      );
    } else {
      this.log.debug({ event: "commit", position }, "batch committed");
    }
  }

  /** The stats as the run ends. */
  final(): PipelineStats {
    const s = this.subject.value;
    // Stopped with work in flight (a failed commit): it was busy until now.
    if (this.inFlight > 0) {
      s.busyMs += performance.now() - this.busySince;
      this.busySince = performance.now();
    }
    s.elapsedMs = Date.now() - s.startedAt;
    s.watermark = this.window.watermark;
    return s;
  }
}

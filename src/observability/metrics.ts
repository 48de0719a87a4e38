/**
 * Prometheus metrics, one registry per topology (so several topologies can share a process).
 * Labels are bounded sets (layer, entity, reason): no customer id ever becomes a label.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Reason } from "../types.js";
import type { WindowReading } from "../runtime/layer-writer.js";
import type { JetStreamSource } from "../sources/jetstream.js";
import type { LayerTotals } from "./layer-totals.js";

import { entityLabel } from "./labels.js";

export { entityLabel };

/** Names of tributary's own metrics, as the dashboard and the docs use them. */
export const METRIC_NAMES = [
  "tributary_messages_total",
  "tributary_duplicates_total",
  "tributary_quarantined_total",
  "tributary_redelivered_total",
  "tributary_batch_commit_seconds",
  "tributary_batch_size",
  "tributary_end_to_end_latency_seconds",
  "tributary_consumer_pending",
  "tributary_consumer_ack_pending",
  "tributary_dedupe_cache_entries",
  "tributary_watermark_timestamp_seconds",
  "tributary_position",
  "tributary_silver_records",
  "tributary_silver_duplicates",
  "tributary_silver_quarantined",
  "tributary_up",
] as const;

export interface MetricsSources {
  /** Entries in the dedupe window. */
  dedupeEntries(): number;
  /** Highest event time seen (epoch ms), or null. */
  watermark(): number | null;
  /** Consumer state from the broker, or null when there is no broker source. */
  consumer(): Promise<{ pending: number; ackPending: number } | null>;
}

/**
 * prom-client exports three gauges named `*_total`, which `promtool check metrics` rejects
 * ("non-counter metrics should not have _total suffix"). They only sum the per-type gauges it
 * also exports (`nodejs_active_handles{type}`, …), so they are dropped.
 */
function dropLintFailingDefaults(registry: Registry): void {
  for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) {
    if (registry.getSingleMetric(name)) registry.removeSingleMetric(name);
  }
}

/** The topology's metrics. */
export class PipelineMetrics {
  readonly registry = new Registry();
  readonly messages: Counter<"layer" | "entity">;
  readonly duplicates: Counter<"entity">;
  readonly quarantined: Counter<"entity" | "reason">;
  readonly redelivered: Counter;
  readonly commitSeconds: Histogram<"layer">;
  readonly batchSize: Histogram;
  readonly endToEnd: Histogram;
  readonly position: Gauge<"layer">;
  /** What silver holds (all runs, not only this process's): seeded from the data dir, then kept current. */
  readonly silverRecords: Gauge<"entity">;
  readonly silverDuplicates: Gauge<"entity">;
  readonly silverQuarantined: Gauge<"entity" | "reason">;
  readonly up: Gauge;
  /** The data dir's watermark at start; the gauge shows the higher of it and the live one. */
  private seededWatermark: number | null = null;

  constructor(sources: MetricsSources, options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry });
      dropLintFailingDefaults(this.registry);
    }
    this.messages = new Counter({
      name: "tributary_messages_total",
      help: "Messages committed per layer: bronze counts every message received, silver and gold the valid records accepted.",
      labelNames: ["layer", "entity"],
      registers,
    });
    this.duplicates = new Counter({ name: "tributary_duplicates_total", help: "Valid records whose id was already accepted (kept in bronze only).", labelNames: ["entity"], registers });
    this.quarantined = new Counter({ name: "tributary_quarantined_total", help: "Messages quarantined in silver, by reason code.", labelNames: ["entity", "reason"], registers });
    this.redelivered = new Counter({ name: "tributary_redelivered_total", help: "Messages received again that bronze already held; skipped.", registers });
    this.commitSeconds = new Histogram({
      name: "tributary_batch_commit_seconds",
      help: "Duration of one batch's SQLite transaction, per layer.",
      labelNames: ["layer"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.batchSize = new Histogram({
      name: "tributary_batch_size",
      help: "Messages per committed batch.",
      buckets: [1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000],
      registers,
    });
    this.endToEnd = new Histogram({
      name: "tributary_end_to_end_latency_seconds",
      help: "From the JetStream publish timestamp to the gold commit that includes the message.",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.position = new Gauge({
      name: "tributary_position",
      help: "Each layer's position: the highest bronze sequence it has applied (read from the data dir at start).",
      labelNames: ["layer"],
      registers,
    });
    this.silverRecords = new Gauge({
      name: "tributary_silver_records",
      help: "Valid records silver has accepted, profile updates included, over every run (read from the data dir at start).",
      labelNames: ["entity"],
      registers,
    });
    this.silverDuplicates = new Gauge({
      name: "tributary_silver_duplicates",
      help: "Duplicates silver has listed, over every run (read from the data dir at start).",
      labelNames: ["entity"],
      registers,
    });
    this.silverQuarantined = new Gauge({
      name: "tributary_silver_quarantined",
      help: "Messages quarantined in silver by reason code, over every run (read from the data dir at start).",
      labelNames: ["entity", "reason"],
      registers,
    });
    this.up = new Gauge({ name: "tributary_up", help: "1 while the pipeline runs without failure.", registers });
    new Gauge({
      name: "tributary_dedupe_cache_entries",
      help: "Ids held in the in-memory dedupe window.",
      registers,
      collect() {
        this.set(sources.dedupeEntries());
      },
    });
    const watermark: Gauge = new Gauge({
      name: "tributary_watermark_timestamp_seconds",
      help: "Highest event time of the event records silver holds (read at start) or this run has seen since, as Unix seconds.",
      registers,
      collect: () => {
        const live = sources.watermark();
        const seeded = this.seededWatermark;
        const w = live === null ? seeded : seeded === null ? live : Math.max(live, seeded);
        if (w !== null) watermark.set(w / 1000);
      },
    });
    let consumerCache: { at: number; value: Promise<{ pending: number; ackPending: number } | null> } | null = null;
    // One broker round trip serves both gauges of a scrape (and scrapes within a second).
    const consumer = () => {
      if (!consumerCache || Date.now() - consumerCache.at > 1_000) {
        consumerCache = { at: Date.now(), value: sources.consumer().catch(() => null) };
      }
      return consumerCache.value;
    };
    new Gauge({
      name: "tributary_consumer_pending",
      help: "Messages in the stream not yet delivered to tributary's consumer (from the consumer info).",
      registers,
      async collect() {
        const c = await consumer();
        if (c) this.set(c.pending);
      },
    });
    new Gauge({
      name: "tributary_consumer_ack_pending",
      help: "Messages delivered to tributary but not yet acknowledged.",
      registers,
      async collect() {
        const c = await consumer();
        if (c) this.set(c.ackPending);
      },
    });
    this.up.set(1);
  }

  /**
   * Sets the data dir's numbers: positions, silver's totals and the watermark, as the layers hold
   * them at start. The commits then keep them current.
   */
  seed(totals: LayerTotals): void {
    this.seedPositions(totals.positions);
    for (const [gauge, counts] of [
      [this.silverRecords, totals.silver],
      [this.silverDuplicates, totals.duplicates],
    ] as const) {
      gauge.reset();
      for (const [entity, n] of counts) gauge.inc({ entity: entityLabel(entity) }, n);
    }
    this.silverQuarantined.reset();
    for (const q of totals.quarantine) this.silverQuarantined.inc({ entity: entityLabel(q.entity), reason: q.reason }, q.n);
    this.seededWatermark = totals.watermark;
  }

  /** Sets each layer's position (at start, and again once recovery has brought the layers up to bronze). */
  seedPositions(positions: LayerTotals["positions"]): void {
    for (const layer of ["bronze", "silver", "gold"] as const) this.position.set({ layer }, positions[layer]);
  }

  /** Counts a silver commit's quarantined messages, in the run's counter and silver's total. */
  countQuarantine(entity: string, reason: Reason, n: number): void {
    const labels = { entity: entityLabel(entity), reason };
    this.quarantined.inc(labels, n);
    this.silverQuarantined.inc(labels, n);
  }

  /** The text exposition, for `/metrics`. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }
}

/**
 * A topology's metrics, as its `metrics` option asks (null for false): the dedupe window's gauges,
 * and the consumer's from the JetStream source once there is one.
 */
export function topologyMetrics(option: boolean | "pipeline-only" | undefined, window: WindowReading, jetstream: () => JetStreamSource | null): PipelineMetrics | null {
  if (option === false) return null;
  const sources: MetricsSources = {
    dedupeEntries: () => window.size,
    watermark: () => window.watermark,
    consumer: async () => {
      const source = jetstream();
      if (!source) return null;
      const info = await source.info();
      return { pending: info.num_pending, ackPending: info.num_ack_pending };
    },
  };
  return new PipelineMetrics(sources, { defaultMetrics: option !== "pipeline-only" });
}

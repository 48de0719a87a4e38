/**
 * tributary itself: the full topology (`createTopology` with a draining JetStream source), every
 * batch committed to bronze, silver and gold. Timed from before `start()` until the gold commit
 * that covers the N-th message, observed on `stats$` (emitted right after each gold commit).
 */
import Database from "better-sqlite3";
import { existsSync, statSync } from "node:fs";
import { createTopology, type PipelineStats, type Topology } from "../src/topology.js";
import type { ConfigInput } from "../src/config.js";
import { layerPath, type Layer } from "../src/sinks/database.js";
import { cpuSince, peakRssMb, startRssSampler } from "./stats.js";
import type { PhaseResult } from "./ceiling.js";

export interface TributaryPhaseOptions {
  readonly url: string;
  readonly stream: string;
  readonly subjects: string[];
  readonly consumer: string;
  readonly events: number;
  readonly dataDir: string;
  /** Extra configuration (dedupe, batch, …) on top of the defaults. */
  readonly config?: Omit<ConfigInput, "nats" | "dataDir">;
}

/** Size of a SQLite file with its WAL, in bytes (0 when missing). */
export function fileBytes(path: string): number {
  let n = 0;
  for (const p of [path, `${path}-wal`]) if (existsSync(p)) n += statSync(p).size;
  return n;
}

/** The in-memory dedupe window's size, as the topology's metrics report it (null without metrics). */
async function dedupeEntries(t: Topology): Promise<number | null> {
  const text = await t.metrics?.text();
  const m = text && /^tributary_dedupe_cache_entries (\S+)$/m.exec(text);
  return m ? Number(m[1]) : null;
}

/** Runs the topology over the stream until it has drained, and reports throughput and footprint. */
export async function runTributary(o: TributaryPhaseOptions): Promise<PhaseResult> {
  const rss = startRssSampler();
  const cpu0 = process.cpuUsage();
  let cpuSeconds = 0;
  const t0 = performance.now();
  const topology = createTopology({
    dataDir: o.dataDir,
    source: { kind: "jetstream", drain: true },
    config: { ...o.config, nats: { url: o.url, stream: o.stream, subjects: o.subjects, consumer: o.consumer } },
  });
  const half = Math.ceil(o.events / 2);
  let tHalf: number | null = null;
  let cpuHalf = 0;
  let tGold: number | null = null;
  // CPU seconds at the gold commit that covers each tenth of the events: how the cost moves as state grows.
  const tenthMarks: number[] = [];
  const sub = topology.stats$.subscribe((s: PipelineStats) => {
    while (tenthMarks.length < 10 && s.goldPosition >= Math.ceil(((tenthMarks.length + 1) * o.events) / 10)) tenthMarks.push(cpuSince(cpu0));
    if (tHalf === null && s.bronze >= half) {
      tHalf = performance.now();
      cpuHalf = cpuSince(cpu0);
    }
    if (tGold === null && s.bronze >= o.events) {
      tGold = performance.now();
      cpuSeconds = cpuSince(cpu0);
    }
  });
  await topology.start();
  const stats = await topology.done;
  const tDone = performance.now();
  sub.unsubscribe();
  rss.stop();
  const dedupe = await dedupeEntries(topology);
  if (tGold === null) throw new Error(`tributary committed ${stats.bronze} of ${o.events} messages to gold`);
  const seconds = (tGold - t0) / 1000;
  const files = Object.fromEntries((["bronze", "silver", "gold"] as Layer[]).map((l) => [l, fileBytes(layerPath(o.dataDir, l))]));
  const gold = new Database(layerPath(o.dataDir, "gold"), { readonly: true });
  const customers = gold.prepare("SELECT count(*) FROM customer_features").pluck().get() as number;
  gold.close();
  const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
  return {
    events: stats.bronze,
    seconds,
    eps: stats.bronze / seconds,
    secondHalfEps: tHalf === null ? null : (o.events - half) / ((tGold - tHalf) / 1000),
    drainExitSeconds: (tDone - t0) / 1000,
    peakRssMb: peakRssMb(),
    cpuSeconds,
    /** CPU seconds of the second half of the events (the larger state). */
    secondHalfCpuSeconds: tHalf === null ? null : cpuSeconds - cpuHalf,
    /** CPU seconds spent in each tenth of the events (by gold's position), when all ten were seen. */
    tenthsCpuSeconds: tenthMarks.length === 10 ? tenthMarks.map((c, i) => c - (i === 0 ? 0 : tenthMarks[i - 1]!)) : null,
    endRssMb: rss.samples.at(-1)![1],
    rssSamples: rss.samples,
    files,
    valid: sum(stats.silver),
    duplicates: sum(stats.duplicates),
    quarantined: sum(stats.quarantined),
    batches: stats.batches,
    customers,
    dedupeEntries: dedupe,
  };
}

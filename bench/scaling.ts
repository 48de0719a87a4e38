/**
 * Scaling: tributary's throughput and memory as state grows. One series varies the number of
 * distinct customers (gold and silver keys, the segment cache); the other varies how many ids the
 * in-memory dedupe window holds. Every point consumes the same number of events, so the cost per
 * event is comparable across points.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ConfigInput } from "../src/config.js";
import { runWorker } from "./child.js";
import type { PhaseResult } from "./ceiling.js";
import { benchStream, deleteStream, preload, type BenchStream } from "./workload.js";

export interface ScalingOptions {
  readonly url: string;
  readonly runId: string;
  /** Events per point. */
  readonly events: number;
  readonly customers: readonly number[];
  readonly dedupeEntries: readonly number[];
  readonly seed: number;
  /** Configuration for every point; each point sets `dedupe` on top. */
  readonly config?: Omit<ConfigInput, "nats" | "dataDir">;
  /** Node flags for the tributary processes. */
  readonly execArgv?: string[];
  /** Another build's `dist/bench/worker.js`, run on the same stream right after this build at every point (a same-run A/B). */
  readonly baselineWorker?: string;
  readonly log: (line: string) => void;
}

/** One build's cost at a point: wall time and CPU time per event, over the run and over its second half, and its peak RSS. */
export interface PointCost {
  readonly eps: number;
  readonly cpuUsPerEvent: number;
  readonly secondHalfCpuUsPerEvent: number | null;
  readonly peakRssMb: number;
}

export interface ScalingPoint {
  readonly series: "customers" | "dedupe";
  readonly label: string;
  /** Distinct customers the stream references (and gold ends up holding). */
  readonly customers: number;
  /** `dedupe.maxEntries` configured for the point. */
  readonly dedupeMaxEntries: number;
  readonly dedupeWindow: string;
  readonly eps: number;
  readonly secondHalfEps: number | null;
  /** Microseconds per event over the whole run, and over its second half (the larger state). */
  readonly usPerEvent: number;
  readonly secondHalfUsPerEvent: number | null;
  readonly peakRssMb: number;
  readonly endRssMb: number;
  /** Rows in gold.customer_features at the end. */
  readonly goldCustomers: number;
  /** Ids held by the dedupe window at the end. */
  readonly dedupeHeld: number | null;
  readonly bytesPerEvent: { bronze: number; silver: number; gold: number };
  /** CPU time of the tributary process per event (all its threads), over the run and over its second half. */
  readonly cpuUsPerEvent: number;
  readonly secondHalfCpuUsPerEvent: number | null;
  /** CPU µs per event in each tenth of the events (by gold's position), first to last; null when not all were seen. */
  readonly tenthsCpuUsPerEvent: number[] | null;
  /** The `--baseline` build on the same stream, when given. */
  readonly baseline?: PointCost;
}

export interface ScalingResult {
  readonly events: number;
  readonly points: ScalingPoint[];
  /**
   * Within each series: cost per event (second half) at the largest state ÷ at the smallest. Above 1
   * means a bigger state makes every event dearer. `range` is highest ÷ lowest, either direction.
   */
  readonly growth: { customers: number | null; dedupe: number | null };
  readonly range: { customers: number | null; dedupe: number | null };
  /** The same growth in CPU time per event (second half), for this build and for the baseline. */
  readonly cpuGrowth: { customers: number | null; dedupe: number | null };
  readonly baselineCpuGrowth?: { customers: number | null; dedupe: number | null };
}

const DEFAULT_DEDUPE = { maxEntries: 200_000, window: "7d" };

const costOf = (p: ScalingPoint) => p.secondHalfUsPerEvent ?? p.usPerEvent;

function rangeOf(points: ScalingPoint[]): number | null {
  const costs = points.map(costOf);
  if (costs.length < 2) return null;
  return Math.max(...costs) / Math.min(...costs);
}

function growthOf(points: ScalingPoint[], size: (p: ScalingPoint) => number, cost: (p: ScalingPoint) => number | null = costOf): number | null {
  if (points.length < 2) return null;
  const sorted = [...points].sort((a, b) => size(a) - size(b));
  const [hi, lo] = [cost(sorted.at(-1)!), cost(sorted[0]!)];
  return hi === null || lo === null ? null : hi / lo;
}

const cpuCostOf = (p: ScalingPoint) => p.secondHalfCpuUsPerEvent ?? p.cpuUsPerEvent;
const baselineCostOf = (p: ScalingPoint) => (p.baseline ? (p.baseline.secondHalfCpuUsPerEvent ?? p.baseline.cpuUsPerEvent) : null);

function costAt(r: PhaseResult, events: number): PointCost {
  const half = r.secondHalfCpuSeconds as number | null;
  return {
    eps: r.eps,
    cpuUsPerEvent: (r.cpuSeconds / events) * 1e6,
    secondHalfCpuUsPerEvent: half === null ? null : (half / (events - Math.ceil(events / 2))) * 1e6,
    peakRssMb: r.peakRssMb,
  };
}

/**
 * Runs the customer series (default dedupe config) and the dedupe series (the largest customer
 * count, a window wide enough that `maxEntries` is the only bound). Streams are preloaded once per
 * customer count and deleted when no longer needed.
 */
export async function scaling(o: ScalingOptions): Promise<ScalingResult> {
  const maxCustomers = Math.max(...o.customers);
  const plan: Array<{ series: "customers" | "dedupe"; customers: number; dedupe: { maxEntries: number; window: string } }> = [
    ...o.customers.map((c) => ({ series: "customers" as const, customers: c, dedupe: DEFAULT_DEDUPE })),
    ...o.dedupeEntries.map((e) => ({ series: "dedupe" as const, customers: maxCustomers, dedupe: { maxEntries: e, window: "365d" } })),
  ];
  const streams = new Map<number, BenchStream>();
  const points: ScalingPoint[] = [];
  try {
    for (let i = 0; i < plan.length; i++) {
      const p = plan[i]!;
      let s = streams.get(p.customers);
      if (!s) {
        s = benchStream(o.runId, `c${p.customers}`);
        o.log(`scaling: preloading ${o.events.toLocaleString("en-US")} events over ${p.customers.toLocaleString("en-US")} customers`);
        const pre = await preload(o.url, s, { seed: o.seed, messages: o.events, exactCustomers: p.customers });
        o.log(`  stored in ${pre.seconds.toFixed(1)} s`);
        streams.set(p.customers, s);
      }
      const label = p.series === "customers" ? `${fmtCount(p.customers)} customers` : `${fmtCount(p.dedupe.maxEntries)} dedupe entries`;
      o.log(`scaling: ${label} (dedupe.maxEntries ${p.dedupe.maxEntries}, window ${p.dedupe.window})`);
      const dataDir = mkdtempSync(join(tmpdir(), "tributary-bench-scale-"));
      try {
        const config: Omit<ConfigInput, "nats" | "dataDir"> = { ...o.config, dedupe: p.dedupe };
        const r = await runWorker<PhaseResult>({
          kind: "tributary",
          url: o.url,
          stream: s.name,
          subjects: s.subjects,
          consumer: `scale-${i}`,
          events: o.events,
          dataDir,
          config,
        }, { execArgv: o.execArgv });
        const files = r.files as { bronze: number; silver: number; gold: number };
        const half = r.secondHalfEps as number | null;
        let baseline: PointCost | undefined;
        if (o.baselineWorker) {
          const baseDir = mkdtempSync(join(tmpdir(), "tributary-bench-scale-base-"));
          try {
            const b = await runWorker<PhaseResult>(
              { kind: "tributary", url: o.url, stream: s.name, subjects: s.subjects, consumer: `scale-base-${i}`, events: o.events, dataDir: baseDir, config },
              { execArgv: o.execArgv, worker: o.baselineWorker },
            );
            baseline = costAt(b, o.events);
          } finally {
            rmSync(baseDir, { recursive: true, force: true });
          }
        }
        const cost = costAt(r, o.events);
        const point: ScalingPoint = {
          series: p.series,
          label,
          customers: p.customers,
          dedupeMaxEntries: p.dedupe.maxEntries,
          dedupeWindow: p.dedupe.window,
          eps: r.eps,
          secondHalfEps: half,
          usPerEvent: 1e6 / r.eps,
          secondHalfUsPerEvent: half ? 1e6 / half : null,
          peakRssMb: r.peakRssMb,
          endRssMb: r.endRssMb as number,
          goldCustomers: r.customers as number,
          dedupeHeld: r.dedupeEntries as number | null,
          bytesPerEvent: { bronze: files.bronze / o.events, silver: files.silver / o.events, gold: files.gold / o.events },
          cpuUsPerEvent: cost.cpuUsPerEvent,
          secondHalfCpuUsPerEvent: cost.secondHalfCpuUsPerEvent,
          tenthsCpuUsPerEvent: Array.isArray(r.tenthsCpuSeconds) ? (r.tenthsCpuSeconds as number[]).map((c) => (c / (o.events / 10)) * 1e6) : null,
          ...(baseline ? { baseline } : {}),
        };
        points.push(point);
        const tenths = point.tenthsCpuUsPerEvent;
        if (tenths) o.log(`  CPU µs/event by tenth: ${tenths.map((t) => t.toFixed(1)).join(", ")}; last ÷ first ${(tenths[9]! / tenths[0]!).toFixed(2)}×`);
        o.log(
          `  ${Math.round(point.eps)} ev/s (second half ${half ? Math.round(half) : "?"}), peak RSS ${point.peakRssMb.toFixed(0)} MB, ` +
            `gold customers ${point.goldCustomers}, dedupe ids held ${point.dedupeHeld}; CPU ${point.cpuUsPerEvent.toFixed(1)} µs/event (second half ${point.secondHalfCpuUsPerEvent?.toFixed(1) ?? "?"})` +
            (baseline
              ? `; baseline ${Math.round(baseline.eps)} ev/s, CPU ${baseline.cpuUsPerEvent.toFixed(1)} µs/event (second half ${baseline.secondHalfCpuUsPerEvent?.toFixed(1) ?? "?"}), peak RSS ${baseline.peakRssMb.toFixed(0)} MB`
              : ""),
        );
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
      const stillNeeded = plan.slice(i + 1).some((q) => q.customers === p.customers);
      if (!stillNeeded) {
        await deleteStream(o.url, s);
        streams.delete(p.customers);
      }
    }
  } finally {
    for (const s of streams.values()) await deleteStream(o.url, s).catch(() => undefined);
  }
  return {
    events: o.events,
    points,
    growth: {
      customers: growthOf(points.filter((p) => p.series === "customers"), (p) => p.customers),
      dedupe: growthOf(points.filter((p) => p.series === "dedupe"), (p) => p.dedupeMaxEntries),
    },
    range: { customers: rangeOf(points.filter((p) => p.series === "customers")), dedupe: rangeOf(points.filter((p) => p.series === "dedupe")) },
    cpuGrowth: {
      customers: growthOf(points.filter((p) => p.series === "customers"), (p) => p.customers, cpuCostOf),
      dedupe: growthOf(points.filter((p) => p.series === "dedupe"), (p) => p.dedupeMaxEntries, cpuCostOf),
    },
    ...(o.baselineWorker
      ? {
          baselineCpuGrowth: {
            customers: growthOf(points.filter((p) => p.series === "customers"), (p) => p.customers, baselineCostOf),
            dedupe: growthOf(points.filter((p) => p.series === "dedupe"), (p) => p.dedupeMaxEntries, baselineCostOf),
          },
        }
      : {}),
  };
}

/** 10000 → "10k", 1000000 → "1M". */
export function fmtCount(n: number): string {
  if (n >= 1_000_000 && n % 100_000 === 0) return `${n / 1_000_000}M`;
  if (n >= 1_000 && n % 100 === 0) return `${n / 1_000}k`;
  return String(n);
}

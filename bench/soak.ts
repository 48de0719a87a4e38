/**
 * The soak: a long live run at a fixed share of measured throughput, judged on memory. RSS is
 * sampled in the topology process; after a warm-up (caches and the dedupe window filling up) it
 * must not grow by more than 10%.
 */
import type { ConfigInput } from "../src/config.js";
import { median, type RssSample } from "./stats.js";
import { liveRun, type LiveRunResult } from "./latency.js";

export interface SoakResult {
  readonly seconds: number;
  readonly rate: number;
  readonly warmupSeconds: number;
  /** Median RSS over the 10 s right after the warm-up. */
  readonly rssAfterWarmupMb: number;
  /** Median RSS over the last 10 s of publishing. */
  readonly rssEndMb: number;
  readonly rssMaxAfterWarmupMb: number;
  /** (end − after warm-up) / after warm-up, in percent. */
  readonly growthPct: number;
  /** (max − after warm-up) / after warm-up, in percent. */
  readonly maxGrowthPct: number;
  readonly live: Omit<LiveRunResult, "rssSamples">;
  readonly rssSamples: RssSample[];
}

/** RSS growth after warm-up, from samples taken while publishing ran from `startSec` for `seconds`. */
export function rssGrowth(samples: RssSample[], startSec: number, warmupSeconds: number, seconds: number) {
  const warm = startSec + warmupSeconds;
  const end = startSec + seconds;
  const window = (a: number, b: number) => samples.filter(([t]) => t >= a && t <= b).map(([, v]) => v);
  const after = window(warm, warm + 10);
  const last = window(end - 10, end);
  const rest = window(warm, end);
  const base = median(after);
  const endMb = median(last);
  const max = Math.max(...rest);
  return {
    rssAfterWarmupMb: base,
    rssEndMb: endMb,
    rssMaxAfterWarmupMb: max,
    growthPct: ((endMb - base) / base) * 100,
    maxGrowthPct: ((max - base) / base) * 100,
  };
}

/** Runs the soak: `seconds` of publishing at `rate`, RSS judged after min(60 s, 25%) of warm-up. */
export async function soak(o: {
  url: string;
  runId: string;
  rate: number;
  seconds: number;
  config?: Omit<ConfigInput, "nats" | "dataDir">;
  execArgv?: string[];
  serverCpu?: (() => number | null) | null;
  log?: (l: string) => void;
}): Promise<SoakResult> {
  const warmupSeconds = Math.min(60, Math.round(o.seconds * 0.25));
  const live = await liveRun({
    url: o.url,
    runId: o.runId,
    tag: "soak",
    rate: o.rate,
    seconds: o.seconds,
    warmupSeconds: 0,
    seed: 9,
    rssIntervalMs: 1_000,
    config: o.config,
    execArgv: o.execArgv,
    serverCpu: o.serverCpu,
    log: o.log,
  });
  const { rssSamples, ...rest } = live;
  return {
    seconds: o.seconds,
    rate: o.rate,
    warmupSeconds,
    ...rssGrowth(rssSamples, live.readyAtSec, warmupSeconds, o.seconds),
    live: rest,
    rssSamples,
  };
}

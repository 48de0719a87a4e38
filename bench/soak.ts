/**
 * The soak: a long live run at a fixed share of measured throughput, judged on memory. RSS is
 * sampled every second in the topology process; after a warm-up (caches and the dedupe window
 * filling up) it must not grow by more than 10%.
 */
import type { ConfigInput } from "../src/config.js";
import type { RssSample } from "./stats.js";
import { liveRun, type LiveRunResult } from "./latency.js";

export interface SoakResult {
  readonly seconds: number;
  readonly rate: number;
  readonly warmupSeconds: number;
  /** Mean and highest RSS over the first and the second half of the time after warm-up. */
  readonly rssFirstHalfMeanMb: number;
  readonly rssSecondHalfMeanMb: number;
  readonly rssFirstHalfMaxMb: number;
  readonly rssSecondHalfMaxMb: number;
  /** Second half against first half, in percent: of the means, and of the peaks. */
  readonly growthPct: number;
  readonly peakGrowthPct: number;
  readonly live: Omit<LiveRunResult, "rssSamples">;
  /** Per window of the run (a minute by default): what tributary committed, and what it cost. */
  readonly timeline: SoakWindow[];
  readonly rssSamples: RssSample[];
}

export interface SoakWindow {
  /** Seconds since publishing began, at the window's start. */
  readonly fromSec: number;
  readonly seconds: number;
  /** Messages committed per second in the window. */
  readonly committedPerSec: number;
  /** Cores the tributary process used (CPU seconds per second, all threads). */
  readonly cpuShare: number;
  /** CPU microseconds per committed message (null when none committed). */
  readonly cpuUsPerEvent: number | null;
  readonly rssMeanMb: number;
}

/**
 * Splits the samples from `startSec` on into windows of `windowSec`: throughput, CPU and RSS per
 * window, so a cost per event that rises with the run (bigger files, a fuller heap) shows up.
 */
export function soakTimeline(samples: readonly RssSample[], startSec: number, windowSec = 60): SoakWindow[] {
  const after = samples.filter(([t]) => t >= startSec);
  const out: SoakWindow[] = [];
  let i = 0;
  while (i < after.length - 1) {
    const from = after[i]!;
    let j = i + 1;
    while (j < after.length - 1 && after[j]![0] - from[0] < windowSec) j++;
    const to = after[j]!;
    const dt = to[0] - from[0];
    if (dt <= 0) break;
    const dn = to[3] - from[3];
    const dcpu = to[2] - from[2];
    const rss = after.slice(i, j + 1).map((s) => s[1]);
    out.push({
      fromSec: from[0] - startSec,
      seconds: dt,
      committedPerSec: dn / dt,
      cpuShare: dcpu / dt,
      cpuUsPerEvent: dn > 0 ? (dcpu / dn) * 1e6 : null,
      rssMeanMb: rss.reduce((a, b) => a + b, 0) / rss.length,
    });
    i = j;
  }
  return out;
}

/**
 * RSS growth after warm-up, from samples taken while publishing ran from `startSec` for `seconds`.
 * V8 releases memory in a sawtooth with a period of a minute or two, so single points (or short
 * windows) at the start and the end measure the phase of the sawtooth, not growth. This compares
 * the two halves of the post-warm-up period instead: their means, and their peaks. A leak raises
 * both; a bounded heap keeps both level.
 */
export function rssGrowth(samples: RssSample[], startSec: number, warmupSeconds: number, seconds: number) {
  const warm = startSec + warmupSeconds;
  const end = startSec + seconds;
  const mid = warm + (end - warm) / 2;
  const window = (a: number, b: number) => samples.filter(([t]) => t >= a && t < b).map(([, v]) => v);
  const first = window(warm, mid);
  const second = window(mid, end + 1);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const m1 = mean(first);
  const m2 = mean(second);
  const p1 = Math.max(...first);
  const p2 = Math.max(...second);
  return {
    rssFirstHalfMeanMb: m1,
    rssSecondHalfMeanMb: m2,
    rssFirstHalfMaxMb: p1,
    rssSecondHalfMaxMb: p2,
    growthPct: ((m2 - m1) / m1) * 100,
    peakGrowthPct: ((p2 - p1) / p1) * 100,
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
    timeline: soakTimeline(rssSamples, live.readyAtSec),
    rssSamples,
  };
}

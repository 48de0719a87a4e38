/** Small statistics helpers for the bench: percentiles, medians, RSS and CPU sampling. */
import { readdirSync, readFileSync } from "node:fs";

/** The q-quantile (0..1) of sorted values, nearest-rank. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

/** Median of unsorted values. */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return quantile(s, 0.5);
}

/** Megabytes, from bytes. */
export const mb = (bytes: number): number => bytes / (1024 * 1024);

/** Peak resident set size of this process so far, in MB (`ru_maxrss`). */
export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/**
 * One sample: seconds since the sampler started, RSS in MB, this process's CPU seconds so far (all
 * threads), and the sampler's `count` (for a topology, messages committed so far; 0 without one).
 */
export type RssSample = [seconds: number, rssMb: number, cpuSeconds: number, count: number];

/** Samples this process's RSS and CPU (and an optional counter) every `intervalMs` until stopped. */
export function startRssSampler(
  intervalMs = 1_000,
  count: () => number = () => 0,
): { samples: RssSample[]; elapsedSec(): number; stop(): RssSample[] } {
  const samples: RssSample[] = [];
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const take = () => samples.push([(performance.now() - t0) / 1000, mb(process.memoryUsage.rss()), cpuSince(cpu0), count()]);
  take();
  const timer = setInterval(take, intervalMs);
  timer.unref();
  return {
    samples,
    elapsedSec: () => (performance.now() - t0) / 1000,
    stop() {
      clearInterval(timer);
      take();
      return samples;
    },
  };
}

/** Wall-clock epoch milliseconds with sub-millisecond resolution, comparable across processes on one host. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** CPU seconds (user + system) this process has used since `start` (from `process.cpuUsage()`). */
export function cpuSince(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1e6;
}

/**
 * CPU seconds used so far by the nats-server listening on `port`, read from /proc (Linux only);
 * null when it cannot be found. Lets the report say how much CPU the broker itself needed.
 */
export function natsServerCpuReader(port: number): (() => number | null) | null {
  let pid: string | null = null;
  try {
    for (const d of readdirSync("/proc")) {
      if (!/^\d+$/.test(d)) continue;
      let cmd: string;
      try {
        cmd = readFileSync(`/proc/${d}/cmdline`, "utf8");
      } catch {
        continue;
      }
      const args = cmd.split("\0");
      if (args[0]?.endsWith("nats-server") && args.includes("-p") && args[args.indexOf("-p") + 1] === String(port)) {
        pid = d;
        break;
      }
    }
  } catch {
    return null;
  }
  if (pid === null) return null;
  const ticks = 100; // USER_HZ on Linux
  return () => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return (Number(fields[11]) + Number(fields[12])) / ticks;
    } catch {
      return null;
    }
  };
}

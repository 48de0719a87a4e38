/**
 * The soak's arithmetic: RSS growth between the halves after warm-up, and the per-window timeline
 * of throughput and CPU cost, on samples whose answers are known.
 */
import { describe, expect, it } from "vitest";
import { rssGrowth, soakTimeline } from "../../bench/soak.js";
import type { RssSample } from "../../bench/stats.js";

/** One sample a second from 0 to `seconds`: `rss(t)`, CPU at `cores` and `rate` messages a second from `start`. */
function samples(seconds: number, o: { start: number; rate: number; cores: number; rss: (t: number) => number }): RssSample[] {
  const out: RssSample[] = [];
  for (let t = 0; t <= seconds; t++) {
    const live = Math.max(0, t - o.start);
    out.push([t, o.rss(t), t * o.cores, live * o.rate]);
  }
  return out;
}

describe("soakTimeline", () => {
  it("reports rate, cores, CPU per event and mean RSS per window, from the start of publishing", () => {
    const s = samples(130, { start: 10, rate: 1_000, cores: 0.5, rss: (t) => (t < 70 ? 100 : 200) });
    const w = soakTimeline(s, 10, 60);
    expect(w.map((x) => x.fromSec)).toEqual([0, 60]);
    for (const x of w) {
      expect(x.seconds).toBe(60);
      expect(x.committedPerSec).toBeCloseTo(1_000, 9);
      expect(x.cpuShare).toBeCloseTo(0.5, 9);
      expect(x.cpuUsPerEvent).toBeCloseTo(500, 6); // 0.5 CPU s per 1,000 messages
    }
    expect(w[0]!.rssMeanMb).toBeCloseTo((60 * 100 + 200) / 61, 9); // samples 10..70 inclusive
    expect(w[1]!.rssMeanMb).toBe(200);
  });

  it("shows a cost per event that rises while throughput stays level", () => {
    // CPU grows quadratically: each second costs more than the last.
    const s: RssSample[] = [];
    for (let t = 0; t <= 120; t++) s.push([t, 100, (t * t) / 240, t * 100]);
    const w = soakTimeline(s, 0, 60);
    expect(w).toHaveLength(2);
    expect(w[0]!.committedPerSec).toBeCloseTo(w[1]!.committedPerSec, 9);
    expect(w[1]!.cpuUsPerEvent! / w[0]!.cpuUsPerEvent!).toBeCloseTo(3, 9); // (120²−60²) / 60²
  });

  it("keeps a short last window and says null when nothing was committed", () => {
    const s = samples(80, { start: 0, rate: 0, cores: 1, rss: () => 50 });
    const w = soakTimeline(s, 0, 60);
    expect(w.map((x) => x.seconds)).toEqual([60, 20]);
    expect(w.every((x) => x.cpuUsPerEvent === null && x.committedPerSec === 0)).toBe(true);
  });
});

describe("rssGrowth", () => {
  it("compares the means and the peaks of the two halves after warm-up", () => {
    const s = samples(130, { start: 0, rate: 0, cores: 0, rss: (t) => (t < 20 ? 500 : t < 75 ? 100 : 110) });
    const g = rssGrowth(s, 10, 10, 120);
    expect(g.rssFirstHalfMeanMb).toBe(100);
    expect(g.rssSecondHalfMeanMb).toBe(110);
    expect(g.growthPct).toBeCloseTo(10, 9);
    expect(g.peakGrowthPct).toBeCloseTo(10, 9);
  });
});

/**
 * The results chart: throughput bars (ceiling, single-table floor, tributary, naive) and live latency percentiles per
 * load, as a self-contained SVG that GitHub renders inline in the README. Written by hand: a few
 * rectangles and labels do not justify a charting dependency. Re-render from a results file with
 *
 *   node dist/bench/svg.js bench/results/dd7668c.json bench/results/bench.svg
 */
import { readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import type { BenchResults } from "./report.js";
import { describeMachine } from "./machine.js";

export interface ChartInput {
  readonly title: string;
  readonly footer: string;
  readonly throughput: ReadonlyArray<{ name: string; eps: number; note?: string }>;
  readonly latency: ReadonlyArray<{ label: string; p50: number; p95: number; p99: number; max: number }>;
  /** Target line on the throughput panel (events/s), with its label. */
  readonly throughputTarget?: { eps: number; label: string };
  /** Target line on the latency panel (ms), with its label. */
  readonly latencyTarget?: { ms: number; label: string };
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const BAR_COLORS = ["#7f8c8d", "#2f6fb0", "#b0b7bb"];
const LOAD_COLORS = ["#e07b39", "#a63603", "#fdae6b", "#7f2704"];
const fmtInt = (n: number) => Math.round(n).toLocaleString("en-US");

/** Renders the chart. */
export function renderChart(c: ChartInput): string {
  const W = 1000;
  const H = 450;
  const out: string[] = [];
  const text = (x: number, y: number, s: string, attrs = "") => out.push(`<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${esc(s)}</text>`);
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
  );
  text(20, 28, c.title, `font-size="16" font-weight="bold" fill="#222"`);

  // Throughput: horizontal bars.
  const tx = 20;
  const ty = 60;
  const labelW = 80;
  const barMax = 300;
  text(tx, ty, "Throughput, events/s (higher is better)", `font-weight="bold" fill="#333"`);
  const maxEps = Math.max(1, ...c.throughput.map((t) => t.eps));
  if (c.throughputTarget) {
    const x = tx + labelW + (c.throughputTarget.eps / maxEps) * barMax;
    const bottom = ty + 25 + c.throughput.length * 80 - 20;
    out.push(`<line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${ty + 15}" y2="${bottom}" stroke="#c0392b" stroke-dasharray="5,4"/>`);
    text(x, bottom + 14, c.throughputTarget.label, `text-anchor="middle" fill="#c0392b" font-size="11"`);
  }
  c.throughput.forEach((t, i) => {
    const y = ty + 25 + i * 80;
    const w = Math.max(1, (t.eps / maxEps) * barMax);
    text(tx, y + 19, t.name, `fill="#333"`);
    out.push(`<rect x="${tx + labelW}" y="${y}" width="${w.toFixed(1)}" height="28" fill="${BAR_COLORS[i % BAR_COLORS.length]}" rx="2"/>`);
    text(tx + labelW + w + 6, y + 19, fmtInt(t.eps), `fill="#222" font-weight="bold"`);
    if (t.note) text(tx + labelW, y + 44, t.note, `fill="#666" font-size="11"`);
  });

  // Latency: grouped bars on a log scale.
  const lx = 520;
  const ly = 60;
  const plotTop = ly + 30;
  const plotH = 260;
  const plotBottom = plotTop + plotH;
  const plotLeft = lx + 40;
  const plotW = 420;
  text(lx, ly, "Publish → gold commit latency, ms (log scale)", `font-weight="bold" fill="#333"`);
  if (c.latency.length === 0) {
    text(plotLeft, plotTop + 40, "latency not measured in this run", `fill="#888"`);
  } else {
    const all = c.latency.flatMap((l) => [l.p50, l.p95, l.p99, l.max]).filter((v) => v > 0);
    const lo = Math.pow(10, Math.floor(Math.log10(Math.max(0.1, Math.min(...all)))));
    const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...all, c.latencyTarget?.ms ?? 0, lo * 10))));
    const yOf = (v: number) => plotBottom - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotH;
    for (let d = lo; d <= hi * 1.001; d *= 10) {
      const y = yOf(d);
      out.push(`<line x1="${plotLeft}" x2="${plotLeft + plotW}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#e3e3e3"/>`);
      text(plotLeft - 6, y + 4, d >= 1 ? String(d) : d.toFixed(1), `text-anchor="end" fill="#666" font-size="11"`);
    }
    const metrics = ["p50", "p95", "p99", "max"] as const;
    const groupW = plotW / metrics.length;
    const barW = Math.min(32, (groupW - 16) / c.latency.length);
    metrics.forEach((m, gi) => {
      const gx = plotLeft + gi * groupW + (groupW - barW * c.latency.length) / 2;
      c.latency.forEach((l, li) => {
        const v = l[m];
        const y = yOf(v);
        out.push(
          `<rect x="${(gx + li * barW).toFixed(1)}" y="${y.toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(plotBottom - y).toFixed(1)}" fill="${LOAD_COLORS[li % LOAD_COLORS.length]}"/>`,
        );
        text(gx + li * barW + (barW - 2) / 2, y - 4, v >= 100 ? fmtInt(v) : v.toFixed(1), `text-anchor="middle" fill="#222" font-size="10"`);
      });
      text(plotLeft + gi * groupW + groupW / 2, plotBottom + 16, m, `text-anchor="middle" fill="#333"`);
    });
    out.push(`<line x1="${plotLeft}" x2="${plotLeft}" y1="${plotTop}" y2="${plotBottom}" stroke="#999"/>`);
    out.push(`<line x1="${plotLeft}" x2="${plotLeft + plotW}" y1="${plotBottom}" y2="${plotBottom}" stroke="#999"/>`);
    c.latency.forEach((l, li) => {
      const x = plotLeft + li * 135;
      out.push(`<rect x="${x}" y="${plotBottom + 28}" width="12" height="12" fill="${LOAD_COLORS[li % LOAD_COLORS.length]}"/>`);
      text(x + 16, plotBottom + 38, l.label, `fill="#333" font-size="11"`);
    });
    if (c.latencyTarget) {
      const y = yOf(c.latencyTarget.ms);
      out.push(`<line x1="${plotLeft}" x2="${plotLeft + plotW}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#c0392b" stroke-dasharray="5,4"/>`);
      out.push(`<line x1="${plotLeft}" x2="${plotLeft + 12}" y1="${plotBottom + 52}" y2="${plotBottom + 52}" stroke="#c0392b" stroke-dasharray="4,3"/>`);
      text(plotLeft + 16, plotBottom + 56, c.latencyTarget.label, `fill="#c0392b" font-size="11"`);
    }
  }
  text(20, H - 12, c.footer, `fill="#666" font-size="11"`);
  out.push("</svg>");
  return out.join("\n") + "\n";
}

/** The chart of a run's results. */
export function chartFromResults(r: BenchResults): string {
  const date = r.startedAt.slice(0, 10);
  return renderChart({
    title: `tributary bench: ${r.events.toLocaleString("en-US")} events (${date})`,
    footer: `${describeMachine(r.machine)}. tributary/ceiling ${r.ratio_ceiling.toFixed(2)}, tributary/naive ${r.ratio_naive.toFixed(2)}.`,
    throughput: [
      { name: "ceiling", eps: r.ceiling_eps, note: "nats.js consume + decode + ack per batch" },
      { name: "floor", eps: r.floor.eps, note: "one table, one row per event, batched: no dedupe, layers or features" },
      { name: "tributary", eps: r.tributary_eps, note: `${r.ratio_ceiling.toFixed(2)}× ceiling, ${r.ratio_naive.toFixed(1)}× naive; to gold` },
      { name: "naive", eps: r.naive_eps, note: "per message: decode, validate, INSERT, ack" },
    ],
    latency: r.latency.map((l) => ({ label: `${Math.round(l.load * 100)}% load (${Math.round(l.rate).toLocaleString("en-US")}/s)`, ...l.latencyMs })),
    throughputTarget: { eps: 0.7 * r.ceiling_eps, label: "target: 0.7 × ceiling" },
    latencyTarget: { ms: 100, label: "target: p99 ≤ 100 ms at 50% load" },
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [input, output] = process.argv.slice(2);
  if (!input || !output) {
    process.stderr.write("usage: node dist/bench/svg.js RESULTS.json OUT.svg\n");
    process.exit(2);
  }
  writeFileSync(output, chartFromResults(JSON.parse(readFileSync(input, "utf8")) as BenchResults));
}

/** The run's results: the JSON document, the stdout table, and the target verdicts. */
import type { MachineInfo } from "./machine.js";
import { describeMachine } from "./machine.js";
import type { LiveRunResult } from "./latency.js";
import type { ScalingResult } from "./scaling.js";
import type { SoakResult } from "./soak.js";
import type { MicroResult } from "./micro.js";
import type { ProfileSummary } from "./profile.js";
import type { LookupResult } from "./lookup.js";

export interface PhaseSummary {
  readonly eps: number;
  readonly seconds: number;
  readonly peakRssMb: number;
  /** CPU time of the phase's process per event (µs), and of nats-server meanwhile (null with --nats). */
  readonly cpuUsPerEvent: number;
  readonly serverCpuUsPerEvent: number | null;
  /** Every round's events/s, when `--repeat` > 1. */
  readonly rounds: number[];
}

export interface LatencyRow extends Omit<LiveRunResult, "rssSamples" | "readyAtSec"> {
  readonly load: number;
}

export interface Target {
  readonly name: string;
  readonly target: string;
  readonly value: string;
  /** null when not measured in this run. */
  readonly met: boolean | null;
}

export interface BenchResults {
  readonly events: number;
  readonly ceiling_eps: number;
  readonly naive_eps: number;
  readonly tributary_eps: number;
  readonly ratio_ceiling: number;
  readonly ratio_naive: number;
  /**
   * The single-table floor: the naive consumer with one transaction and one cumulative ack per
   * batch. What keeping one durable SQLite row per event costs at the least; `ratio` is tributary's
   * throughput over it.
   */
  readonly floor: { eps: number; ratio_ceiling: number; ratio: number };
  /** tributary with the README's custom features added, on the same stream; `ratio` is over plain tributary. */
  readonly custom_features?: { count: number; eps: number; ratio: number; cpuUsPerEvent: number | null };
  /** `--baseline`: another build on the same stream in each round; `ratio` is this build's throughput over it, `cpuRatio` its CPU per event over it. */
  readonly baseline?: { dir: string; eps: number; ratio: number; cpuRatio: number | null };
  /** The naive consumer at synchronous=NORMAL, whose acks can outrun a power cut (null when skipped). */
  readonly naive_relaxed: { events: number; eps: number; pragmas: string; ratio: number } | null;
  /** The naive consumer with SQLite's default pragmas, on the first events only (null when skipped). */
  readonly naive_sqlite_defaults: { events: number; eps: number; pragmas: string; ratio: number } | null;
  /** Publish → gold commit at 50% of measured throughput (null when latency was skipped). */
  readonly latency_ms: { p50: number; p95: number; p99: number; max: number } | null;
  /** Peak RSS of the tributary process in the main run. */
  readonly rss_mb: number;
  readonly bytes_per_event: { bronze: number; silver: number; gold: number; tributary_total: number; naive: number };
  readonly phases: { ceiling: PhaseSummary; naive: PhaseSummary; floor: PhaseSummary; tributary: PhaseSummary & { drainExitSeconds: number; batches: number } };
  readonly counts: { valid: number; duplicates: number; quarantined: number };
  readonly latency: LatencyRow[];
  readonly scaling: ScalingResult | null;
  /** Online lookups (`GET /features/<id>` and `features.get`), idle and under ingest (null when skipped). */
  readonly lookup?: LookupResult | null;
  readonly soak: Omit<SoakResult, "rssSamples"> | null;
  readonly micro: MicroResult[] | null;
  /** The main thread (NATS client, operators) of a profiled tributary run. */
  readonly profile: ProfileSummary | null;
  /** The commit worker thread (SQLite) of the same run, when it had one. */
  readonly workerProfile: ProfileSummary | null;
  readonly targets: Target[];
  readonly machine: MachineInfo;
  readonly startedAt: string;
  readonly durationSeconds: number;
  readonly options: Record<string, unknown>;
  /** Sections that failed; their results are missing (the run exits 1). */
  readonly errors: { section: string; message: string }[];
}

const int = (n: number) => Math.round(n).toLocaleString("en-US");
const f1 = (n: number) => n.toFixed(1);
const f2 = (n: number) => n.toFixed(2);
const pct = (share: number) => `${Math.round(share * 100)}%`;

/** A plain text table with right-aligned numeric columns. */
export function table(headers: string[], rows: string[][], left: readonly number[] = [0], indent = "  "): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    indent + cells.map((c, i) => (left.includes(i) ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ").trimEnd();
  return [line(headers), indent + widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/** Verdicts for the issue's targets. */
export function evaluateTargets(r: Omit<BenchResults, "targets">): Target[] {
  const t: Target[] = [];
  t.push({ name: "tributary / ceiling", target: "≥ 0.70 (issue 12: ≥ 0.35)", value: f2(r.ratio_ceiling), met: r.ratio_ceiling >= 0.7 });
  t.push({
    name: "tributary / single-table floor",
    target: "≥ 0.70",
    value: `${f2(r.floor.ratio)} (the floor itself is ${f2(r.floor.ratio_ceiling)}× the ceiling)`,
    met: r.floor.ratio >= 0.7,
  });
  const d = r.naive_sqlite_defaults;
  t.push({
    name: "tributary / naive",
    target: "≥ 5.0",
    value:
      `${f2(r.ratio_naive)} (same durability)` +
      (r.naive_relaxed ? `; ${f2(r.naive_relaxed.ratio)} vs naive at NORMAL` : "") +
      (d ? `; ${f1(d.ratio)} vs naive on SQLite defaults` : ""),
    met: r.ratio_naive >= 5,
  });
  // Every run at 50% counts (`--loads 0.5,0.5,0.5` gives three consecutive ones): each must meet it.
  const l50 = r.latency.filter((l) => Math.abs(l.load - 0.5) < 1e-9);
  t.push({
    name: `p99 latency at 50% load${l50.length > 1 ? `, each of ${l50.length} runs` : ""}`,
    target: "≤ 100 ms",
    value: l50.length ? `${l50.map((l) => f1(l.latencyMs.p99)).join(", ")} ms` : "not measured",
    met: l50.length ? l50.every((l) => l.latencyMs.p99 <= 100) : null,
  });
  const big = r.scaling?.points.find((p) => p.series === "dedupe" && p.customers >= 1_000_000 && p.dedupeMaxEntries >= 1_000_000);
  t.push({
    name: "RSS, 1M customers + 1M dedupe entries",
    target: "≤ 300 MB",
    value: big ? `${f1(big.peakRssMb)} MB (held ${big.dedupeHeld?.toLocaleString("en-US") ?? "?"} ids, ${big.goldCustomers.toLocaleString("en-US")} customers)` : "not measured",
    met: big ? big.peakRssMb <= 300 : null,
  });
  for (const series of ["customers", "dedupe"] as const) {
    const g = r.scaling?.growth[series] ?? null;
    const range = r.scaling?.range[series] ?? null;
    t.push({
      name: `cost per event flat across ${series === "customers" ? "customers" : "dedupe entries"}`,
      target: "largest ÷ smallest state ≤ 1.25 (our bar)",
      value: g === null ? "not measured" : `${f2(g)}× (highest ÷ lowest ${f2(range!)}×)`,
      met: g === null ? null : g <= 1.25,
    });
  }
  // A long run (≥ 10M events): CPU per event in its last tenth against its first.
  const long = r.scaling?.points.filter((p) => p.tenthsCpuUsPerEvent && r.scaling!.events >= 10_000_000) ?? [];
  t.push({
    name: "long run: CPU per event, last tenth ÷ first",
    target: "≤ 1.25 over ≥ 10M events",
    value: long.length
      ? long.map((p) => `${f2(p.tenthsCpuUsPerEvent![9]! / p.tenthsCpuUsPerEvent![0]!)}× (${p.label}, ${int(r.scaling!.events)} events)`).join("; ")
      : "not measured",
    met: long.length ? long.every((p) => p.tenthsCpuUsPerEvent![9]! / p.tenthsCpuUsPerEvent![0]! <= 1.25) : null,
  });
  for (const via of ["http", "in-process"] as const) {
    const p = r.lookup?.probes.find((x) => x.via === via && x.load === "ingest");
    const big = (r.lookup?.customers ?? 0) >= 1_000_000;
    t.push({
      name: `lookup ${via === "http" ? "GET /features/<id>" : "features.get(id)"} now, 1M customers, ingesting at 50%`,
      target: "p99 ≤ 2 ms at ≥ 5,000/s",
      value: p ? `p99 ${f2(p.p99Ms)} ms at ${int(p.requestsPerSec)}/s (${int(r.lookup!.customers)} customers, ingest ${int(p.committedPerSec)} msg/s)` : "not measured",
      met: p && big ? p.p99Ms <= 2 && p.requestsPerSec >= 5_000 : null,
    });
  }
  t.push({
    name: "soak RSS growth after warm-up",
    target: "≤ 10%",
    value: r.soak ? `${f1(r.soak.growthPct)}% mean, ${f1(r.soak.peakGrowthPct)}% peak (2nd vs 1st half), ${r.soak.seconds} s` : "not measured",
    met: r.soak ? r.soak.growthPct <= 10 && r.soak.peakGrowthPct <= 10 : null,
  });
  return t;
}

/** The lookup phase's table: one row per probe. */
export function formatLookup(l: LookupResult): string {
  return [
    `online lookups, now (no as_of): ${int(l.goldCustomers)} customers in gold (${int(l.preloaded)} events drained in ${f1(l.drainSeconds)} s); under ingest at ${int(l.ingestRate)} msg/s; topology peak RSS ${f1(l.topologyPeakRssMb)} MB`,
    table(
      ["load", "via", "target/s", "achieved/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "not found", "queued > 1 ms", "ingest msg/s", "CPU: topology", "load generator"],
      l.probes.map((p) => [
        p.load,
        p.via === "http" ? "GET /features/<id>" : "features.get(id)",
        int(p.targetRate),
        int(p.requestsPerSec),
        f2(p.p50Ms),
        f2(p.p90Ms),
        f2(p.p99Ms),
        f2(p.p999Ms),
        f1(p.maxMs),
        int(p.notFound),
        p.via === "http" ? `${int(p.queued)} (max ${f1(p.maxQueueMs)} ms)` : "-",
        int(p.committedPerSec),
        pct(p.topologyCpuShare),
        p.via === "http" ? pct(p.cpuShare) : "-",
      ]),
      [0, 1],
    ),
  ].join("\n");
}

/** The stdout report. */
export function formatReport(r: BenchResults): string {
  const out: string[] = [];
  const ceil = r.ceiling_eps;
  out.push(`tributary bench: ${int(r.events)} events, ${r.startedAt}`);
  out.push(`machine: ${describeMachine(r.machine)}; load average at start ${r.machine.loadAverageAtStart.join(" ")}`);
  const flags = (r.options as { tributaryNodeFlagsUsed?: string[] }).tributaryNodeFlagsUsed;
  if (flags) out.push(`tributary node flags: ${flags.length ? flags.join(" ") : "(none)"}; config: ${JSON.stringify((r.options as { configUsed?: unknown }).configUsed ?? {})}`);
  out.push("");
  out.push("throughput (same preloaded stream, one process and one durable consumer each)");
  const ph = r.phases;
  const rounds = (p: PhaseSummary) => (p.rounds.length > 1 ? ` (rounds: ${p.rounds.map(int).join(", ")})` : "");
  out.push(
    table(
      ["phase", "events/s", "seconds", "peak RSS MB", "÷ ceiling", "CPU µs/ev", "nats-server µs/ev"],
      [
        ["ceiling: nats.js consume + decode + ack/batch", ph.ceiling, "1.00"] as const,
        ["naive: decode+validate+INSERT+ack per message, same fsync level", ph.naive, f2(ph.naive.eps / ceil)] as const,
        ["floor: naive with one transaction + one ack per batch", ph.floor, f2(ph.floor.eps / ceil)] as const,
        ["tributary: full topology, committed to gold", ph.tributary, f2(ph.tributary.eps / ceil)] as const,
      ].map(([name, p, ratio]) => [
        name,
        int(p.eps),
        f2(p.seconds),
        f1(p.peakRssMb),
        ratio,
        f1(p.cpuUsPerEvent),
        p.serverCpuUsPerEvent === null ? "-" : f1(p.serverCpuUsPerEvent),
      ]),
    ),
  );
  out.push(`  tributary/ceiling ${f2(r.ratio_ceiling)}, tributary/naive ${f2(r.ratio_naive)}${rounds(ph.tributary)}`);
  if (r.custom_features) {
    const c = r.custom_features;
    out.push(`  with ${c.count} custom features (README's example): ${int(c.eps)} events/s, ${f2(c.ratio)}× tributary without them${c.cpuUsPerEvent === null ? "" : `, ${f1(c.cpuUsPerEvent)} CPU µs/event`}`);
  }
  if (r.baseline) {
    const b = r.baseline;
    out.push(`  baseline ${b.dir}: ${int(b.eps)} events/s; this build is ${f2(b.ratio)}× its throughput${b.cpuRatio === null ? "" : `, ${f2(b.cpuRatio)}× its CPU per event`} (same run, same stream)`);
  }
  out.push(
    `  single-table floor (one SQLite row per event, no dedupe, layers or features): ${f2(r.floor.ratio_ceiling)}× the ceiling; tributary is ${f2(r.floor.ratio)}× the floor`,
  );
  if (r.naive_relaxed) {
    const d = r.naive_relaxed;
    out.push(`  naive at synchronous=NORMAL (${d.pragmas}; an ack can outrun a power cut): ${int(d.eps)} events/s; tributary is ${f2(d.ratio)}× that`);
  }
  if (r.naive_sqlite_defaults) {
    const d = r.naive_sqlite_defaults;
    out.push(`  naive with SQLite defaults (${d.pragmas}; first ${int(d.events)} events): ${int(d.eps)} events/s; tributary is ${f1(d.ratio)}× that`);
  }
  out.push(
    `  tributary drain exit after ${f2(ph.tributary.drainExitSeconds)} s (idle detection included); ${int(ph.tributary.batches)} batches; ` +
      `valid ${int(r.counts.valid)}, duplicates ${int(r.counts.duplicates)}, quarantined ${int(r.counts.quarantined)}`,
  );
  const b = r.bytes_per_event;
  out.push(
    `  bytes/event: bronze ${f1(b.bronze)}, silver ${f1(b.silver)}, gold ${f1(b.gold)} (tributary total ${f1(b.tributary_total)}); naive ${f1(b.naive)}`,
  );
  if (r.latency.length) {
    out.push("");
    const l0 = r.latency[0]!;
    out.push(`live latency, publish → gold commit (${l0.seconds} s measured after ${l0.warmupSeconds} s warm-up, per message)`);
    out.push(
      table(
        ["load", "target/s", "achieved/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "mean batch", "peak RSS MB", "CPU trib/pub/nats"],
        r.latency.map((l) => [
          `${Math.round(l.load * 100)}%`,
          int(l.rate),
          int(l.achievedRate),
          f1(l.latencyMs.p50),
          f1(l.latencyMs.p95),
          f1(l.latencyMs.p99),
          f1(l.latencyMs.max),
          int(l.meanBatch),
          f1(l.peakRssMb),
          l.cpuShare
            ? `${pct(l.cpuShare.tributary)}/${pct(l.cpuShare.publisher)}/${l.cpuShare.natsServer === null ? "-" : pct(l.cpuShare.natsServer)}`
            : "-",
        ]),
      ),
    );
    out.push("  split at the source's receive time (whole ms): publish → received by tributary | received → gold commit");
    out.push(
      table(
        ["load", "deliver p50", "p99", "max", "inside p50", "p99", "max", "commits > 25 / 50 / 100 ms: bronze", "silver", "gold"],
        r.latency.map((l) => {
          const slow = (k: "bronze" | "silver" | "gold") => {
            const c = l.slowCommits?.[k];
            return c ? `${c.over25ms} / ${c.over50ms} / ${c.over100ms} of ${int(c.commits)}` : "-";
          };
          return [
            `${Math.round(l.load * 100)}%`,
            f1(l.deliveryMs.p50),
            f1(l.deliveryMs.p99),
            f1(l.deliveryMs.max),
            f1(l.insideMs.p50),
            f1(l.insideMs.p99),
            f1(l.insideMs.max),
            slow("bronze"),
            slow("silver"),
            slow("gold"),
          ];
        }),
      ),
    );
  }
  if (r.scaling) {
    out.push("");
    out.push(`scaling (${int(r.scaling.events)} events per point; cost per event over the whole run and its second half; CPU is the tributary process's, all threads)`);
    const withBase = r.scaling.points.some((p) => p.baseline);
    out.push(
      table(
        [
          "point",
          "events/s",
          "2nd half ev/s",
          "µs/event",
          "2nd half µs/ev",
          "CPU µs/ev",
          "2nd half CPU µs/ev",
          ...(withBase ? ["baseline ev/s", "baseline CPU µs/ev", "2nd half", "baseline RSS MB"] : []),
          "peak RSS MB",
          "gold customers",
          "dedupe ids held",
        ],
        r.scaling.points.map((p) => [
          `${p.label}${p.series === "dedupe" ? ` (${p.customers.toLocaleString("en-US")} cust.)` : ""}`,
          int(p.eps),
          p.secondHalfEps ? int(p.secondHalfEps) : "-",
          f1(p.usPerEvent),
          p.secondHalfUsPerEvent ? f1(p.secondHalfUsPerEvent) : "-",
          p.cpuUsPerEvent === undefined ? "-" : f1(p.cpuUsPerEvent),
          p.secondHalfCpuUsPerEvent ? f1(p.secondHalfCpuUsPerEvent) : "-",
          ...(withBase
            ? [
                p.baseline ? int(p.baseline.eps) : "-",
                p.baseline ? f1(p.baseline.cpuUsPerEvent) : "-",
                p.baseline?.secondHalfCpuUsPerEvent ? f1(p.baseline.secondHalfCpuUsPerEvent) : "-",
                p.baseline?.peakRssMb ? f1(p.baseline.peakRssMb) : "-",
              ]
            : []),
          f1(p.peakRssMb),
          int(p.goldCustomers),
          p.dedupeHeld === null ? "-" : int(p.dedupeHeld),
        ]),
      ),
    );
    for (const p of r.scaling.points) {
      const t = p.tenthsCpuUsPerEvent;
      if (t) out.push(`  ${p.label}: CPU µs/event by tenth of the run ${t.map(f1).join(", ")}; last tenth ÷ first ${f2(t[9]! / t[0]!)}×`);
    }
    const g = r.scaling.cpuGrowth;
    if (g) {
      const b = r.scaling.baselineCpuGrowth;
      out.push(
        `  CPU per event (second half), largest ÷ smallest state: customers ${g.customers === null ? "-" : f2(g.customers)}×, dedupe ${g.dedupe === null ? "-" : f2(g.dedupe)}×` +
          (b ? `; baseline: customers ${b.customers === null ? "-" : f2(b.customers)}×, dedupe ${b.dedupe === null ? "-" : f2(b.dedupe)}×` : ""),
      );
    }
  }
  if (r.lookup) {
    out.push("");
    out.push(formatLookup(r.lookup));
  }
  if (r.soak) {
    const s = r.soak;
    out.push("");
    out.push(
      `soak: ${s.seconds} s at ${int(s.rate)}/s, ${s.warmupSeconds} s warm-up. RSS, first vs second half after warm-up: mean ${f1(s.rssFirstHalfMeanMb)} → ${f1(s.rssSecondHalfMeanMb)} MB ` +
        `(${f1(s.growthPct)}%), peak ${f1(s.rssFirstHalfMaxMb)} → ${f1(s.rssSecondHalfMaxMb)} MB (${f1(s.peakGrowthPct)}%)`,
    );
    out.push(
      `  latency p50 ${f1(s.live.latencyMs.p50)} p99 ${f1(s.live.latencyMs.p99)} max ${f1(s.live.latencyMs.max)} ms (inside tributary p99 ${f1(s.live.insideMs.p99)} ms); ` +
        `CPU tributary ${pct(s.live.cpuShare.tributary)}, publisher ${pct(s.live.cpuShare.publisher)}, nats-server ${s.live.cpuShare.natsServer === null ? "-" : pct(s.live.cpuShare.natsServer)}`,
    );
    if (s.timeline.length) {
      out.push("  per window of the run: what tributary committed and what it cost");
      out.push(
        table(
          ["from s", "committed/s", "CPU", "CPU µs/event", "RSS mean MB"],
          s.timeline.map((w) => [int(w.fromSec), int(w.committedPerSec), pct(w.cpuShare), w.cpuUsPerEvent === null ? "-" : f1(w.cpuUsPerEvent), f1(w.rssMeanMb)]),
        ),
      );
    }
  }
  if (r.micro) {
    out.push("");
    out.push("micro-benchmarks (tinybench; one call = one 2,000-record batch)");
    out.push(
      table(
        ["task", "ns/event", "events/s", "batch mean ms", "batch p99 ms", "±%", "note"],
        r.micro.map((m) => [m.name, int(m.nsPerEvent), int(m.eventsPerSecond), f2(m.batchMeanMs), f2(m.batchP99Ms), f1(m.rmePct), m.note]),
        [0, 6],
      ),
    );
  }
  for (const [label, p] of [
    ["main thread: NATS client, admission, batching", r.profile],
    ["commit worker thread: record stages and SQLite", r.workerProfile],
  ] as const) {
    if (!p) continue;
    out.push("");
    out.push(`profile of a separate tributary run (node --cpu-prof), ${label}; self time, ${int(p.busyMs)} ms busy of ${int(p.totalMs)} ms`);
    out.push(table(["file / package", "self ms", "%"], p.files.slice(0, 12).map((f) => [f.name, int(f.selfMs), f1(f.selfPct)])));
    out.push("");
    out.push(table(["function", "where", "self ms", "%"], p.functions.slice(0, 15).map((f) => [f.name, f.where, int(f.selfMs), f1(f.selfPct)]), [0, 1]));
  }
  if (r.errors.length > 0) {
    out.push("");
    out.push("FAILED SECTIONS (results missing above):");
    for (const e of r.errors) out.push(`  ${e.section}: ${e.message}`);
  }
  out.push("");
  out.push("targets");
  out.push(table(["target", "wanted", "measured", "verdict"], r.targets.map((t) => [t.name, t.target, t.value, t.met === null ? "n/a" : t.met ? "MET" : "MISSED"]), [0, 1, 2, 3]));
  return out.join("\n") + "\n";
}

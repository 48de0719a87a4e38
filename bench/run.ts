/**
 * `npm run bench`: tributary's benchmark harness.
 *
 * 1. Preloads N generated events into a fresh JetStream stream, then consumes that same stream
 *    three times, each in its own process with its own durable consumer and data dir: the nats.js
 *    consumer alone (ceiling), a hand-written per-message consumer (naive), and tributary.
 * 2. Live latency: publishes at 50% and 80% of tributary's measured throughput and measures
 *    publish → gold commit per message.
 * 3. Scaling with distinct customers and dedupe entries; optional soak (`--soak SECONDS`).
 * 4. Micro-benchmarks of each operator and of each layer's batch commit.
 * 5. A table on stdout, `--json FILE`, and an SVG chart in bench/results/.
 *
 * Progress goes to stderr; the report goes to stdout.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, InvalidArgumentError } from "commander";
import { connect } from "@nats-io/transport-node";
import { startNatsServer, type NatsServer } from "../src/testing/nats-server.js";
import { parseConfig, readConfigFile, type ConfigInput } from "../src/config.js";
import { RECOMMENDED_NODE_FLAGS } from "../src/runtime/node-flags.js";
import { benchStream, deleteStream, preload, type BenchStream } from "./workload.js";
import { runWorker } from "./child.js";
import type { PhaseResult } from "./ceiling.js";
import { NAIVE_FILE } from "./naive.js";
import { fileBytes } from "./tributary.js";
import { liveRun } from "./latency.js";
import { scaling, type ScalingResult } from "./scaling.js";
import { soak, type SoakResult } from "./soak.js";
import type { MicroResult } from "./micro.js";
import { summarizeProfile, type ProfileSummary } from "./profile.js";
import { describeMachine, machineInfo } from "./machine.js";
import { evaluateTargets, formatLookup, formatReport, type BenchResults, type LatencyRow, type PhaseSummary } from "./report.js";
import { chartFromResults } from "./svg.js";
import { median, natsServerCpuReader } from "./stats.js";
import { formatTrainingSetReport, trainingSetBench } from "./training-set.js";
import { storageSoakMain } from "./storage-soak.js";
import { lookupPhase, type LookupResult } from "./lookup.js";

const DEFAULT_RESULTS_DIR = fileURLToPath(new URL("../../bench/results/", import.meta.url));

interface Options {
  events: number;
  nats?: string;
  json?: string;
  svg?: string;
  quick: boolean;
  skipLatency: boolean;
  skipScaling: boolean;
  skipMicro: boolean;
  skipLookup: boolean;
  lookupOnly: boolean;
  lookupCustomers?: number;
  lookupEvents?: number;
  lookupRate?: number;
  lookupSeconds?: number;
  lookupConnections: number;
  lookupIngestRate?: number;
  soak: number;
  soakLoad: number;
  latencySeconds?: number;
  latencyWarmup?: number;
  loads?: number[];
  scalingEvents: number;
  scalingCustomers: number[];
  scalingDedupe: number[];
  seed: number;
  repeat: number;
  warmup: boolean;
  profile: boolean;
  profileDir?: string;
  resultsDir: string;
  config?: string;
  naiveDefaultsEvents: number;
  tributaryNodeFlags?: string;
  trainingSet: boolean;
  baseline?: string;
  records: number;
  customers: number;
  labels: number;
  keep: boolean;
}

const positiveInt = (v: string) => {
  const n = Number(v.replace(/_/g, ""));
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError("expected a positive integer");
  return n;
};
const nonNegative = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError("expected a number ≥ 0");
  return n;
};
const intList = (v: string) => v.split(",").map((x) => positiveInt(x.trim()));
const loadList = (v: string) =>
  v.split(",").map((x) => {
    const n = Number(x.trim());
    if (!(n > 0 && n <= 2)) throw new InvalidArgumentError("loads are fractions of measured throughput, e.g. 0.5,0.8");
    return n;
  });

/** The README's three custom features, for the phase that measures what custom features cost. */
const BENCH_CUSTOM_FEATURES = [
  { name: "spend_last_7_days", from: "transactions", aggregate: "sum", field: "amount_base", window: "7d" },
  { name: "mobile_sessions_last_30_days", from: "sessions", aggregate: "count", where: { device_type: "mobile" }, window: "30d" },
  { name: "max_transaction_value", from: "transactions", aggregate: "max", field: "amount_base" },
] as const;

function parseOptions(argv: string[]): Options {
  const program = new Command()
    .name("bench")
    .description("tributary benchmark: ceiling vs naive vs tributary, live latency, scaling, soak, micro-benchmarks")
    .addHelpText("after", "\n--storage-soak [--periods N --period-seconds S --rate MSG/S --customers N]: only the storage soak (bench/README.md, \"Storage over time\"); --storage-soak --help for its options")
    .option("--events <n>", "events preloaded for the throughput comparison", positiveInt, 200_000)
    .option("--nats <url>", "use this NATS server instead of starting one (streams are created and deleted)")
    .option("--json <file>", "write the results as JSON")
    .option("--svg <file>", "write the chart here (default <results-dir>/bench.svg; none with --quick)")
    .option("--results-dir <dir>", "where the chart, the soak's RSS samples and profiles go by default", DEFAULT_RESULTS_DIR)
    .option("--quick", "smoke mode: no scaling or soak, a 5 s latency probe at 50%, short micro-benchmarks", false)
    .option("--skip-latency", "skip the live latency runs", false)
    .option("--skip-scaling", "skip the scaling runs", false)
    .option("--skip-micro", "skip the micro-benchmarks", false)
    .option("--skip-lookup", "skip the online lookup phase", false)
    .option("--lookup-only", "run only the online lookup phase (its ingest rate is half the drain rate it measures, or --lookup-ingest-rate)", false)
    .option("--lookup-customers <n>", "customers in the lookup phase's gold (default 1M; 20k with --quick)", positiveInt)
    .option("--lookup-events <n>", "events preloaded for the lookup phase (default 1.5 × customers)", positiveInt)
    .option("--lookup-rate <n>", "lookups per second each lookup probe sends (default 5000; 1000 with --quick)", positiveInt)
    .option("--lookup-seconds <s>", "seconds per lookup probe (default 10; 2 with --quick)", positiveInt)
    .option("--lookup-connections <n>", "keep-alive connections of the lookup load generator", positiveInt, 16)
    .option("--lookup-ingest-rate <n>", "messages/s published during the lookup probes under ingest (default: half of tributary's measured throughput)", positiveInt)
    .option("--soak <seconds>", "soak for this long (0 = no soak)", nonNegative, 0)
    .option("--soak-load <fraction>", "soak rate as a fraction of tributary's measured throughput", (v) => loadList(v)[0]!, 0.5)
    .option("--latency-seconds <s>", "measured seconds per latency run (default 30; 5 with --quick)", nonNegative)
    .option("--latency-warmup <s>", "seconds published before measuring (default 3; 1 with --quick)", nonNegative)
    .option("--loads <list>", "latency loads as fractions of tributary's throughput (default 0.5,0.8; 0.5 with --quick)", loadList)
    .option("--scaling-events <n>", "events per scaling point", positiveInt, 1_200_000)
    .option("--scaling-customers <list>", "distinct customers per point", intList, [10_000, 100_000, 1_000_000])
    .option("--scaling-dedupe <list>", "dedupe.maxEntries per point (none: no dedupe series)", (v) => (v === "none" ? [] : intList(v)), [10_000, 1_000_000])
    .option("--config <file>", "tributary configuration (YAML/JSON, as for `tributary run`) for every tributary run; nats and dataDir are the bench's")
    .option("--naive-defaults-events <n>", "also run the naive consumer with SQLite's default pragmas on the first N events (0 = skip)", (v) => (v === "0" ? 0 : positiveInt(v)), 20_000)
    .option("--tributary-node-flags <flags>", `Node/V8 flags for every tributary process (default: "${RECOMMENDED_NODE_FLAGS.join(" ")}", what the tributary command runs with; "" for none)`)
    .option("--seed <n>", "generator seed", positiveInt, 42)
    .option("--repeat <n>", "rounds of ceiling/naive/tributary; medians are reported", positiveInt, 1)
    .option("--no-warmup", "skip the unmeasured warm-up pass over the stream")
    .option("--profile", "profile an extra tributary run with node --cpu-prof and summarise it", false)
    .option("--profile-dir <dir>", "where --profile writes the .cpuprofile (default <results-dir>)")
    .option("--baseline <dir>", "another built checkout of tributary (its dist/bench/worker.js) run on the same stream in every round, right after this one: a same-run A/B")
    .option("--training-set", "run only the training-set phase: tributary training-set against DuckDB over the silver export (bench/README.md)", false)
    .option("--records <n>", "--training-set: valid records in its data dir", positiveInt, 5_000_000)
    .option("--customers <n>", "--training-set: distinct customers in its data dir", positiveInt, 100_000)
    .option("--labels <n>", "--training-set: label rows", positiveInt, 1_000_000)
    .option("--keep", "--training-set: keep its data dir, labels and outputs (the path is printed)", false)
    .showHelpAfterError()
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
  program.parse(argv);
  return program.opts<Options>();
}

const log = (line: string) => process.stderr.write(`${line}\n`);

function summarize(rounds: PhaseResult[]): PhaseSummary & { pick: PhaseResult } {
  const eps = rounds.map((r) => r.eps);
  const m = median(eps);
  const pick = rounds.find((r) => r.eps === m) ?? rounds[0]!;
  const server = pick.serverCpuSeconds as number | null | undefined;
  return {
    eps: pick.eps,
    seconds: pick.seconds,
    peakRssMb: Math.max(...rounds.map((r) => r.peakRssMb)),
    cpuUsPerEvent: (pick.cpuSeconds / pick.events) * 1e6,
    serverCpuUsPerEvent: typeof server === "number" ? (server / pick.events) * 1e6 : null,
    rounds: eps,
    pick,
  };
}

async function main(): Promise<void> {
  // The storage soak has options of its own (bench/storage-soak.ts): everything after the flag goes to it.
  const storageFlag = process.argv.indexOf("--storage-soak");
  if (storageFlag >= 0) return storageSoakMain([...process.argv.slice(2, storageFlag), ...process.argv.slice(storageFlag + 1)]);
  const o = parseOptions(process.argv);
  if (o.trainingSet) return trainingSetMain(o);
  if (o.lookupOnly) return lookupMain(o);
  const startedAt = new Date();
  const t0 = performance.now();
  const runId = Date.now().toString(36);
  const overrides = loadOverrides(o.config);
  // tributary runs with the flags it ships with (the CLI's shebang, the systemd unit) unless told otherwise.
  const tribFlags = o.tributaryNodeFlags !== undefined ? o.tributaryNodeFlags.split(/\s+/).filter(Boolean) : [...RECOMMENDED_NODE_FLAGS];
  const config = parseConfig({ ...overrides });
  const consumerDefaults = {
    pullSize: Math.min(config.batch.maxRecords * 2, config.nats.maxAckPending),
    maxAckPending: config.nats.maxAckPending,
    ackWaitMs: config.nats.ackWait,
  };
  const tmpDirs: string[] = [];
  const tmp = (tag: string) => {
    const d = mkdtempSync(join(tmpdir(), `tributary-bench-${tag}-`));
    tmpDirs.push(d);
    return d;
  };

  let server: NatsServer | null = null;
  let leftover: { url: string; stream: BenchStream } | null = null;
  try {
    if (!o.nats) {
      server = await startNatsServer();
      log(`started nats-server at ${server.url}`);
    }
    const url = o.nats ?? server!.url;
    const serverCpu = server ? natsServerCpuReader(server.port) : null;
    /** Runs a phase and adds the CPU seconds nats-server spent meanwhile. */
    const measured = async (task: Parameters<typeof runWorker>[0], execArgv: string[] = [], worker?: string): Promise<PhaseResult> => {
      const before = serverCpu?.() ?? null;
      const r = await runWorker<PhaseResult>(task, { execArgv, worker });
      const after = serverCpu?.() ?? null;
      return { ...r, serverCpuSeconds: before !== null && after !== null ? after - before : null };
    };
    const nc = await connect({ servers: url });
    const machine = machineInfo(nc.info?.version);
    await nc.close();
    log(`machine: ${describeMachine(machine)}`);

    // 1. Throughput: one stream, three consumers.
    const main = benchStream(runId, "main");
    leftover = { url, stream: main };
    log(`preloading ${o.events.toLocaleString("en-US")} events (seed ${o.seed}) into ${main.name}`);
    const pre = await preload(url, main, { seed: o.seed, messages: o.events });
    log(`  stored in ${pre.seconds.toFixed(1)} s (${Math.round(o.events / pre.seconds)} msg/s)`);
    const common = { url, stream: main.name, events: o.events, ...consumerDefaults };
    if (o.warmup) {
      // The first pass over a fresh stream pays for the server's cold block cache; nobody should.
      const w = await runWorker<PhaseResult>({ kind: "ceiling", ...common, consumer: "bench-warmup", ackEvery: config.batch.maxRecords });
      log(`warm-up pass: ${Math.round(w.eps)} ev/s (not reported)`);
    }
    const ceilings: PhaseResult[] = [];
    const naives: PhaseResult[] = [];
    const floors: PhaseResult[] = [];
    const tribs: PhaseResult[] = [];
    const customs: PhaseResult[] = [];
    const baselines: PhaseResult[] = [];
    const baselineWorker = o.baseline ? join(o.baseline, "dist", "bench", "worker.js") : undefined;
    if (baselineWorker && !existsSync(baselineWorker)) throw new Error(`--baseline ${o.baseline}: no ${baselineWorker}; build that checkout first (npx tsc -p tsconfig.json)`);
    let naiveBytes = 0;
    for (let round = 1; round <= o.repeat; round++) {
      const suffix = o.repeat > 1 ? ` (round ${round}/${o.repeat})` : "";
      const c = await measured({ kind: "ceiling", ...common, consumer: `bench-ceiling-${round}`, ackEvery: config.batch.maxRecords });
      log(`ceiling${suffix}: ${Math.round(c.eps)} ev/s in ${c.seconds.toFixed(2)} s`);
      ceilings.push(c);
      const naiveDir = tmp("naive");
      const n = await measured({ kind: "naive", ...common, consumer: `bench-naive-${round}`, dataDir: naiveDir, synchronous: config.storage.synchronous });
      naiveBytes = fileBytes(join(naiveDir, NAIVE_FILE));
      rmSync(naiveDir, { recursive: true, force: true });
      log(`naive${suffix}: ${Math.round(n.eps)} ev/s in ${n.seconds.toFixed(2)} s`);
      naives.push(n);
      // The single-table floor: the same consumer, one transaction and one ack per batch.
      const floorDir = tmp("floor");
      const f = await measured({
        kind: "naive",
        ...common,
        consumer: `bench-floor-${round}`,
        dataDir: floorDir,
        synchronous: config.storage.synchronous,
        batchEvery: config.batch.maxRecords,
      });
      rmSync(floorDir, { recursive: true, force: true });
      log(`single-table floor${suffix}: ${Math.round(f.eps)} ev/s in ${f.seconds.toFixed(2)} s`);
      floors.push(f);
      const tribDir = tmp("tributary");
      const t = await measured(
        {
          kind: "tributary",
          url,
          stream: main.name,
          subjects: main.subjects,
          consumer: `bench-tributary-${round}`,
          events: o.events,
          dataDir: tribDir,
          config: overrides,
        },
        tribFlags,
      );
      rmSync(tribDir, { recursive: true, force: true });
      log(`tributary${suffix}: ${Math.round(t.eps)} ev/s in ${t.seconds.toFixed(2)} s (drain exit ${(t.drainExitSeconds as number).toFixed(2)} s)`);
      tribs.push(t);
      // The same run with the README's three custom features on top of the configured ones.
      const customDir = tmp("custom");
      const withCustom = { ...overrides, features: { custom: [...(overrides.features?.custom ?? []), ...BENCH_CUSTOM_FEATURES] } };
      const tc = await measured(
        { kind: "tributary", url, stream: main.name, subjects: main.subjects, consumer: `bench-custom-${round}`, events: o.events, dataDir: customDir, config: withCustom },
        tribFlags,
      );
      rmSync(customDir, { recursive: true, force: true });
      log(`tributary + 3 custom features${suffix}: ${Math.round(tc.eps)} ev/s (${(tc.eps / t.eps).toFixed(2)}× tributary)`);
      customs.push(tc);
      if (baselineWorker) {
        // The baseline build on the same stream and flags, right after this build: a same-run A/B.
        const baseDir = tmp("baseline");
        const b = await measured(
          { kind: "tributary", url, stream: main.name, subjects: main.subjects, consumer: `bench-baseline-${round}`, events: o.events, dataDir: baseDir, config: overrides },
          tribFlags,
          baselineWorker,
        );
        rmSync(baseDir, { recursive: true, force: true });
        log(`baseline ${o.baseline}${suffix}: ${Math.round(b.eps)} ev/s; this build is ${(t.eps / b.eps).toFixed(3)}× its throughput, ${(t.cpuSeconds / t.events / (b.cpuSeconds / b.events)).toFixed(3)}× its CPU per event`);
        baselines.push(b);
      }
    }
    let naiveDefaults: PhaseResult | null = null;
    if (!o.quick && o.naiveDefaultsEvents > 0) {
      const dir = tmp("naive-defaults");
      const events = Math.min(o.events, o.naiveDefaultsEvents);
      naiveDefaults = await runWorker<PhaseResult>({ kind: "naive", ...common, events, consumer: "bench-naive-defaults", dataDir: dir, sqliteDefaults: true });
      rmSync(dir, { recursive: true, force: true });
      log(`naive with SQLite defaults (${naiveDefaults.pragmas as string}), first ${events} events: ${Math.round(naiveDefaults.eps)} ev/s`);
    }
    // The naive consumer at NORMAL: faster, but an ack can outrun a power cut (see naive.ts).
    let naiveRelaxed: PhaseResult | null = null;
    if (!o.quick && config.storage.synchronous === "full") {
      const dir = tmp("naive-relaxed");
      naiveRelaxed = await runWorker<PhaseResult>({ kind: "naive", ...common, consumer: "bench-naive-relaxed", dataDir: dir, synchronous: "normal" });
      rmSync(dir, { recursive: true, force: true });
      log(`naive at synchronous=NORMAL (${naiveRelaxed.pragmas as string}): ${Math.round(naiveRelaxed.eps)} ev/s`);
    }
    const ceiling = summarize(ceilings);
    const naive = summarize(naives);
    const floor = summarize(floors);
    const trib = summarize(tribs);
    const custom = summarize(customs);
    const tp = trib.pick;

    // Sections after the throughput comparison report a failure and let the run go on, so a
    // stalled soak does not throw away twenty minutes of other results.
    const errors: { section: string; message: string }[] = [];
    const section = async <T>(name: string, run: () => Promise<T>): Promise<T | null> => {
      try {
        return await run();
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        errors.push({ section: name, message });
        log(`${name} failed: ${message}`);
        return null;
      }
    };

    let profile: ProfileSummary | null = null;
    let workerProfile: ProfileSummary | null = null;
    if (o.profile) await section("profile", async () => {
      // One directory per run: Node writes one profile per thread (main, commit worker), named
      // CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; thread 0 is the main thread.
      const profileDir = join(o.profileDir ?? o.resultsDir, `tributary-${runId}`);
      mkdirSync(profileDir, { recursive: true });
      log(`profiling a separate tributary run (node --cpu-prof) into ${profileDir}`);
      const dir = tmp("profile");
      await runWorker<PhaseResult>(
        { kind: "tributary", url, stream: main.name, subjects: main.subjects, consumer: "bench-profile", events: o.events, dataDir: dir, config: overrides },
        { execArgv: [...tribFlags, "--cpu-prof", `--cpu-prof-dir=${profileDir}`] },
      );
      rmSync(dir, { recursive: true, force: true });
      const files = readdirSync(profileDir).filter((f) => f.endsWith(".cpuprofile"));
      const threadOf = (f: string) => Number(f.split(".").at(-3));
      const mainFile = files.find((f) => threadOf(f) === 0);
      if (!mainFile) throw new Error(`no main-thread profile was written to ${profileDir}`);
      profile = summarizeProfile(join(profileDir, mainFile), 25);
      const workerFile = files.filter((f) => threadOf(f) !== 0).sort((a, b) => threadOf(a) - threadOf(b))[0];
      if (workerFile) workerProfile = summarizeProfile(join(profileDir, workerFile), 25);
    });
    await deleteStream(url, main);
    leftover = null;

    // 4. Micro-benchmarks.
    let micro: MicroResult[] | null = null;
    if (!o.skipMicro) {
      log("micro-benchmarks");
      micro = await section("micro", () => runWorker<MicroResult[]>({ kind: "micro", quick: o.quick }));
    }

    // 2. Live latency.
    const latency: LatencyRow[] = [];
    if (!o.skipLatency) {
      const loads = o.loads ?? (o.quick ? [0.5] : [0.5, 0.8]);
      const seconds = o.latencySeconds ?? (o.quick ? 5 : 30);
      const warmupSeconds = o.latencyWarmup ?? (o.quick ? 1 : 3);
      for (const load of loads) {
        const rate = load * trib.eps;
        log(`latency at ${Math.round(load * 100)}% load (${Math.round(rate)} msg/s)`);
        const result = await section(`latency ${Math.round(load * 100)}%`, () =>
          liveRun({
          url,
          runId,
          tag: `lat${Math.round(load * 100)}`,
          rate,
          seconds,
          warmupSeconds,
          seed: o.seed,
          config: overrides,
          execArgv: tribFlags,
          serverCpu,
          log,
          }),
        );
        if (!result) continue;
        const { rssSamples: _s, readyAtSec: _r, ...live } = result;
        latency.push({ load, ...live });
        log(`  p50 ${live.latencyMs.p50.toFixed(1)} ms, p99 ${live.latencyMs.p99.toFixed(1)} ms, max ${live.latencyMs.max.toFixed(1)} ms`);
      }
    }

    // Online lookups at 1M customers, idle and while ingesting at half the throughput measured above.
    let lookup: LookupResult | null = null;
    if (!o.skipLookup) {
      lookup = await section("lookup", () => lookupPhase(lookupOptions(o, url, runId, overrides, tribFlags, o.lookupIngestRate ?? 0.5 * trib.eps)));
    }

    // 3. Scaling and soak.
    let scale: ScalingResult | null = null;
    if (!o.quick && !o.skipScaling) {
      scale = await section("scaling", () => scaling({
        url,
        runId,
        events: o.scalingEvents,
        customers: o.scalingCustomers,
        dedupeEntries: o.scalingDedupe,
        seed: o.seed,
        config: overrides,
        execArgv: tribFlags,
        baselineWorker,
        log,
      }));
    }
    let soakResult: SoakResult | null = null;
    if (!o.quick && o.soak > 0) {
      log(`soak: ${o.soak} s at ${Math.round(o.soakLoad * 100)}% load (${Math.round(trib.eps * o.soakLoad)} msg/s)`);
      soakResult = await section("soak", () =>
        soak({ url, runId, rate: trib.eps * o.soakLoad, seconds: o.soak, config: overrides, execArgv: tribFlags, serverCpu, log }),
      );
      if (soakResult) log(`  RSS growth after warm-up: ${soakResult.growthPct.toFixed(1)}% mean, ${soakResult.peakGrowthPct.toFixed(1)}% peak`);
    }

    const files = tp.files as { bronze: number; silver: number; gold: number };
    const l50 = latency.find((l) => Math.abs(l.load - 0.5) < 1e-9) ?? latency[0];
    const partial: Omit<BenchResults, "targets"> = {
      events: o.events,
      ceiling_eps: ceiling.eps,
      naive_eps: naive.eps,
      tributary_eps: trib.eps,
      ratio_ceiling: trib.eps / ceiling.eps,
      ratio_naive: trib.eps / naive.eps,
      floor: { eps: floor.eps, ratio_ceiling: floor.eps / ceiling.eps, ratio: trib.eps / floor.eps },
      custom_features: { count: BENCH_CUSTOM_FEATURES.length, eps: custom.eps, ratio: custom.eps / trib.eps, cpuUsPerEvent: custom.cpuUsPerEvent },
      ...(baselines.length
        ? (() => {
            const b = summarize(baselines);
            return { baseline: { dir: o.baseline!, eps: b.eps, ratio: trib.eps / b.eps, cpuRatio: trib.cpuUsPerEvent / b.cpuUsPerEvent } };
          })()
        : {}),
      naive_relaxed: naiveRelaxed ? { events: naiveRelaxed.events, eps: naiveRelaxed.eps, pragmas: naiveRelaxed.pragmas as string, ratio: trib.eps / naiveRelaxed.eps } : null,
      naive_sqlite_defaults: naiveDefaults
        ? { events: naiveDefaults.events, eps: naiveDefaults.eps, pragmas: naiveDefaults.pragmas as string, ratio: trib.eps / naiveDefaults.eps }
        : null,
      latency_ms: l50 ? { p50: l50.latencyMs.p50, p95: l50.latencyMs.p95, p99: l50.latencyMs.p99, max: l50.latencyMs.max } : null,
      rss_mb: trib.peakRssMb,
      bytes_per_event: {
        bronze: files.bronze / o.events,
        silver: files.silver / o.events,
        gold: files.gold / o.events,
        tributary_total: (files.bronze + files.silver + files.gold) / o.events,
        naive: naiveBytes / o.events,
      },
      phases: {
        ceiling: strip(ceiling),
        naive: strip(naive),
        floor: strip(floor),
        tributary: { ...strip(trib), drainExitSeconds: tp.drainExitSeconds as number, batches: tp.batches as number },
      },
      counts: { valid: tp.valid as number, duplicates: tp.duplicates as number, quarantined: tp.quarantined as number },
      latency,
      scaling: scale,
      lookup,
      soak: soakResult ? (({ rssSamples: _x, ...rest }) => rest)(soakResult) : null,
      micro,
      profile,
      workerProfile,
      machine,
      startedAt: startedAt.toISOString(),
      durationSeconds: (performance.now() - t0) / 1000,
      options: { ...o, profileDir: undefined, resultsDir: undefined, tributaryNodeFlagsUsed: tribFlags, configUsed: overrides },
      errors,
    };
    const results: BenchResults = { ...partial, targets: evaluateTargets(partial) };

    process.stdout.write(formatReport(results));
    if (errors.length > 0) process.exitCode = 1;
    if (o.json) {
      mkdirSync(dirname(resolve(o.json)), { recursive: true });
      writeFileSync(o.json, JSON.stringify(results, null, 2) + "\n");
      log(`wrote ${o.json}`);
    }
    const svgPath = o.svg ?? (o.quick ? undefined : join(o.resultsDir, "bench.svg"));
    if (svgPath) {
      mkdirSync(dirname(resolve(svgPath)), { recursive: true });
      writeFileSync(svgPath, chartFromResults(results));
      log(`wrote ${svgPath}`);
    }
    if (soakResult) {
      // RSS, CPU and committed messages of the topology process over the soak; seconds count from the start of publishing.
      const soakCsv = join(o.resultsDir, "soak-rss.csv");
      mkdirSync(o.resultsDir, { recursive: true });
      const t0 = soakResult.live.readyAtSec;
      writeFileSync(
        soakCsv,
        "seconds,rss_mb,cpu_seconds,committed\n" +
          soakResult.rssSamples.map(([t, v, cpu, n]) => `${(t - t0).toFixed(1)},${v.toFixed(1)},${cpu.toFixed(2)},${n}`).join("\n") +
          "\n",
      );
      log(`wrote ${soakCsv}`);
    }
  } finally {
    // On a failure with --nats, do not leave the preloaded stream on someone else's server.
    if (leftover) await deleteStream(leftover.url, leftover.stream).catch(() => undefined);
    for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
    await server?.stop();
  }
}

/** `--training-set`: that phase alone, its report on stdout and in `--json`; a mismatch fails the run. */
async function trainingSetMain(o: Options): Promise<void> {
  const options = {
    records: o.records,
    customers: o.customers,
    labels: o.labels,
    seed: o.seed,
    repeat: o.repeat,
    keep: o.keep,
    nodeFlags: o.tributaryNodeFlags !== undefined ? o.tributaryNodeFlags.split(/\s+/).filter(Boolean) : [...RECOMMENDED_NODE_FLAGS],
    profileDir: o.profile ? (o.profileDir ?? o.resultsDir) : null,
    log,
  };
  log(`machine: ${describeMachine(machineInfo())}`);
  const result = await trainingSetBench(options);
  process.stdout.write(formatTrainingSetReport(result, options));
  if (o.json) {
    mkdirSync(dirname(resolve(o.json)), { recursive: true });
    writeFileSync(o.json, JSON.stringify({ trainingSet: result, machine: machineInfo(), options: { ...options, log: undefined } }, null, 2) + "\n");
    log(`wrote ${o.json}`);
  }
  if (result.check.mismatchedRows > 0) throw new Error(`training set: ${result.check.mismatchedRows} label rows differ between tributary and DuckDB (listed above)`);
}

function lookupOptions(o: Options, url: string, runId: string, config: Omit<ConfigInput, "nats" | "dataDir">, execArgv: string[], ingestRate?: number): Parameters<typeof lookupPhase>[0] {
  const customers = o.lookupCustomers ?? (o.quick ? 20_000 : 1_000_000);
  return {
    url,
    runId,
    customers,
    events: o.lookupEvents ?? Math.round(customers * 1.5),
    lookupRate: o.lookupRate ?? (o.quick ? 1_000 : 5_000),
    seconds: o.lookupSeconds ?? (o.quick ? 2 : 10),
    connections: o.lookupConnections,
    ingestRate,
    ingestShare: 0.5,
    seed: o.seed,
    config,
    execArgv,
    log,
  };
}

/** `--lookup-only`: that phase alone, on a server of its own; its report on stdout and in `--json`. */
async function lookupMain(o: Options): Promise<void> {
  const tribFlags = o.tributaryNodeFlags !== undefined ? o.tributaryNodeFlags.split(/\s+/).filter(Boolean) : [...RECOMMENDED_NODE_FLAGS];
  const server = o.nats ? null : await startNatsServer();
  try {
    const url = o.nats ?? server!.url;
    log(`machine: ${describeMachine(machineInfo())}`);
    const result = await lookupPhase(lookupOptions(o, url, Date.now().toString(36), loadOverrides(o.config), tribFlags, o.lookupIngestRate));
    process.stdout.write(formatLookup(result) + "\n");
    if (o.json) {
      mkdirSync(dirname(resolve(o.json)), { recursive: true });
      writeFileSync(o.json, JSON.stringify({ lookup: result, machine: machineInfo(), options: o }, null, 2) + "\n");
      log(`wrote ${o.json}`);
    }
  } finally {
    await server?.stop();
  }
}

/** Tributary configuration from `--config FILE`, minus the keys the bench owns. */
function loadOverrides(file: string | undefined): Omit<ConfigInput, "nats" | "dataDir"> {
  if (!file) return {};
  const raw = readConfigFile(file) as Record<string, unknown>;
  const { nats: _n, dataDir: _d, ...rest } = raw ?? {};
  parseConfig(rest); // reject a bad file before any run starts
  return rest as Omit<ConfigInput, "nats" | "dataDir">;
}

function strip(p: PhaseSummary & { pick: PhaseResult }): PhaseSummary {
  return { eps: p.eps, seconds: p.seconds, peakRssMb: p.peakRssMb, cpuUsPerEvent: p.cpuUsPerEvent, serverCpuUsPerEvent: p.serverCpuUsPerEvent, rounds: p.rounds };
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});

/**
 * `npm run bench -- --storage-soak`: months of storage in minutes. A `tributary run` daemon (the
 * CLI, as a user runs it) consumes a stream that a paced publisher fills at a fixed rate, with
 * `retention.bronze` shortened to one "hour" of compressed time (`--period-seconds`, 30 s by
 * default) and the stream's `max_age` to two. After `--periods` of them (24: a day at that scale)
 * the run reports, per period:
 *
 * - each layer's file size (database + WAL), bronze's rows held and pruned, and the NATS store;
 * - the bytes silver and gold add per accepted record, the part of the data dir that grows with
 *   the data by design (silver keeps records for `retention.silver`, in whole event days, and gold
 *   keeps its aggregate history);
 * - whether bronze and the stream stay level after the first retention period: the largest size
 *   over periods 3..N against the smallest, which a level file keeps near 1.
 *
 * Then it checks every feature of every customer against the independent reference computation
 * over the published messages (`src/testing/reference.ts`), as of an instant after the last event.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { generateWorkload, type Expectation } from "../src/sources/generator.js";
import { publishAll } from "../src/producers/publisher.js";
import { layerPath } from "../src/sinks/database.js";
import { DEFAULT_RATES } from "../src/config.js";
import { compareFeatures, referenceFeatures } from "../src/testing/reference.js";
import { parse } from "csv-parse/sync";
import { Command, InvalidArgumentError } from "commander";
import { startNatsServer } from "../src/testing/nats-server.js";

const CLI = fileURLToPath(new URL("../src/cli.js", import.meta.url));
const LAYERS = ["bronze", "silver", "gold"] as const;
type Layer = (typeof LAYERS)[number];

export interface StorageSoakOptions {
  readonly url: string;
  /** The server's store directory, when the bench started it (its size is reported). */
  readonly natsStoreDir: string | null;
  readonly periods: number;
  readonly periodSeconds: number;
  /** Messages per second. */
  readonly rate: number;
  readonly customers: number;
  readonly seed: number;
  readonly log: (line: string) => void;
}

export interface StoragePeriod {
  /** 1-based; period k ends k × periodSeconds after publishing began. */
  readonly period: number;
  readonly published: number;
  /** Gold's position at the sample. */
  readonly applied: number;
  /** Bytes of each layer's database plus its WAL. */
  readonly bytes: Record<Layer, number>;
  readonly bronzeHeld: number;
  readonly bronzePruned: number;
  /** Valid records silver accepted (profiles included). */
  readonly silverRecords: number;
  readonly natsStoreBytes: number | null;
}

export interface StorageSoakResult {
  readonly periods: StoragePeriod[];
  readonly periodSeconds: number;
  readonly rate: number;
  readonly published: number;
  /** Largest ÷ smallest over periods 3..N (1 = perfectly level). */
  readonly bronzeLevel: number;
  readonly natsLevel: number | null;
  /** Bytes silver and gold added per accepted record between period 2 and the last. */
  readonly silverBytesPerRecord: number;
  readonly goldBytesPerRecord: number;
  /** Bronze bytes per message it held at the last sample (what retention keeps). */
  readonly bronzeBytesPerHeldMessage: number;
  /** `tributary optimize` run beside the daemon after the last period: wall time, and the layers' bytes before and after. */
  readonly optimize: { seconds: number; beforeBytes: number; afterBytes: number };
  readonly mismatches: string[];
  readonly customersChecked: number;
}

/** A `tributary` command's stdout; rejects with its stderr unless it exits 0. */
function cliOutput(args: readonly string[]): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const c = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, TRIBUTARY_HTTP_LISTEN: "off" } });
    const chunks: Buffer[] = [];
    let err = "";
    c.stdout!.on("data", (d: Buffer) => chunks.push(d));
    c.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    c.once("exit", (code) => (code === 0 ? resolve(Buffer.concat(chunks).toString()) : reject(new Error(`tributary ${args[0]} exited ${code}: ${err.trim()}`))));
  });
}

/** Size of a file, 0 if absent. */
function size(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    total += e.isDirectory() ? dirBytes(p) : size(p);
  }
  return total;
}

/** One read-only look at the data dir, as an analyst with `sqlite3` would take it. */
function sample(dataDir: string): Omit<StoragePeriod, "period" | "published" | "natsStoreBytes"> {
  const bytes = Object.fromEntries(LAYERS.map((l) => [l, size(layerPath(dataDir, l)) + size(`${layerPath(dataDir, l)}-wal`)])) as Record<Layer, number>;
  const read = <T>(layer: Layer, sql: string, fallback: T): T => {
    try {
      const db = new Database(layerPath(dataDir, layer), { readonly: true, fileMustExist: true });
      try {
        db.pragma("busy_timeout = 5000");
        return (db.prepare(sql).pluck().get() as T) ?? fallback;
      } finally {
        db.close();
      }
    } catch {
      return fallback;
    }
  };
  return {
    applied: read("gold", "SELECT position FROM checkpoint WHERE layer = 'gold'", 0),
    bytes,
    bronzeHeld: read("bronze", "SELECT count(*) FROM messages", 0),
    bronzePruned: read("bronze", "SELECT pruned FROM retention", 0),
    silverRecords: read("silver", "SELECT total(n) FROM accepted_counts", 0),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function levelOf(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  return Math.max(...values) / Math.max(1, Math.min(...values));
}

export async function storageSoak(o: StorageSoakOptions): Promise<StorageSoakResult> {
  const base = mkdtempSync(join(tmpdir(), "tributary-storage-soak-"));
  const dataDir = join(base, "data");
  const stream = `SOAK_${process.pid}`;
  const prefix = `soak${process.pid}`;
  const subjects = [`${prefix}.>`];
  const period = o.periodSeconds;
  const config = join(base, "tributary.yaml");
  // One retention period of bronze; the stream keeps two (it must outlive any outage the daemon
  // should survive, so it is never shorter than bronze's), checked the way the README says.
  writeFileSync(
    config,
    [
      "nats:",
      `  stream: ${stream}`,
      `  subjects: ["${subjects[0]}"]`,
      "  consumer: soak",
      `  maxAge: ${2 * period}s`,
      "retention:",
      `  bronze: ${period}s`,
      "  pruneEvery: 1s",
      "storage:",
      `  optimizeEvery: ${Math.max(1, Math.round(period / 2))}s`,
      "",
    ].join("\n"),
  );
  const total = Math.round(o.rate * period * o.periods);
  const startMs = Date.now();
  // Event times walk with the publish clock (late and out-of-order arrivals included), so features
  // as of the end are what a daemon that ran this long would serve.
  const workload = generateWorkload({ seed: o.seed, messages: total, customers: o.customers, startMs, spanDays: (period * o.periods) / 86_400 });
  const expectations: Expectation[] = [];
  let daemon: ChildProcess | null = null;
  let stderr = "";
  try {
    daemon = spawn(process.execPath, [CLI, "run", "--config", config, "--nats", o.url, "--data-dir", dataDir, "--http", "off"], { stdio: ["ignore", "ignore", "pipe"] });
    daemon.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4_000)));
    const exited = new Promise<number | null>((resolve) => daemon!.once("exit", (code) => resolve(code)));
    // The daemon creates the stream with the configured limits; wait for it.
    const nc = await connect({ servers: o.url , noAsyncTraces: true });
    const jsm = await jetstreamManager(nc);
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        await jsm.streams.info(stream);
        break;
      } catch {
        if (Date.now() > deadline) throw new Error(`the daemon did not create stream ${stream} within 30 s: ${stderr}`);
        await sleep(100);
      }
    }
    const periods: StoragePeriod[] = [];
    const t0 = performance.now();
    let published = 0;
    const tickMs = 100;
    for (let p = 1; p <= o.periods; p++) {
      const periodEnd = p * period * 1000;
      while (performance.now() - t0 < periodEnd) {
        const due = Math.min(total, Math.round(((performance.now() - t0) / 1000) * o.rate));
        if (due > published) {
          const batch = [];
          for (; published < due; published++) {
            const m = workload.next();
            if (m.done) break;
            expectations.push(m.value.expect);
            const { subject, data, contentType, msgId } = m.value;
            batch.push({ subject: `${prefix}${subject.slice(subject.indexOf("."))}`, data, contentType, msgId });
          }
          await publishAll(nc, batch, { inFlight: 1024 });
        }
        await Promise.race([sleep(tickMs), exited.then((code) => Promise.reject(new Error(`the daemon exited (${code}) during the soak: ${stderr}`)))]);
      }
      const s = sample(dataDir);
      const natsStoreBytes = o.natsStoreDir ? dirBytes(o.natsStoreDir) : null;
      periods.push({ period: p, published, natsStoreBytes, ...s });
      const mb = (b: number) => (b / 1e6).toFixed(1);
      o.log(
        `  period ${p}/${o.periods}: ${published} published, ${s.applied} applied; bronze ${mb(s.bytes.bronze)} MB (${s.bronzeHeld} held, ${s.bronzePruned} pruned), silver ${mb(s.bytes.silver)} MB, gold ${mb(s.bytes.gold)} MB${natsStoreBytes === null ? "" : `, NATS store ${mb(natsStoreBytes)} MB`}`,
      );
    }
    await nc.close();
    // Everything applied, then a clean stop.
    const until = Date.now() + 120_000;
    while (sample(dataDir).applied < published) {
      if (Date.now() > until) throw new Error(`gold applied ${sample(dataDir).applied} of ${published} within 2 min of the last publish: ${stderr}`);
      await sleep(200);
    }
    // `tributary optimize` beside the running daemon, as a user would run it at the end of a day.
    const t1 = performance.now();
    const optimizeOut = await cliOutput(["optimize", "--data-dir", dataDir, "--format", "json"]);
    const optimizeSeconds = (performance.now() - t1) / 1000;
    const report = JSON.parse(optimizeOut) as { layers: { bytesBefore: number; bytesAfter: number }[] };
    const optimized = { seconds: optimizeSeconds, beforeBytes: 0, afterBytes: 0 };
    for (const l of report.layers) {
      optimized.beforeBytes += l.bytesBefore;
      optimized.afterBytes += l.bytesAfter;
    }
    o.log(`  optimize beside the daemon: ${optimizeSeconds.toFixed(2)} s, ${(optimized.beforeBytes / 1e6).toFixed(1)} MB -> ${(optimized.afterBytes / 1e6).toFixed(1)} MB`);
    daemon.kill("SIGTERM");
    const code = await exited;
    daemon = null;
    if (code !== 0) throw new Error(`the daemon exited ${code} on SIGTERM: ${stderr}`);

    // Every feature of every customer, as of just after the last event, against the reference.
    let last = 0;
    for (const e of expectations) if (e.valid && e.entity !== "customers" && e.eventAt > last) last = e.eventAt;
    const asOf = last + 1;
    const out = await cliOutput(["features", "--data-dir", dataDir, "--as-of", new Date(asOf).toISOString(), "--format", "csv"]);
    const actual = parse(out, { columns: true, skip_empty_lines: true }) as Record<string, string>[];
    const expected = referenceFeatures(expectations, DEFAULT_RATES, asOf);
    const mismatches = compareFeatures(actual, expected);

    const after = periods.slice(2);
    const second = periods[Math.min(1, periods.length - 1)]!;
    const lastP = periods[periods.length - 1]!;
    const added = Math.max(1, lastP.silverRecords - second.silverRecords);
    return {
      periods,
      periodSeconds: period,
      rate: o.rate,
      published,
      bronzeLevel: levelOf(after.map((p) => p.bytes.bronze)),
      natsLevel: o.natsStoreDir ? levelOf(after.map((p) => p.natsStoreBytes!)) : null,
      silverBytesPerRecord: (lastP.bytes.silver - second.bytes.silver) / added,
      goldBytesPerRecord: (lastP.bytes.gold - second.bytes.gold) / added,
      bronzeBytesPerHeldMessage: lastP.bytes.bronze / Math.max(1, lastP.bronzeHeld),
      optimize: optimized,
      mismatches,
      customersChecked: expected.length,
    };
  } finally {
    daemon?.kill("SIGKILL");
    rmSync(base, { recursive: true, force: true });
  }
}

/** The soak's report, as the bench prints it. */
export function formatStorageSoakReport(r: StorageSoakResult): string {
  const mb = (b: number | null) => (b === null ? "-" : (b / 1e6).toFixed(1));
  const lines = [
    `storage soak: ${r.periods.length} retention periods of ${r.periodSeconds} s at ${r.rate} msg/s (${r.published} messages)`,
    "",
    "| period | published | bronze MB | held | pruned | silver MB | gold MB | NATS store MB |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...r.periods.map(
      (p) => `| ${p.period} | ${p.published} | ${mb(p.bytes.bronze)} | ${p.bronzeHeld} | ${p.bronzePruned} | ${mb(p.bytes.silver)} | ${mb(p.bytes.gold)} | ${mb(p.natsStoreBytes)} |`,
    ),
    "",
    `bronze after the first retention period: largest / smallest size over periods 3..${r.periods.length} = ${r.bronzeLevel.toFixed(2)}` +
      (r.natsLevel === null ? "" : `; NATS store ${r.natsLevel.toFixed(2)}`),
    `tributary optimize beside the daemon: ${r.optimize.seconds.toFixed(2)} s, layers ${mb(r.optimize.beforeBytes)} MB -> ${mb(r.optimize.afterBytes)} MB`,
    `bronze holds ${r.bronzeBytesPerHeldMessage.toFixed(0)} bytes per message it keeps; silver adds ${r.silverBytesPerRecord.toFixed(0)} and gold ${r.goldBytesPerRecord.toFixed(0)} bytes per accepted record`,
    r.mismatches.length === 0
      ? `features of all ${r.customersChecked} customers equal the reference computation`
      : `${r.mismatches.length} feature mismatches, e.g. ${r.mismatches.slice(0, 3).join("; ")}`,
  ];
  return lines.join("\n");
}

/** `node dist/bench/storage-soak.js [options]`, or `npm run bench -- --storage-soak`. */
export async function storageSoakMain(argv: readonly string[]): Promise<void> {
  const int = (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`expected a positive integer, got ${v}`);
    return n;
  };
  const o = new Command("storage-soak")
    .description("a daemon under a paced publisher for N compressed retention periods: file sizes per period, then every feature against the reference")
    .option("--periods <n>", "retention periods (24: a day of compressed hours)", int, 24)
    .option("--period-seconds <s>", "retention.bronze, in seconds (the stream keeps two)", int, 30)
    .option("--rate <msg/s>", "publish rate", int, 2_000)
    .option("--customers <n>", "distinct customers", int, 20_000)
    .option("--nats <url>", "use this server instead of starting one (its store size is then not reported)")
    .parse(argv, { from: "user" })
    .opts<{ periods: number; periodSeconds: number; rate: number; customers: number; nats?: string }>();
  const server = o.nats ? null : await startNatsServer();
  try {
    const r = await storageSoak({
      url: o.nats ?? server!.url,
      natsStoreDir: server?.storeDir ?? null,
      periods: o.periods,
      periodSeconds: o.periodSeconds,
      rate: o.rate,
      customers: o.customers,
      seed: 24,
      log: (l) => console.error(l),
    });
    console.log(formatStorageSoakReport(r));
    if (r.mismatches.length > 0) process.exitCode = 1;
  } finally {
    await server?.stop();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await storageSoakMain(process.argv.slice(2));

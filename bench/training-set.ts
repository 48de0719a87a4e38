/**
 * `npm run bench -- --training-set`: tributary's point-in-time training sets against the same
 * features computed by DuckDB over tributary's own silver export, on the same data in the same run.
 *
 * 1. Builds a data dir from the seeded generator (`generateWorkload`), fed through the topology
 *    as an observable source whose broker time walks the generator's 90-day stream clock, so the
 *    records the generator makes late (event time 1-20 days behind the stream) really arrive days
 *    after they happened, and `--known-at label` has something to leave out.
 * 2. Writes a Parquet labels file: customers drawn from the data's customers, mid-day (12:00 UTC)
 *    label times spread over the data's 90 days.
 * 3. Times `tributary training-set --known-at latest` (the compared run) and `--known-at label` as
 *    child processes: wall time, CPU time and peak RSS (`ru_maxrss`) of each child.
 * 4. Times `tributary export --layer silver --format parquet` (reported, not counted), then a
 *    DuckDB query over the exported files that computes the same features for the same labels, as
 *    a user would write it, in a child process of its own.
 * 5. Checks that every label row has the same value in every feature column in both outputs, and
 *    fails loudly otherwise.
 *
 * Run as `node dist/bench/training-set.js --duckdb-child SPEC.json`, it is the DuckDB child.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import Database from "better-sqlite3";
import { createTopology } from "../src/topology.js";
import { generateWorkload, prng } from "../src/sources/generator.js";
import { pulled } from "../src/sources/pulled.js";
import { CommitCredit } from "../src/runtime/commit-credit.js";
import { layerPath } from "../src/sinks/database.js";
import { silentLogger } from "../src/log.js";
import { DAY_MS } from "../src/timestamps.js";
import { openParquetWriter } from "../src/serving/parquet.js";
import { STATUS_COLUMN, featureSpecs } from "../src/serving/training-set.js";
import type { SourceMessage } from "../src/types.js";
import { summarizeProfile, type ProfileSummary } from "./profile.js";
import { median } from "./stats.js";

const CLI = fileURLToPath(new URL("../src/cli.js", import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const START_MS = Date.UTC(2026, 0, 1);
const SPAN_DAYS = 90;
/** Share of generated messages that are valid first copies (the generator's 5% duplicates and 1% invalid are not). */
const VALID_SHARE = 0.94;
/** The four event tables and their event time: what the DuckDB query joins, and where late arrivals are counted. */
const EVENT_TABLES = [
  ["transactions", "transaction_at"],
  ["sessions", "session_start_at"],
  ["interactions", "interaction_at"],
  ["events", "event_at"],
] as const;

export interface TrainingSetBenchOptions {
  /** Valid records wanted in silver (the generator is asked for records / 0.94 messages). */
  readonly records: number;
  readonly customers: number;
  readonly labels: number;
  readonly seed: number;
  /** Timed rounds of tributary (latest) and DuckDB, interleaved; medians are reported. */
  readonly repeat: number;
  /** Keep the data dir, the labels, the export and the outputs (their directory is reported). */
  readonly keep: boolean;
  /** Node/V8 flags for the tributary children (the `tributary` command's by default). */
  readonly nodeFlags: readonly string[];
  /** Profile one extra `--known-at latest` run with `node --cpu-prof` into this directory. */
  readonly profileDir: string | null;
  readonly log: (line: string) => void;
}

/** One child process: wall time from spawn to exit, its CPU time and its peak RSS. */
export interface ChildRun {
  readonly seconds: number;
  readonly cpuSeconds: number;
  readonly peakRssMb: number;
}

export interface ColumnCheck {
  readonly column: string;
  readonly mismatches: number;
  /** Up to five differing rows: label_id, customer_id, label_time, tributary's value, DuckDB's. */
  readonly examples: string[];
}

export interface TrainingSetBenchResult {
  readonly workDir: string | null;
  readonly build: {
    readonly messages: number;
    readonly seconds: number;
    readonly silverRows: Record<string, number>;
    readonly eventRecords: number;
    /** Event records that reached silver more than a day after their event time. */
    readonly lateRecords: number;
    readonly customers: number;
    readonly silverBytes: number;
  };
  readonly labels: { readonly rows: number; readonly bytes: number; readonly status: Record<string, number> };
  readonly tributary: { readonly latest: ChildRun; readonly label: ChildRun; readonly rounds: number[] };
  readonly export: ChildRun & { readonly bytes: number };
  readonly duckdb: ChildRun & { readonly querySeconds: number; readonly threads: number; readonly rounds: number[] };
  /** tributary `--known-at latest` wall time ÷ DuckDB query wall time (both whole processes): the median of the rounds' ratios. */
  readonly ratio: number;
  readonly ratios: number[];
  /**
   * Rows where `label` and `latest` differ: in any column, and in the columns computed from
   * records (not the profile's segment and registration), which only a late record changes.
   */
  readonly policyDifferences: { readonly any: number; readonly fromRecords: number };
  readonly check: { readonly rows: number; readonly columns: string[]; readonly mismatchedRows: number; readonly byColumn: ColumnCheck[] };
  readonly profile: { readonly summary: ProfileSummary; readonly phases: Record<string, number> } | null;
}

/** Runs the whole phase; throws (after writing nothing misleading) when the outputs differ. */
export async function trainingSetBench(o: TrainingSetBenchOptions): Promise<TrainingSetBenchResult> {
  const work = mkdtempSync(join(tmpdir(), "tributary-bench-training-set-"));
  const dataDir = join(work, "data");
  const exportDir = join(work, "silver-export");
  const labelsFile = join(work, "labels.parquet");
  const out = (name: string) => join(work, name);
  let done = false;
  try {
    o.log(`training set: building a data dir of ${o.records.toLocaleString("en-US")} valid records over ${o.customers.toLocaleString("en-US")} customers in ${work}`);
    const build = await buildDataDir(dataDir, o);
    o.log(
      `  ${build.messages.toLocaleString("en-US")} messages in ${build.seconds.toFixed(1)} s: ${build.eventRecords.toLocaleString("en-US")} event records, ` +
        `${build.silverRows.customers!.toLocaleString("en-US")} profiles, ${build.lateRecords.toLocaleString("en-US")} arrived over a day late`,
    );
    const labelsBytes = writeLabels(labelsFile, dataDir, o);
    o.log(`  ${o.labels.toLocaleString("en-US")} labels written to ${labelsFile} (${(labelsBytes / 2 ** 20).toFixed(1)} MB)`);

    const trainingSetArgs = (knownAt: string, file: string) => [CLI, "training-set", "--labels", labelsFile, "--out", file, "--known-at", knownAt, "--data-dir", dataDir];
    const tribRounds: ChildRun[] = [];
    const duckRounds: (ChildRun & { querySeconds: number; threads: number })[] = [];
    let label: ChildRun | null = null;
    let exported: ChildRun | null = null;
    for (let round = 1; round <= o.repeat; round++) {
      const suffix = o.repeat > 1 ? ` (round ${round}/${o.repeat})` : "";
      const t = await runChild(trainingSetArgs("latest", out("tributary-latest.parquet")), o.nodeFlags, work);
      o.log(`tributary training-set --known-at latest${suffix}: ${t.seconds.toFixed(2)} s, CPU ${t.cpuSeconds.toFixed(2)} s, peak RSS ${t.peakRssMb.toFixed(0)} MB`);
      tribRounds.push(t);
      if (label === null) {
        label = await runChild(trainingSetArgs("label", out("tributary-label.parquet")), o.nodeFlags, work);
        o.log(`tributary training-set --known-at label: ${label.seconds.toFixed(2)} s, CPU ${label.cpuSeconds.toFixed(2)} s, peak RSS ${label.peakRssMb.toFixed(0)} MB`);
      }
      if (exported === null) {
        exported = await runChild([CLI, "export", "--layer", "silver", "--format", "parquet", "--out", exportDir, "--data-dir", dataDir], o.nodeFlags, work);
        o.log(`tributary export --layer silver --format parquet: ${exported.seconds.toFixed(2)} s, peak RSS ${exported.peakRssMb.toFixed(0)} MB (not counted)`);
      }
      const spec = out("duckdb-spec.json");
      writeFileSync(spec, JSON.stringify({ labels: labelsFile, silverDir: exportDir, out: out("duckdb.parquet") } satisfies DuckSpec));
      const d = await runChild([SELF, "--duckdb-child", spec], [], work);
      const inner = JSON.parse(d.stdout) as { querySeconds: number; threads: number };
      o.log(`DuckDB query${suffix}: ${d.seconds.toFixed(2)} s (query ${inner.querySeconds.toFixed(2)} s on ${inner.threads} threads), CPU ${d.cpuSeconds.toFixed(2)} s, peak RSS ${d.peakRssMb.toFixed(0)} MB`);
      duckRounds.push({ ...strip(d), ...inner });
    }
    const latest = summarizeRuns(tribRounds);
    const duck = { ...summarizeRuns(duckRounds), querySeconds: median(duckRounds.map((r) => r.querySeconds)), threads: duckRounds[0]!.threads };
    // Per round, each tributary run against the DuckDB run right after it.
    const ratios = tribRounds.map((t, i) => t.seconds / duckRounds[i]!.seconds);

    const columns = [...featureSpecs([]).map((c) => c.name), STATUS_COLUMN];
    const check = await compareOutputs(out("tributary-latest.parquet"), out("duckdb.parquet"), columns);
    const policyDifferences = await countDifferences(out("tributary-latest.parquet"), out("tributary-label.parquet"), columns);
    const status = await statusCounts(out("tributary-latest.parquet"));

    let profile: TrainingSetBenchResult["profile"] = null;
    if (o.profileDir !== null) {
      const dir = join(o.profileDir, `training-set-${Date.now().toString(36)}`);
      mkdirSync(dir, { recursive: true });
      o.log(`profiling tributary training-set --known-at latest (node --cpu-prof) into ${dir}`);
      await runChild(trainingSetArgs("latest", out("tributary-profiled.parquet")), [...o.nodeFlags, "--cpu-prof", `--cpu-prof-dir=${dir}`], work);
      const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
      if (file === undefined) throw new Error(`no profile was written to ${dir}`);
      profile = { summary: summarizeProfile(join(dir, file), 25), phases: profilePhases(join(dir, file)) };
    }

    const result: TrainingSetBenchResult = {
      workDir: o.keep ? work : null,
      build,
      labels: { rows: o.labels, bytes: labelsBytes, status },
      tributary: { latest, label: label!, rounds: tribRounds.map((r) => r.seconds) },
      export: { ...strip(exported!), bytes: dirBytes(exportDir) },
      duckdb: { ...duck, rounds: duckRounds.map((r) => r.seconds) },
      ratio: median(ratios),
      ratios,
      policyDifferences,
      check,
      profile,
    };
    done = true;
    return result;
  } finally {
    if (!o.keep) rmSync(work, { recursive: true, force: true });
    else if (!done) o.log(`kept ${work}`);
  }
}

/** Rounds of one run: median wall and CPU time (nearest rank, as the rest of the bench: use an odd --repeat), the highest peak RSS. */
function summarizeRuns(runs: readonly ChildRun[]): ChildRun {
  return { seconds: median(runs.map((r) => r.seconds)), cpuSeconds: median(runs.map((r) => r.cpuSeconds)), peakRssMb: Math.max(...runs.map((r) => r.peakRssMb)) };
}

const strip = (r: ChildRun): ChildRun => ({ seconds: r.seconds, cpuSeconds: r.cpuSeconds, peakRssMb: r.peakRssMb });

/**
 * Generated messages through a topology into `dir`. The broker time of message i is the stream
 * clock the generator puts it at (start + span × i / n), so availability follows the stream and a
 * record the generator makes late is available days after its event time.
 */
async function buildDataDir(dir: string, o: TrainingSetBenchOptions): Promise<TrainingSetBenchResult["build"]> {
  const messages = Math.ceil(o.records / VALID_SHARE);
  const span = SPAN_DAYS * DAY_MS;
  const credit = new CommitCredit(20_000);
  const release = () => credit.release(1);
  const origin = `bench:training-set:${o.seed}`;
  function* source(): Generator<SourceMessage> {
    let i = 0;
    const gen = generateWorkload({ seed: o.seed, messages, customers: o.customers, startMs: START_MS, spanDays: SPAN_DAYS });
    for (const m of gen) {
      const brokerAt = START_MS + Math.floor((span * i) / messages);
      i++;
      yield { origin, originSeq: i, subject: m.subject, data: m.data, receivedAt: Date.now(), publishedAt: brokerAt, contentType: m.contentType, msgId: m.msgId, ack: release };
    }
  }
  const t0 = performance.now();
  const topology = createTopology({
    dataDir: dir,
    source: { kind: "observable", messages: pulled(source(), { credit }) },
    metrics: false,
    log: silentLogger,
  });
  let next = t0 + 15_000;
  const sub = topology.stats$.subscribe((s) => {
    const now = performance.now();
    if (now < next) return;
    next = now + 15_000;
    o.log(`  ${s.bronze.toLocaleString("en-US")} of ${messages.toLocaleString("en-US")} messages committed (${((now - t0) / 1000).toFixed(0)} s)`);
  });
  await topology.start();
  const stats = await topology.done;
  await topology.stop();
  sub.unsubscribe();
  const seconds = (performance.now() - t0) / 1000;
  if (stats.bronze !== messages) throw new Error(`the data dir holds ${stats.bronze} of ${messages} generated messages`);
  const silver = new Database(layerPath(dir, "silver"), { readonly: true });
  try {
    const count = (sql: string) => silver.prepare(sql).pluck().get() as number;
    const silverRows = Object.fromEntries(["customers", ...EVENT_TABLES.map(([t]) => t)].map((t) => [t, count(`SELECT count(*) FROM ${t}`)]));
    const late = EVENT_TABLES.reduce((n, [t, at]) => n + count(`SELECT count(*) FROM ${t} WHERE available_at - ${at} > ${DAY_MS}`), 0);
    const eventRecords = EVENT_TABLES.reduce((n, [t]) => n + silverRows[t]!, 0);
    const customers = count(`SELECT count(*) FROM (${EVENT_TABLES.map(([t]) => `SELECT customer_id FROM ${t}`).join(" UNION ")} UNION SELECT customer_id FROM customers)`);
    return { messages, seconds, silverRows, eventRecords, lateRecords: late, customers, silverBytes: statSync(layerPath(dir, "silver")).size };
  } finally {
    silver.close();
  }
}

/**
 * The labels: `label_id` (the row, for joining the two outputs), `customer_id` drawn from the
 * customers gold holds, `label_time` at 12:00 UTC of a day of the data's span, and a 0/1 `churned`.
 */
function writeLabels(file: string, dataDir: string, o: TrainingSetBenchOptions): number {
  const gold = new Database(layerPath(dataDir, "gold"), { readonly: true });
  let ids: string[];
  try {
    ids = gold.prepare("SELECT DISTINCT customer_id FROM customer_daily ORDER BY customer_id").pluck().all() as string[];
  } finally {
    gold.close();
  }
  const rand = prng(o.seed + 1);
  const w = openParquetWriter(file, [
    { name: "label_id", type: "long", nullable: false },
    { name: "customer_id", type: "string", nullable: false },
    { name: "label_time", type: "datetime", nullable: false },
    { name: "churned", type: "long", nullable: false },
  ]);
  for (let i = 0; i < o.labels; i++) {
    const day = Math.floor(rand() * SPAN_DAYS);
    w.write([i + 1, ids[Math.floor(rand() * ids.length)]!, START_MS + day * DAY_MS + DAY_MS / 2, rand() < 0.2 ? 1 : 0]);
  }
  return w.close().bytes;
}

/** Writes the child's `process.resourceUsage()` to the file its environment names, at exit. */
const USAGE_HOOK =
  'data:text/javascript,import{writeFileSync}from"node:fs";process.on("exit",()=>writeFileSync(process.env.BENCH_USAGE_FILE,JSON.stringify(process.resourceUsage())))';

let childCount = 0;

/** Runs `node [execArgv] args…` to its end; its peak RSS and CPU come from `ru_maxrss` and `ru_utime + ru_stime` at its exit. */
function runChild(args: readonly string[], execArgv: readonly string[], work: string): Promise<ChildRun & { stdout: string }> {
  const usageFile = join(work, `usage-${++childCount}.json`);
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const proc = spawn(process.execPath, [...execArgv, "--import", USAGE_HOOK, ...args], {
      cwd: work,
      env: { ...process.env, BENCH_USAGE_FILE: usageFile },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    proc.stdout.on("data", (d) => (stdout += d));
    proc.stderr.on("data", (d) => (stderr += d));
    proc.once("error", reject);
    proc.once("close", (code, signal) => {
      const seconds = (performance.now() - t0) / 1000;
      const what = args.slice(1, 2).join(" ");
      if (code !== 0) return reject(new Error(`${what} exited with ${signal ?? code}: ${stderr.trim().split("\n").slice(-5).join(" | ")}`));
      const u = JSON.parse(readFileSync(usageFile, "utf8")) as NodeJS.ResourceUsage;
      resolve({ seconds, cpuSeconds: (u.userCPUTime + u.systemCPUTime) / 1e6, peakRssMb: u.maxRSS / 1024, stdout });
    });
  });
}

function dirBytes(dir: string): number {
  return readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

interface DuckSpec {
  readonly labels: string;
  readonly silverDir: string;
  readonly out: string;
}

const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;

/**
 * The built-in features for each label row as a user would write them in DuckDB over the silver
 * export: each label joined to its customer's records with event time before label_time, grouped
 * by label row; the profile is the current one (as `--known-at latest` takes it).
 *
 * Written to give tributary's exact values: spend summed as integer millionths of amount_base
 * (`round(amount_base * 1e6)`), then divided and rounded to cents; every rounding is
 * `round(x, d)` of the same double tributary rounds. A row is `no_data` when its customer has
 * nothing before label_time (no record, no profile registered before it or undated), and
 * `unknown_customer` when the customer has no data at all; such rows have every feature null.
 */
export function duckdbTrainingSetSql(spec: DuckSpec): string {
  const silver = (table: string) => `read_parquet(${lit(join(spec.silverDir, `${table}.parquet`))})`;
  const micros = "CAST(round(t.amount_base * 1000000) AS BIGINT)";
  const recent = "t.transaction_at >= l.label_time - INTERVAL 30 DAY";
  return `
COPY (
  WITH labels AS (SELECT * FROM read_parquet(${lit(spec.labels)})),
  tx AS (
    SELECT l.label_id,
      count(*) AS n,
      sum(${micros}) AS micros,
      min(t.transaction_at) AS first_at,
      max(t.transaction_at) AS last_at,
      count(*) FILTER (WHERE ${recent}) AS n30,
      coalesce(sum(${micros}) FILTER (WHERE ${recent}), 0) AS micros30
    FROM labels l JOIN ${silver("transactions")} t ON t.customer_id = l.customer_id AND t.transaction_at < l.label_time
    GROUP BY l.label_id
  ),
  se AS (
    SELECT l.label_id, count(*) AS n, sum(epoch_ms(s.session_end_at) - epoch_ms(s.session_start_at)) AS ms
    FROM labels l JOIN ${silver("sessions")} s ON s.customer_id = l.customer_id AND s.session_start_at < l.label_time
    GROUP BY l.label_id
  ),
  ia AS (
    SELECT l.label_id, count(*) AS n
    FROM labels l JOIN ${silver("interactions")} i ON i.customer_id = l.customer_id AND i.interaction_at < l.label_time
    GROUP BY l.label_id
  ),
  ev AS (
    SELECT l.label_id, count(*) AS n
    FROM labels l JOIN ${silver("events")} e ON e.customer_id = l.customer_id AND e.event_at < l.label_time
    GROUP BY l.label_id
  ),
  known AS (
    SELECT customer_id FROM ${silver("customers")}
    UNION SELECT customer_id FROM ${silver("transactions")}
    UNION SELECT customer_id FROM ${silver("sessions")}
    UNION SELECT customer_id FROM ${silver("interactions")}
    UNION SELECT customer_id FROM ${silver("events")}
  ),
  joined AS (
    SELECT l.*, tx.micros, tx.first_at, tx.last_at, tx.n30, tx.micros30, c.customer_segment AS segment, c.registration_at,
      coalesce(tx.n, 0) AS tx_n, coalesce(se.n, 0) AS se_n, se.ms AS se_ms, coalesce(ia.n, 0) AS ia_n, coalesce(ev.n, 0) AS ev_n,
      CASE
        WHEN l.customer_id NOT IN (SELECT customer_id FROM known) THEN 'unknown_customer'
        WHEN coalesce(tx.n, 0) + coalesce(se.n, 0) + coalesce(ia.n, 0) + coalesce(ev.n, 0) > 0
          OR (c.customer_id IS NOT NULL AND (c.registration_at IS NULL OR c.registration_at < l.label_time)) THEN 'ok'
        ELSE 'no_data'
      END AS status
    FROM labels l
    LEFT JOIN tx USING (label_id)
    LEFT JOIN se USING (label_id)
    LEFT JOIN ia USING (label_id)
    LEFT JOIN ev USING (label_id)
    LEFT JOIN ${silver("customers")} c ON c.customer_id = l.customer_id
  )
  SELECT label_id, customer_id, label_time, churned,
    CASE WHEN status = 'ok' THEN coalesce(segment, 'unknown') END AS customer_segment,
    CASE WHEN status = 'ok' THEN tx_n END AS purchase_frequency,
    CASE WHEN status = 'ok' THEN round(coalesce(micros, 0)::DOUBLE / 1e6, 2) END AS total_spend,
    CASE WHEN status = 'ok' AND tx_n > 0 THEN round(micros::DOUBLE / 1e6 / tx_n, 2) END AS avg_transaction_value,
    CASE WHEN status = 'ok' THEN first_at END AS first_transaction_at,
    CASE WHEN status = 'ok' THEN last_at END AS last_transaction_at,
    CASE WHEN status = 'ok' AND tx_n > 0 THEN round((epoch_ms(label_time) - epoch_ms(last_at))::DOUBLE / ${DAY_MS}, 6) END AS recency_days,
    CASE WHEN status = 'ok' THEN coalesce(n30, 0) END AS transactions_last_30_days,
    CASE WHEN status = 'ok' THEN round(coalesce(micros30, 0)::DOUBLE / 1e6, 2) END AS spend_last_30_days,
    CASE WHEN status = 'ok' THEN se_n END AS session_count,
    CASE WHEN status = 'ok' AND se_n > 0 THEN round(se_ms::DOUBLE / 1000 / se_n, 3) END AS avg_session_duration_seconds,
    CASE WHEN status = 'ok' THEN ia_n END AS interaction_count,
    CASE WHEN status = 'ok' THEN ev_n END AS event_count,
    CASE WHEN status = 'ok' AND registration_at < label_time
      THEN round((epoch_ms(label_time) - epoch_ms(registration_at))::DOUBLE / ${DAY_MS}, 6) END AS days_since_registration,
    status AS ${STATUS_COLUMN}
  FROM joined
  ORDER BY label_id
) TO ${lit(spec.out)} (FORMAT parquet)`;
}

/** The DuckDB child: runs the query and prints its own timing as JSON. */
async function duckdbChild(specFile: string): Promise<void> {
  const spec = JSON.parse(readFileSync(specFile, "utf8")) as DuckSpec;
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const db = await DuckDBInstance.create(":memory:");
  const c = await db.connect();
  // Interval arithmetic on TIMESTAMPTZ follows the session's time zone; tributary's days are UTC.
  await c.run("SET TimeZone = 'UTC'");
  const threads = Number((await c.runAndReadAll("SELECT current_setting('threads')")).getRows()[0]![0]);
  const t0 = performance.now();
  await c.run(duckdbTrainingSetSql(spec));
  const querySeconds = (performance.now() - t0) / 1000;
  c.closeSync();
  db.closeSync();
  process.stdout.write(JSON.stringify({ querySeconds, threads }) + "\n");
}

/** An in-process DuckDB for the checks after the timed runs. */
async function withDuckDB<T>(run: (sql: (q: string) => Promise<Record<string, unknown>[]>) => Promise<T>): Promise<T> {
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const db = await DuckDBInstance.create(":memory:");
  const c = await db.connect();
  try {
    return await run(async (q) => (await c.runAndReadAll(q)).getRowObjectsJS() as Record<string, unknown>[]);
  } finally {
    c.closeSync();
    db.closeSync();
  }
}

const col = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** Compares two outputs row by row (joined on label_id), column by column, exactly. */
async function compareOutputs(tributaryFile: string, duckFile: string, columns: readonly string[]): Promise<TrainingSetBenchResult["check"]> {
  return withDuckDB(async (sql) => {
    const duckColumns = new Set((await sql(`DESCRIBE SELECT * FROM read_parquet(${lit(duckFile)})`)).map((r) => r.column_name as string));
    const missing = columns.filter((c) => !duckColumns.has(c));
    if (missing.length > 0) throw new Error(`the DuckDB query has no column ${missing.join(", ")}: every feature tributary writes must be compared`);
    const from = `read_parquet(${lit(tributaryFile)}) t FULL JOIN read_parquet(${lit(duckFile)}) d ON t.label_id = d.label_id`;
    const differs = (c: string) => `t.${col(c)} IS DISTINCT FROM d.${col(c)}`;
    const [counts] = await sql(
      `SELECT count(*) AS rows, count(t.label_id) AS t_rows, count(d.label_id) AS d_rows,
        count(*) FILTER (WHERE ${columns.map(differs).join(" OR ")}) AS mismatched,
        ${columns.map((c, i) => `count(*) FILTER (WHERE ${differs(c)}) AS m${i}`).join(", ")}
       FROM ${from}`,
    );
    const rows = Number(counts!.rows);
    if (Number(counts!.t_rows) !== rows || Number(counts!.d_rows) !== rows) {
      throw new Error(`the outputs hold other label rows: ${rows} joined, tributary ${counts!.t_rows}, DuckDB ${counts!.d_rows}`);
    }
    const byColumn: ColumnCheck[] = [];
    for (const [i, c] of columns.entries()) {
      const mismatches = Number(counts![`m${i}`]);
      let examples: string[] = [];
      if (mismatches > 0) {
        const rows = await sql(
          `SELECT t.label_id, t.customer_id, CAST(t.label_time AS VARCHAR) AS label_time, CAST(t.${col(c)} AS VARCHAR) AS mine, CAST(d.${col(c)} AS VARCHAR) AS theirs
           FROM ${from} WHERE ${differs(c)} ORDER BY t.label_id LIMIT 5`,
        );
        examples = rows.map((r) => `label ${r.label_id} (${r.customer_id} at ${r.label_time}): tributary ${r.mine ?? "null"}, DuckDB ${r.theirs ?? "null"}`);
      }
      byColumn.push({ column: c, mismatches, examples });
    }
    return { rows, columns: [...columns], mismatchedRows: Number(counts!.mismatched), byColumn };
  });
}

/** Rows where two training sets of the same labels differ in any column, and in any column computed from records. */
async function countDifferences(a: string, b: string, columns: readonly string[]): Promise<TrainingSetBenchResult["policyDifferences"]> {
  const profileColumns = ["customer_segment", "days_since_registration"];
  const any = (cs: readonly string[]) => cs.map((c) => `a.${col(c)} IS DISTINCT FROM b.${col(c)}`).join(" OR ");
  return withDuckDB(async (sql) => {
    const [r] = await sql(
      `SELECT count(*) FILTER (WHERE ${any(columns)}) AS n, count(*) FILTER (WHERE ${any(columns.filter((c) => !profileColumns.includes(c)))}) AS records
       FROM read_parquet(${lit(a)}) a JOIN read_parquet(${lit(b)}) b ON a.label_id = b.label_id`,
    );
    return { any: Number(r!.n), fromRecords: Number(r!.records) };
  });
}

async function statusCounts(file: string): Promise<Record<string, number>> {
  return withDuckDB(async (sql) => {
    const rows = await sql(`SELECT ${col(STATUS_COLUMN)} AS s, count(*) AS n FROM read_parquet(${lit(file)}) GROUP BY 1 ORDER BY 1`);
    return Object.fromEntries(rows.map((r) => [String(r.s), Number(r.n)]));
  });
}

/**
 * Where a training-set run spends its time, from a `.cpuprofile`: the inclusive time of the
 * functions that make up its phases (`*`: any function of that file), each sample counted once
 * per phase however deep it recurses. V8 books garbage collection apart, under the root.
 */
const PHASES: readonly (readonly [phase: string, fn: string, file: string])[] = [
  ["whole command: writeTrainingSet", "writeTrainingSet", "serving/training-set.js"],
  ["read the labels: hyparquet's decoding", "*", "/node_modules/hyparquet/src/"],
  ["read the labels: into columns (readParquetLabels)", "readParquetLabels", "serving/training-set.js"],
  ["computeTrainingSet", "computeTrainingSet", "serving/training-set.js"],
  ["  read silver and gold (load)", "load", "serving/training-set.js"],
  ["    of which the bulk reads (readIntegerColumns: SQLite's group_concat, then the two below)", "readIntegerColumns", "serving/bulk-read.js"],
  ["    of which customer ids looked up (lookUp)", "lookUp", "serving/bulk-read.js"],
  ["    of which integers parsed (parseIntegers)", "parseIntegers", "serving/bulk-read.js"],
  ["  sort records by customer", "sortByCustomer", "serving/training-set.js"],
  ["write Parquet (writeParquetColumns)", "writeParquetColumns", "serving/parquet-columns.js"],
  ["  of which Snappy (hysnappy)", "*", "/node_modules/hysnappy/"],
  ["  of which hyparquet-writer (page headers, RLE, footer)", "*", "/node_modules/hyparquet-writer/src/"],
];

export function profilePhases(path: string): Record<string, number> {
  interface Node {
    id: number;
    callFrame: { functionName: string; url: string };
    children?: number[];
  }
  const p = JSON.parse(readFileSync(path, "utf8")) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const us = new Array<number>(PHASES.length).fill(0);
  let gc = 0;
  let total = 0;
  const visit = (id: number, active: readonly boolean[]) => {
    const n = byId.get(id)!;
    const { functionName, url } = n.callFrame;
    const here = PHASES.map(([, fn, file], i) => active[i]! || ((fn === "*" || functionName === fn) && (fn === "*" ? url.includes(file) : url.endsWith(file))));
    const self = selfUs.get(id) ?? 0;
    if (functionName !== "(idle)") total += self;
    if (functionName === "(garbage collector)") gc += self;
    for (let i = 0; i < here.length; i++) if (here[i]) us[i]! += self;
    for (const c of n.children ?? []) visit(c, here);
  };
  visit(p.nodes[0]!.id, PHASES.map(() => false));
  const ms = Object.fromEntries(PHASES.map(([phase], i) => [phase, us[i]! / 1000]));
  const perLabel = ms["computeTrainingSet"]! - ms["  read silver and gold (load)"]! - ms["  sort records by customer"]!;
  return { "busy (all)": total / 1000, ...ms, "  per-label loop (the rest of computeTrainingSet)": perLabel, "(garbage collector)": gc / 1000 };
}

/** The phase's report as text (stdout). */
export function formatTrainingSetReport(r: TrainingSetBenchResult, o: TrainingSetBenchOptions): string {
  const n = (x: number) => x.toLocaleString("en-US");
  const s = (x: number) => x.toFixed(2);
  const row = (what: string, c: ChildRun) => `| ${what} | ${s(c.seconds)} | ${s(c.cpuSeconds)} | ${c.peakRssMb.toFixed(0)} |`;
  const lines = [
    `training sets against DuckDB (seed ${o.seed})`,
    "",
    `data: ${n(r.build.messages)} generated messages -> ${n(r.build.eventRecords)} event records (${EVENT_TABLES.map(([t]) => `${t} ${n(r.build.silverRows[t]!)}`).join(", ")}) ` +
      `and ${n(r.build.silverRows.customers!)} profiles over ${n(r.build.customers)} customers; ${n(r.build.lateRecords)} arrived more than a day after their event time; built in ${r.build.seconds.toFixed(0)} s; silver ${(r.build.silverBytes / 2 ** 20).toFixed(0)} MB`,
    `labels: ${n(r.labels.rows)} (Parquet, ${(r.labels.bytes / 2 ** 20).toFixed(1)} MB); latest: ${Object.entries(r.labels.status).map(([k, v]) => `${k} ${n(v)}`).join(", ")}; ` +
      `--known-at label and latest differ in ${n(r.policyDifferences.any)} rows, ${n(r.policyDifferences.fromRecords)} of them in features computed from records`,
    "",
    "| run | wall s | CPU s | peak RSS MB |",
    "|---|---:|---:|---:|",
    row("tributary training-set --known-at latest", r.tributary.latest),
    row("tributary training-set --known-at label", r.tributary.label),
    row(`DuckDB query (${r.duckdb.threads} threads; query alone ${s(r.duckdb.querySeconds)} s)`, r.duckdb),
    row("tributary export --layer silver --format parquet (not counted)", r.export),
    "",
    `tributary/DuckDB ${s(r.ratio)} (wall time of the whole processes${r.ratios.length > 1 ? `; median of the rounds' ${r.ratios.map(s).join(", ")}: tributary ${r.tributary.rounds.map(s).join(", ")} s, DuckDB ${r.duckdb.rounds.map(s).join(", ")} s` : ""})`,
  ];
  lines.push(`from the data dir, DuckDB's route takes the export too: ${s(r.export.seconds)} + ${s(r.duckdb.seconds)} = ${s(r.export.seconds + r.duckdb.seconds)} s`);
  if (r.check.mismatchedRows === 0) {
    lines.push(`check: equal: ${n(r.check.rows)} label rows x ${r.check.columns.length} columns (${r.check.columns.join(", ")})`);
  } else {
    lines.push(`check: FAILED: ${n(r.check.mismatchedRows)} of ${n(r.check.rows)} label rows differ`);
    for (const c of r.check.byColumn.filter((c) => c.mismatches > 0)) {
      lines.push(`  ${c.column}: ${n(c.mismatches)} rows`, ...c.examples.map((e) => `    ${e}`));
    }
  }
  if (r.profile) {
    lines.push("", `profile (inclusive ms): ${Object.entries(r.profile.phases).map(([k, v]) => `\n  ${v.toFixed(0).padStart(7)}  ${k}`).join("")}`);
    lines.push("", "hot functions (self time):", ...r.profile.summary.functions.slice(0, 15).map((f) => `  ${f.selfPct.toFixed(1).padStart(5)}%  ${f.selfMs.toFixed(0).padStart(7)} ms  ${f.name}  ${f.where}`));
  }
  if (r.workDir) lines.push("", `kept: ${r.workDir}`);
  return lines.join("\n") + "\n";
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && process.argv[2] === "--duckdb-child") {
  duckdbChild(process.argv[3]!).catch((err: unknown) => {
    process.stderr.write(`duckdb child: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}

#!/usr/bin/env -S node --max-old-space-size=256 --max-semi-space-size=8
/**
 * The `tributary` command line. Errors a user can act on are one line on stderr and an exit code:
 * 2 for configuration and usage errors, 3 when NATS cannot be reached, 1 for anything else.
 */
import { readFileSync } from "node:fs";
import { Command, CommanderError, Option } from "commander";
import { configAsWritten, loadConfig, maskSecrets, type Config, type ConfigOverrides } from "./config.js";
import { createTopology, type PipelineStats, type SourceSpec, type Topology } from "./topology.js";
import { parseListen, type HttpListen } from "./http.js";
import { createProgress } from "./progress.js";
import { FeatureReader, formatFeatures, type FeatureRow } from "./features.js";
import { readStatus, readStreamStatus, type StreamStatus } from "./status.js";
import { probeStream } from "./sources/stream-probe.js";
import { EXPORT_FORMATS, EXPORT_LAYERS, exportLayer, type ExportFormat, type ExportLayer } from "./serving/export.js";
import { KNOWN_AT, readLabels, writeTrainingSet, type KnownAt } from "./serving/training-set.js";
import { formatOptimizeReport, optimizeDataDir } from "./serving/optimize.js";
import { QUARANTINE_FORMATS, QuarantineReader, formatQuarantine, type QuarantineFormat } from "./serving/quarantine.js";
import { parseAsOf } from "./timestamps.js";
import { contractSchemas, entitySchema } from "./model/schema.js";
import { ENTITIES, type Entity } from "./types.js";
import { BUILTIN_FEATURES, customFeaturesOf, describeCustom, type FeatureDescription } from "./model/features.js";
import { createLogger, type Logger } from "./log.js";
import { CheckpointError, ConfigError, DataDirLockedError, HttpListenError, NatsUnreachableError, NoDataError, SilverHorizonError, SourceError, StorageError, StreamMismatchError } from "./errors.js";
import { connectWithRetry, ensureStream } from "./sources/jetstream.js";
import { jetstreamManager } from "@nats-io/jetstream";
import { countRecords, fileMessages } from "./sources/files.js";
import { publishAll, recordMessage, type OutgoingMessage } from "./producers/publisher.js";
import { entityOf } from "./operators/decode.js";
import { faultsFromEnv } from "./runtime/faults.js";

const VERSION = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;

interface CommonFlags {
  config?: string;
  nats?: string;
  stream?: string;
  dataDir?: string;
  logLevel?: string;
}

function configFrom(flags: CommonFlags): Config {
  const overrides: ConfigOverrides = {};
  const natsUrl = flags.nats ?? process.env.NATS_URL;
  if (natsUrl !== undefined || flags.stream !== undefined) overrides.nats = { url: natsUrl, stream: flags.stream };
  if (flags.dataDir !== undefined) overrides.dataDir = flags.dataDir;
  // NATS_URL is the conventional variable; TRIBUTARY_NATS_URL and --nats override it.
  if (flags.nats === undefined && process.env.TRIBUTARY_NATS_URL) overrides.nats = { ...(overrides.nats as ConfigOverrides | undefined), url: process.env.TRIBUTARY_NATS_URL };
  return loadConfig({ file: flags.config, overrides, onWarning: warn });
}

/** A warning a user should see once, on its own line, whatever the log level. */
function warn(message: string): void {
  process.stderr.write(`tributary: warning: ${message}\n`);
}

function logger(flags: CommonFlags, config?: Config): Logger {
  return createLogger(flags.logLevel ?? process.env.TRIBUTARY_LOG_LEVEL ?? config?.log.level ?? "info");
}

function pad(rows: (string | number)[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows.map((r) => r.map((v, i) => (i === 0 ? String(v).padEnd(widths[i]!) : String(v).padStart(widths[i]!))).join("  ")).join("\n");
}

/** `features --describe`: one row per feature, in the same formats as the features themselves. */
function formatDescriptions(features: readonly FeatureDescription[], format: "table" | "csv" | "json"): string {
  if (format === "json") return JSON.stringify(features, null, 2) + "\n";
  return formatFeatures(features as unknown as FeatureRow[], format, ["name", "type", "unit", "description", "definition"]);
}

/**
 * The end-of-run summary: records per layer, duplicates, quarantine by reason, and time and rate
 * twice: over the whole run, and over the time it was busy (a message in the stages or a batch
 * committing), which leaves out the time spent waiting for messages.
 */
export function formatSummary(s: PipelineStats): string {
  const silver = Object.values(s.silver).reduce((a, b) => a + b, 0);
  const dups = Object.values(s.duplicates).reduce((a, b) => a + b, 0);
  const quarantined = Object.entries(s.quarantined).filter(([, n]) => n > 0);
  const q = quarantined.reduce((a, [, n]) => a + n, 0);
  const rate = (ms: number) => {
    if (s.bronze === 0) return "-";
    const r = s.bronze / (Math.max(ms, 1) / 1000);
    return `${r < 10 ? r.toFixed(2) : Math.round(r).toLocaleString("en-US")} msg/s`;
  };
  const rows: (string | number)[][] = [
    ["bronze messages", s.bronze],
    ...(s.redelivered ? [["already in bronze (skipped)", s.redelivered]] : []),
    ["silver records", silver],
    ...Object.entries(s.silver).filter(([, n]) => n > 0).map(([e, n]) => [`  ${e}`, n]),
    ["duplicates removed", dups],
    ["quarantined", q],
    ...quarantined.map(([r, n]) => [`  ${r}`, n]),
    ["elapsed", `${(s.elapsedMs / 1000).toFixed(2)} s`],
    ["busy", `${(s.busyMs / 1000).toFixed(2)} s`],
    ["rate over elapsed", rate(s.elapsedMs)],
    ["rate over busy", rate(s.busyMs)],
  ];
  return pad(rows);
}

/** `status`'s stream lines: the stream's last sequence, bronze's lag behind it and the consumer's backlog, or why NATS could not say. */
function formatStreamStatus(s: StreamStatus): string {
  if (!s.reachable) return `stream: unreachable (${s.reason})`;
  const lines = [`stream: ${s.name}, last sequence ${s.lastSeq} (first ${s.firstSeq}, ${s.messages} messages, created ${s.created})`];
  lines.push(s.lag === null ? `lag: unknown (${s.note})` : `lag: ${s.lag} (stream last sequence ${s.lastSeq} − bronze's ${s.bronzeLastSeq})`);
  lines.push(s.consumer ? `consumer: ${s.consumer.name}, pending ${s.consumer.pending}, ack pending ${s.consumer.ackPending}` : "consumer: none on the server");
  return lines.join("\n");
}

interface RunOptions {
  /** The command, as the data dir's writer lock names its holder. */
  readonly holder: string;
  /** Refuse a changed custom feature set instead of backfilling it. */
  readonly noBackfill?: boolean;
  readonly http?: HttpListen | null;
  /** Show progress towards this many records (a number, or a function asked once started). */
  readonly progress?: { label: string; total: (t: Topology) => Promise<number | null> };
}

async function runTopology(source: SourceSpec, config: Config, log: Logger, options: RunOptions): Promise<PipelineStats> {
  // Crash points and slow commits come from the environment here only: the crash tests run this CLI.
  const topology = createTopology({ source, config, log, http: options.http ?? false, holder: options.holder, faults: faultsFromEnv(), noBackfill: options.noBackfill });
  const stop = (signal: string) => {
    log.info({ event: "signal", signal }, `received ${signal}, finishing the batch in flight`);
    void topology.stop();
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
  await topology.start();
  if (options.progress) {
    const progress = createProgress(options.progress.label, log);
    const done = () => topology.stats.bronze + topology.stats.redelivered;
    let total: number | undefined;
    options.progress
      .total(topology)
      .then((t) => {
        if (t !== null) total = t;
        progress.update(done(), total);
      })
      .catch(() => undefined);
    const sub = topology.stats$.subscribe(() => progress.update(done(), total !== undefined ? Math.max(total, done()) : undefined));
    try {
      return await topology.done;
    } finally {
      sub.unsubscribe();
      progress.update(done(), total !== undefined ? done() : undefined);
      progress.stop();
    }
  }
  return topology.done;
}

/** The HTTP listen address: the flag, else the config's `http.listen`. */
function httpFrom(flag: string | undefined, config: Config): HttpListen | null {
  return parseListen(flag ?? config.http.listen);
}

function dataDirOption(): Option {
  return new Option("--data-dir <dir>", "data directory holding bronze/silver/gold .sqlite files (default ./data)");
}

function build(): Command {
  const program = new Command("tributary")
    .description("Streaming customer features: NATS JetStream → bronze/silver/gold SQLite")
    .version(VERSION)
    .showHelpAfterError()
    .exitOverride();

  program
    .command("run")
    .description("consume the JetStream stream until SIGTERM/SIGINT (or, with --drain, until nothing is pending)")
    .option("--config <file>", "YAML or JSON config file")
    .option("--nats <url>", "NATS server URL (default $NATS_URL, then nats://127.0.0.1:4222)")
    .option("--stream <name>", "JetStream stream name (default TRIBUTARY)")
    .addOption(dataDirOption())
    .option("--drain", "exit 0 once the consumer has no pending messages and everything is committed")
    .option("--new-stream", "the stream is not the one bronze read (deleted and recreated, restored): read it as a new origin from its first message")
    .option("--accept-gap", "continue past messages the stream no longer holds (purged or expired before tributary read them)")
    .option("--no-backfill", "refuse to start when gold holds another set of custom features than the config, instead of backfilling them")
    .option("--connect-timeout <seconds>", "with --drain, give up connecting after this long (exit 3)", "30")
    .option("--http <host:port|off>", "serve /metrics, /healthz, /readyz and /features (default 127.0.0.1:9464)")
    .option("--log-level <level>", "trace, debug, info, warn, error or silent")
    .action(async (flags: CommonFlags & { drain?: boolean; newStream?: boolean; acceptGap?: boolean; backfill: boolean; connectTimeout: string; http?: string }) => {
      const config = configFrom(flags);
      const log = logger(flags, config);
      const timeout = flags.drain ? Number(flags.connectTimeout) * 1000 : undefined;
      const source: SourceSpec = { kind: "jetstream", drain: flags.drain ?? false, connectTimeoutMs: timeout, newStream: flags.newStream, acceptGap: flags.acceptGap };
      const stats = await runTopology(source, config, log, {
        holder: "tributary run",
        noBackfill: !flags.backfill,
        http: httpFrom(flags.http, config),
        progress: flags.drain ? { label: "drain", total: async (t) => t.pending() } : undefined,
      });
      process.stdout.write(formatSummary(stats) + "\n");
    });

  program
    .command("ingest")
    .description("ingest CSV, NDJSON or JSON-array files through the same topology")
    .argument("<files...>", "files; the entity comes from --entity or the file name")
    .option("--entity <name>", "entity of every record (customers, transactions, interactions, events, sessions)")
    .option("--config <file>", "YAML or JSON config file")
    .addOption(dataDirOption())
    .option("--http <host:port|off>", "serve /metrics, /healthz, /readyz and /features while ingesting", "off")
    .option("--no-backfill", "refuse to start when gold holds another set of custom features than the config, instead of backfilling them")
    .option("--log-level <level>", "trace, debug, info, warn, error or silent")
    .action(async (files: string[], flags: CommonFlags & { entity?: string; http: string; backfill: boolean }) => {
      const config = configFrom(flags);
      const stats = await runTopology({ kind: "files", files, entity: flags.entity }, config, logger(flags, config), {
        holder: "tributary ingest",
        noBackfill: !flags.backfill,
        http: parseListen(flags.http),
        progress: { label: "ingest", total: () => countRecords(files) },
      });
      process.stdout.write(formatSummary(stats) + "\n");
    });

  program
    .command("features")
    .description("print gold features as of a day (default: now)")
    .addOption(dataDirOption())
    .option("--config <file>", "YAML or JSON config file")
    .option("--as-of <time>", "features as of that instant (YYYY-MM-DD means 00:00Z; or an ISO-8601 time), counting only earlier records")
    .option("--customer <id>", "one customer only")
    .option("--describe", "describe every feature (name, type, unit, description, definition) instead of computing them")
    .addOption(new Option("--format <format>", "output format").choices(["table", "csv", "json"]).default("table"))
    .action((flags: CommonFlags & { asOf?: string; customer?: string; describe?: boolean; format: "table" | "csv" | "json" }) => {
      const config = configFrom(flags);
      const custom = customFeaturesOf(config.features.custom);
      if (flags.describe) {
        process.stdout.write(formatDescriptions([...BUILTIN_FEATURES, ...custom.map(describeCustom)], flags.format));
        return;
      }
      let asOf = Date.now();
      if (flags.asOf !== undefined) {
        const t = parseAsOf(flags.asOf);
        if (t === null) throw new ConfigError(`--as-of: expected a date as YYYY-MM-DD or an ISO-8601 time, got "${flags.asOf}"`);
        asOf = t;
      }
      const reader = new FeatureReader(config.dataDir, { features: custom });
      try {
        const rows = reader.compute(asOf, flags.customer);
        if (flags.customer !== undefined && rows.length === 0) {
          process.stderr.write(`tributary: no features for customer ${flags.customer} as of ${new Date(asOf).toISOString()}\n`);
          process.exitCode = 4;
          return;
        }
        const out = flags.customer !== undefined && flags.format === "json" ? JSON.stringify(rows[0], null, 2) + "\n" : formatFeatures(rows, flags.format, reader.columns);
        process.stdout.write(out);
      } finally {
        reader.close();
      }
    });

  program
    .command("export")
    .description("write a layer as typed Parquet or CSV files, one per table, each with a <file>.manifest.json for MLflow")
    .option("--layer <layer>", "silver (the entity tables), quarantine, or gold (the feature table and its daily buckets)")
    .option("--format <format>", "parquet (typed, Snappy) or csv", "parquet")
    .option("--out <dir>", "directory to write <table>.<format> and <table>.<format>.manifest.json into; files there are replaced atomically")
    .option(
      "--as-of <time>",
      "YYYY-MM-DD (00:00Z) or an ISO-8601 time T. silver: records with event time strictly before T (customers registered before T or with no date); quarantine: received before T; gold: features as of T (default now) and buckets of whole days before T's day",
    )
    .addOption(dataDirOption())
    .option("--config <file>", "YAML or JSON config file (its features.custom are exported with gold)")
    .action((flags: CommonFlags & { layer?: string; format: string; out?: string; asOf?: string }) => {
      const choice = <T extends string>(flag: string, value: string | undefined, allowed: readonly T[]): T => {
        if (value === undefined || !(allowed as readonly string[]).includes(value)) {
          throw new ConfigError(`${flag}: expected one of ${allowed.join(", ")}, ${value === undefined ? "got nothing" : `got "${value}"`}`);
        }
        return value as T;
      };
      const layer = choice<ExportLayer>("--layer", flags.layer, EXPORT_LAYERS);
      const format = choice<ExportFormat>("--format", flags.format, EXPORT_FORMATS);
      if (flags.out === undefined || flags.out.trim() === "") throw new ConfigError("--out: expected the directory to write the files into");
      let asOf: number | undefined;
      if (flags.asOf !== undefined) {
        const t = parseAsOf(flags.asOf);
        if (t === null) throw new ConfigError(`--as-of: expected a date as YYYY-MM-DD or an ISO-8601 time, got "${flags.asOf}"`);
        asOf = t;
      }
      const config = configFrom(flags);
      const rawArgs = (program as unknown as { rawArgs: string[] }).rawArgs.slice(2);
      const files = exportLayer({
        dataDir: config.dataDir,
        layer,
        format,
        outDir: flags.out,
        asOf,
        features: customFeaturesOf(config.features.custom),
        commandLine: ["tributary", ...rawArgs],
      });
      const name = Math.max(...files.map((f) => f.table.length));
      const count = Math.max(...files.map((f) => String(f.manifest.rows).length));
      for (const f of files) {
        process.stdout.write(`${f.table.padEnd(name)}  ${String(f.manifest.rows).padStart(count)} rows  ${f.path}  digest ${f.manifest.digest}\n`);
      }
    });

  program
    .command("training-set")
    .description("point-in-time features for each row of a labels file (customer_id, label_time, anything else), with a <out>.manifest.json for MLflow")
    .option("--labels <file>", "CSV or Parquet with a customer_id and a label_time column (ISO-8601 or epoch ms); other columns pass through")
    .option("--out <file>", "the training set to write (replaced atomically); rejected labels go to <out>.rejected.csv")
    .option("--format <format>", "csv or parquet (typed, Snappy); default from the --out extension, else csv")
    .option("--known-at <policy>", "label: only records available by the label time, as a model served then saw them; latest: everything known now, late arrivals included", "label")
    .addOption(dataDirOption())
    .option("--config <file>", "YAML or JSON config file (its features.custom are computed too)")
    .action(async (flags: CommonFlags & { labels?: string; out?: string; format?: string; knownAt: string }) => {
      if (flags.labels === undefined) throw new ConfigError("--labels: expected the labels file (CSV or Parquet with customer_id and label_time)");
      if (flags.out === undefined || flags.out.trim() === "") throw new ConfigError("--out: expected the file to write the training set to");
      if (!(KNOWN_AT as readonly string[]).includes(flags.knownAt)) throw new ConfigError(`--known-at: expected label or latest, got "${flags.knownAt}"`);
      const format = flags.format ?? (/\.parquet$/i.test(flags.out) ? "parquet" : "csv");
      if (format !== "csv" && format !== "parquet") throw new ConfigError(`--format: expected csv or parquet, got "${format}"`);
      const config = configFrom(flags);
      const labels = await readLabels(flags.labels);
      const rawArgs = (program as unknown as { rawArgs: string[] }).rawArgs.slice(2);
      const written = writeTrainingSet(config.dataDir, labels, {
        out: flags.out,
        format,
        knownAt: flags.knownAt as KnownAt,
        features: customFeaturesOf(config.features.custom),
        busyTimeout: config.storage.busyTimeout,
        commandLine: ["tributary", ...rawArgs],
      });
      const ok = written.rows - written.noData - written.rejected.length;
      process.stdout.write(
        `${written.rows} rows (${ok} with features, ${written.noData} without data as of their label time, ${written.rejected.length} rejected) -> ${written.file.path}  digest ${written.manifest.digest}\n`,
      );
      if (written.rejectedFile !== null) {
        const reasons = new Map<string, number>();
        for (const r of written.rejected) reasons.set(r.reason, (reasons.get(r.reason) ?? 0) + 1);
        warn(`${written.rejected.length} labels rejected (${[...reasons].map(([k, n]) => `${k}: ${n}`).join(", ")}); each is listed in ${written.rejectedFile}`);
      }
    });

  program
    .command("optimize")
    .description("checkpoint and truncate the WALs, return freed pages to the file system, refresh planner statistics; safe beside a running daemon")
    .addOption(dataDirOption())
    .option("--config <file>", "YAML or JSON config file (its features.custom are timed too)")
    .option("--full", "also convert files from before incremental vacuum (rewrites them: stop the daemon first)")
    .addOption(new Option("--format <format>", "output format").choices(["table", "json"]).default("table"))
    .action((flags: CommonFlags & { full?: boolean; format: "table" | "json" }) => {
      const config = configFrom(flags);
      const report = optimizeDataDir(config.dataDir, { full: flags.full ?? false, busyTimeout: config.storage.busyTimeout, features: customFeaturesOf(config.features.custom) });
      process.stdout.write(flags.format === "json" ? JSON.stringify(report, null, 2) + "\n" : formatOptimizeReport(report));
    });

  program
    .command("status")
    .description("counts per layer (bronze messages, silver records, duplicates, quarantine by reason), positions, and the stream's last sequence and lag when NATS answers")
    .addOption(dataDirOption())
    .option("--config <file>", "YAML or JSON config file")
    .option("--nats <url>", "NATS server URL (default $NATS_URL, then nats://127.0.0.1:4222)")
    .option("--stream <name>", "JetStream stream name (default TRIBUTARY)")
    .option("--connect-timeout <seconds>", "how long to wait for NATS before printing the local numbers alone", "2")
    .addOption(new Option("--format <format>", "output format").choices(["table", "json"]).default("table"))
    .action(async (flags: CommonFlags & { format: "table" | "json"; connectTimeout: string }) => {
      const config = configFrom(flags);
      const timeoutMs = Number(flags.connectTimeout) * 1000;
      if (!(timeoutMs > 0)) throw new ConfigError(`--connect-timeout: expected a positive number of seconds, got "${flags.connectTimeout}"`);
      const s = readStatus(config.dataDir);
      const { url, stream, consumer } = config.nats;
      s.stream = readStreamStatus(s, await probeStream({ url, stream, consumer, auth: config.nats, timeoutMs }));
      if (flags.format === "json") {
        process.stdout.write(JSON.stringify(s, null, 2) + "\n");
        return;
      }
      const rows: (string | number)[][] = [
        ["bronze messages", s.bronze.messages],
        ...(s.bronze.pruned > 0 ? [["  pruned by retention", s.bronze.pruned]] : []),
        ...Object.entries(s.silver).map(([e, n]) => [`silver ${e}`, n]),
        ...(s.silverRetention.horizon !== null ? [["  pruned by retention", `${s.silverRetention.pruned} (event times before ${s.silverRetention.horizon})`]] : []),
        ...Object.entries(s.duplicates).map(([e, n]) => [`duplicates ${e}`, n]),
        ...Object.entries(s.quarantine).filter(([, n]) => n > 0).map(([r, n]) => [`quarantine ${r}`, n]),
        ["customers in gold", s.customers],
        ["positions bronze/silver/gold", `${s.positions.bronze}/${s.positions.silver}/${s.positions.gold}`],
        ["watermark", s.watermark ?? "none"],
        ...s.origins.map((o) => [`origin ${o.origin}`, o.created ? `last sequence ${o.lastSeq} (stream created ${o.created})` : `last sequence ${o.lastSeq}`]),
      ];
      process.stdout.write(pad(rows) + "\n" + formatStreamStatus(s.stream) + "\n");
    });

  program
    .command("quarantine")
    .description("rejected messages, newest first: reason, field, detail, subject and receive time beside the payload decoded from bronze")
    .option("--reason <reason>", "only messages quarantined for this reason (decode_error, missing_field, invalid_type, ...)")
    .option("--limit <n>", "at most this many messages (all of them: tributary export --layer quarantine)", "100")
    .option("--format <format>", "table (payloads shortened), csv or json (each payload as JSON)", "table")
    .addOption(dataDirOption())
    .option("--config <file>", "YAML or JSON config file")
    // A mistyped flag is one line, as a bad value is: the help would push it off the screen.
    .showHelpAfterError(false)
    .action((flags: CommonFlags & { reason?: string; limit: string; format: string }) => {
      if (!(QUARANTINE_FORMATS as readonly string[]).includes(flags.format)) {
        throw new ConfigError(`--format: expected one of ${QUARANTINE_FORMATS.join(", ")}, got "${flags.format}"`);
      }
      const limit = /^\d+$/.test(flags.limit) ? Number(flags.limit) : 0;
      if (!(limit > 0 && Number.isSafeInteger(limit))) throw new ConfigError(`--limit: expected a whole number of at least 1, got "${flags.limit}"`);
      const config = configFrom(flags);
      const reader = new QuarantineReader(config.dataDir, { busyTimeout: config.storage.busyTimeout });
      try {
        const reasons = reader.reasons();
        if (flags.reason !== undefined && !reasons.includes(flags.reason)) {
          throw new ConfigError(`--reason: expected one of ${reasons.join(", ")}, got "${flags.reason}"`);
        }
        process.stdout.write(formatQuarantine(reader.read({ reason: flags.reason, limit }), flags.format as QuarantineFormat));
      } finally {
        reader.close();
      }
    });

  program
    .command("publish")
    .description("publish CSV/NDJSON/JSON records to JetStream as MessagePack (entity id as Nats-Msg-Id)")
    .argument("<files...>", "files; the entity comes from --entity or the file name")
    .option("--entity <name>", "entity of every record")
    .option("--nats <url>", "NATS server URL (default $NATS_URL, then nats://127.0.0.1:4222)")
    .option("--config <file>", "YAML or JSON config file")
    .option("--log-level <level>", "trace, debug, info, warn, error or silent")
    .action(async (files: string[], flags: CommonFlags & { entity?: string }) => {
      const config = configFrom(flags);
      const log = logger(flags, config);
      const nc = await connectWithRetry(config.nats.url, log, 10_000, config.nats);
      try {
        await ensureStream(await jetstreamManager(nc), config.nats.stream, config.nats.subjects, log, { maxAgeMs: config.nats.maxAge, maxBytes: config.nats.maxBytes });
        const decoder = new TextDecoder();
        const prefix = config.nats.subjects[0]!.split(".")[0]!;
        let unparsable = 0;
        async function* messages(): AsyncGenerator<OutgoingMessage> {
          for await (const m of fileMessages(files, { entity: flags.entity })) {
            const entity = entityOf(m.subject);
            let record: unknown;
            try {
              record = JSON.parse(decoder.decode(m.data));
            } catch {
              record = undefined;
            }
            if (typeof record === "object" && record !== null && !Array.isArray(record)) {
              yield recordMessage(entity, record as Record<string, unknown>, prefix);
            } else {
              // Not a record: publish it as it is, so it is kept in bronze and quarantined, not lost.
              unparsable++;
              yield { subject: `${prefix}.${entity}`, data: m.data, contentType: "application/json", msgId: null };
            }
          }
        }
        const result = await publishAll(nc, messages());
        process.stdout.write(
          `published ${result.stored} messages to ${config.nats.stream}` +
            (result.duplicates ? ` (${result.duplicates} dropped by the broker as duplicates)` : "") +
            (unparsable ? `; ${unparsable} not valid records, published as they are (tributary will quarantine them)` : "") +
            "\n",
        );
      } finally {
        await nc.close();
      }
    });

  program
    .command("demo")
    .description("run the whole pipeline on the built-in generator, no broker needed (what `npm start` runs)")
    .addOption(dataDirOption())
    .option("--messages <n>", "messages to generate", "50000")
    .option("--seed <n>", "generator seed", "42")
    .option("--log-level <level>", "trace, debug, info, warn, error or silent", "warn")
    .action(async (flags: CommonFlags & { messages: string; seed: string }) => {
      const config = configFrom(flags);
      const log = logger(flags);
      const stats = await runTopology({ kind: "generator", messages: Number(flags.messages), seed: Number(flags.seed) }, config, log, { holder: "tributary demo" });
      const out: string[] = [`tributary demo: ${flags.messages} generated messages (seed ${flags.seed}) → ${config.dataDir}`, "", formatSummary(stats), ""];
      const reader = new FeatureReader(config.dataDir);
      try {
        const top = reader
          .compute(Date.now())
          .sort((a, b) => b.total_spend - a.total_spend)
          .slice(0, 5);
        out.push("top customers by total_spend:");
        out.push(pad([["customer_id", "segment", "purchases", "total_spend"], ...top.map((r) => [r.customer_id, r.customer_segment, r.purchase_frequency, r.total_spend.toFixed(2)])]));
      } finally {
        reader.close();
      }
      const status = readStatus(config.dataDir);
      out.push("", `data: ${config.dataDir}/bronze.sqlite (${status.bronze.messages} messages), silver.sqlite, gold.sqlite (${status.customers} customers)`);
      process.stdout.write(out.join("\n") + "\n");
    });

  program
    .command("schema")
    .description("the data contract as JSON Schema (draft 2020-12), for producers to check records before they publish")
    .argument("[entity]", "one entity (customers, transactions, interactions, events, sessions); default all, keyed by entity")
    .option("--config <file>", "YAML or JSON config file (its currency rates and limits shape the schema)")
    .addOption(new Option("--format <format>", "output format").choices(["json-schema"]).default("json-schema"))
    .action((entity: string | undefined, flags: CommonFlags) => {
      const config = configFrom(flags);
      const options = { rates: config.currency.rates, ...config.limits };
      if (entity !== undefined && !(ENTITIES as readonly string[]).includes(entity)) {
        throw new ConfigError(`unknown entity "${entity}"; expected one of ${ENTITIES.join(", ")}`);
      }
      const out = entity === undefined ? contractSchemas(options) : entitySchema(entity as Entity, options);
      process.stdout.write(JSON.stringify(out, null, 2) + "\n");
    });

  const configCmd = program.command("config").description("configuration tools");
  configCmd
    .command("check")
    .description("validate a config file and print the effective configuration (secrets masked), or the errors with exit code 2")
    .argument("<file>", "YAML or JSON config file")
    .action((file: string) => {
      const config = loadConfig({ file, onWarning: warn });
      process.stdout.write(JSON.stringify(maskSecrets(configAsWritten(config)), null, 2) + "\n");
    });

  return program;
}

/**
 * How each named error reaches the user: its exit code and the word before its one line, first
 * match wins. 2 is for what fails the same way until the user changes something; anything not
 * named here is a bug and prints its stack with TRIBUTARY_DEBUG set.
 */
const ERROR_KINDS: readonly [new (...args: never[]) => Error, number, string][] = [
  [ConfigError, 2, "config error"],
  [HttpListenError, 2, "http error"],
  [DataDirLockedError, 2, "data dir in use"],
  [StreamMismatchError, 2, "stream error"],
  [NatsUnreachableError, 3, "source error"],
  [SourceError, 1, "source error"],
  [SilverHorizonError, 2, "storage error"],
  [StorageError, 1, "storage error"],
  [CheckpointError, 1, "commit error"],
];

/** A library error's message with what to do next in the CLI's terms: commands, flags, settings. */
function cliMessage(e: Error): string {
  if (e instanceof NoDataError) return `${e.message}; run \`tributary run\` or \`tributary ingest\` first`;
  if (e instanceof HttpListenError) return `${e.message}; set http.listen (or --http) to another HOST:PORT, or off`;
  if (e instanceof StreamMismatchError && e.remedy === "newStream") return `${e.fact}; run with --new-stream to read it as a new origin from its first message (the layers keep everything read so far)`;
  if (e instanceof StreamMismatchError && e.remedy === "acceptGap") return `${e.fact}; run with --accept-gap to continue after them`;
  return e.message;
}

/** Runs the CLI with `argv` (as process.argv). Returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = build();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    const e = err as Error;
    const kind = ERROR_KINDS.find(([cls]) => e instanceof cls);
    const [, code, prefix] = kind ?? [Error, 1, "error"];
    // Every config problem on a line of its own, each with the prefix.
    const lines = e instanceof ConfigError ? e.problems : [cliMessage(e)];
    for (const line of lines) process.stderr.write(`tributary: ${prefix}: ${line}\n`);
    if (!kind && process.env.TRIBUTARY_DEBUG) process.stderr.write(`${e.stack}\n`);
    return code;
  }
}

// `tributary status | head` closes stdout early: stop quietly, as Unix tools do, not with a stack trace.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw err;
});

main(process.argv).then((code) => {
  process.exitCode = code;
});

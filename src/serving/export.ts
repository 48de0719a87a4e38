/**
 * `tributary export`: a layer of a data directory as typed files, one per table, each with its
 * manifest. Silver exports its entity tables, quarantine its quarantine table (with the decoded
 * payload from bronze), gold the feature table as `tributary features` computes it plus its raw
 * buckets. Tables are read in one read transaction per layer and streamed row by row into the
 * writers, so memory stays bounded whatever the table's size; rows come in primary-key order, so
 * the same data gives the same bytes.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { layerPath, openLayer, readPosition, type Database, type Layer } from "../sinks/database.js";
import { SILVER_MIGRATIONS } from "../sinks/silver.js";
import { GOLD_MIGRATIONS } from "../sinks/gold.js";
import { BRONZE_MIGRATIONS } from "../sinks/bronze.js";
import { FeatureReader } from "../features.js";
import { BUILTIN_FEATURES, describeCustom, type CustomFeature, type FeatureType } from "../model/features.js";
import { featureSetHash } from "../model/registry-hash.js";
import { BUILTIN_ENTITIES, eventTimeColumn, type EntityDefinition } from "../model/entities.js";
import { DAY_MS } from "../timestamps.js";
import { NoDataError } from "../errors.js";
import { openParquetWriter, type ParquetOptions } from "./parquet.js";
import { openCsvWriter } from "./csv.js";
import { PayloadReader } from "./quarantine.js";
import { readLayerPositions, tributaryVersion, writeManifest, type DatasetManifest, type LayerPositions } from "./manifest.js";
import type { Cell, ColumnSpec, ColumnType, TableWriter } from "./output-file.js";

export const EXPORT_LAYERS = ["silver", "gold", "quarantine"] as const;
export type ExportLayer = (typeof EXPORT_LAYERS)[number];
export const EXPORT_FORMATS = ["parquet", "csv"] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportOptions {
  readonly dataDir: string;
  readonly layer: ExportLayer;
  readonly format: ExportFormat;
  /** Directory the files go into (created when missing); existing files of the same names are replaced. */
  readonly outDir: string;
  /**
   * Epoch ms T. Silver: only records with event time before T (customers: registered before T, or
   * with no registration date); quarantine: entries received before T; gold: features as of T, and
   * the buckets of whole UTC days before T's day. Absent: silver, quarantine and gold's buckets
   * export everything, and gold's features are as of `now()` (like `tributary features`).
   */
  readonly asOf?: number;
  /** The custom features to compute for gold (and whose hash every manifest records). */
  readonly features?: readonly CustomFeature[];
  /** The command line each manifest records. */
  readonly commandLine: readonly string[];
  /** The entities whose silver tables a silver export writes (default the built-in five; pass an embedder's too). */
  readonly entities?: readonly EntityDefinition[];
  readonly rowGroupRows?: number;
  /** The clock for gold's default as-of (default Date.now). */
  readonly now?: () => number;
}

/** One exported table. */
export interface ExportedFile {
  readonly table: string;
  readonly path: string;
  readonly manifest: DatasetManifest;
}

/** Opens the writer for a format: Parquet ({@link openParquetWriter}) or CSV ({@link openCsvWriter}). */
export function openTableWriter(format: ExportFormat, path: string, columns: readonly ColumnSpec[], options: ParquetOptions = {}): TableWriter {
  return format === "parquet" ? openParquetWriter(path, columns, { createdBy: `tributary ${tributaryVersion()}`, ...options }) : openCsvWriter(path, columns);
}

/** The column type of a feature: counts are `long`, money and decimals `double`, times `datetime`. */
export function featureColumnType(type: FeatureType): ColumnType {
  switch (type) {
    case "text":
      return "string";
    case "integer":
      return "long";
    case "money":
    case "decimal":
      return "double";
    case "timestamp":
      return "datetime";
  }
}

/** The columns of the feature table: the built-in features, then the custom ones, typed from the registry. */
export function featureTableColumns(custom: readonly CustomFeature[] = []): ColumnSpec[] {
  return [...BUILTIN_FEATURES, ...custom.map(describeCustom)].map((f) => ({ name: f.name, type: featureColumnType(f.type), nullable: f.nullable }));
}

/**
 * A SQLite table's columns as export columns, from its declaration: INTEGER columns named `*_at`
 * hold epoch milliseconds (every layer's convention) and are `datetime`, other INTEGERs `long`,
 * REAL `double`, TEXT `string`; NOT NULL and primary-key columns are required.
 */
export function sqliteTableColumns(db: Database, table: string): ColumnSpec[] {
  const info = db.prepare(`SELECT name, upper(type) AS type, "notnull" AS required, pk FROM pragma_table_info(?)`).all(table) as {
    name: string;
    type: string;
    required: number;
    pk: number;
  }[];
  if (info.length === 0) throw new NoDataError(`no table ${table} in ${db.name}`);
  return info.map((c) => {
    const type: ColumnType = c.type.includes("INT") ? (c.name.endsWith("_at") ? "datetime" : "long") : c.type === "REAL" ? "double" : "string";
    return { name: c.name, type, nullable: c.required === 0 && c.pk === 0 };
  });
}

/** What a table export reads: its columns and the row filter for an as-of instant. */
interface TableQuery {
  readonly table: string;
  /** The condition rows before T meet (`?` is T), or null to take every row whatever T. */
  readonly before: string | null;
  /** The bound for `?`: T itself, or the day T falls in (for daily buckets). */
  readonly bound?: "instant" | "day";
}

/** The silver entity tables and the event time each one's as-of filter follows, from the entity registry. */
function silverTables(entities: readonly EntityDefinition[]): TableQuery[] {
  return entities.map((e) => {
    const time = eventTimeColumn(e);
    // A profile's time (registration) may be unknown: such a profile is in every as-of export.
    return { table: e.name, before: e.keep === "latest" ? `(${time} IS NULL OR ${time} < ?)` : `${time} < ?` };
  });
}

const GOLD_TABLES: readonly TableQuery[] = [
  { table: "customer_daily", before: "day < ?", bound: "day" },
  { table: "customer_profile", before: "(registration_at IS NULL OR registration_at < ?)" },
  { table: "feature_daily", before: "day < ?", bound: "day" },
];

const READONLY = { synchronous: "normal" as const, busyTimeout: 5_000, readonly: true };
const MIGRATIONS: Record<Layer, readonly string[]> = { bronze: BRONZE_MIGRATIONS, silver: SILVER_MIGRATIONS, gold: GOLD_MIGRATIONS };

function openReadOnly(dataDir: string, layer: Layer): Database {
  if (!existsSync(layerPath(dataDir, layer))) throw new NoDataError(`no ${layer} data in ${dataDir}: nothing has been written to it yet`);
  return openLayer(dataDir, layer, MIGRATIONS[layer], READONLY);
}

/**
 * The rows of a table, in primary-key order, integers as bigint. `NOT INDEXED` keeps SQLite on the
 * table's own B-tree: an event-time index would return rows in time order and need a sort of the
 * whole table (in memory: the layers set `temp_store = MEMORY`) to give the key order back.
 */
function tableRows(db: Database, q: TableQuery, columns: readonly ColumnSpec[], asOf: number | undefined): Iterable<unknown[]> {
  const pk = (db.prepare(`SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk`).pluck().all(q.table) as string[]).map(quote);
  const filter = asOf !== undefined && q.before !== null ? ` WHERE ${q.before}` : "";
  const sql = `SELECT ${columns.map((c) => quote(c.name)).join(", ")} FROM ${quote(q.table)} NOT INDEXED${filter}${pk.length ? ` ORDER BY ${pk.join(", ")}` : ""}`;
  const stmt = db.prepare(sql).raw(true).safeIntegers(true);
  const params = filter ? [q.bound === "day" ? Math.floor(asOf! / DAY_MS) : asOf] : [];
  return stmt.iterate(...params) as Iterable<unknown[]>;
}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** Writes one table's file and manifest; a failure leaves any earlier file of that name in place. */
function writeTable(
  options: ExportOptions,
  name: string,
  file: string,
  columns: readonly ColumnSpec[],
  rows: Iterable<readonly Cell[]>,
  asOf: number | null,
  positions: LayerPositions,
): ExportedFile {
  const path = join(options.outDir, file);
  const out = openTableWriter(options.format, path, columns, { rowGroupRows: options.rowGroupRows });
  let written;
  try {
    for (const row of rows) out.write(row);
    written = out.close();
  } catch (err) {
    out.abort();
    throw err;
  }
  const manifest = writeManifest(path, {
    name,
    format: options.format,
    file: written,
    schema: columns,
    asOf,
    labelsDigest: null,
    knownAt: null,
    positions,
    featuresHash: featureSetHash(options.features ?? []),
    commandLine: options.commandLine,
  });
  return { table: name, path, manifest };
}

/**
 * Reads `db` in one read transaction: every table `run` reads sees the same commit, the one whose
 * checkpoint it reads first.
 */
function inSnapshot<T>(db: Database, run: () => T): T {
  db.exec("BEGIN");
  try {
    return run();
  } finally {
    db.exec("COMMIT");
  }
}

/**
 * Exports a layer: one file per table into `outDir` (`<table>.parquet` or `<table>.csv`), each
 * with `<file>.manifest.json` beside it. Returns the files in the order written.
 *
 * @example
 * exportLayer({ dataDir: "./data", layer: "silver", format: "parquet", outDir: "./export", commandLine: ["tributary", "export"] })
 * // [{ table: "silver.customers", path: "export/customers.parquet", manifest: {...} }, ...]
 */
export function exportLayer(options: ExportOptions): ExportedFile[] {
  const ext = options.format;
  if (options.layer === "gold") return exportGold(options);
  const silver = openReadOnly(options.dataDir, "silver");
  const bronze = options.layer === "quarantine" ? openReadOnly(options.dataDir, "bronze") : null;
  try {
    mkdirSync(options.outDir, { recursive: true });
    const asOf = options.asOf ?? null;
    return inSnapshot(silver, () => {
      const positions = { ...readLayerPositions(options.dataDir), silver: readPosition(silver, "silver") };
      if (options.layer === "quarantine") {
        const q: TableQuery = { table: "quarantine", before: "received_at < ?" };
        const stored = sqliteTableColumns(silver, "quarantine");
        const columns: ColumnSpec[] = [...stored, { name: "payload", type: "string", nullable: true }];
        const payloads = new PayloadReader(bronze!);
        const seqAt = stored.findIndex((c) => c.name === "bronze_seq");
        const rows = mapRows(tableRows(silver, q, stored, options.asOf), (r) => [...(r as Cell[]), payloads.json(r[seqAt] as bigint)]);
        return [writeTable(options, "silver.quarantine", `quarantine.${ext}`, columns, rows, asOf, positions)];
      }
      return silverTables(options.entities ?? BUILTIN_ENTITIES).map((q) => {
        const columns = sqliteTableColumns(silver, q.table);
        return writeTable(options, `silver.${q.table}`, `${q.table}.${ext}`, columns, tableRows(silver, q, columns, options.asOf) as Iterable<Cell[]>, asOf, positions);
      });
    });
  } finally {
    silver.close();
    bronze?.close();
  }
}

function exportGold(options: ExportOptions): ExportedFile[] {
  const ext = options.format;
  const asOf = options.asOf ?? (options.now ?? Date.now)();
  const custom = options.features ?? [];
  const reader = new FeatureReader(options.dataDir, { features: custom });
  const gold = openReadOnly(options.dataDir, "gold");
  try {
    mkdirSync(options.outDir, { recursive: true });
    // The reader reads gold in a transaction of its own: recompute until no commit came between
    // the positions read around it, so the manifest names the position the features are from.
    let positions = readLayerPositions(options.dataDir);
    let rows = reader.compute(asOf);
    for (let i = 0; i < 5; i++) {
      const after = readLayerPositions(options.dataDir);
      if (after.gold === positions.gold) break;
      positions = after;
      rows = reader.compute(asOf);
    }
    const columns = featureTableColumns(custom);
    const cells = rows.map((r) => columns.map((c): Cell => {
      const v = r[c.name] ?? null;
      return c.type === "datetime" && typeof v === "string" ? Date.parse(v) : v;
    }));
    const out = [writeTable(options, "gold.features", `features.${ext}`, columns, cells, asOf, positions)];
    // The buckets as gold holds them: everything, or with an as-of only what it can say of it.
    inSnapshot(gold, () => {
      const at = { ...readLayerPositions(options.dataDir), gold: readPosition(gold, "gold") };
      for (const q of GOLD_TABLES) {
        const columns = sqliteTableColumns(gold, q.table);
        const rows = tableRows(gold, q, columns, options.asOf) as Iterable<Cell[]>;
        out.push(writeTable(options, `gold.${q.table}`, `${q.table}.${ext}`, columns, rows, options.asOf ?? null, at));
      }
    });
    return out;
  } finally {
    reader.close();
    gold.close();
  }
}

function* mapRows<T, U>(rows: Iterable<T>, f: (row: T) => U): Iterable<U> {
  for (const r of rows) yield f(r);
}

/**
 * Point-in-time training sets: for each label row (a customer and an instant), every feature in
 * the registry as of that instant, computed from silver's records.
 *
 * Two policies decide which records count for a label at T. Both count only records whose event
 * time is strictly before T.
 * - `label` (the default): only records also *available* by T, meaning the broker stored them (or
 *   a file was ingested) at or before T. This is what a model served at T saw: a record that
 *   arrived late cannot leak into a row from before its arrival. The segment is that of the latest
 *   profile available by T.
 * - `latest`: every record known now, late ones included: the corrected history. The values equal
 *   `tributary features --as-of T` (and the profile is the current one, as there).
 *
 * Records are read once, column by column into typed arrays, for the labelled customers only,
 * and grouped by customer; each label then scans its customer's records. Gold's position bounds
 * what is read, as it bounds `features --as-of`.
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { createHash } from "node:crypto";
import { parse as parseCsv } from "csv-parse/sync";
import { DAY_MS, parseTimestamp } from "../timestamps.js";
import { emptyTotals } from "../operators/aggregate.js";
import { layerPath, openLayer, readPosition, type Database } from "../sinks/database.js";
import { GOLD_MIGRATIONS, featureSql } from "../sinks/gold.js";
import { SILVER_MIGRATIONS } from "../sinks/silver.js";
import { fieldOf, type CustomFeature } from "../model/features.js";
import { featureTableColumns, openTableWriter } from "./export.js";
import { openCsvWriter } from "./csv.js";
import { readLayerPositions, writeManifest, type DatasetManifest } from "./manifest.js";
import { featureSetHash } from "../model/registry-hash.js";
import { customValue, hasAny, toRow, type Bucket, type Window } from "../features.js";
import { ConfigError, NoDataError } from "../errors.js";
import type { Cell, ColumnSpec, ColumnType, WrittenFile } from "./output-file.js";

export type KnownAt = "label" | "latest";
export const KNOWN_AT: readonly KnownAt[] = ["label", "latest"];

/** Why a label row has no features; `ok` when it has them. */
export type LabelStatus = "ok" | "no_data" | "unknown_customer" | "invalid_label_time" | "future_label_time";

/** The column that says, per row, whether the features are real (`ok`) or why they are all null. */
export const STATUS_COLUMN = "feature_status";

/** Labels as read from a file or given by a library caller: the columns pass through unchanged. */
export interface LabelSet {
  readonly columns: readonly ColumnSpec[];
  readonly rows: readonly (readonly Cell[])[];
  /** sha256 of the labels file's bytes (or of the canonical JSON of in-memory labels). */
  readonly digest: string;
}

export interface TrainingSetOptions {
  /** Which records count at a label's time (see the module comment); default `label`. */
  readonly knownAt?: KnownAt;
  /** Custom features to compute after the built-in ones. */
  readonly features?: readonly CustomFeature[];
  /** "Now", epoch ms: a label time after it is `future_label_time`. Default the wall clock. */
  readonly now?: number;
  readonly busyTimeout?: number;
}

/** A label that got no features, and why (also written to the side file). */
export interface RejectedLabel {
  /** 1-based row number among the data rows of the labels. */
  readonly row: number;
  readonly customer_id: string | null;
  readonly label_time: string | null;
  readonly reason: Exclude<LabelStatus, "ok" | "no_data">;
}

export interface TrainingSet {
  /** Label columns, then the features (customer_id is the label's), then {@link STATUS_COLUMN}. */
  readonly columns: readonly ColumnSpec[];
  /** Row `i` as cells in column order; computed on demand, so a large set is never held as objects. */
  row(i: number): Cell[];
  readonly length: number;
  readonly rejected: readonly RejectedLabel[];
  /** Rows whose customer had no data as of the label's time (status `no_data`). */
  readonly noData: number;
  readonly knownAt: KnownAt;
}

/**
 * The feature columns of a training set, typed from the registry; customer_id is the labels'.
 * Every feature is nullable here: a row without data has all of them null, and its status says so.
 */
export function featureSpecs(custom: readonly CustomFeature[]): ColumnSpec[] {
  return featureTableColumns(custom)
    .filter((c) => c.name !== "customer_id")
    .map((c) => ({ ...c, nullable: true }));
}

/** Growable columns of one kind of record: customer index, event time, availability, value. */
class Records {
  n = 0;
  cust = new Int32Array(1024);
  t = new Float64Array(1024);
  avail = new Float64Array(1024);
  v = new Float64Array(1024);
  push(c: number, t: number, avail: number, v: number): void {
    if (this.n === this.cust.length) {
      const grow = <A extends Int32Array | Float64Array>(a: A): A => {
        const b = new (a.constructor as new (n: number) => A)(a.length * 2);
        b.set(a);
        return b;
      };
      this.cust = grow(this.cust);
      this.t = grow(this.t);
      this.avail = grow(this.avail);
      this.v = grow(this.v);
    }
    const i = this.n++;
    this.cust[i] = c;
    this.t[i] = t;
    this.avail[i] = avail;
    this.v[i] = v;
  }
  /** Record indexes grouped by customer: `order[start[c] .. start[c + 1])` are customer c's. */
  group(customers: number): { start: Int32Array; order: Int32Array } {
    const start = new Int32Array(customers + 1);
    for (let i = 0; i < this.n; i++) start[this.cust[i]! + 1]!++;
    for (let c = 0; c < customers; c++) start[c + 1]! += start[c]!;
    const next = start.slice(0, customers);
    const order = new Int32Array(this.n);
    for (let i = 0; i < this.n; i++) order[next[this.cust[i]!]!++] = i;
    return { start, order };
  }
}

/** Unknown availability (a data dir whose bronze was gone at migration): never known at a past label. */
const NEVER = Number.POSITIVE_INFINITY;

/**
 * Computes the training set of `labels` from a data dir. `labels` must hold `customer_id` and
 * `label_time` (ISO-8601 or epoch ms) columns.
 */
export function computeTrainingSet(dataDir: string, labels: LabelSet, options: TrainingSetOptions = {}): TrainingSet {
  const knownAt = options.knownAt ?? "label";
  if (!KNOWN_AT.includes(knownAt)) throw new ConfigError(`unknown known-at policy "${String(knownAt)}"; expected label or latest`);
  const custom = options.features ?? [];
  const now = options.now ?? Date.now();
  const idCol = labels.columns.findIndex((c) => c.name === "customer_id");
  const timeCol = labels.columns.findIndex((c) => c.name === "label_time");
  if (idCol < 0 || timeCol < 0) {
    throw new ConfigError(`labels need a customer_id and a label_time column; they have ${labels.columns.map((c) => c.name).join(", ") || "none"}`);
  }
  const clash = labels.columns.find((c) => c.name === STATUS_COLUMN || featureSpecs(custom).some((f) => f.name === c.name));
  if (clash) throw new ConfigError(`the labels' column ${clash.name} has the name of a training-set column; rename it`);

  // Labels: customer index and instant per row, and what is wrong with the row, if anything.
  const n = labels.rows.length;
  const customerIndex = new Map<string, number>();
  const customerIds: string[] = [];
  const labelCustomer = new Int32Array(n).fill(-1);
  const labelTime = new Float64Array(n);
  const status: LabelStatus[] = new Array(n);
  const rejected: RejectedLabel[] = [];
  for (let i = 0; i < n; i++) {
    const row = labels.rows[i]!;
    const rawId = row[idCol];
    const id = rawId === null || rawId === undefined ? "" : String(rawId).trim();
    const T = toInstant(row[timeCol]);
    if (T === null) status[i] = "invalid_label_time";
    else if (T > now) status[i] = "future_label_time";
    else if (id === "") status[i] = "unknown_customer";
    else {
      status[i] = "ok";
      let c = customerIndex.get(id);
      if (c === undefined) {
        c = customerIds.length;
        customerIndex.set(id, c);
        customerIds.push(id);
      }
      labelCustomer[i] = c;
      labelTime[i] = T;
    }
  }

  for (const layer of ["silver", "gold"] as const) {
    if (!existsSync(layerPath(dataDir, layer))) throw new NoDataError(`no ${layer} data in ${dataDir}: nothing has been written to it yet`);
  }
  const storage = { synchronous: "normal" as const, busyTimeout: options.busyTimeout ?? 5_000, readonly: true };
  const silver = openLayer(dataDir, "silver", SILVER_MIGRATIONS, storage);
  const gold = openLayer(dataDir, "gold", GOLD_MIGRATIONS, storage);
  const C = customerIds.length;
  let data: Loaded;
  try {
    // One read transaction per file, gold first: its position bounds silver, as for `features --as-of`.
    data = gold.transaction(() => silver.transaction(() => load(silver, gold, customerIndex, custom, knownAt))())();
  } finally {
    silver.close();
    gold.close();
  }

  const exists = new Uint8Array(C);
  const tables = [data.tx, data.sessions, data.interactions, data.events, ...data.custom];
  for (const r of tables) for (let i = 0; i < r.n; i++) exists[r.cust[i]!] = 1;
  for (const c of data.profiles.keys()) exists[c] = 1;
  const groups = tables.map((r) => r.group(C));
  const [gTx, gSessions, gInteractions, gEvents] = groups as [Grouped, Grouped, Grouped, Grouped];
  const gCustom = groups.slice(4);

  const specs = featureSpecs(custom);
  const featureCount = specs.length;
  // Features, row-major in one typed array where numeric; segments apart. NaN is null.
  const numeric = new Float64Array(n * featureCount).fill(Number.NaN);
  const segments: (string | null)[] = new Array(n).fill(null);
  const isTime = specs.map((s) => s.type === "datetime");
  let noData = 0;
  for (let i = 0; i < n; i++) {
    if (status[i] !== "ok") continue;
    const c = labelCustomer[i]!;
    if (!exists[c]) {
      status[i] = "unknown_customer";
      continue;
    }
    const T = labelTime[i]!;
    const known = knownAt === "latest" ? NEVER : T;
    const w: Window = { all: emptyTotals(), recent: emptyTotals() };
    const windowStart = T - 30 * DAY_MS;
    scan(data.tx, gTx, c, T, known, (k) => {
      const a = w.all;
      const t = data.tx.t[k]!;
      const micros = data.tx.v[k]!;
      a.tx_count++;
      a.tx_spend_micros += micros;
      if (a.tx_first_at === null || t < a.tx_first_at) a.tx_first_at = t;
      if (a.tx_last_at === null || t > a.tx_last_at) a.tx_last_at = t;
      if (t >= windowStart) {
        w.recent.tx_count++;
        w.recent.tx_spend_micros += micros;
      }
    });
    scan(data.sessions, gSessions, c, T, known, (k) => {
      w.all.session_count++;
      w.all.session_ms += data.sessions.v[k]!;
    });
    scan(data.interactions, gInteractions, c, T, known, () => void w.all.interaction_count++);
    scan(data.events, gEvents, c, T, known, () => void w.all.event_count++);
    const buckets = custom.map((f, j): Bucket => {
      const b: Bucket = { n: 0, total: 0, lo: null, hi: null };
      const from = f.windowDays === undefined ? Number.NEGATIVE_INFINITY : T - f.windowDays * DAY_MS;
      const r = data.custom[j]!;
      const money = fieldOf(f)?.kind === "money";
      scan(r, gCustom[j]!, c, T, known, (k) => {
        if (r.t[k]! < from) return;
        const v = r.v[k]!;
        b.n++;
        b.total += money ? Math.round(v * 1_000_000) : v;
        b.lo = b.lo === null || v < b.lo ? v : b.lo;
        b.hi = b.hi === null || v > b.hi ? v : b.hi;
      });
      return b;
    });
    const profile = pickProfile(data.profiles.get(c), knownAt, T);
    const listed = hasAny(w.all) || buckets.some((b) => b.n > 0) || (profile !== undefined && (profile.registration === null || profile.registration < T));
    if (!listed) {
      status[i] = "no_data";
      noData++;
      continue;
    }
    const row = toRow(customerIds[c]!, w, profile, T);
    segments[i] = row.customer_segment;
    const base = i * featureCount;
    // Built-in features after customer_id and customer_segment, in registry order; then custom.
    for (let f = 1; f < featureCount; f++) {
      const spec = specs[f]!;
      const value = f < specs.length - custom.length ? row[spec.name] : customValue(custom[f - (specs.length - custom.length)]!, buckets[f - (specs.length - custom.length)]);
      numeric[base + f] = value === null || value === undefined ? Number.NaN : isTime[f] ? Date.parse(value as string) : (value as number);
    }
  }
  for (let i = 0; i < n; i++) {
    const s = status[i]!;
    if (s !== "ok" && s !== "no_data") {
      const row = labels.rows[i]!;
      rejected.push({ row: i + 1, customer_id: row[idCol] === null ? null : String(row[idCol]), label_time: row[timeCol] === null ? null : String(row[timeCol]), reason: s });
    }
  }

  const columns: ColumnSpec[] = [...labels.columns, ...specs, { name: STATUS_COLUMN, type: "string", nullable: false }];
  const labelWidth = labels.columns.length;
  return {
    columns,
    length: n,
    rejected,
    noData,
    knownAt,
    row(i: number): Cell[] {
      const out: Cell[] = labels.rows[i]!.slice(0, labelWidth) as Cell[];
      const base = i * featureCount;
      out.push(segments[i]!);
      for (let f = 1; f < featureCount; f++) {
        const v = numeric[base + f]!;
        out.push(Number.isNaN(v) ? null : v);
      }
      out.push(status[i]!);
      return out;
    },
  };
}

type Grouped = { start: Int32Array; order: Int32Array };

/** Calls `each` with every record of customer `c` before T and known by `known`. */
function scan(r: Records, g: Grouped, c: number, T: number, known: number, each: (k: number) => void): void {
  const end = g.start[c + 1]!;
  for (let j = g.start[c]!; j < end; j++) {
    const k = g.order[j]!;
    if (r.t[k]! < T && r.avail[k]! <= known) each(k);
  }
}

interface Profile {
  readonly seq: number;
  readonly avail: number;
  readonly segment: string;
  readonly registration: number | null;
}

/** `latest`: the current profile (as `features` uses). `label`: the latest available by T. */
function pickProfile(history: ProfileHistory | undefined, knownAt: KnownAt, T: number): { segment: string; registration: number | null } | undefined {
  if (history === undefined) return undefined;
  if (knownAt === "latest") return history.current;
  let best: Profile | undefined;
  for (const p of history.versions) if (p.avail <= T && (best === undefined || p.seq > best.seq)) best = p;
  return best;
}

interface ProfileHistory {
  current: { segment: string; registration: number | null } | undefined;
  versions: Profile[];
}

interface Loaded {
  readonly tx: Records;
  readonly sessions: Records;
  readonly interactions: Records;
  readonly events: Records;
  readonly custom: Records[];
  readonly profiles: Map<number, ProfileHistory>;
}

function load(silver: Database, gold: Database, customers: ReadonlyMap<string, number>, custom: readonly CustomFeature[], knownAt: KnownAt): Loaded {
  const position = readPosition(gold, "gold");
  const hasAvail = (silver.prepare("SELECT count(*) FROM pragma_table_info('transactions') WHERE name = 'available_at'").pluck().get() as number) > 0;
  if (!hasAvail && knownAt === "label") {
    throw new NoDataError("silver has no availability times yet (a data dir from before tributary kept them): start tributary on it once to migrate, or use --known-at latest");
  }
  const avail = hasAvail ? "coalesce(available_at, 9e15)" : "0";
  const read = (sql: string, into: Records) => {
    for (const [id, t, a, v] of silver.prepare(sql).raw().iterate(position) as Iterable<[string, number, number, number]>) {
      const c = customers.get(id);
      if (c !== undefined) into.push(c, t, a >= 9e15 ? NEVER : a, v);
    }
    return into;
  };
  const tx = read(
    `SELECT customer_id, transaction_at, ${avail}, CAST(round(amount_base * 1000000) AS INTEGER) FROM transactions WHERE bronze_seq <= ?`,
    new Records(),
  );
  const sessions = read(`SELECT customer_id, session_start_at, ${avail}, session_end_at - session_start_at FROM sessions WHERE bronze_seq <= ?`, new Records());
  const interactions = read(`SELECT customer_id, interaction_at, ${avail}, 0 FROM interactions WHERE bronze_seq <= ?`, new Records());
  const events = read(`SELECT customer_id, event_at, ${avail}, 0 FROM events WHERE bronze_seq <= ?`, new Records());
  const customRecords = custom.map((f) => {
    const q = featureSql(f);
    const field = fieldOf(f);
    // Values as they are; a money sum is taken in integer millionths below, as gold sums them.
    const value = field === null ? "0" : q.value;
    const sql = `SELECT customer_id, ${q.time}, ${avail}, ${value} FROM ${q.table} WHERE bronze_seq <= ?${q.where}`;
    const r = new Records();
    for (const [id, t, a, v] of silver.prepare(sql).raw().iterate(position, ...q.params) as Iterable<[string, number, number, number]>) {
      const c = customers.get(id);
      if (c !== undefined) r.push(c, t, a >= 9e15 ? NEVER : a, v);
    }
    return r;
  });
  const profiles = new Map<number, ProfileHistory>();
  const historyOf = (c: number) => {
    let h = profiles.get(c);
    if (h === undefined) profiles.set(c, (h = { current: undefined, versions: [] }));
    return h;
  };
  for (const [id, segment, registration] of gold.prepare("SELECT customer_id, customer_segment, registration_at FROM customer_profile").raw().iterate() as Iterable<[string, string, number | null]>) {
    const c = customers.get(id);
    if (c !== undefined) historyOf(c).current = { segment, registration };
  }
  if (hasAvail) {
    const sql = "SELECT customer_id, bronze_seq, coalesce(available_at, 9e15), customer_segment, registration_at FROM customer_history WHERE bronze_seq <= ?";
    for (const [id, seq, a, segment, registration] of silver.prepare(sql).raw().iterate(position) as Iterable<[string, number, number, string, number | null]>) {
      const c = customers.get(id);
      if (c !== undefined) historyOf(c).versions.push({ seq, avail: a >= 9e15 ? NEVER : a, segment, registration });
    }
  }
  return { tx, sessions, interactions, events, custom: customRecords, profiles };
}

/** A label time: ISO-8601, epoch ms (number, bigint or digits), or a Date. */
function toInstant(v: Cell | Date | undefined): number | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.getTime();
  if (typeof v === "boolean") return null;
  if (typeof v !== "string") return parseTimestamp(v);
  const text = v.trim();
  // A CSV cell of digits is epoch milliseconds.
  return /^-?\d{1,16}$/.test(text) ? parseTimestamp(Number(text)) : parseTimestamp(text);
}

/**
 * Reads a labels file: CSV (header row; every value a string) or Parquet (typed columns). The
 * format follows the extension (`.csv`, `.parquet`).
 */
export async function readLabels(file: string): Promise<LabelSet> {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new ConfigError(`cannot read the labels file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const digest = createHash("sha256").update(bytes).digest("hex");
  if (/\.parquet$/i.test(file)) return { ...(await readParquetLabels(file, bytes)), digest };
  if (!/\.csv$/i.test(file)) throw new ConfigError(`${file}: a labels file is .csv or .parquet`);
  let records: string[][];
  try {
    records = parseCsv(bytes, { bom: true, skip_empty_lines: true, relax_column_count: false }) as string[][];
  } catch (err) {
    throw new ConfigError(`${file}: not a readable CSV: ${(err as Error).message}`);
  }
  const header = records.shift();
  if (header === undefined) throw new ConfigError(`${file} is empty: a labels file needs a header row with customer_id and label_time`);
  const seen = new Set<string>();
  for (const h of header) {
    if (seen.has(h)) throw new ConfigError(`${file}: the column ${h} appears twice`);
    seen.add(h);
  }
  return { columns: header.map((name) => ({ name, type: "string", nullable: true })), rows: records.map((r) => r.map((v) => (v === "" ? null : v))), digest };
}

async function readParquetLabels(file: string, bytes: Buffer): Promise<Omit<LabelSet, "digest">> {
  const { parquetMetadata, parquetRead, parquetSchema } = await import("hyparquet");
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  let metadata;
  try {
    metadata = parquetMetadata(buffer);
  } catch (err) {
    throw new ConfigError(`${file}: not a readable Parquet file: ${(err as Error).message}`);
  }
  const schema = parquetSchema(metadata);
  const columns: ColumnSpec[] = schema.children.map((child) => {
    const e = child.element;
    const logical = e.logical_type?.type;
    const type: ColumnType =
      logical === "TIMESTAMP" || e.converted_type === "TIMESTAMP_MICROS" || e.converted_type === "TIMESTAMP_MILLIS"
        ? "datetime"
        : e.type === "INT64" || e.type === "INT32"
          ? "long"
          : e.type === "DOUBLE" || e.type === "FLOAT"
            ? "double"
            : e.type === "BOOLEAN"
              ? "boolean"
              : "string";
    return { name: e.name, type, nullable: e.repetition_type !== "REQUIRED" };
  });
  const rows: Cell[][] = [];
  await parquetRead({
    file: buffer,
    metadata,
    rowFormat: "array",
    onComplete: (data: unknown[][]) => {
      for (const r of data) rows.push(r.map((v, j) => toCell(v, columns[j]!.type)));
    },
  });
  return { columns, rows };
}

function toCell(v: unknown, type: ColumnType): Cell {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return v.getTime();
  if (type === "datetime" && typeof v === "bigint") return Number(v);
  if (typeof v === "string" || typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") return v;
  return JSON.stringify(v);
}

/** Labels given in memory (library): objects with customer_id, label_time and any other keys. */
export function labelsFromObjects(objects: readonly Readonly<Record<string, unknown>>[]): LabelSet {
  const names: string[] = [];
  for (const o of objects) for (const k of Object.keys(o)) if (!names.includes(k)) names.push(k);
  const columns: ColumnSpec[] = names.map((name) => {
    const values = objects.map((o) => o[name]).filter((v) => v !== null && v !== undefined);
    const type: ColumnType = values.every((v) => v instanceof Date)
      ? "datetime"
      : values.every((v) => typeof v === "bigint" || (typeof v === "number" && Number.isSafeInteger(v)))
        ? "long"
        : values.every((v) => typeof v === "number")
          ? "double"
          : values.every((v) => typeof v === "boolean")
            ? "boolean"
            : "string";
    return { name, type: values.length === 0 ? "string" : type, nullable: true };
  });
  const rows = objects.map((o) =>
    columns.map((c) => {
      const v = o[c.name];
      if (v === null || v === undefined) return null;
      if (v instanceof Date) return v.getTime();
      return c.type === "string" ? String(v) : (v as Cell);
    }),
  );
  const digest = createHash("sha256")
    .update(JSON.stringify(rows, (_k, v) => (typeof v === "bigint" ? v.toString() : v)))
    .digest("hex");
  return { columns, rows, digest };
}

export interface WriteTrainingSetOptions extends TrainingSetOptions {
  /** The output file; its format follows `format`, else the extension (`.parquet`, else CSV). */
  readonly out: string;
  readonly format?: "csv" | "parquet";
  /** argv as the manifest records it. */
  readonly commandLine?: readonly string[];
}

/** What {@link writeTrainingSet} wrote. */
export interface WrittenTrainingSet {
  readonly file: WrittenFile;
  readonly manifest: DatasetManifest;
  /** The side file listing rejected labels (`<out>.rejected.csv`), or null when none were. */
  readonly rejectedFile: string | null;
  readonly rows: number;
  readonly rejected: readonly RejectedLabel[];
  readonly noData: number;
}

/** Where the rejected labels of a training set are listed. */
export function rejectedPath(out: string): string {
  return `${out}.rejected.csv`;
}

/**
 * Computes a training set and writes it (CSV or typed Parquet) with its manifest beside it
 * (`<out>.manifest.json`), and the rejected labels, with their reasons, to `<out>.rejected.csv`.
 * The same data dir, labels and options give byte-identical files.
 */
export function writeTrainingSet(dataDir: string, labels: LabelSet, options: WriteTrainingSetOptions): WrittenTrainingSet {
  const positions = readLayerPositions(dataDir);
  const set = computeTrainingSet(dataDir, labels, options);
  const format = options.format ?? (/\.parquet$/i.test(options.out) ? "parquet" : "csv");
  const writer = openTableWriter(format, options.out, set.columns);
  let file: WrittenFile;
  try {
    for (let i = 0; i < set.length; i++) writer.write(set.row(i));
    file = writer.close();
  } catch (err) {
    writer.abort();
    throw err;
  }
  const side = rejectedPath(options.out);
  let rejectedFile: string | null = null;
  if (set.rejected.length > 0) {
    const w = openCsvWriter(side, REJECTED_COLUMNS);
    for (const r of set.rejected) w.write([r.row, r.customer_id, r.label_time, r.reason]);
    w.close();
    rejectedFile = side;
  } else {
    rmSync(side, { force: true });
  }
  const manifest = writeManifest(options.out, {
    name: "training_set",
    format,
    file,
    schema: set.columns,
    asOf: null,
    labelsDigest: labels.digest,
    knownAt: set.knownAt,
    positions,
    featuresHash: featureSetHash(options.features ?? []),
    commandLine: options.commandLine ?? [],
  });
  return { file, manifest, rejectedFile, rows: set.length, rejected: set.rejected, noData: set.noData };
}

const REJECTED_COLUMNS: readonly ColumnSpec[] = [
  { name: "row", type: "long", nullable: false },
  { name: "customer_id", type: "string", nullable: true },
  { name: "label_time", type: "string", nullable: true },
  { name: "reason", type: "string", nullable: false },
];

/** A training set's rows as objects, for library callers with labels in memory. */
export interface TrainingSetRows {
  readonly columns: readonly ColumnSpec[];
  readonly rows: Record<string, Cell>[];
  readonly rejected: readonly RejectedLabel[];
}

/**
 * The training set of labels (a CSV or Parquet file, or objects with `customer_id`, `label_time`
 * and any other keys) over a data dir. With `out`, writes the file, its manifest and the rejected
 * labels, and returns what was written; without, returns the rows as objects.
 *
 * @example
 * const { rows } = await trainingSet("./data", [{ customer_id: "c1", label_time: "2026-03-01T12:00:00Z", churned: 1 }]);
 */
export async function trainingSet(dataDir: string, labels: string | readonly Readonly<Record<string, unknown>>[], options: TrainingSetOptions & { out?: string; format?: "csv" | "parquet" } = {}): Promise<TrainingSetRows | WrittenTrainingSet> {
  const set = typeof labels === "string" ? await readLabels(labels) : labelsFromObjects(labels);
  if (options.out !== undefined) return writeTrainingSet(dataDir, set, { ...options, out: options.out });
  const computed = computeTrainingSet(dataDir, set, options);
  const rows: Record<string, Cell>[] = [];
  for (let i = 0; i < computed.length; i++) {
    const cells = computed.row(i);
    rows.push(Object.fromEntries(computed.columns.map((c, j) => [c.name, cells[j]!])));
  }
  return { columns: computed.columns, rows, rejected: computed.rejected };
}

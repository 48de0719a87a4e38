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
 * and sorted by customer into contiguous runs; the labels are then visited customer by customer
 * (the rows keep their order), and each scans its customer's run, so a customer's records are
 * read from memory once for all of its labels. Gold's position bounds what is read, as it bounds
 * `features --as-of`.
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

/** Every status, in the order of the codes a training set keeps per row. */
const LABEL_STATUSES: readonly LabelStatus[] = ["ok", "no_data", "unknown_customer", "invalid_label_time", "future_label_time"];
const [OK, NO_DATA, UNKNOWN_CUSTOMER, INVALID_LABEL_TIME, FUTURE_LABEL_TIME] = [0, 1, 2, 3, 4] as const;

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
  /** Where each customer's run starts once {@link sortByCustomer} has run: records `start[c] .. start[c + 1]` are customer c's. */
  start: Int32Array = new Int32Array(1);
  /**
   * Reorders the records into one contiguous run per customer, keeping read order within a run
   * (so sums add up in the same order whatever the labels).
   */
  sortByCustomer(customers: number): void {
    const { start, order } = runs(this.cust, this.n, customers);
    this.cust = permute(this.cust, order);
    this.t = permute(this.t, order);
    this.avail = permute(this.avail, order);
    this.v = permute(this.v, order);
    this.start = start;
  }
}

function grow<A extends Int32Array | Float64Array>(a: A): A {
  const b = new (a.constructor as new (n: number) => A)(a.length * 2);
  b.set(a);
  return b;
}

/** A stable counting sort by customer: `order[start[c] .. start[c + 1])` are customer c's indexes, in their order. */
function runs(cust: Int32Array, n: number, customers: number): { start: Int32Array; order: Int32Array } {
  const start = new Int32Array(customers + 1);
  for (let i = 0; i < n; i++) start[cust[i]! + 1]!++;
  for (let c = 0; c < customers; c++) start[c + 1]! += start[c]!;
  const next = start.slice(0, customers);
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[next[cust[i]!]!++] = i;
  return { start, order };
}

/** `a` in the order `order` gives (as many elements as `order` has). */
function permute<A extends Int32Array | Float64Array>(a: A, order: Int32Array): A {
  const b = new (a.constructor as new (n: number) => A)(order.length);
  for (let j = 0; j < order.length; j++) b[j] = a[order[j]!]!;
  return b;
}

/**
 * Customer profiles as typed columns, the segments as indexes into a list of their names: the
 * current profile of each customer and, for `label`, every version with its availability, in
 * runs by customer. Held as objects, a million labels' profiles took tens of MB of heap.
 */
class Profiles {
  private readonly names: string[] = [];
  private readonly nameIndex = new Map<string, number>();
  /** Segment index of the current profile per customer; -1 when there is none. */
  private readonly current: Int32Array;
  /** Registration of the current profile per customer; NaN for null. */
  private readonly currentRegistration: Float64Array;
  private n = 0;
  private cust = new Int32Array(1024);
  private seq = new Float64Array(1024);
  private avail = new Float64Array(1024);
  private registration = new Float64Array(1024);
  private segment = new Int32Array(1024);
  private start: Int32Array = new Int32Array(1);

  constructor(customers: number) {
    this.current = new Int32Array(customers).fill(-1);
    this.currentRegistration = new Float64Array(customers);
  }

  private segmentOf(name: string): number {
    let k = this.nameIndex.get(name);
    if (k === undefined) {
      k = this.names.length;
      this.names.push(name);
      this.nameIndex.set(name, k);
    }
    return k;
  }

  setCurrent(c: number, segment: string, registration: number | null): void {
    this.current[c] = this.segmentOf(segment);
    this.currentRegistration[c] = registration ?? Number.NaN;
  }

  addVersion(c: number, seq: number, avail: number, segment: string, registration: number | null): void {
    if (this.n === this.cust.length) {
      this.cust = grow(this.cust);
      this.seq = grow(this.seq);
      this.avail = grow(this.avail);
      this.registration = grow(this.registration);
      this.segment = grow(this.segment);
    }
    const i = this.n++;
    this.cust[i] = c;
    this.seq[i] = seq;
    this.avail[i] = avail;
    this.registration[i] = registration ?? Number.NaN;
    this.segment[i] = this.segmentOf(segment);
  }

  /** Whether customer c has a current profile or a version (after {@link sortByCustomer}). */
  has(c: number): boolean {
    return this.current[c]! >= 0 || this.start[c + 1]! > this.start[c]!;
  }

  sortByCustomer(customers: number): void {
    const { start, order } = runs(this.cust, this.n, customers);
    this.cust = permute(this.cust, order);
    this.seq = permute(this.seq, order);
    this.avail = permute(this.avail, order);
    this.registration = permute(this.registration, order);
    this.segment = permute(this.segment, order);
    this.start = start;
  }

  /** `latest`: the current profile (as `features` uses). `label`: the latest in stream order available by T. */
  pick(c: number, knownAt: KnownAt, T: number): { segment: string; registration: number | null } | undefined {
    let segment: number;
    let registration: number;
    if (knownAt === "latest") {
      segment = this.current[c]!;
      registration = this.currentRegistration[c]!;
    } else {
      let best = -1;
      for (let k = this.start[c]!, end = this.start[c + 1]!; k < end; k++) {
        if (this.avail[k]! <= T && (best < 0 || this.seq[k]! > this.seq[best]!)) best = k;
      }
      if (best < 0) return undefined;
      segment = this.segment[best]!;
      registration = this.registration[best]!;
    }
    if (segment < 0) return undefined;
    return { segment: this.names[segment]!, registration: Number.isNaN(registration) ? null : registration };
  }
}

/** A count and a sum, reused across labels instead of a closure and an object per scan. */
interface Tally {
  n: number;
  sum: number;
}

/** Customer c's records before T and known by `known`: how many, and the sum of their values. */
function tally(r: Records, c: number, T: number, known: number, into: Tally): Tally {
  let n = 0;
  let sum = 0;
  for (let k = r.start[c]!, end = r.start[c + 1]!; k < end; k++) {
    if (r.t[k]! < T && r.avail[k]! <= known) {
      n++;
      sum += r.v[k]!;
    }
  }
  into.n = n;
  into.sum = sum;
  return into;
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
  // Per row, as codes into LABEL_STATUSES: a million pointers would be 8 MB of heap more.
  const status = new Uint8Array(n);
  const rejected: RejectedLabel[] = [];
  for (let i = 0; i < n; i++) {
    const row = labels.rows[i]!;
    const rawId = row[idCol];
    const id = rawId === null || rawId === undefined ? "" : String(rawId).trim();
    const T = toInstant(row[timeCol]);
    if (T === null) status[i] = INVALID_LABEL_TIME;
    else if (T > now) status[i] = FUTURE_LABEL_TIME;
    else if (id === "") status[i] = UNKNOWN_CUSTOMER;
    else {
      status[i] = OK;
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
  let gold: Database;
  try {
    gold = openLayer(dataDir, "gold", GOLD_MIGRATIONS, storage);
  } catch (err) {
    silver.close();
    throw err;
  }
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
  data.profiles.sortByCustomer(C);
  for (let c = 0; c < C; c++) if (data.profiles.has(c)) exists[c] = 1;
  for (const r of tables) r.sortByCustomer(C);
  const { tx, sessions, interactions, events } = data;

  const specs = featureSpecs(custom);
  const featureCount = specs.length;
  // Features, row-major in one typed array where numeric; segments apart, as indexes into
  // segmentNames (-1 for null). NaN is null.
  const numeric = new Float64Array(n * featureCount).fill(Number.NaN);
  const segments = new Int32Array(n).fill(-1);
  const segmentNames: string[] = [];
  const segmentIndex = new Map<string, number>();
  const isTime = specs.map((s) => s.type === "datetime");
  let noData = 0;
  const counted: Tally = { n: 0, sum: 0 };
  for (const i of byCustomer(labelCustomer, C)) {
    const c = labelCustomer[i]!;
    if (!exists[c]) {
      status[i] = UNKNOWN_CUSTOMER;
      continue;
    }
    const T = labelTime[i]!;
    const known = knownAt === "latest" ? NEVER : T;
    const w: Window = { all: emptyTotals(), recent: emptyTotals() };
    const windowStart = T - 30 * DAY_MS;
    const a = w.all;
    for (let k = tx.start[c]!, end = tx.start[c + 1]!; k < end; k++) {
      const t = tx.t[k]!;
      if (!(t < T && tx.avail[k]! <= known)) continue;
      const micros = tx.v[k]!;
      a.tx_count++;
      a.tx_spend_micros += micros;
      if (a.tx_first_at === null || t < a.tx_first_at) a.tx_first_at = t;
      if (a.tx_last_at === null || t > a.tx_last_at) a.tx_last_at = t;
      if (t >= windowStart) {
        w.recent.tx_count++;
        w.recent.tx_spend_micros += micros;
      }
    }
    tally(sessions, c, T, known, counted);
    a.session_count = counted.n;
    a.session_ms = counted.sum;
    a.interaction_count = tally(interactions, c, T, known, counted).n;
    a.event_count = tally(events, c, T, known, counted).n;
    const buckets = custom.map((f, j): Bucket => {
      const b: Bucket = { n: 0, total: 0, lo: null, hi: null };
      const from = f.windowDays === undefined ? Number.NEGATIVE_INFINITY : T - f.windowDays * DAY_MS;
      const r = data.custom[j]!;
      const money = fieldOf(f)?.kind === "money";
      scan(r, c, T, known, (k) => {
        if (r.t[k]! < from) return;
        const v = r.v[k]!;
        b.n++;
        b.total += money ? Math.round(v * 1_000_000) : v;
        b.lo = b.lo === null || v < b.lo ? v : b.lo;
        b.hi = b.hi === null || v > b.hi ? v : b.hi;
      });
      return b;
    });
    const profile = data.profiles.pick(c, knownAt, T);
    const listed = hasAny(w.all) || buckets.some((b) => b.n > 0) || (profile !== undefined && (profile.registration === null || profile.registration < T));
    if (!listed) {
      status[i] = NO_DATA;
      noData++;
      continue;
    }
    const row = toRow(customerIds[c]!, w, profile, T);
    let segment = segmentIndex.get(row.customer_segment);
    if (segment === undefined) {
      segment = segmentNames.push(row.customer_segment) - 1;
      segmentIndex.set(row.customer_segment, segment);
    }
    segments[i] = segment;
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
    if (s !== OK && s !== NO_DATA) {
      const row = labels.rows[i]!;
      const reason = LABEL_STATUSES[s] as RejectedLabel["reason"];
      rejected.push({ row: i + 1, customer_id: row[idCol] === null ? null : String(row[idCol]), label_time: row[timeCol] === null ? null : String(row[timeCol]), reason });
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
      out.push(segments[i]! < 0 ? null : segmentNames[segments[i]!]!);
      for (let f = 1; f < featureCount; f++) {
        const v = numeric[base + f]!;
        out.push(Number.isNaN(v) ? null : v);
      }
      out.push(LABEL_STATUSES[status[i]!]!);
      return out;
    },
  };
}

/** Calls `each` with every record of customer `c` before T and known by `known` (after {@link Records.sortByCustomer}). */
function scan(r: Records, c: number, T: number, known: number, each: (k: number) => void): void {
  for (let k = r.start[c]!, end = r.start[c + 1]!; k < end; k++) {
    if (r.t[k]! < T && r.avail[k]! <= known) each(k);
  }
}

/** The rows with a customer (index ≥ 0), customer by customer, each customer's in row order. */
function byCustomer(labelCustomer: Int32Array, customers: number): Int32Array {
  const start = new Int32Array(customers + 1);
  let rows = 0;
  for (let i = 0; i < labelCustomer.length; i++) {
    const c = labelCustomer[i]!;
    if (c >= 0) {
      start[c + 1]!++;
      rows++;
    }
  }
  for (let c = 0; c < customers; c++) start[c + 1]! += start[c]!;
  const order = new Int32Array(rows);
  for (let i = 0; i < labelCustomer.length; i++) {
    const c = labelCustomer[i]!;
    if (c >= 0) order[start[c]!++] = i;
  }
  return order;
}

interface Loaded {
  readonly tx: Records;
  readonly sessions: Records;
  readonly interactions: Records;
  readonly events: Records;
  readonly custom: Records[];
  readonly profiles: Profiles;
}

function load(silver: Database, gold: Database, customers: ReadonlyMap<string, number>, custom: readonly CustomFeature[], knownAt: KnownAt): Loaded {
  const position = readPosition(gold, "gold");
  const hasAvail = (silver.prepare("SELECT count(*) FROM pragma_table_info('transactions') WHERE name = 'available_at'").pluck().get() as number) > 0;
  const filling = hasAvail && (silver.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'pending_fill'").pluck().get() as number) > 0 && (silver.prepare("SELECT count(*) FROM pending_fill").pluck().get() as number) > 0;
  if (filling && knownAt === "label") {
    throw new NoDataError("silver is still filling in availability times from bronze (an upgraded data dir): start tributary on it until it has, or use --known-at latest");
  }
  if (!hasAvail && knownAt === "label") {
    throw new NoDataError("silver has no availability times yet (a data dir from before tributary kept them): start tributary on it once to migrate, or use --known-at latest");
  }
  // Only the columns a policy uses: better-sqlite3's cost grows with every value of every row.
  // `latest` counts every record, known or not, so it leaves availability out (as 0); counts
  // leave out the value.
  const withAvail = knownAt === "label";
  const read = (table: string, time: string, value: string | null, where = "", params: readonly unknown[] = []) => {
    const sql = `SELECT customer_id, ${time}${withAvail ? ", coalesce(available_at, 9e15)" : ""}${value === null ? "" : `, ${value}`} FROM ${table} WHERE bronze_seq <= ?${where}`;
    const at = withAvail ? 2 : -1;
    const vat = value === null ? -1 : withAvail ? 3 : 2;
    const into = new Records();
    // Rows by index, not destructured: a quarter less time per row over millions of them.
    for (const row of silver.prepare(sql).raw().iterate(position, ...params) as Iterable<(string | number)[]>) {
      const c = customers.get(row[0] as string);
      if (c === undefined) continue;
      const a = at < 0 ? 0 : (row[at] as number);
      into.push(c, row[1] as number, a >= 9e15 ? NEVER : a, vat < 0 ? 0 : (row[vat] as number));
    }
    return into;
  };
  const tx = read("transactions", "transaction_at", "CAST(round(amount_base * 1000000) AS INTEGER)");
  const sessions = read("sessions", "session_start_at", "session_end_at - session_start_at");
  const interactions = read("interactions", "interaction_at", null);
  const events = read("events", "event_at", null);
  // Values as they are; a money sum is taken in integer millionths below, as gold sums them.
  const customRecords = custom.map((f) => {
    const q = featureSql(f);
    return read(q.table, q.time, fieldOf(f) === null ? null : q.value, q.where, q.params);
  });
  const profiles = new Profiles(customers.size);
  for (const [id, segment, registration] of gold.prepare("SELECT customer_id, customer_segment, registration_at FROM customer_profile").raw().iterate() as Iterable<[string, string, number | null]>) {
    const c = customers.get(id);
    if (c !== undefined) profiles.setCurrent(c, segment, registration);
  }
  // Only `label` reads the versions. Gold has applied every record up to its position, so a
  // customer with a version has a current profile too, and `latest` needs nothing more.
  if (hasAvail && knownAt === "label") {
    const sql = "SELECT customer_id, bronze_seq, coalesce(available_at, 9e15), customer_segment, registration_at FROM customer_history WHERE bronze_seq <= ?";
    for (const [id, seq, a, segment, registration] of silver.prepare(sql).raw().iterate(position) as Iterable<[string, number, number, string, number | null]>) {
      const c = customers.get(id);
      if (c !== undefined) profiles.addVersion(c, seq, a >= 9e15 ? NEVER : a, segment, registration);
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
  let rows: Cell[][] = [];
  await parquetRead({
    file: buffer,
    metadata,
    rowFormat: "array",
    onComplete: (data: unknown[][]) => {
      // Converted in place: a copy of a million rows would double the labels' heap while it is made.
      for (const r of data) for (let j = 0; j < r.length; j++) r[j] = toCell(r[j], columns[j]!.type);
      rows = data as Cell[][];
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

/**
 * Rows per Parquet row group of a training set. A training set's labels stay in memory while it
 * is written, so a group is kept to a quarter of the export default: at a million labels under
 * the command's 256 MB heap, 64k-row groups left V8 collecting the old generation every half second.
 */
const TRAINING_SET_ROW_GROUP_ROWS = 16_384;

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
  const writer = openTableWriter(format, options.out, set.columns, { rowGroupRows: TRAINING_SET_ROW_GROUP_ROWS });
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

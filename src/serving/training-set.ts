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
 * Everything a million labels touch is held in columns, not objects: the labels as typed arrays
 * and dictionary codes, silver's records (read in bulk, {@link readIntegerColumns}) as typed
 * arrays sorted into one run per customer, and the features as one Float64Array each. The labels
 * are visited customer by customer (the rows keep their order), each scanning its customer's run,
 * and the Parquet is written straight from the columns ({@link writeParquetColumns}). Gold's
 * position bounds what is read, as it bounds `features --as-of`.
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { createHash } from "node:crypto";
import { parse as parseCsv } from "csv-parse/sync";
import { DAY_MS, parseTimestamp } from "../timestamps.js";
import { layerPath, openLayer, readPosition, type Database } from "../sinks/database.js";
import { GOLD_MIGRATIONS, featureSql } from "../sinks/gold.js";
import { SILVER_MIGRATIONS, silverHorizon } from "../sinks/silver.js";
import { fieldOf, type CustomFeature } from "../model/features.js";
import { featureTableColumns, openTableWriter } from "./export.js";
import { openCsvWriter } from "./csv.js";
import { readLayerPositions, tributaryVersion, writeManifest, type DatasetManifest } from "./manifest.js";
import { featureSetHash } from "../model/registry-hash.js";
import { customValue, type Bucket } from "../features.js";
import { ConfigError, NoDataError, StorageError } from "../errors.js";
import { CustomerIds, readIntegerColumns } from "./bulk-read.js";
import { cellOf, writeParquetColumns, type ColumnValues } from "./parquet-columns.js";
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

/**
 * Labels as read from a file or given by a library caller, held by column: `values[j]` holds
 * column j's value for every row. The columns pass through to the training set unchanged.
 */
export interface LabelSet {
  readonly columns: readonly ColumnSpec[];
  readonly values: readonly ColumnValues[];
  readonly length: number;
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
  /** Every column's values, in column order: what the Parquet is written from. */
  readonly values: readonly ColumnValues[];
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

/**
 * Growable columns of one kind of record: customer index, event time, availability (only for
 * `label`), value.
 */
class Records {
  n = 0;
  cust: Int32Array = new Int32Array(1024);
  t: Float64Array = new Float64Array(1024);
  /** Null when the policy ignores availability (`latest`): every record counts as known. */
  avail: Float64Array | null;
  v: Float64Array = new Float64Array(1024);
  constructor(withAvail: boolean) {
    this.avail = withAvail ? new Float64Array(1024) : null;
  }
  private reserve(more: number): void {
    if (this.n + more <= this.cust.length) return;
    const size = Math.max(this.cust.length * 2, this.n + more);
    this.cust = grow(this.cust, size);
    this.t = grow(this.t, size);
    if (this.avail) this.avail = grow(this.avail, size);
    this.v = grow(this.v, size);
  }
  push(c: number, t: number, avail: number, v: number): void {
    this.reserve(1);
    const i = this.n++;
    this.cust[i] = c;
    this.t[i] = t;
    if (this.avail) this.avail[i] = avail;
    this.v[i] = v;
  }
  /** Appends a chunk read in bulk, keeping the rows of known customers (index ≥ 0). */
  append(count: number, cust: Int32Array, t: Float64Array, avail: Float64Array | null, v: Float64Array | null): void {
    this.reserve(count);
    let i = this.n;
    for (let k = 0; k < count; k++) {
      const c = cust[k]!;
      if (c < 0) continue;
      this.cust[i] = c;
      this.t[i] = t[k]!;
      if (this.avail) {
        const a = avail![k]!;
        this.avail[i] = a >= UNKNOWN_AVAILABILITY ? NEVER : a;
      }
      this.v[i] = v === null ? 0 : v[k]!;
      i++;
    }
    this.n = i;
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
    if (this.avail) this.avail = permute(this.avail, order);
    this.v = permute(this.v, order);
    this.start = start;
  }
}

function grow<A extends Int32Array | Float64Array>(a: A, size = a.length * 2): A {
  const b = new (a.constructor as new (n: number) => A)(size);
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
  /** Segment names; the training set's segment codes index this list too. */
  readonly names: string[] = [];
  private readonly nameIndex = new Map<string, number>();
  /** Segment index of the current profile per customer; -1 when there is none. */
  private readonly current: Int32Array;
  /** Registration of the current profile per customer; NaN for null. */
  private readonly currentRegistration: Float64Array;
  private n = 0;
  private cust: Int32Array = new Int32Array(1024);
  private seq: Float64Array = new Float64Array(1024);
  private avail: Float64Array = new Float64Array(1024);
  private registration: Float64Array = new Float64Array(1024);
  private segment: Int32Array = new Int32Array(1024);
  private start: Int32Array = new Int32Array(1);
  /** The registration of the profile the last {@link pick} found (NaN for null). */
  pickedRegistration = Number.NaN;

  constructor(customers: number) {
    this.current = new Int32Array(customers).fill(-1);
    this.currentRegistration = new Float64Array(customers);
  }

  /** The index of a segment name, added when new. */
  segmentOf(name: string): number {
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

  /**
   * The segment index of customer c's profile, or -1 when none applies; its registration is left
   * in {@link pickedRegistration}. `latest`: the current profile (as `features` uses). `label`: the
   * latest in stream order available by T.
   */
  pick(c: number, knownAt: KnownAt, T: number): number {
    if (knownAt === "latest") {
      this.pickedRegistration = this.currentRegistration[c]!;
      return this.current[c]!;
    }
    let best = -1;
    for (let k = this.start[c]!, end = this.start[c + 1]!; k < end; k++) {
      if (this.avail[k]! <= T && (best < 0 || this.seq[k]! > this.seq[best]!)) best = k;
    }
    if (best < 0) return -1;
    this.pickedRegistration = this.registration[best]!;
    return this.segment[best]!;
  }
}

/** Unknown availability (a data dir whose bronze was gone at migration): never known at a past label. */
const NEVER = Number.POSITIVE_INFINITY;
/** What silver's reads give for a NULL availability (an integer, which the bulk reader can read); any value from it up is {@link NEVER}. */
const UNKNOWN_AVAILABILITY = 9_000_000_000_000_000;

const round = (x: number, digits: number) => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

/** Labels' customer and instant per row, and what is wrong with the row, if anything. */
interface LabelKeys {
  readonly customers: CustomerIds;
  readonly customer: Int32Array;
  readonly time: Float64Array;
  readonly status: Uint8Array;
}

function labelKeys(labels: LabelSet, idCol: number, timeCol: number, now: number): LabelKeys {
  const n = labels.length;
  const customers = new CustomerIds();
  const customer = new Int32Array(n).fill(-1);
  const time = new Float64Array(n);
  // Per row, as codes into LABEL_STATUSES: a million pointers would be 8 MB of heap more.
  const status = new Uint8Array(n);
  const ids = labels.values[idCol]!;
  const times = labels.values[timeCol]!;
  // A dictionary column is trimmed, and a time parsed, once per distinct value.
  const idOfCode = ids.kind === "codes" ? new Int32Array(ids.names.length).fill(-2) : null;
  const timeOfCode = times.kind === "codes" ? new Float64Array(times.names.length).fill(Number.NaN) : null;
  for (let i = 0; i < n; i++) {
    let T: number | null;
    if (timeOfCode !== null && times.kind === "codes") {
      const k = times.codes[i]!;
      if (k < 0) T = null;
      else {
        if (Number.isNaN(timeOfCode[k]!)) timeOfCode[k] = toInstant(times.names[k]) ?? Number.NEGATIVE_INFINITY;
        T = timeOfCode[k] === Number.NEGATIVE_INFINITY ? null : timeOfCode[k]!;
      }
    } else {
      T = toInstant(cellOf(times, i));
    }
    if (T === null) {
      status[i] = INVALID_LABEL_TIME;
      continue;
    }
    if (T > now) {
      status[i] = FUTURE_LABEL_TIME;
      continue;
    }
    let c: number;
    if (idOfCode !== null && ids.kind === "codes") {
      const k = ids.codes[i]!;
      if (k >= 0 && idOfCode[k] === -2) {
        const id = ids.names[k]!.trim();
        idOfCode[k] = id === "" ? -1 : customers.add(id);
      }
      c = k < 0 ? -1 : idOfCode[k]!;
    } else {
      const raw = cellOf(ids, i);
      const id = raw === null ? "" : String(raw).trim();
      c = id === "" ? -1 : customers.add(id);
    }
    if (c < 0) {
      status[i] = UNKNOWN_CUSTOMER;
      continue;
    }
    status[i] = OK;
    customer[i] = c;
    time[i] = T;
  }
  return { customers, customer, time, status };
}

/** The built-in feature columns this module computes, after customer_id and customer_segment: a registry feature without a line here fails loudly. */
const BUILTIN_NUMERIC = [
  "purchase_frequency",
  "total_spend",
  "avg_transaction_value",
  "first_transaction_at",
  "last_transaction_at",
  "recency_days",
  "transactions_last_30_days",
  "spend_last_30_days",
  "session_count",
  "avg_session_duration_seconds",
  "interaction_count",
  "event_count",
  "days_since_registration",
] as const;

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
  const specs = featureSpecs(custom);
  const clash = labels.columns.find((c) => c.name === STATUS_COLUMN || specs.some((f) => f.name === c.name));
  if (clash) throw new ConfigError(`the labels' column ${clash.name} has the name of a training-set column; rename it`);

  const n = labels.length;
  const { customers, customer: labelCustomer, time: labelTime, status } = labelKeys(labels, idCol, timeCol, now);

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
  const C = customers.size;
  let data: Loaded;
  try {
    // One read transaction per file, gold first: its position bounds silver, as for `features --as-of`.
    data = gold.transaction(() =>
      silver.transaction(() => {
        refusePrunedSilver(silver);
        return load(silver, gold, customers, custom, knownAt);
      })(),
    )();
  } finally {
    silver.close();
    gold.close();
  }

  const exists = new Uint8Array(C);
  const tables = [data.tx, data.sessions, data.interactions, data.events, ...data.custom];
  for (const r of tables) for (let i = 0; i < r.n; i++) exists[r.cust[i]!] = 1;
  const profiles = data.profiles;
  profiles.sortByCustomer(C);
  for (let c = 0; c < C; c++) if (profiles.has(c)) exists[c] = 1;
  for (const r of tables) r.sortByCustomer(C);
  const { tx, sessions, interactions, events } = data;

  // One Float64Array per feature but the segment (NaN is null); the segment as codes.
  const featureValues = specs.map((s) => (s.name === "customer_segment" ? null : new Float64Array(n).fill(Number.NaN)));
  const column = (name: string) => {
    const j = specs.findIndex((s) => s.name === name);
    if (j < 0 || featureValues[j] === null) throw new Error(`the registry has no numeric feature ${name}`);
    return featureValues[j]!;
  };
  const computed = new Set<string>(["customer_segment", ...BUILTIN_NUMERIC, ...custom.map((f) => f.name)]);
  const missing = specs.find((s) => !computed.has(s.name));
  if (missing) throw new Error(`training sets do not compute the built-in feature ${missing.name}`);
  const [purchaseFrequency, totalSpend, avgTransactionValue, firstTransactionAt, lastTransactionAt, recencyDays, transactionsLast30, spendLast30, sessionCount, avgSessionSeconds, interactionCount, eventCount, daysSinceRegistration] =
    BUILTIN_NUMERIC.map(column) as [Float64Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array, Float64Array];
  const customColumns = custom.map((f) => column(f.name));
  const segments = new Int32Array(n).fill(-1);
  const unknownSegment = profiles.segmentOf("unknown");
  const customIsTime = custom.map((f) => specs.find((s) => s.name === f.name)!.type === "datetime");
  const withAvail = knownAt === "label";
  let noData = 0;
  for (const i of byCustomer(labelCustomer, C)) {
    const c = labelCustomer[i]!;
    if (!exists[c]) {
      status[i] = UNKNOWN_CUSTOMER;
      continue;
    }
    const T = labelTime[i]!;
    const known = withAvail ? T : NEVER;
    const windowStart = T - 30 * DAY_MS;
    let txCount = 0;
    let txMicros = 0;
    let first = Number.POSITIVE_INFINITY;
    let last = Number.NEGATIVE_INFINITY;
    let recentCount = 0;
    let recentMicros = 0;
    for (let k = tx.start[c]!, end = tx.start[c + 1]!; k < end; k++) {
      const t = tx.t[k]!;
      if (!(t < T) || (withAvail && !(tx.avail![k]! <= known))) continue;
      const micros = tx.v[k]!;
      txCount++;
      txMicros += micros;
      if (t < first) first = t;
      if (t > last) last = t;
      if (t >= windowStart) {
        recentCount++;
        recentMicros += micros;
      }
    }
    const sessionN = count(sessions, c, T, known);
    const sessionMs = tallied;
    const interactionN = count(interactions, c, T, known);
    const eventN = count(events, c, T, known);
    const buckets = custom.length === 0 ? NO_BUCKETS : custom.map((f, j): Bucket => {
      const b: Bucket = { n: 0, total: 0, lo: null, hi: null };
      const from = f.windowDays === undefined ? Number.NEGATIVE_INFINITY : T - f.windowDays * DAY_MS;
      const r = data.custom[j]!;
      const money = fieldOf(f)?.kind === "money";
      for (let k = r.start[c]!, end = r.start[c + 1]!; k < end; k++) {
        const t = r.t[k]!;
        if (!(t < T) || (r.avail !== null && !(r.avail[k]! <= known)) || t < from) continue;
        const v = r.v[k]!;
        b.n++;
        b.total += money ? Math.round(v * 1_000_000) : v;
        b.lo = b.lo === null || v < b.lo ? v : b.lo;
        b.hi = b.hi === null || v > b.hi ? v : b.hi;
      }
      return b;
    });
    const segment = profiles.pick(c, knownAt, T);
    const registration = segment < 0 ? Number.NaN : profiles.pickedRegistration;
    const listed = txCount + sessionN + interactionN + eventN > 0 || buckets.some((b) => b.n > 0) || (segment >= 0 && (Number.isNaN(registration) || registration < T));
    if (!listed) {
      status[i] = NO_DATA;
      noData++;
      continue;
    }
    // As `toRow` in src/features.ts computes them, in numbers: times stay epoch ms.
    const spend = txMicros / 1e6;
    segments[i] = segment < 0 ? unknownSegment : segment;
    purchaseFrequency[i] = txCount;
    totalSpend[i] = round(spend, 2);
    if (txCount > 0) {
      avgTransactionValue[i] = round(spend / txCount, 2);
      firstTransactionAt[i] = first;
      lastTransactionAt[i] = last;
      recencyDays[i] = round((T - last) / DAY_MS, 6);
    }
    transactionsLast30[i] = recentCount;
    spendLast30[i] = round(recentMicros / 1e6, 2);
    sessionCount[i] = sessionN;
    if (sessionN > 0) avgSessionSeconds[i] = round(sessionMs / 1000 / sessionN, 3);
    interactionCount[i] = interactionN;
    eventCount[i] = eventN;
    if (!Number.isNaN(registration) && registration < T) daysSinceRegistration[i] = round((T - registration) / DAY_MS, 6);
    for (let j = 0; j < custom.length; j++) {
      const value = customValue(custom[j]!, buckets[j]);
      customColumns[j]![i] = value === null ? Number.NaN : customIsTime[j] ? Date.parse(value as string) : (value as number);
    }
  }
  const rejected: RejectedLabel[] = [];
  for (let i = 0; i < n; i++) {
    const s = status[i]!;
    if (s !== OK && s !== NO_DATA) {
      const id = cellOf(labels.values[idCol]!, i);
      const time = cellOf(labels.values[timeCol]!, i);
      rejected.push({ row: i + 1, customer_id: id === null ? null : String(id), label_time: time === null ? null : String(time), reason: LABEL_STATUSES[s] as RejectedLabel["reason"] });
    }
  }

  const columns: ColumnSpec[] = [...labels.columns, ...specs, { name: STATUS_COLUMN, type: "string", nullable: false }];
  const values: ColumnValues[] = [
    ...labels.values,
    ...featureValues.map((v): ColumnValues => (v === null ? { kind: "codes", codes: segments, names: profiles.names } : { kind: "numbers", values: v })),
    { kind: "codes", codes: status, names: LABEL_STATUSES },
  ];
  return {
    columns,
    values,
    length: n,
    rejected,
    noData,
    knownAt,
    row: (i: number): Cell[] => values.map((v) => cellOf(v, i)),
  };
}

/**
 * A training set is computed from silver's records, lifetime features included, so once silver
 * retention has deleted any (`retention.silver`) every row would miss them: refuse, naming the
 * horizon, rather than write plausible, wrong features. Read inside the read transaction, so a
 * prune that starts meanwhile is not seen half-way.
 */
function refusePrunedSilver(silver: Database): void {
  const horizon = silverHorizon(silver);
  if (horizon === null) return;
  // A horizon is recorded before anything under it goes; it matters once something went.
  const deleted = silver.prepare("SELECT records + history FROM retention").pluck().get() as number;
  if (deleted === 0) return;
  throw new StorageError(
    `silver retention has deleted ${deleted} records with event times before ${new Date(horizon).toISOString()} (retention.silver), and a training set is computed from silver's records, lifetime features included: build training sets on a data dir that keeps silver (retention.silver: 0), or a copy of silver made before it was pruned`,
  );
}

const NO_BUCKETS: Bucket[] = [];

/** The sum {@link count} took of the values it counted (a module variable, not an object per call). */
let tallied = 0;

/** How many of customer c's records are before T and known by `known`; their values' sum goes to {@link tallied}. */
function count(r: Records, c: number, T: number, known: number): number {
  let n = 0;
  let sum = 0;
  const avail = r.avail;
  for (let k = r.start[c]!, end = r.start[c + 1]!; k < end; k++) {
    if (r.t[k]! < T && (avail === null || avail[k]! <= known)) {
      n++;
      sum += r.v[k]!;
    }
  }
  tallied = sum;
  return n;
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

function load(silver: Database, gold: Database, customers: CustomerIds, custom: readonly CustomFeature[], knownAt: KnownAt): Loaded {
  const position = readPosition(gold, "gold");
  const hasAvail = (silver.prepare("SELECT count(*) FROM pragma_table_info('transactions') WHERE name = 'available_at'").pluck().get() as number) > 0;
  const filling = hasAvail && (silver.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'pending_fill'").pluck().get() as number) > 0 && (silver.prepare("SELECT count(*) FROM pending_fill").pluck().get() as number) > 0;
  if (filling && knownAt === "label") {
    throw new NoDataError("silver is still filling in availability times from bronze (an upgraded data dir): start tributary on it until it has, or use --known-at latest");
  }
  if (!hasAvail && knownAt === "label") {
    throw new NoDataError("silver has no availability times yet (a data dir from before tributary kept them): start tributary on it once to migrate, or use --known-at latest");
  }
  // Only the columns a policy uses: `latest` counts every record, known or not, so it leaves
  // availability out; counts leave out the value.
  const withAvail = knownAt === "label";
  const read = (table: string, time: string, value: string | null, where = "", params: readonly unknown[] = []) => {
    const columns = [time, ...(withAvail ? [`coalesce(available_at, ${UNKNOWN_AVAILABILITY})`] : []), ...(value === null ? [] : [value])];
    let into = new Records(withAvail);
    const bulk = readIntegerColumns(silver, { table, columns, where: ` AND bronze_seq <= ?${where}`, params: [position, ...params] }, customers, (count, cust, cols) =>
      into.append(count, cust, cols[0]!, withAvail ? cols[1]! : null, value === null ? null : cols[columns.length - 1]!),
    );
    if (bulk) return into;
    // A value that is not an integer (a custom feature's REAL field): row by row, by index.
    into = new Records(withAvail);
    const sql = `SELECT customer_id, ${columns.join(", ")} FROM ${table} WHERE bronze_seq <= ?${where}`;
    const vat = value === null ? -1 : columns.length;
    for (const row of silver.prepare(sql).raw().iterate(position, ...params) as Iterable<(string | number)[]>) {
      const c = customers.indexOf(row[0] as string);
      if (c < 0) continue;
      const a = withAvail ? (row[2] as number) : 0;
      into.push(c, row[1] as number, a >= UNKNOWN_AVAILABILITY ? NEVER : a, vat < 0 ? 0 : (row[vat] as number));
    }
    return into;
  };
  const tx = read("transactions", "transaction_at", "CAST(round(amount_base * 1000000) AS INTEGER)");
  const sessions = read("sessions", "session_start_at", "session_end_at - session_start_at");
  const interactions = read("interactions", "interaction_at", null);
  const events = read("events", "event_at", null);
  // Values as they are; a money sum is taken in integer millionths, as gold sums them.
  const customRecords = custom.map((f) => {
    const q = featureSql(f);
    return read(q.table, q.time, fieldOf(f) === null ? null : q.value, q.where, q.params);
  });
  const profiles = new Profiles(customers.size);
  for (const [id, segment, registration] of gold.prepare("SELECT customer_id, customer_segment, registration_at FROM customer_profile").raw().iterate() as Iterable<[string, string, number | null]>) {
    const c = customers.indexOf(id);
    if (c >= 0) profiles.setCurrent(c, segment, registration);
  }
  // Only `label` reads the versions. Gold has applied every record up to its position, so a
  // customer with a version has a current profile too, and `latest` needs nothing more.
  if (hasAvail && knownAt === "label") {
    const sql = `SELECT customer_id, bronze_seq, coalesce(available_at, ${UNKNOWN_AVAILABILITY}), customer_segment, registration_at FROM customer_history WHERE bronze_seq <= ?`;
    for (const [id, seq, a, segment, registration] of silver.prepare(sql).raw().iterate(position) as Iterable<[string, number, number, string, number | null]>) {
      const c = customers.indexOf(id);
      if (c >= 0) profiles.addVersion(c, seq, a >= UNKNOWN_AVAILABILITY ? NEVER : a, segment, registration);
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
 * Strings as dictionary codes: a million label rows of a hundred thousand customers keep a
 * hundred thousand strings, not a million. `null` (and, for CSV, the empty field) is code -1.
 */
function stringColumn(length: number, valueAt: (i: number) => string | null): ColumnValues {
  const codes = new Int32Array(length);
  const names: string[] = [];
  const index = new Map<string, number>();
  for (let i = 0; i < length; i++) {
    const v = valueAt(i);
    if (v === null) {
      codes[i] = -1;
      continue;
    }
    let k = index.get(v);
    if (k === undefined) index.set(v, (k = names.push(v) - 1));
    codes[i] = k;
  }
  return { kind: "codes", codes, names };
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
  return {
    columns: header.map((name) => ({ name, type: "string", nullable: true })),
    values: header.map((_, j) => stringColumn(records.length, (i) => (records[i]![j] === "" ? null : records[i]![j]!))),
    length: records.length,
    digest,
  };
}

/**
 * Parquet timestamps as epoch milliseconds (numbers), not Dates: truncated toward zero, as
 * `Number(micros / 1000n)` is, without a BigInt division per value.
 */
const TIMESTAMP_PARSERS = {
  timestampFromMilliseconds: (ms: bigint) => Number(ms),
  timestampFromMicroseconds: (us: bigint) => exactDivide(us, 1000),
  timestampFromNanoseconds: (ns: bigint) => exactDivide(ns, 1_000_000),
};

function exactDivide(v: bigint, by: number): number {
  const x = Number(v);
  // For a safe integer, x - x % by is a multiple of `by`, so the division is exact.
  return Number.isSafeInteger(x) ? (x - (x % by)) / by : Number(v / BigInt(by));
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
  const length = Number(metadata.num_rows);
  // Column chunks as hyparquet decodes them, placed by their first row.
  const chunks = columns.map(() => [] as DecodedChunk[]);
  const byName = new Map(columns.map((c, j) => [c.name, j]));
  await parquetRead({
    file: buffer,
    metadata,
    parsers: TIMESTAMP_PARSERS,
    onChunk: ({ columnName, columnData, rowStart }) => {
      const j = byName.get(columnName);
      if (j !== undefined) chunks[j]!.push({ at: rowStart, data: columnData as ArrayLike<unknown> });
    },
  });
  const values = columns.map((c, j) => {
    const column = labelColumn(c.type, length, chunks[j]!);
    chunks[j] = [];
    return column;
  });
  return { columns, values, length };
}

/** A decoded run of a column's values, starting at row `at`. */
interface DecodedChunk {
  readonly at: number;
  readonly data: ArrayLike<unknown>;
}

/**
 * A labels column from the chunks a reader decoded: numbers in a typed array when they all fit
 * one, strings as codes, else cells. A row no chunk covers is null.
 */
function labelColumn(type: ColumnType, n: number, chunks: readonly DecodedChunk[]): ColumnValues {
  if (type === "string") {
    const codes = new Int32Array(n).fill(-1);
    const names: string[] = [];
    const index = new Map<string, number>();
    for (const { at, data } of chunks) {
      for (let i = 0; i < data.length && at + i < n; i++) {
        const v = data[i];
        if (v === null || v === undefined) continue;
        const text = String(v);
        let k = index.get(text);
        if (k === undefined) index.set(text, (k = names.push(text) - 1));
        codes[at + i] = k;
      }
    }
    return { kind: "codes", codes, names };
  }
  if (type !== "boolean") {
    const values = new Float64Array(n);
    const nulls = new Uint8Array(n).fill(1);
    let numeric = true;
    for (const { at, data } of chunks) {
      for (let i = 0; i < data.length && at + i < n && numeric; i++) {
        const v = data[i];
        let x: number;
        if (v === null || v === undefined) continue;
        else if (typeof v === "number") x = v;
        else if (v instanceof Date) x = v.getTime();
        else if (typeof v === "bigint") x = Number(v);
        else x = Number.NaN;
        // A long keeps only safe integers as numbers (a bigint past 2^53 stays a cell); a double any number.
        if (type === "double" ? typeof v !== "number" && !(typeof v === "bigint" && Number.isSafeInteger(x)) : !Number.isSafeInteger(x)) numeric = false;
        values[at + i] = x;
        nulls[at + i] = 0;
      }
    }
    if (numeric) return { kind: "numbers", values, nulls };
  }
  const cells: Cell[] = new Array<Cell>(n).fill(null);
  for (const { at, data } of chunks) for (let i = 0; i < data.length && at + i < n; i++) cells[at + i] = toCell(data[i], type);
  return { kind: "cells", cells };
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
  return { columns, values: columns.map((_, j): ColumnValues => ({ kind: "cells", cells: rows.map((r) => r[j]!) })), length: rows.length, digest };
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
  let file: WrittenFile;
  if (format === "parquet") {
    file = writeParquetColumns(options.out, set.columns, set.values, set.length, { createdBy: `tributary ${tributaryVersion()}` });
  } else {
    const writer = openTableWriter(format, options.out, set.columns);
    try {
      for (let i = 0; i < set.length; i++) writer.write(set.row(i));
      file = writer.close();
    } catch (err) {
      writer.abort();
      throw err;
    }
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

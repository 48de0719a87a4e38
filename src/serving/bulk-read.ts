/**
 * Millions of rows of a few integer columns out of SQLite, for a fraction of what better-sqlite3
 * costs per row. A row read through `iterate()` costs about 2 µs: a JavaScript array, a string for
 * the customer id and a call across the binding. Here SQLite does that work in C instead:
 * `group_concat` packs a chunk of rows into one string per column, and the strings are parsed into
 * typed arrays, the customer ids looked up without making a string of each. On 2M transactions
 * that takes a fifth of the time.
 *
 * The table is walked in its primary key's order in chunks of {@link CHUNK_ROWS} rows, so a chunk's
 * strings stay a few MB whatever the table's size. Anything the fast path cannot read exactly (a
 * value that is not an integer, a NULL, a customer id holding the separator) makes it give up on
 * the table, and the caller reads that table row by row instead.
 */
import type { Database } from "../sinks/database.js";

/** Rows per chunk: a few MB of text per column. */
const CHUNK_ROWS = 65_536;

/** Separates customer ids in a chunk's string: the ASCII unit separator, which ids do not hold (else the counts disagree and the table is read row by row). */
const SEPARATOR = 31;

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * A set of customer ids, each with its index (the order they were added in), looked up by a range
 * of a larger string without making a string of the range: an open-addressing hash table of FNV-1a
 * hashes over UTF-16 code units. A slot holds the hash, the index and where the key's code units
 * are, so a lookup reads one slot and the key it compares, both usually missing the cache.
 */
export class CustomerIds {
  private readonly ids: string[] = [];
  /** Four int32 per slot: hash, index (-1 empty), start of the key in `chars`, its length. */
  private slots: Int32Array = new Int32Array(4 * 1024).fill(-1);
  private mask = 1023;
  private chars: Uint16Array = new Uint16Array(4096);
  private used = 0;

  get size(): number {
    return this.ids.length;
  }

  /** The id of index k. */
  id(k: number): string {
    return this.ids[k]!;
  }

  /** The index of `id`, added when it is new. */
  add(id: string): number {
    const hash = hashRange(id, 0, id.length);
    const found = this.find(id, 0, id.length, hash);
    if (found >= 0) return found;
    const k = this.ids.length;
    this.ids.push(id);
    while (this.chars.length < this.used + id.length) {
      const more = new Uint16Array(this.chars.length * 2);
      more.set(this.chars);
      this.chars = more;
    }
    for (let i = 0; i < id.length; i++) this.chars[this.used + i] = id.charCodeAt(i);
    this.place(hash, k, this.used, id.length);
    this.used += id.length;
    // At most half full, so that a miss ends at an empty slot soon.
    if ((k + 1) * 2 > this.mask + 1) this.rehash();
    return k;
  }

  /** The index of `id`, or -1. */
  indexOf(id: string): number {
    return this.indexIn(id, 0, id.length);
  }

  /** The index of the id `s.slice(from, to)`, or -1. */
  indexIn(s: string, from: number, to: number): number {
    return this.find(s, from, to, hashRange(s, from, to));
  }

  /** The lookup once the range's hash is known. */
  find(s: string, from: number, to: number, hash: number): number {
    const slots = this.slots;
    const chars = this.chars;
    const mask = this.mask;
    const len = to - from;
    const h = hash | 0;
    for (let j = hash & mask; ; j = (j + 1) & mask) {
      const at = j << 2;
      const k = slots[at + 1]!;
      if (k < 0) return -1;
      if (slots[at] !== h || slots[at + 3] !== len) continue;
      const a = slots[at + 2]!;
      let i = 0;
      while (i < len && chars[a + i] === s.charCodeAt(from + i)) i++;
      if (i === len) return k;
    }
  }

  private place(hash: number, k: number, start: number, len: number): void {
    let j = hash & this.mask;
    while (this.slots[(j << 2) + 1]! >= 0) j = (j + 1) & this.mask;
    const at = j << 2;
    this.slots[at] = hash | 0;
    this.slots[at + 1] = k;
    this.slots[at + 2] = start;
    this.slots[at + 3] = len;
  }

  private rehash(): void {
    const old = this.slots;
    this.mask = this.mask * 2 + 1;
    this.slots = new Int32Array(4 * (this.mask + 1)).fill(-1);
    for (let at = 0; at < old.length; at += 4) if (old[at + 1]! >= 0) this.place(old[at]! >>> 0, old[at + 1]!, old[at + 2]!, old[at + 3]!);
  }
}

function hashRange(s: string, from: number, to: number): number {
  let h = FNV_OFFSET;
  for (let i = from; i < to; i++) h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME);
  return h >>> 0;
}

/** One chunk of rows: the customer index of each (-1 when not in the set) and each column's values. */
export type ChunkSink = (count: number, customer: Int32Array, columns: readonly Float64Array[]) => void;

export interface IntegerColumnsQuery {
  readonly table: string;
  /** SQL expressions giving an integer (never NULL) per row. */
  readonly columns: readonly string[];
  /** Further conditions, each starting with ` AND `, and their parameters. */
  readonly where?: string;
  readonly params?: readonly unknown[];
  /** Rows per chunk (default {@link CHUNK_ROWS}). */
  readonly chunkRows?: number;
}

/**
 * Reads `columns` of every row of `table` (a silver table: a single-column primary key, WITHOUT
 * ROWID, and `customer_id`), passing them to `sink` chunk by chunk with each row's index in
 * `customers`. Returns false, having read nothing it keeps, when a value is not an integer or is
 * NULL: then read the table another way. Runs in the caller's transaction.
 */
export function readIntegerColumns(db: Database, q: IntegerColumnsQuery, customers: CustomerIds, sink: ChunkSink): boolean {
  const pk = db.prepare(`SELECT name FROM pragma_table_info(?) WHERE pk = 1`).pluck().all(q.table) as string[];
  if (pk.length !== 1) return false;
  const key = `"${pk[0]!.replace(/"/g, '""')}"`;
  const bound = (lo: boolean, hi: boolean) => `${lo ? ` AND ${key} > ?` : ""}${hi ? ` AND ${key} <= ?` : ""}`;
  // The key CHUNK_ROWS rows on: a walk down the key's b-tree, a few ms per chunk.
  const chunkRows = q.chunkRows ?? CHUNK_ROWS;
  const nextKey = (lo: boolean) => db.prepare(`SELECT ${key} FROM ${q.table} WHERE 1${bound(lo, false)} ORDER BY ${key} LIMIT 1 OFFSET ${chunkRows - 1}`).pluck();
  const chunk = (lo: boolean, hi: boolean) =>
    db.prepare(`SELECT count(*), group_concat(customer_id, char(${SEPARATOR})), ${q.columns.map((c) => `group_concat(${c})`).join(", ")} FROM ${q.table} WHERE 1${q.where ?? ""}${bound(lo, hi)}`).raw();
  const statements = { first: nextKey(false), next: nextKey(true), chunks: [chunk(false, false), chunk(false, true), chunk(true, false), chunk(true, true)] };
  const params = q.params ?? [];
  let customer = new Int32Array(chunkRows);
  let values = q.columns.map(() => new Float64Array(chunkRows));
  let after: unknown = undefined;
  for (let first = true; ; first = false) {
    const upTo = (first ? statements.first.get() : statements.next.get(after)) as unknown;
    const lo = !first;
    const hi = upTo !== undefined;
    const stmt = statements.chunks[(lo ? 2 : 0) + (hi ? 1 : 0)]!;
    const row = stmt.get(...params, ...(lo ? [after] : []), ...(hi ? [upTo] : [])) as [number, string | null, ...(string | null)[]];
    const count = row[0];
    if (count > 0) {
      if (count > customer.length) {
        customer = new Int32Array(count);
        values = q.columns.map(() => new Float64Array(count));
      }
      if (row[1] === null || lookUp(row[1], customers, customer) !== count) return false;
      for (let j = 0; j < q.columns.length; j++) {
        const text = row[j + 2];
        if (typeof text !== "string" || parseIntegers(text, values[j]!) !== count) return false;
      }
      sink(count, customer, values);
    }
    if (!hi) return true;
    after = upTo;
  }
}

/** Looks up each separated id of `s` into `out`; returns how many there were. */
function lookUp(s: string, customers: CustomerIds, out: Int32Array): number {
  let n = 0;
  let from = 0;
  let h = FNV_OFFSET;
  const end = s.length;
  for (let i = 0; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c === SEPARATOR) {
      if (n === out.length) return -1;
      out[n++] = customers.find(s, from, i, h >>> 0);
      from = i + 1;
      h = FNV_OFFSET;
    } else {
      h = Math.imul(h ^ c, FNV_PRIME);
    }
  }
  if (n === out.length) return -1;
  out[n++] = customers.find(s, from, end, h >>> 0);
  return n;
}

/**
 * Parses comma-separated integers into `out`; returns how many there were, or -1 for anything that
 * is not an integer in plain digits (a REAL prints a point or an exponent). Up to 15 digits are
 * summed exactly; longer ones go through Number(), which rounds them as SQLite's int64 would be.
 */
function parseIntegers(s: string, out: Float64Array): number {
  let n = 0;
  let v = 0;
  let digits = 0;
  let negative = false;
  let start = 0;
  const end = s.length;
  for (let i = 0; i <= end; i++) {
    const c = i < end ? s.charCodeAt(i) : 44;
    if (c >= 48 && c <= 57) {
      v = v * 10 + (c - 48);
      digits++;
    } else if (c === 44) {
      if (digits === 0 || n === out.length) return -1;
      out[n++] = digits > 15 ? Number(s.slice(start, i)) : negative ? -v : v;
      v = 0;
      digits = 0;
      negative = false;
      start = i + 1;
    } else if (c === 45 && digits === 0 && !negative) {
      negative = true;
    } else {
      return -1;
    }
  }
  return n;
}

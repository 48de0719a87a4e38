/**
 * Parquet written column by column from typed arrays: a training set is a million rows held as
 * Float64Arrays and dictionary codes, and giving hyparquet-writer a boxed value per cell, which it
 * then compares, samples and converts one by one, took 9 s of a 36 s run. Here the values are
 * encoded straight from the arrays; hyparquet-writer still writes the page headers, the
 * RLE/bit-packed runs and the footer, and Snappy is hysnappy's (WebAssembly, ten times the pure-JS
 * compressor's speed).
 *
 * The files are what {@link openParquetWriter} writes: the same schema ({@link parquetSchema}),
 * data pages v2, Snappy, min/max and null-count statistics per column chunk. Strings, and numbers
 * with few distinct values in a chunk (counts, label times, flags), are dictionary-encoded; other
 * numbers are PLAIN. The same columns give byte-identical files.
 */
import { ByteWriter } from "hyparquet-writer";
import { writePageHeader } from "hyparquet-writer/src/datapage.js";
import { writeRleBitPackedHybrid } from "hyparquet-writer/src/encoding.js";
import { writeMetadata } from "hyparquet-writer/src/metadata.js";
import type { ColumnChunk, Encoding, FileMetaData, RowGroup, SchemaElement, Statistics } from "hyparquet";
import { fileSink, parquetSchema, snappy, type ParquetOptions } from "./parquet.js";
import { AtomicFile, type Cell, type ColumnSpec, type WrittenFile } from "./output-file.js";

/**
 * One column's values, one per row:
 * - `numbers`: `long` (safe integers), `double`, or `datetime` (epoch ms). A row is null where
 *   `nulls` is 1; without `nulls`, where the value is NaN.
 * - `codes`: strings as indexes into `names`; -1 is null.
 * - `cells`: anything else, as cells of the column's type.
 */
export type ColumnValues =
  | { readonly kind: "numbers"; readonly values: Float64Array; readonly nulls?: Uint8Array }
  | { readonly kind: "codes"; readonly codes: Int32Array | Uint8Array; readonly names: readonly string[] }
  | { readonly kind: "cells"; readonly cells: readonly Cell[] };

/** The value of one row as a cell (null, a number, a string, or the cell as given). */
export function cellOf(v: ColumnValues, row: number): Cell {
  switch (v.kind) {
    case "numbers": {
      const x = v.values[row]!;
      return (v.nulls ? v.nulls[row] === 1 : Number.isNaN(x)) ? null : x;
    }
    case "codes": {
      const k = v.codes[row]!;
      return k < 0 ? null : v.names[k]!;
    }
    case "cells":
      return v.cells[row] ?? null;
  }
}

/** Rows per row group: the values are in memory already, so this only bounds one chunk's encoding buffers. */
const ROW_GROUP_ROWS = 65_536;

const MAGIC = 0x31524150; // "PAR1"
const TWO_32 = 4294967296;

/**
 * Writes `rows` rows of `columns` (each `data[j]` holding at least `rows` values) as a Parquet
 * file at `path`, replacing what is there only once it is complete.
 *
 * @example
 * writeParquetColumns("x.parquet", [{ name: "n", type: "long", nullable: true }], [{ kind: "numbers", values: Float64Array.of(1, NaN) }], 2);
 */
export function writeParquetColumns(path: string, columns: readonly ColumnSpec[], data: readonly ColumnValues[], rows: number, options: ParquetOptions = {}): WrittenFile {
  if (data.length !== columns.length) throw new RangeError(`${path}: ${data.length} columns of values for ${columns.length} columns`);
  const groupRows = options.rowGroupRows ?? ROW_GROUP_ROWS;
  if (!Number.isSafeInteger(groupRows) || groupRows < 1) throw new RangeError(`rowGroupRows must be a positive integer, got ${groupRows}`);
  const file = new AtomicFile(path);
  try {
    const out = fileSink(file);
    const schema = parquetSchema(columns);
    out.appendUint32(MAGIC);
    const rowGroups: RowGroup[] = [];
    for (let start = 0; start < rows; start += groupRows) {
      const end = Math.min(rows, start + groupRows);
      const groupStart = out.offset;
      let uncompressed = 0;
      const chunks = columns.map((c, j) => {
        const written = writeChunk(out, c, schema[j + 1]!, data[j]!, start, end);
        uncompressed += written.uncompressed;
        return written.chunk;
      });
      rowGroups.push({ columns: chunks, total_byte_size: BigInt(uncompressed), num_rows: BigInt(end - start), total_compressed_size: BigInt(out.offset - groupStart) });
      out.flush();
    }
    const metadata = {
      version: 2,
      created_by: options.createdBy ?? "tributary",
      schema,
      num_rows: BigInt(rows),
      row_groups: rowGroups,
      key_value_metadata: options.metadata ? Object.entries(options.metadata).map(([key, value]) => ({ key, value })) : undefined,
    } as FileMetaData;
    writeMetadata(out, metadata);
    out.appendUint32(MAGIC);
    out.finish();
    return { path, rows, ...file.commit() };
  } catch (err) {
    file.abort();
    throw err;
  }
}

/** A column chunk's non-null values in their physical form. */
type Physical =
  /** INT64 or DOUBLE from numbers; INT64 values are safe integers, written times `scale`. */
  | { readonly kind: "number"; readonly values: Float64Array; readonly int64: boolean; readonly scale: number }
  /** INT64 values that are not all safe integers. */
  | { readonly kind: "bigint"; readonly values: BigInt64Array }
  /** BYTE_ARRAY as codes into a dictionary of the chunk's own distinct strings. */
  | { readonly kind: "strings"; readonly codes: Int32Array; readonly dictionary: readonly string[] }
  | { readonly kind: "boolean"; readonly values: Uint8Array };

/** Definition levels (1 present, 0 null) of rows start..end, and the non-null values. */
interface Extracted {
  readonly levels: Uint8Array;
  readonly nulls: number;
  readonly values: Physical;
}

function bad(c: ColumnSpec, v: unknown): never {
  throw new TypeError(`column ${c.name} (${c.type}): cannot write ${typeof v} ${String(v)}`);
}

function extract(c: ColumnSpec, data: ColumnValues, start: number, end: number): Extracted {
  const n = end - start;
  const levels = new Uint8Array(n);
  let m = 0;
  if (data.kind === "numbers") {
    if (c.type === "string" || c.type === "boolean") bad(c, "number");
    const int64 = c.type !== "double";
    const values = new Float64Array(n);
    const { values: src, nulls } = data;
    for (let i = 0; i < n; i++) {
      const x = src[start + i]!;
      if (nulls ? nulls[start + i] === 1 : Number.isNaN(x)) continue;
      if (int64 && !Number.isSafeInteger(x)) bad(c, x);
      levels[i] = 1;
      values[m++] = x;
    }
    return { levels, nulls: n - m, values: { kind: "number", values: values.subarray(0, m), int64, scale: c.type === "datetime" ? 1000 : 1 } };
  }
  if (data.kind === "codes") {
    if (c.type !== "string") bad(c, "string");
    const codes = new Int32Array(n);
    const local = new Int32Array(data.names.length).fill(-1);
    const dictionary: string[] = [];
    for (let i = 0; i < n; i++) {
      const k = data.codes[start + i]!;
      if (k < 0) continue;
      let d = local[k]!;
      if (d < 0) d = local[k] = dictionary.push(data.names[k]!) - 1;
      levels[i] = 1;
      codes[m++] = d;
    }
    return { levels, nulls: n - m, values: { kind: "strings", codes: codes.subarray(0, m), dictionary } };
  }
  const cells = data.cells;
  const present = (v: Cell | undefined): v is Exclude<Cell, null> => v !== null && v !== undefined;
  switch (c.type) {
    case "string": {
      const codes = new Int32Array(n);
      const index = new Map<string, number>();
      const dictionary: string[] = [];
      for (let i = 0; i < n; i++) {
        const v = cells[start + i];
        if (!present(v)) continue;
        if (typeof v !== "string") bad(c, v);
        let d = index.get(v);
        if (d === undefined) index.set(v, (d = dictionary.push(v) - 1));
        levels[i] = 1;
        codes[m++] = d;
      }
      return { levels, nulls: n - m, values: { kind: "strings", codes: codes.subarray(0, m), dictionary } };
    }
    case "boolean": {
      const values = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        const v = cells[start + i];
        if (!present(v)) continue;
        if (typeof v !== "boolean") bad(c, v);
        levels[i] = 1;
        values[m++] = v ? 1 : 0;
      }
      return { levels, nulls: n - m, values: { kind: "boolean", values: values.subarray(0, m) } };
    }
    case "double": {
      const values = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const v = cells[start + i];
        if (!present(v)) continue;
        if (typeof v !== "number" && typeof v !== "bigint") bad(c, v);
        levels[i] = 1;
        values[m++] = Number(v);
      }
      return { levels, nulls: n - m, values: { kind: "number", values: values.subarray(0, m), int64: false, scale: 1 } };
    }
    case "long":
    case "datetime": {
      const scale = c.type === "datetime" ? 1000n : 1n;
      const values = new BigInt64Array(n);
      for (let i = 0; i < n; i++) {
        const v = cells[start + i];
        if (!present(v)) continue;
        if (typeof v === "bigint") values[m] = v * scale;
        else if (typeof v === "number" && Number.isSafeInteger(v)) values[m] = BigInt(v) * scale;
        else bad(c, v);
        levels[i] = 1;
        m++;
      }
      return { levels, nulls: n - m, values: { kind: "bigint", values: values.subarray(0, m) } };
    }
  }
}

/**
 * The dictionary of a numeric chunk when it pays: a sample of spread-out values first, so a
 * column of distinct values (ids, amounts, times) costs a few hundred lookups, not a map of every
 * value. -0 is never put in one (a map holds it as 0).
 */
function numericDictionary(values: Float64Array): { codes: Int32Array; dictionary: Float64Array } | null {
  const m = values.length;
  if (m < 64) return null;
  const sample = new Set<number>();
  for (let i = 0; i < 256; i++) sample.add(values[Math.floor((i * (m - 1)) / 255)]!);
  if (sample.size > 32) return null;
  const limit = Math.min(m >> 2, 1 << 16);
  const index = new Map<number, number>();
  const dictionary: number[] = [];
  const codes = new Int32Array(m);
  for (let i = 0; i < m; i++) {
    const v = values[i]!;
    let d = index.get(v);
    if (d === undefined) {
      if (dictionary.length === limit || Object.is(v, -0)) return null;
      index.set(v, (d = dictionary.push(v) - 1));
    }
    codes[i] = d;
  }
  return { codes, dictionary: Float64Array.from(dictionary) };
}

/** Scratch buffers for a page's levels and values, reused across chunks. */
const levelBuf = new ByteWriter(1 << 16);
const valueBuf = new ByteWriter(1 << 20);
const dictBuf = new ByteWriter(1 << 16);
const utf8 = new TextEncoder();

function reset(w: ByteWriter): ByteWriter {
  w.index = 0;
  w.offset = 0;
  return w;
}

/** PLAIN INT64 of a safe integer times `scale` (1 or 1000), exactly, past 2^53 too. */
function appendInt64(w: ByteWriter, v: number, scale: number): void {
  let hi = Math.floor(v / TWO_32);
  let lo = v - hi * TWO_32;
  if (scale !== 1) {
    const l = lo * scale;
    const carry = Math.floor(l / TWO_32);
    lo = l - carry * TWO_32;
    hi = hi * scale + carry;
  }
  w.ensure(8);
  w.view.setUint32(w.index, lo, true);
  w.view.setInt32(w.index + 4, hi, true);
  w.index += 8;
  w.offset += 8;
}

function writePlainNumbers(w: ByteWriter, values: Float64Array, int64: boolean, scale: number): void {
  const m = values.length;
  if (int64) {
    for (let i = 0; i < m; i++) appendInt64(w, values[i]!, scale);
    return;
  }
  w.ensure(m * 8);
  const view = w.view;
  let at = w.index;
  for (let i = 0; i < m; i++, at += 8) view.setFloat64(at, values[i]!, true);
  w.index = at;
  w.offset += m * 8;
}

/**
 * PLAIN byte arrays: a 4-byte length, then the UTF-8 bytes. ASCII (the common case: ids, segments,
 * statuses) is copied code unit by code unit, not through a TextEncoder call per string. Returns
 * whether every string was ASCII.
 */
function writePlainStrings(w: ByteWriter, strings: readonly string[]): boolean {
  let bound = 0;
  for (const s of strings) bound += 4 + 3 * s.length;
  w.ensure(bound);
  const bytes = new Uint8Array(w.buffer);
  const view = w.view;
  let at = w.index;
  let ascii = true;
  for (const s of strings) {
    const len = s.length;
    let i = 0;
    for (; i < len; i++) {
      const ch = s.charCodeAt(i);
      if (ch >= 0x80) break;
      bytes[at + 4 + i] = ch;
    }
    let written = len;
    if (i < len) {
      ascii = false;
      written = utf8.encodeInto(s, bytes.subarray(at + 4)).written;
    }
    view.setUint32(at, written, true);
    at += 4 + written;
  }
  w.offset += at - w.index;
  w.index = at;
  return ascii;
}

/** The indexes of the least and the greatest string by UTF-8 bytes, Parquet's order for strings (for ASCII, JavaScript's own). */
function stringBounds(strings: readonly string[], ascii: boolean): [number, number] {
  let lo = -1;
  let hi = -1;
  if (ascii) {
    for (let k = 0; k < strings.length; k++) {
      if (lo < 0 || strings[k]! < strings[lo]!) lo = k;
      if (hi < 0 || strings[k]! > strings[hi]!) hi = k;
    }
    return [lo, hi];
  }
  const encoded = strings.map((s) => utf8.encode(s));
  for (let k = 0; k < encoded.length; k++) {
    if (lo < 0 || Buffer.compare(encoded[k]!, encoded[lo]!) < 0) lo = k;
    if (hi < 0 || Buffer.compare(encoded[k]!, encoded[hi]!) > 0) hi = k;
  }
  return [lo, hi];
}

function writePlainBooleans(w: ByteWriter, values: Uint8Array): void {
  for (let i = 0; i < values.length; i += 8) {
    let byte = 0;
    for (let b = 0; b < 8 && i + b < values.length; b++) byte |= values[i + b]! << b;
    w.appendUint8(byte);
  }
}

function bitWidth(dictionarySize: number): number {
  return dictionarySize <= 1 ? 0 : Math.ceil(Math.log2(dictionarySize));
}

function writeIndexes(w: ByteWriter, codes: Int32Array, dictionarySize: number): void {
  const width = bitWidth(dictionarySize);
  w.appendUint8(width);
  writeRleBitPackedHybrid(w, codes, width);
}

/** min/max of a chunk's non-null values as the statistics want them (INT64 as bigint), NaN left out; -0 is the least zero. */
function numberStats(values: Float64Array, int64: boolean, scale: number): Pick<Statistics, "min_value" | "max_value"> {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo > hi) return {};
  if (int64) return { min_value: BigInt(lo) * BigInt(scale), max_value: BigInt(hi) * BigInt(scale) };
  return { min_value: lo === 0 ? -0 : lo, max_value: hi === 0 ? 0 : hi };
}

/** Writes one column chunk (dictionary page, if any, then one data page v2) and returns its metadata. */
function writeChunk(out: ByteWriter, c: ColumnSpec, element: SchemaElement, data: ColumnValues, start: number, end: number): { chunk: ColumnChunk; uncompressed: number } {
  const n = end - start;
  const { levels, nulls, values } = extract(c, data, start, end);
  if (nulls > 0 && !c.nullable) throw new TypeError(`column ${c.name} is not nullable, got null`);
  const chunkStart = out.offset;
  let uncompressed = 0;
  let dictionaryPageOffset: bigint | undefined;
  let statistics: Statistics = { null_count: BigInt(nulls) };
  let encoding: Encoding = "PLAIN";

  // The dictionary page, and the values as codes into it, when the chunk has one.
  const dict = reset(dictBuf);
  let dictionarySize = -1;
  let codes: Int32Array | null = null;
  const page = reset(valueBuf);
  switch (values.kind) {
    case "number": {
      Object.assign(statistics, numberStats(values.values, values.int64, values.scale));
      const d = numericDictionary(values.values);
      if (d) {
        writePlainNumbers(dict, d.dictionary, values.int64, values.scale);
        dictionarySize = d.dictionary.length;
        codes = d.codes;
      } else {
        writePlainNumbers(page, values.values, values.int64, values.scale);
      }
      break;
    }
    case "bigint": {
      let lo: bigint | undefined;
      let hi: bigint | undefined;
      for (const v of values.values) {
        if (lo === undefined || v < lo) lo = v;
        if (hi === undefined || v > hi) hi = v;
        page.appendInt64(v);
      }
      if (lo !== undefined) Object.assign(statistics, { min_value: lo, max_value: hi });
      break;
    }
    case "strings": {
      const ascii = writePlainStrings(dict, values.dictionary);
      dictionarySize = values.dictionary.length;
      codes = values.codes;
      const [lo, hi] = stringBounds(values.dictionary, ascii);
      if (lo >= 0) statistics = { ...statistics, min_value: values.dictionary[lo]!, max_value: values.dictionary[hi]! };
      break;
    }
    case "boolean": {
      writePlainBooleans(page, values.values);
      let any = 0;
      let all = 1;
      for (const v of values.values) {
        any |= v;
        all &= v;
      }
      if (values.values.length > 0) statistics = { ...statistics, min_value: all === 1, max_value: any === 1 };
      break;
    }
  }
  if (codes !== null) {
    const body = dict.getBytes();
    const compressed = snappy(body);
    dictionaryPageOffset = BigInt(out.offset);
    const headerStart = out.offset;
    writePageHeader(out, {
      type: "DICTIONARY_PAGE",
      uncompressed_page_size: body.length,
      compressed_page_size: compressed.length,
      dictionary_page_header: { num_values: dictionarySize, encoding: "PLAIN" },
    });
    uncompressed += out.offset - headerStart + body.length;
    out.appendBytes(compressed);
    writeIndexes(page, codes, dictionarySize);
    encoding = "RLE_DICTIONARY";
  }

  // The data page: definition levels (uncompressed, as v2 has them), then the compressed values.
  const lv = reset(levelBuf);
  if (c.nullable) writeRleBitPackedHybrid(lv, levels, 1);
  const body = page.getBytes();
  const compressed = snappy(body);
  const dataPageOffset = BigInt(out.offset);
  const headerStart = out.offset;
  writePageHeader(out, {
    type: "DATA_PAGE_V2",
    uncompressed_page_size: lv.offset + body.length,
    compressed_page_size: lv.offset + compressed.length,
    data_page_header_v2: {
      num_values: n,
      num_nulls: nulls,
      num_rows: n,
      encoding,
      definition_levels_byte_length: lv.offset,
      repetition_levels_byte_length: 0,
      is_compressed: true,
    },
  });
  uncompressed += out.offset - headerStart + lv.offset + body.length;
  out.appendBytes(lv.getBytes());
  out.appendBytes(compressed);

  const encodings: Encoding[] = codes !== null ? ["PLAIN", "RLE_DICTIONARY"] : ["PLAIN"];
  if (c.nullable) encodings.push("RLE");
  return {
    uncompressed,
    chunk: {
      file_offset: BigInt(chunkStart),
      meta_data: {
        type: element.type!,
        encodings,
        path_in_schema: [c.name],
        codec: "SNAPPY",
        num_values: BigInt(n),
        total_uncompressed_size: BigInt(uncompressed),
        total_compressed_size: BigInt(out.offset - chunkStart),
        data_page_offset: dataPageOffset,
        dictionary_page_offset: dictionaryPageOffset,
        statistics,
      },
    },
  };
}

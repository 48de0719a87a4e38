/**
 * Typed Parquet files, streamed a row group at a time: `long` is INT64, `double` DOUBLE,
 * `string` BYTE_ARRAY with the STRING logical type, `datetime` INT64 TIMESTAMP(MICROS,
 * isAdjustedToUTC=true), `boolean` BOOLEAN; nullable columns are OPTIONAL and nulls are real
 * nulls; every column chunk is Snappy-compressed. Rows are buffered only up to one row group, so
 * memory is bounded by the row-group size, not by the table.
 *
 * hyparquet-writer's `ParquetWriter` writes one row group per `write()` call and the footer at
 * `finish()`; its `Writer` is the sink, which here flushes to the file after every row group and
 * whenever a megabyte has piled up. Snappy is hysnappy's, from hyparquet's authors: WebAssembly,
 * ten times the speed of the pure-JS compressor hyparquet-writer falls back to.
 */
import { ByteWriter, ParquetWriter } from "hyparquet-writer";
import { snappyCompressor } from "hysnappy";
import type { SchemaElement } from "hyparquet";
import { AtomicFile, streamTable, type Cell, type ColumnSpec, type TableWriter } from "./output-file.js";

/** Rows per row group: ~64k keeps a group of a wide table within a few tens of MB while it is encoded. */
export const DEFAULT_ROW_GROUP_ROWS = 65_536;

/** Bytes buffered before they are written to the file. */
const FLUSH_BYTES = 1 << 20;

export interface ParquetOptions {
  /** Rows per row group (default {@link DEFAULT_ROW_GROUP_ROWS}). */
  readonly rowGroupRows?: number;
  /** The file's `created_by` (e.g. `tributary 0.1.0`). Keep wall-clock time out: the bytes must not depend on when. */
  readonly createdBy?: string;
  /** Key-value metadata in the footer. */
  readonly metadata?: Readonly<Record<string, string>>;
}

/** The Parquet schema (root first) of a list of columns. */
export function parquetSchema(columns: readonly ColumnSpec[]): SchemaElement[] {
  const root: SchemaElement = { name: "root", num_children: columns.length };
  return [
    root,
    ...columns.map((c): SchemaElement => {
      const repetition_type = c.nullable ? "OPTIONAL" : "REQUIRED";
      switch (c.type) {
        case "long":
          return { name: c.name, type: "INT64", repetition_type };
        case "double":
          return { name: c.name, type: "DOUBLE", repetition_type };
        case "boolean":
          return { name: c.name, type: "BOOLEAN", repetition_type };
        case "string":
          return { name: c.name, type: "BYTE_ARRAY", converted_type: "UTF8", logical_type: { type: "STRING" }, repetition_type };
        case "datetime":
          // The converted type too, for readers that predate logical types; it implies UTC.
          return {
            name: c.name,
            type: "INT64",
            converted_type: "TIMESTAMP_MICROS",
            logical_type: { type: "TIMESTAMP", isAdjustedToUTC: true, unit: "MICROS" },
            repetition_type,
          };
      }
    }),
  ];
}

/** A cell as the column's physical value: bigint for INT64 (timestamps in microseconds). */
type Physical = bigint | number | string | boolean | null;
type Convert = (v: Cell) => Physical;

function converter(c: ColumnSpec): Convert {
  const bad = (v: Cell): never => {
    throw new TypeError(`column ${c.name} (${c.type}): cannot write ${typeof v} ${String(v)}`);
  };
  const base: Convert = (() => {
    switch (c.type) {
      case "long":
        return (v) => (typeof v === "bigint" ? v : typeof v === "number" && Number.isSafeInteger(v) ? BigInt(v) : bad(v));
      case "datetime":
        return (v) => (typeof v === "bigint" ? v * 1000n : typeof v === "number" && Number.isSafeInteger(v) ? BigInt(v) * 1000n : bad(v));
      case "double":
        return (v) => (typeof v === "number" ? v : typeof v === "bigint" ? Number(v) : bad(v));
      case "string":
        return (v) => (typeof v === "string" ? v : bad(v));
      case "boolean":
        return (v) => (typeof v === "boolean" ? v : bad(v));
    }
  })();
  return (v) => {
    if (v === null || v === undefined) {
      if (!c.nullable) throw new TypeError(`column ${c.name} is not nullable, got null`);
      return null;
    }
    return base(v);
  };
}

let compressor: ((input: Uint8Array) => Uint8Array) | null = null;

/** Snappy-compresses `input` (a copy; the WebAssembly instance is made once per process). */
export function snappy(input: Uint8Array): Uint8Array {
  compressor ??= snappyCompressor();
  return compressor(input);
}

/** hyparquet-writer's byte sink, flushing into an {@link AtomicFile}: `flush()` writes out what is buffered. */
export function fileSink(file: AtomicFile): ByteWriter & { flush(): void } {
  const w = new ByteWriter(FLUSH_BYTES);
  const flush = () => {
    if (w.index === 0) return;
    file.write(new Uint8Array(w.buffer, 0, w.index));
    w.index = 0;
  };
  const grow = w.ensure.bind(w);
  // Flush before growing: the buffer stays near FLUSH_BYTES (a page larger than that grows it once).
  w.ensure = (size: number) => {
    if (w.index > 0 && w.index + size > FLUSH_BYTES) flush();
    grow(size);
  };
  w.finish = flush;
  return Object.assign(w, { flush });
}

/**
 * Opens a Parquet file for streaming: `write()` rows, then `close()`. A row group is encoded and
 * written every `rowGroupRows` rows; the file appears at `path` (replacing any file there) only at
 * `close()`. The same rows and options give byte-identical files.
 *
 * @example
 * const out = openParquetWriter("transactions.parquet", [
 *   { name: "transaction_id", type: "string", nullable: false },
 *   { name: "amount", type: "double", nullable: false },
 *   { name: "transaction_at", type: "datetime", nullable: false },
 * ]);
 * for (const row of stmt.raw().iterate()) out.write(row);
 * const { rows, sha256 } = out.close();
 */
export function openParquetWriter(path: string, columns: readonly ColumnSpec[], options: ParquetOptions = {}): TableWriter {
  const groupRows = options.rowGroupRows ?? DEFAULT_ROW_GROUP_ROWS;
  if (!Number.isSafeInteger(groupRows) || groupRows < 1) throw new RangeError(`rowGroupRows must be a positive integer, got ${groupRows}`);
  const file = new AtomicFile(path);
  const converters = columns.map(converter);
  const names = columns.map((c) => c.name);
  let pq: ParquetWriter;
  try {
    pq = new ParquetWriter({
      writer: fileSink(file),
      schema: parquetSchema(columns),
      codec: "SNAPPY",
      compressors: { SNAPPY: snappy },
      createdBy: options.createdBy ?? "tributary",
      kvMetadata: options.metadata ? Object.entries(options.metadata).map(([key, value]) => ({ key, value })) : undefined,
    });
  } catch (err) {
    file.abort();
    throw err;
  }
  let buffers: Physical[][] = columns.map(() => []);
  let pending = 0;
  const flushGroup = () => {
    if (pending === 0) return;
    const columnData = names.map((name, i) => ({ name, data: buffers[i]! }));
    // The sink is synchronous, so write() returns no promise.
    void pq.write({ columnData, rowGroupSize: pending });
    buffers = columns.map(() => []);
    pending = 0;
  };
  return streamTable(file, columns, {
    row(row) {
      for (let i = 0; i < converters.length; i++) buffers[i]!.push(converters[i]!(row[i]!));
      if (++pending >= groupRows) flushGroup();
    },
    finish() {
      flushGroup();
      void pq.finish();
    },
  });
}

/**
 * What the dataset writers share: typed column specs, the row writer interface the Parquet and CSV
 * writers both implement, and the output file itself, written under a temporary name beside its
 * destination, hashed as it is written, and renamed into place only once it is complete.
 */
import { createHash, randomBytes, type Hash } from "node:crypto";
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/** A column's type, named as MLflow's `mlflow_colspec` names it. */
export type ColumnType = "long" | "double" | "string" | "datetime" | "boolean";

/** One column of a dataset: its name, type, and whether it can be null. */
export interface ColumnSpec {
  readonly name: string;
  readonly type: ColumnType;
  readonly nullable: boolean;
}

/**
 * One value of a row. `long`: a safe integer or a bigint; `double`: a number; `string`: a string;
 * `datetime`: epoch milliseconds (number or bigint), UTC; `boolean`: a boolean; null when absent.
 */
export type Cell = string | number | bigint | boolean | null;

/** A finished file: where it is, what it holds, and the sha256 of its bytes. */
export interface WrittenFile {
  readonly path: string;
  readonly rows: number;
  readonly bytes: number;
  /** Hex sha256 of the file's content. */
  readonly sha256: string;
}

/** Writes rows in the order of its columns, streaming; nothing is visible at `path` before {@link close}. */
export interface TableWriter {
  readonly columns: readonly ColumnSpec[];
  /** Appends one row, its cells in column order. */
  write(row: readonly Cell[]): void;
  /** Finishes the file and moves it into place, replacing what was there. */
  close(): WrittenFile;
  /** Drops the unfinished file; what was at `path` stays. */
  abort(): void;
}

/**
 * A file written under a temporary name in its destination's directory and renamed over the
 * destination by {@link commit}, so a reader sees the old file or the whole new one, never half.
 */
export class AtomicFile {
  readonly path: string;
  private readonly tmp: string;
  private fd: number | null;
  private readonly hash: Hash = createHash("sha256");
  private size = 0;

  constructor(path: string) {
    this.path = path;
    this.tmp = join(dirname(path), `.${basename(path)}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`);
    this.fd = openSync(this.tmp, "wx", 0o644);
  }

  /** Appends bytes (copied before returning). */
  write(bytes: Uint8Array): void {
    if (this.fd === null) throw new Error(`${this.path}: written after commit or abort`);
    let off = 0;
    while (off < bytes.length) off += writeSync(this.fd, bytes, off, bytes.length - off);
    this.hash.update(bytes);
    this.size += bytes.length;
  }

  /** Flushes to disk and renames into place. Returns the size and sha256 of what was written. */
  commit(): { bytes: number; sha256: string } {
    if (this.fd === null) throw new Error(`${this.path}: committed twice`);
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = null;
    renameSync(this.tmp, this.path);
    return { bytes: this.size, sha256: this.hash.digest("hex") };
  }

  /** Removes the temporary file. Safe to call more than once, and after a failed write. */
  abort(): void {
    if (this.fd !== null) {
      closeSync(this.fd);
      this.fd = null;
    }
    rmSync(this.tmp, { force: true });
  }
}

/** How a format turns rows into bytes: {@link streamTable} calls `row` for each row and `finish` once. */
export interface RowEncoder {
  /** Encodes one row (its length checked), writing to the file whenever enough has piled up. */
  row(row: readonly Cell[]): void;
  /** Writes what is left (the last row group, the footer). */
  finish(): void;
}

/**
 * The life cycle every format shares: rows until `close()`, which commits the file, or `abort()`;
 * any failure while writing drops the unfinished file and rethrows.
 */
export function streamTable(file: AtomicFile, columns: readonly ColumnSpec[], encoder: RowEncoder): TableWriter {
  let rows = 0;
  let done = false;
  const fail = (err: unknown): never => {
    done = true;
    file.abort();
    throw err;
  };
  return {
    columns,
    write(row) {
      if (done) throw new Error(`${file.path}: written after close`);
      if (row.length !== columns.length) fail(new RangeError(`${file.path}: a row of ${row.length} cells for ${columns.length} columns`));
      try {
        encoder.row(row);
      } catch (err) {
        fail(err);
      }
      rows++;
    },
    close(): WrittenFile {
      if (done) throw new Error(`${file.path}: closed twice`);
      try {
        encoder.finish();
        done = true;
        return { path: file.path, rows, ...file.commit() };
      } catch (err) {
        return fail(err);
      }
    },
    abort() {
      done = true;
      file.abort();
    },
  };
}

/** Writes a small text file (a manifest) atomically, as {@link AtomicFile} does. */
export function writeFileAtomic(path: string, text: string): void {
  const file = new AtomicFile(path);
  try {
    file.write(Buffer.from(text, "utf8"));
    file.commit();
  } catch (err) {
    file.abort();
    throw err;
  }
}

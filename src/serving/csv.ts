/**
 * CSV files, streamed: a header row of the column names, then one line per row. Fields are quoted
 * as RFC 4180 says (a field holding a comma, a double quote or a line break is enclosed in double
 * quotes, its quotes doubled); lines end in LF, as `tributary features --format csv` prints them.
 * Times are ISO-8601 UTC with milliseconds (`2026-03-01T10:00:00.000Z`), null is an empty field.
 */
import { formatTimestamp } from "../timestamps.js";
import { AtomicFile, streamTable, type Cell, type ColumnSpec, type TableWriter } from "./output-file.js";

/** Text buffered before it is written to the file. */
const FLUSH_CHARS = 1 << 20;

const NEEDS_QUOTES = /[",\r\n]/;

/** One field, quoted when RFC 4180 requires it. */
export function csvField(text: string): string {
  return NEEDS_QUOTES.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** A cell as CSV text: empty for null, ISO-8601 UTC for a `datetime`, the number or string otherwise. */
export function csvCell(value: Cell, column: ColumnSpec): string {
  if (value === null || value === undefined) return "";
  if (column.type === "datetime" && (typeof value === "number" || typeof value === "bigint")) return formatTimestamp(Number(value));
  if (column.type === "boolean") return value ? "true" : "false";
  return csvField(String(value));
}

/**
 * Opens a CSV file for streaming: the header is written at once, rows as they come, and the file
 * appears at `path` (replacing any file there) only at `close()`.
 *
 * @example
 * const out = openCsvWriter("features.csv", [{ name: "customer_id", type: "string", nullable: false }]);
 * out.write(["c42"]);
 * out.close(); // { path, rows: 1, bytes, sha256 }
 */
export function openCsvWriter(path: string, columns: readonly ColumnSpec[]): TableWriter {
  const file = new AtomicFile(path);
  let chunk = columns.map((c) => csvField(c.name)).join(",") + "\n";
  const flush = () => {
    if (chunk.length === 0) return;
    file.write(Buffer.from(chunk, "utf8"));
    chunk = "";
  };
  return streamTable(file, columns, {
    row(row) {
      let line = "";
      for (let i = 0; i < columns.length; i++) {
        const c = columns[i]!;
        const v = row[i] ?? null;
        if (v === null && !c.nullable) throw new TypeError(`column ${c.name} is not nullable, got null`);
        line += (i === 0 ? "" : ",") + csvCell(v, c);
      }
      chunk += line + "\n";
      if (chunk.length >= FLUSH_CHARS) flush();
    },
    finish: flush,
  });
}

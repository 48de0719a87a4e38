/**
 * The files source: CSV (with a header row), NDJSON and JSON-array files. The entity comes from
 * `--entity` or from the file name (`transactions.csv`, `sessions.ndjson`). Each record becomes a
 * JSON message whose position is its 1-based index in the file, so ingesting a file twice is a no-op.
 */
import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { basename, extname, resolve } from "node:path";
import { createInterface } from "node:readline";
import type { Observable } from "rxjs";
import { parse as parseCsv } from "csv-parse";
import type { SourceMessage } from "../types.js";
import { ENTITIES } from "../types.js";
import { SourceError } from "../errors.js";
import { pulled, type PullOptions } from "./pulled.js";

export type FileFormat = "csv" | "ndjson" | "json";

export interface FileSourceOptions {
  /** Entity of every record; default: from the file name. */
  readonly entity?: string;
  /** Skip records up to and including this index (what bronze already holds). */
  readonly startAfter?: (origin: string) => number;
}

const encoder = new TextEncoder();

/** The format a file name implies. */
export function formatOf(file: string): FileFormat {
  const ext = extname(file).toLowerCase();
  if (ext === ".csv") return "csv";
  if (ext === ".ndjson" || ext === ".jsonl") return "ndjson";
  if (ext === ".json") return "json";
  throw new SourceError(`${file}: unsupported file type "${ext}" (use .csv, .ndjson, .jsonl or .json)`);
}

/** The entity a file name implies: `transactions.csv` → `transactions`, `sessions-2026.ndjson` → `sessions`. */
export function entityFromFileName(file: string): string | null {
  const stem = basename(file).toLowerCase();
  return ENTITIES.find((e) => stem.startsWith(e)) ?? null;
}

/** The origin name bronze records a file's records under. */
export function fileOrigin(file: string): string {
  return `file:${resolve(file)}`;
}

async function* records(file: string, format: FileFormat): AsyncGenerator<Uint8Array> {
  if (format === "csv") {
    const parser = createReadStream(file).pipe(parseCsv({ columns: true, bom: true, skip_empty_lines: true, trim: true }));
    for await (const row of parser) yield encoder.encode(JSON.stringify(row));
  } else if (format === "ndjson") {
    const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
    for await (const line of lines) if (line.trim() !== "") yield encoder.encode(line);
  } else {
    const value: unknown = JSON.parse(await readFile(file, "utf8"));
    if (!Array.isArray(value)) throw new SourceError(`${file}: expected a JSON array of records`);
    for (const item of value) yield encoder.encode(JSON.stringify(item));
  }
}

/** Counts the records in files (for progress totals): CSV rows, non-blank NDJSON lines, array items. */
export async function countRecords(files: readonly string[]): Promise<number> {
  let total = 0;
  for (const file of files) {
    const format = formatOf(file);
    if (format === "json") {
      const value: unknown = JSON.parse(await readFile(file, "utf8"));
      total += Array.isArray(value) ? value.length : 0;
      continue;
    }
    const lines = await countNonBlankLines(file);
    total += format === "csv" ? Math.max(lines - 1, 0) : lines;
  }
  return total;
}

/**
 * Lines holding anything but ASCII whitespace, counted on the raw bytes: the count runs beside the
 * ingest itself, and making a string of every line would double the garbage the ingest makes.
 */
async function countNonBlankLines(file: string): Promise<number> {
  let lines = 0;
  let content = false;
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (b === 0x0a) {
        if (content) lines++;
        content = false;
      } else if (b !== 0x20 && b !== 0x09 && b !== 0x0d && b !== 0x0b && b !== 0x0c) {
        content = true;
      }
    }
  }
  return content ? lines + 1 : lines;
}

/** Reads files one after another as source messages (pull-based: the consumer sets the pace). */
export async function* fileMessages(files: readonly string[], options: FileSourceOptions = {}): AsyncGenerator<SourceMessage> {
  for (const file of files) {
    const format = formatOf(file);
    const entity = options.entity ?? entityFromFileName(file);
    if (entity === null) {
      throw new SourceError(`${file}: cannot tell the entity from the file name; pass --entity (one of ${ENTITIES.join(", ")})`);
    }
    try {
      await stat(file);
    } catch (err) {
      throw new SourceError(`${file}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message}`);
    }
    const origin = fileOrigin(file);
    const skip = options.startAfter?.(origin) ?? 0;
    let index = 0;
    try {
      for await (const data of records(file, format)) {
        index++;
        if (index <= skip) continue;
        yield {
          origin,
          originSeq: index,
          subject: `tributary.${entity}`,
          data,
          receivedAt: Date.now(),
          publishedAt: null,
          contentType: "application/json",
          msgId: null,
        };
      }
    } catch (err) {
      if (err instanceof SourceError) throw err;
      throw new SourceError(`${file}: ${(err as Error).message}`, { cause: err });
    }
  }
}

/**
 * The files source as an Observable, pulled: with `credit`, each chunk of records waits until the
 * commits have room for it, so reading a file of any size holds a bounded number of records.
 *
 * @example
 * filesSource(["transactions.csv"], { credit }).subscribe(...)
 */
export function filesSource(files: readonly string[], options: FileSourceOptions & PullOptions = {}): Observable<SourceMessage> {
  return pulled(fileMessages(files, options), options);
}

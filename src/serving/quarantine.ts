/**
 * The quarantine as people read it: each rejected message with its reason, field, detail, subject
 * and receive time, beside its payload from bronze decoded (MessagePack or JSON) as JSON text.
 * `tributary quarantine` prints it; `tributary export --layer quarantine` writes the same payloads.
 * A SQL view cannot do this (silver's `quarantine_iso` has no payload): the payloads are in
 * another file, and SQLite cannot decode MessagePack.
 */
import { existsSync } from "node:fs";
import { Unpackr, type Options as UnpackrOptions } from "msgpackr";
import type { Statement } from "better-sqlite3";
import { layerPath, openLayer, type Database } from "../sinks/database.js";
import { BRONZE_MIGRATIONS } from "../sinks/bronze.js";
import { SILVER_MIGRATIONS } from "../sinks/silver.js";
import { isJsonPayload } from "../operators/decode.js";
import { formatTimestamp } from "../timestamps.js";
import { formatFeatures, type FeatureRow } from "../features.js";
import { REASONS } from "../types.js";
import { NoDataError } from "../errors.js";

// The decoder's options: 64-bit integers beyond 2^53 come back as BigInt, exact.
const unpackr = new Unpackr({ mapsAsObjects: true, useRecords: false, int64AsType: "auto" } as unknown as UnpackrOptions);
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A quarantined message's payload from bronze as JSON text, or null when it does not decode. */
export class PayloadReader {
  private readonly select: Statement;
  constructor(bronze: Database) {
    this.select = bronze.prepare("SELECT payload, content_type FROM messages WHERE seq = ?");
  }

  /** The payload of bronze's message `seq`: JSON as it was sent (trimmed), MessagePack as JSON; null when absent or undecodable. */
  json(seq: number | bigint): string | null {
    const m = this.select.get(seq) as { payload: Buffer; content_type: string | null } | undefined;
    if (!m) return null;
    try {
      if (isJsonPayload(m.payload, m.content_type)) {
        const text = utf8.decode(m.payload).trim();
        JSON.parse(text);
        return text;
      }
      return JSON.stringify(jsonValue(unpackr.unpack(m.payload), 0));
    } catch {
      // Not JSON, not MessagePack, or nested past what a reader could use: `detail` says why.
      return null;
    }
  }
}

/** A decoded MessagePack value as JSON can hold it: big integers as strings, bytes as base64, times as ISO-8601, unset fields left out. */
function jsonValue(v: unknown, depth: number): unknown {
  if (depth > 64) throw new RangeError("payload nested too deep");
  if (typeof v === "bigint") return v.toString();
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64");
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : formatTimestamp(v.getTime());
  if (Array.isArray(v)) return v.map((x) => jsonValue(x, depth + 1));
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(k), jsonValue(x, depth + 1)]));
  // An unset field (MessagePack's `undefined` extension) is left out, as JSON.stringify leaves it.
  if (typeof v === "object" && v !== null) return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => [k, jsonValue(x, depth + 1)]));
  return v === undefined ? null : v;
}

/** One rejected message, with its payload decoded. */
export interface QuarantineEntry {
  readonly bronze_seq: number;
  /** When tributary received it, ISO-8601 UTC. */
  readonly received_at: string;
  /** The entity its subject named. */
  readonly entity: string;
  readonly subject: string;
  readonly reason: string;
  /** The field the reason is about, or null. */
  readonly field: string | null;
  readonly detail: string;
  /** The payload as JSON text, or null when it does not decode (`decode_error`, most `oversize`) or bronze no longer holds it. */
  readonly payload: string | null;
}

/** The columns of the quarantine listing, in output order. */
export const QUARANTINE_COLUMNS = ["bronze_seq", "received_at", "entity", "subject", "reason", "field", "detail", "payload"] as const;
export const QUARANTINE_FORMATS = ["table", "csv", "json"] as const;
export type QuarantineFormat = (typeof QUARANTINE_FORMATS)[number];

/** Reads silver's quarantine and bronze's payloads. Opens both read-only; safe beside a running daemon. */
export class QuarantineReader {
  private readonly silver: Database;
  private readonly bronze: Database | null;
  private readonly payloads: PayloadReader | null;

  /** @throws NoDataError when the data dir has no silver file. */
  constructor(dataDir: string, options: { busyTimeout?: number } = {}) {
    if (!existsSync(layerPath(dataDir, "silver"))) throw new NoDataError(`no silver data in ${dataDir}: nothing has been written to it yet`);
    const storage = { synchronous: "normal" as const, busyTimeout: options.busyTimeout ?? 5_000, readonly: true };
    this.silver = openLayer(dataDir, "silver", SILVER_MIGRATIONS, storage);
    // Without bronze (removed to save space) the entries are still worth reading, without payloads.
    this.bronze = existsSync(layerPath(dataDir, "bronze")) ? openLayer(dataDir, "bronze", BRONZE_MIGRATIONS, storage) : null;
    this.payloads = this.bronze && new PayloadReader(this.bronze);
  }

  /** The reasons a filter may name: the built-in codes, then any other (an embedder's) that the quarantine holds. */
  reasons(): string[] {
    const held = this.silver.prepare("SELECT DISTINCT reason FROM quarantine ORDER BY reason").pluck().all() as string[];
    return [...REASONS, ...held.filter((r) => !(REASONS as readonly string[]).includes(r))];
  }

  /**
   * The newest `limit` entries (highest bronze sequence first: the order tributary received them),
   * of one reason or all.
   *
   * @example
   * new QuarantineReader("./data").read({ reason: "invalid_type", limit: 10 })
   */
  read(options: { reason?: string; limit: number }): QuarantineEntry[] {
    const where = options.reason === undefined ? "" : "WHERE reason = ?";
    const rows = this.silver
      .prepare(`SELECT bronze_seq, received_at, entity, subject, reason, field, detail FROM quarantine ${where} ORDER BY bronze_seq DESC LIMIT ?`)
      .all(...(options.reason === undefined ? [] : [options.reason]), options.limit) as (Omit<QuarantineEntry, "received_at" | "payload"> & { received_at: number })[];
    return rows.map((r) => ({ ...r, received_at: formatTimestamp(r.received_at), payload: this.payloads?.json(r.bronze_seq) ?? null }));
  }

  close(): void {
    this.silver.close();
    this.bronze?.close();
  }
}

/** Payloads longer than this are shortened in the table format (csv and json print them whole). */
export const TABLE_PAYLOAD_CHARS = 120;

// A JSON text holds raw line breaks only between tokens: folding them keeps it the same JSON.
const JSON_LINE_BREAKS = /[ \t]*[\r\n][ \t\r\n]*/g;
// Characters a terminal would act on or that would break a table row: C0 and C1 controls, DEL,
// bidirectional controls, line and paragraph separators.
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;
const visible = (s: string) => s.replace(UNPRINTABLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);

function shorten(s: string, chars: number): string {
  const points = Array.from(s);
  return points.length <= chars ? s : points.slice(0, chars - 1).join("") + "…";
}

/**
 * Renders entries as an aligned table (control characters escaped, payloads shortened to
 * {@link TABLE_PAYLOAD_CHARS}), CSV (RFC 4180, payload as JSON text) or JSON (an array, one entry
 * a line, each payload as the JSON value itself).
 */
export function formatQuarantine(entries: readonly QuarantineEntry[], format: QuarantineFormat): string {
  const columns = [...QUARANTINE_COLUMNS];
  if (format === "json") {
    const lines = entries.map((e) => {
      const { payload, ...rest } = e;
      // The payload is JSON text already, spliced in as it is: parsing it again would round big integers.
      return `  ${JSON.stringify(rest).slice(0, -1)},"payload":${payload === null ? "null" : payload.replace(JSON_LINE_BREAKS, " ")}}`;
    });
    return lines.length === 0 ? "[]\n" : `[\n${lines.join(",\n")}\n]\n`;
  }
  if (format === "csv") return formatFeatures(entries as unknown as FeatureRow[], "csv", columns);
  const cells = entries.map((e) =>
    Object.fromEntries(
      columns.map((c) => {
        const v = e[c];
        if (typeof v !== "string") return [c, v];
        return [c, visible(c === "payload" ? shorten(v.replace(JSON_LINE_BREAKS, " "), TABLE_PAYLOAD_CHARS) : v)];
      }),
    ),
  );
  return formatFeatures(cells as unknown as FeatureRow[], "table", columns);
}

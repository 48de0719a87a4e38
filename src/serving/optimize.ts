/**
 * `tributary optimize`: the maintenance of every layer (`runtime/maintenance.ts`), then the
 * timing of the queries users run, so the effect is visible: the top 100 customers by spend, one
 * customer's features now and as of a past day, and the whole feature table.
 */
import { existsSync } from "node:fs";
import Database from "better-sqlite3";
import { LAYERS, optimizeLayer, type LayerReport } from "../runtime/maintenance.js";
import { WriterLock } from "../runtime/writer-lock.js";
import { layerPath } from "../sinks/database.js";
import { FeatureReader } from "../features.js";
import type { CustomFeature } from "../model/features.js";
import { DAY_MS } from "../timestamps.js";
import { TOP_SPEND_SQL } from "../sinks/gold-layout.js";
import { NoDataError } from "../errors.js";

export interface QueryTiming {
  readonly query: string;
  readonly ms: number;
  readonly rows: number;
}

export interface OptimizeReport {
  readonly layers: readonly LayerReport[];
  readonly queries: readonly QueryTiming[];
}

/**
 * Optimizes every layer of a data dir, then times the usual reads. With `full`, it first takes
 * the data dir's writer lock (so it refuses while a daemon runs) and converts older files.
 */
export function optimizeDataDir(dataDir: string, options: { full?: boolean; busyTimeout?: number; features?: readonly CustomFeature[] } = {}): OptimizeReport {
  for (const layer of LAYERS) {
    if (!existsSync(layerPath(dataDir, layer))) throw new NoDataError(`no ${layer} data in ${dataDir}: nothing has been written to it yet`);
  }
  const lock = options.full ? WriterLock.acquire(dataDir, "tributary optimize --full") : null;
  try {
    const layers = LAYERS.map((layer) => optimizeLayer(dataDir, layer, { full: options.full, busyTimeout: options.busyTimeout }));
    return { layers, queries: timeQueries(dataDir, options.features ?? []) };
  } finally {
    lock?.release();
  }
}

/**
 * The `n` customers with the highest lifetime spend (micros), highest first, ties by id: an index
 * read of the summaries plus the recent days (gold schema 7), not a sort of every bucket.
 *
 * @example
 * topCustomersBySpend(gold, 100)[0] // { customer_id: "1000042", total_spend_micros: 98765430000 }
 */
export function topCustomersBySpend(gold: Database.Database, n: number): { customer_id: string; total_spend_micros: number }[] {
  const summarised = (gold.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'customer_summary'").pluck().get() as number) > 0;
  // A gold an older tributary wrote, not yet migrated by a writer: a sort of every customer's totals.
  const sql = summarised ? TOP_SPEND_SQL : "SELECT customer_id, total_spend_micros FROM customer_features ORDER BY total_spend_micros DESC, customer_id LIMIT @n";
  return gold.prepare(sql).all({ n }) as { customer_id: string; total_spend_micros: number }[];
}

function timed<T extends unknown[] | object | null | undefined>(query: string, run: () => T): QueryTiming & { result: T } {
  const t0 = performance.now();
  const result = run();
  return { query, ms: performance.now() - t0, rows: Array.isArray(result) ? result.length : result ? 1 : 0, result };
}

function timeQueries(dataDir: string, features: readonly CustomFeature[]): QueryTiming[] {
  const gold = new Database(layerPath(dataDir, "gold"), { readonly: true, fileMustExist: true });
  let top: QueryTiming & { result: { customer_id: string }[] };
  try {
    // Read through the summaries' spend index and the recent days (topCustomersBySpend), not a sort of every bucket.
    top = timed("top 100 customers by total_spend (gold)", () => topCustomersBySpend(gold, 100));
  } finally {
    gold.close();
  }
  const reader = new FeatureReader(dataDir, { features });
  try {
    const now = Date.now();
    const who = top.result[0]?.customer_id;
    const out: QueryTiming[] = [strip(top)];
    if (who !== undefined) {
      out.push(strip(timed(`features of ${who} now`, () => reader.compute(now, who))));
      out.push(strip(timed(`features of ${who} as of 30 days ago`, () => reader.compute(now - 30 * DAY_MS, who))));
    }
    out.push(strip(timed("the full feature table now", () => reader.compute(now))));
    return out;
  } finally {
    reader.close();
  }
}

const strip = ({ query, ms, rows }: QueryTiming): QueryTiming => ({ query, ms, rows });

const mib = (bytes: number) => (bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(0)} KiB` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`);

/** The report as a table: each file's size before and after, then the query timings. */
export function formatOptimizeReport(r: OptimizeReport): string {
  const rows = [
    ["layer", "before", "after", "free pages before", "after", "vacuum", "WAL truncated", "ms"],
    ...r.layers.map((l) => [l.layer, mib(l.bytesBefore), mib(l.bytesAfter), String(l.freePagesBefore), String(l.freePagesAfter), l.autoVacuum, l.walTruncated ? "yes" : "no (a reader)", l.ms.toFixed(0)]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const table = rows.map((row) => row.map((v, i) => v.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
  const older = r.layers.filter((l) => l.autoVacuum !== "incremental").map((l) => l.layer);
  const note = older.length ? `\n${older.join(", ")}: from before incremental vacuum; stop the daemon and run optimize --full once to return freed pages\n` : "";
  const folded = r.layers.find((l) => l.folded !== null)?.folded;
  const fold = folded === undefined || folded === null ? "" : `\ngold: compaction brought ${folded.toLocaleString("en-US")} summaries up to date\n`;
  const queries = r.queries.map((q) => `  ${q.query}: ${q.ms.toFixed(1)} ms (${q.rows} rows)`).join("\n");
  return `${table}\n${note}${fold}\nqueries:\n${queries}\n`;
}

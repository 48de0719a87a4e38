/**
 * Storage maintenance, Delta's OPTIMIZE and VACUUM in SQLite terms: WAL checkpoints that truncate
 * the log, incremental vacuum that returns freed pages (retention's deletes, for one) to the file
 * system, and fresh planner statistics. Every step is a short transaction of its own, so it is
 * safe beside a running daemon (its commits wait at most one step); only the conversion of an
 * older file to incremental vacuum (`full`) rewrites a file, and needs the daemon stopped.
 */
import { existsSync, statSync } from "node:fs";
import Database from "better-sqlite3";
import { layerPath, type Layer } from "../sinks/database.js";
import { GoldFolder } from "../sinks/gold-layout.js";

export const LAYERS: readonly Layer[] = ["bronze", "silver", "gold"];

/** Pages per incremental-vacuum step (4 MiB at the default page size). */
const VACUUM_STEP_PAGES = 1_024;

export interface LayerReport {
  readonly layer: Layer;
  /** Bytes of the file plus its WAL, before and after. */
  readonly bytesBefore: number;
  readonly bytesAfter: number;
  readonly freePagesBefore: number;
  readonly freePagesAfter: number;
  /** `incremental` once the file returns freed pages; `none` for an older file not yet converted. */
  readonly autoVacuum: "none" | "full" | "incremental";
  /** False when a reader kept the WAL from being truncated (it is truncated at a later run). */
  readonly walTruncated: boolean;
  /** Gold: summaries its compaction brought up to date (null for the other layers). */
  readonly folded: number | null;
  readonly ms: number;
}

/** A layer file's size with its WAL, in bytes (0 when absent). */
export function layerBytes(dataDir: string, layer: Layer): number {
  const file = layerPath(dataDir, layer);
  const size = (f: string) => (existsSync(f) ? statSync(f).size : 0);
  return size(file) + size(`${file}-wal`);
}

const AUTO_VACUUM = ["none", "full", "incremental"] as const;

/**
 * One round of the incremental parts on an open connection: at most `maxSteps` vacuum steps,
 * then a passive checkpoint. Returns the pages returned. The daemon runs this every
 * `storage.optimizeEvery`.
 */
export function vacuumSteps(db: Database.Database, maxSteps = 4): number {
  if (Number(db.pragma("auto_vacuum", { simple: true })) !== 2) return 0;
  let freed = 0;
  for (let i = 0; i < maxSteps; i++) {
    const free = Number(db.pragma("freelist_count", { simple: true }));
    if (free === 0) break;
    db.pragma(`incremental_vacuum(${Math.min(free, VACUUM_STEP_PAGES)})`);
    freed += Math.min(free, VACUUM_STEP_PAGES);
  }
  return freed;
}

/** How often the daemon looks whether a fold of gold's recent days is due. */
const FOLD_CHECK_MS = 1_000;
/**
 * After each fold step the fold waits this many times as long as the step took: a fold is due
 * once a month of days has gathered and nothing waits for it, so it takes at most a quarter of a
 * core, and the commits keep the CPU they need (a fold at half a core doubled p99 publish → gold
 * in one of three live runs at 50% load, where the bench's compressed clock folds every few seconds).
 */
const FOLD_IDLE_RATIO = 3;

/**
 * Folds gold's recent days into its history whenever a fold is due (see `sinks/gold-layout.ts`),
 * one chunk at a time on `db`, and leaves the write lock (and the CPU) to the commits between
 * chunks for three times as long as each took. A busy file is tried again at the next check; other failures go to `onError`.
 * `pauseMs` (a test's fault delay) waits that long after each of the fold's transactions, so a
 * test can kill the process while a fold is half done.
 */
export function foldInBackground(db: Database.Database, onError: (message: string) => void = () => undefined, pauseMs = 0): { stop(): void } {
  const folder = new GoldFolder(db);
  let timer: NodeJS.Timeout | null = null;
  let stopped = false;
  let folding = false;
  const next = () => {
    if (stopped) return;
    let wait = FOLD_CHECK_MS;
    try {
      if (!folding) {
        folding = folder.begin();
        if (folding) wait = pauseMs;
      } else {
        const s = folder.move();
        folding = s.more;
        if (folding) wait = Math.max(5, Math.ceil(s.ms * FOLD_IDLE_RATIO), pauseMs);
      }
    } catch (err) {
      if (!/busy|locked/i.test((err as Error).message)) onError((err as Error).message);
    }
    timer = setTimeout(next, wait);
    timer.unref();
  };
  timer = setTimeout(next, FOLD_CHECK_MS);
  timer.unref();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}

/**
 * Optimizes one layer file. `full` first converts a file without incremental vacuum (a VACUUM,
 * which rewrites it: the caller must hold the data dir's writer lock).
 */
export function optimizeLayer(dataDir: string, layer: Layer, options: { full?: boolean; busyTimeout?: number } = {}): LayerReport {
  const started = performance.now();
  const bytesBefore = layerBytes(dataDir, layer);
  const db = new Database(layerPath(dataDir, layer), { fileMustExist: true, timeout: options.busyTimeout ?? 10_000 });
  try {
    const freePagesBefore = Number(db.pragma("freelist_count", { simple: true }));
    // Gold's compaction: every day that can be summed into the customers' summaries is.
    const folded = layer === "gold" && GoldFolder.applies(db) ? new GoldFolder(db).run({ force: true }) : null;
    if (options.full && Number(db.pragma("auto_vacuum", { simple: true })) !== 2) {
      db.pragma("auto_vacuum = INCREMENTAL");
      db.exec("VACUUM");
    }
    while (vacuumSteps(db, 16) > 0) {
      // Each step is its own short write transaction.
    }
    // Statistics for the planner, bounded so that a large table costs no long lock.
    db.pragma("analysis_limit = 1000");
    db.exec("ANALYZE");
    db.pragma("optimize");
    // TRUNCATE holds new writers while it waits for readers: a daemon's commits would wait the
    // whole busy timeout. Waiting 100 ms at most keeps the promise that a commit waits one step.
    db.pragma(`busy_timeout = ${options.full ? (options.busyTimeout ?? 10_000) : 100}`);
    const [busy] = db.pragma("wal_checkpoint(TRUNCATE)", { simple: false }) as { busy: number }[];
    const autoVacuum = AUTO_VACUUM[Number(db.pragma("auto_vacuum", { simple: true }))] ?? "none";
    const freePagesAfter = Number(db.pragma("freelist_count", { simple: true }));
    return {
      layer,
      bytesBefore,
      bytesAfter: layerBytes(dataDir, layer),
      freePagesBefore,
      freePagesAfter,
      autoVacuum,
      walTruncated: busy?.busy === 0,
      folded,
      ms: performance.now() - started,
    };
  } finally {
    db.close();
  }
}

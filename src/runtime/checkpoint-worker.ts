/**
 * The WAL checkpointer: a worker thread that copies committed WAL frames into the layer files
 * every few hundred milliseconds (`PRAGMA wal_checkpoint(PASSIVE)`, which never blocks a writer).
 * Without it, the commit that crosses `wal_autocheckpoint` does the copy itself, and every batch
 * queued behind it waits: tens of milliseconds of tail latency per checkpoint. It also runs
 * retention (`retention.ts`) between checkpoints, in small batches, so no commit waits for it.
 */
import Database from "better-sqlite3";
import { parentPort, workerData } from "node:worker_threads";
import { Retention, type RetentionOptions } from "./retention.js";
import type { EntityDefinition } from "../model/entities.js";
import { foldInBackground, vacuumSteps } from "./maintenance.js";

const port = parentPort!;
const { files, intervalMs, busyTimeout, retention, optimizeEveryMs, entities, foldDelayMs } = workerData as {
  /** bronze, silver, gold */
  files: [string, string, string];
  intervalMs: number;
  busyTimeout: number;
  retention: RetentionOptions;
  /** Every this many ms, the incremental parts of `optimize` (0: never). */
  optimizeEveryMs: number;
  /** The entities silver keeps (silver retention prunes their tables); the built-in ones when absent. */
  entities: EntityDefinition[] | undefined;
  /** A test's fault delay after each step of gold's compaction (0: none). */
  foldDelayMs: number;
};
const dbs = files.map((f) => {
  const db = new Database(f, { fileMustExist: true, timeout: busyTimeout });
  // This connection writes no data but retention's deletes; it checkpoints.
  db.pragma("wal_autocheckpoint = 0");
  return db;
});
// On this thread blocking is fine: silver's batches leave the write lock to the committer between them.
const sleeper = new Int32Array(new SharedArrayBuffer(4));
const pruner = new Retention(dbs[0]!, dbs[1]!, dbs[2]!, retention, entities, (ms) => void Atomics.wait(sleeper, 0, 0, ms));
// Gold's compaction: recent days folded into the history when due, between the commits.
const folding = foldInBackground(dbs[2]!, (error) => port.postMessage({ type: "fold_failed", error }), foldDelayMs);
let optimizeAt = optimizeEveryMs > 0 ? Date.now() + optimizeEveryMs : Number.POSITIVE_INFINITY;

/** The incremental parts of `tributary optimize`: freed pages back to the file system, planner statistics. */
function maintain(): void {
  optimizeAt = Date.now() + optimizeEveryMs;
  for (const db of dbs) {
    try {
      vacuumSteps(db, 16);
      db.pragma("optimize");
    } catch {
      // Busy: the next round.
    }
  }
}

const timer = setInterval(() => {
  if (pruner.due(Date.now())) {
    try {
      const deleted = pruner.round();
      if (deleted > 0) port.postMessage({ type: "pruned", deleted });
    } catch (err) {
      // A busy bronze: the next round tries again. Anything else is worth a log line.
      if (!/busy|locked/i.test((err as Error).message)) port.postMessage({ type: "prune_failed", error: (err as Error).message });
    }
  }
  if (Date.now() >= optimizeAt) maintain();
  for (const db of dbs) {
    try {
      db.pragma("wal_checkpoint(PASSIVE)");
    } catch {
      // Busy or out of space: the writer's own autocheckpoint remains the fallback.
    }
  }
}, intervalMs);

port.on("message", (m: { type: "close" }) => {
  if (m.type !== "close") return;
  clearInterval(timer);
  folding.stop();
  for (const db of dbs) db.close();
  port.close();
});

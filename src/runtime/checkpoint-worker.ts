/**
 * The WAL checkpointer: a worker thread that copies committed WAL frames into the layer files
 * every few hundred milliseconds (`PRAGMA wal_checkpoint(PASSIVE)`, which never blocks a writer).
 * Without it, the commit that crosses `wal_autocheckpoint` does the copy itself, and every batch
 * queued behind it waits: tens of milliseconds of tail latency per checkpoint.
 */
import Database from "better-sqlite3";
import { parentPort, workerData } from "node:worker_threads";

const port = parentPort!;
const { files, intervalMs, busyTimeout } = workerData as { files: string[]; intervalMs: number; busyTimeout: number };
const dbs = files.map((f) => {
  const db = new Database(f, { fileMustExist: true, timeout: busyTimeout });
  // This connection never writes data; it only checkpoints.
  db.pragma("wal_autocheckpoint = 0");
  return db;
});

const timer = setInterval(() => {
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
  for (const db of dbs) db.close();
  port.close();
});

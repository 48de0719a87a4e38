/**
 * One writer per data directory. The lock is an exclusive SQLite transaction held open on
 * `<dataDir>/writer.lock` for the writer's lifetime: an OS file lock, so it goes away with its
 * holder however the holder ends, `kill -9` and power loss included, and a restart is never
 * blocked by a stale lock. `writer.json` beside it names the holder for the error a second
 * writer gets. Readers never take it.
 */
import Database from "better-sqlite3";
import { chmodSync, closeSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import { DataDirLockedError, StorageError } from "../errors.js";
import { DATA_FILE_MODE, ensureDataDir } from "../sinks/database.js";

/** Who holds a data directory's writer lock. */
export interface LockHolder {
  readonly pid: number;
  readonly host: string;
  /** ISO-8601 time the lock was taken. */
  readonly since: string;
  /** What holds it, e.g. `tributary run`. */
  readonly command: string;
}

/** Files of the lock, in the data directory. */
export const LOCK_FILE = "writer.lock";
export const HOLDER_FILE = "writer.json";

/** The holder a data directory's `writer.json` names, or null. Only meaningful while the lock is held. */
export function readLockHolder(dataDir: string): LockHolder | null {
  try {
    const h = JSON.parse(readFileSync(join(resolve(dataDir), HOLDER_FILE), "utf8")) as LockHolder;
    return typeof h.pid === "number" ? h : null;
  } catch {
    return null;
  }
}

/** The exclusive right to write a data directory, until {@link release}. */
export class WriterLock {
  private constructor(
    private readonly db: Database.Database,
    private readonly dir: string,
  ) {}

  /**
   * Takes the data directory's writer lock at once, or throws {@link DataDirLockedError} naming the
   * live holder (pid, host, since when). Creates the data directory when missing.
   */
  static acquire(dataDir: string, command: string): WriterLock {
    const dir = resolve(dataDir);
    const file = join(dir, LOCK_FILE);
    let db: Database.Database;
    try {
      ensureDataDir(dir);
      createPrivate(file);
      db = new Database(file, { timeout: 0 });
    } catch (err) {
      throw new StorageError(`cannot open ${file}: ${(err as Error).message}`, { cause: err });
    }
    try {
      db.pragma("busy_timeout = 0");
      // No journal file: the transaction never writes, it only holds the lock.
      db.pragma("journal_mode = MEMORY");
      db.exec("BEGIN EXCLUSIVE");
    } catch (err) {
      db.close();
      if ((err as { code?: string }).code === "SQLITE_BUSY") {
        const h = readLockHolder(dir);
        const who = h ? `${h.command} (pid ${h.pid} on ${h.host}, since ${h.since})` : "another process";
        throw new DataDirLockedError(`${dir} is being written by ${who}; stop it first, or use another data dir`);
      }
      throw new StorageError(`cannot lock ${file}: ${(err as Error).message}`, { cause: err });
    }
    const holder: LockHolder = { pid: process.pid, host: hostname(), since: new Date().toISOString(), command };
    try {
      writeFileSync(join(dir, HOLDER_FILE), JSON.stringify(holder) + "\n", { mode: DATA_FILE_MODE });
      chmodSync(join(dir, HOLDER_FILE), DATA_FILE_MODE);
    } catch (err) {
      db.close();
      throw new StorageError(`cannot write ${join(dir, HOLDER_FILE)}: ${(err as Error).message}`, { cause: err });
    }
    return new WriterLock(db, dir);
  }

  /** Gives the lock up. Safe to call more than once. */
  release(): void {
    if (!this.db.open) return;
    if (readLockHolder(this.dir)?.pid === process.pid) rmSync(join(this.dir, HOLDER_FILE), { force: true });
    this.db.close();
  }
}

/**
 * Creates the lock file owner-only when missing. An existing one is only chmod-ed, never opened
 * here: closing any descriptor of a file drops this process's POSIX locks on it, and another
 * topology in this process may hold it.
 */
function createPrivate(file: string): void {
  try {
    closeSync(openSync(file, "wx", DATA_FILE_MODE));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  chmodSync(file, DATA_FILE_MODE);
}

/**
 * Opening a layer's SQLite file: pragmas set explicitly and read back, an application id that
 * marks the file as tributary's, and numbered migrations tracked by `PRAGMA user_version`.
 */
import Database from "better-sqlite3";
import { chmodSync, closeSync, existsSync, fchmodSync, mkdirSync, openSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { StorageError } from "../errors.js";

export type Database = Database.Database;
export type Layer = "bronze" | "silver" | "gold";

/** `PRAGMA application_id` of tributary files: "TRIB" in ASCII. */
export const APPLICATION_ID = 0x54524942;

export interface StorageOptions {
  /** `normal` survives process crashes; `full` also survives power loss. */
  readonly synchronous: "normal" | "full";
  /** Milliseconds to wait for another writer's lock. */
  readonly busyTimeout: number;
  /** Open read-only (for queries from another process). */
  readonly readonly?: boolean;
  /** Page cache of this connection in KiB (default {@link DEFAULT_CACHE_KIB}). */
  readonly cacheKib?: number;
}

/** Page cache of a connection that writes silver or gold, whose keys arrive in random order. */
export const DEFAULT_CACHE_KIB = 16_384;
/**
 * Page cache of bronze's writer and of connections that only look things up. Bronze is append-only:
 * its writer touches the right edge of its B-trees, and a larger cache only adds resident memory.
 */
export const SMALL_CACHE_KIB = 4_096;

/**
 * Storage options for silver and gold. They always run at `synchronous = NORMAL`: after a power
 * cut they can lose only their last commits, together with the checkpoints in the same
 * transactions, and catch up from bronze at the next start. Only bronze, whose commit the acks
 * wait for, needs `storage.synchronous`.
 */
export function derivedLayerStorage(storage: StorageOptions): StorageOptions {
  return { ...storage, synchronous: "normal" };
}

/** Mode of a data directory tributary creates: only its owner may list or enter it. */
export const DATA_DIR_MODE = 0o700;
/** Mode of tributary's SQLite files and their `-wal` and `-shm`: only the owner may read them. */
export const DATA_FILE_MODE = 0o600;

/**
 * Creates the data directory (and missing parents) as {@link DATA_DIR_MODE}, whatever the umask.
 * A directory that already exists keeps its mode: its owner may have chosen it.
 */
export function ensureDataDir(dataDir: string): void {
  const dir = resolve(dataDir);
  // The mode passed to mkdir is masked by the umask, so set it again on every directory created.
  const first = mkdirSync(dir, { recursive: true, mode: DATA_DIR_MODE });
  if (first === undefined) return;
  // `first` is the outermost directory mkdir created; every one from `dir` up to it is new.
  for (let d = dir; ; d = dirname(d)) {
    chmodSync(d, DATA_DIR_MODE);
    if (d === resolve(first) || dirname(d) === d) break;
  }
}

/**
 * Makes a layer file {@link DATA_FILE_MODE} before SQLite opens it. A missing file is created
 * empty with that mode (an empty file is an empty database), so it is never readable by others,
 * not even for an instant, and SQLite creates the `-wal` and `-shm` with the database's mode.
 * Existing files (an older tributary's, or a `-wal` left by a crash) are set to it too.
 */
function restrictLayerFile(file: string): void {
  try {
    const fd = openSync(file, "wx", DATA_FILE_MODE);
    try {
      fchmodSync(fd, DATA_FILE_MODE);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    chmodSync(file, DATA_FILE_MODE);
  }
  for (const suffix of ["-wal", "-shm"]) {
    try {
      chmodSync(file + suffix, DATA_FILE_MODE);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
}

/** The file of a layer in a data directory: `<dataDir>/<layer>.sqlite`. */
export function layerPath(dataDir: string, layer: Layer): string {
  return join(resolve(dataDir), `${layer}.sqlite`);
}

/**
 * Opens (creating when missing) one layer's database and brings its schema up to date.
 * `migrations[i]` takes the schema from version i to i + 1.
 *
 * @throws StorageError when the file is not tributary's, was written by a newer version, or the
 *   pragmas cannot be set.
 */
export function openLayer(dataDir: string, layer: Layer, migrations: readonly string[], options: StorageOptions): Database {
  const file = layerPath(dataDir, layer);
  let db: Database;
  try {
    if (!options.readonly) {
      ensureDataDir(dataDir);
      restrictLayerFile(file);
    }
    db = new Database(file, { readonly: options.readonly ?? false, fileMustExist: options.readonly ?? false, timeout: options.busyTimeout });
  } catch (err) {
    throw new StorageError(`cannot open ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeout))}`);
    checkIdentity(db, file, layer, migrations.length);
    if (!options.readonly) {
      // A new file keeps its freed pages for incremental vacuum (`tributary optimize` and the
      // daemon's own maintenance return them to the file system); it can only be set before the
      // first table. An older file is converted by `tributary optimize --full`.
      if (Number(db.pragma("user_version", { simple: true })) === 0 && Number(db.pragma("page_count", { simple: true })) <= 1) {
        db.pragma("auto_vacuum = INCREMENTAL");
      }
      const mode = db.pragma("journal_mode = WAL", { simple: true });
      if (String(mode).toLowerCase() !== "wal") throw new StorageError(`${file}: could not switch to WAL (journal_mode is ${mode})`);
      migrate(db, migrations);
    }
    // better-sqlite3 leaves WAL databases at NORMAL unless told otherwise; set and verify.
    db.pragma(`synchronous = ${options.synchronous.toUpperCase()}`);
    const sync = Number(db.pragma("synchronous", { simple: true }));
    const wanted = options.synchronous === "full" ? 2 : 1;
    if (sync !== wanted) throw new StorageError(`${file}: synchronous is ${sync}, expected ${wanted}`);
    db.pragma("foreign_keys = OFF");
    db.pragma("temp_store = MEMORY");
    db.pragma(`cache_size = -${Math.max(64, Math.floor(options.cacheKib ?? DEFAULT_CACHE_KIB))}`);
    // Checkpoint the WAL every ~40 MB instead of every ~4 MB: pages rewritten by many batches
    // (index pages, gold buckets) are copied into the database once per checkpoint, not per batch.
    if (!options.readonly) db.pragma("wal_autocheckpoint = 10000");
    return db;
  } catch (err) {
    db.close();
    if (err instanceof StorageError) throw err;
    throw new StorageError(`cannot prepare ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Checks every existing layer file of a data directory before any of them is opened for writing,
 * so a foreign or newer file stops the run before anything is written.
 */
export function preflight(dataDir: string, known: Readonly<Record<Layer, number>>): void {
  for (const layer of Object.keys(known) as Layer[]) {
    const file = layerPath(dataDir, layer);
    if (!existsSync(file)) continue;
    let db: Database;
    try {
      db = new Database(file, { readonly: true, fileMustExist: true });
    } catch (err) {
      throw new StorageError(`cannot open ${file}: ${(err as Error).message}`, { cause: err });
    }
    try {
      checkIdentity(db, file, layer, known[layer]);
    } catch (err) {
      if (err instanceof StorageError) throw err;
      throw new StorageError(`${file} is not a readable SQLite database: ${(err as Error).message}`, { cause: err });
    } finally {
      db.close();
    }
  }
}

function checkIdentity(db: Database, file: string, layer: Layer, known: number): void {
  const appId = Number(db.pragma("application_id", { simple: true }));
  const version = Number(db.pragma("user_version", { simple: true }));
  const tables = (db.prepare("SELECT count(*) AS n FROM sqlite_master").get() as { n: number }).n;
  if (appId === 0 && version === 0 && tables === 0) return; // new, empty file
  if (appId !== APPLICATION_ID) {
    throw new StorageError(`${file} is not a tributary ${layer} database (application_id ${appId}); refusing to write to it`);
  }
  if (version > known) {
    throw new StorageError(
      `${file} has schema version ${version}, newer than this tributary understands (${known}); upgrade tributary`,
    );
  }
}

function migrate(db: Database, migrations: readonly string[]): void {
  const version = Number(db.pragma("user_version", { simple: true }));
  if (version >= migrations.length) return;
  db.transaction(() => {
    for (let v = version; v < migrations.length; v++) db.exec(migrations[v]!);
    db.pragma(`application_id = ${APPLICATION_ID}`);
    db.pragma(`user_version = ${migrations.length}`);
  }).immediate();
}

/** Reads a layer's applied bronze position from its `checkpoint` table (0 when none). */
export function readPosition(db: Database, layer: Layer): number {
  const row = db.prepare("SELECT position FROM checkpoint WHERE layer = ?").get(layer) as { position: number } | undefined;
  return row?.position ?? 0;
}

/** SQL for the `checkpoint` table every layer keeps, committed with its data. */
export const CHECKPOINT_TABLE = `
CREATE TABLE checkpoint (
  layer TEXT PRIMARY KEY,
  position INTEGER NOT NULL
) WITHOUT ROWID;`;

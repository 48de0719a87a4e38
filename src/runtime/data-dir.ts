/**
 * The data dir as the topology's own thread opens it: the writer lock first, so a second writer
 * stops before it touches a file or a port; then the schema preflight and the three layers. This
 * thread writes only while recovering, and afterwards only looks up positions and segments, so
 * its connections get small page caches; the commit thread opens its own for writing.
 */
import type { Config } from "../config.js";
import type { Logger } from "../log.js";
import { BRONZE_MIGRATIONS, BronzeStore } from "../sinks/bronze.js";
import { SILVER_MIGRATIONS, SilverStore } from "../sinks/silver.js";
import { GOLD_MIGRATIONS, GoldStore } from "../sinks/gold.js";
import { SMALL_CACHE_KIB, derivedLayerStorage, preflight } from "../sinks/database.js";
import { WriterLock } from "./writer-lock.js";
import type { EntityDefinition } from "../model/entities.js";

/** The writer lock and the layers, open on this thread. */
export class LocalDataDir {
  private goldOpen = true;

  constructor(
    readonly lock: WriterLock,
    readonly bronze: BronzeStore,
    readonly silver: SilverStore,
    readonly gold: GoldStore,
  ) {}

  /** Once the committer owns the writes, gold closes; bronze and silver stay open to read positions and segments. */
  closeGold(): void {
    if (!this.goldOpen) return;
    this.goldOpen = false;
    this.gold.close();
  }

  /** Closes the layers and releases the lock. */
  close(): void {
    this.bronze.close();
    this.silver.close();
    this.closeGold();
    this.lock.release();
  }
}

/**
 * Locks the data dir and opens its layers. When anything fails, what was opened is closed and
 * the lock released before the error is thrown.
 */
export function openDataDir(dir: string, storage: Config["storage"], holder: string, log: Logger, entities?: readonly EntityDefinition[]): LocalDataDir {
  const lock = WriterLock.acquire(dir, holder);
  const opened: { close(): void }[] = [];
  try {
    const schema = { bronze: BRONZE_MIGRATIONS.length, silver: SILVER_MIGRATIONS.length, gold: GOLD_MIGRATIONS.length };
    preflight(dir, schema);
    const small = { ...storage, cacheKib: SMALL_CACHE_KIB };
    const bronze = new BronzeStore(dir, small);
    opened.push(bronze);
    const silver = new SilverStore(dir, derivedLayerStorage(small), entities);
    opened.push(silver);
    const gold = new GoldStore(dir, derivedLayerStorage(small));
    log.info(
      { event: "storage_opened", dataDir: dir, journalMode: "wal", synchronous: { bronze: storage.synchronous, silver: "normal", gold: "normal" }, schema },
      "opened bronze, silver and gold",
    );
    return new LocalDataDir(lock, bronze, silver, gold);
  } catch (err) {
    for (const layer of opened) layer.close();
    lock.release();
    throw err;
  }
}

/** Dumps the silver and gold tables of a data directory, for comparing whole contents across runs. */
import Database from "better-sqlite3";
import { join } from "node:path";

const SILVER = ["customers", "transactions", "interactions", "events", "sessions", "quarantine", "duplicates", "accepted_counts", "checkpoint", "customer_history"];
const GOLD = ["customer_daily", "customer_profile", "customer_features", "checkpoint"];
/** Columns that hold wall-clock times of a particular run, not data. */
const VOLATILE = new Set(["received_at"]);

/**
 * `alsoVolatile` names columns to leave out as well, such as `available_at` when two runs
 * received the same generated records at different times.
 */
export function dumpLayers(dataDir: string, alsoVolatile: readonly string[] = []): Record<string, unknown[]> {
  const volatile = new Set([...VOLATILE, ...alsoVolatile]);
  const out: Record<string, unknown[]> = {};
  for (const [layer, tables] of [["silver", SILVER], ["gold", GOLD]] as const) {
    const db = new Database(join(dataDir, `${layer}.sqlite`), { readonly: true });
    try {
      for (const t of tables) {
        const rows = db.prepare(`SELECT * FROM ${t} ORDER BY 1, 2`).all() as Record<string, unknown>[];
        out[`${layer}.${t}`] = rows.map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => !volatile.has(k))));
      }
    } finally {
      db.close();
    }
  }
  return out;
}

export function bronzeCount(dataDir: string): number {
  try {
    const db = new Database(join(dataDir, "bronze.sqlite"), { readonly: true, fileMustExist: true });
    try {
      return db.prepare("SELECT count(*) FROM messages").pluck().get() as number;
    } finally {
      db.close();
    }
  } catch {
    return 0;
  }
}

/** Messages bronze holds and those retention has pruned (zeros before bronze exists). */
export function bronzeRetention(dataDir: string): { held: number; pruned: number } {
  try {
    const db = new Database(join(dataDir, "bronze.sqlite"), { readonly: true, fileMustExist: true });
    try {
      const held = db.prepare("SELECT count(*) FROM messages").pluck().get() as number;
      const hasRetention = (db.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'retention'").pluck().get() as number) > 0;
      return { held, pruned: hasRetention ? (db.prepare("SELECT pruned FROM retention").pluck().get() as number) : 0 };
    } finally {
      db.close();
    }
  } catch {
    return { held: 0, pruned: 0 };
  }
}

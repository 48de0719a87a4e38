/**
 * Silver's primary key is the authority on duplicates: the in-memory window only hints. Real
 * SQLite files in a temp dir.
 */
import { afterEach, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SilverStore } from "../src/sinks/silver.js";
import type { Staged, TransactionRecord } from "../src/types.js";
import { sourceMessage } from "./unit/fixtures.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tx(id: string, amount: number): TransactionRecord {
  return { entity: "transactions", id, customer_id: "c1", eventAt: Date.UTC(2026, 2, 1), amount, currency: "USD", amount_base: amount, customer_segment: "retail" };
}
const staged = (status: "valid" | "duplicate", record: TransactionRecord, seq: number): Staged => ({
  msg: sourceMessage({ originSeq: seq }),
  entity: "transactions",
  outcome: { status, record },
});

describe("silver apply", () => {
  it("accepts a record the window called a duplicate when silver has never seen its id (a hash collision)", () => {
    const dir = mkdtempSync(join(tmpdir(), "trib-silver-"));
    dirs.push(dir);
    const silver = new SilverStore(dir, { synchronous: "normal", busyTimeout: 1000 });
    try {
      const r1 = silver.apply([{ staged: staged("valid", tx("t1", 10), 1), bronzeSeq: 1 }], 1);
      expect(r1.accepted.map((a) => a.record.id)).toEqual(["t1"]);
      const r2 = silver.apply(
        [
          { staged: staged("duplicate", tx("t2", 20), 2), bronzeSeq: 2 }, // the window was wrong: new id
          { staged: staged("duplicate", tx("t1", 99), 3), bronzeSeq: 3 }, // a real duplicate
          { staged: staged("valid", tx("t1", 98), 4), bronzeSeq: 4 }, // forgotten by the window: still a duplicate
        ],
        4,
      );
      expect(r2.accepted.map((a) => a.record.id)).toEqual(["t2"]);
      expect([...r2.duplicates]).toEqual([["transactions", 2]]);
      const rows = silver.db.prepare("SELECT transaction_id, amount FROM transactions ORDER BY transaction_id").all();
      expect(rows).toEqual([
        { transaction_id: "t1", amount: 10 },
        { transaction_id: "t2", amount: 20 },
      ]);
      expect(silver.db.prepare("SELECT bronze_seq FROM duplicates ORDER BY bronze_seq").pluck().all()).toEqual([3, 4]);
    } finally {
      silver.close();
    }
  });
});

/**
 * Silver's primary key is the authority on duplicates: the in-memory window only hints. Real
 * SQLite files in a temp dir.
 */
import { afterEach, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SILVER_MIGRATIONS, SilverStore } from "../src/sinks/silver.js";
import { BronzeStore } from "../src/sinks/bronze.js";
import { openLayer } from "../src/sinks/database.js";
import type { Staged, TransactionRecord } from "../src/types.js";
import { sourceMessage } from "./helpers/fixtures.js";

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

describe("silver migration 2: availability and profile history", () => {
  it("gives rows of an older silver their time from bronze and starts each customer's history at its profile", () => {
    const dir = mkdtempSync(join(tmpdir(), "trib-silver-"));
    dirs.push(dir);
    const storage = { synchronous: "normal" as const, busyTimeout: 1000 };
    const bronze = new BronzeStore(dir, storage);
    const published = Date.UTC(2026, 2, 2, 8);
    const received = Date.UTC(2026, 2, 2, 9);
    const seqs = bronze.append([
      { msg: sourceMessage({ originSeq: 1, publishedAt: published, receivedAt: received }) },
      { msg: sourceMessage({ originSeq: 2, publishedAt: null, receivedAt: received }) },
    ]);
    bronze.close();
    // A silver file as the previous version left it: migration 1 only.
    const old = openLayer(dir, "silver", SILVER_MIGRATIONS.slice(0, 1), storage);
    old.prepare("INSERT INTO transactions VALUES ('t1', 'c1', 5, 'USD', 5, 100, 'smb', ?)").run(seqs[0]);
    old.prepare("INSERT INTO customers VALUES ('c1', NULL, NULL, NULL, 'smb', ?)").run(seqs[1]);
    old.close();
    const silver = new SilverStore(dir, storage);
    try {
      expect(silver.db.prepare("SELECT transaction_id, available_at FROM transactions").all()).toEqual([{ transaction_id: "t1", available_at: published }]);
      expect(silver.db.prepare("SELECT customer_id, available_at FROM customers").all()).toEqual([{ customer_id: "c1", available_at: received }]);
      expect(silver.db.prepare("SELECT customer_id, bronze_seq, available_at, customer_segment FROM customer_history").all()).toEqual([
        { customer_id: "c1", bronze_seq: seqs[1], available_at: received, customer_segment: "smb" },
      ]);
      expect(silver.db.prepare("SELECT count(*) FROM pending_fill").pluck().get()).toBe(0);
      // New profiles are appended to the history, every one of them, with their availability.
      const profile = (segment: string, seq: number): Staged => ({
        msg: sourceMessage({ originSeq: 10 + seq, publishedAt: published + seq }),
        entity: "customers",
        outcome: { status: "valid", record: { entity: "customers", id: "c1", customer_id: "c1", eventAt: null, name: null, email: null, registration_at: null, customer_segment: segment } },
      });
      silver.apply([{ staged: profile("enterprise", 7), bronzeSeq: 7 }, { staged: profile("retail", 8), bronzeSeq: 8 }], 8);
      expect(silver.db.prepare("SELECT customer_segment, available_at FROM customer_history ORDER BY bronze_seq").all()).toEqual([
        { customer_segment: "smb", available_at: received },
        { customer_segment: "enterprise", available_at: published + 7 },
        { customer_segment: "retail", available_at: published + 8 },
      ]);
      expect(silver.db.prepare("SELECT customer_segment, available_at FROM customers").get()).toEqual({ customer_segment: "retail", available_at: published + 8 });
    } finally {
      silver.close();
    }
  });
});

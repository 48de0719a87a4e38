/**
 * The bulk reader of silver's integer columns against plain row-by-row reads of the same SQLite
 * table: every row once, in many chunks, customers looked up by range, and a refusal (false, so
 * the caller reads row by row) wherever the text of group_concat could not be read back exactly.
 */
import { describe, expect, it } from "vitest";
import { join } from "node:path";
import Database from "better-sqlite3";
import { CustomerIds, readIntegerColumns } from "../src/serving/bulk-read.js";
import { tempDirs } from "./helpers/tmp.js";

const tmp = tempDirs("bulk-read");

function table(rows: readonly (readonly [string, string, unknown, unknown])[]): Database.Database {
  const db = new Database(join(tmp(), "t.sqlite"));
  db.exec("CREATE TABLE t (id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, a INTEGER, b INTEGER, bronze_seq INTEGER NOT NULL) WITHOUT ROWID");
  const insert = db.prepare("INSERT INTO t VALUES (?, ?, ?, ?, ?)");
  db.transaction(() => rows.forEach(([id, c, a, b], i) => insert.run(id, c, a, b, i + 1)))();
  return db;
}

/** Everything the reader passed to its sink, row by row. */
function readAll(db: Database.Database, customers: CustomerIds, chunkRows: number, where = "", params: unknown[] = []) {
  const got: [number, number, number][] = [];
  let chunks = 0;
  const ok = readIntegerColumns(db, { table: "t", columns: ["a", "b"], where, params, chunkRows }, customers, (count, cust, [a, b]) => {
    chunks++;
    for (let i = 0; i < count; i++) got.push([cust[i]!, a![i]!, b![i]!]);
  });
  return { ok, got, chunks };
}

describe("readIntegerColumns", () => {
  it("reads every row once, in chunks of the primary key, with each row's customer index", () => {
    const ids = ["c1", "c2", "ünïcode", "😀 astral", "", "c10"];
    const rows: [string, string, unknown, unknown][] = [];
    for (let i = 0; i < 1_000; i++) {
      const a = i % 7 === 0 ? -i * 1_000_003 : 1_767_225_600_000 + i;
      // 16 and more digits: rounded as better-sqlite3 rounds an int64 into a double.
      const b = i % 50 === 0 ? 9_007_199_254_740_993n + BigInt(i) : i % 5;
      rows.push([`k${String(i).padStart(4, "0")}`, i % 9 === 0 ? "stranger" : ids[i % ids.length]!, a, b]);
    }
    const db = table(rows);
    const customers = new CustomerIds();
    for (const id of ids) customers.add(id);
    const { ok, got, chunks } = readAll(db, customers, 64, " AND bronze_seq <= ?", [900]);
    expect(ok).toBe(true);
    expect(chunks).toBeGreaterThan(10);
    const want = (db.prepare("SELECT customer_id, a, b FROM t WHERE bronze_seq <= 900 ORDER BY id").raw().all() as [string, number, number][]).map(([c, a, b]) => [customers.indexOf(c), a, b]);
    expect(got).toEqual(want);
    expect(got.filter(([c]) => c < 0)).toHaveLength(rows.slice(0, 900).filter(([, c]) => c === "stranger").length);
    // One chunk for a table smaller than a chunk, and none for an empty result.
    expect(readAll(db, customers, 5_000).chunks).toBe(1);
    expect(readAll(db, customers, 64, " AND bronze_seq < 0").chunks).toBe(0);
    db.close();
  });

  it("refuses a REAL, a NULL, or a customer id holding the separator, so that the caller reads row by row", () => {
    const customers = new CustomerIds();
    customers.add("c1");
    const base: [string, string, unknown, unknown][] = Array.from({ length: 100 }, (_, i) => [`k${String(i).padStart(3, "0")}`, "c1", i, i]);
    const cases: [string, [string, string, unknown, unknown]][] = [
      ["a REAL", ["k050x", "c1", 1.5, 1]],
      ["a REAL in another column", ["k050x", "c1", 2, 2.0000001]],
      ["a NULL", ["k050x", "c1", null, 1]],
      ["a separator in an id", ["k050x", "c\u001f1", 1, 1]],
    ];
    for (const [what, row] of cases) {
      const db = table([...base, row]);
      expect(readAll(db, customers, 16).ok, what).toBe(false);
      db.close();
    }
    const db = table(base);
    expect(readAll(db, customers, 16).ok).toBe(true);
    db.close();
  });
});

describe("CustomerIds", () => {
  it("finds each id by itself and by a range of a longer string, across growth", () => {
    const ids = new CustomerIds();
    const all = Array.from({ length: 5_000 }, (_, i) => (i % 3 === 0 ? `é${i}` : String(i * 7919)));
    all.forEach((id, k) => expect(ids.add(id)).toBe(k));
    expect(ids.add(all[42]!)).toBe(42);
    expect(ids.size).toBe(all.length);
    const indexes = all.map((_, k) => k);
    expect(all.map((id) => ids.indexOf(id))).toEqual(indexes);
    expect(indexes.map((k) => ids.id(k))).toEqual(all);
    expect(all.map((id) => ids.indexIn(`xx${id}yy`, 2, 2 + id.length))).toEqual(indexes);
    expect(ids.indexOf("nobody")).toBe(-1);
    expect(ids.indexOf(`${all[1]}x`)).toBe(-1);
    expect(ids.indexIn(all[1]!, 0, all[1]!.length - 1)).toBe(-1);
  });
});

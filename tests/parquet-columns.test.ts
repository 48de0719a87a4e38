/**
 * The column-wise Parquet writer against DuckDB and hyparquet as readers: every kind of column
 * values (typed numbers with NaN or a null mask, dictionary codes, cells), dictionary and PLAIN
 * chunks, exact 64-bit integers and timestamps past 2^53 microseconds, statistics, and the same
 * bytes as the row writer's files for readers (same schema, same types).
 */
import { describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parquetMetadata, parquetReadObjects } from "hyparquet";
import { writeParquetColumns, type ColumnValues } from "../src/serving/parquet-columns.js";
import type { ColumnSpec } from "../src/serving/output-file.js";
import { tempDirs } from "./helpers/tmp.js";
import { useDuckDB } from "./helpers/duckdb.js";

const tmp = tempDirs("parquet-columns");
const duckdb = useDuckDB();
const sha256 = (f: string) => createHash("sha256").update(readFileSync(f)).digest("hex");

describe("writeParquetColumns", () => {
  it("writes every kind of column values, read back exactly by DuckDB and hyparquet", async () => {
    const n = 300;
    const columns: ColumnSpec[] = [
      { name: "id", type: "long", nullable: false },
      { name: "count", type: "long", nullable: true },
      { name: "at", type: "datetime", nullable: true },
      { name: "x", type: "double", nullable: true },
      { name: "flag", type: "double", nullable: true },
      { name: "segment", type: "string", nullable: true },
      { name: "s", type: "string", nullable: true },
      { name: "big", type: "long", nullable: true },
      { name: "ok", type: "boolean", nullable: true },
    ];
    const ids = new Float64Array(n);
    const counts = new Float64Array(n);
    const at = new Float64Array(n);
    const atNulls = new Uint8Array(n);
    const x = new Float64Array(n);
    const flag = new Float64Array(n);
    const segment = new Int32Array(n);
    const names = ["smb", "mid_market", "enterprise ✓"];
    const s: (string | null)[] = [];
    const big: (bigint | number | null)[] = [];
    const ok: (boolean | null)[] = [];
    const want: Record<string, unknown>[] = [];
    for (let i = 0; i < n; i++) {
      ids[i] = 2 ** 53 - 1 - i * 7919;
      counts[i] = i % 11 === 0 ? Number.NaN : i % 5; // few distinct: a dictionary chunk
      // Far-future and pre-1970 times: microseconds past 2^53 and negative.
      at[i] = i % 3 === 0 ? -86_400_000 - i : i % 3 === 1 ? 8.64e15 - i : 1_767_225_600_000 + i * 1_000;
      atNulls[i] = i % 13 === 0 ? 1 : 0;
      x[i] = i % 7 === 0 ? Number.NaN : i === 1 ? -0 : (i * 1.1) / 3;
      flag[i] = i % 2; // a dictionary of doubles
      segment[i] = i % 17 === 0 ? -1 : i % 3;
      s.push(i % 9 === 0 ? null : `r${i}\u00e9${"x".repeat(i % 4)}`);
      big.push(i % 6 === 0 ? null : i % 2 ? 2n ** 62n + BigInt(i) : -i);
      ok.push(i % 10 === 0 ? null : i % 3 === 0);
      want.push({
        id: BigInt(ids[i]!),
        count: Number.isNaN(counts[i]!) ? null : BigInt(counts[i]!),
        at: atNulls[i] ? null : new Date(at[i]!),
        x: Number.isNaN(x[i]!) ? null : x[i],
        flag: flag[i],
        segment: segment[i]! < 0 ? null : names[segment[i]!],
        s: s[i],
        big: big[i] === null ? null : BigInt(big[i]!),
        ok: ok[i],
      });
    }
    const data: ColumnValues[] = [
      { kind: "numbers", values: ids },
      { kind: "numbers", values: counts },
      { kind: "numbers", values: at, nulls: atNulls },
      { kind: "numbers", values: x },
      { kind: "numbers", values: flag },
      { kind: "codes", codes: segment, names },
      { kind: "cells", cells: s },
      { kind: "cells", cells: big },
      { kind: "cells", cells: ok },
    ];
    const file = join(tmp(), "t.parquet");
    const written = writeParquetColumns(file, columns, data, n, { rowGroupRows: 128 });
    expect(written).toMatchObject({ path: file, rows: n, sha256: sha256(file) });

    const r = await duckdb().runAndReadAll(`SELECT * FROM '${file}'`);
    const types = Object.fromEntries(r.columnNames().map((c, i) => [c, String(r.columnTypes()[i])]));
    expect(types).toEqual({ id: "BIGINT", count: "BIGINT", at: "TIMESTAMP WITH TIME ZONE", x: "DOUBLE", flag: "DOUBLE", segment: "VARCHAR", s: "VARCHAR", big: "BIGINT", ok: "BOOLEAN" });
    const rows = r.getRowObjectsJS();
    expect(rows).toEqual(want);
    expect(Object.is(rows[1]!.x, -0)).toBe(true);
    // Microseconds exactly, past 2^53 too.
    const micros = await duckdb().runAndReadAll(`SELECT epoch_us("at")::VARCHAR AS us FROM '${file}' WHERE id = ${ids[1]}`);
    expect(micros.getRowObjectsJS()[0]!.us).toBe(`${BigInt(at[1]!) * 1000n}`);

    // Row groups of the given size; statistics a reader can prune with.
    const meta = (await duckdb().runAndReadAll(`SELECT row_group_id, path_in_schema, row_group_num_rows AS n, stats_min_value, stats_max_value, stats_null_count, encodings FROM parquet_metadata('${file}') ORDER BY 1, column_id`)).getRowObjectsJS();
    expect([...new Set(meta.map((m) => `${m.row_group_id}:${m.n}`))]).toEqual(["0:128", "1:128", "2:44"]);
    const countStats = meta.filter((m) => m.path_in_schema === "count");
    expect(countStats.map((m) => [m.stats_min_value, m.stats_max_value])).toEqual([["0", "4"], ["0", "4"], ["0", "4"]]);
    expect(countStats[0]!.encodings).toContain("RLE_DICTIONARY");
    expect(meta.find((m) => m.path_in_schema === "id")!.encodings).not.toContain("RLE_DICTIONARY");
    const nullsIn = (c: string, from: number, to: number) => want.slice(from, to).filter((w) => w[c] === null).length;
    expect(meta.filter((m) => m.path_in_schema === "s").map((m) => Number(m.stats_null_count))).toEqual([nullsIn("s", 0, 128), nullsIn("s", 128, 256), nullsIn("s", 256, n)]);
    const filtered = await duckdb().runAndReadAll(`SELECT count(*)::INTEGER AS k FROM '${file}' WHERE count = 3`);
    expect(filtered.getRowObjectsJS()[0]!.k).toBe(want.filter((w) => w.count === 3n).length);

    // hyparquet, the JS reader, reads the same values.
    const buffer = readFileSync(file);
    const ab = buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength) as ArrayBuffer;
    expect(parquetMetadata(ab).num_rows).toBe(BigInt(n));
    const back = await parquetReadObjects({ file: ab });
    expect(back.map((o) => o.segment)).toEqual(want.map((w) => w.segment));
    expect(back.map((o) => o.big)).toEqual(want.map((w) => w.big));

    // The same columns give the same bytes.
    const again = join(tmp(), "t.parquet");
    writeParquetColumns(again, columns, data, n, { rowGroupRows: 128 });
    expect(readFileSync(again).equals(readFileSync(file))).toBe(true);
  });

  it("writes an empty file, and refuses a null in a required column or a non-integer long, leaving no file", async () => {
    const dir = tmp();
    const empty = join(dir, "empty.parquet");
    writeParquetColumns(empty, [{ name: "a", type: "long", nullable: true }], [{ kind: "numbers", values: new Float64Array(0) }], 0);
    const r = await duckdb().runAndReadAll(`SELECT count(*)::INTEGER AS n FROM '${empty}'`);
    expect(r.getRowObjectsJS()[0]!.n).toBe(0);

    const bad = join(dir, "bad.parquet");
    expect(() => writeParquetColumns(bad, [{ name: "id", type: "long", nullable: false }], [{ kind: "numbers", values: Float64Array.of(1, Number.NaN) }], 2)).toThrow(/id is not nullable/);
    expect(() => writeParquetColumns(bad, [{ name: "id", type: "long", nullable: true }], [{ kind: "numbers", values: Float64Array.of(1.5) }], 1)).toThrow(/cannot write number 1.5/);
    expect(existsSync(bad)).toBe(false);
  });
});

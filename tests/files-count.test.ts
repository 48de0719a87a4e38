/** The progress total of `tributary ingest`: records counted in the files, as the files source reads them. */
import { describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { lastValueFrom, toArray } from "rxjs";
import { countRecords, filesSource } from "../src/sources/files.js";
import { tempDirs } from "./helpers/tmp.js";

const tempDir = tempDirs("files-count");

describe("countRecords", () => {
  it("counts what the files source emits: non-blank NDJSON lines (CRLF, no final newline) and CSV rows", async () => {
    const dir = tempDir();
    const ndjson = join(dir, "transactions.ndjson");
    writeFileSync(ndjson, '{"a":1}\r\n\r\n   \n\t\n{"a":2}\n{"a":3}');
    const csv = join(dir, "sessions.csv");
    writeFileSync(csv, "session_id,customer_id\ns1,c1\n\ns2,c2\n");
    const emitted = await lastValueFrom(filesSource([ndjson, csv]).pipe(toArray()));
    expect(emitted).toHaveLength(5);
    expect(await countRecords([ndjson, csv])).toBe(5);
  });
});

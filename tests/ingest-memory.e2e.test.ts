/**
 * Backpressure, seen from outside: `tributary ingest` of a file much larger than what the commits
 * hold stays within a bounded resident memory while its commits are slow. The files source waits
 * for commit credit, so the records between the file and bronze stay under
 * (MAX_BATCHES_IN_FLIGHT + 1) × batch.maxRecords instead of the whole file.
 *
 * Measured on the development machine: 331 MB peak before backpressure (the file read ahead of
 * the commits, into an unbounded mergeMap buffer), 212 MB after.
 */
import { describe, expect, it } from "vitest";
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { startCli } from "./helpers/cli.js";
import { tempDirs } from "./helpers/tmp.js";

const tempDir = tempDirs("ingest-memory");
const RECORDS = 50_000;

/** Valid transactions, each with a 3 KB field the contract ignores, so read-ahead shows in RSS. */
function writeFile(file: string): void {
  const pad = "x".repeat(3_000);
  const fd = openSync(file, "w");
  try {
    let lines: string[] = [];
    for (let i = 0; i < RECORDS; i++) {
      const at = new Date(Date.UTC(2026, 0, 1) + i * 60_000).toISOString();
      lines.push(JSON.stringify({ transaction_id: `t${i}`, customer_id: String(1_000 + (i % 5_000)), amount: (i % 500) / 10, currency: "USD", transaction_date: at, note: pad }));
      if (lines.length === 1_000) {
        writeSync(fd, lines.join("\n") + "\n");
        lines = [];
      }
    }
  } finally {
    closeSync(fd);
  }
}

/** The process's peak resident set (VmHWM) in MB, or null once it has exited. */
function peakRssMb(pid: number): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

describe.runIf(process.platform === "linux")("tributary ingest memory", () => {
  it("holds a bounded number of records however far the file runs ahead of slow commits", async () => {
    const dir = tempDir();
    const file = join(dir, "transactions.ndjson");
    writeFile(file);
    const config = join(dir, "tributary.yaml");
    writeFileSync(config, "batch:\n  maxRecords: 200\n");
    // Slow commits (a test hook the CLI reads): without backpressure the file is read far ahead.
    const { proc, result } = startCli(["ingest", file, "--config", config, "--data-dir", join(dir, "data")], { TRIBUTARY_FAULT_COMMIT_DELAY_MS: "20" });
    let peak = 0;
    const poll = setInterval(() => (peak = Math.max(peak, peakRssMb(proc.pid!) ?? peak)), 50);
    const r = await result;
    clearInterval(poll);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`bronze messages\\s+${RECORDS}\\b`));
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThan(270);
  }, 60_000);
});

/**
 * `tributary optimize` beside a running daemon, over a real JetStream stream: runs of it while
 * the daemon consumes and prunes lose nothing (silver and gold equal a run without either, table
 * for table), `--full` refuses while the daemon holds the data dir, and once retention has freed
 * bronze's pages, optimize returns them to the file system.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { startNatsServer, type NatsServer } from "../src/testing/nats-server.js";
import type { OptimizeReport } from "../src/serving/optimize.js";
import { runCli, startCli } from "./helpers/cli.js";
import { bronzeRetention, dumpLayers } from "./helpers/tables.js";
import { until } from "./helpers/poll.js";
import { publishAndDrainReference } from "./helpers/stream.js";
import { tempDirs } from "./helpers/tmp.js";

const MESSAGES = 30_000;
const tmp = tempDirs("optimize-e2e");



describe("tributary optimize", () => {
  let server: NatsServer;
  let reference: Record<string, unknown[]>;
  beforeAll(async () => {
    server = await startNatsServer();
    reference = await publishAndDrainReference(server.url, { seed: 8, messages: MESSAGES }, tmp());
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("is safe beside a running daemon, refuses --full then, and returns the pages retention freed", async () => {
    const base = tmp();
    const dir = join(base, "data");
    const config = join(base, "tributary.yaml");
    // The daemon prunes but leaves vacuuming to optimize, so that optimize has pages to return.
    writeFileSync(config, "retention:\n  bronze: 1s\n  pruneEvery: 100ms\nstorage:\n  optimizeEvery: 0\nbatch:\n  maxRecords: 500\n");
    const daemon = startCli(["run", "--config", config, "--nats", server.url, "--data-dir", dir], { TRIBUTARY_NATS_CONSUMER: "optimized" });
    try {
      for (let i = 0; i < 3; i++) {
        await until(`pruning round ${i}`, () => bronzeRetention(dir).pruned > i * 5_000);
        const r = await runCli(["optimize", "--data-dir", dir, "--format", "json"]);
        expect(r.code, r.stderr).toBe(0);
        const report = JSON.parse(r.stdout) as OptimizeReport;
        expect(report.layers.map((l) => l.layer)).toEqual(["bronze", "silver", "gold"]);
      }
      const full = await runCli(["optimize", "--full", "--data-dir", dir]);
      expect(full.code).toBe(2);
      expect(full.stderr.trim().split("\n")).toHaveLength(1);
      expect(full.stderr).toMatch(/tributary run|writer|locked|holds/i);
      // Everything read and nearly everything pruned.
      await until("pruning to finish", () => bronzeRetention(dir).pruned >= MESSAGES - 10);
    } finally {
      daemon.proc.kill("SIGTERM");
      await daemon.result;
    }
    // The daemon is gone; bronze now holds freed pages that optimize returns to the file system.
    const r = await runCli(["optimize", "--data-dir", dir, "--format", "json"]);
    expect(r.code, r.stderr).toBe(0);
    const bronze = (JSON.parse(r.stdout) as OptimizeReport).layers[0]!;
    expect(bronze.autoVacuum).toBe("incremental");
    expect(bronze.freePagesAfter).toBe(0);
    if (bronze.freePagesBefore > 0) expect(bronze.bytesAfter).toBeLessThan(bronze.bytesBefore);
    expect(dumpLayers(dir)).toEqual(reference);
    const table = await runCli(["optimize", "--data-dir", dir]);
    expect(table.stdout).toMatch(/top 100 customers by total_spend \(gold\): [\d.]+ ms \(100 rows\)/);
    expect(table.stdout).toMatch(/the full feature table now: [\d.]+ ms/);
  });

  it("converts a file from before incremental vacuum with --full", async () => {
    const dir = tmp();
    const r = await runCli(["run", "--drain", "--nats", server.url, "--data-dir", dir], { TRIBUTARY_NATS_CONSUMER: "old-layout" });
    expect(r.code, r.stderr).toBe(0);
    // As an older tributary created it: no auto_vacuum.
    const db = new Database(join(dir, "gold.sqlite"));
    db.pragma("auto_vacuum = NONE");
    db.exec("VACUUM");
    db.close();
    let out = JSON.parse((await runCli(["optimize", "--data-dir", dir, "--format", "json"])).stdout) as OptimizeReport;
    expect(out.layers[2]!.autoVacuum).toBe("none");
    const text = await runCli(["optimize", "--data-dir", dir]);
    expect(text.stdout).toContain("gold: from before incremental vacuum; stop the daemon and run optimize --full once");
    out = JSON.parse((await runCli(["optimize", "--full", "--data-dir", dir, "--format", "json"])).stdout) as OptimizeReport;
    expect(out.layers[2]!.autoVacuum).toBe("incremental");
    expect(dumpLayers(dir)).toEqual(reference);
  });
});

/**
 * Gold's compaction survives kill -9: a real daemon draining a JetStream stream folds its days
 * into the customers' summaries in the background (each fold step held a while by a test fault
 * delay), is killed with SIGKILL while a fold is half done, more than once, and run again to the
 * end. Silver and gold then equal an uninterrupted run, table for table (`customer_features`
 * reads the summaries), and so do the features, the whole table at mid-day instants and single
 * customers (read through their summaries); again after `tributary optimize` folds everything
 * that can be summed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import Database from "better-sqlite3";
import { startNatsServer, type NatsServer } from "../src/testing/nats-server.js";
import { runCli, startCli } from "./helpers/cli.js";
import { dumpLayers } from "./helpers/tables.js";
import { publishAndDrainReference } from "./helpers/stream.js";
import { tempDirs } from "./helpers/tmp.js";

const MESSAGES = 100_000;
const tmp = tempDirs("fold-crash");
const INSTANTS = ["2026-02-10T13:17:00Z", "2026-03-01", "2026-03-30T23:00:00Z"];

/** gold_layout as the file holds it, or null before gold exists. */
function layout(dir: string): { summarized_to: number; moving_to: number | null; cursor: string | null } | null {
  try {
    const db = new Database(join(dir, "gold.sqlite"), { readonly: true, fileMustExist: true });
    try {
      return (db.prepare("SELECT summarized_to, moving_to, cursor FROM gold_layout").get() as ReturnType<typeof layout>) ?? null;
    } finally {
      db.close();
    }
  } catch {
    return null;
  }
}

describe("kill -9 during gold's compaction", () => {
  let server: NatsServer;
  let refDir: string;
  let reference: Record<string, unknown[]>;
  beforeAll(async () => {
    server = await startNatsServer();
    refDir = tmp();
    reference = await publishAndDrainReference(server.url, { seed: 21, messages: MESSAGES }, refDir);
  });
  afterAll(async () => {
    await server?.stop();
  });

  const features = async (dir: string, args: string[]) => {
    const r = await runCli(["features", "--data-dir", dir, "--format", "csv", ...args]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout;
  };
  const expectSameAsReference = async (dir: string) => {
    expect(dumpLayers(dir)).toEqual(reference);
    for (const asOf of INSTANTS) {
      expect(await features(dir, ["--as-of", asOf]), asOf).toBe(await features(refDir, ["--as-of", asOf]));
      for (const customer of ["1000007", "1000123", "1002999"]) {
        expect(await features(dir, ["--as-of", asOf, "--customer", customer]), `${customer} at ${asOf}`).toBe(await features(refDir, ["--as-of", asOf, "--customer", customer]));
      }
    }
  };

  it("loses no bucket and counts none twice when the daemon dies mid-fold, and optimize finishes the job", async () => {
    const dir = tmp();
    const midFold: { moving_to: number; cursor: string | null }[] = [];
    for (let attempt = 0; midFold.length < 3 && attempt < 16; attempt++) {
      const { proc, result } = startCli(["run", "--drain", "--nats", server.url, "--data-dir", dir], {
        TRIBUTARY_NATS_CONSUMER: "folding",
        TRIBUTARY_FAULT_FOLD_DELAY_MS: "400",
      });
      // Kill once a fold is half done in a state no earlier kill left (after the first, with its cursor off the start).
      const seen = (l: { moving_to: number | null; cursor: string | null }) => midFold.some((f) => f.moving_to === l.moving_to && f.cursor === l.cursor);
      const deadline = Date.now() + 60_000;
      while (proc.exitCode === null && Date.now() < deadline) {
        const l = layout(dir);
        if (l && l.moving_to !== null && !seen(l) && (midFold.length === 0 || l.cursor !== "")) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      proc.kill("SIGKILL");
      const r = await result;
      if (r.signal !== "SIGKILL") continue; // it drained first
      const l = layout(dir);
      if (l?.moving_to !== null && l?.moving_to !== undefined) midFold.push({ moving_to: l.moving_to, cursor: l.cursor });
    }
    expect(midFold.length, "kills that left a fold half done").toBeGreaterThanOrEqual(2);
    expect(midFold.some((f) => f.cursor !== ""), "a kill after some customers' days had moved").toBe(true);
    // Run to the end without faults: the half-done fold is taken up where it stopped.
    const last = await runCli(["run", "--drain", "--nats", server.url, "--data-dir", dir], { TRIBUTARY_NATS_CONSUMER: "folding" });
    expect(last.code, last.stderr).toBe(0);
    await expectSameAsReference(dir);
    const optimized = await runCli(["optimize", "--data-dir", dir]);
    expect(optimized.code, optimized.stderr).toBe(0);
    expect(optimized.stdout).toMatch(/gold: compaction brought [\d,]+ summaries up to date/);
    expect(layout(dir)?.moving_to).toBeNull();
    await expectSameAsReference(dir);
  });
});

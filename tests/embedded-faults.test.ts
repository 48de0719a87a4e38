/**
 * Fault injection is a test hook, not part of the library's default path: an embedder whose
 * environment happens to set `TRIBUTARY_CRASH_POINT` is not killed. Only the CLI, which the crash
 * tests run, reads those variables.
 */
import { describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { runCli } from "./helpers/cli.js";
import { tempDirs } from "./helpers/tmp.js";

const tempDir = tempDirs("embedded-faults");
const LIBRARY = pathToFileURL(join(import.meta.dirname, "../dist/src/index.js")).href;
const CRASH_ENV = { TRIBUTARY_CRASH_POINT: "after_bronze", TRIBUTARY_CRASH_AFTER_BATCHES: "1", TRIBUTARY_FAULT_COMMIT_DELAY_MS: "0" };

/** Runs a small embedding service (the built library in a process of its own) with `env`. */
function embedded(dataDir: string, env: Record<string, string>): Promise<{ code: number | null; signal: string | null; out: string }> {
  const script = `
    import { createTopology } from ${JSON.stringify(LIBRARY)};
    const t = createTopology({ dataDir: ${JSON.stringify(dataDir)}, source: { kind: "generator", messages: 3000 }, metrics: false, config: { batch: { maxRecords: 500 } } });
    await t.start();
    const stats = await t.done;
    console.log(JSON.stringify({ bronze: stats.bronze }));
  `;
  // A file, not `--input-type=module -e`: the commit worker thread would inherit that flag.
  const file = join(dataDir, "service.mjs");
  writeFileSync(file, script);
  const proc = spawn(process.execPath, [file], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout.on("data", (d) => (out += d));
  proc.stderr.on("data", (d) => (out += d));
  return new Promise((resolve) => proc.once("close", (code, signal) => resolve({ code, signal, out })));
}

describe("fault injection", () => {
  it("an embedded topology ignores TRIBUTARY_CRASH_POINT and commits everything", async () => {
    const r = await embedded(tempDir(), CRASH_ENV);
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out.trim().split("\n").pop()!)).toEqual({ bronze: 3000 });
  });

  it("the CLI still takes the crash point from its environment, for the crash tests", async () => {
    const r = await runCli(["demo", "--messages", "3000", "--data-dir", tempDir()], CRASH_ENV);
    expect(r.signal).toBe("SIGKILL");
  });
});

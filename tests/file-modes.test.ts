/**
 * File modes of a data directory, whatever the umask: the real CLI runs under `umask 000`, and
 * every directory it creates is 0700 and every file it writes (the SQLite files, their -wal and
 * -shm, and anything else in the data dir) is 0600. A data dir that already existed keeps its mode.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { generateWorkload } from "../src/sources/generator.js";
import { startNatsServer, type NatsServer } from "../src/testing/nats-server.js";
import { CLI, runCli, type CliResult } from "./helpers/cli.js";
import { publishToStream } from "./helpers/stream.js";
import { tempDirs } from "./helpers/tmp.js";

const tempDir = tempDirs("modes");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mode = (path: string) => (statSync(path).mode & 0o777).toString(8).padStart(4, "0");

/** Starts the built CLI through `sh -c 'umask 000; exec node cli.js ARGS'`. */
function startUnderUmask000(args: string[]) {
  const proc = spawn("sh", ["-c", 'umask 000; exec "$0" "$@"', process.execPath, CLI, ...args], {
    env: { ...process.env, TRIBUTARY_LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  proc.stdout.on("data", (d) => (stdout += d));
  proc.stderr.on("data", (d) => (stderr += d));
  const result = new Promise<CliResult>((resolve) => proc.once("close", (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { proc, result };
}

/** Every entry of a data dir with its mode, e.g. `{ "bronze.sqlite": "0600", … }`. */
function modes(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).sort().map((f) => [f, mode(join(dir, f))]));
}
const allFilesPrivate = (dir: string) => Object.fromEntries(Object.keys(modes(dir)).map((f) => [f, "0600"]));

describe("data dir and file modes under umask 000", () => {
  it("demo creates the data dir (and its missing parents) 0700 and every file 0600", async () => {
    const parent = tempDir();
    const dir = join(parent, "nested", "data");
    const r = await startUnderUmask000(["demo", "--messages", "2000", "--data-dir", dir]).result;
    expect(r.code, r.stderr).toBe(0);
    expect(mode(join(parent, "nested"))).toBe("0700");
    expect(mode(dir)).toBe("0700");
    const found = modes(dir);
    for (const layer of ["bronze", "silver", "gold"]) expect(Object.keys(found)).toContain(`${layer}.sqlite`);
    expect(found).toEqual(allFilesPrivate(dir));
    // The umask really was 000: a file the shell creates is world-writable.
    const probe = join(parent, "probe");
    const sh = spawn("sh", ["-c", 'umask 000; : > "$0"', probe]);
    await new Promise((r) => sh.once("close", r));
    expect(mode(probe)).toBe("0666");
  });

  it("leaves the mode of an existing data dir alone, and makes existing files 0600 again", async () => {
    const dir = join(tempDir(), "data");
    mkdirSync(dir);
    chmodSync(dir, 0o750);
    const first = await startUnderUmask000(["demo", "--messages", "500", "--data-dir", dir]).result;
    expect(first.code, first.stderr).toBe(0);
    expect(mode(dir)).toBe("0750");
    expect(modes(dir)).toEqual(allFilesPrivate(dir));
    // Files of an older tributary, or loosened by hand.
    for (const f of readdirSync(dir)) chmodSync(join(dir, f), 0o644);
    const again = await startUnderUmask000(["ingest", "--data-dir", dir, "tests/fixtures/transactions.csv"]).result;
    expect(again.code, again.stderr).toBe(0);
    expect(mode(dir)).toBe("0750");
    for (const layer of ["bronze", "silver", "gold"]) expect(mode(join(dir, `${layer}.sqlite`)), layer).toBe("0600");
    // Readers never change anything.
    chmodSync(join(dir, "gold.sqlite"), 0o640);
    expect((await runCli(["status", "--data-dir", dir])).code).toBe(0);
    expect(mode(join(dir, "gold.sqlite"))).toBe("0640");
  });

  describe("the daemon, while it runs", () => {
    let server: NatsServer;
    beforeAll(async () => {
      server = await startNatsServer();
    });
    afterAll(async () => {
      await server?.stop();
    });

    it("keeps the SQLite files and their -wal and -shm 0600", async () => {
      const dir = join(tempDir(), "data");
      const published = await publishToStream(server.url, generateWorkload({ seed: 5, messages: 2_000 }));
      const daemon = startUnderUmask000(["run", "--nats", server.url, "--data-dir", dir, "--http", "off"]);
      try {
        const wanted = ["bronze", "silver", "gold"].flatMap((l) => [`${l}.sqlite`, `${l}.sqlite-wal`, `${l}.sqlite-shm`]);
        const deadline = Date.now() + 30_000;
        for (;;) {
          const present = existsSync(dir) ? readdirSync(dir) : [];
          const status = wanted.every((f) => present.includes(f)) ? await runCli(["status", "--data-dir", dir, "--format", "json"]) : null;
          if (status?.code === 0 && JSON.parse(status.stdout).bronze.messages === published) break;
          if (daemon.proc.exitCode !== null) throw new Error(`the daemon exited: ${(await daemon.result).stderr}`);
          if (Date.now() > deadline) throw new Error(`timed out; data dir holds ${present.join(", ")}`);
          await sleep(100);
        }
        expect(mode(dir)).toBe("0700");
        const found = modes(dir);
        expect(Object.keys(found)).toEqual(expect.arrayContaining(wanted));
        expect(found).toEqual(allFilesPrivate(dir));
      } finally {
        daemon.proc.kill("SIGTERM");
      }
      const r = await daemon.result;
      expect(r.code, r.stderr.slice(-500)).toBe(0);
    });
  });
});

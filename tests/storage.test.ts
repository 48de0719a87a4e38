/**
 * Storage faults with real SQLite files: a full disk, a read-only data dir, files written by a
 * newer schema version or by something else, and the durability setting.
 */
import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { generateWorkload } from "../src/sources/generator.js";
import { BronzeStore } from "../src/sinks/bronze.js";
import { SILVER_MIGRATIONS } from "../src/sinks/silver.js";
import { startNatsServer } from "../src/testing/nats-server.js";
import { tempDirs } from "./helpers/tmp.js";
import { runCli } from "./helpers/cli.js";
import { bronzeCount } from "./helpers/tables.js";
import { consumerInfo, publishToStream } from "./helpers/stream.js";

const tmp = tempDirs("storage");
const sha = (file: string) => createHash("sha256").update(readFileSync(file)).digest("hex");
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

describe("data directory identity", () => {
  it("refuses a data dir written by a newer schema version, and writes nothing", async () => {
    const dir = tmp();
    expect((await runCli(["ingest", fixture("transactions.csv"), "--data-dir", dir])).code).toBe(0);
    const db = new Database(join(dir, "silver.sqlite"));
    db.pragma("user_version = 99");
    db.close();
    const before = ["bronze", "silver", "gold"].map((l) => sha(join(dir, `${l}.sqlite`)));
    const r = await runCli(["ingest", fixture("sessions.ndjson"), "--data-dir", dir]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain(`silver.sqlite has schema version 99, newer than this tributary understands (${SILVER_MIGRATIONS.length}); upgrade tributary`);
    expect(["bronze", "silver", "gold"].map((l) => sha(join(dir, `${l}.sqlite`)))).toEqual(before);
  });

  it("refuses a foreign SQLite file in place of a layer, and writes nothing", async () => {
    const dir = tmp();
    const foreign = new Database(join(dir, "bronze.sqlite"));
    foreign.exec("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL); INSERT INTO invoices VALUES (1, 9.5);");
    foreign.close();
    const before = sha(join(dir, "bronze.sqlite"));
    const r = await runCli(["ingest", fixture("transactions.csv"), "--data-dir", dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/bronze\.sqlite is not a tributary bronze database .*refusing to write to it/);
    expect(sha(join(dir, "bronze.sqlite"))).toBe(before);
  });

  it("refuses a file that is not SQLite at all", async () => {
    const dir = tmp();
    writeFileSync(join(dir, "gold.sqlite"), "hello, I am a text file, not a database\n".repeat(200));
    const r = await runCli(["ingest", fixture("transactions.csv"), "--data-dir", dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/storage error: .*gold\.sqlite/);
  });
});

describe("durability setting", () => {
  it("sets synchronous=FULL or NORMAL explicitly and reads it back", () => {
    const dir = tmp();
    const full = new BronzeStore(dir, { synchronous: "full", busyTimeout: 1000 });
    expect(full.db.pragma("synchronous", { simple: true })).toBe(2);
    expect(full.db.pragma("journal_mode", { simple: true })).toBe("wal");
    full.close();
    const normal = new BronzeStore(dir, { synchronous: "normal", busyTimeout: 1000 });
    expect(normal.db.pragma("synchronous", { simple: true })).toBe(1);
    normal.close();
  });

  it("reports the effective setting when the daemon opens storage", async () => {
    const dir = tmp();
    writeFileSync(join(dir, "full.yaml"), "storage:\n  synchronous: full\n");
    const r = await runCli(["ingest", fixture("transactions.csv"), "--data-dir", dir, "--config", join(dir, "full.yaml")], { TRIBUTARY_LOG_LEVEL: "info" });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/"event":"storage_opened".*"synchronous":\{"bronze":"full","silver":"normal","gold":"normal"\}/);
  });
});

/** A small tmpfs stands in for a disk that fills up. Mounting needs root, as CI has. */
describe("disk full and read-only data dir", () => {
  it("fails with a clear error, acks nothing uncommitted, and works again once there is room", async () => {
    const dir = tmp();
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", dir]);
    const server = await startNatsServer();
    try {
      const published = await publishToStream(server.url, generateWorkload({ seed: 31, messages: 20_000 }));
      const full = await runCli(["run", "--drain", "--nats", server.url, "--data-dir", dir]);
      expect(full.code).toBe(1);
      expect(full.stderr).toMatch(/tributary: (commit|storage) error: .*(disk is full|SQLITE_FULL)/);
      const inBronze = bronzeCount(dir);
      expect(inBronze).toBeLessThan(published);
      const info = await consumerInfo(server.url, "tributary");
      expect(info.ack_floor.stream_seq, "nothing beyond bronze was acknowledged").toBeLessThanOrEqual(inBronze);

      // The cause is fixed: the same files open and the drain completes exactly.
      execFileSync("mount", ["-o", "remount,size=256m", dir]);
      const again = await runCli(["run", "--drain", "--nats", server.url, "--data-dir", dir]);
      expect(again.code, again.stderr).toBe(0);
      const status = JSON.parse((await runCli(["status", "--data-dir", dir, "--format", "json"])).stdout);
      expect(status.bronze.messages).toBe(published);
      const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);
      expect(sum(status.silver) + sum(status.duplicates) + sum(status.quarantine)).toBe(published);

      // An unwritable data dir is a clear error too, and nothing is lost once it is writable again.
      await publishToStream(server.url, generateWorkload({ seed: 32, messages: 1_000 }));
      execFileSync("mount", ["-o", "remount,ro", dir]);
      const ro = await runCli(["run", "--drain", "--nats", server.url, "--data-dir", dir]);
      expect(ro.code).toBe(1);
      expect(ro.stderr).toMatch(/tributary: (storage|commit) error: .*(readonly|read-only)/i);
      execFileSync("mount", ["-o", "remount,rw", dir]);
      const rw = await runCli(["run", "--drain", "--nats", server.url, "--data-dir", dir]);
      expect(rw.code, rw.stderr).toBe(0);
      expect(bronzeCount(dir)).toBe(published + 1_000);
    } finally {
      await server.stop();
      execFileSync("umount", [dir]);
    }
  });
});

/**
 * Retention under kill -9: a daemon with a one-second `retention.bronze` prunes bronze while it
 * consumes a real JetStream stream, and is killed with SIGKILL in the middle of pruning, twice.
 * After a final drain, silver and gold equal an uninterrupted run without retention, table for
 * table, and every message is in bronze or counted as pruned exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { startNatsServer, type NatsServer } from "../src/testing/nats-server.js";
import { runCli, startCli } from "./helpers/cli.js";
import { bronzeRetention, dumpLayers } from "./helpers/tables.js";
import { until } from "./helpers/poll.js";
import { publishAndDrainReference } from "./helpers/stream.js";
import { tempDirs } from "./helpers/tmp.js";

const MESSAGES = 30_000;
const tmp = tempDirs("retention-e2e");



describe("bronze retention and kill -9", () => {
  let server: NatsServer;
  let reference: Record<string, unknown[]>;
  beforeAll(async () => {
    server = await startNatsServer();
    reference = await publishAndDrainReference(server.url, { seed: 5, messages: MESSAGES }, tmp());
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("creates its streams with nats.maxAge and nats.maxBytes, 7 days and 10 GiB unless configured", async () => {
    const base = tmp();
    const file = join(base, "transactions.ndjson");
    writeFileSync(file, JSON.stringify({ transaction_id: "t1", customer_id: "c1", amount: 1, currency: "USD", transaction_date: "2026-11-01T00:00:00Z" }) + "\n");
    const config = join(base, "tributary.yaml");
    writeFileSync(config, "nats:\n  maxAge: 2d\n  maxBytes: 1048576\n");
    let r = await runCli(["publish", file, "--nats", server.url], { TRIBUTARY_NATS_STREAM: "DEFAULTS", TRIBUTARY_NATS_SUBJECTS: '["defaults.>"]' });
    expect(r.code, r.stderr).toBe(0);
    r = await runCli(["publish", file, "--nats", server.url, "--config", config], { TRIBUTARY_NATS_STREAM: "LIMITED", TRIBUTARY_NATS_SUBJECTS: '["limited.>"]' });
    expect(r.code, r.stderr).toBe(0);
    const nc = await connect({ servers: server.url });
    try {
      const jsm = await jetstreamManager(nc);
      const defaults = (await jsm.streams.info("DEFAULTS")).config;
      expect(defaults.max_age).toBe(7 * 86_400_000 * 1_000_000);
      expect(defaults.max_bytes).toBe(10 * 1024 ** 3);
      const limited = (await jsm.streams.info("LIMITED")).config;
      expect(limited.max_age).toBe(2 * 86_400_000 * 1_000_000);
      expect(limited.max_bytes).toBe(1_048_576);
    } finally {
      await nc.close();
    }
  });

  it("loses nothing and counts nothing twice when killed in the middle of pruning", async () => {
    const base = tmp();
    const dir = join(base, "data");
    const config = join(base, "tributary.yaml");
    writeFileSync(config, `retention:\n  bronze: 1s\n  pruneEvery: 100ms\nbatch:\n  maxRecords: 500\n`);
    const env = { TRIBUTARY_NATS_CONSUMER: "retained" };
    for (let kill = 1; kill <= 2; kill++) {
      const before = bronzeRetention(dir).pruned;
      const daemon = startCli(["run", "--config", config, "--nats", server.url, "--data-dir", dir], env);
      // Killed while pruning is under way: some messages pruned since this start, not all of them.
      await until(`pruning after start ${kill}`, () => bronzeRetention(dir).pruned > before + 1_000);
      daemon.proc.kill("SIGKILL");
      const r = await daemon.result;
      expect(r.signal ?? r.code).toBe("SIGKILL");
    }
    const drained = await runCli(["run", "--drain", "--config", config, "--nats", server.url, "--data-dir", dir], env);
    expect(drained.code, drained.stderr).toBe(0);

    expect(dumpLayers(dir)).toEqual(reference);
    const { held, pruned } = bronzeRetention(dir);
    expect(pruned).toBeGreaterThan(0);
    expect(held + pruned).toBe(MESSAGES);
    const db = new Database(join(dir, "bronze.sqlite"), { readonly: true });
    try {
      expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
      // The origin's last message stays, so the position survives.
      expect(db.prepare("SELECT max(origin_seq) FROM messages").pluck().get()).toBe(MESSAGES);
    } finally {
      db.close();
    }
    const status = JSON.parse((await runCli(["status", "--data-dir", dir, "--format", "json"])).stdout) as { bronze: { messages: number; pruned: number }; positions: { bronze: number } };
    expect(status.positions.bronze).toBe(MESSAGES);
    expect(status.bronze).toMatchObject({ messages: held, pruned });
  });
});

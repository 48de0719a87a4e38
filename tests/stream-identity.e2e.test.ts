/**
 * Stream identity against a real nats-server: a stream deleted and recreated, purged past
 * bronze's position, or restored from an older copy of the server's store that then took other
 * messages under the same sequences, stops the next run with exit 2 instead of being read from
 * bronze's position (which would silently skip the new stream's first messages).
 */
import { afterEach, describe, expect, it } from "vitest";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { startNatsServer, type NatsServer } from "../src/testing/nats-server.js";
import { recordMessage, type OutgoingMessage } from "../src/producers/publisher.js";
import { runCli } from "./helpers/cli.js";
import { publishToStream } from "./helpers/stream.js";
import { tempDirs } from "./helpers/tmp.js";

const tmp = tempDirs("identity");

/** `n` valid transactions with ids `<tag>-<i>`, one US dollar each. */
function transactions(tag: string, n: number): OutgoingMessage[] {
  return Array.from({ length: n }, (_, i) =>
    recordMessage("transactions", {
      transaction_id: `${tag}-${i}`,
      customer_id: `c${i % 40}`,
      amount: 1,
      currency: "USD",
      transaction_date: "2026-11-01T12:00:00Z",
    }),
  );
}

async function withJsm<T>(url: string, f: (jsm: Awaited<ReturnType<typeof jetstreamManager>>) => Promise<T>): Promise<T> {
  const nc = await connect({ servers: url });
  try {
    return await f(await jetstreamManager(nc));
  } finally {
    await nc.close();
  }
}

async function status(dir: string): Promise<{ bronze: { messages: number }; silver: Record<string, number> }> {
  const r = await runCli(["status", "--data-dir", dir, "--format", "json"]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

const drain = (server: NatsServer, dir: string, ...flags: string[]) =>
  runCli(["run", "--drain", "--nats", server.url, "--data-dir", dir, "--http", "off", "--connect-timeout", "10", ...flags]);

describe("stream identity", () => {
  let server: NatsServer | null = null;
  afterEach(async () => {
    await server?.stop();
    server = null;
  });

  it("stops with exit 2 on a deleted and recreated stream, and reads all of it with --new-stream", async () => {
    server = await startNatsServer();
    const dir = tmp();
    expect(await publishToStream(server.url, transactions("old", 730))).toBe(730);
    let r = await drain(server, dir);
    expect(r.code, r.stderr).toBe(0);
    const oldCreated = await withJsm(server.url, async (jsm) => (await jsm.streams.info("TRIBUTARY")).created);

    // An operator's migration: the stream is deleted and recreated, and more messages arrive
    // than bronze had read, so the stream's last sequence is past bronze's position.
    await withJsm(server.url, async (jsm) => {
      await jsm.streams.delete("TRIBUTARY");
      await jsm.streams.add({ name: "TRIBUTARY", subjects: ["tributary.>"] });
    });
    expect(await publishToStream(server.url, transactions("new", 1447))).toBe(1447);
    const newCreated = await withJsm(server.url, async (jsm) => (await jsm.streams.info("TRIBUTARY")).created);

    r = await drain(server, dir);
    expect(r.code, r.stderr).toBe(2);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^tributary: stream error: stream TRIBUTARY is not the stream bronze read up to sequence 730/);
    expect(lines[0]).toContain(oldCreated);
    expect(lines[0]).toContain(newCreated);
    expect(lines[0]).toContain("--new-stream");
    expect((await status(dir)).bronze.messages).toBe(730);

    r = await drain(server, dir, "--new-stream");
    expect(r.code, r.stderr).toBe(0);
    const s = await status(dir);
    expect(s.bronze.messages).toBe(730 + 1447);
    expect(s.silver.transactions).toBe(730 + 1447);

    // The new stream is now the one bronze read: later runs need no flag, and new messages count.
    expect(await publishToStream(server.url, transactions("newer", 10))).toBe(10);
    r = await drain(server, dir);
    expect(r.code, r.stderr).toBe(0);
    expect((await status(dir)).silver.transactions).toBe(730 + 1447 + 10);
    // status names both origins and the stream identity each was read from.
    const origins = JSON.parse((await runCli(["status", "--data-dir", dir, "--format", "json"])).stdout).origins;
    expect(origins).toEqual([
      { origin: "jetstream:TRIBUTARY", lastSeq: 730, stream: "TRIBUTARY", created: oldCreated, firstSeq: 1 },
      { origin: `jetstream:TRIBUTARY@${newCreated}`, lastSeq: 1457, stream: "TRIBUTARY", created: newCreated, firstSeq: 1 },
    ]);
  });

  it("drains a stream whose newest messages were deleted before they were read (the consumer's stream position moves past them)", async () => {
    server = await startNatsServer();
    const dir = tmp();
    await publishToStream(server.url, transactions("kept", 3));
    expect((await drain(server, dir)).code).toBe(0);
    await publishToStream(server.url, transactions("gone", 2));
    await withJsm(server.url, async (jsm) => {
      await jsm.streams.deleteMessage("TRIBUTARY", 5);
      await jsm.streams.deleteMessage("TRIBUTARY", 4);
    });
    const config = join(tmp(), "stall.yaml");
    writeFileSync(config, "nats:\n  stallTimeout: 2s\n");
    const started = Date.now();
    const r = await runCli(["run", "--drain", "--config", config, "--nats", server.url, "--data-dir", dir, "--http", "off", "--connect-timeout", "10"], { TRIBUTARY_LOG_LEVEL: "info" });
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(r.stderr).not.toMatch(/consumer_stalled/);
    expect((await status(dir)).bronze.messages).toBe(3);
  });

  it("stops with exit 2 when messages were purged before they were read, saying how many; --accept-gap goes on", async () => {
    server = await startNatsServer();
    const dir = tmp();
    await publishToStream(server.url, transactions("a", 100));
    expect((await drain(server, dir)).code).toBe(0);
    await publishToStream(server.url, transactions("b", 50));
    await withJsm(server.url, (jsm) => jsm.streams.purge("TRIBUTARY"));
    await publishToStream(server.url, transactions("c", 20));

    let r = await drain(server, dir);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/no longer holds sequences 101\.\.150: 50 messages were removed/);
    expect(r.stderr).toContain("--accept-gap");

    r = await drain(server, dir, "--accept-gap");
    expect(r.code, r.stderr).toBe(0);
    expect((await status(dir)).silver.transactions).toBe(120);
  });

  /**
   * A server whose store can be copied while it is down and put back later: a restore from an
   * older backup, or a power cut that lost the last writes.
   */
  async function restorableServer(): Promise<{ backup(): Promise<void>; restore(): Promise<void>; cleanup(): void }> {
    const store = mkdtempSync(join(tmpdir(), "tributary-identity-store-"));
    const copy = mkdtempSync(join(tmpdir(), "tributary-identity-backup-"));
    server = await startNatsServer({ storeDir: store });
    const s = server;
    return {
      async backup() {
        await s.down();
        cpSync(store, copy, { recursive: true });
        await s.up();
      },
      async restore() {
        await s.down();
        rmSync(store, { recursive: true, force: true });
        cpSync(copy, store, { recursive: true });
        await s.up();
      },
      cleanup() {
        rmSync(store, { recursive: true, force: true });
        rmSync(copy, { recursive: true, force: true });
      },
    };
  }

  it("stops with exit 2 when the server was restored from an older copy and took other messages under the same sequences", async () => {
    const store = await restorableServer();
    try {
      const url = server!.url;
      const dir = tmp();
      await publishToStream(url, transactions("first", 500));
      await store.backup();
      await publishToStream(url, transactions("second", 230));
      let r = await drain(server!, dir);
      expect(r.code, r.stderr).toBe(0);
      expect((await status(dir)).bronze.messages).toBe(730);

      // The server loses its tail (restored from the copy) and takes other messages: they reuse
      // sequences 501.. that bronze holds different messages under.
      await store.restore();
      await publishToStream(url, transactions("other", 375));
      const info = await withJsm(url, (jsm) => jsm.streams.info("TRIBUTARY"));
      expect(info.state.last_seq).toBe(875);

      r = await drain(server!, dir);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(/stream TRIBUTARY no longer holds what bronze read: at sequence 730 /);
      expect((await status(dir)).bronze.messages).toBe(730);
    } finally {
      store.cleanup();
    }
  });

  it("stops with exit 2 when the restored stream ends before bronze's position", async () => {
    const store = await restorableServer();
    try {
      const dir = tmp();
      await publishToStream(server!.url, transactions("first", 300));
      await store.backup();
      await publishToStream(server!.url, transactions("second", 200));
      expect((await drain(server!, dir)).code).toBe(0);
      await store.restore();
      const r = await drain(server!, dir);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/stream TRIBUTARY ends at sequence 300, but bronze read it up to 500/);
    } finally {
      store.cleanup();
    }
  });
});

/**
 * What a production daemon meets, with a real nats-server and real SQLite files: a broker outage,
 * lost acks, poison messages, a competing writer, SIGTERM under load. Scenarios end by comparing
 * silver and gold with an uninterrupted run over the same stream.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { pack } from "msgpackr";
import { generateWorkload } from "../src/sources/generator.js";
import { freePort, startNatsServer, type NatsServer } from "../src/testing/nats-server.js";
import { tempDirs } from "./helpers/tmp.js";
import { runCli, startCli } from "./helpers/cli.js";
import { bronzeCount, dumpLayers } from "./helpers/tables.js";
import { consumerInfo, publishToStream } from "./helpers/stream.js";

const tmp = tempDirs("fault");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await sleep(20);
  }
}

describe("faults on a stream of 30,000 messages", () => {
  let server: NatsServer;
  let reference: Record<string, unknown[]>;
  const MESSAGES = 30_000;
  const drain = (dir: string, consumer: string, env: Record<string, string> = {}, extra: string[] = []) =>
    runCli(["run", "--drain", "--nats", server.url, "--data-dir", dir, ...extra], { TRIBUTARY_NATS_CONSUMER: consumer, ...env });

  beforeAll(async () => {
    server = await startNatsServer();
    await publishToStream(server.url, generateWorkload({ seed: 23, messages: MESSAGES }));
    const dir = tmp();
    const r = await drain(dir, "reference");
    expect(r.code, r.stderr).toBe(0);
    reference = dumpLayers(dir);
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("rides out a 10 s broker outage mid-stream, reconnects, resumes and ends identical", async () => {
    const dir = tmp();
    // A slow commit keeps the drain going long enough to take the broker away in the middle.
    const { proc, result } = startCli(["run", "--drain", "--nats", server.url, "--data-dir", dir], {
      TRIBUTARY_NATS_CONSUMER: "outage",
      TRIBUTARY_LOG_LEVEL: "info",
      TRIBUTARY_FAULT_COMMIT_DELAY_MS: "100",
    });
    await waitFor(() => bronzeCount(dir) >= 4_000, 30_000);
    await server.down();
    await sleep(10_000);
    expect(proc.exitCode, "the daemon keeps running while the broker is down").toBeNull();
    await server.up();
    const r = await result;
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    expect(r.stderr).toMatch(/"event":"disconnected"/);
    expect(r.stderr).toMatch(/"event":"reconnected"/);
    expect(bronzeCount(dir)).toBe(MESSAGES);
    expect(dumpLayers(dir)).toEqual(reference);
  });

  it("counts each message once when acks are lost to a short ack_wait and redelivered", async () => {
    const dir = tmp();
    const config = join(dir, "slow.yaml");
    writeFileSync(config, "nats:\n  ackWait: 1s\nbatch:\n  maxRecords: 5000\n");
    const r = await drain(dir, "lost-acks", { TRIBUTARY_FAULT_COMMIT_DELAY_MS: "1200" }, ["--config", config]);
    expect(r.code, r.stderr).toBe(0);
    // The broker redelivered messages whose ack came too late; they were recognised and skipped.
    expect(r.stdout).toMatch(/already in bronze \(skipped\)\s+[1-9]/);
    expect(bronzeCount(dir)).toBe(MESSAGES);
    expect(dumpLayers(dir)).toEqual(reference);
  });

  it("keeps running while another process holds the SQLite write lock", async () => {
    const dir = tmp();
    const half = await drain(dir, "contention", {}, []);
    expect(half.code).toBe(0);
    // Take the write lock on silver and gold from another process for 3 s, then drain new messages.
    const extra = [...generateWorkload({ seed: 99, messages: 2_000 })];
    await publishToStream(server.url, extra);
    const holder = spawn(process.execPath, [fileURLToPath(new URL("./helpers/hold-lock.mjs", import.meta.url)), dir, "3000"], { stdio: ["ignore", "pipe", "inherit"] });
    const holderDone = new Promise((resolve) => holder.once("close", resolve));
    await new Promise<void>((resolve) => holder.stdout!.once("data", () => resolve()));
    const started = Date.now();
    const r = await drain(dir, "contention");
    expect(r.code, r.stderr).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_000); // it waited for the lock
    expect(bronzeCount(dir)).toBe(MESSAGES + extra.length);
    await holderDone;
  });

  it("stops on SIGTERM under full load within 5 s, commits, acks, and nothing is redelivered", async () => {
    const dir = tmp();
    const { proc, result } = startCli(["run", "--nats", server.url, "--data-dir", dir], { TRIBUTARY_NATS_CONSUMER: "sigterm" });
    await waitFor(() => bronzeCount(dir) >= 5_000, 30_000);
    const sent = Date.now();
    proc.kill("SIGTERM");
    const r = await result;
    expect(r.code, r.stderr).toBe(0);
    expect(Date.now() - sent).toBeLessThan(5_000);
    const committed = bronzeCount(dir);
    expect(committed).toBeLessThan(MESSAGES + 2_000);
    const info = await consumerInfo(server.url, "sigterm");
    expect(info.ack_floor.stream_seq, "everything committed was acknowledged").toBeGreaterThanOrEqual(committed);
    const rest = await drain(dir, "sigterm");
    expect(rest.code, rest.stderr).toBe(0);
    expect(rest.stdout).not.toMatch(/already in bronze/);
  });
});

describe("poison messages", () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await startNatsServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("quarantines undecodable and oversize messages, acks them, and never loops on redelivery", async () => {
    const good = [...generateWorkload({ seed: 5, messages: 500, invalidRate: 0 })];
    const poison = [
      { subject: "tributary.transactions", data: Uint8Array.from([0xc1, 0xc1, 0xc1]) },
      { subject: "tributary.events", data: new TextEncoder().encode("{not json") },
      { subject: "tributary.sessions", data: pack({ session_id: "big", customer_id: "x", blob: "x".repeat(4_000) }) },
    ];
    await publishToStream(server.url, [...good.slice(0, 250), ...poison, ...good.slice(250)]);
    const dir = tmp();
    const config = join(dir, "small.yaml");
    writeFileSync(config, "limits:\n  maxPayloadBytes: 2048\nnats:\n  ackWait: 2s\n");
    const r = await runCli(["run", "--drain", "--nats", server.url, "--data-dir", dir, "--config", config]);
    expect(r.code, r.stderr).toBe(0);
    const status = JSON.parse((await runCli(["status", "--data-dir", dir, "--format", "json"])).stdout);
    expect(status.bronze.messages).toBe(503);
    expect(status.quarantine.decode_error).toBe(2);
    expect(status.quarantine.oversize).toBe(1);
    await sleep(2_500); // longer than ack_wait: anything unacked would now be redelivered
    const info = await consumerInfo(server.url, "tributary");
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_redelivered).toBe(0);
    expect(info.ack_floor.stream_seq).toBe(503);
  });
});

describe("SIGTERM while the broker is unreachable", () => {
  it("stops retrying and exits 0 at once, instead of waiting for a broker that may never come", async () => {
    const port = await freePort();
    const { proc, result } = startCli(["run", "--nats", `nats://127.0.0.1:${port}`, "--data-dir", tmp()], { TRIBUTARY_LOG_LEVEL: "info" });
    let stderr = "";
    proc.stderr!.on("data", (d) => (stderr += d));
    await waitFor(() => /"event":"connect_retry"/.test(stderr), 15_000);
    const sent = Date.now();
    proc.kill("SIGTERM");
    const r = await result;
    expect(r.code, r.stderr).toBe(0);
    expect(Date.now() - sent).toBeLessThan(5_000);
  });
});

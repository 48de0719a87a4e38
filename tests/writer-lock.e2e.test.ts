/**
 * One writer per data dir, and a readiness that tells the truth, with real processes against a
 * real nats-server: a second daemon is refused with the holder named; `kill -9` of the holder
 * frees the data dir at once; a daemon whose durable consumer another client takes over reports
 * not ready, and repairs itself once the other client is gone.
 */
import { afterEach, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, startNatsServer, type NatsServer } from "../src/testing/nats-server.js";
import { recordMessage, type OutgoingMessage } from "../src/producers/publisher.js";
import { runCli, startCli, type CliResult } from "./helpers/cli.js";
import { publishToStream } from "./helpers/stream.js";
import { tempDirs } from "./helpers/tmp.js";
import type { ChildProcess } from "node:child_process";

const tmp = tempDirs("lock");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const FIXTURE = fileURLToPath(new URL("./fixtures/transactions.csv", import.meta.url));

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(200);
  }
}

function transactions(tag: string, n: number): OutgoingMessage[] {
  return Array.from({ length: n }, (_, i) =>
    recordMessage("transactions", { transaction_id: `${tag}-${i}`, customer_id: `c${i % 30}`, amount: 2, currency: "USD", transaction_date: "2026-11-02T08:00:00Z" }),
  );
}

async function bronzeMessages(dir: string): Promise<number | undefined> {
  const r = await runCli(["status", "--data-dir", dir, "--format", "json"]);
  return r.code === 0 ? (JSON.parse(r.stdout) as { bronze: { messages: number } }).bronze.messages : undefined;
}

describe("one writer per data dir", () => {
  let server: NatsServer | null = null;
  const daemons: { proc: ChildProcess; result: Promise<CliResult> }[] = [];
  afterEach(async () => {
    for (const d of daemons.splice(0)) {
      d.proc.kill("SIGKILL");
      await d.result;
    }
    await server?.stop();
    server = null;
  });

  it("refuses a second run or ingest with the holder named; readers work; after kill -9 a new daemon starts at once", async () => {
    server = await startNatsServer();
    const dir = tmp();
    await publishToStream(server.url, transactions("a", 2_000));
    const first = startCli(["run", "--nats", server.url, "--data-dir", dir, "--http", "off"]);
    daemons.push(first);
    await waitFor("the first daemon to hold every message", async () => ((await bronzeMessages(dir)) === 2_000 ? true : undefined), 30_000);

    const started = Date.now();
    const second = await runCli(["run", "--nats", server.url, "--data-dir", dir, "--http", "off"]);
    expect(second.code, second.stderr).toBe(2);
    const lines = second.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(`^tributary: data dir in use: .* is being written by tributary run \\(pid ${first.proc.pid} on ${hostname()}, since \\d{4}-\\d\\d-\\d\\dT`),
    );
    expect(Date.now() - started).toBeLessThan(10_000);

    const ingest = await runCli(["ingest", FIXTURE, "--data-dir", dir]);
    expect(ingest.code, ingest.stderr).toBe(2);
    expect(ingest.stderr).toContain(`pid ${first.proc.pid}`);

    // Readers are not writers.
    const features = await runCli(["features", "--data-dir", dir, "--format", "csv"]);
    expect(features.code, features.stderr).toBe(0);
    expect(features.stdout.trim().split("\n").length).toBe(31);

    first.proc.kill("SIGKILL");
    await first.result;
    await publishToStream(server.url, transactions("b", 100));
    const restarted = Date.now();
    const third = await runCli(["run", "--drain", "--nats", server.url, "--data-dir", dir, "--http", "off"]);
    expect(third.code, third.stderr).toBe(0);
    expect(Date.now() - restarted).toBeLessThan(20_000);
    expect(await bronzeMessages(dir)).toBe(2_100);
  });

  it("goes not ready while another daemon consumes its durable consumer, and repairs itself once that daemon is gone", async () => {
    server = await startNatsServer();
    const dir = tmp();
    let published = await publishToStream(server.url, transactions("warm", 200));
    const port = await freePort();
    const config = join(tmp(), "tributary.yaml");
    // A short stall timeout keeps the test short: detection and recovery scale with it.
    writeFileSync(config, "nats:\n  stallTimeout: 4s\n");
    const daemon = startCli(["run", "--config", config, "--nats", server.url, "--data-dir", dir, "--http", `127.0.0.1:${port}`], { TRIBUTARY_LOG_LEVEL: "info" });
    daemons.push(daemon);
    const readyz = async () => {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`);
      return { status: res.status, body: (await res.json()) as { status: string; reason?: string } };
    };
    await waitFor("ready", async () => ((await readyz()).status === 200 ? true : undefined), 30_000);
    await waitFor("the warm-up messages", async () => ((await bronzeMessages(dir)) === published ? true : undefined), 30_000);

    // A second daemon, on a data dir of its own, consumes the same durable consumer.
    const otherPort = await freePort();
    const other = startCli(["run", "--config", config, "--nats", server.url, "--data-dir", tmp(), "--http", `127.0.0.1:${otherPort}`]);
    daemons.push(other);
    let publishing = true;
    const publisher = (async () => {
      for (let round = 0; publishing; round++) {
        published += await publishToStream(server!.url, transactions(`fight-${round}`, 20));
        await sleep(100);
      }
    })();
    const takenOverAt = Date.now();
    let notReady: { status: number; body: { status: string; reason?: string } };
    try {
      notReady = await waitFor(
        "/readyz to report the takeover",
        async () => {
          const r = await readyz();
          return r.status === 503 ? r : undefined;
        },
        60_000,
      );
    } finally {
      other.proc.kill("SIGKILL");
      await other.result;
      publishing = false;
      await publisher;
    }
    expect(Date.now() - takenOverAt).toBeLessThan(60_000);
    expect(notReady.body.reason).toMatch(/another client/);

    // The other daemon is gone: the daemon reads every message itself, once, and is ready again.
    published += await publishToStream(server.url, transactions("after", 50));
    await waitFor("every message in bronze", async () => ((await bronzeMessages(dir)) === published ? true : undefined), 60_000);
    await waitFor("ready again", async () => ((await readyz()).status === 200 ? true : undefined), 60_000);
    const r = await runCli(["status", "--data-dir", dir, "--format", "json"]);
    const s = JSON.parse(r.stdout) as { bronze: { messages: number }; silver: Record<string, number>; duplicates: Record<string, number> };
    expect(s.bronze.messages).toBe(published);
    expect(s.silver.transactions).toBe(published);
    expect(s.duplicates.transactions).toBe(0);
  });
});

/**
 * The daemon's own numbers right after a restart, against a real nats-server: /metrics serves the
 * data dir's positions, silver's totals and the watermark before anything new is committed, and
 * keeps them current afterwards; the exit summary counts busy time apart from elapsed time; and
 * `status` gives the stream's last sequence and bronze's lag when NATS answers, and its local
 * numbers when it does not.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { generateWorkload } from "../src/sources/generator.js";
import { recordMessage } from "../src/producers/publisher.js";
import { METRIC_NAMES } from "../src/observability/metrics.js";
import { freePort, startNatsServer, type NatsServer } from "../src/testing/nats-server.js";
import type { Status } from "../src/status.js";
import { runCli, startCli, type CliResult } from "./helpers/cli.js";
import { publishToStream } from "./helpers/stream.js";
import { tempDirs } from "./helpers/tmp.js";

const tempDir = tempDirs("daemon-numbers");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until it returns a value, or fails after the deadline. */
async function poll<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Every sample of a metric in the exposition text, keyed by its label set as printed (`""` without labels). */
function samples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)$`, "gm"))) out.set(m[1] ?? "", Number(m[2]));
  return out;
}

/** Sums a metric's samples by one label. */
function byLabel(text: string, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [labels, v] of samples(text, name)) {
    const key = new RegExp(`${label}="([^"]*)"`).exec(labels)![1]!;
    out[key] = (out[key] ?? 0) + v;
  }
  return out;
}

const nonZero = (counts: Record<string, number>) => Object.fromEntries(Object.entries(counts).filter(([, n]) => n > 0));

async function status(dir: string, ...flags: string[]): Promise<Status> {
  const r = await runCli(["status", "--data-dir", dir, "--format", "json", ...flags]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Status;
}

/** What /metrics should say about a data dir, from `status`. */
function expectMetricsEqualStatus(text: string, s: Status): void {
  expect(byLabel(text, "tributary_position", "layer")).toEqual(s.positions);
  expect(byLabel(text, "tributary_silver_records", "entity")).toEqual(nonZero(s.silver));
  expect(byLabel(text, "tributary_silver_duplicates", "entity")).toEqual(nonZero(s.duplicates));
  expect(byLabel(text, "tributary_silver_quarantined", "reason")).toEqual(nonZero(s.quarantine));
  expect(s.watermark).not.toBeNull();
  expect(Math.round(samples(text, "tributary_watermark_timestamp_seconds").get("")! * 1000)).toBe(Date.parse(s.watermark!));
}

describe("the daemon's numbers after a restart", () => {
  let server: NatsServer;
  let dir: string;
  let published: number;
  let daemon: { proc: ChildProcess; result: Promise<CliResult> } | null = null;
  let base: string;
  const metrics = async () => {
    const res = await fetch(`${base}/metrics`);
    return res.status === 200 ? res.text() : undefined;
  };
  const later = [
    ...Array.from({ length: 20 }, (_, i) =>
      recordMessage("transactions", { transaction_id: `restart-${i}`, customer_id: `c${i % 4}`, amount: 3, currency: "USD", transaction_date: "2026-11-20T10:00:00Z" }),
    ),
    // No amount: quarantined as missing_field.
    recordMessage("transactions", { transaction_id: "restart-bad", customer_id: "c1", currency: "USD", transaction_date: "2026-11-20T10:00:00Z" }),
  ];

  beforeAll(async () => {
    server = await startNatsServer();
    published = await publishToStream(server.url, generateWorkload({ seed: 5, messages: 3_000 }));
    dir = tempDir();
    const drained = await runCli(["run", "--drain", "--nats", server.url, "--data-dir", dir, "--connect-timeout", "10"]);
    expect(drained.code, drained.stderr).toBe(0);
  });
  afterAll(async () => {
    daemon?.proc.kill("SIGKILL");
    await server?.stop();
  });

  it("serves the data dir's positions, silver totals and watermark on /metrics before its first commit", async () => {
    const before = await status(dir);
    expect(before.positions).toEqual({ bronze: published, silver: published, gold: published });
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    daemon = startCli(["run", "--nats", server.url, "--data-dir", dir, "--http", `127.0.0.1:${port}`]);
    const text = await poll("/metrics to serve", metrics);
    // Nothing was published since the drain: this process has committed nothing yet.
    expect(samples(text, "tributary_messages_total").size).toBe(0);
    expectMetricsEqualStatus(text, before);
    const check = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
    expect(check.error, "promtool must be installed (Debian package prometheus)").toBeUndefined();
    expect(check.status, check.stdout + check.stderr).toBe(0);
    // The README's metrics table names exactly the tributary metrics /metrics exports.
    const exported = [...text.matchAll(/^# TYPE (tributary_\w+) /gm)].map((m) => m[1]!).sort();
    expect(exported.sort()).toEqual([...METRIC_NAMES].sort());
    const readme = readFileSync(fileURLToPath(new URL("../README.md", import.meta.url)), "utf8");
    const table = readme.slice(readme.indexOf("| metric | type | labels |"));
    const rows = table.slice(0, table.indexOf("\n\n")).split("\n").map((row) => row.split("|")[1] ?? "");
    expect(rows.flatMap((cell) => [...cell.matchAll(/`(tributary_\w+)`/g)].map((m) => m[1]!)).sort()).toEqual(exported);
  });

  it("keeps them current with the commits that follow", async () => {
    expect(await publishToStream(server.url, later)).toBe(later.length);
    const gold = published + later.length;
    const text = await poll("gold to apply the new messages", async () => {
      const t = await metrics();
      return t !== undefined && samples(t, "tributary_position").get('layer="gold"') === gold ? t : undefined;
    });
    const after = await status(dir);
    expect(after.positions).toEqual({ bronze: gold, silver: gold, gold });
    expectMetricsEqualStatus(text, after);
    // The run's own counters count only this process's commits.
    expect(byLabel(text, "tributary_messages_total", "layer").bronze).toBe(later.length);
  });

  it("prints its rate over busy time beside the rate over elapsed time when it stops", async () => {
    daemon!.proc.kill("SIGTERM");
    const r = await daemon!.result;
    daemon = null;
    expect(r.code, r.stderr.slice(-1000)).toBe(0);
    const value = (row: string) => Number(new RegExp(`^${row}\\s+([\\d.,]+) (?:s|msg/s)$`, "m").exec(r.stdout)?.[1]?.replace(/,/g, ""));
    expect(r.stdout).toMatch(new RegExp(`^bronze messages\\s+${later.length}$`, "m"));
    // The daemon waited for this test's steps far longer than it took to commit 21 messages.
    expect(value("busy")).toBeLessThan(value("elapsed"));
    expect(value("rate over busy")).toBeGreaterThan(value("rate over elapsed"));
  });

  it("status gives the stream's last sequence, bronze's lag and the consumer's backlog when NATS answers", async () => {
    const waiting = Array.from({ length: 37 }, (_, i) =>
      recordMessage("events", { event_id: `waiting-${i}`, customer_id: "c2", event_type: "view", event_timestamp: "2026-11-21T11:00:00Z" }),
    );
    expect(await publishToStream(server.url, waiting)).toBe(waiting.length);
    const bronze = published + later.length;
    const s = await status(dir, "--nats", server.url);
    expect(s.bronze.position).toBe(bronze);
    expect(s.stream).toMatchObject({
      reachable: true,
      name: "TRIBUTARY",
      lastSeq: bronze + waiting.length,
      origin: "jetstream:TRIBUTARY",
      bronzeLastSeq: bronze,
      lag: waiting.length,
      consumer: { name: "tributary", pending: waiting.length, ackPending: 0, ackFloor: bronze },
    });
    const table = await runCli(["status", "--data-dir", dir, "--nats", server.url]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`^stream: TRIBUTARY, last sequence ${bronze + waiting.length} `, "m"));
    expect(table.stdout).toMatch(new RegExp(`^lag: ${waiting.length} `, "m"));
    expect(table.stdout).toMatch(new RegExp(`^consumer: tributary, pending ${waiting.length}, ack pending 0$`, "m"));
  });

  it("status prints the local numbers and why the stream is unreachable when NATS does not answer", async () => {
    const nowhere = `nats://127.0.0.1:${await freePort()}`;
    const local = await status(dir, "--nats", nowhere);
    expect(local.bronze.messages).toBe(published + later.length);
    expect(local.positions.gold).toBe(published + later.length);
    expect(local.stream).toEqual({ reachable: false, name: "TRIBUTARY", reason: expect.stringMatching(/^cannot reach NATS at .*connection refused/) });
    const table = await runCli(["status", "--data-dir", dir, "--nats", nowhere]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`^bronze messages\\s+${published + later.length}$`, "m"));
    expect(table.stdout).toMatch(/^stream: unreachable \(cannot reach NATS at .+\)$/m);
  });
});

/**
 * The daemon as an operator runs it: `tributary run` with its HTTP endpoints, against a real
 * nats-server. /metrics must pass `promtool check metrics`; /features agrees with the CLI;
 * readiness follows the broker.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateWorkload } from "../src/sources/generator.js";
import { METRIC_NAMES } from "../src/observability/metrics.js";
import { freePort, startNatsServer, type NatsServer } from "../src/testing/nats-server.js";
import { runCli, startCli, type CliResult } from "./helpers/cli.js";
import { publishToStream } from "./helpers/stream.js";
import type { ChildProcess } from "node:child_process";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("tributary run with HTTP endpoints", () => {
  let server: NatsServer;
  let daemon: { proc: ChildProcess; result: Promise<CliResult> };
  let base: string;
  let dir: string;
  let published: number;

  const get = async (path: string) => {
    const res = await fetch(base + path);
    return { status: res.status, type: res.headers.get("content-type") ?? "", body: await res.text() };
  };
  const waitUntil = async (cond: () => Promise<boolean>, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await cond().catch(() => false))) {
      if (Date.now() > deadline) throw new Error("timed out waiting");
      await sleep(100);
    }
  };
  const bronzeTotal = async () => {
    const text = (await get("/metrics")).body;
    return [...text.matchAll(/^tributary_messages_total\{layer="bronze",entity="[^"]+"\} (\d+)/gm)].reduce((a, m) => a + Number(m[1]), 0);
  };

  beforeAll(async () => {
    server = await startNatsServer();
    published = await publishToStream(server.url, generateWorkload({ seed: 3, messages: 5_000 }));
    dir = mkdtempSync(join(tmpdir(), "tributary-daemon-"));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    daemon = startCli(["run", "--nats", server.url, "--data-dir", dir, "--http", `127.0.0.1:${port}`], { TRIBUTARY_LOG_LEVEL: "info" });
    await waitUntil(async () => (await get("/readyz")).status === 200);
    await waitUntil(async () => (await bronzeTotal()) === published);
  });
  afterAll(async () => {
    daemon?.proc.kill("SIGKILL");
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves /metrics that pass promtool, with every tributary metric and no customer ids", async () => {
    // Acks reach the server after the bronze commit, and the consumer-info gauges are cached for a
    // second per scrape, so the backlog reads 0 shortly after bronze catches up, not at once.
    await waitUntil(async () => /^tributary_consumer_pending 0$/m.test((await get("/metrics")).body) && /^tributary_consumer_ack_pending 0$/m.test((await get("/metrics")).body));
    const m = await get("/metrics");
    expect(m.status).toBe(200);
    expect(m.type).toMatch(/text\/plain/);
    const check = spawnSync("promtool", ["check", "metrics"], { input: m.body, encoding: "utf8" });
    expect(check.error, "promtool must be installed (Debian package prometheus)").toBeUndefined();
    expect(check.status, check.stdout + check.stderr).toBe(0);
    for (const name of METRIC_NAMES) expect(m.body, name).toMatch(new RegExp(`^# TYPE ${name} `, "m"));
    expect(m.body).toMatch(/^process_resident_memory_bytes \d+/m);
    expect(m.body).toMatch(/^tributary_quarantined_total\{entity="transactions",reason="missing_field"\} \d+/m);
    expect(m.body).toMatch(/^tributary_end_to_end_latency_seconds_count [1-9]\d*/m);
    expect(m.body).toMatch(/^tributary_consumer_pending 0$/m);
    expect(m.body).toMatch(/^tributary_consumer_ack_pending 0$/m);
    // Customer ids look like 1000123; none may appear as a label value.
    expect(m.body).not.toMatch(/="1\d{6}"/);
  });

  it("answers /healthz and /readyz", async () => {
    expect((await get("/healthz")).status).toBe(200);
    const ready = await get("/readyz");
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({ status: "ready" });
  });

  it("serves /features/<id> exactly as `tributary features --customer ID --format json`", async () => {
    const csv = (await runCli(["features", "--data-dir", dir, "--as-of", "2026-03-01", "--format", "csv"])).stdout;
    const ids = csv.trim().split("\n").slice(1, 6).map((line) => line.split(",")[0]!);
    expect(ids.length).toBe(5);
    for (const id of ids) {
      const http = await get(`/features/${encodeURIComponent(id)}?as_of=2026-03-01`);
      expect(http.status).toBe(200);
      const cli = await runCli(["features", "--data-dir", dir, "--as-of", "2026-03-01", "--customer", id, "--format", "json"]);
      expect(JSON.parse(http.body)).toEqual(JSON.parse(cli.stdout));
    }
    const missing = await get("/features/no-such-customer");
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body)).toMatchObject({ error: "customer not found", customer_id: "no-such-customer" });
    expect((await get("/features/x?as_of=yesterday")).status).toBe(400);
  });

  it("reflects new data in /features after the next gold commit", async () => {
    const before = JSON.parse((await get("/features/1000001?as_of=2027-01-01")).body);
    const tx = { transaction_id: "late-http-1", customer_id: "1000001", amount: 100, currency: "USD", transaction_date: "2026-01-10T00:00:00Z" };
    const { recordMessage } = await import("../src/producers/publisher.js");
    await publishToStream(server.url, [recordMessage("transactions", tx)]);
    await waitUntil(async () => JSON.parse((await get("/features/1000001?as_of=2027-01-01")).body).purchase_frequency === before.purchase_frequency + 1);
    const after = JSON.parse((await get("/features/1000001?as_of=2027-01-01")).body);
    expect(after.total_spend).toBeCloseTo(before.total_spend + 100, 2);
    // A record on a day the lookups' presence bitmaps hold (gold's 64 newest): the HTTP thread sees
    // it once it commits, and answers as the CLI, which seeks every day, does.
    const asOf = "2026-03-25T06:00:00Z";
    const path = `/features/1000002?as_of=${encodeURIComponent(asOf)}`;
    const earlier = JSON.parse((await get(path)).body);
    await publishToStream(server.url, [recordMessage("transactions", { ...tx, transaction_id: "late-http-2", customer_id: "1000002", transaction_date: "2026-03-20T12:00:00Z" })]);
    await waitUntil(async () => JSON.parse((await get(path)).body).purchase_frequency === earlier.purchase_frequency + 1);
    const cli = await runCli(["features", "--data-dir", dir, "--as-of", asOf, "--customer", "1000002", "--format", "json"]);
    expect(JSON.parse((await get(path)).body)).toEqual(JSON.parse(cli.stdout));
  });

  it("is not ready while NATS is down, and ready again after it returns", async () => {
    await server.down();
    await waitUntil(async () => (await get("/readyz")).status === 503);
    const r = await get("/readyz");
    expect(JSON.parse(r.body)).toMatchObject({ status: "not ready", reason: expect.stringMatching(/NATS/) });
    expect((await get("/healthz")).status).toBe(200);
    await server.up();
    await waitUntil(async () => (await get("/readyz")).status === 200, 30_000);
  });

  it("stops on SIGTERM with exit 0 and logs a shutdown summary", async () => {
    daemon.proc.kill("SIGTERM");
    const r = await daemon.result;
    expect(r.code, r.stderr.slice(-1000)).toBe(0);
    const events = r.stderr
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l).event);
    for (const e of ["connected", "http_listening", "storage_opened", "disconnected", "reconnected", "signal", "shutdown"]) expect(events, e).toContain(e);
  });
});

describe("tributary config check", () => {
  it("accepts the documented example and masks secrets", async () => {
    const ok = await runCli(["config", "check", "tributary.example.yaml"], { TRIBUTARY_HTTP_LISTEN: "" });
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ nats: { stream: "TRIBUTARY" }, http: { listen: "127.0.0.1:9464" } });
    const dir = mkdtempSync(join(tmpdir(), "tributary-config-"));
    try {
      const file = join(dir, "secret.yaml");
      const { writeFileSync } = await import("node:fs");
      writeFileSync(file, "nats:\n  url: nats://app:${NATS_PASSWORD}@127.0.0.1:4222\n  pass: ${NATS_PASSWORD}\n");
      const masked = await runCli(["config", "check", file], { NATS_PASSWORD: "s3cr3t-value" });
      expect(masked.code).toBe(0);
      expect(masked.stdout).not.toContain("s3cr3t-value");
      expect(JSON.parse(masked.stdout).nats).toMatchObject({ url: "nats://***@127.0.0.1:4222", pass: "***" });
      writeFileSync(file, "nats:\n  ackWait: soon\n");
      const bad = await runCli(["config", "check", file]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/nats\.ackWait/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("takes TRIBUTARY_* environment overrides", async () => {
    const r = await runCli(["config", "check", "tributary.example.yaml"], { TRIBUTARY_NATS_URL: "nats://10.1.2.3:4222", TRIBUTARY_BATCH_MAX_RECORDS: "123" });
    expect(JSON.parse(r.stdout)).toMatchObject({ nats: { url: "nats://10.1.2.3:4222" }, batch: { maxRecords: 123 } });
  });
});

/**
 * The command line as a user meets it: file ingestion with hand-computed expected features,
 * idempotent re-ingestion, `publish` into a real nats-server, and one-line errors with exit codes.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runCli } from "./helpers/cli.js";
import { parseFeatureCsv } from "./helpers/compare.js";
import { freePort, startNatsServer, type NatsServer } from "../src/testing/nats-server.js";

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const FILES = ["customers.json", "transactions.csv", "sessions.ndjson", "interactions-2026.json"].map(fixture);

describe("tributary ingest / features / status", () => {
  const dirs: string[] = [];
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), "tributary-cli-"));
    dirs.push(d);
    return d;
  };
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it("ingests CSV, NDJSON and JSON files and computes the features by hand", async () => {
    const dir = tmp();
    const ingest = await runCli(["ingest", ...FILES, "--data-dir", dir]);
    expect(ingest.code, ingest.stderr).toBe(0);
    expect(ingest.stdout).toMatch(/bronze messages\s+19/);

    const out = await runCli(["features", "--data-dir", dir, "--as-of", "2026-02-15", "--format", "csv"]);
    expect(out.code, out.stderr).toBe(0);
    const rows = Object.fromEntries(parseFeatureCsv(out.stdout).map((r) => [r.customer_id, r]));
    expect(Object.keys(rows)).toEqual(["7", "alice", "bob", "carol"]); // dave's only record is after the as-of day
    expect(rows.alice).toEqual({
      customer_id: "alice",
      customer_segment: "premium",
      purchase_frequency: "3",
      total_spend: "166.7",
      avg_transaction_value: "55.57",
      first_transaction_at: "2026-01-05T10:00:00.000Z",
      last_transaction_at: "2026-01-31T23:59:59.000Z",
      recency_days: "14.000012",
      transactions_last_30_days: "2",
      spend_last_30_days: "66.7",
      session_count: "2",
      avg_session_duration_seconds: "2700",
      interaction_count: "1",
      event_count: "0",
      days_since_registration: "76",
    });
    expect(rows.bob).toMatchObject({ customer_segment: "unknown", purchase_frequency: "1", total_spend: "20", recency_days: "13.5", days_since_registration: "5", avg_session_duration_seconds: "" });
    expect(rows["7"]).toMatchObject({ customer_segment: "smb", purchase_frequency: "0", total_spend: "0", avg_transaction_value: "", recency_days: "", days_since_registration: "" });
    expect(rows.carol).toMatchObject({ customer_segment: "unknown", recency_days: "31.041667", transactions_last_30_days: "0", spend_last_30_days: "0" });

    const one = await runCli(["features", "--data-dir", dir, "--as-of", "2026-02-15", "--customer", "alice", "--format", "json"]);
    expect(JSON.parse(one.stdout)).toMatchObject({ customer_id: "alice", purchase_frequency: 3, total_spend: 166.7, avg_transaction_value: 55.57 });

    const status = JSON.parse((await runCli(["status", "--data-dir", dir, "--format", "json"])).stdout);
    expect(status.bronze.messages).toBe(19);
    expect(status.silver).toMatchObject({ customers: 3, transactions: 5, interactions: 2, events: 0, sessions: 2 });
    expect(status.duplicates).toMatchObject({ transactions: 1, sessions: 1 });
    expect(status.quarantine).toMatchObject({ invalid_range: 2, unknown_currency: 1, invalid_timestamp: 1, decode_error: 1 });

    // Ingesting the same files again changes nothing: positions are remembered per file.
    const again = await runCli(["ingest", ...FILES, "--data-dir", dir]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/bronze messages\s+0/);
    expect(JSON.parse((await runCli(["status", "--data-dir", dir, "--format", "json"])).stdout).bronze.messages).toBe(19);
  });

  it("rejects a wrong config key or value with one line naming it and exit code 2", async () => {
    const dir = tmp();
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "dedupe:\n  windw: 7d\n");
    const r = await runCli(["features", "--config", bad]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("dedupe.windw");
    writeFileSync(bad, "currency:\n  base: usd\n  rates:\n    USD: -1\n");
    const r2 = await runCli(["features", "--config", bad]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain("currency.rates.USD");
  });

  it("says clearly when there is no data yet", async () => {
    const r = await runCli(["features", "--data-dir", join(tmp(), "nothing")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no gold data in .*run `tributary run` or `tributary ingest` first/);
  });

  it("gives up connecting with --drain after the timeout, exit code 3 and a one-line reason", async () => {
    const port = await freePort();
    const r = await runCli(["run", "--drain", "--nats", `nats://127.0.0.1:${port}`, "--data-dir", tmp(), "--connect-timeout", "2"]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/cannot reach NATS at nats:\/\/127\.0\.0\.1:\d+/);
    expect(r.stderr).toMatch(/NATS unreachable, retrying/);
  });
});

describe("tributary publish", () => {
  let server: NatsServer;
  beforeAll(async () => {
    server = await startNatsServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("publishes files as MessagePack with the entity id as Nats-Msg-Id, then run --drain consumes them", async () => {
    const files = FILES.slice(0, 3);
    const first = await runCli(["publish", ...files, "--nats", server.url]);
    expect(first.code, first.stderr).toBe(0);
    // transactions.csv holds t1 twice and sessions.ndjson s1 twice: the broker drops the second
    // copies by their Nats-Msg-Id. The line that is not JSON is published as it is.
    expect(first.stdout).toContain("published 15 messages");
    expect(first.stdout).toContain("2 dropped by the broker as duplicates");
    expect(first.stdout).toContain("1 not valid records, published as they are");
    // Publishing again stores only the line that has no id for the broker to dedupe by.
    // The server from TRIBUTARY_NATS_URL alone, with no file, flag or NATS_URL.
    const again = await runCli(["publish", ...files], { TRIBUTARY_NATS_URL: server.url });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain("published 1 messages");
    expect(again.stdout).toContain("16 dropped by the broker as duplicates");

    const dir = mkdtempSync(join(tmpdir(), "tributary-pub-"));
    try {
      const run = await runCli(["run", "--drain", "--data-dir", dir], { NATS_URL: server.url });
      expect(run.code, run.stderr).toBe(0);
      const status = JSON.parse((await runCli(["status", "--data-dir", dir, "--format", "json"])).stdout);
      expect(status.bronze.messages).toBe(16);
      expect(status.silver).toMatchObject({ customers: 3, transactions: 5, sessions: 2 });
      expect(status.quarantine).toMatchObject({ decode_error: 2, invalid_range: 2 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the tributary bin", () => {
  it("is executable and starts Node with the recommended flags, as `npx tributary` runs it", async () => {
    const { execFileSync } = await import("node:child_process");
    const { readFileSync, statSync } = await import("node:fs");
    const { RECOMMENDED_NODE_FLAGS } = await import("../src/runtime/node-flags.js");
    const pkg = JSON.parse(readFileSync(fileURLToPath(new URL("../package.json", import.meta.url)), "utf8"));
    const bin = fileURLToPath(new URL(`../${pkg.bin.tributary}`, import.meta.url));
    expect(statSync(bin).mode & 0o111, "the build must mark the bin executable").not.toBe(0);
    expect(readFileSync(bin, "utf8").split("\n")[0]).toBe(`#!/usr/bin/env -S node ${RECOMMENDED_NODE_FLAGS.join(" ")}`);
    // Run through the shebang, not through `node`: this is what fails when the mode bit is missing.
    expect(execFileSync(bin, ["--version"], { encoding: "utf8" }).trim()).toBe(pkg.version);
  });
});

describe("config errors and config check, as a user meets them", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "tributary-cli-config-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const f = join(dir, name);
    writeFileSync(f, text);
    return f;
  };

  it("prints every problem at once, one prefixed line each, with a did-you-mean, and exits 2", async () => {
    const r = await runCli(["config", "check", file("many.yaml", "dedupe:\n  windw: 7d\nbatch:\n  maxRecords: many\n  maxWait: 7 fortnights\n")]);
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(3);
    for (const line of lines) expect(line).toMatch(/^tributary: config error: /);
    expect(lines).toContain("tributary: config error: unknown key dedupe.windw (did you mean dedupe.window?)");
    expect(lines).toContain('tributary: config error: batch.maxRecords: expected a number, got "many"');
    expect(lines.some((l) => l.startsWith('tributary: config error: batch.maxWait: unknown unit "fortnights"'))).toBe(true);
    expect(r.stdout).toBe("");
  });

  it("prints durations as written, and the defaults in their largest unit", async () => {
    const r = await runCli(["config", "check", file("durations.yaml", "dedupe:\n  window: 7d\nbatch:\n  maxWait: 250\nnats:\n  ackWait: 30 seconds\n")], { TRIBUTARY_STORAGE_BUSY_TIMEOUT: "2 minutes" });
    expect(r.code, r.stderr).toBe(0);
    const shown = JSON.parse(r.stdout);
    expect(shown.dedupe.window).toBe("7d");
    expect(shown.batch.maxWait).toBe(250);
    expect(shown.nats).toMatchObject({ ackWait: "30 seconds", stallTimeout: "15s" });
    expect(shown.storage.busyTimeout).toBe("2 minutes");
    expect(r.stdout).not.toContain("604800000");
  });

  it("warns once about an unknown TRIBUTARY_* variable and goes on", async () => {
    const r = await runCli(["config", "check", file("empty.yaml", "{}\n")], { TRIBUTARY_NATS_URLL: "nats://elsewhere:4222" });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.trim().split("\n")).toEqual(["tributary: warning: unknown environment variable TRIBUTARY_NATS_URLL, ignored (did you mean TRIBUTARY_NATS_URL?)"]);
    expect(JSON.parse(r.stdout).nats.url).toBe("nats://127.0.0.1:4222");
    const status = await runCli(["status", "--data-dir", join(dir, "none")], { TRIBUTARY_DEDUP_WINDOW: "3d" });
    expect(status.stderr.match(/unknown environment variable/g)).toHaveLength(1);
    expect(status.stderr).toContain("TRIBUTARY_DEDUP_WINDOW, ignored (did you mean TRIBUTARY_DEDUPE_WINDOW?)");
  });

  it("names the environment variable a bad value came from", async () => {
    const r = await runCli(["config", "check", file("empty2.yaml", "{}\n")], { TRIBUTARY_BATCH_MAX_RECORDS: "abc" });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('tributary: config error: TRIBUTARY_BATCH_MAX_RECORDS (batch.maxRecords): expected a number, got "abc"');
  });
});

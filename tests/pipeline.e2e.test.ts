/**
 * End to end, as a user runs it: a real nats-server, `tributary run --drain`, then
 * `tributary features --as-of D --format csv` and `tributary status --format json`, checked
 * against an independent computation from the same records.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { generateWorkload, type GeneratedMessage } from "../src/sources/generator.js";
import { publishAll } from "../src/producers/publisher.js";
import { DEFAULT_RATES } from "../src/config.js";
import { startNatsServer, type NatsServer } from "../src/testing/nats-server.js";
import { runCli } from "./helpers/cli.js";
import { acceptInOrder, referenceFeatures } from "../src/testing/reference.js";
import { expectFeaturesMatch, parseFeatureCsv } from "./helpers/compare.js";

const AS_OF = ["2026-02-15", "2026-03-20", "2026-05-01"];

/** The generator's workload plus hand-written edge cases of the contract. */
function workload(): GeneratedMessage[] {
  const msgs = [...generateWorkload({ seed: 7, messages: 6_000, customers: 300, duplicateRate: 0.08, invalidRate: 0.03, lateRate: 0.05, jsonRate: 0.3 })];
  const enc = new TextEncoder();
  // JSON with leading blanks and no header; a record for a customer with no profile; a late record.
  msgs.push({
    subject: "tributary.transactions.eu",
    data: enc.encode('  \n {"transaction_id": 990001, "customer_id": "solo-1", "amount": "12.50", "currency": "gbp", "transaction_date": "2026-01-20"}'),
    contentType: null,
    msgId: "edge-1",
    expect: { valid: true, entity: "transactions", id: "990001", customerId: "solo-1", eventAt: Date.UTC(2026, 0, 20), amount: 12.5, currency: "GBP" },
  });
  msgs.push({
    subject: "tributary.events",
    data: enc.encode(JSON.stringify({ event_id: "late-1", customer_id: "solo-1", event_type: "login", event_timestamp: "2026-01-02T03:04:05+01:00" })),
    contentType: "application/json",
    msgId: "edge-2",
    expect: { valid: true, entity: "events", id: "late-1", customerId: "solo-1", eventAt: Date.UTC(2026, 0, 2, 2, 4, 5) },
  });
  return msgs;
}

async function publish(url: string, msgs: readonly GeneratedMessage[]): Promise<void> {
  const nc = await connect({ servers: url });
  try {
    // The stream must exist before publishing; `tributary run` would create it too.
    const { jetstreamManager } = await import("@nats-io/jetstream");
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "TRIBUTARY", subjects: ["tributary.>"] });
    const r = await publishAll(nc, msgs);
    expect(r.stored).toBe(msgs.length);
  } finally {
    await nc.close();
  }
}

async function drainAndCheck(server: NatsServer, msgs: readonly GeneratedMessage[], dataDir: string): Promise<void> {
  const run = await runCli(["run", "--drain", "--nats", server.url, "--data-dir", dataDir]);
  expect(run.stderr).not.toMatch(/error/i);
  expect(run.code).toBe(0);
  expect(run.stdout).toMatch(/bronze messages\s+\d+/);

  const expectations = msgs.map((m) => m.expect);
  for (const day of AS_OF) {
    const out = await runCli(["features", "--data-dir", dataDir, "--as-of", day, "--format", "csv"]);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout.split("\n")[0]).toBe(
      "customer_id,customer_segment,purchase_frequency,total_spend,avg_transaction_value,first_transaction_at,last_transaction_at,recency_days,transactions_last_30_days,spend_last_30_days,session_count,avg_session_duration_seconds,interaction_count,event_count,days_since_registration",
    );
    const expected = referenceFeatures(expectations, DEFAULT_RATES, Date.parse(`${day}T00:00:00Z`));
    expect(expected.length).toBeGreaterThan(50);
    expectFeaturesMatch(parseFeatureCsv(out.stdout), expected);
  }

  // Nothing lost silently: every published message is in bronze, and they all add up.
  const status = JSON.parse((await runCli(["status", "--data-dir", dataDir, "--format", "json"])).stdout);
  expect(status.bronze.messages).toBe(msgs.length);
  const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);
  expect(sum(status.silver) + sum(status.duplicates) + sum(status.quarantine)).toBe(status.bronze.messages);
  const { counts } = acceptInOrder(expectations);
  for (const [k, v] of Object.entries(counts.valid)) expect(status.silver[k], `silver ${k}`).toBe(v);
  for (const [k, v] of Object.entries(counts.duplicates)) expect(status.duplicates[k], `duplicates ${k}`).toBe(v);
  for (const [k, v] of Object.entries(counts.quarantined)) expect(status.quarantine[k], `quarantine ${k}`).toBe(v);
  // Every reason code of the contract was exercised.
  for (const reason of ["decode_error", "unknown_entity", "missing_field", "invalid_type", "invalid_timestamp", "invalid_range", "unknown_currency", "future_timestamp"]) {
    expect(status.quarantine[reason], reason).toBeGreaterThan(0);
  }
}

describe("JetStream → tributary run --drain → features", () => {
  let server: NatsServer;
  const dirs: string[] = [];
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), "tributary-e2e-"));
    dirs.push(d);
    return d;
  };

  beforeAll(async () => {
    server = await startNatsServer();
  });
  afterAll(async () => {
    await server?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("gives exactly the independently computed features, and accounts for every message", async () => {
    const msgs = workload();
    await publish(server.url, msgs);
    await drainAndCheck(server, msgs, tmp());
  });

  it("gives the features computed for the reverse order when the same records arrive reversed", async () => {
    const reversed = await startNatsServer();
    try {
      const msgs = workload().reverse();
      await publish(reversed.url, msgs);
      await drainAndCheck(reversed, msgs, tmp());
    } finally {
      await reversed.stop();
    }
  });
});

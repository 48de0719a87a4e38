/**
 * Stages of an embedder's own, inserted at a named point of the graph through createTopology: one
 * that redacts a field, one that routes records to quarantine with a reason of its own. Real SQLite
 * files; the replay of bronze after silver and gold are lost runs the same stages.
 */
import { describe, expect, it } from "vitest";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { EMPTY, from, toArray, lastValueFrom } from "rxjs";
import Database from "better-sqlite3";
import { createTopology } from "../src/topology.js";
import { composeStages, type InsertedStage } from "../src/operators/stage.js";
import { decode, decodeStage } from "../src/operators/decode.js";
import { validate, validateStage } from "../src/operators/validate.js";
import type { SourceMessage, Staged } from "../src/types.js";
import { readStatus } from "../src/status.js";
import { tempDirs } from "./helpers/tmp.js";

const tmp = tempDirs("stages");
const enc = new TextEncoder();
const msg = (seq: number, entity: string, record: Record<string, unknown>): SourceMessage => ({
  origin: "test:stages",
  originSeq: seq,
  subject: `tributary.${entity}`,
  data: enc.encode(JSON.stringify(record)),
  receivedAt: Date.UTC(2026, 10, 30),
  publishedAt: null,
  contentType: "application/json",
  msgId: null,
});

const MESSAGES = [
  msg(1, "customers", { customer_id: "c1", email: "c1@example.com", customer_segment: "smb" }),
  msg(2, "customers", { customer_id: "c2", email: "c2@example.com" }),
  msg(3, "transactions", { transaction_id: "t1", customer_id: "c1", amount: 50, currency: "USD", transaction_date: "2026-11-01T10:00:00Z" }),
  msg(4, "transactions", { transaction_id: "t2", customer_id: "c1", amount: 5000, currency: "USD", transaction_date: "2026-11-02T10:00:00Z" }),
  msg(5, "transactions", { transaction_id: "t3", customer_id: "c2", amount: 70, currency: "USD", transaction_date: "2026-11-03T10:00:00Z" }),
  msg(6, "transactions", { transaction_id: "t4", customer_id: "c2", amount: -1, currency: "USD", transaction_date: "2026-11-03T10:00:00Z" }),
];

const redactEmail: InsertedStage = {
  after: "validate",
  id: "redact-email",
  apply: (s) =>
    s.outcome.status === "valid" && s.outcome.record.entity === "customers" ? { ...s, outcome: { ...s.outcome, record: { ...s.outcome.record, email: null } } } : s,
};
const holdLarge: InsertedStage = {
  after: "validate",
  id: "hold-large",
  apply: (s) =>
    s.outcome.status === "valid" && s.outcome.record.entity === "transactions" && s.outcome.record.amount > 1000
      ? { ...s, outcome: { status: "quarantined", reason: "needs_review", field: "amount", detail: "over 1000, held for review" } }
      : s,
};

function silver(dir: string, sql: string): unknown[] {
  const db = new Database(join(dir, "silver.sqlite"), { readonly: true });
  try {
    return db.prepare(sql).all();
  } finally {
    db.close();
  }
}

describe("inserted stages", () => {
  it("redact a field and route records to quarantine with a reason of their own, live and in bronze replay", async () => {
    const dir = tmp();
    const t = createTopology({ dataDir: dir, source: { kind: "observable", messages: from(MESSAGES) }, stages: [redactEmail, holdLarge], metrics: false });
    await t.start();
    const stats = await t.done;
    expect(stats.quarantined).toMatchObject({ needs_review: 1, invalid_range: 1 });
    const check = () => {
      expect(silver(dir, "SELECT customer_id, email FROM customers ORDER BY 1")).toEqual([
        { customer_id: "c1", email: null },
        { customer_id: "c2", email: null },
      ]);
      expect(silver(dir, "SELECT transaction_id FROM transactions ORDER BY 1")).toEqual([{ transaction_id: "t1" }, { transaction_id: "t3" }]);
      expect(silver(dir, "SELECT bronze_seq, reason, field, detail FROM quarantine ORDER BY 1")).toEqual([
        { bronze_seq: 4, reason: "needs_review", field: "amount", detail: "over 1000, held for review" },
        { bronze_seq: 6, reason: "invalid_range", field: "amount", detail: expect.any(String) },
      ]);
      expect(readStatus(dir).quarantine).toMatchObject({ needs_review: 1, invalid_range: 1 });
      expect(t.features.get("c1")).toMatchObject({ purchase_frequency: 1, total_spend: 50 });
    };
    check();

    // Silver and gold are lost: the next start replays bronze through the same stages.
    for (const layer of ["silver", "gold"]) for (const suffix of ["", "-wal", "-shm"]) rmSync(join(dir, `${layer}.sqlite${suffix}`), { force: true });
    const again = createTopology({ dataDir: dir, source: { kind: "observable", messages: EMPTY }, stages: [redactEmail, holdLarge], metrics: false });
    await again.start();
    await again.done;
    check();
  });

  it("run in order after the stage they name; the composition equals the pipeable operators", async () => {
    const seen: string[] = [];
    const tag = (id: string, after: "decode" | "validate"): InsertedStage => ({ id, after, apply: (s) => (seen.push(`${id}:${s.outcome.status}`), s) });
    const options = { maxPayloadBytes: 1 << 20 };
    const vOptions = { rates: { USD: 1 } };
    const run = composeStages(decodeStage(options), [validateStage(vOptions)], [tag("b", "validate"), tag("a", "decode"), tag("c", "validate")]);
    const out = MESSAGES.slice(2, 3).map(run);
    expect(seen).toEqual(["a:decoded", "b:valid", "c:valid"]);
    const piped = await lastValueFrom(from(MESSAGES.slice(2, 3)).pipe(decode(options), validate(vOptions), toArray()));
    expect(out.map((s: Staged) => s.outcome)).toEqual(piped.map((s) => s.outcome));
    expect(() => composeStages(decodeStage(options), [validateStage(vOptions)], [{ id: "x", after: "aggregate" as "decode", apply: (s) => s }])).toThrow(/"after" must be one of decode, validate/);
    expect(() => composeStages(decodeStage(options), [validateStage(vOptions)], [{ id: "validate", after: "decode", apply: (s) => s }])).toThrow(/used twice/);
  });
});

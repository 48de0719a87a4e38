/**
 * An entity of an embedder's own (examples/returns-entity.ts), added through createTopology with
 * two custom features over it. Real SQLite files: its records are validated against its own
 * fields, deduplicated by its id, kept in a silver table of its own, aggregated exactly at
 * mid-day instants against a plain computation, and rebuilt the same from bronze when silver and
 * gold are lost.
 */
import { describe, expect, it } from "vitest";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { from } from "rxjs";
import Database from "better-sqlite3";
import { createTopology } from "../src/topology.js";
import { resolveEntities, silverTableSql } from "../src/model/entities.js";
import { entitySchema } from "../src/model/schema.js";
import { exportLayer } from "../src/serving/export.js";
import type { SourceMessage } from "../src/types.js";
import { RETURNS, RETURN_FEATURES } from "../examples/returns-entity.js";
import { tempDirs } from "./helpers/tmp.js";

const tmp = tempDirs("entity");
const DAY = 86_400_000;
const enc = new TextEncoder();
const RATES = { USD: 1, EUR: 1.08 };

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

interface Return {
  id: string;
  c: string;
  at: number;
  amount: number;
  currency: "USD" | "EUR";
  reason: string | null;
}

function workload() {
  const r = rng(7);
  const start = Date.UTC(2026, 8, 1);
  const returns: Return[] = [];
  const bodies: { subject: string; body: Record<string, unknown> }[] = [];
  for (let i = 0; i < 800; i++) {
    const x: Return = {
      id: `r${i}`,
      c: `c${Math.floor(r() * 9)}`,
      at: start + Math.floor(r() * 80 * DAY),
      amount: Math.round(r() * 20_000) / 100,
      currency: r() < 0.5 ? "USD" : "EUR",
      reason: r() < 0.3 ? "damaged" : r() < 0.5 ? null : "wrong size",
    };
    returns.push(x);
    bodies.push({
      subject: "tributary.returns",
      body: { return_id: x.id, customer_id: x.c, amount: x.amount, currency: x.currency, returned_at: new Date(x.at).toISOString(), ...(x.reason === null ? {} : { reason: x.reason }) },
    });
  }
  // A copy of an earlier return (a duplicate), one without an amount, one with an unknown currency.
  bodies.push({ subject: "tributary.returns", body: { ...bodies[3]!.body, amount: 1 } });
  bodies.push({ subject: "tributary.returns", body: { return_id: "bad1", customer_id: "c1", currency: "USD", returned_at: "2026-10-01T00:00:00Z" } });
  bodies.push({ subject: "tributary.returns", body: { return_id: "bad2", customer_id: "c1", amount: 3, currency: "XYZ", returned_at: "2026-10-01T00:00:00Z" } });
  // A built-in entity beside it, so both kinds share the customers.
  bodies.push({ subject: "tributary.transactions", body: { transaction_id: "t1", customer_id: "c1", amount: 10, currency: "USD", transaction_date: "2026-10-02T12:00:00Z" } });
  // Late and out of order: arrival order unrelated to event time.
  const order = bodies.map((_, i) => i).sort(() => r() - 0.5);
  const messages: SourceMessage[] = order.map((k, i) => ({
    origin: "test:returns",
    originSeq: i + 1,
    subject: bodies[k]!.subject,
    data: enc.encode(JSON.stringify(bodies[k]!.body)),
    receivedAt: Date.UTC(2026, 10, 30),
    publishedAt: null,
    contentType: "application/json",
    msgId: null,
  }));
  return { returns, messages };
}

function query(dir: string, sql: string): unknown[] {
  const db = new Database(join(dir, "silver.sqlite"), { readonly: true });
  try {
    return db.prepare(sql).all();
  } finally {
    db.close();
  }
}

const topologyFor = (dir: string, messages: readonly SourceMessage[]) =>
  createTopology({
    dataDir: dir,
    entities: [RETURNS],
    source: { kind: "observable", messages: from(messages) },
    metrics: false,
    config: { storage: { commitThread: "worker" }, currency: { rates: RATES }, features: { custom: RETURN_FEATURES.map((f) => ({ ...f })) } },
  });

describe("an entity added through createTopology", () => {
  it("is validated, deduplicated, kept in its own silver table and aggregated exactly, live and after a rebuild from bronze", async () => {
    const { returns, messages } = workload();
    const dir = tmp();
    const t = topologyFor(dir, messages);
    await t.start();
    const stats = await t.done;
    expect(stats.quarantined).toMatchObject({ missing_field: 1, unknown_currency: 1 });
    expect(query(dir, "SELECT reason, field FROM quarantine ORDER BY reason")).toEqual([
      { reason: "missing_field", field: "amount" },
      { reason: "unknown_currency", field: "currency" },
    ]);
    expect(query(dir, "SELECT entity, entity_id FROM duplicates")).toEqual([{ entity: "returns", entity_id: "r3" }]);

    const check = (features: (id: string, at: number) => Record<string, unknown> | null) => {
      const rows = query(dir, "SELECT return_id, customer_id, amount, currency, amount_base, returned_at, reason FROM returns ORDER BY return_id") as Record<string, unknown>[];
      expect(rows).toHaveLength(returns.length);
      const r3 = rows.find((x) => x.return_id === "r3")!;
      expect(r3.amount).toBe(returns[3]!.amount); // the first copy won
      expect(rows.filter((x) => x.reason === "unspecified")).toHaveLength(returns.filter((x) => x.reason === null).length);
      for (const T of [Date.UTC(2026, 9, 3, 9, 41), Date.UTC(2026, 9, 20, 0, 0), Date.UTC(2026, 10, 19, 23, 59, 59, 999), Date.UTC(2026, 10, 30)]) {
        for (let k = 0; k < 9; k++) {
          const id = `c${k}`;
          const label = `${id} at ${new Date(T).toISOString()}`;
          const mine = returns.filter((x) => x.c === id && x.at < T);
          const row = features(id, T);
          if (mine.length === 0 && !(id === "c1" && T > Date.UTC(2026, 9, 2, 12))) {
            expect(row, label).toBeNull();
            continue;
          }
          const refunded = mine.filter((x) => x.at >= T - 30 * DAY).reduce((a, x) => a + Math.round(x.amount * RATES[x.currency] * 1e6), 0) / 1e6;
          expect(row!.refunded_last_30_days, label).toBe(Math.round(refunded * 100) / 100);
          expect(row!.damaged_returns, label).toBe(mine.filter((x) => x.reason === "damaged").length);
        }
      }
    };
    check((id, at) => t.features.get(id, at) as Record<string, unknown> | null);
    await t.stop();

    // A silver export through the library writes the added entity's table too.
    const out = join(dir, "export");
    const files = exportLayer({ dataDir: dir, layer: "silver", format: "csv", outDir: out, entities: resolveEntities([RETURNS]), commandLine: [] });
    expect(files.map((f) => f.table)).toContain("silver.returns");
    expect(files.find((f) => f.table === "silver.returns")!.manifest.rows).toBe(returns.length);

    // Lose silver and gold: the next start rebuilds both from bronze, through the same entity.
    for (const f of ["silver.sqlite", "gold.sqlite"]) for (const x of ["", "-wal", "-shm"]) rmSync(join(dir, f + x), { force: true });
    const again = topologyFor(dir, []);
    await again.start();
    await again.done;
    check((id, at) => again.features.get(id, at) as Record<string, unknown> | null);
    await again.stop();
  });

  it("derives its DDL and JSON Schema from the definition, and rejects a wrong definition with its path", () => {
    expect(silverTableSql(RETURNS)).toContain("return_id TEXT PRIMARY KEY");
    expect(silverTableSql(RETURNS)).toContain("CREATE INDEX returns_by_time ON returns(returned_at)");
    const schema = entitySchema(RETURNS, { rates: RATES, minEventTime: 0, maxIdLength: 256, maxTextLength: 1024 }) as { required: string[] };
    expect(schema.required).toEqual(["return_id", "customer_id", "amount", "currency", "returned_at"]);
    expect(() => resolveEntities([{ ...RETURNS, eventTime: "reason" }])).toThrow("entities[0].eventTime: eventTime \"reason\" must name a field of kind timestamp");
    expect(() => resolveEntities([{ ...RETURNS, name: "transactions" }])).toThrow('entities[0].name: entity "transactions" is defined twice');
    expect(() => resolveEntities([{ ...RETURNS, fields: RETURNS.fields.filter((f) => f.name !== "customer_id") }])).toThrow("needs a required customer_id");
    expect(() => resolveEntities([{ ...RETURNS, name: "quarantine" }])).toThrow("one of silver's own tables");
    expect(() => resolveEntities([{ ...RETURNS, derived: [{ column: "amount_base", derive: { baseAmountOf: "reason" } }] }])).toThrow("entities[0].derived[0].derive: baseAmountOf must name an amount field");
    expect(() => resolveEntities([{ ...RETURNS, fields: [...RETURNS.fields, { name: "available_at", kind: "timestamp" }] }])).toThrow(/column "available_at" is used twice/);
    expect(() =>
      createTopology({ dataDir: tmp(), entities: [RETURNS], metrics: false, config: { features: { custom: [{ name: "x", from: "returns", aggregate: "sum", field: "nope" }] } } }),
    ).toThrow(/features\.custom\.0\.field.*unknown field "nope" of returns/);
  });
});

/**
 * The JSON Schema that `tributary schema` prints agrees with the validator: every record the
 * generator makes and every quarantine fixture goes through both, an independent JSON Schema
 * validator (ajv) and decode → validate, and they must give the same verdict, except for the
 * rules the schema documents it cannot express.
 */
import { describe, expect, it } from "vitest";
import { Ajv2020 } from "ajv/dist/2020.js";
import { generateWorkload } from "../../src/sources/generator.js";
import { decodeMessage } from "../../src/operators/decode.js";
import { validateRecord } from "../../src/operators/validate.js";
import { contractSchemas, SCHEMA_LIMITATIONS } from "../../src/model/schema.js";
import { parseConfig } from "../../src/config.js";
import type { Entity, SourceMessage } from "../../src/types.js";
import { ENTITIES } from "../../src/types.js";

const config = parseConfig({});
const schemas = contractSchemas({ rates: config.currency.rates, ...config.limits });
const ajv = new Ajv2020({ strict: true, allErrors: true, unicodeRegExp: true });
const check = Object.fromEntries(ENTITIES.map((e) => [e, ajv.compile(schemas[e])])) as Record<Entity, ReturnType<typeof ajv.compile>>;

/** Reasons a static schema cannot decide (see SCHEMA_LIMITATIONS), or that are about the message. */
const BEYOND_SCHEMA = new Set(["future_timestamp", "decode_error", "unknown_entity", "oversize"]);

/** A decoded record as a JSON producer would send it: dates as ISO strings, no undefined. */
function asJson(fields: Record<string, unknown>): unknown {
  return JSON.parse(JSON.stringify(fields, (_k, v) => (typeof v === "bigint" ? Number(v) : v)));
}

function message(subject: string, data: Uint8Array, contentType: string | null): SourceMessage {
  return { origin: "test", originSeq: 1, subject, data, receivedAt: Date.now(), publishedAt: null, contentType, msgId: null };
}

describe("tributary schema (JSON Schema) against the validator", () => {
  it("accepts every valid generated record and rejects every invalid one the schema can decide", () => {
    let valid = 0;
    let rejected = 0;
    const skipped = new Map<string, number>();
    for (const m of generateWorkload({ seed: 5, messages: 20_000, invalidRate: 0.05 })) {
      const staged = decodeMessage(message(m.subject, m.data, m.contentType), { maxPayloadBytes: config.limits.maxPayloadBytes, maxDepth: config.limits.maxDepth, maxFields: config.limits.maxFields });
      if (staged.outcome.status !== "decoded") continue;
      const entity = staged.entity as Entity;
      if (!ENTITIES.includes(entity)) continue;
      const outcome = validateRecord(staged, { rates: config.currency.rates, ...config.limits }).outcome;
      const ok = check[entity](asJson(staged.outcome.fields));
      if (outcome.status === "valid") {
        expect(ok, `${m.subject} ${JSON.stringify(asJson(staged.outcome.fields))}: ${ajv.errorsText(check[entity].errors)}`).toBe(true);
        valid++;
      } else if (outcome.status === "quarantined") {
        const decidable = !BEYOND_SCHEMA.has(outcome.reason) && !(outcome.reason === "invalid_range" && outcome.field === "session_end");
        if (!decidable) {
          skipped.set(outcome.reason, (skipped.get(outcome.reason) ?? 0) + 1);
          continue;
        }
        expect(ok, `${m.subject} (${outcome.reason} on ${outcome.field}) ${JSON.stringify(asJson(staged.outcome.fields))}`).toBe(false);
        const at = (check[entity].errors ?? []).map((e) => e.instancePath || `/${(e.params as { missingProperty?: string }).missingProperty}`);
        expect(at.some((p) => p === `/${outcome.field}` || p.startsWith(`/${outcome.field}/`)), `${outcome.reason}: errors at ${at.join(", ")}`).toBe(true);
        rejected++;
      }
    }
    expect(valid).toBeGreaterThan(10_000);
    expect(rejected).toBeGreaterThan(300);
    // The generator also makes the cases the schema says it cannot decide.
    expect([...skipped.keys()].sort()).toEqual(["future_timestamp", "invalid_range"]);
  });

  it("rejects hostile values the validator rejects: control characters, long ids, huge amounts, early epochs, unknown currencies", () => {
    const base = { transaction_id: "t1", customer_id: "c1", amount: 12.5, currency: "usd", transaction_date: "2026-11-20T10:00:00Z" };
    expect(check.transactions(base)).toBe(true);
    for (const bad of [
      { ...base, customer_id: "a\u0000b" },
      { ...base, customer_id: "evil\u202e" },
      { ...base, customer_id: "x".repeat(257) },
      { ...base, customer_id: "   " },
      { ...base, amount: 1e308 },
      { ...base, amount: -0.01 },
      { ...base, amount: "12,5" },
      { ...base, currency: "XYZ" },
      { ...base, transaction_date: -1 },
      { ...base, transaction_date: "2026-13-01" },
      { ...base, transaction_date: 1.5 },
    ]) {
      expect(check.transactions(bad), JSON.stringify(bad)).toBe(false);
    }
    // Optional fields may be null or absent; their defaults apply.
    expect(check.sessions({ session_id: "s", customer_id: "c", session_start: "2026-11-20", session_end: "2026-11-20T01:00:00Z", device_type: null })).toBe(true);
    expect(check.customers({ customer_id: 7 })).toBe(true);
  });

  it("says what it cannot express", () => {
    expect(SCHEMA_LIMITATIONS.length).toBeGreaterThan(3);
    expect(String(schemas.transactions.$comment)).toContain("future_timestamp");
  });
});

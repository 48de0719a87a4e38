import { describe, expect, it } from "vitest";
import { from, lastValueFrom, toArray } from "rxjs";
import { pack } from "msgpackr";
import { decode, decodeMessage, entityOf, isJsonPayload } from "../../src/operators/decode.js";
import type { Staged } from "../../src/types.js";
import { sourceMessage } from "./fixtures.js";

const OPTIONS = { maxPayloadBytes: 1024 };
const text = (s: string) => new TextEncoder().encode(s);
const concat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));

function fieldsOf(staged: Staged): Record<string, unknown> {
  expect(staged.outcome.status).toBe("decoded");
  if (staged.outcome.status !== "decoded") throw new Error("unreachable");
  return staged.outcome.fields;
}

function expectQuarantine(staged: Staged, reason: string): void {
  expect(staged.outcome).toMatchObject({ status: "quarantined", reason, field: null });
}

const TX = { transaction_id: "t1", customer_id: "c1", amount: 12.5, currency: "USD", transaction_date: "2026-03-01T10:00:00Z" };

describe("decodeMessage: MessagePack", () => {
  it("decodes a MessagePack map into plain fields", () => {
    const msg = sourceMessage({ data: pack(TX) });
    const staged = decodeMessage(msg, OPTIONS);
    expect(staged.entity).toBe("transactions");
    expect(staged.msg).toBe(msg);
    expect(fieldsOf(staged)).toEqual(TX);
  });

  it("keeps nested values and integer types", () => {
    const staged = decodeMessage(sourceMessage({ data: pack({ customer_id: 1_000_001, tags: ["a", "b"], meta: { x: null } }) }), OPTIONS);
    expect(fieldsOf(staged)).toEqual({ customer_id: 1_000_001, tags: ["a", "b"], meta: { x: null } });
  });

  it("quarantines a MessagePack array as decode_error", () => {
    const staged = decodeMessage(sourceMessage({ data: pack([1, 2, 3]) }), OPTIONS);
    expectQuarantine(staged, "decode_error");
    expect(staged.entity).toBe("transactions");
  });

  it.each([
    ["a string", pack("hello")],
    ["a number", pack(42)],
    ["nil", pack(null)],
    ["a timestamp extension (a Date, not a map)", pack(new Date(0))],
  ])("quarantines %s as decode_error", (_label, data) => {
    expectQuarantine(decodeMessage(sourceMessage({ data }), OPTIONS), "decode_error");
  });

  it.each([
    ["the never-used byte 0xc1 plus junk", Uint8Array.from([0xc1, 0xff, 0x00])],
    ["an unknown extension", Uint8Array.from([0xd4, 0x01, 0x02])],
    ["a map header with missing entries", Uint8Array.from([0x82, 0xa1, 0x61])],
    ["plain text", text("hello world")],
    ["an empty payload", new Uint8Array(0)],
  ])("quarantines garbage bytes (%s) as decode_error", (_label, data) => {
    const staged = decodeMessage(sourceMessage({ data }), OPTIONS);
    expectQuarantine(staged, "decode_error");
  });

  it("quarantines a valid map followed by trailing bytes as decode_error", () => {
    const staged = decodeMessage(sourceMessage({ data: concat(pack(TX), Uint8Array.from([0x01, 0x02])) }), OPTIONS);
    expectQuarantine(staged, "decode_error");
  });

  it("quarantines two concatenated maps as decode_error", () => {
    expectQuarantine(decodeMessage(sourceMessage({ data: concat(pack({ a: 1 }), pack({ b: 2 })) }), OPTIONS), "decode_error");
  });

  it("says which format failed and keeps the detail short", () => {
    const staged = decodeMessage(sourceMessage({ data: concat(pack({ long: "x".repeat(500) }), Uint8Array.from([1])) }), OPTIONS);
    if (staged.outcome.status !== "quarantined") throw new Error("expected a quarantine");
    expect(staged.outcome.detail).toMatch(/^MessagePack/);
    expect(staged.outcome.detail.length).toBeLessThanOrEqual(200);
  });
});

describe("decodeMessage: JSON", () => {
  it("decodes JSON when the content type says so", () => {
    const staged = decodeMessage(sourceMessage({ data: text(JSON.stringify(TX)), contentType: "application/json" }), OPTIONS);
    expect(fieldsOf(staged)).toEqual(TX);
  });

  it("matches the JSON content type case-insensitively and with parameters", () => {
    const staged = decodeMessage(sourceMessage({ data: text(' \n{"a":1}'), contentType: "Application/JSON; charset=utf-8" }), OPTIONS);
    expect(fieldsOf(staged)).toEqual({ a: 1 });
  });

  it("detects JSON by a first byte of '{' without a content type", () => {
    const staged = decodeMessage(sourceMessage({ data: text('{"event_id":"e1","n":2}') }), OPTIONS);
    expect(fieldsOf(staged)).toEqual({ event_id: "e1", n: 2 });
  });

  it("skips leading blanks (space, tab, CR, LF) before the '{'", () => {
    const staged = decodeMessage(sourceMessage({ data: text(' \t\r\n  {"a":"b"}\n') }), OPTIONS);
    expect(fieldsOf(staged)).toEqual({ a: "b" });
  });

  it("decodes UTF-8 text in JSON", () => {
    const staged = decodeMessage(sourceMessage({ data: text('{"name":"Zoë Ångström ✓"}') }), OPTIONS);
    expect(fieldsOf(staged)).toEqual({ name: "Zoë Ångström ✓" });
  });

  it("quarantines JSON with invalid UTF-8 as decode_error", () => {
    const data = concat(text('{"name":"'), Uint8Array.from([0xff, 0xfe]), text('"}'));
    const staged = decodeMessage(sourceMessage({ data }), OPTIONS);
    expectQuarantine(staged, "decode_error");
    if (staged.outcome.status === "quarantined") expect(staged.outcome.detail).toMatch(/^JSON/);
  });

  it("quarantines broken JSON as decode_error", () => {
    expectQuarantine(decodeMessage(sourceMessage({ data: text('{"event_id": "e1", broken') }), OPTIONS), "decode_error");
  });

  it("quarantines a JSON array or scalar sent as JSON as decode_error", () => {
    expectQuarantine(decodeMessage(sourceMessage({ data: text("[1,2]"), contentType: "application/json" }), OPTIONS), "decode_error");
    expectQuarantine(decodeMessage(sourceMessage({ data: text("null"), contentType: "application/json" }), OPTIONS), "decode_error");
    expectQuarantine(decodeMessage(sourceMessage({ data: text('"x"'), contentType: "application/json" }), OPTIONS), "decode_error");
  });

  it("quarantines a valid JSON object followed by more bytes as decode_error", () => {
    expectQuarantine(decodeMessage(sourceMessage({ data: text('{"a":1} {"b":2}') }), OPTIONS), "decode_error");
  });
});

describe("isJsonPayload", () => {
  it("looks at the content type first, then the first non-blank byte", () => {
    expect(isJsonPayload(pack({ a: 1 }), "application/json")).toBe(true);
    expect(isJsonPayload(text("  {"), null)).toBe(true);
    expect(isJsonPayload(text("  ["), null)).toBe(false);
    expect(isJsonPayload(pack({ a: 1 }), null)).toBe(false);
    expect(isJsonPayload(pack({ a: 1 }), "application/msgpack")).toBe(false);
    expect(isJsonPayload(new Uint8Array(0), null)).toBe(false);
    expect(isJsonPayload(text("   "), null)).toBe(false);
  });
});

describe("decodeMessage: subjects", () => {
  it("quarantines a subject naming no known entity as unknown_entity, keeping the raw token", () => {
    const staged = decodeMessage(sourceMessage({ subject: "tributary.widgets", data: pack(TX) }), OPTIONS);
    expectQuarantine(staged, "unknown_entity");
    expect(staged.entity).toBe("widgets");
  });

  it("quarantines a subject with no entity token as unknown_entity", () => {
    expectQuarantine(decodeMessage(sourceMessage({ subject: "tributary", data: pack(TX) }), OPTIONS), "unknown_entity");
  });

  it("is case-sensitive about the entity token", () => {
    expectQuarantine(decodeMessage(sourceMessage({ subject: "tributary.Transactions", data: pack(TX) }), OPTIONS), "unknown_entity");
  });

  it("takes the entity from the second token when the subject has more", () => {
    const staged = decodeMessage(sourceMessage({ subject: "tributary.transactions.eu", data: pack(TX) }), OPTIONS);
    expect(staged.entity).toBe("transactions");
    expect(fieldsOf(staged)).toEqual(TX);
  });

  it.each(["customers", "transactions", "interactions", "events", "sessions"])("accepts the entity %s", (entity) => {
    const staged = decodeMessage(sourceMessage({ subject: `tributary.${entity}`, data: pack({ a: 1 }) }), OPTIONS);
    expect(staged.entity).toBe(entity);
    expect(staged.outcome.status).toBe("decoded");
  });

  it("entityOf returns the second token", () => {
    expect(entityOf("tributary.transactions.eu.north")).toBe("transactions");
    expect(entityOf("tributary.events")).toBe("events");
    expect(entityOf("tributary")).toBe("");
  });
});

describe("decodeMessage: size limit", () => {
  it("quarantines a payload above maxPayloadBytes as oversize without parsing it", () => {
    const data = pack({ blob: "x".repeat(2000) });
    const staged = decodeMessage(sourceMessage({ data }), OPTIONS);
    expectQuarantine(staged, "oversize");
  });

  it("quarantines oversize garbage as oversize, not decode_error", () => {
    expectQuarantine(decodeMessage(sourceMessage({ data: new Uint8Array(1025).fill(0xc1) }), OPTIONS), "oversize");
  });

  it("accepts a payload of exactly maxPayloadBytes", () => {
    const body = '{"a":""}';
    const data = text(body.replace('""', `"${"x".repeat(1024 - body.length)}"`));
    expect(data.length).toBe(1024);
    expect(decodeMessage(sourceMessage({ data }), OPTIONS).outcome.status).toBe("decoded");
    const over = concat(data, text(" "));
    expectQuarantine(decodeMessage(sourceMessage({ data: over }), OPTIONS), "oversize");
  });
});

describe("decode (pipeable)", () => {
  it("maps every message to one staged record, in order", async () => {
    const msgs = [
      sourceMessage({ originSeq: 1, data: pack(TX) }),
      sourceMessage({ originSeq: 2, subject: "tributary.widgets", data: pack(TX) }),
      sourceMessage({ originSeq: 3, data: text('{"a":1}') }),
      sourceMessage({ originSeq: 4, data: pack([1]) }),
    ];
    const out = await lastValueFrom(from(msgs).pipe(decode(OPTIONS), toArray()));
    expect(out.map((s) => s.msg.originSeq)).toEqual([1, 2, 3, 4]);
    expect(out.map((s) => (s.outcome.status === "quarantined" ? s.outcome.reason : s.outcome.status))).toEqual([
      "decoded",
      "unknown_entity",
      "decoded",
      "decode_error",
    ]);
  });
});

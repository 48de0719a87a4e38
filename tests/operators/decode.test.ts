import { describe, expect, it } from "vitest";
import { from, lastValueFrom, toArray } from "rxjs";
import { pack } from "msgpackr";
import { decode, decodeMessage, entityOf, isJsonPayload } from "../../src/operators/decode.js";
import type { Staged } from "../../src/types.js";
import { sourceMessage } from "../helpers/fixtures.js";

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

/** Bytes of a MessagePack str8 holding `body` as raw bytes (which may be invalid UTF-8). */
const str8 = (body: number[]) => [0xd9, body.length, ...body];
/** A one-entry MessagePack map `{ key: <raw value bytes> }`. */
const mapOf = (key: string, value: number[]) => Uint8Array.from([0x81, ...str8([...text(key)]), ...value]);

describe("decodeMessage: MessagePack strings must be valid UTF-8", () => {
  it.each([
    ["a lone continuation byte", [0x61, 0x80, 0x62]],
    ["an invalid lead byte", [0x61, 0xff, 0x62]],
    ["a truncated 3-byte sequence", [0x61, 0xe2, 0x82]],
    ["an overlong 2-byte NUL", [0xc0, 0x80]],
    ["an overlong 3-byte form", [0xe0, 0x80, 0xaf]],
    ["an encoded surrogate (CESU)", [0xed, 0xa0, 0x80]],
    ["a code point above U+10FFFF", [0xf4, 0x90, 0x80, 0x80]],
    ["an invalid byte deep in a long string", [...text("x".repeat(100)), 0xfe, ...text("y".repeat(100))]],
  ])("quarantines a value with %s as decode_error instead of replacing it", (_label, body) => {
    const staged = decodeMessage(sourceMessage({ subject: "tributary.customers", data: mapOf("customer_id", str8(body)) }), OPTIONS);
    expectQuarantine(staged, "decode_error");
    if (staged.outcome.status === "quarantined") expect(staged.outcome.detail).toMatch(/UTF-8/);
  });

  it("quarantines invalid UTF-8 in a map key", () => {
    const data = Uint8Array.from([0x81, 0xa3, 0x61, 0xff, 0x62, 0x01]);
    expectQuarantine(decodeMessage(sourceMessage({ data }), OPTIONS), "decode_error");
  });

  it("keeps two byte strings that differ only in invalid bytes from colliding into one id", () => {
    const a = decodeMessage(sourceMessage({ data: mapOf("customer_id", str8([0x61, 0xff, 0xfe, 0xfd, 0x62])) }), OPTIONS);
    const b = decodeMessage(sourceMessage({ data: mapOf("customer_id", str8([0x61, 0x80, 0x81, 0x82, 0x62])) }), OPTIONS);
    expect([a.outcome.status, b.outcome.status]).toEqual(["quarantined", "quarantined"]);
  });

  it("decodes valid multi-byte text exactly: accents, CJK, RTL letters and emoji, short and long", () => {
    const values = ["Zoë Ångström", "顧客", "עברית", "😀👍🏽", "👨‍👩‍👧 ".repeat(20), "\u0000"];
    const staged = decodeMessage(sourceMessage({ data: pack({ v: values }) }), OPTIONS);
    expect(fieldsOf(staged)).toEqual({ v: values });
  });
});

describe("decodeMessage: MessagePack headers are checked against the bytes present", () => {
  it.each([
    ["str32 claiming 4 GB", [0x81, 0xa1, 0x61, 0xdb, 0xff, 0xff, 0xff, 0xff, 0x61]],
    ["str16 claiming 65 KB", [0x81, 0xa1, 0x61, 0xda, 0xff, 0xff, 0x61]],
    ["bin32 claiming 4 GB", [0x81, 0xa1, 0x61, 0xc6, 0xff, 0xff, 0xff, 0xff]],
    ["array32 claiming 4 billion elements", [0x81, 0xa1, 0x61, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]],
    // msgpackr would allocate `new Array(n)` up front: 100+ MB for these 9-byte payloads.
    ["array32 claiming 15.7 million elements", [0x81, 0xa1, 0x61, 0xdd, 0x00, 0xf0, 0x00, 0x00, 0x01]],
    ["array32 claiming 33.5 million elements", [0x81, 0xa1, 0x61, 0xdd, 0x02, 0x00, 0x00, 0x00, 0x01]],
    ["a top-level array32 claiming 4 billion elements", [0xdd, 0xff, 0xff, 0xff, 0xff]],
    ["map32 claiming 4 billion entries", [0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x61, 0x01]],
    ["array16 claiming 65,535 elements", [0x81, 0xa1, 0x61, 0xdc, 0xff, 0xff, 0x01, 0x02]],
    ["ext32 claiming 4 GB", [0x81, 0xa1, 0x61, 0xc9, 0xff, 0xff, 0xff, 0xff, 0xff]],
    ["a float64 cut short", [0x81, 0xa1, 0x61, 0xcb, 0x40, 0x09]],
    ["a header cut short", [0x81, 0xa1, 0x61, 0xdb, 0xff]],
  ])("quarantines %s as decode_error without allocating it", (_label, bytes) => {
    const data = Uint8Array.from(bytes);
    const before = process.memoryUsage().rss;
    const started = performance.now();
    const staged = decodeMessage(sourceMessage({ data }), OPTIONS);
    expectQuarantine(staged, "decode_error");
    expect(performance.now() - started).toBeLessThan(50);
    expect(process.memoryUsage().rss - before).toBeLessThan(16 << 20);
  });

  it("quarantines a map key that is not a string", () => {
    expectQuarantine(decodeMessage(sourceMessage({ data: Uint8Array.from([0x81, 0x01, 0x02]) }), OPTIONS), "decode_error");
    expectQuarantine(decodeMessage(sourceMessage({ data: Uint8Array.from([0x81, 0x90, 0x02]) }), OPTIONS), "decode_error");
  });

  it.each([
    ["msgpackr's record extension", [0xd4, 0x72, 0x00]],
    ["msgpackr's bundled strings", [0xd6, 0x62, 0x00, 0x00, 0x00, 0x00]],
    ["a structured-clone pointer", [0x81, 0xa1, 0x61, 0xd6, 0x70, 0x00, 0x00, 0x00, 0x01]],
    ["a timestamp extension of the wrong size", [0x81, 0xa1, 0x61, 0xd5, 0xff, 0x00, 0x00]],
  ])("quarantines %s as decode_error: the only extensions accepted are the timestamp and undefined", (_label, bytes) => {
    expectQuarantine(decodeMessage(sourceMessage({ data: Uint8Array.from(bytes) }), OPTIONS), "decode_error");
  });

  it("accepts msgpackr's undefined (extension 0 of one byte) as an unset field", () => {
    const fields = fieldsOf(decodeMessage(sourceMessage({ data: pack({ a: undefined, b: 1 }) }), OPTIONS));
    expect(fields).toEqual({ a: undefined, b: 1 });
    expectQuarantine(decodeMessage(sourceMessage({ data: Uint8Array.from([0x81, 0xa1, 0x61, 0xd5, 0x00, 0x00, 0x00]) }), OPTIONS), "decode_error");
  });

  it("accepts timestamp extensions of 4, 8 and 12 bytes", () => {
    for (const at of [new Date(Date.UTC(2026, 1, 1)), new Date(Date.UTC(2026, 1, 1, 10, 0, 0, 123)), new Date(Date.UTC(2600, 0, 1)), new Date(-1)]) {
      expect(fieldsOf(decodeMessage(sourceMessage({ data: pack({ at }) }), OPTIONS)).at).toEqual(at);
    }
  });
});

describe("decodeMessage: nesting and size limits", () => {
  const LIMITS = { maxPayloadBytes: 1 << 20, maxDepth: 4, maxFields: 10 };
  const nest = (depth: number): unknown => (depth === 1 ? { a: 1 } : { a: nest(depth - 1) });

  it("accepts nesting up to maxDepth (the record is depth 1) and quarantines one deeper as oversize", () => {
    expect(decodeMessage(sourceMessage({ data: pack(nest(4)) }), LIMITS).outcome.status).toBe("decoded");
    expectQuarantine(decodeMessage(sourceMessage({ data: pack(nest(5)) }), LIMITS), "oversize");
    expect(decodeMessage(sourceMessage({ data: text(JSON.stringify(nest(4))) }), LIMITS).outcome.status).toBe("decoded");
    expectQuarantine(decodeMessage(sourceMessage({ data: text(JSON.stringify(nest(5))) }), LIMITS), "oversize");
  });

  it("counts empty containers as nesting too", () => {
    expectQuarantine(decodeMessage(sourceMessage({ data: pack({ a: [[[[]]]] }) }), LIMITS), "oversize");
    expectQuarantine(decodeMessage(sourceMessage({ data: text('{"a":[[[{}]]]}') }), LIMITS), "oversize");
  });

  it("accepts maxFields map entries and array elements, and quarantines one more as oversize", () => {
    const ten = { a: 1, b: [1, 2, 3], c: { d: 1, e: 2, f: 3 }, g: 4 }; // 4 + 3 + 3 = 10
    const eleven = { ...ten, h: 5 };
    expect(decodeMessage(sourceMessage({ data: pack(ten) }), LIMITS).outcome.status).toBe("decoded");
    expectQuarantine(decodeMessage(sourceMessage({ data: pack(eleven) }), LIMITS), "oversize");
    expect(decodeMessage(sourceMessage({ data: text(JSON.stringify(ten)) }), LIMITS).outcome.status).toBe("decoded");
    expectQuarantine(decodeMessage(sourceMessage({ data: text(JSON.stringify(eleven)) }), LIMITS), "oversize");
    expect(decodeMessage(sourceMessage({ data: text('{"a":[],"b":{},"c":[1,2,3,4,5,6,7]}') }), LIMITS).outcome.status).toBe("decoded");
  });

  it("does not count brackets and commas inside JSON strings, escaped quotes included", () => {
    const tricky = { a: '[[[[[{{{{,,,,,,,,,,,', b: 'say \\"[[[[[\\" \\\\', c: '"]]]]]"' };
    const staged = decodeMessage(sourceMessage({ data: text(JSON.stringify(tricky)) }), LIMITS);
    expect(fieldsOf(staged)).toEqual(tricky);
  });

  it("quarantines 100k-deep MessagePack arrays as oversize, quickly and without recursion", () => {
    const depth = 100_000;
    const data = new Uint8Array(depth + 4);
    data.set([0x81, 0xa1, 0x61]);
    data.fill(0x91, 3, 3 + depth); // fixarray of one element, nested
    data[3 + depth] = 0x01;
    const started = performance.now();
    expectQuarantine(decodeMessage(sourceMessage({ data }), { maxPayloadBytes: 1 << 20 }), "oversize");
    expect(performance.now() - started).toBeLessThan(100);
  });

  it("quarantines 500k-deep JSON as oversize", () => {
    const body = `{"a":${"[".repeat(500_000)}${"]".repeat(500_000)}}`;
    expectQuarantine(decodeMessage(sourceMessage({ data: text(body) }), { maxPayloadBytes: 1 << 21 }), "oversize");
  });

  it("quarantines a 50k-field record as oversize under the default limits", () => {
    const fields = Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`f${i}`, i]));
    expectQuarantine(decodeMessage(sourceMessage({ data: pack(fields) }), { maxPayloadBytes: 1 << 20 }), "oversize");
    expectQuarantine(decodeMessage(sourceMessage({ data: text(JSON.stringify(fields)) }), { maxPayloadBytes: 1 << 20 }), "oversize");
  });
});

describe("decodeMessage: 64-bit integers and prototype keys", () => {
  const int64 = (hi: number, lo: number, signed = false) =>
    Uint8Array.from([0x81, 0xa1, 0x76, signed ? 0xd3 : 0xcf, hi >>> 24, (hi >>> 16) & 0xff, (hi >>> 8) & 0xff, hi & 0xff, lo >>> 24, (lo >>> 16) & 0xff, (lo >>> 8) & 0xff, lo & 0xff]);

  it("decodes a uint64 beyond 2^53 as an exact BigInt instead of rounding it", () => {
    expect(fieldsOf(decodeMessage(sourceMessage({ data: int64(0x00200000, 1) }), OPTIONS)).v).toBe(2n ** 53n + 1n);
    expect(fieldsOf(decodeMessage(sourceMessage({ data: int64(0xffffffff, 0xffffffff) }), OPTIONS)).v).toBe(2n ** 64n - 1n);
    expect(fieldsOf(decodeMessage(sourceMessage({ data: int64(0xffffffff, 0xffffffff, true) }), OPTIONS)).v).toBe(-1);
  });

  it("keeps 64-bit integers within 2^53 as numbers", () => {
    expect(fieldsOf(decodeMessage(sourceMessage({ data: int64(0, 42) }), OPTIONS)).v).toBe(42);
    expect(fieldsOf(decodeMessage(sourceMessage({ data: int64(0x001fffff, 0xffffffff) }), OPTIONS)).v).toBe(Number.MAX_SAFE_INTEGER);
  });

  it("never gives a decoded record a prototype other than Object.prototype", () => {
    const json = decodeMessage(sourceMessage({ data: text('{"__proto__":{"customer_id":"x"},"constructor":"c"}') }), OPTIONS);
    const fields = fieldsOf(json);
    expect(Object.getPrototypeOf(fields)).toBe(Object.prototype);
    expect(Object.hasOwn(fields, "__proto__")).toBe(true);
    expect(Object.hasOwn(fields, "customer_id")).toBe(false);
    const mp = fieldsOf(decodeMessage(sourceMessage({ data: Uint8Array.from([0x82, ...str8([...text("__proto__")]), 0x81, 0xa1, 0x78, 0x01, 0xab, ...text("constructor"), 0x02]) }), OPTIONS));
    expect(Object.getPrototypeOf(mp)).toBe(Object.prototype);
    expect(Object.hasOwn(mp, "constructor")).toBe(true);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });
});

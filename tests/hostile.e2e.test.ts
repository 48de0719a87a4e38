/**
 * A hostile corpus through the real daemon: a real nats-server, raw payloads published to
 * JetStream, `tributary run --drain`, then the CLI's own reports. The MessagePack here is written
 * byte by byte by the test (not by msgpackr), so the daemon sees exactly the headers, widths and
 * special values the corpus means. Each message says what it must become: a valid record (for the
 * independent reference computation of the features) or a quarantine reason and field, checked
 * against silver's quarantine table one by one.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { connect, headers } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { startNatsServer, type NatsServer } from "../src/testing/nats-server.js";
import { acceptInOrder, referenceFeatures } from "../src/testing/reference.js";
import type { Expectation } from "../src/sources/generator.js";
import { DEFAULT_RATES } from "../src/config.js";
import type { Reason } from "../src/types.js";
import { runCli, startCli } from "./helpers/cli.js";
import { expectFeaturesMatch, parseFeatureCsv } from "./helpers/compare.js";
import { tempDirs } from "./helpers/tmp.js";

const DAY = 86_400_000;
const HOUR = 3_600_000;
const MIB = 1_048_576;
/** The server's max_payload in this test: above tributary's 1 MiB, so both limits can be met. */
const SERVER_MAX_PAYLOAD = 2 * MIB;
const RSS_LIMIT_BYTES = 400 * 1024 * 1024;

// ---- a MessagePack writer of our own -------------------------------------------------------------

/** A value written as float64 whatever it is (for -0, NaN, the infinities). */
class F64 {
  constructor(readonly value: number) {}
}
/** A value written as a 64-bit integer: uint64 (0xcf) when >= 0, else int64 (0xd3). */
class Int64 {
  constructor(readonly value: bigint) {}
}
/** A str whose bytes are given as is (which may be invalid UTF-8). */
class RawStr {
  constructor(readonly bytes: Uint8Array) {}
}
/** Bytes spliced in as they are. */
class Raw {
  constructor(readonly bytes: Uint8Array) {}
}

const utf8 = (s: string) => new TextEncoder().encode(s);

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function be(width: number, value: number | bigint): Uint8Array {
  const out = new Uint8Array(width);
  const dv = new DataView(out.buffer);
  if (width === 1) dv.setUint8(0, Number(value));
  else if (width === 2) dv.setUint16(0, Number(value));
  else if (width === 4) dv.setUint32(0, Number(value));
  else dv.setBigUint64(0, BigInt.asUintN(64, BigInt(value)));
  return out;
}

function strHeader(n: number): Uint8Array {
  if (n < 32) return Uint8Array.of(0xa0 | n);
  if (n < 256) return Uint8Array.of(0xd9, n);
  if (n < 65_536) return concat([Uint8Array.of(0xda), be(2, n)]);
  return concat([Uint8Array.of(0xdb), be(4, n)]);
}

/** MessagePack for a value; objects are written with their own enumerable keys, `__proto__` included. */
function mp(v: unknown): Uint8Array {
  if (v instanceof Raw) return v.bytes;
  if (v instanceof RawStr) return concat([strHeader(v.bytes.length), v.bytes]);
  if (v === null || v === undefined) return Uint8Array.of(0xc0);
  if (typeof v === "boolean") return Uint8Array.of(v ? 0xc3 : 0xc2);
  if (v instanceof F64 || (typeof v === "number" && !(Number.isInteger(v) && v >= 0 && v < 2 ** 32 && !Object.is(v, -0)))) {
    const out = new Uint8Array(9);
    out[0] = 0xcb;
    new DataView(out.buffer).setFloat64(1, v instanceof F64 ? v.value : (v as number));
    return out;
  }
  if (typeof v === "number") return v < 128 ? Uint8Array.of(v) : concat([Uint8Array.of(0xce), be(4, v)]);
  if (v instanceof Int64 || typeof v === "bigint") {
    const n = v instanceof Int64 ? v.value : v;
    return concat([Uint8Array.of(n >= 0n ? 0xcf : 0xd3), be(8, n)]);
  }
  if (typeof v === "string") {
    const b = utf8(v);
    return concat([strHeader(b.length), b]);
  }
  if (v instanceof Date) {
    // Timestamp extension, 12-byte form: uint32 nanoseconds, int64 seconds.
    const ms = v.getTime();
    const seconds = Math.floor(ms / 1000);
    return concat([Uint8Array.of(0xc7, 12, 0xff), be(4, (ms - seconds * 1000) * 1_000_000), be(8, BigInt(seconds))]);
  }
  if (Array.isArray(v)) {
    const head = v.length < 16 ? Uint8Array.of(0x90 | v.length) : v.length < 65_536 ? concat([Uint8Array.of(0xdc), be(2, v.length)]) : concat([Uint8Array.of(0xdd), be(4, v.length)]);
    return concat([head, ...v.map(mp)]);
  }
  const keys = Object.keys(v as object);
  const head = keys.length < 16 ? Uint8Array.of(0x80 | keys.length) : keys.length < 65_536 ? concat([Uint8Array.of(0xde), be(2, keys.length)]) : concat([Uint8Array.of(0xdf), be(4, keys.length)]);
  return concat([head, ...keys.flatMap((k) => [mp(k), mp((v as Record<string, unknown>)[k])])]);
}

/** An object with an own `__proto__` (or any) key, as JSON.parse would build it. */
function own(entries: [string, unknown][]): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of entries) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  return o;
}

// ---- the corpus ------------------------------------------------------------------------------------

interface Item {
  readonly label: string;
  readonly subject: string;
  readonly data: Uint8Array;
  readonly contentType?: string;
  /** What the message must become; "receipt" when it depends on the receive time (the 24 h edge). */
  readonly expect: Expectation | "receipt";
}

const NOW = Date.now();
const TODAY = Math.floor(NOW / DAY) * DAY;
/** Noon UTC `n` days before today. */
const daysAgo = (n: number) => TODAY - n * DAY + 12 * HOUR;
const iso = (ms: number) => new Date(ms).toISOString();
const AS_OF = new Date(TODAY + 3 * DAY).toISOString().slice(0, 10);
const AS_OF_MS = Date.parse(`${AS_OF}T00:00:00Z`);

const bad = (reason: Reason, field: string | null): Expectation => ({ valid: false, reason, field });

function tx(id: string, customer: string, amount: unknown, currency: string, at: unknown, extra: Record<string, unknown> = {}) {
  return { transaction_id: id, customer_id: customer, amount, currency, transaction_date: at, ...extra };
}
const txOk = (id: string, customerId: string, amount: number, currency: string, eventAt: number): Expectation => ({
  valid: true,
  entity: "transactions",
  id,
  customerId,
  eventAt,
  amount,
  currency: currency.toUpperCase(),
});
const evOk = (entity: "interactions" | "events", id: string, customerId: string, eventAt: number): Expectation => ({ valid: true, entity, id, customerId, eventAt });
const profileOk = (id: string, segment: string, registrationAt: number | null): Expectation => ({ valid: true, entity: "customers", id, segment, registrationAt });

const asMp = (label: string, entity: string, value: unknown, expect: Item["expect"]): Item => ({ label, subject: `tributary.${entity}`, data: mp(value), expect });
const asJson = (label: string, entity: string, json: string, expect: Item["expect"], contentType?: string): Item => ({
  label,
  subject: `tributary.${entity}`,
  data: utf8(json),
  expect,
  contentType,
});

/** A MessagePack transaction padded by a `pad` string to exactly `size` bytes. */
function paddedTransaction(id: string, size: number): Uint8Array {
  const record = (n: number) => mp({ ...tx(id, "padded", 2, "USD", daysAgo(2)), pad: "p".repeat(n) });
  let n = size - record(0).length;
  while (record(n).length > size) n--;
  const out = record(n);
  expect(out.length).toBe(size);
  return out;
}

function goodBefore(): Item[] {
  return [
    asJson("good-1 profile", "customers", JSON.stringify({ customer_id: "good-1", name: "Ada", email: "ada@example.com", registration_date: iso(daysAgo(40)), customer_segment: "premium" }), profileOk("good-1", "premium", daysAgo(40))),
    asMp("good-1 tx USD", "transactions", tx("g1-t1", "good-1", 10, "USD", daysAgo(20)), txOk("g1-t1", "good-1", 10, "USD", daysAgo(20))),
    asJson("good-1 tx EUR", "transactions", JSON.stringify(tx("g1-t2", "good-1", 20.5, "EUR", iso(daysAgo(10)))), txOk("g1-t2", "good-1", 20.5, "EUR", daysAgo(10)), "application/json"),
    asMp("good-1 session", "sessions", { session_id: "g1-s1", customer_id: "good-1", session_start: daysAgo(5), session_end: iso(daysAgo(5) + 30 * 60_000), device_type: "mobile" }, {
      valid: true,
      entity: "sessions",
      id: "g1-s1",
      customerId: "good-1",
      eventAt: daysAgo(5),
      sessionEndAt: daysAgo(5) + 30 * 60_000,
    }),
    asMp("good-1 interaction", "interactions", { interaction_id: "g1-i1", customer_id: "good-1", interaction_date: iso(daysAgo(4)), interaction_type: "chat" }, evOk("interactions", "g1-i1", "good-1", daysAgo(4))),
    asMp("good-1 interaction 2", "interactions", { interaction_id: "g1-i2", customer_id: "good-1", interaction_date: daysAgo(3), interaction_type: "email_open" }, evOk("interactions", "g1-i2", "good-1", daysAgo(3))),
    asMp("good-1 event", "events", { event_id: "g1-e1", customer_id: "good-1", event_type: "login", event_timestamp: new Date(daysAgo(2)) }, evOk("events", "g1-e1", "good-1", daysAgo(2))),
    asMp("good-2 profile", "customers", { customer_id: "good-2", customer_segment: "smb", registration_date: null }, profileOk("good-2", "smb", null)),
    asMp("good-2 old tx", "transactions", tx("g2-t1", "good-2", 99.99, "gbp", daysAgo(50)), txOk("g2-t1", "good-2", 99.99, "GBP", daysAgo(50))),
  ];
}

function goodBetween(): Item[] {
  return [
    asMp("good-1 tx string amount", "transactions", tx("g1-t3", "good-1", "5.25", "GBP", iso(daysAgo(1))), txOk("g1-t3", "good-1", 5.25, "GBP", daysAgo(1))),
    asMp("good-2 tx cent", "transactions", tx("g2-t2", "good-2", 0.01, "USD", daysAgo(1)), txOk("g2-t2", "good-2", 0.01, "USD", daysAgo(1))),
    asJson("__proto__ as a customer: profile", "customers", '{"customer_id":"__proto__","customer_segment":"enterprise","registration_date":"' + iso(daysAgo(30)) + '"}', profileOk("__proto__", "enterprise", daysAgo(30))),
    asJson(
      "__proto__ as a customer: tx, with a constructor key",
      "transactions",
      `{"transaction_id":"pt-1","customer_id":"__proto__","amount":7,"currency":"USD","transaction_date":"${iso(daysAgo(6))}","constructor":{"prototype":{"polluted":true}}}`,
      txOk("pt-1", "__proto__", 7, "USD", daysAgo(6)),
    ),
    asMp("constructor as a customer, with a __proto__ key", "transactions", own([["__proto__", { customer_id: "evil" }], ...Object.entries(tx("ct-1", "constructor", 3, "USD", daysAgo(6)))]), txOk("ct-1", "constructor", 3, "USD", daysAgo(6))),
    asJson("toString as a customer", "transactions", JSON.stringify(tx("ts-1", "toString", 4, "CAD", iso(daysAgo(7)))), txOk("ts-1", "toString", 4, "CAD", daysAgo(7))),
    asJson(
      "hasOwnProperty as a customer profile, with a toString key",
      "customers",
      '{"customer_id":"hasOwnProperty","customer_segment":"smb","toString":"x","valueOf":1}',
      profileOk("hasOwnProperty", "smb", null),
    ),
    asMp("SQL in an id and a text", "events", { event_id: "sql-1", customer_id: "'); DROP TABLE customers;--", event_type: "1; DELETE FROM quarantine", event_timestamp: daysAgo(3) }, evOk("events", "sql-1", "'); DROP TABLE customers;--", daysAgo(3))),
    asJson("SQL in a segment", "customers", JSON.stringify({ customer_id: "'); DROP TABLE customers;--", customer_segment: "x'; DROP TABLE silver;--" }), profileOk("'); DROP TABLE customers;--", "x'; DROP TABLE silver;--", null)),
    asMp("emoji in an id", "transactions", tx("emoji-1", "🦊-émoji-👍🏽", 12, "JPY", daysAgo(2)), txOk("emoji-1", "🦊-émoji-👍🏽", 12, "JPY", daysAgo(2))),
    asJson("RTL letters in an id", "transactions", JSON.stringify(tx("rtl-1", "לקוח-7", 8, "AUD", iso(daysAgo(2)))), txOk("rtl-1", "לקוח-7", 8, "AUD", daysAgo(2))),
    asMp("exactly minEventTime, as epoch ms", "events", { event_id: "epoch-1", customer_id: "edge-time", event_type: "login", event_timestamp: 0 }, evOk("events", "epoch-1", "edge-time", 0)),
    asJson("exactly minEventTime, as ISO", "events", JSON.stringify({ event_id: "epoch-2", customer_id: "edge-time", event_type: "login", event_timestamp: "1970-01-01T00:00:00Z" }), evOk("events", "epoch-2", "edge-time", 0)),
    asMp("the largest accepted amount", "transactions", tx("big-1", "big-spender", 9_007_199_254.74099, "USD", daysAgo(3)), txOk("big-1", "big-spender", 9_007_199_254.74099, "USD", daysAgo(3))),
    asMp("-0 as float64", "transactions", tx("neg0-1", "zero", new F64(-0), "USD", daysAgo(3)), txOk("neg0-1", "zero", 0, "USD", daysAgo(3))),
    asMp("a small amount as uint64", "transactions", tx("i64-1", "zero", new Int64(5n), "USD", daysAgo(3)), txOk("i64-1", "zero", 5, "USD", daysAgo(3))),
    asMp("23 h after now", "events", { event_id: "f-23h", customer_id: "edge-future", event_type: "login", event_timestamp: NOW + 23 * HOUR }, evOk("events", "f-23h", "edge-future", NOW + 23 * HOUR)),
  ];
}

function goodAfter(): Item[] {
  return [
    asMp("good-1 last tx", "transactions", tx("g1-t4", "good-1", 1, "USD", NOW - HOUR), txOk("g1-t4", "good-1", 1, "USD", NOW - HOUR)),
    asJson("good-2 event", "events", JSON.stringify({ event_id: "g2-e1", customer_id: "good-2", event_type: "search", event_timestamp: iso(NOW - 2 * HOUR) }), evOk("events", "g2-e1", "good-2", NOW - 2 * HOUR)),
    asMp("good-2 session", "sessions", { session_id: "g2-s1", customer_id: "good-2", session_start: NOW - 3 * HOUR, session_end: NOW - 2 * HOUR }, {
      valid: true,
      entity: "sessions",
      id: "g2-s1",
      customerId: "good-2",
      eventAt: NOW - 3 * HOUR,
      sessionEndAt: NOW - 2 * HOUR,
    }),
    asJson("good-1 profile update (latest wins)", "customers", JSON.stringify({ customer_id: "good-1", name: "Ada L.", registration_date: iso(daysAgo(40)), customer_segment: "vip" }), profileOk("good-1", "vip", daysAgo(40))),
  ];
}

/** The hostile messages, in two halves (known-good records go before, between and after). */
function hostile(): [Item[], Item[]] {
  // A transaction map whose amount is the given raw bytes: a header claiming more than follows.
  const hdr = (label: string, bytes: number[]): Item => ({ label, subject: "tributary.transactions", data: concat([Uint8Array.of(0x83), mp("transaction_id"), mp("h"), mp("customer_id"), mp("x"), mp("amount"), Uint8Array.from(bytes)]), expect: bad("decode_error", null) });
  const deepMp = (() => {
    const depth = 100_000;
    const out = new Uint8Array(3 + depth + 1);
    out.set([0x81, 0xa1, 0x61]);
    out.fill(0x91, 3, 3 + depth);
    out[3 + depth] = 0x01;
    return out;
  })();
  const amounts = (label: string, amount: unknown, reason: "invalid_type" | "invalid_range", id = label): Item =>
    asMp(`amount ${label}`, "transactions", tx(`amt-${id}`, "amounts", amount, "USD", daysAgo(1)), bad(reason, "amount"));
  const at = (label: string, value: unknown, reason: "invalid_range" | "future_timestamp" | "invalid_timestamp", id: string): Item =>
    asMp(`event time ${label}`, "events", { event_id: id, customer_id: "edge-time", event_type: "login", event_timestamp: value }, bad(reason, "event_timestamp"));
  const fields50k = Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`f${i}`, i]));

  const first: Item[] = [
    hdr("str32 claiming 4 GB", [0xdb, 0xff, 0xff, 0xff, 0xff, 0x61]),
    hdr("array32 claiming 4 billion elements", [0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]),
    hdr("array32 claiming 33.5 million elements", [0xdd, 0x02, 0x00, 0x00, 0x00, 0x01]),
    hdr("map32 claiming 4 billion entries", [0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x61, 0x01]),
    hdr("bin32 claiming 4 GB", [0xc6, 0xff, 0xff, 0xff, 0xff]),
    hdr("ext32 claiming 4 GB", [0xc9, 0xff, 0xff, 0xff, 0xff, 0x01]),
    { label: "a top-level array32 claiming 4 billion elements", subject: "tributary.events", data: Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff), expect: bad("decode_error", null) },
    { label: "100k-deep nested arrays", subject: "tributary.events", data: deepMp, expect: bad("oversize", null) },
    asJson("500k-deep JSON", "events", `{"event_id":"deep","a":${"[".repeat(500_000)}${"]".repeat(500_000)}}`, bad("oversize", null)),
    asJson(
      "a JSON __proto__ member holding the id",
      "transactions",
      `{"__proto__":{"transaction_id":"proto-tx"},"customer_id":"good-1","amount":1,"currency":"USD","transaction_date":"${iso(daysAgo(1))}"}`,
      bad("missing_field", "transaction_id"),
    ),
    asMp("a MessagePack __proto__ key holding the id", "transactions", own([["__proto__", { transaction_id: "proto-tx-2" }], ["customer_id", "good-1"], ["amount", 1], ["currency", "USD"], ["transaction_date", daysAgo(1)]]), bad("missing_field", "transaction_id")),
    asJson(
      "a JSON constructor member on an event for constructor",
      "events",
      `{"constructor":{"prototype":{"customer_id":"x"}},"event_id":"ctor-ev","customer_id":"constructor","event_type":"login","event_timestamp":"${iso(daysAgo(2))}"}`,
      evOk("events", "ctor-ev", "constructor", daysAgo(2)),
    ),
    amounts("NaN", new F64(Number.NaN), "invalid_type"),
    amounts("+Infinity", new F64(Infinity), "invalid_type", "pinf"),
    amounts("-Infinity", new F64(-Infinity), "invalid_type", "ninf"),
    amounts("1e308", 1e308, "invalid_range"),
    asJson("amount 1e308 in JSON", "transactions", JSON.stringify(tx("amt-1e308-json", "amounts", 1e308, "USD", iso(daysAgo(1)))), bad("invalid_range", "amount")),
    asJson("amount NaN as a JSON string", "transactions", JSON.stringify(tx("amt-nan-json", "amounts", "NaN", "USD", iso(daysAgo(1)))), bad("invalid_type", "amount")),
    amounts("uint64 2^63 (a BigInt)", new Int64(2n ** 63n), "invalid_range", "u63"),
    amounts("int64 -2^63 (a BigInt)", new Int64(-(2n ** 63n)), "invalid_range", "i63"),
    amounts("uint64 2^53+1", new Int64(2n ** 53n + 1n), "invalid_range", "u53"),
    amounts("float64 2^53+1", 2 ** 53 + 1, "invalid_range", "f53"),
    asJson("amount 2^53+1 as a JSON literal", "transactions", `{"transaction_id":"amt-j53","customer_id":"amounts","amount":9007199254740993,"currency":"USD","transaction_date":"${iso(daysAgo(1))}"}`, bad("invalid_range", "amount")),
    amounts("just above the largest", 9_007_199_254.7409916, "invalid_range", "above"),
    asMp("an amount msgpackr wrote as undefined (extension 0)", "transactions", tx("amt-undef", "amounts", new Raw(Uint8Array.of(0xd4, 0x00, 0x00)), "USD", daysAgo(1)), bad("missing_field", "amount")),
    asMp("9e9 GBP (above the largest after conversion)", "transactions", tx("amt-gbp", "amounts", 9e9, "GBP", daysAgo(1)), bad("invalid_range", "amount")),
    at("minEventTime - 1 ms", -1, "invalid_range", "t-minus1"),
    at("1969-12-31T23:59:59.999Z", "1969-12-31T23:59:59.999Z", "invalid_range", "t-1969"),
    at("year 0", "0000-01-01T00:00:00Z", "invalid_range", "t-year0"),
    at("year -271821 as epoch ms", -8.64e15, "invalid_range", "t-min-epoch"),
    at("year -271821 as a timestamp extension", new Date(-8.64e15), "invalid_range", "t-min-ext"),
    at("year +275760 as epoch ms", 8.64e15, "future_timestamp", "t-max-epoch"),
    at("year +275760 as ISO", "+275760-09-13T00:00:00.000Z", "invalid_timestamp", "t-max-iso"),
    at("past the Date range", 8.64e15 + 1, "invalid_timestamp", "t-beyond"),
    at("25 h after now", NOW + 25 * HOUR, "future_timestamp", "t-25h"),
  ];

  const second: Item[] = [
    { ...asMp("24 h after now", "events", { event_id: "f-24h", customer_id: "edge-future", event_type: "login", event_timestamp: NOW + 24 * HOUR }, "receipt") },
    { ...asMp("24 h + 1 ms after now", "events", { event_id: "f-24h1", customer_id: "edge-future", event_type: "login", event_timestamp: NOW + 24 * HOUR + 1 }, "receipt") },
    asMp("a session ending 25 h after now", "sessions", { session_id: "s-late-end", customer_id: "edge-time", session_start: daysAgo(1), session_end: NOW + 25 * HOUR }, bad("future_timestamp", "session_end")),
    asJson("a registration in year 0", "customers", JSON.stringify({ customer_id: "edge-time", registration_date: "0000-01-01" }), bad("invalid_range", "registration_date")),
    asMp("NUL in an id", "transactions", tx("nul-1", "a\u0000b", 1, "USD", daysAgo(1)), bad("invalid_type", "customer_id")),
    asJson("right-to-left override in an id", "transactions", JSON.stringify(tx("rlo-1", "\u202Eevil", 1, "USD", iso(daysAgo(1)))), bad("invalid_type", "customer_id")),
    asMp("bidi isolates in an id", "transactions", tx("iso\u2066x\u2069", "good-1", 1, "USD", daysAgo(1)), bad("invalid_type", "transaction_id")),
    asJson("a lone surrogate escape in an id", "events", `{"event_id":"ls-1","customer_id":"\\ud800x","event_type":"login","event_timestamp":0}`, bad("invalid_type", "customer_id")),
    asMp("invalid UTF-8 in a MessagePack id", "transactions", tx("utf-1", new RawStr(Uint8Array.of(0x61, 0xff, 0xfe, 0x62)) as unknown as string, 1, "USD", daysAgo(1)), bad("decode_error", null)),
    { label: "invalid UTF-8 in JSON", subject: "tributary.events", data: concat([utf8('{"event_id":"utf-2","customer_id":"a'), Uint8Array.of(0xc0, 0xaf), utf8('","event_type":"login","event_timestamp":0}')]), expect: bad("decode_error", null) },
    asMp("a 5,000-character name", "customers", { customer_id: "good-2", name: "n".repeat(5_000) }, bad("invalid_type", "name")),
    asJson("a terminal escape in a segment", "customers", JSON.stringify({ customer_id: "good-2", customer_segment: "vip\u001b[2J" }), bad("invalid_type", "customer_segment")),
    { label: "a payload of exactly limits.maxPayloadBytes", subject: "tributary.transactions", data: paddedTransaction("pad-ok", MIB), expect: txOk("pad-ok", "padded", 2, "USD", daysAgo(2)) },
    { label: "a payload one byte over limits.maxPayloadBytes", subject: "tributary.transactions", data: paddedTransaction("pad-over", MIB + 1), expect: bad("oversize", null) },
    { label: "a payload of exactly the server's max_payload", subject: "tributary.transactions", data: paddedTransaction("pad-server", SERVER_MAX_PAYLOAD), expect: bad("oversize", null) },
    asMp("a record with 50k fields", "events", { event_id: "wide", customer_id: "good-1", event_type: "login", event_timestamp: 0, ...fields50k }, bad("oversize", null)),
    asJson("a JSON record with 50k fields", "events", JSON.stringify({ event_id: "wide-json", customer_id: "good-1", event_type: "login", event_timestamp: 0, ...fields50k }), bad("oversize", null)),
    asMp("a 300 KB transaction id", "transactions", tx("x".repeat(300_000), "good-1", 1, "USD", daysAgo(1)), bad("invalid_type", "transaction_id")),
    asJson("a 300 KB customer id", "events", JSON.stringify({ event_id: "big-cust", customer_id: "c".repeat(300_000), event_type: "login", event_timestamp: 0 }), bad("invalid_type", "customer_id")),
    { label: "a map key that is not a string", subject: "tributary.events", data: Uint8Array.of(0x81, 0x01, 0x02), expect: bad("decode_error", null) },
    { label: "msgpackr's record extension", subject: "tributary.events", data: Uint8Array.of(0xd4, 0x72, 0x00), expect: bad("decode_error", null) },
    asMp("the subject tributary.__proto__", "__proto__", tx("sub-1", "good-1", 1, "USD", daysAgo(1)), bad("unknown_entity", null)),
    asMp("the subject tributary.constructor", "constructor", tx("sub-2", "good-1", 1, "USD", daysAgo(1)), bad("unknown_entity", null)),
    // 2,000 copies of one id: the first wins, the other 1,999 are duplicates.
    ...Array.from({ length: 2_000 }, (_, i) =>
      asMp(`copy ${i} of dup-1`, "transactions", tx("dup-1", "good-2", i === 0 ? 1 : 1_000, "USD", daysAgo(1)), txOk("dup-1", "good-2", i === 0 ? 1 : 1_000, "USD", daysAgo(1))),
    ),
  ];
  return [first, second];
}

// ---- the run ---------------------------------------------------------------------------------------

interface Published {
  readonly item: Item;
  readonly seq: number;
}

async function publishCorpus(url: string, items: readonly Item[]): Promise<Published[]> {
  const nc = await connect({ servers: url, maxReconnectAttempts: 0 });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "TRIBUTARY", subjects: ["tributary.>"] });
    const js = jetstream(nc);
    const out: Published[] = [];
    for (const item of items) {
      const h = item.contentType ? headers() : undefined;
      if (item.contentType) h!.set("Content-Type", item.contentType);
      const ack = await js.publish(item.subject, item.data, { headers: h });
      out.push({ item, seq: ack.seq });
    }
    // Past the server's max_payload the client refuses to send it at all: it never reaches bronze.
    await expect(js.publish("tributary.transactions", paddedTransaction("pad-too-big", SERVER_MAX_PAYLOAD + 1))).rejects.toThrow(/max_payload/);
    return out;
  } finally {
    await nc.close();
  }
}

/** Runs `tributary run --drain`, polling the child's VmHWM (peak RSS) from /proc until it exits. */
async function drainWithPeakRss(args: string[], deadlineMs: number): Promise<{ code: number | null; stderr: string; stdout: string; peakRssBytes: number }> {
  const { proc, result } = startCli(args);
  let peak = 0;
  let done = false;
  const finished = result.then((r) => {
    done = true;
    return r;
  });
  const deadline = Date.now() + deadlineMs;
  while (!done) {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${proc.pid}/status`, "utf8"));
      if (m) peak = Math.max(peak, Number(m[1]) * 1024);
    } catch {
      // The process has just exited.
    }
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`tributary run --drain did not finish within ${deadlineMs} ms`);
    }
    await Promise.race([finished, new Promise((r) => setTimeout(r, 25))]);
  }
  const r = await finished;
  return { code: r.code, stderr: r.stderr, stdout: r.stdout, peakRssBytes: peak };
}

describe("a hostile corpus through tributary run --drain", () => {
  let server: NatsServer;
  const tmp = tempDirs("hostile");

  beforeAll(async () => {
    const conf = join(tmp(), "nats.conf");
    writeFileSync(conf, `max_payload: ${SERVER_MAX_PAYLOAD}\n`);
    server = await startNatsServer({ args: ["-c", conf] });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("leaves every customer's features finite and exact, quarantines each hostile message with its reason, in bounded memory", async () => {
    const [first, second] = hostile();
    const items = [...goodBefore(), ...first, ...goodBetween(), ...second, ...goodAfter()];
    const published = await publishCorpus(server.url, items);
    expect(published.map((p) => p.seq)).toEqual(published.map((_, i) => i + 1));

    const dataDir = tmp();
    const run = await drainWithPeakRss(["run", "--drain", "--nats", server.url, "--data-dir", dataDir], 120_000);
    expect(run.stderr).not.toMatch(/exception|Error:|\n\s+at /i);
    expect(run.code).toBe(0);
    console.log(`hostile corpus: ${published.length} messages drained, peak RSS ${(run.peakRssBytes / 2 ** 20).toFixed(0)} MiB`);
    expect(run.peakRssBytes, `peak RSS ${(run.peakRssBytes / 2 ** 20).toFixed(0)} MiB`).toBeGreaterThan(0);
    expect(run.peakRssBytes, `peak RSS ${(run.peakRssBytes / 2 ** 20).toFixed(0)} MiB`).toBeLessThan(RSS_LIMIT_BYTES);

    // Bronze holds every message, and its receive times settle the two messages at the 24 h edge.
    const bronze = new Database(join(dataDir, "bronze.sqlite"), { readonly: true });
    const silver = new Database(join(dataDir, "silver.sqlite"), { readonly: true });
    const gold = new Database(join(dataDir, "gold.sqlite"), { readonly: true });
    try {
      const rows = bronze.prepare("SELECT seq, origin_seq, received_at FROM messages ORDER BY seq").all() as { seq: number; origin_seq: number; received_at: number }[];
      expect(rows.length).toBe(published.length);
      const bySeq = new Map(published.map((p) => [p.seq, p]));
      const receivedAt = new Map(rows.map((r) => [r.origin_seq, r.received_at]));
      const bronzeToOrigin = new Map(rows.map((r) => [r.seq, r.origin_seq]));
      const expectations: Expectation[] = published.map(({ item, seq }) => {
        if (item.expect !== "receipt") return item.expect;
        const eventAt = item.label === "24 h after now" ? NOW + 24 * HOUR : NOW + 24 * HOUR + 1;
        const id = item.label === "24 h after now" ? "f-24h" : "f-24h1";
        return eventAt > receivedAt.get(seq)! + 24 * HOUR ? bad("future_timestamp", "event_timestamp") : evOk("events", id, "edge-future", eventAt);
      });

      // Each hostile message has its own reason and field in silver's quarantine table.
      const quarantined = new Map(
        (silver.prepare("SELECT bronze_seq, reason, field FROM quarantine").all() as { bronze_seq: number; reason: string; field: string | null }[]).map((q) => [
          bronzeToOrigin.get(q.bronze_seq)!,
          { reason: q.reason, field: q.field },
        ]),
      );
      const problems: string[] = [];
      published.forEach(({ item, seq }, i) => {
        const e = expectations[i]!;
        const got = quarantined.get(seq);
        const want = e.valid ? undefined : { reason: e.reason, field: e.field };
        if (JSON.stringify(got) !== JSON.stringify(want)) problems.push(`${item.label}: got ${JSON.stringify(got) ?? "accepted"}, expected ${JSON.stringify(want) ?? "accepted"}`);
      });
      expect(problems).toEqual([]);
      expect(bySeq.size).toBe(published.length);

      // valid + duplicates + quarantined = bronze, with the counts the expectations give.
      const status = JSON.parse((await runCli(["status", "--data-dir", dataDir, "--format", "json"])).stdout);
      expect(status.bronze.messages).toBe(published.length);
      const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);
      expect(sum(status.silver) + sum(status.duplicates) + sum(status.quarantine)).toBe(status.bronze.messages);
      const { counts } = acceptInOrder(expectations);
      expect(status.duplicates.transactions).toBe(1_999);
      for (const [k, v] of Object.entries(counts.valid)) expect(status.silver[k], `silver ${k}`).toBe(v);
      for (const [k, v] of Object.entries(counts.duplicates)) expect(status.duplicates[k], `duplicates ${k}`).toBe(v);
      for (const [k, v] of Object.entries(counts.quarantined)) expect(status.quarantine[k], `quarantine ${k}`).toBe(v);

      // The features of every customer, and no other, equal the independent computation.
      const csv = await runCli(["features", "--data-dir", dataDir, "--as-of", AS_OF, "--format", "csv"]);
      expect(csv.code, csv.stderr).toBe(0);
      const actual = parseFeatureCsv(csv.stdout);
      const expected = referenceFeatures(expectations, DEFAULT_RATES, AS_OF_MS);
      expectFeaturesMatch(actual, expected);
      const ids = actual.map((r) => r.customer_id);
      for (const id of ["good-1", "good-2", "__proto__", "constructor", "toString", "hasOwnProperty", "'); DROP TABLE customers;--", "🦊-émoji-👍🏽", "לקוח-7", "big-spender", "zero", "edge-time", "edge-future", "padded"]) {
        expect(ids, id).toContain(id);
      }
      for (const id of ["a\u0000b", "\u202Eevil", "amounts", "evil", "x", "valueOf"]) expect(ids, JSON.stringify(id)).not.toContain(id);
      for (const row of actual) {
        for (const [k, v] of Object.entries(row)) {
          if (k.endsWith("_at") || k === "customer_id" || k === "customer_segment" || v === "") continue;
          expect(Number.isFinite(Number(v)), `${row.customer_id}.${k} = ${v}`).toBe(true);
        }
      }

      // Hand-computed: good-1 has 10 USD + 20.50 EUR + 5.25 GBP + 1 USD = 10 + 22.14 + 6.6675 + 1.
      const one = async (id: string) => {
        const r = await runCli(["features", "--data-dir", dataDir, "--as-of", AS_OF, `--customer=${id}`, "--format", "json"]);
        expect(r.code, r.stderr).toBe(0);
        return JSON.parse(r.stdout) as Record<string, unknown>;
      };
      expect(await one("good-1")).toMatchObject({
        customer_id: "good-1",
        customer_segment: "vip",
        purchase_frequency: 4,
        total_spend: 39.81,
        avg_transaction_value: 9.95,
        first_transaction_at: iso(daysAgo(20)),
        last_transaction_at: iso(NOW - HOUR),
        transactions_last_30_days: 4,
        session_count: 1,
        avg_session_duration_seconds: 1800,
        interaction_count: 2,
        event_count: 1,
      });
      // The first copy of dup-1 (1 USD) counts, none of the 1,999 later copies (1,000 USD each).
      // good-2: 99.99 GBP + 0.01 USD + 1 USD = 126.9873 + 0.01 + 1.
      expect(await one("good-2")).toMatchObject({ customer_segment: "smb", purchase_frequency: 3, total_spend: 128, transactions_last_30_days: 2, spend_last_30_days: 1.01, session_count: 1, avg_session_duration_seconds: 3600, event_count: 1 });
      expect(await one("big-spender")).toMatchObject({ purchase_frequency: 1, total_spend: 9_007_199_254.74 });
      expect(await one("zero")).toMatchObject({ purchase_frequency: 2, total_spend: 5 });
      expect(await one("__proto__")).toMatchObject({ customer_segment: "enterprise", purchase_frequency: 1, total_spend: 7 });
      expect(await one("constructor")).toMatchObject({ customer_segment: "unknown", purchase_frequency: 1, total_spend: 3, event_count: 1 });
      expect(await one("toString")).toMatchObject({ purchase_frequency: 1, total_spend: 2.92 });
      expect(await one("hasOwnProperty")).toMatchObject({ customer_segment: "smb", purchase_frequency: 0, total_spend: 0 });
      // A customer that exists only on Object.prototype is not a customer.
      for (const id of ["valueOf", "isPrototypeOf", "__defineGetter__"]) {
        const r = await runCli(["features", "--data-dir", dataDir, "--as-of", AS_OF, `--customer=${id}`, "--format", "json"]);
        expect(r.code, `${id}: ${r.stdout}`).toBe(4);
      }

      // Gold's money columns are exact integers; no layer is damaged.
      const money = gold.prepare("SELECT typeof(tx_spend_micros) AS t, max(tx_spend_micros) AS m FROM customer_daily GROUP BY 1").all() as { t: string; m: number }[];
      expect(money.map((r) => r.t)).toEqual(["integer"]);
      expect(money[0]!.m).toBeLessThanOrEqual(Number.MAX_SAFE_INTEGER);
      for (const db of [bronze, silver, gold]) expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
    } finally {
      bronze.close();
      silver.close();
      gold.close();
    }
  }, 240_000);
});

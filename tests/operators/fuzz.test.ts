/**
 * Property and fuzz tests (fast-check, fixed seeds): whatever bytes arrive on whatever subject,
 * decode → validate returns a valid record or a quarantine reason, never throws, returns at once
 * and allocates little; and whatever valid records arrive, the features are finite numbers or the
 * documented nulls, both from the pure aggregate and from a real pipeline on SQLite files.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { pack } from "msgpackr";
import { from } from "rxjs";
import { decodeMessage, DECODE_DEFAULTS } from "../../src/operators/decode.js";
import { CONTRACT, MAX_AMOUNT_MICROS, validateRecord, VALIDATE_DEFAULTS } from "../../src/operators/validate.js";
import { enrichRecord, type SegmentDirectory } from "../../src/operators/enrich.js";
import { aggregateBatch, rollUpCustomers } from "../../src/operators/aggregate.js";
import { createTopology } from "../../src/topology.js";
import { FeatureReader, FEATURE_COLUMNS, type FeatureRow } from "../../src/features.js";
import { DEFAULT_RATES } from "../../src/config.js";
import { ENTITIES, REASONS, type Accepted, type Entity, type SourceMessage, type Staged, type ValidRecord } from "../../src/types.js";
import { tempDirs } from "../helpers/tmp.js";

const SEED = 9_2026;
const RECEIVED_AT = Date.UTC(2026, 2, 1, 12);
const DAY = 86_400_000;
const RATES = DEFAULT_RATES;
const DECODE = { ...DECODE_DEFAULTS };
const VALIDATE = { rates: RATES, ...VALIDATE_DEFAULTS };
const REASON_SET: ReadonlySet<string> = new Set(REASONS);
const text = (s: string) => new TextEncoder().encode(s);

function message(subject: string, data: Uint8Array, seq = 1, contentType: string | null = null): SourceMessage {
  return { origin: "test:fuzz", originSeq: seq, subject, data, receivedAt: RECEIVED_AT, publishedAt: null, contentType, msgId: null };
}

/** Runs decode → validate and checks the outcome's shape; returns it. */
function decodeAndValidate(msg: SourceMessage): Staged {
  const staged = validateRecord(decodeMessage(msg, DECODE), VALIDATE);
  const o = staged.outcome;
  if (o.status === "quarantined") {
    expect(REASON_SET.has(o.reason), o.reason).toBe(true);
    expect(o.detail.length).toBeLessThanOrEqual(300);
    if (o.field !== null) {
      const names = CONTRACT[staged.entity as Entity].fields.map((f) => f.name);
      expect(names, `${o.reason} names ${o.field}`).toContain(o.field);
    }
  } else {
    expect(o.status).toBe("valid");
    if (o.status === "valid") checkValid(o.record, msg.receivedAt);
  }
  return staged;
}

const FORBIDDEN_IN_ID = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]/;
const isWellFormed = (s: string) => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

/** What the data contract promises of every valid record. */
function checkValid(r: ValidRecord, receivedAt: number): void {
  for (const id of [r.id, r.customer_id]) {
    expect(typeof id).toBe("string");
    expect([...id].length).toBeGreaterThan(0);
    expect([...id].length).toBeLessThanOrEqual(VALIDATE_DEFAULTS.maxIdLength);
    expect(FORBIDDEN_IN_ID.test(id), JSON.stringify(id)).toBe(false);
    expect(isWellFormed(id)).toBe(true);
    expect(id).toBe(id.trim());
  }
  const latest = receivedAt + DAY;
  if (r.eventAt === null) expect(r.entity).toBe("customers");
  else {
    expect(Number.isSafeInteger(r.eventAt)).toBe(true);
    expect(r.eventAt).toBeGreaterThanOrEqual(VALIDATE_DEFAULTS.minEventTime);
    expect(r.eventAt).toBeLessThanOrEqual(latest);
  }
  switch (r.entity) {
    case "transactions":
      expect(Number.isFinite(r.amount)).toBe(true);
      expect(r.amount >= 0 && !Object.is(r.amount, -0)).toBe(true);
      expect(Object.hasOwn(RATES, r.currency)).toBe(true);
      expect(Math.round(r.amount * RATES[r.currency]! * 1e6)).toBeLessThanOrEqual(MAX_AMOUNT_MICROS);
      break;
    case "sessions":
      expect(r.session_end_at).toBeGreaterThanOrEqual(r.eventAt);
      expect(r.session_end_at).toBeLessThanOrEqual(latest);
      expect([...r.device_type].length).toBeLessThanOrEqual(VALIDATE_DEFAULTS.maxTextLength);
      break;
    case "customers":
      for (const t of [r.name, r.email, r.customer_segment]) if (t !== null) expect([...t].length).toBeLessThanOrEqual(VALIDATE_DEFAULTS.maxTextLength);
      break;
    case "interactions":
      expect([...r.interaction_type].length).toBeLessThanOrEqual(VALIDATE_DEFAULTS.maxTextLength);
      break;
    case "events":
      expect([...r.event_type].length).toBeLessThanOrEqual(VALIDATE_DEFAULTS.maxTextLength);
      break;
  }
}

/** Runs `f` and checks that it returned at once and grew the heap by no more than a small multiple of `bytes`. */
function cheaply<T>(bytes: number, f: () => T): T {
  const heap = process.memoryUsage().heapUsed;
  const started = performance.now();
  const out = f();
  const ms = performance.now() - started;
  const grown = process.memoryUsage().heapUsed - heap;
  expect(ms, `took ${ms.toFixed(1)} ms for ${bytes} bytes`).toBeLessThan(250);
  expect(grown, `heap grew ${grown} bytes for a ${bytes}-byte payload`).toBeLessThan(4 * 1024 * 1024 + 64 * bytes);
  return out;
}

// ---- arbitraries -------------------------------------------------------------------------------

const subjectArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...ENTITIES.map((e) => `tributary.${e}`), "tributary.transactions.eu") },
  { weight: 1, arbitrary: fc.constantFrom("tributary.__proto__", "tributary.constructor", "tributary.toString", "tributary", "", "tributary.Customers") },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 30 }) },
);
const contentTypeArb = fc.constantFrom(null, null, "application/json", "application/msgpack", "text/plain; charset=utf-8");

/** A MessagePack header of any kind with any claimed length, the length often huge. */
const lengthArb = fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 0xffff }), fc.constantFrom(0xffffffff, 0x7fffffff, 0x02000000, 0x00f00000));
const headerArb = fc.tuple(fc.constantFrom(0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf), lengthArb, fc.integer({ min: 0, max: 255 })).map(([t, n, extType]) => {
  const width = [0xc4, 0xc7, 0xd9].includes(t) ? 1 : [0xc5, 0xc8, 0xda, 0xdc, 0xde].includes(t) ? 2 : 4;
  const len = Array.from({ length: width }, (_, i) => (Math.floor(n / 256 ** (width - 1 - i)) & 0xff) >>> 0);
  return [t, ...len, ...(t >= 0xc7 && t <= 0xc9 ? [extType] : [])];
});
/** Token soup: headers, fix-type bytes and anything, optionally under a map header. */
const tokenSoupArb = fc
  .tuple(
    fc.option(fc.integer({ min: 0x80, max: 0x8f }), { nil: undefined }),
    fc.array(fc.oneof(headerArb, fc.integer({ min: 0, max: 255 }).map((b) => [b]), fc.constantFrom([0xa1, 0x61], [0x91], [0x81], [0xd6, 0xff, 0, 0, 0, 0], [0xd4, 0x72, 0])), { maxLength: 40 }),
  )
  .map(([map, parts]) => Uint8Array.from([...(map === undefined ? [] : [map]), ...parts.flat()]));

/** Nesting deep enough to break a recursive parser, in MessagePack or JSON. */
const deepArb = fc.tuple(fc.integer({ min: 1, max: 120_000 }), fc.constantFrom(0x91, 0x81, 0xdc), fc.boolean()).map(([depth, opener, json]) => {
  if (json) return text(`{"a":${"[".repeat(depth)}${"]".repeat(depth)}}`);
  const unit = opener === 0x81 ? [0x81, 0xa1, 0x6b] : opener === 0xdc ? [0xdc, 0x00, 0x01] : [0x91];
  const out = new Uint8Array(3 + unit.length * depth + 1);
  out.set([0x81, 0xa1, 0x61]);
  for (let i = 0; i < depth; i++) out.set(unit, 3 + i * unit.length);
  out[out.length - 1] = 0x01;
  return out;
});

const hostileStringArb = fc.oneof(
  fc.string({ unit: "binary", maxLength: 30 }),
  fc.string({ unit: "grapheme", maxLength: 12 }),
  fc.constantFrom("", "  ", "__proto__", "constructor", "toString", "hasOwnProperty", "'); DROP TABLE customers;--", "a\u0000b", "\u202Eabc", "😀👍🏽", "\uD800", "x\uDC00", "a\u001b[31m", "\u0085", "2026-02-30"),
  fc.integer({ min: 250, max: 1_500 }).map((n) => "x".repeat(n)),
);
const hostileNumberArb = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.constantFrom(Number.NaN, Infinity, -Infinity, -0, 1e308, 2 ** 53 + 1, Number.MAX_SAFE_INTEGER, 9_007_199_254.74099, 9_007_199_254.7409916, -1, 8.64e15, -8.64e15),
);
const hostileBigintArb = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n });
const hostileValueArb = fc.oneof(hostileStringArb, hostileNumberArb, hostileBigintArb, fc.boolean(), fc.constant(null), fc.date({ noInvalidDate: false }), fc.constant([1, "a"]), fc.constant({ x: 1 }));

const idArb = fc.oneof(fc.stringMatching(/^[a-z0-9-]{1,10}$/), fc.integer({ min: 0, max: 1_000_000 }), fc.constantFrom("__proto__", "constructor", "toString", "🦊", "לקוח"));
const customerIdArb = fc.constantFrom("c1", "c2", "7", "__proto__", "constructor", "toString", "'); DROP TABLE customers;--", "🦊-1", "לקוח");
const timeArb = fc.oneof(
  fc.integer({ min: RECEIVED_AT - 400 * DAY, max: RECEIVED_AT + DAY }),
  fc.integer({ min: RECEIVED_AT - 400 * DAY, max: RECEIVED_AT + DAY }).map((t) => new Date(t).toISOString()),
  fc.integer({ min: RECEIVED_AT - 400 * DAY, max: RECEIVED_AT + DAY }).map((t) => new Date(t)),
  fc.constantFrom(0, -1, RECEIVED_AT + DAY, RECEIVED_AT + DAY + 1, "1970-01-01T00:00:00Z", "0000-01-01", -8.64e15, 8.64e15),
);
const amountArb = fc.oneof(fc.integer({ min: 0, max: 10_000_000 }).map((c) => c / 100), fc.double({ min: 0, max: 9e9, noNaN: true }), fc.constantFrom("12.50", 0, 9_007_199_254.74099));
const textArb = fc.constantFrom("chat", "premium", "mobile", "login", "page_view", "Zoë", "smb", "tab\there");

function valueFor(kind: string, name: string): fc.Arbitrary<unknown> {
  const good =
    name === "customer_id" ? customerIdArb : kind === "id" ? idArb : kind === "timestamp" ? timeArb : kind === "amount" ? amountArb : kind === "currency" ? fc.constantFrom("USD", "eur", "GBP", "JPY") : textArb;
  return fc.oneof({ weight: 8, arbitrary: good }, { weight: 1, arbitrary: hostileValueArb }, { weight: 1, arbitrary: fc.constant(undefined) });
}

/** A record of one entity: contract fields from good and hostile values, plus odd extra keys. */
const recordArb = fc.constantFrom(...ENTITIES).chain((entity) => {
  const fields = Object.fromEntries(CONTRACT[entity].fields.map((f) => [f.name, valueFor(f.kind, f.name)]));
  return fc.record({
    entity: fc.constant(entity),
    fields: fc.record(fields),
    extra: fc.dictionary(fc.constantFrom("__proto__", "constructor", "toString", "note", "amount_base", "id"), hostileValueArb, { maxKeys: 2 }),
    json: fc.boolean(),
  });
});

function encode(fields: Record<string, unknown>, json: boolean): Uint8Array {
  const clean = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
  if (!json) return pack(clean);
  return text(JSON.stringify(clean, (_k, v) => (typeof v === "bigint" ? Number(v) : v)));
}

function recordMessage(r: { entity: Entity; fields: Record<string, unknown>; extra: Record<string, unknown>; json: boolean }, seq = 1): SourceMessage {
  // Own properties even for "__proto__": defineProperty, as JSON.parse would make them.
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r.extra)) Object.defineProperty(fields, k, { value: v, enumerable: true, writable: true, configurable: true });
  Object.assign(fields, r.fields);
  return message(`tributary.${r.entity}`, encode(fields, r.json), seq);
}

/** Byte-level damage to a valid payload: flips, insertions, deletions and truncation. */
const mutatedArb = fc
  .tuple(recordArb, fc.array(fc.tuple(fc.constantFrom("set", "insert", "delete", "truncate"), fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }))
  .map(([r, edits]) => {
    const bytes = [...recordMessage(r).data];
    for (const [op, at, b] of edits) {
      const i = bytes.length === 0 ? 0 : at % bytes.length;
      if (op === "set") bytes[i] = b;
      else if (op === "insert") bytes.splice(i, 0, b);
      else if (op === "delete") bytes.splice(i, 1);
      else bytes.length = i;
    }
    return { entity: r.entity, data: Uint8Array.from(bytes) };
  });

// ---- properties ----------------------------------------------------------------------------------

describe("fuzz: decode → validate on any input", () => {
  it("any bytes on any subject give a valid record or a quarantine reason", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), subjectArb, contentTypeArb, (data, subject, contentType) => {
        cheaply(data.length, () => decodeAndValidate(message(subject, data, 1, contentType)));
      }),
      { seed: SEED, numRuns: 4_000 },
    );
  });

  it("MessagePack headers claiming any size are checked against the bytes present, never allocated", () => {
    fc.assert(
      fc.property(tokenSoupArb, subjectArb, (data, subject) => {
        const staged = cheaply(data.length, () => decodeAndValidate(message(subject, data)));
        // A header claiming more than remains can only be a decode error, never a record.
        if (data.length < 16 && staged.outcome.status === "valid") expect(data.length).toBeGreaterThan(0);
      }),
      { seed: SEED + 1, numRuns: 4_000 },
    );
  });

  it("nesting of any depth is quarantined or decoded without recursion", () => {
    fc.assert(
      fc.property(deepArb, (data) => {
        const staged = cheaply(data.length, () => decodeAndValidate(message("tributary.events", data)));
        expect(staged.outcome.status).toBe("quarantined");
      }),
      { seed: SEED + 2, numRuns: 300 },
    );
  });

  it("records built from good and hostile field values satisfy the contract whenever they are valid", () => {
    let valid = 0;
    fc.assert(
      fc.property(recordArb, (r) => {
        const msg = recordMessage(r);
        const staged = cheaply(msg.data.length, () => decodeAndValidate(msg));
        if (staged.outcome.status === "valid") valid++;
      }),
      { seed: SEED + 3, numRuns: 5_000 },
    );
    // The property must not pass by quarantining everything.
    expect(valid).toBeGreaterThan(1_000);
  });

  it("damaged payloads give a valid record or a quarantine reason", () => {
    fc.assert(
      fc.property(mutatedArb, ({ entity, data }) => {
        cheaply(data.length, () => decodeAndValidate(message(`tributary.${entity}`, data)));
      }),
      { seed: SEED + 4, numRuns: 4_000 },
    );
  });

  it("any JSON document gives a valid record or a quarantine reason", () => {
    fc.assert(
      fc.property(fc.json({ maxDepth: 40 }), subjectArb, (doc, subject) => {
        const data = text(doc);
        cheaply(data.length, () => decodeAndValidate(message(subject, data, 1, "application/json")));
      }),
      { seed: SEED + 5, numRuns: 2_000 },
    );
  });
});

/** A segment directory in a Map, as the topology's LRU would hold it. */
class MapSegments implements SegmentDirectory {
  private readonly m = new Map<string, string>();
  get(id: string) {
    return this.m.get(id);
  }
  set(id: string, segment: string) {
    this.m.set(id, segment);
  }
}

/** Valid records of a stream, enriched, with first-copy-wins dedupe, as silver would accept them. */
function acceptAll(msgs: readonly SourceMessage[]): Accepted[] {
  const segments = new MapSegments();
  const seen = new Set<string>();
  const out: Accepted[] = [];
  for (const msg of msgs) {
    const staged = enrichRecord(validateRecord(decodeMessage(msg, DECODE), VALIDATE), { rates: RATES, segments });
    if (staged.outcome.status !== "valid") continue;
    const r = staged.outcome.record;
    if (r.entity !== "customers") {
      const key = `${r.entity}/${r.id}`;
      if (seen.has(key)) continue;
      seen.add(key);
    }
    out.push({ bronzeSeq: msg.originSeq, record: r });
  }
  return out;
}

const streamArb = fc.array(fc.oneof({ weight: 9, arbitrary: recordArb }, { weight: 1, arbitrary: mutatedArb }), { minLength: 1, maxLength: 60 }).map((items) =>
  items.map((item, i) => ("fields" in item ? recordMessage(item, i + 1) : message(`tributary.${item.entity}`, item.data, i + 1))),
);

const NULLABLE: ReadonlySet<string> = new Set([
  "avg_transaction_value",
  "first_transaction_at",
  "last_transaction_at",
  "recency_days",
  "avg_session_duration_seconds",
  "days_since_registration",
]);

function checkFeatureRow(row: FeatureRow): void {
  for (const column of FEATURE_COLUMNS) {
    const v = row[column];
    if (column === "customer_id" || column === "customer_segment") expect(typeof v).toBe("string");
    else if (v === null) expect(NULLABLE.has(column), `${column} is null for ${row.customer_id}`).toBe(true);
    else if (column.endsWith("_at")) expect(Number.isFinite(Date.parse(v as string)), `${column} ${v}`).toBe(true);
    else expect(Number.isFinite(v), `${column} = ${v} for ${row.customer_id}`).toBe(true);
  }
}

describe("property: valid records give finite features", () => {
  it("aggregateBatch gives finite totals, safe-integer micros per record, for any accepted stream", () => {
    fc.assert(
      fc.property(streamArb, (msgs) => {
        const accepted = acceptAll(msgs);
        for (const { record } of accepted) {
          if (record.entity === "transactions") expect(Number.isSafeInteger(Math.round(record.amount_base * 1e6))).toBe(true);
        }
        const delta = aggregateBatch({ position: msgs.length, accepted });
        for (const t of [...delta.days, ...rollUpCustomers(delta.days)]) {
          for (const [k, v] of Object.entries(t)) {
            if (k === "customer_id") expect(typeof v).toBe("string");
            else if (v !== null) expect(Number.isFinite(v), `${k} = ${v}`).toBe(true);
          }
        }
      }),
      { seed: SEED + 6, numRuns: 2_000 },
    );
  });

  const tmp = tempDirs("fuzz");

  it("a real pipeline on SQLite gives finite features or documented nulls, for every customer and no other", async () => {
    await fc.assert(
      fc.asyncProperty(streamArb, async (msgs) => {
        const dir = tmp();
        const t = createTopology({
          dataDir: dir,
          source: { kind: "observable", messages: from(msgs) },
          config: { storage: { commitThread: "inline", synchronous: "normal" }, batch: { maxRecords: 16 } },
          metrics: false,
        });
        await t.start();
        const stats = await t.done;
        expect(stats.bronze).toBe(msgs.length);
        const reader = new FeatureReader(dir);
        try {
          const rows = reader.compute(RECEIVED_AT + 2 * DAY);
          const expected = new Set(acceptAll(msgs).map((a) => a.record.customer_id));
          expect(rows.map((r) => r.customer_id).sort()).toEqual([...expected].sort());
          for (const row of rows) checkFeatureRow(row);
          for (const id of ["__proto__", "constructor", "toString"]) {
            const one = reader.compute(RECEIVED_AT + 2 * DAY, id);
            expect(one.length).toBe(expected.has(id) ? 1 : 0);
          }
        } finally {
          reader.close();
        }
      }),
      { seed: SEED + 7, numRuns: 25 },
    );
  }, 60_000);
});

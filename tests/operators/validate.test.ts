import { describe, expect, it } from "vitest";
import { from, lastValueFrom, toArray } from "rxjs";
import { CONTRACT, validate, validateRecord, type ValidateOptions } from "../../src/operators/validate.js";
import type { Entity, Staged, ValidRecord } from "../../src/types.js";
import { decoded, RECEIVED_AT, sourceMessage } from "../helpers/fixtures.js";
import { decodeMessage } from "../../src/operators/decode.js";

const OPTIONS: ValidateOptions = { rates: { USD: 1, EUR: 1.08, GBP: 1.27 } };
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 1, 28, 10); // 2026-02-28T10:00Z, before RECEIVED_AT

const BASE: Record<Entity, Record<string, unknown>> = {
  customers: {
    customer_id: "c1",
    name: "Ada Lovelace",
    email: "ada@example.com",
    registration_date: "2026-01-15",
    customer_segment: "premium",
  },
  transactions: {
    transaction_id: "t1",
    customer_id: "c1",
    amount: 12.5,
    currency: "USD",
    transaction_date: "2026-02-28T10:00:00Z",
  },
  interactions: {
    interaction_id: "i1",
    customer_id: "c1",
    interaction_date: "2026-02-28T10:00:00Z",
    interaction_type: "chat",
  },
  events: {
    event_id: "e1",
    customer_id: "c1",
    event_type: "page_view",
    event_timestamp: "2026-02-28T10:00:00Z",
  },
  sessions: {
    session_id: "s1",
    customer_id: "c1",
    session_start: "2026-02-28T10:00:00Z",
    session_end: "2026-02-28T10:30:00Z",
    device_type: "mobile",
  },
};

const ENTITIES = Object.keys(BASE) as Entity[];

function run(entity: Entity, patch: Record<string, unknown> = {}, receivedAt = RECEIVED_AT): Staged {
  const fields: Record<string, unknown> = { ...BASE[entity], ...patch };
  for (const [k, v] of Object.entries(patch)) if (v === undefined) delete fields[k];
  return validateRecord(decoded(entity, fields, { receivedAt }), OPTIONS);
}

function recordOf(staged: Staged): ValidRecord {
  if (staged.outcome.status !== "valid") throw new Error(`expected valid, got ${JSON.stringify(staged.outcome)}`);
  return staged.outcome.record;
}

function expectQuarantine(staged: Staged, reason: string, field: string): void {
  expect(staged.outcome).toMatchObject({ status: "quarantined", reason, field });
}

describe("validateRecord: a valid record of each entity", () => {
  it("types a customer profile", () => {
    expect(recordOf(run("customers"))).toEqual({
      entity: "customers",
      id: "c1",
      customer_id: "c1",
      eventAt: Date.UTC(2026, 0, 15),
      name: "Ada Lovelace",
      email: "ada@example.com",
      registration_at: Date.UTC(2026, 0, 15),
      customer_segment: "premium",
    });
  });

  it("types a transaction, leaving amount_base and the segment for enrich", () => {
    const r = recordOf(run("transactions"));
    expect(r).toMatchObject({ entity: "transactions", id: "t1", customer_id: "c1", eventAt: T0, amount: 12.5, currency: "USD", customer_segment: "unknown" });
    if (r.entity !== "transactions") throw new Error("unreachable");
    expect(r.amount_base).toBeNaN();
  });

  it("types an interaction", () => {
    expect(recordOf(run("interactions"))).toEqual({ entity: "interactions", id: "i1", customer_id: "c1", eventAt: T0, interaction_type: "chat" });
  });

  it("types an event", () => {
    expect(recordOf(run("events"))).toEqual({ entity: "events", id: "e1", customer_id: "c1", eventAt: T0, event_type: "page_view" });
  });

  it("types a session with its end time", () => {
    expect(recordOf(run("sessions"))).toEqual({
      entity: "sessions",
      id: "s1",
      customer_id: "c1",
      eventAt: T0,
      session_end_at: T0 + 30 * 60_000,
      device_type: "mobile",
    });
  });

  it("keeps the source message", () => {
    const input = decoded("events", BASE.events);
    const out = validateRecord(input, OPTIONS);
    expect(out.msg).toBe(input.msg);
    expect(out.entity).toBe("events");
  });

  it.each(ENTITIES)("ignores unknown extra fields on %s", (entity) => {
    const plain = recordOf(run(entity));
    const extra = recordOf(run(entity, { extra: "x", nested: { a: 1 }, amount_base: 99, id: "other", entity: "widgets" }));
    expect(extra).toEqual(plain);
  });
});

describe("validateRecord: required fields", () => {
  const required = ENTITIES.flatMap((entity) =>
    CONTRACT[entity].fields.filter((f) => f.fallback === undefined).map((f) => [entity, f.name] as const),
  );

  it("the contract has the documented required fields", () => {
    expect(required).toEqual([
      ["customers", "customer_id"],
      ["transactions", "transaction_id"],
      ["transactions", "customer_id"],
      ["transactions", "amount"],
      ["transactions", "currency"],
      ["transactions", "transaction_date"],
      ["interactions", "interaction_id"],
      ["interactions", "customer_id"],
      ["interactions", "interaction_date"],
      ["interactions", "interaction_type"],
      ["events", "event_id"],
      ["events", "customer_id"],
      ["events", "event_type"],
      ["events", "event_timestamp"],
      ["sessions", "session_id"],
      ["sessions", "customer_id"],
      ["sessions", "session_start"],
      ["sessions", "session_end"],
    ]);
  });

  describe.each(required)("%s.%s", (entity, field) => {
    it.each([
      ["absent", undefined],
      ["null", null],
      ["empty", ""],
      ["whitespace", "  \t\n "],
    ])("is missing_field when %s", (_label, value) => {
      expectQuarantine(run(entity, { [field]: value }), "missing_field", field);
    });
  });

  it("reports the first failing field in contract order", () => {
    const staged = run("transactions", { customer_id: null, amount: "twelve", currency: "XX" });
    expectQuarantine(staged, "missing_field", "customer_id");
  });

  it("ignores inherited properties: a field must be the record's own", () => {
    const fields = Object.create({ transaction_id: "inherited" }) as Record<string, unknown>;
    Object.assign(fields, BASE.transactions);
    delete fields.transaction_id;
    expectQuarantine(validateRecord(decoded("transactions", fields), OPTIONS), "missing_field", "transaction_id");
  });
});

describe("validateRecord: ids", () => {
  it("turns integer ids into decimal strings", () => {
    const r = recordOf(run("transactions", { transaction_id: 123456789, customer_id: 1_000_001 }));
    expect(r.id).toBe("123456789");
    expect(r.customer_id).toBe("1000001");
    expect(recordOf(run("customers", { customer_id: 42 })).id).toBe("42");
    expect(recordOf(run("events", { event_id: 0 })).id).toBe("0");
    expect(recordOf(run("events", { event_id: -7 })).id).toBe("-7");
  });

  it("turns bigint ids into decimal strings", () => {
    expect(recordOf(run("events", { event_id: 12345678901234567890n })).id).toBe("12345678901234567890");
  });

  it("trims string ids", () => {
    const r = recordOf(run("sessions", { session_id: "  s-9 ", customer_id: "\tc-2\n" }));
    expect(r.id).toBe("s-9");
    expect(r.customer_id).toBe("c-2");
  });

  it.each([
    ["a float", 1.5],
    ["an unsafe integer", 2 ** 53],
    ["NaN", Number.NaN],
    ["a boolean", true],
    ["an object", { id: 1 }],
    ["an array", ["t1"]],
  ])("rejects %s as invalid_type", (_label, value) => {
    expectQuarantine(run("transactions", { transaction_id: value }), "invalid_type", "transaction_id");
    expectQuarantine(run("interactions", { customer_id: value }), "invalid_type", "customer_id");
  });
});

describe("validateRecord: amounts", () => {
  it.each([
    [12.5, 12.5],
    [0, 0],
    [100, 100],
    ["12.50", 12.5],
    [" 7 ", 7],
    ["0.5", 0.5],
    [".5", 0.5],
    ["5.", 5],
    ["+3", 3],
    ["1e3", 1000],
    ["2.5E-1", 0.25],
  ])("accepts %j as %s", (value, expected) => {
    const r = recordOf(run("transactions", { amount: value }));
    if (r.entity !== "transactions") throw new Error("unreachable");
    expect(r.amount).toBe(expected);
  });

  it.each([[-5], [-0.01], ["-12.50"], ["-1e2"]])("rejects the negative amount %j as invalid_range", (value) => {
    expectQuarantine(run("transactions", { amount: value }), "invalid_range", "amount");
  });

  it.each([
    ["twelve"],
    ["12,50"],
    ["$12"],
    ["12.5 USD"],
    ["0x10"],
    ["1_000"],
    ["NaN"],
    ["Infinity"],
    ["1e400"],
    [Number.NaN],
    [Number.POSITIVE_INFINITY],
    [Number.NEGATIVE_INFINITY],
    [true],
    [[12]],
    [{ value: 12 }],
  ])("rejects %j as invalid_type", (value) => {
    expectQuarantine(run("transactions", { amount: value }), "invalid_type", "amount");
  });
});

describe("validateRecord: currencies", () => {
  it("upper-cases a lower-case currency", () => {
    const r = recordOf(run("transactions", { currency: "eur" }));
    if (r.entity !== "transactions") throw new Error("unreachable");
    expect(r.currency).toBe("EUR");
  });

  it("trims and upper-cases a mixed-case currency", () => {
    const r = recordOf(run("transactions", { currency: " gBp " }));
    if (r.entity !== "transactions") throw new Error("unreachable");
    expect(r.currency).toBe("GBP");
  });

  it("quarantines a three-letter code not in the rates as unknown_currency", () => {
    expectQuarantine(run("transactions", { currency: "XYZ" }), "unknown_currency", "currency");
    expectQuarantine(run("transactions", { currency: "jpy" }), "unknown_currency", "currency");
  });

  it("uses the rates it is given", () => {
    const staged = validateRecord(decoded("transactions", { ...BASE.transactions, currency: "JPY" }), { rates: { USD: 1, JPY: 0.0067 } });
    expect(recordOf(staged)).toMatchObject({ currency: "JPY" });
  });

  it.each([["US"], ["USDT"], ["U$D"], ["123"], [840], [true], [["USD"]]])(
    "rejects %j as invalid_type",
    (value) => {
      expectQuarantine(run("transactions", { currency: value }), "invalid_type", "currency");
    },
  );

  it("checks the timestamp before the currency table", () => {
    expectQuarantine(run("transactions", { currency: "XYZ", transaction_date: "yesterday" }), "invalid_timestamp", "transaction_date");
  });
});

describe("validateRecord: timestamps", () => {
  const timeFields: Array<[Entity, string]> = [
    ["customers", "registration_date"],
    ["transactions", "transaction_date"],
    ["interactions", "interaction_date"],
    ["events", "event_timestamp"],
    ["sessions", "session_start"],
    ["sessions", "session_end"],
  ];

  it.each(timeFields)("%s.%s: rejects unparseable strings and non-integer numbers as invalid_timestamp", (entity, field) => {
    for (const value of ["yesterday", "2026-02-30", "2026-13-01", 1.5]) {
      expectQuarantine(run(entity, { [field]: value }), "invalid_timestamp", field);
    }
  });

  it.each(timeFields)("%s.%s: rejects booleans and objects as invalid_type", (entity, field) => {
    for (const value of [true, { at: 1 }, [2026, 2, 28]]) {
      expectQuarantine(run(entity, { [field]: value }), "invalid_type", field);
    }
  });

  it("accepts epoch milliseconds, offsets, zone-less strings and Date objects alike", () => {
    for (const value of [T0, BigInt(T0), "2026-02-28T12:00:00+02:00", "2026-02-28T05:00:00-0500", "2026-02-28T10:00:00", new Date(T0)]) {
      expect(recordOf(run("events", { event_timestamp: value })).eventAt, String(value)).toBe(T0);
    }
  });

  it("rejects an invalid Date object as invalid_timestamp", () => {
    expectQuarantine(run("events", { event_timestamp: new Date(Number.NaN) }), "invalid_timestamp", "event_timestamp");
  });
});

describe("validateRecord: sessions", () => {
  it("quarantines session_end before session_start as invalid_range on session_end", () => {
    expectQuarantine(
      run("sessions", { session_start: "2026-02-01T10:00:00Z", session_end: "2026-02-01T09:00:00Z" }),
      "invalid_range",
      "session_end",
    );
    expectQuarantine(run("sessions", { session_start: T0, session_end: T0 - 1 }), "invalid_range", "session_end");
  });

  it("accepts a zero-length session", () => {
    expect(recordOf(run("sessions", { session_start: T0, session_end: T0 }))).toMatchObject({ eventAt: T0, session_end_at: T0 });
  });

  it("compares instants, not strings, across zones", () => {
    // 10:30+02:00 is 08:30Z, before the 09:00Z start.
    expectQuarantine(
      run("sessions", { session_start: "2026-02-01T09:00:00Z", session_end: "2026-02-01T10:30:00+02:00" }),
      "invalid_range",
      "session_end",
    );
  });
});

describe("validateRecord: future timestamps", () => {
  const eventFields: Array<[Entity, string]> = [
    ["customers", "registration_date"],
    ["transactions", "transaction_date"],
    ["interactions", "interaction_date"],
    ["events", "event_timestamp"],
    ["sessions", "session_start"],
  ];

  it.each(eventFields)("%s: %s more than 24 h after receipt is future_timestamp", (entity, field) => {
    const patch: Record<string, unknown> = { [field]: RECEIVED_AT + DAY + 1 };
    if (entity === "sessions") patch.session_end = RECEIVED_AT + DAY + 60_000;
    expectQuarantine(run(entity, patch), "future_timestamp", field);
  });

  it.each(eventFields)("%s: %s exactly 24 h after receipt is accepted", (entity, field) => {
    const patch: Record<string, unknown> = { [field]: RECEIVED_AT + DAY };
    if (entity === "sessions") patch.session_end = RECEIVED_AT + DAY;
    expect(recordOf(run(entity, patch)).eventAt).toBe(RECEIVED_AT + DAY);
  });

  it("sessions: a valid start with session_end more than 24 h after receipt is future_timestamp on session_end", () => {
    const start = RECEIVED_AT - HOUR;
    expectQuarantine(run("sessions", { session_start: start, session_end: RECEIVED_AT + DAY + 1 }), "future_timestamp", "session_end");
    expectQuarantine(run("sessions", { session_start: start, session_end: Date.UTC(2099, 0, 1) }), "future_timestamp", "session_end");
    const ok = recordOf(run("sessions", { session_start: start, session_end: RECEIVED_AT + DAY }));
    expect(ok.eventAt).toBe(start);
  });

  it("measures from the message's receive time, not the wall clock", () => {
    const far = Date.UTC(2099, 0, 1);
    expect(recordOf(run("events", { event_timestamp: far }, far - HOUR)).eventAt).toBe(far);
    expectQuarantine(run("events", { event_timestamp: far }, RECEIVED_AT), "future_timestamp", "event_timestamp");
  });

  it("accepts event times long in the past", () => {
    expect(recordOf(run("events", { event_timestamp: "2001-01-01" })).eventAt).toBe(Date.UTC(2001, 0, 1));
  });

  it("honours a custom tolerance", () => {
    const staged = decoded("events", { ...BASE.events, event_timestamp: RECEIVED_AT + 2 * HOUR });
    expectQuarantine(validateRecord(staged, { ...OPTIONS, futureToleranceMs: HOUR }), "future_timestamp", "event_timestamp");
    expect(validateRecord(staged, { ...OPTIONS, futureToleranceMs: 3 * HOUR }).outcome.status).toBe("valid");
  });
});

describe("validateRecord: optional fields and defaults", () => {
  it.each([["absent", undefined], ["null", null], ["empty", ""], ["blank", "   "]])(
    "customer fields default when %s",
    (_label, value) => {
      const r = recordOf(run("customers", { name: value, email: value, registration_date: value, customer_segment: value }));
      expect(r).toEqual({
        entity: "customers",
        id: "c1",
        customer_id: "c1",
        eventAt: null,
        name: null,
        email: null,
        registration_at: null,
        customer_segment: "unknown",
      });
    },
  );

  it("a customer with only an id is valid", () => {
    const r = validateRecord(decoded("customers", { customer_id: 7 }), OPTIONS);
    expect(recordOf(r)).toMatchObject({ id: "7", customer_segment: "unknown", registration_at: null, name: null, email: null });
  });

  it.each([["absent", undefined], ["null", null], ["blank", " "]])("device_type defaults to unknown when %s", (_label, value) => {
    expect(recordOf(run("sessions", { device_type: value }))).toMatchObject({ device_type: "unknown" });
  });

  it("trims text fields", () => {
    expect(recordOf(run("customers", { name: "  Ada  ", customer_segment: " smb " }))).toMatchObject({ name: "Ada", customer_segment: "smb" });
    expect(recordOf(run("events", { event_type: " login\n" }))).toMatchObject({ event_type: "login" });
  });

  it.each([
    ["customers", "name", 42],
    ["customers", "email", true],
    ["customers", "customer_segment", ["premium"]],
    ["sessions", "device_type", 3],
    ["interactions", "interaction_type", 42],
    ["events", "event_type", { type: "login" }],
  ] as Array<[Entity, string, unknown]>)("%s.%s of the wrong type is invalid_type", (entity, field, value) => {
    expectQuarantine(run(entity, { [field]: value }), "invalid_type", field);
  });
});

describe("validateRecord: pass-through", () => {
  it("returns a non-decoded record unchanged", () => {
    const quarantined: Staged = {
      msg: sourceMessage(),
      entity: "widgets",
      outcome: { status: "quarantined", reason: "unknown_entity", field: null, detail: "x" },
    };
    expect(validateRecord(quarantined, OPTIONS)).toBe(quarantined);
    const valid = validateRecord(decoded("events", BASE.events), OPTIONS);
    expect(validateRecord(valid, OPTIONS)).toBe(valid);
  });
});

describe("validate (pipeable)", () => {
  it("validates each staged record in order, routing oks and errors as values", async () => {
    const input: Staged[] = [
      decoded("transactions", BASE.transactions, { originSeq: 1 }),
      decoded("transactions", { ...BASE.transactions, amount: -1 }, { originSeq: 2 }),
      decoded("customers", { customer_id: 5 }, { originSeq: 3 }),
      decoded("sessions", { ...BASE.sessions, session_end: "2026-02-28T09:00:00Z" }, { originSeq: 4 }),
      decoded("transactions", { ...BASE.transactions, currency: "XYZ" }, { originSeq: 5 }),
    ];
    const out = await lastValueFrom(from(input).pipe(validate(OPTIONS), toArray()));
    expect(out).toHaveLength(5);
    expect(out.map((s) => s.msg.originSeq)).toEqual([1, 2, 3, 4, 5]);
    expect(out.map((s) => (s.outcome.status === "quarantined" ? `${s.outcome.reason}:${s.outcome.field}` : s.outcome.status))).toEqual([
      "valid",
      "invalid_range:amount",
      "valid",
      "invalid_range:session_end",
      "unknown_currency:currency",
    ]);
    expect(out[2]!.outcome).toMatchObject({ status: "valid", record: { entity: "customers", id: "5" } });
  });
});

describe("validateRecord: the amount range (base-currency micros must be an exact integer)", () => {
  // The largest double whose micros round to at most 2^53 - 1 (9,007,199,254,740,990 micros);
  // the next double up, 9,007,199,254.7409916, rounds to 2^53.
  const LARGEST_USD = 9_007_199_254.74099;

  it("quarantines 1e308 as invalid_range: its micros would overflow to Infinity in gold", () => {
    expectQuarantine(run("transactions", { amount: 1e308 }), "invalid_range", "amount");
    expectQuarantine(run("transactions", { amount: "1e308" }), "invalid_range", "amount");
    expectQuarantine(run("transactions", { amount: Number.MAX_VALUE, currency: "EUR" }), "invalid_range", "amount");
  });

  it("accepts the largest amount whose micros are at most 2^53 - 1, and rejects the next one", () => {
    const r = recordOf(run("transactions", { amount: LARGEST_USD }));
    if (r.entity !== "transactions") throw new Error("unreachable");
    expect(Math.round(r.amount * 1e6)).toBe(9_007_199_254_740_990);
    expectQuarantine(run("transactions", { amount: 9_007_199_254.7409916 }), "invalid_range", "amount");
    expectQuarantine(run("transactions", { amount: Number.MAX_SAFE_INTEGER / 1e6 }), "invalid_range", "amount");
    expectQuarantine(run("transactions", { amount: 2 ** 53 + 1 }), "invalid_range", "amount");
  });

  it("applies the limit after conversion to the base currency", () => {
    // 9e9 USD fits; 9e9 GBP is 11.43e9 USD and does not.
    expect(recordOf(run("transactions", { amount: 9e9 }))).toMatchObject({ amount: 9e9 });
    expectQuarantine(run("transactions", { amount: 9e9, currency: "GBP" }), "invalid_range", "amount");
    expect(recordOf(run("transactions", { amount: 7e9, currency: "GBP" }))).toMatchObject({ amount: 7e9, currency: "GBP" });
  });

  it("turns -0 into 0", () => {
    for (const value of [-0, "-0", "-0.0"]) {
      const r = recordOf(run("transactions", { amount: value }));
      if (r.entity !== "transactions") throw new Error("unreachable");
      expect(Object.is(r.amount, 0), String(value)).toBe(true);
    }
  });

  it("takes BigInt amounts (MessagePack int64) exactly, and quarantines those beyond 2^53 as invalid_range", () => {
    expect(recordOf(run("transactions", { amount: 25n }))).toMatchObject({ amount: 25 });
    expectQuarantine(run("transactions", { amount: 2n ** 53n + 1n }), "invalid_range", "amount");
    expectQuarantine(run("transactions", { amount: 2n ** 63n }), "invalid_range", "amount");
    expectQuarantine(run("transactions", { amount: -1n }), "invalid_range", "amount");
  });

  it("keeps NaN and the infinities invalid_type: they are not finite numbers", () => {
    for (const value of [Number.NaN, Infinity, -Infinity]) expectQuarantine(run("transactions", { amount: value }), "invalid_type", "amount");
  });
});

describe("validateRecord: the event-time floor, limits.minEventTime", () => {
  const timeFields: Array<[Entity, string]> = [
    ["customers", "registration_date"],
    ["transactions", "transaction_date"],
    ["interactions", "interaction_date"],
    ["events", "event_timestamp"],
    ["sessions", "session_start"],
    ["sessions", "session_end"],
  ];
  const patchFor = (entity: Entity, field: string, value: unknown): Record<string, unknown> =>
    // A session_start before the floor needs an end that is not before it to reach the check.
    entity === "sessions" && field === "session_start" ? { session_start: value } : { [field]: value };

  it.each(timeFields)("%s.%s: before 1970-01-01T00:00:00Z by default is invalid_range", (entity, field) => {
    for (const value of [-1, "1969-12-31T23:59:59.999Z", "0000-01-01T00:00:00Z", -8.64e15, new Date(-8.64e15), new Date(Date.UTC(-271821, 3, 20))]) {
      expectQuarantine(run(entity, patchFor(entity, field, value)), "invalid_range", field);
    }
  });

  it.each(timeFields)("%s.%s: exactly the floor is accepted", (entity, field) => {
    const patch = entity === "sessions" ? { session_start: 0, session_end: field === "session_end" ? 0 : 1000 } : { [field]: "1970-01-01T00:00:00Z" };
    expect(run(entity, patch).outcome.status).toBe("valid");
  });

  it("honours a configured floor, to the millisecond", () => {
    const minEventTime = Date.UTC(2020, 0, 1);
    const at = (t: number) => validateRecord(decoded("events", { ...BASE.events, event_timestamp: t }), { ...OPTIONS, minEventTime });
    expect(at(minEventTime).outcome.status).toBe("valid");
    expect(at(minEventTime - 1).outcome).toMatchObject({ status: "quarantined", reason: "invalid_range", field: "event_timestamp" });
  });

  it("quarantines the latest instant a Date can hold as future_timestamp, and a later one as invalid_timestamp", () => {
    expectQuarantine(run("events", { event_timestamp: 8.64e15 }), "future_timestamp", "event_timestamp");
    expectQuarantine(run("events", { event_timestamp: 8.64e15 + 1 }), "invalid_timestamp", "event_timestamp");
    expectQuarantine(run("events", { event_timestamp: "+275760-09-13T00:00:00Z" }), "invalid_timestamp", "event_timestamp");
    expectQuarantine(run("events", { event_timestamp: 2n ** 60n }), "invalid_timestamp", "event_timestamp");
  });

  it("a customer registered in the future is future_timestamp on registration_date", () => {
    expectQuarantine(run("customers", { registration_date: RECEIVED_AT + DAY + 1 }), "future_timestamp", "registration_date");
  });
});

describe("validateRecord: id and text shape", () => {
  it("accepts an id of limits.maxIdLength characters and rejects one more as invalid_type", () => {
    expect(recordOf(run("events", { event_id: "e".repeat(256) })).id).toHaveLength(256);
    expectQuarantine(run("events", { event_id: "e".repeat(257) }), "invalid_type", "event_id");
    expectQuarantine(run("events", { customer_id: "c".repeat(300_000) }), "invalid_type", "customer_id");
  });

  it("counts characters, not UTF-16 units: 256 emoji are a valid id", () => {
    const id = "😀".repeat(256);
    expect(recordOf(run("events", { customer_id: id })).customer_id).toBe(id);
    expectQuarantine(run("events", { customer_id: id + "😀" }), "invalid_type", "customer_id");
  });

  it("honours a configured maxIdLength, for integer ids too", () => {
    const opts = { ...OPTIONS, maxIdLength: 4 };
    expect(validateRecord(decoded("events", { ...BASE.events, event_id: 1234 }), opts).outcome.status).toBe("valid");
    expect(validateRecord(decoded("events", { ...BASE.events, event_id: 12345 }), opts).outcome).toMatchObject({ reason: "invalid_type", field: "event_id" });
    expect(validateRecord(decoded("events", { ...BASE.events, event_id: "abcde" }), opts).outcome).toMatchObject({ reason: "invalid_type", field: "event_id" });
  });

  it.each([
    ["NUL", "a\u0000b"],
    ["ESC (a terminal escape)", "a\u001b[31mb"],
    ["an inner newline", "a\nb"],
    ["DEL", "a\u007fb"],
    ["a C1 control", "a\u0085b"],
    ["right-to-left override", "abc\u202Egpj.exe"],
    ["a left-to-right isolate", "a\u2066b\u2069"],
    ["a right-to-left mark", "a\u200Fb"],
    ["a BOM", "a\uFEFFb"],
    ["a lone high surrogate", "a\uD800b"],
    ["a lone low surrogate", "a\uDC00"],
  ])("rejects an id with %s as invalid_type, naming the field", (_label, id) => {
    expectQuarantine(run("transactions", { customer_id: id }), "invalid_type", "customer_id");
    expectQuarantine(run("transactions", { transaction_id: id }), "invalid_type", "transaction_id");
  });

  it.each([
    ["emoji", "🦊-customer-👍🏽"],
    ["a joined emoji sequence", "👨‍👩‍👧"],
    ["Hebrew letters", "לקוח-7"],
    ["Arabic letters", "عميل٧"],
    ["SQL", "'); DROP TABLE customers;--"],
    ["a prototype key", "__proto__"],
    ["constructor", "constructor"],
    ["toString", "toString"],
    ["hasOwnProperty", "hasOwnProperty"],
  ])("accepts an id with %s as an ordinary id", (_label, id) => {
    expect(recordOf(run("transactions", { customer_id: id })).customer_id).toBe(id);
  });

  it("accepts text of limits.maxTextLength characters and rejects one more as invalid_type", () => {
    expect(recordOf(run("customers", { name: "n".repeat(1024) }))).toMatchObject({ name: "n".repeat(1024) });
    expectQuarantine(run("customers", { name: "n".repeat(1025) }), "invalid_type", "name");
    expectQuarantine(run("events", { event_type: "t".repeat(100_000) }), "invalid_type", "event_type");
    const opts = { ...OPTIONS, maxTextLength: 5 };
    expect(validateRecord(decoded("sessions", { ...BASE.sessions, device_type: "sixsix" }), opts).outcome).toMatchObject({ reason: "invalid_type", field: "device_type" });
  });

  it("allows tabs and line breaks inside text but no other control characters or lone surrogates", () => {
    expect(recordOf(run("customers", { name: "Ada\tLovelace\r\nCountess" }))).toMatchObject({ name: "Ada\tLovelace\r\nCountess" });
    expect(recordOf(run("customers", { name: "שרה" }))).toMatchObject({ name: "שרה" });
    expectQuarantine(run("customers", { customer_segment: "vip\u001b[2J" }), "invalid_type", "customer_segment");
    expectQuarantine(run("customers", { email: "a\u0000@example.com" }), "invalid_type", "email");
    expectQuarantine(run("interactions", { interaction_type: "chat\uD800" }), "invalid_type", "interaction_type");
  });
});

describe("validateRecord: own properties only", () => {
  it("ignores a currency the rates table inherits", () => {
    const rates = Object.assign(Object.create({ XYZ: 2 }) as Record<string, number>, { USD: 1 });
    const staged = validateRecord(decoded("transactions", { ...BASE.transactions, currency: "XYZ" }), { rates });
    expect(staged.outcome).toMatchObject({ reason: "unknown_currency", field: "currency" });
  });

  it("treats a JSON __proto__ member as an ordinary unknown field", () => {
    const fields = JSON.parse('{"__proto__":{"transaction_id":"t9","amount":5},"customer_id":"c1","currency":"USD","transaction_date":"2026-02-28"}');
    expectQuarantine(validateRecord(decoded("transactions", fields), OPTIONS), "missing_field", "transaction_id");
  });
});

describe("validateRecord: 64-bit integers from MessagePack, field by field", () => {
  const uint64 = (key: string, hi: number, lo: number) => [0xa0 | key.length, ...new TextEncoder().encode(key), 0xcf, hi >>> 24, (hi >>> 16) & 0xff, (hi >>> 8) & 0xff, hi & 0xff, lo >>> 24, (lo >>> 16) & 0xff, (lo >>> 8) & 0xff, lo & 0xff];
  const str = (s: string) => [0xa0 | s.length, ...new TextEncoder().encode(s)];
  const through = (entity: Entity, pairs: number[][]) =>
    validateRecord(decodeMessage(sourceMessage({ subject: `tributary.${entity}`, data: Uint8Array.from([0x80 | pairs.length, ...pairs.flat()]) }), { maxPayloadBytes: 1 << 20 }), OPTIONS);

  it("keeps a uint64 id beyond 2^53 exact, so two such ids never collide", () => {
    const a = recordOf(through("customers", [uint64("customer_id", 0xffffffff, 0xffffffff)]));
    const b = recordOf(through("customers", [uint64("customer_id", 0xffffffff, 0xfffffffe)]));
    expect([a.id, b.id]).toEqual(["18446744073709551615", "18446744073709551614"]);
  });

  it("quarantines a uint64 amount beyond 2^53 as invalid_range and a uint64 timestamp as invalid_timestamp", () => {
    const base = [
      [...str("transaction_id"), ...str("t1")],
      [...str("customer_id"), ...str("c1")],
      [...str("currency"), ...str("USD")],
    ];
    expect(through("transactions", [...base, uint64("amount", 0x00200000, 1), [...str("transaction_date"), 0xcd, 0x00, 0x01]]).outcome).toMatchObject({ reason: "invalid_range", field: "amount" });
    expect(through("transactions", [...base, [...str("amount"), 0x05], uint64("transaction_date", 0x00200000, 1)]).outcome).toMatchObject({ reason: "invalid_timestamp", field: "transaction_date" });
  });

  it("quarantines a BigInt in a text field or the currency as invalid_type", () => {
    expectQuarantine(run("events", { event_type: 2n ** 60n }), "invalid_type", "event_type");
    expectQuarantine(run("transactions", { currency: 2n ** 60n }), "invalid_type", "currency");
  });
});

import { describe, expect, it } from "vitest";
import { lastValueFrom, toArray } from "rxjs";
import { generateWorkload, generatorSource, type GeneratedMessage } from "../../src/sources/generator.js";
import { decodeMessage } from "../../src/operators/decode.js";
import { validateRecord } from "../../src/operators/validate.js";
import { DEFAULT_RATES } from "../../src/config.js";
import { REASONS } from "../../src/types.js";
import { sourceMessage } from "../helpers/fixtures.js";

const all = (options: Parameters<typeof generateWorkload>[0]) => [...generateWorkload(options)];
const hex = (data: Uint8Array) => Buffer.from(data).toString("hex");
const fingerprint = (ms: GeneratedMessage[]) => ms.map((m) => `${m.subject}|${m.contentType}|${m.msgId}|${hex(m.data)}`);

describe("generateWorkload", () => {
  it("is deterministic for a seed: the same bytes twice", () => {
    const a = all({ seed: 7, messages: 800 });
    const b = all({ seed: 7, messages: 800 });
    expect(fingerprint(a)).toEqual(fingerprint(b));
    expect(a.map((m) => m.expect)).toEqual(b.map((m) => m.expect));
  });

  it("differs across seeds", () => {
    const a = fingerprint(all({ seed: 1, messages: 300 }));
    const b = fingerprint(all({ seed: 2, messages: 300 }));
    expect(a).not.toEqual(b);
    // Not just the msg ids: most payloads differ too.
    const payloadsA = new Set(a.map((f) => f.split("|")[3]));
    const shared = b.filter((f) => payloadsA.has(f.split("|")[3])).length;
    expect(shared).toBeLessThan(30);
  });

  it.each([0, 1, 17, 1000])("yields exactly %d messages when asked", (n) => {
    expect(all({ seed: 3, messages: n })).toHaveLength(n);
  });

  it("gives every message a unique msg id and a tributary subject", () => {
    const ms = all({ seed: 5, messages: 1000 });
    expect(new Set(ms.map((m) => m.msgId)).size).toBe(1000);
    for (const m of ms) expect(m.subject).toMatch(/^tributary\.[a-z]+$/);
  });

  it("spreads the event-time clock over the message count, so a different count gives a different stream", () => {
    expect(fingerprint(all({ seed: 9, messages: 100 }))).not.toEqual(fingerprint(all({ seed: 9, messages: 200 })).slice(0, 100));
  });

  it("covers all 8 contract reason codes among its invalid expectations (2000 messages, invalidRate 0.02)", () => {
    const ms = all({ seed: 42, messages: 2000, invalidRate: 0.02 });
    const reasons = new Set(ms.flatMap((m) => (m.expect.valid ? [] : [m.expect.reason])));
    const contractReasons = REASONS.filter((r) => r !== "oversize");
    expect(contractReasons).toHaveLength(8);
    expect([...reasons].sort()).toEqual([...contractReasons].sort());
  });

  it("covers all 8 codes for other seeds too", () => {
    for (const seed of [1, 123, 2026]) {
      const reasons = new Set(all({ seed, messages: 2000, invalidRate: 0.02 }).flatMap((m) => (m.expect.valid ? [] : [m.expect.reason])));
      expect(reasons.size, `seed ${seed}`).toBe(8);
    }
  });

  it("produces no invalid messages at invalidRate 0", () => {
    expect(all({ seed: 4, messages: 1000, invalidRate: 0 }).every((m) => m.expect.valid)).toBe(true);
  });

  it("sends both MessagePack and JSON payloads, and only JSON ones with a JSON content type", () => {
    const ms = all({ seed: 11, messages: 1000 });
    const isJson = (m: GeneratedMessage) => m.data[0] === 0x7b;
    expect(ms.some(isJson)).toBe(true);
    expect(ms.some((m) => !isJson(m))).toBe(true);
    expect(ms.some((m) => m.contentType === "application/json")).toBe(true);
    for (const m of ms) if (m.contentType !== null) expect(isJson(m)).toBe(true);
  });

  it("sends only JSON at jsonRate 1 and only MessagePack at jsonRate 0 (apart from raw invalid payloads)", () => {
    const json = all({ seed: 12, messages: 300, jsonRate: 1, invalidRate: 0 });
    expect(json.every((m) => m.data[0] === 0x7b)).toBe(true);
    const msgpack = all({ seed: 12, messages: 300, jsonRate: 0, invalidRate: 0 });
    expect(msgpack.every((m) => m.data[0] !== 0x7b && m.contentType === null)).toBe(true);
  });
});

describe("generateWorkload against decode + validate", () => {
  it("each message becomes what its expectation says", () => {
    const ms = all({ seed: 42, messages: 2000, invalidRate: 0.02 });
    // Receive time after the whole span, so only the deliberately far-future records are future_timestamp.
    const receivedAt = Date.UTC(2026, 0, 1) + 91 * 86_400_000;
    for (const [i, m] of ms.entries()) {
      const msg = sourceMessage({ originSeq: i + 1, subject: m.subject, data: m.data, contentType: m.contentType, receivedAt });
      const staged = validateRecord(decodeMessage(msg, { maxPayloadBytes: 1 << 20 }), { rates: DEFAULT_RATES });
      const o = staged.outcome;
      const where = `message ${i + 1} (${m.subject})`;
      if (!m.expect.valid) {
        expect(o, where).toMatchObject({ status: "quarantined", reason: m.expect.reason, field: m.expect.field });
        continue;
      }
      if (o.status !== "valid") throw new Error(`${where}: expected valid, got ${JSON.stringify(o)}`);
      const r = o.record;
      expect(r.entity, where).toBe(m.expect.entity);
      expect(r.id, where).toBe(m.expect.id);
      if (m.expect.entity === "customers") {
        if (r.entity !== "customers") throw new Error("unreachable");
        expect(r.customer_segment, where).toBe(m.expect.segment);
        expect(r.registration_at, where).toBe(m.expect.registrationAt);
        continue;
      }
      if (r.entity === "customers") throw new Error("unreachable");
      expect(r.customer_id, where).toBe(m.expect.customerId);
      expect(r.eventAt, where).toBe(m.expect.eventAt);
      if (r.entity === "transactions") {
        expect(r.amount, where).toBe(m.expect.amount);
        expect(r.currency, where).toBe(m.expect.currency);
      }
      if (r.entity === "sessions") expect(r.session_end_at, where).toBe(m.expect.sessionEndAt);
    }
  });
});

describe("generatorSource", () => {
  it("emits the workload as source messages with 1-based positions, resuming after startAfter", async () => {
    const options = { seed: 8, messages: 50 };
    const expected = all(options);
    const out = await lastValueFrom(generatorSource(options, 20).pipe(toArray()));
    expect(out).toHaveLength(30);
    expect(out[0]!.originSeq).toBe(21);
    expect(out.at(-1)!.originSeq).toBe(50);
    expect(out.every((m) => m.origin === "generator:8")).toBe(true);
    expect(out.map((m) => hex(m.data))).toEqual(expected.slice(20).map((m) => hex(m.data)));
    expect(out.map((m) => m.msgId)).toEqual(expected.slice(20).map((m) => m.msgId));
  });
});

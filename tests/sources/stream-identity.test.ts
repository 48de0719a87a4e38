import { describe, expect, it } from "vitest";
import { compareHeld, judgeStream, parseStoredTime, type StreamState } from "../../src/sources/stream-identity.js";

const A = { created: "2026-12-01T08:00:00.123456789Z", firstSeq: 1 };
const strict = { newStream: false, acceptGap: false };
const server = (s: Partial<StreamState>): StreamState => ({ created: A.created, firstSeq: 1, lastSeq: 7300, createdNow: false, ...s });

describe("judgeStream", () => {
  it("continues on the stream bronze recorded", () => {
    expect(judgeStream("S", A, 7300, server({}), strict)).toEqual({ kind: "same" });
    expect(judgeStream("S", A, 5000, server({ lastSeq: 9000 }), strict)).toEqual({ kind: "same" });
  });

  it("records the identity when nothing was read yet or none was recorded", () => {
    expect(judgeStream("S", null, 0, server({ createdNow: true }), strict)).toEqual({ kind: "record" });
    expect(judgeStream("S", A, 0, server({ created: "2026-12-02T00:00:00Z" }), strict)).toEqual({ kind: "record" });
    expect(judgeStream("S", null, 7300, server({}), strict)).toEqual({ kind: "record" });
  });

  it("refuses a deleted and recreated stream, naming both identities", () => {
    const v = judgeStream("S", A, 7300, server({ created: "2026-12-01T09:00:00Z", lastSeq: 14474 }), strict);
    expect(v.kind).toBe("refuse");
    const msg = (v as { message: string }).message;
    expect(msg).toContain(A.created);
    expect(msg).toContain("2026-12-01T09:00:00Z");
    expect(msg).toContain("last sequence 14474");
    expect((v as { remedy?: string }).remedy).toBe("newStream");
    expect(msg).not.toMatch(/--new-stream/); // CLI advice is the CLI's, added from the remedy
  });

  it("refuses a stream that had to be created although bronze read one, even without a recorded identity", () => {
    expect(judgeStream("S", null, 10, server({ createdNow: true, lastSeq: 0 }), strict).kind).toBe("refuse");
    expect(judgeStream("S", A, 10, server({ createdNow: true, created: "2026-12-03T00:00:00Z", lastSeq: 0 }), strict).kind).toBe("refuse");
  });

  it("with newStream, reads a different stream as a new origin", () => {
    expect(judgeStream("S", A, 7300, server({ created: "2026-12-01T09:00:00Z" }), { newStream: true, acceptGap: false })).toEqual({ kind: "new-origin" });
    // The same stream stays the same origin even with the flag.
    expect(judgeStream("S", A, 7300, server({}), { newStream: true, acceptGap: false })).toEqual({ kind: "same" });
  });

  it("refuses a stream that ends before bronze's position, whatever the flags", () => {
    for (const policy of [strict, { newStream: true, acceptGap: true }]) {
      const v = judgeStream("S", A, 7300, server({ lastSeq: 5000 }), policy);
      expect(v.kind).toBe("refuse");
      expect((v as { message: string }).message).toMatch(/ends at sequence 5000, but bronze read it up to 7300/);
    }
  });

  it("refuses a purged or expired gap and says how many messages are gone; accepts it with acceptGap", () => {
    const v = judgeStream("S", A, 7300, server({ firstSeq: 7401, lastSeq: 7500 }), strict);
    expect(v.kind).toBe("refuse");
    expect((v as { message: string }).message).toMatch(/7301\.\.7400: 100 messages/);
    expect(judgeStream("S", A, 7300, server({ firstSeq: 7401, lastSeq: 7500 }), { newStream: false, acceptGap: true })).toEqual({
      kind: "gap",
      from: 7301,
      to: 7400,
      lost: 100,
    });
    // Everything bronze read was removed, nothing unread: no gap.
    expect(judgeStream("S", A, 7300, server({ firstSeq: 7301, lastSeq: 7300 }), strict)).toEqual({ kind: "same" });
  });
});

describe("compareHeld", () => {
  const data = new TextEncoder().encode('{"a":1}');
  it("agrees on the same payload and stored time (1 ms of slack)", () => {
    expect(compareHeld("S", 7, { data, storedAt: 1000 }, { data: Uint8Array.from(data), storedAt: 1001 })).toBeNull();
    expect(compareHeld("S", 7, { data, storedAt: null }, { data, storedAt: 5 })).toBeNull();
  });
  it("names the sequence and both digests when the payload or the time differs", () => {
    const other = new TextEncoder().encode('{"a":2}');
    expect(compareHeld("S", 7300, { data, storedAt: 1000 }, { data: other, storedAt: 1000 })).toMatch(/at sequence 7300 .*sha256 [0-9a-f]{16}.*sha256 [0-9a-f]{16}/);
    expect(compareHeld("S", 7300, { data, storedAt: 1000 }, { data, storedAt: 9000 })).toMatch(/no longer holds what bronze read/);
  });
});

describe("parseStoredTime", () => {
  it("truncates nanoseconds to milliseconds", () => {
    expect(parseStoredTime("2026-12-01T08:00:00.123456789Z")).toBe(Date.parse("2026-12-01T08:00:00.123Z"));
    expect(parseStoredTime("2026-12-01T08:00:00Z")).toBe(Date.parse("2026-12-01T08:00:00.000Z"));
    expect(parseStoredTime("2026-12-01T10:00:00.5+02:00")).toBe(Date.parse("2026-12-01T08:00:00.500Z"));
    expect(parseStoredTime("not a time")).toBeNull();
  });
});

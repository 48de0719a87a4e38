import { describe, expect, it } from "vitest";
import { DAY_MS, dayOf, formatTimestamp, parseDay, parseTimestamp } from "../src/timestamps.js";

const utc = (y: number, mo: number, d: number, h = 0, mi = 0, s = 0, ms = 0) => Date.UTC(y, mo - 1, d, h, mi, s, ms);

describe("parseTimestamp: ISO-8601 strings", () => {
  it("parses a UTC instant with Z", () => {
    expect(parseTimestamp("2026-03-01T10:00:00Z")).toBe(utc(2026, 3, 1, 10));
    expect(parseTimestamp("2026-03-01T10:00:00z")).toBe(utc(2026, 3, 1, 10));
  });

  it("applies a +HH:MM offset", () => {
    expect(parseTimestamp("2026-03-01T10:00:00+02:00")).toBe(utc(2026, 3, 1, 8));
  });

  it("applies a -HHMM offset without a colon, including minutes", () => {
    expect(parseTimestamp("2026-03-01T10:00:00-0530")).toBe(utc(2026, 3, 1, 15, 30));
    expect(parseTimestamp("2026-03-01T10:00:00-05:30")).toBe(utc(2026, 3, 1, 15, 30));
  });

  it("accepts an hours-only offset", () => {
    expect(parseTimestamp("2026-03-01T10:00:00+02")).toBe(utc(2026, 3, 1, 8));
  });

  it("crosses a day boundary when the offset demands it", () => {
    expect(parseTimestamp("2026-03-01T01:00:00+03:00")).toBe(utc(2026, 2, 28, 22));
    expect(parseTimestamp("2026-12-31T23:00:00-02:00")).toBe(utc(2027, 1, 1, 1));
  });

  it("treats a string without a zone as UTC", () => {
    expect(parseTimestamp("2026-03-01T10:00:00")).toBe(utc(2026, 3, 1, 10));
    expect(parseTimestamp("2026-03-01T10:00:00.250")).toBe(utc(2026, 3, 1, 10, 0, 0, 250));
  });

  it("treats a date alone as midnight UTC", () => {
    expect(parseTimestamp("2026-03-01")).toBe(1772323200000);
    expect(parseTimestamp("2026-03-01")).toBe(utc(2026, 3, 1));
  });

  it("accepts minutes without seconds, a space or lower-case t separator", () => {
    expect(parseTimestamp("2026-03-01T10:30Z")).toBe(utc(2026, 3, 1, 10, 30));
    expect(parseTimestamp("2026-03-01 10:30:15")).toBe(utc(2026, 3, 1, 10, 30, 15));
    expect(parseTimestamp("2026-03-01t10:30:15Z")).toBe(utc(2026, 3, 1, 10, 30, 15));
  });

  it("ignores surrounding whitespace", () => {
    expect(parseTimestamp("  2026-03-01T10:00:00Z \n")).toBe(utc(2026, 3, 1, 10));
  });

  it("keeps fractional seconds to the millisecond, truncating finer digits", () => {
    expect(parseTimestamp("2026-03-01T10:00:00.5Z")).toBe(utc(2026, 3, 1, 10, 0, 0, 500));
    expect(parseTimestamp("2026-03-01T10:00:00.12Z")).toBe(utc(2026, 3, 1, 10, 0, 0, 120));
    expect(parseTimestamp("2026-03-01T10:00:00.123Z")).toBe(utc(2026, 3, 1, 10, 0, 0, 123));
    expect(parseTimestamp("2026-03-01T10:00:00.123999999Z")).toBe(utc(2026, 3, 1, 10, 0, 0, 123));
    expect(parseTimestamp("2026-03-01T10:00:00,75Z")).toBe(utc(2026, 3, 1, 10, 0, 0, 750));
  });

  it("agrees with Date.parse for every millisecond fraction", () => {
    for (let i = 0; i < 1000; i++) {
      const s = `2026-03-01T10:00:00.${String(i).padStart(3, "0")}Z`;
      expect(parseTimestamp(s), s).toBe(Date.parse(s));
    }
  });

  it("round-trips formatTimestamp", () => {
    const ms = utc(2026, 7, 15, 13, 14, 15, 678);
    expect(formatTimestamp(ms)).toBe("2026-07-15T13:14:15.678Z");
    expect(parseTimestamp(formatTimestamp(ms))).toBe(ms);
  });

  it("accepts leap days only in leap years", () => {
    expect(parseTimestamp("2024-02-29")).toBe(utc(2024, 2, 29));
    expect(parseTimestamp("2000-02-29")).toBe(utc(2000, 2, 29));
    expect(parseTimestamp("2026-02-29")).toBeNull();
    expect(parseTimestamp("1900-02-29")).toBeNull();
  });

  it("handles years before 100 without mapping them to the 1900s", () => {
    expect(parseTimestamp("0050-06-01")).toBe(Date.parse("0050-06-01T00:00:00Z"));
    expect(parseTimestamp("0004-02-29")).toBe(Date.parse("0004-02-29T00:00:00Z"));
  });

  it("keeps 0000-02-29 (a leap day the day check accepts) on Feb 29", () => {
    // Regression: Date.UTC maps year 0 to 1900 (not a leap year), which turned Feb 29 into Mar 1.
    expect(parseTimestamp("0000-02-29")).toBe(Date.parse("0000-02-29T00:00:00Z"));
  });

  it.each([
    ["2026-02-30"],
    ["2026-04-31"],
    ["2026-13-01"],
    ["2026-00-10"],
    ["2026-01-00"],
    ["2026-01-32"],
    ["2026-03-01T24:00:00Z"],
    ["2026-03-01T10:60:00Z"],
    ["2026-03-01T10:00:60Z"],
    ["2026-03-01T10:00:00+24:00"],
    ["2026-03-01T10:00:00+02:60"],
    ["yesterday"],
    [""],
    ["   "],
    ["2026-3-1"],
    ["26-03-01"],
    ["2026/03/01"],
    ["2026-03-01T10"],
    ["2026-03-01T10:00:00Zjunk"],
    ["1772323200000"],
  ])("rejects %j", (value) => {
    expect(parseTimestamp(value)).toBeNull();
  });
});

describe("parseTimestamp: numbers and other types", () => {
  it("accepts integer epoch milliseconds as they are", () => {
    expect(parseTimestamp(1772323200000)).toBe(1772323200000);
    expect(parseTimestamp(0)).toBe(0);
    expect(parseTimestamp(-86_400_000)).toBe(-86_400_000);
  });

  it("accepts the extremes a Date can hold and nothing beyond", () => {
    expect(parseTimestamp(8.64e15)).toBe(8.64e15);
    expect(parseTimestamp(-8.64e15)).toBe(-8.64e15);
    expect(parseTimestamp(8.64e15 + 1)).toBeNull();
  });

  it.each([[1.5], [1772323200000.25], [Number.NaN], [Number.POSITIVE_INFINITY], [Number.NEGATIVE_INFINITY], [2 ** 53]])(
    "rejects the number %s",
    (value) => {
      expect(parseTimestamp(value)).toBeNull();
    },
  );

  it("accepts a bigint epoch within range", () => {
    expect(parseTimestamp(1772323200000n)).toBe(1772323200000);
    expect(parseTimestamp(-5n)).toBe(-5);
  });

  it("rejects a bigint outside the range of a Date", () => {
    expect(parseTimestamp(10n ** 20n)).toBeNull();
  });

  it.each([[null], [undefined], [true], [{}], [[2026, 3, 1]], [new Date(0)]])("rejects %j", (value) => {
    expect(parseTimestamp(value)).toBeNull();
  });
});

describe("parseDay", () => {
  it("parses YYYY-MM-DD to that day's midnight UTC", () => {
    expect(parseDay("2026-03-01")).toBe(utc(2026, 3, 1));
    expect(parseDay("1970-01-01")).toBe(0);
  });

  it("rejects anything but a bare date", () => {
    expect(parseDay("2026-03-01T00:00:00Z")).toBeNull();
    expect(parseDay("2026-03-01Z")).toBeNull();
    expect(parseDay(" 2026-03-01")).toBeNull();
    expect(parseDay("2026-3-1")).toBeNull();
    expect(parseDay("today")).toBeNull();
  });

  it("rejects dates that do not exist", () => {
    expect(parseDay("2026-02-30")).toBeNull();
    expect(parseDay("2026-13-01")).toBeNull();
  });
});

describe("dayOf", () => {
  it("counts UTC days since the epoch", () => {
    expect(dayOf(0)).toBe(0);
    expect(dayOf(DAY_MS - 1)).toBe(0);
    expect(dayOf(DAY_MS)).toBe(1);
    expect(dayOf(utc(2026, 3, 1))).toBe(20513);
    expect(dayOf(utc(2026, 3, 1, 23, 59, 59, 999))).toBe(20513);
    expect(dayOf(utc(2026, 3, 2))).toBe(20514);
  });

  it("rounds instants before the epoch down, not toward zero", () => {
    expect(dayOf(-1)).toBe(-1);
    expect(dayOf(-DAY_MS)).toBe(-1);
    expect(dayOf(-DAY_MS - 1)).toBe(-2);
  });

  it("puts an offset timestamp on its UTC day", () => {
    expect(dayOf(parseTimestamp("2026-03-02T01:00:00+02:00")!)).toBe(dayOf(utc(2026, 3, 1)));
  });
});

describe("parseTimestamp: the canonical form's fast path agrees with the general parser", () => {
  // The general parser alone: the same string with a trailing space skips the fast path.
  const general = (s: string) => parseTimestamp(`${s} `);

  it("on random instants from year 100 to 9999, with and without milliseconds", () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const lo = Date.UTC(100, 0, 1);
    const hi = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
    for (let i = 0; i < 20_000; i++) {
      const ms = Math.floor(lo + rand() * (hi - lo));
      const iso = new Date(ms).toISOString();
      expect(parseTimestamp(iso)).toBe(ms);
      const whole = `${iso.slice(0, 19)}Z`;
      expect(parseTimestamp(whole)).toBe(Math.floor(ms / 1000) * 1000);
      expect(parseTimestamp(whole.toLowerCase().replace("t", "T"))).toBe(general(whole));
    }
  });

  it("on impossible dates, non-digits and near misses", () => {
    for (const s of [
      "2026-02-29T00:00:00Z",
      "2024-02-29T00:00:00Z",
      "2026-13-01T00:00:00Z",
      "2026-00-10T00:00:00Z",
      "2026-04-31T00:00:00.000Z",
      "2026-04-30T24:00:00Z",
      "2026-04-30T23:60:00Z",
      "2026-04-30T23:59:60Z",
      "2026-04-30T23:59:5xZ",
      "2026-04-30T23:59:59.1x3Z",
      "2026-04-30t23:59:59z",
      "2026-04-30 23:59:59Z",
      "+026-04-30T23:59:59Z",
      "0099-04-30T23:59:59Z",
      "2026-04-30T23:59:59.000+",
      "2026/04/30T23:59:59Z",
    ]) {
      expect(parseTimestamp(s), s).toBe(general(s));
    }
    expect(parseTimestamp("2026-02-29T00:00:00Z")).toBeNull();
    expect(parseTimestamp("2024-02-29T00:00:00Z")).toBe(utc(2024, 2, 29));
    expect(parseTimestamp("0099-04-30T23:59:59Z")).toBe(general("0099-04-30T23:59:59Z"));
  });
});

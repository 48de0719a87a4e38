/** Timestamp parsing and formatting for the data contract. Everything is epoch milliseconds, UTC. */

export const DAY_MS = 86_400_000;

// YYYY-MM-DD, optionally followed by THH:MM[:SS[.fraction]] and an optional zone (Z or ±HH:MM / ±HHMM).
const ISO_8601 =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;

/** 400 Gregorian years: 146,097 days. */
const GREGORIAN_CYCLE_MS = 146_097 * DAY_MS;

/** The range of instants a JavaScript Date can hold. */
const MAX_ABS_MS = 8.64e15;

/**
 * Parses an ISO-8601 string (no zone means UTC; a date alone means midnight UTC) or integer epoch
 * milliseconds. Returns `null` when the value is not a valid timestamp.
 *
 * @example
 * parseTimestamp("2026-03-01") // 1772323200000
 * parseTimestamp("2026-03-01T10:00:00+02:00") // 2026-03-01T08:00:00Z
 */
export function parseTimestamp(value: unknown): number | null {
  if (typeof value === "number") {
    return Number.isSafeInteger(value) && Math.abs(value) <= MAX_ABS_MS ? value : null;
  }
  if (typeof value === "bigint") {
    return parseTimestamp(Number(value));
  }
  if (typeof value !== "string") return null;
  const fast = parseCanonical(value);
  if (fast !== undefined) return fast;
  const m = ISO_8601.exec(value.trim());
  if (!m) return null;
  const year = +m[1]!;
  const month = +m[2]!;
  const day = +m[3]!;
  const hour = m[4] === undefined ? 0 : +m[4];
  const minute = m[5] === undefined ? 0 : +m[5];
  const second = m[6] === undefined ? 0 : +m[6];
  const millis = m[7] === undefined ? 0 : Math.floor(+`0.${m[7]}` * 1000);
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return null;
  if (day > daysInMonth(year, month)) return null;
  // Date.UTC maps years 0-99 to 1900-1999. The Gregorian calendar repeats every 400 years, so
  // compute those 400 years later and shift back.
  let ms =
    year < 100
      ? Date.UTC(year + 400, month - 1, day, hour, minute, second, millis) - GREGORIAN_CYCLE_MS
      : Date.UTC(year, month - 1, day, hour, minute, second, millis);
  const zone = m[8];
  if (zone && zone !== "Z" && zone !== "z") {
    const sign = zone[0] === "-" ? -1 : 1;
    const digits = zone.slice(1).replace(":", "");
    const zh = +digits.slice(0, 2);
    const zm = digits.length > 2 ? +digits.slice(2, 4) : 0;
    if (zh > 23 || zm > 59) return null;
    ms -= sign * (zh * 60 + zm) * 60_000;
  }
  return ms;
}

/** The value of two ASCII digits at `i`, or NaN. */
function two(s: string, i: number): number {
  const a = s.charCodeAt(i) - 48;
  const b = s.charCodeAt(i + 1) - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : NaN;
}

/**
 * The form producers send almost always, `YYYY-MM-DDTHH:MM:SSZ` or `…:SS.sssZ` (what
 * `Date.prototype.toISOString` writes), read from character codes: no match array and no
 * substrings per record, which the regular expression costs (this runs once per record on the
 * main thread). Returns undefined for anything else, which the general parser then decides.
 */
function parseCanonical(s: string): number | null | undefined {
  const n = s.length;
  if (n !== 20 && n !== 24) return undefined;
  const last = s.charCodeAt(n - 1);
  if ((last !== 90 && last !== 122) || s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45 || s.charCodeAt(13) !== 58 || s.charCodeAt(16) !== 58) return undefined;
  const t = s.charCodeAt(10);
  if (t !== 84 && t !== 116) return undefined;
  let millis = 0;
  if (n === 24) {
    if (s.charCodeAt(19) !== 46) return undefined;
    const c = s.charCodeAt(22) - 48;
    millis = two(s, 20) * 10 + (c >= 0 && c <= 9 ? c : NaN);
  }
  const year = two(s, 0) * 100 + two(s, 2);
  const month = two(s, 5);
  const day = two(s, 8);
  const hour = two(s, 11);
  const minute = two(s, 14);
  const second = two(s, 17);
  // A non-digit anywhere made one of them NaN: let the general parser decide.
  if (Number.isNaN(year + month + day + hour + minute + second + millis)) return undefined;
  if (year < 100) return undefined;
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return null;
  if (day > daysInMonth(year, month)) return null;
  return Date.UTC(year, month - 1, day, hour, minute, second, millis);
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function daysInMonth(year: number, month: number): number {
  return month === 2 && isLeap(year) ? 29 : DAYS_IN_MONTH[month - 1]!;
}

function isLeap(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

/** Formats epoch milliseconds as ISO-8601 UTC (`2026-03-01T10:00:00.000Z`). */
export function formatTimestamp(ms: number): string {
  return new Date(ms).toISOString();
}

/** Parses `YYYY-MM-DD` into that day's 00:00Z, or returns null. */
export function parseDay(value: string): number | null {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) return null;
  return parseTimestamp(value);
}

/**
 * Parses an as-of instant: `YYYY-MM-DD` (that day at 00:00Z) or an ISO-8601 date and time
 * (`2026-11-20T13:37:00Z`; no zone means UTC). Returns epoch ms, or null.
 */
export function parseAsOf(value: string): number | null {
  return parseDay(value) ?? (/^\d{4}-\d{2}-\d{2}[Tt]/.test(value) ? parseTimestamp(value) : null);
}

/** The UTC day number (days since 1970-01-01) that an instant falls in. */
export function dayOf(ms: number): number {
  return Math.floor(ms / DAY_MS);
}

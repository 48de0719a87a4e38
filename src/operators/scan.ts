/**
 * Structural pre-scans of a payload's bytes, run before any parser sees them. A parser trusts the
 * lengths it reads: msgpackr allocates `new Array(n)` for an array header claiming n elements and
 * recurses once per nesting level, so a 5-byte payload could ask for 4 billion slots and a deep
 * one could exhaust the stack. The scans walk the bytes without recursion and without allocating,
 * and say what is wrong before anything is built.
 */
import { isUtf8 as nativeIsUtf8 } from "node:buffer";

/** Limits on a payload's structure. */
export interface StructureLimits {
  /** Deepest nesting of maps and arrays; the record's own map is depth 1. */
  readonly maxDepth: number;
  /** Map entries plus array elements in the whole payload, at every depth. */
  readonly maxFields: number;
}

/** Why a payload failed its scan: malformed bytes (`decode_error`) or past a limit (`oversize`). */
export interface ScanProblem {
  readonly reason: "decode_error" | "oversize";
  readonly detail: string;
}

/** Strings of at least this many bytes are checked by Node's native (simdutf) UTF-8 validator. */
const NATIVE_UTF8_FROM = 64;
const MAP = 1;
const ARRAY = 2;
/** The MessagePack timestamp extension, type -1. */
const TIMESTAMP_EXT = 0xff;
/** Type 0 of one byte: `undefined` as msgpackr and notepack write it (a field left unset). */
const UNDEFINED_EXT = 0x00;

// Values still expected in each open container, and the container's kind. Shared by every call
// (scans are synchronous) and grown on demand, so a scan allocates nothing.
let remaining = new Int32Array(64);
let kinds = new Uint8Array(64);

function ensureDepth(depth: number): void {
  if (depth < remaining.length) return;
  const r = new Int32Array(depth * 2);
  r.set(remaining);
  remaining = r;
  const k = new Uint8Array(depth * 2);
  k.set(kinds);
  kinds = k;
}

const malformed = (detail: string): ScanProblem => ({ reason: "decode_error", detail });

/**
 * Checks that `data` is exactly one well-formed MessagePack value within `limits`: every length
 * fits in the bytes that remain, nesting and the number of entries stay within the limits, map keys
 * are strings, every string is valid UTF-8, the only extensions are the timestamp (type -1) and
 * `undefined` (type 0, one byte), and nothing follows the value. Returns null when it is, or the
 * problem.
 *
 * @example
 * scanMessagePack(Uint8Array.from([0xdd, 0xff, 0xff, 0xff, 0xff]), { maxDepth: 32, maxFields: 1000 })
 * // { reason: "decode_error", detail: "an array of 4294967295 elements in 0 remaining bytes" }
 */
export function scanMessagePack(data: Uint8Array, limits: StructureLimits): ScanProblem | null {
  const n = data.length;
  let pos = 0;
  let depth = 0;
  let fields = 0;
  // The open container's values still to read and its kind, in locals; its parents' on the stack.
  let rem = 1;
  let kind = 0;
  for (;;) {
    while (rem === 0) {
      if (depth === 0) return pos === n ? null : malformed(`${n - pos} trailing bytes after the value`);
      depth--;
      rem = remaining[depth]!;
      kind = kinds[depth]!;
    }
    // Map slots alternate key, value: with 2k values left, the next one is a key.
    const isKey = kind === MAP && (rem & 1) === 0;
    rem--;
    if (pos >= n) return malformed(n === 0 ? "an empty payload" : `truncated: ${n} bytes end inside a value`);
    const t = data[pos++]!;
    let strLength = -1;
    let skip = 0;
    let open = 0;
    let count = 0;
    if ((t & 0xe0) === 0xa0) {
      strLength = t & 0x1f;
    } else if (t < 0x80 || t >= 0xe0) {
      // positive or negative fixint
    } else if (t < 0x90) {
      open = MAP;
      count = t & 0x0f;
    } else if (t < 0xa0) {
      open = ARRAY;
      count = t & 0x0f;
    } else {
      const left = n - pos;
      switch (t) {
        case 0xc0:
        case 0xc2:
        case 0xc3:
          break;
        case 0xc1:
          return malformed("the never-used byte 0xc1");
        case 0xc4:
        case 0xc5:
        case 0xc6: {
          const w = t === 0xc4 ? 1 : t === 0xc5 ? 2 : 4;
          if (left < w) return malformed("truncated bin header");
          skip = readUint(data, pos, w);
          pos += w;
          break;
        }
        case 0xc7:
        case 0xc8:
        case 0xc9: {
          const w = t === 0xc7 ? 1 : t === 0xc8 ? 2 : 4;
          if (left < w + 1) return malformed("truncated ext header");
          skip = readUint(data, pos, w);
          const type = data[pos + w]!;
          pos += w + 1;
          const bad = checkExtension(type, skip);
          if (bad) return bad;
          break;
        }
        case 0xca:
          skip = 4;
          break;
        case 0xcb:
          skip = 8;
          break;
        case 0xcc:
        case 0xd0:
          skip = 1;
          break;
        case 0xcd:
        case 0xd1:
          skip = 2;
          break;
        case 0xce:
        case 0xd2:
          skip = 4;
          break;
        case 0xcf:
        case 0xd3:
          skip = 8;
          break;
        case 0xd4:
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8: {
          if (left < 1) return malformed("truncated ext header");
          skip = 1 << (t - 0xd4);
          const bad = checkExtension(data[pos++]!, skip);
          if (bad) return bad;
          break;
        }
        case 0xd9:
        case 0xda:
        case 0xdb: {
          const w = t === 0xd9 ? 1 : t === 0xda ? 2 : 4;
          if (left < w) return malformed("truncated str header");
          strLength = readUint(data, pos, w);
          pos += w;
          break;
        }
        case 0xdc:
        case 0xdd:
        case 0xde:
        case 0xdf: {
          const w = t === 0xdc || t === 0xde ? 2 : 4;
          if (left < w) return malformed("truncated collection header");
          count = readUint(data, pos, w);
          pos += w;
          open = t <= 0xdd ? ARRAY : MAP;
          break;
        }
      }
    }
    if (isKey && strLength < 0) return malformed("a map key that is not a string");
    if (strLength >= 0) {
      if (strLength > n - pos) return malformed(`a string of ${strLength} bytes in ${n - pos} remaining bytes`);
      // Long strings go to the native validator; for short ones the call costs more than the loop.
      const valid = strLength < NATIVE_UTF8_FROM ? isUtf8(data, pos, pos + strLength) : nativeIsUtf8(data.subarray(pos, pos + strLength));
      if (!valid) return malformed("a string that is not valid UTF-8");
      pos += strLength;
    } else if (skip > 0) {
      if (skip > n - pos) return malformed(`a value of ${skip} bytes in ${n - pos} remaining bytes`);
      pos += skip;
    } else if (open !== 0) {
      if (depth + 1 > limits.maxDepth) return { reason: "oversize", detail: `nesting deeper than limits.maxDepth (${limits.maxDepth})` };
      // Every value takes at least one byte: a header claiming more than the bytes left is a lie.
      const values = open === MAP ? count * 2 : count;
      if (values > n - pos) {
        return malformed(`${open === MAP ? `a map of ${count} entries` : `an array of ${count} elements`} in ${n - pos} remaining bytes`);
      }
      fields += count;
      if (fields > limits.maxFields) return { reason: "oversize", detail: `more than limits.maxFields (${limits.maxFields}) map entries and array elements` };
      ensureDepth(depth + 1);
      remaining[depth] = rem;
      kinds[depth] = kind;
      depth++;
      rem = values;
      kind = open;
    }
  }
}

/** The only extensions accepted: the timestamp, and msgpackr's one-byte `undefined`. */
function checkExtension(type: number, length: number): ScanProblem | null {
  if (type === UNDEFINED_EXT && length === 1) return null;
  if (type !== TIMESTAMP_EXT) return malformed(`MessagePack extension type ${type > 127 ? type - 256 : type} is not supported`);
  if (length !== 4 && length !== 8 && length !== 12) return malformed(`a timestamp extension of ${length} bytes`);
  return null;
}

function readUint(data: Uint8Array, pos: number, width: number): number {
  if (width === 1) return data[pos]!;
  if (width === 2) return (data[pos]! << 8) | data[pos + 1]!;
  return data[pos]! * 0x1000000 + ((data[pos + 1]! << 16) | (data[pos + 2]! << 8) | data[pos + 3]!);
}

/**
 * True when `data[start, end)` is valid UTF-8: no stray continuation bytes, no overlong forms, no
 * surrogates (U+D800–DFFF), nothing above U+10FFFF and no sequence cut short.
 */
export function isUtf8(data: Uint8Array, start: number, end: number): boolean {
  // Most strings are ASCII: one branch-free pass settles those.
  let any = 0;
  for (let j = start; j < end; j++) any |= data[j]!;
  if (any < 0x80) return true;
  let i = start;
  while (i < end) {
    const c = data[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c < 0xc2) return false; // a continuation byte, or an overlong 2-byte lead
    if (c < 0xe0) {
      if (i + 1 >= end || (data[i + 1]! & 0xc0) !== 0x80) return false;
      i += 2;
      continue;
    }
    if (c < 0xf0) {
      if (i + 2 >= end) return false;
      const c1 = data[i + 1]!;
      if ((c1 & 0xc0) !== 0x80 || (data[i + 2]! & 0xc0) !== 0x80) return false;
      if ((c === 0xe0 && c1 < 0xa0) || (c === 0xed && c1 >= 0xa0)) return false; // overlong; surrogate
      i += 3;
      continue;
    }
    if (c < 0xf5) {
      if (i + 3 >= end) return false;
      const c1 = data[i + 1]!;
      if ((c1 & 0xc0) !== 0x80 || (data[i + 2]! & 0xc0) !== 0x80 || (data[i + 3]! & 0xc0) !== 0x80) return false;
      if ((c === 0xf0 && c1 < 0x90) || (c === 0xf4 && c1 >= 0x90)) return false; // overlong; above U+10FFFF
      i += 4;
      continue;
    }
    return false;
  }
  return true;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

/**
 * Checks a JSON document's nesting and size before `JSON.parse` builds it: the depth of `[` and
 * `{` outside strings, and the number of object members plus array elements. It reads the decoded
 * text (the parser needs it anyway); malformed JSON is left for the parser to report. Returns null
 * when the document is within `limits`.
 *
 * @example
 * scanJson('{"a":[[[1]]]}', { maxDepth: 3, maxFields: 1000 })
 * // { reason: "oversize", detail: "nesting deeper than limits.maxDepth (3)" }
 */
export function scanJson(text: string, limits: StructureLimits): ScanProblem | null {
  const n = text.length;
  // The common case, decided with a few native searches: every member takes at least two
  // characters, and nesting needs as many opening brackets as levels.
  if (n < 2 * limits.maxFields && countUpTo(text, "{", limits.maxDepth + 1) + countUpTo(text, "[", limits.maxDepth + 1) <= limits.maxDepth) {
    return null;
  }
  let depth = 0;
  let fields = 0;
  // Set by an opening bracket: the next significant character says whether the container is empty.
  let opened = false;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c <= 0x20) continue; // blanks (and control characters, which JSON.parse rejects)
    if (opened) {
      opened = false;
      if (c !== CLOSE_BRACKET && c !== CLOSE_BRACE) fields++;
    }
    if (c === QUOTE) {
      // A string's body holds most of a record's bytes: find its end with the native indexOf,
      // skipping quotes escaped by an odd run of backslashes.
      let end = i;
      for (;;) {
        end = text.indexOf('"', end + 1);
        if (end < 0) return null; // unterminated: the parser reports it
        let k = end - 1;
        while (text.charCodeAt(k) === BACKSLASH) k--;
        if ((end - 1 - k) % 2 === 0) break;
      }
      i = end;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > limits.maxDepth) return { reason: "oversize", detail: `nesting deeper than limits.maxDepth (${limits.maxDepth})` };
      opened = true;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
    } else if (c === COMMA) {
      if (++fields > limits.maxFields) return tooManyMembers(limits);
    }
  }
  return fields > limits.maxFields ? tooManyMembers(limits) : null;
}

/** Occurrences of `ch` in `text`, counting no further than `cap`. */
function countUpTo(text: string, ch: string, cap: number): number {
  let count = 0;
  for (let i = text.indexOf(ch); i >= 0 && count < cap; i = text.indexOf(ch, i + 1)) count++;
  return count;
}

const tooManyMembers = (limits: StructureLimits): ScanProblem => ({
  reason: "oversize",
  detail: `more than limits.maxFields (${limits.maxFields}) object members and array elements`,
});

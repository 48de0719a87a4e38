import type { OperatorFunction } from "rxjs";
import { toOperator, type Stage } from "./stage.js";
import { Unpackr, type Options as UnpackrOptions } from "msgpackr";
import type { SourceMessage, Staged } from "../types.js";
import { ENTITIES } from "../types.js";
import type { EntityDefinition } from "../model/entities.js";
import { scanJson, scanMessagePack, type StructureLimits } from "./scan.js";

export interface DecodeOptions {
  /** Payloads above this many bytes are quarantined as `oversize` without being parsed. */
  readonly maxPayloadBytes: number;
  /** Deepest nesting of maps and arrays (the record's map is depth 1); deeper is `oversize`. */
  readonly maxDepth?: number;
  /** Map entries plus array elements in a payload, all depths together; more is `oversize`. */
  readonly maxFields?: number;
  /** The entities a subject may name (see `model/entities.ts`); default the built-in five. */
  readonly entities?: readonly EntityDefinition[];
}

/** The decode limits' defaults, which `limits.*` in the config documents and uses. */
export const DECODE_DEFAULTS = { maxPayloadBytes: 1_048_576, maxDepth: 32, maxFields: 1_000 } as const;

// `int64AsType: "auto"`: a 64-bit integer beyond 2^53 becomes a BigInt instead of a rounded
// number, so validate sees the exact value (an exact id, an out-of-range amount).
// (msgpackr supports "auto" but its typings do not list it.)
const unpackr = new Unpackr({ mapsAsObjects: true, useRecords: false, int64AsType: "auto" } as unknown as UnpackrOptions);
const utf8 = new TextDecoder("utf-8", { fatal: true });
const KNOWN_ENTITIES: ReadonlySet<string> = new Set(ENTITIES);
const knownSets = new WeakMap<readonly EntityDefinition[], ReadonlySet<string>>();

function knownEntities(entities: readonly EntityDefinition[] | undefined): ReadonlySet<string> {
  if (entities === undefined) return KNOWN_ENTITIES;
  let set = knownSets.get(entities);
  if (set === undefined) {
    set = new Set(entities.map((e) => e.name));
    knownSets.set(entities, set);
  }
  return set;
}
const OPEN_BRACE = 0x7b;

/** The entity a subject names: its second token (`tributary.transactions.eu` → `transactions`). */
export function entityOf(subject: string): string {
  const first = subject.indexOf(".");
  if (first < 0) return "";
  const second = subject.indexOf(".", first + 1);
  return second < 0 ? subject.slice(first + 1) : subject.slice(first + 1, second);
}

/** True when the payload is JSON: a JSON content type, or a first non-blank byte of `{`. */
export function isJsonPayload(data: Uint8Array, contentType: string | null): boolean {
  if (contentType !== null && contentType.toLowerCase().includes("json")) return true;
  for (let i = 0; i < data.length; i++) {
    const b = data[i]!;
    if (b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d) continue;
    return b === OPEN_BRACE;
  }
  return false;
}

/**
 * Decodes one message: checks its entity and payload size, scans the payload's structure (lengths
 * against the bytes present, nesting, entry count, UTF-8), then parses MessagePack or JSON into a
 * plain object. Failures become quarantine outcomes (`unknown_entity`, `oversize`, `decode_error`).
 *
 * @example
 * decodeMessage(msg, { maxPayloadBytes: 1 << 20 }).outcome // { status: "decoded", fields: {...} }
 */
export function decodeMessage(msg: SourceMessage, options: DecodeOptions): Staged {
  const entity = entityOf(msg.subject);
  if (!knownEntities(options.entities).has(entity)) {
    return quarantined(msg, entity, "unknown_entity", `subject ${msg.subject} names no known entity`);
  }
  if (msg.data.length > options.maxPayloadBytes) {
    return quarantined(msg, entity, "oversize", `payload of ${msg.data.length} bytes exceeds ${options.maxPayloadBytes}`);
  }
  let value: unknown;
  const json = isJsonPayload(msg.data, msg.contentType);
  // The topology passes every limit, so the hot path builds nothing here.
  const limits: StructureLimits =
    options.maxDepth !== undefined && options.maxFields !== undefined
      ? (options as StructureLimits)
      : { maxDepth: options.maxDepth ?? DECODE_DEFAULTS.maxDepth, maxFields: options.maxFields ?? DECODE_DEFAULTS.maxFields };
  const format = json ? "JSON" : "MessagePack";
  try {
    if (json) {
      // Decoding first rejects invalid UTF-8; the scan then reads the text the parser will.
      const text = utf8.decode(msg.data);
      const problem = scanJson(text, limits);
      if (problem !== null) return quarantined(msg, entity, problem.reason, `${format}: ${problem.detail}`);
      value = JSON.parse(text);
    } else {
      const problem = scanMessagePack(msg.data, limits);
      if (problem !== null) return quarantined(msg, entity, problem.reason, `${format}: ${problem.detail}`);
      value = unpackr.unpack(msg.data);
    }
  } catch (err) {
    return quarantined(msg, entity, "decode_error", `${format}: ${(err as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value) || Object.getPrototypeOf(value) !== Object.prototype) {
    return quarantined(msg, entity, "decode_error", `payload is not a ${json ? "JSON object" : "MessagePack map"}`);
  }
  return { msg, entity, outcome: { status: "decoded", fields: value as Record<string, unknown> } };
}

function quarantined(msg: SourceMessage, entity: string, reason: "unknown_entity" | "oversize" | "decode_error", detail: string): Staged {
  return { msg, entity, outcome: { status: "quarantined", reason, field: null, detail: detail.slice(0, 200) } };
}

/** The decode stage: {@link decodeMessage} as a named value, for the composed hot path. */
export function decodeStage(options: DecodeOptions): Stage<SourceMessage, Staged> {
  return { id: "decode", apply: (msg) => decodeMessage(msg, options) };
}

/** Pipeable form of {@link decodeMessage}, derived from the same stage. */
export function decode(options: DecodeOptions): OperatorFunction<SourceMessage, Staged> {
  return toOperator(decodeStage(options));
}

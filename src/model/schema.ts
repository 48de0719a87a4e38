/**
 * The data contract as JSON Schema (draft 2020-12), generated from the same contract the
 * validator applies (the entity registry and the limits), so producers can check records before they
 * publish them. A static schema cannot say everything the validator checks; what it leaves out is
 * listed in {@link SCHEMA_LIMITATIONS}, and a test keeps the two in agreement on everything else.
 */
import { MAX_AMOUNT_MICROS } from "../operators/validate.js";
import { BUILTIN_ENTITIES, entityNamed, type EntityDefinition } from "./entities.js";

export interface SchemaOptions {
  /** The rates table: a currency outside it is `unknown_currency`. */
  readonly rates: Readonly<Record<string, number>>;
  /** Earliest accepted timestamp, epoch ms (applies to epoch-ms timestamps in the schema). */
  readonly minEventTime: number;
  readonly maxIdLength: number;
  readonly maxTextLength: number;
}

/** What the validator checks that a static JSON Schema cannot, and the reason each gives. */
export const SCHEMA_LIMITATIONS: readonly string[] = [
  "future_timestamp: a time more than 24 h after the message is received depends on when it is received",
  "invalid_timestamp: dates that do not exist (2026-02-30) pass the schema's pattern",
  "invalid_range: session_end before session_start compares two fields",
  "invalid_range: limits.minEventTime is checked for epoch-millisecond timestamps only, not for ISO-8601 strings",
  "invalid_range: the largest amount depends on the currency's rate; the schema allows the largest over all currencies",
  "invalid_type: ids and texts are trimmed before their length is checked, and lone UTF-16 surrogates are refused",
  "decode_error, unknown_entity, oversize: properties of the message, not of the record",
];

/** ISO-8601 as the validator reads it: a date, optionally a time and a zone. */
const ISO_8601 =
  "^\\s*\\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\\d|3[01])([Tt ]([01]\\d|2[0-3]):[0-5]\\d(:[0-5]\\d([.,]\\d{1,9})?)?)?\\s*(Z|z|[+-]([01]\\d|2[0-3])(:?[0-5]\\d)?)?\\s*$";
const NUMERIC = "^\\s*\\+?(\\d+(\\.\\d*)?|\\.\\d+)([eE][+-]?\\d+)?\\s*$";
const NOT_BLANK = "(?=[\\s\\S]*\\S)";
const ID_CHARS = "[^\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u2028-\\u202e\\u2066-\\u2069\\ufeff]";
const TEXT_CHARS = "[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]";
const MAX_MS = 8.64e15;

type Json = Record<string, unknown>;

function fieldSchema(kind: string, required: boolean, o: SchemaOptions): Json {
  const blank = required ? NOT_BLANK : "";
  switch (kind) {
    case "id":
      return {
        anyOf: [
          { type: "string", pattern: `^${NOT_BLANK}${ID_CHARS}*$`, maxLength: o.maxIdLength },
          { type: "integer", minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER },
        ],
      };
    case "text":
      return { type: "string", pattern: `^${blank}${TEXT_CHARS}*$`, maxLength: o.maxTextLength };
    case "timestamp":
      return { anyOf: [{ type: "string", pattern: ISO_8601 }, { type: "integer", minimum: o.minEventTime, maximum: MAX_MS }] };
    case "amount": {
      const smallestRate = Math.min(...Object.values(o.rates));
      const maximum = Math.floor((MAX_AMOUNT_MICROS / 1e6 / smallestRate) * 100) / 100;
      return { anyOf: [{ type: "number", minimum: 0, maximum }, { type: "string", pattern: NUMERIC }] };
    }
    case "currency": {
      const either = (c: string) => [...c].map((ch) => `[${ch.toUpperCase()}${ch.toLowerCase()}]`).join("");
      return { type: "string", pattern: `^\\s*(${Object.keys(o.rates).map(either).join("|")})\\s*$`, description: `one of ${Object.keys(o.rates).join(", ")} (any case)` };
    }
    default:
      throw new Error(`no JSON Schema for field kind ${kind}`);
  }
}

/**
 * The JSON Schema of one entity's records. Required fields may not be null or blank; optional
 * ones may be null (their default applies). Unknown extra fields are allowed: they are kept in
 * bronze and ignored after it.
 *
 * @example
 * entitySchema("transactions", { rates: { USD: 1 }, minEventTime: 0, maxIdLength: 256, maxTextLength: 1024 }).required
 * // ["transaction_id", "customer_id", "amount", "currency", "transaction_date"]
 */
export function entitySchema(entity: string | EntityDefinition, o: SchemaOptions): Json {
  const def = typeof entity === "string" ? entityNamed(BUILTIN_ENTITIES, entity) : entity;
  if (def === undefined) throw new TypeError(`unknown entity "${String(entity)}"`);
  const properties: Json = {};
  const required: string[] = [];
  for (const f of def.fields) {
    const isRequired = f.optional === undefined;
    const s = fieldSchema(f.kind, isRequired, o);
    if (isRequired) {
      required.push(f.name);
      properties[f.name] = s;
    } else {
      properties[f.name] = {
        anyOf: [{ type: "null" }, s],
        ...(f.optional!.default !== null ? { default: f.optional!.default } : {}),
      };
    }
  }
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    $id: `urn:tributary:entity:${def.name}`,
    title: def.name,
    description: `A ${def.name} record as tributary's data contract accepts it; the event time is ${def.eventTime}. Publish on tributary.${def.name}.`,
    type: "object",
    required,
    properties,
    $comment: `Not expressible here: ${SCHEMA_LIMITATIONS.join("; ")}`,
  };
}

/** Every entity's schema, keyed by entity (the built-in five unless given). */
export function contractSchemas(o: SchemaOptions, entities: readonly EntityDefinition[] = BUILTIN_ENTITIES): Record<string, Json> {
  return Object.fromEntries(entities.map((e) => [e.name, entitySchema(e, o)]));
}

/**
 * Configuration: one zod schema is the single source of truth for defaults, validation and the
 * documented keys. Unknown keys are rejected and every error names its key path.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { parse as parseYaml } from "yaml";
import { ConfigError } from "./errors.js";
import { parseTimestamp } from "./timestamps.js";
import { DECODE_DEFAULTS } from "./operators/decode.js";
import { VALIDATE_DEFAULTS } from "./operators/validate.js";
import { AGGREGATES, FEATURE_SOURCES, checkCustomFeatures, featureSources, type SourceEntity } from "./model/features.js";
import { BUILTIN_ENTITIES, type EntityDefinition } from "./model/entities.js";
import { FAULT_ENV_VARS } from "./runtime/faults.js";

/** Each duration unit with its spellings, smallest first: `500ms`, `30 seconds`, `1.5h`, `7 days`, `2w`. */
const DURATION_UNITS: readonly (readonly [ms: number, names: readonly string[]])[] = [
  [1, ["ms", "msec", "msecs", "millisecond", "milliseconds"]],
  [1_000, ["s", "sec", "secs", "second", "seconds"]],
  [60_000, ["m", "min", "mins", "minute", "minutes"]],
  [3_600_000, ["h", "hr", "hrs", "hour", "hours"]],
  [86_400_000, ["d", "day", "days"]],
  [604_800_000, ["w", "wk", "wks", "week", "weeks"]],
];
const UNIT_MS = new Map(DURATION_UNITS.flatMap(([ms, names]) => names.map((n) => [n, ms] as const)));
const DURATION = /^(\d+(?:\.\d+)?)\s*([A-Za-z]+)$/;
const DURATION_EXAMPLES = `"7d", "24h", "30 seconds" or "500ms"`;

/**
 * Milliseconds in a duration such as `7d`, `7 days`, `1.5h`, `30 seconds`, `2w` or `500ms` (units
 * ms, s, m, h, d and w, spelt short or long, with or without a space), or why it is not one.
 *
 * @example
 * parseDuration("7 days"); // 604800000
 * parseDuration("7 fortnights"); // { error: 'unknown unit "fortnights" in "7 fortnights": …' }
 */
export function parseDuration(text: string): number | { error: string } {
  const s = text.trim();
  const m = DURATION.exec(s);
  if (m) {
    const ms = UNIT_MS.get(m[2]!.toLowerCase());
    if (ms !== undefined) return Math.round(Number(m[1]) * ms);
    return { error: `unknown unit "${m[2]}" in "${s}": use ms, s, m, h, d or w (or seconds, minutes, hours, days, weeks)` };
  }
  if (/^\d+(\.\d+)?$/.test(s)) return { error: `"${s}" has no unit: write "${s}s", "${s}m", "${s}d"…, or a number of milliseconds` };
  if (/^-/.test(s)) return { error: `a duration cannot be negative, got "${s}"` };
  return { error: `expected a duration such as ${DURATION_EXAMPLES}, got "${s}"` };
}

/** A duration in milliseconds in its largest whole unit: 604800000 → `7d`, 30000 → `30s`. */
export function formatDuration(ms: number): string {
  for (const [unit, name] of [[86_400_000, "d"], [3_600_000, "h"], [60_000, "m"], [1_000, "s"]] as const) {
    if (ms !== 0 && ms % unit === 0) return `${ms / unit}${name}`;
  }
  return `${ms}ms`;
}

/** The string form of a duration; {@link configAsWritten} finds durations in the schema by it. */
const durationText = z.string().transform((s, ctx) => {
  const ms = parseDuration(s);
  if (typeof ms === "number") return ms;
  ctx.addIssue({ code: "custom", message: ms.error });
  return z.NEVER;
});

/** A duration: a number of milliseconds, or a string such as `500ms`, `30s`, `15m`, `24h`, `7d`, `7 days`. */
const duration = z.union([z.number().int().nonnegative(), durationText]);

const currencyCode = z
  .string()
  .regex(/^[A-Za-z]{3}$/, "expected a three-letter currency code")
  .transform((s) => s.toUpperCase());

export const DEFAULT_RATES: Record<string, number> = {
  USD: 1,
  EUR: 1.08,
  GBP: 1.27,
  CAD: 0.73,
  JPY: 0.0067,
  CHF: 1.13,
  AUD: 0.66,
};

export const configSchema = z
  .object({
    nats: z
      .strictObject({
        url: z.string().min(1).default("nats://127.0.0.1:4222"),
        stream: z.string().regex(/^[A-Za-z0-9_-]+$/, "stream names are letters, digits, - and _").default("TRIBUTARY"),
        subjects: z.array(z.string().min(1)).min(1).default(["tributary.>"]),
        consumer: z.string().regex(/^[A-Za-z0-9_-]+$/, "consumer names are letters, digits, - and _").default("tributary"),
        /** Credentials, when the server requires them (use ${VAR} to keep them out of the file). */
        user: z.string().optional(),
        pass: z.string().optional(),
        token: z.string().optional(),
        /** A file holding a user NKey seed (`SU…`), for a server that lists the user's public nkey. */
        nkeySeedFile: z.string().min(1).optional(),
        /** A JWT `.creds` file (user JWT and seed), for a server in operator mode. */
        credsFile: z.string().min(1).optional(),
        /**
         * TLS: a CA for the server's certificate, and a client certificate and key for a server
         * that verifies clients. Any key here, or a `tls://` URL, turns TLS on.
         */
        tls: z
          .strictObject({
            caFile: z.string().min(1).optional(),
            certFile: z.string().min(1).optional(),
            keyFile: z.string().min(1).optional(),
          })
          .optional(),
        /** How long the server waits for an ack before it redelivers. */
        ackWait: duration.default(30_000),
        /** Messages the consumer may hold unacknowledged at once. */
        maxAckPending: z.number().int().positive().default(20_000),
        /**
         * Nothing received for this long while the consumer holds messages for tributary counts as
         * stuck: /readyz says why and the consumer is repositioned.
         */
        stallTimeout: duration.refine((ms) => ms >= 1_000, "must be at least 1s").default(15_000),
        /**
         * Limits of the stream when tributary creates it (`run`, `publish`): messages older than
         * `maxAge` or beyond `maxBytes` are discarded by NATS, oldest first. The stream is a buffer
         * in front of bronze: `maxAge` is how long tributary may be down without losing messages.
         * A stream that already exists keeps its own limits. 0 means no limit.
         */
        maxAge: duration.default(7 * 86_400_000),
        maxBytes: z.number().int().nonnegative().default(10 * 1024 ** 3),
      })
      .prefault({})
      .superRefine((n, ctx) => {
        // A connection authenticates one way; a second one set too is a mistake, not a fallback.
        const ways = (["user", "token", "nkeySeedFile", "credsFile"] as const).filter((k) => n[k] !== undefined);
        if (ways.length > 1) {
          ctx.addIssue({ code: "custom", path: [ways[1]!], message: `cannot be combined with nats.${ways[0]}: set one of nats.user/nats.pass, nats.token, nats.nkeySeedFile or nats.credsFile` });
        }
        if (n.tls && (n.tls.certFile === undefined) !== (n.tls.keyFile === undefined)) {
          const [missing, given] = n.tls.certFile === undefined ? ["certFile", "keyFile"] : ["keyFile", "certFile"];
          ctx.addIssue({ code: "custom", path: ["tls", missing!], message: `required with nats.tls.${given}` });
        }
      }),
    dataDir: z.string().min(1).default("./data"),
    dedupe: z
      .strictObject({
        /** Event-time span the in-memory dedupe window covers; the silver key covers the rest. */
        window: duration.default(7 * 86_400_000),
        maxEntries: z.number().int().positive().default(200_000),
      })
      .prefault({}),
    currency: z
      .strictObject({
        base: currencyCode.default("USD"),
        rates: z
          .record(currencyCode, z.number().positive().finite())
          .default(DEFAULT_RATES),
      })
      .prefault({})
      .superRefine((c, ctx) => {
        if (!(c.base in c.rates)) {
          ctx.addIssue({ code: "custom", path: ["base"], message: `base currency ${c.base} is not in currency.rates` });
        } else if (c.rates[c.base] !== 1) {
          ctx.addIssue({ code: "custom", path: ["rates", c.base], message: `the base currency's rate must be 1` });
        }
      }),
    batch: z
      .strictObject({
        /** Records per commit, at most. */
        maxRecords: z.number().int().positive().default(2_000),
        /** How long a partly filled batch may wait before it is committed. */
        maxWait: duration.default(20),
      })
      .prefault({}),
    limits: z
      .strictObject({
        /** Payloads larger than this are quarantined as `oversize` (they are still kept in bronze). */
        maxPayloadBytes: z.number().int().positive().default(DECODE_DEFAULTS.maxPayloadBytes),
        /** Deepest nesting of maps and arrays in a payload (the record is depth 1); deeper is `oversize`. */
        maxDepth: z.number().int().positive().default(DECODE_DEFAULTS.maxDepth),
        /** Map entries plus array elements in one payload, all depths together; more is `oversize`. */
        maxFields: z.number().int().positive().default(DECODE_DEFAULTS.maxFields),
        /** Longest id in characters; longer (or one with a control character) is `invalid_type`. */
        maxIdLength: z.number().int().positive().default(VALIDATE_DEFAULTS.maxIdLength),
        /** Longest text field (name, email, segment, types) in characters; longer is `invalid_type`. */
        maxTextLength: z.number().int().positive().default(VALIDATE_DEFAULTS.maxTextLength),
        /**
         * Earliest accepted timestamp, as ISO-8601 or epoch milliseconds (held as epoch ms); an
         * earlier one is `invalid_range`.
         */
        minEventTime: z
          .union([z.number().int(), z.string()])
          .transform((v, ctx) => {
            const ms = parseTimestamp(v);
            if (ms === null) {
              ctx.addIssue({ code: "custom", message: `expected an ISO-8601 timestamp or epoch milliseconds, got ${JSON.stringify(v)}` });
              return z.NEVER;
            }
            return ms;
          })
          .default(VALIDATE_DEFAULTS.minEventTime),
      })
      .prefault({}),
    features: z
      .strictObject({
        /**
         * Features of your own, computed like the built-in ones: exact at any instant whatever the
         * arrival order, because each aggregation merges in any order. Output after the built-ins,
         * in this order. Adding one to a data dir backfills it from silver at the next start.
         */
        custom: z
          .array(
            z.strictObject({
              name: z.string().regex(/^[a-z][a-z0-9_]{0,62}$/, "a feature name is lower-case letters, digits and _, starting with a letter"),
              /** The entity: transactions, sessions, interactions or events. */
              from: z.string(),
              aggregate: z.enum(AGGREGATES),
              /** The field to aggregate (not for count). */
              field: z.string().optional(),
              /** Equality filters on categorical fields. */
              where: z.record(z.string(), z.string()).optional(),
              /** A trailing window of whole days (`7d`); absent for the lifetime. */
              window: duration.refine((ms) => ms > 0 && ms % 86_400_000 === 0, "a window is a whole number of days, such as 7d").optional(),
              description: z.string().optional(),
            }),
          )
          .default([]),
      })
      .prefault({})
      .superRefine((f, ctx) => {
        const defs = f.custom.map((c) => ({ ...c, windowDays: c.window === undefined ? undefined : c.window / 86_400_000 }));
        for (const [path, message] of checkCustomFeatures(defs, featureSourcesInScope)) ctx.addIssue({ code: "custom", path: ["custom", ...path], message });
      }),
    http: z
      .strictObject({
        /** `HOST:PORT` for /metrics, /healthz, /readyz and /features, or `off`. Used by `tributary run`. */
        listen: z
          .string()
          .regex(/^(off|.*:\d{1,5})$/, "expected HOST:PORT or off")
          .default("127.0.0.1:9464"),
        /**
         * Bearer token every endpoint but /healthz requires (`Authorization: Bearer <token>`).
         * Unset serves without one. Keep it out of the file with ${VAR}; it is never logged.
         */
        token: z
          .string()
          .regex(/^[A-Za-z0-9._~+/-]+=*$/, "expected a bearer token of letters, digits and -._~+/ (e.g. from `openssl rand -hex 32`)")
          .optional(),
      })
      .prefault({}),
    log: z
      .strictObject({
        level: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
      })
      .prefault({}),
    storage: z
      .strictObject({
        /**
         * Durability of bronze, the commit acks wait for: `full` (fsync per batch) also survives
         * power loss; `normal` survives process crashes, and after a power cut relies on the
         * stream still holding the messages of the rolled-back commits. Silver and gold always
         * run at `normal`: they are rebuilt from bronze.
         */
        synchronous: z.enum(["normal", "full"]).default("full"),
        /** Milliseconds a writer waits for another process's lock before failing. */
        busyTimeout: duration.default(10_000),
        /**
         * Where the SQLite commits run: `worker` (a worker thread, so consuming and the operators
         * never wait for a commit) or `inline` (the calling thread).
         */
        commitThread: z.enum(["worker", "inline"]).default("worker"),
        /**
         * How often the daemon runs the incremental parts of `tributary optimize` by itself
         * (returning freed pages to the file system, `PRAGMA optimize`); 0 never.
         */
        optimizeEvery: duration.default(600_000),
      })
      .prefault({}),
    retention: z
      .strictObject({
        /**
         * Bronze messages that silver and gold have both applied are deleted once they arrived
         * longer ago than this, in small batches on the checkpoint thread. The last message of
         * each origin stays (it anchors the position and the stream check). 0 keeps everything.
         */
        bronze: duration.default(7 * 86_400_000),
        /**
         * Silver event records gold has applied are deleted once their event time is before the
         * start of the UTC day this long ago (the horizon); their ids stay, so a later copy is
         * still a duplicate. Gold keeps every day. 0 (the default) keeps everything; at least
         * 30d, the window of the built-in features, and at least every custom feature's window.
         */
        silver: duration.default(0),
        /** How often the pruning runs. */
        pruneEvery: duration.refine((ms) => ms >= 100, "must be at least 100ms").default(10_000),
      })
      .prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    // Features as of now read silver's records back to the start of their longest window.
    const silver = c.retention.silver;
    if (silver === 0) return;
    const longest = c.features.custom.reduce((w, f, i) => ((f.window ?? 0) > w.ms ? { ms: f.window!, what: `the window of features.custom[${i}] (${f.name})` } : w), {
      ms: 30 * 86_400_000,
      what: "the 30-day window of the built-in features",
    });
    if (silver < longest.ms) {
      ctx.addIssue({
        code: "custom",
        path: ["retention", "silver"],
        message: `must be 0 (keep everything) or at least ${formatDuration(longest.ms)}, ${longest.what}, so features as of now never need deleted records; got ${formatDuration(silver)}`,
      });
    }
  });

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

/**
 * Validates a plain object as configuration, applying defaults. Throws one {@link ConfigError}
 * listing every problem (`problems`, and the message one per line), each naming its key path.
 */
export function parseConfig(input: unknown, options: ParseOptions = {}): Config {
  if (options.entities === undefined || options.entities === BUILTIN_ENTITIES) return parseWithSources(input ?? {}, () => undefined);
  // The schema is static; the entities custom features may read are in scope for this (synchronous) parse only.
  const saved = featureSourcesInScope;
  featureSourcesInScope = featureSources(options.entities);
  try {
    return parseWithSources(input ?? {}, () => undefined);
  } finally {
    featureSourcesInScope = saved;
  }
}

export interface ParseOptions {
  /** The entities `features.custom[].from` may name: the built-in ones and an embedder's (`resolveEntities`). */
  readonly entities?: readonly EntityDefinition[];
}

/** What `features.custom` is checked against during a parse (see {@link parseConfig}). */
let featureSourcesInScope: Readonly<Record<string, SourceEntity>> = FEATURE_SOURCES;

/** The environment variable a key's value came from, if it did. */
type SourceOf = (path: readonly PropertyKey[]) => string | undefined;

/** Parsed config → the input it was parsed from, for {@link configAsWritten}. */
const writtenInput = new WeakMap<object, unknown>();

function parseWithSources(input: unknown, sourceOf: SourceOf): Config {
  const result = configSchema.safeParse(input);
  if (!result.success) {
    const problems = [...new Set(result.error.issues.flatMap((issue) => describeIssue(issue, input, sourceOf)))];
    throw new ConfigError(problems.join("\n"), { problems });
  }
  writtenInput.set(result.data, input);
  return result.data;
}

const dotted = (path: readonly PropertyKey[]) => path.map(String).join(".");

/** One line per problem: `path: what is wrong`, with a "did you mean" for an unknown key. */
function describeIssue(issue: z.core.$ZodIssue, input: unknown, sourceOf: SourceOf): string[] {
  const path = issue.path;
  if (issue.code === "unrecognized_keys") {
    const valid = keysAt(path);
    return issue.keys.map((key) => {
      const hint = closestName(key, valid);
      return `unknown key ${dotted([...path, key])}${hint === undefined ? "" : ` (did you mean ${dotted([...path, hint])}?)`}`;
    });
  }
  const value = valueAt(input, path);
  let message = issue.message.replace(/^Invalid input: /, "");
  if (value === undefined && (issue.code === "invalid_type" || issue.code === "invalid_union")) message = "required";
  else if (issue.code === "invalid_type") message = `expected ${EXPECTED[issue.expected] ?? issue.expected}, got ${describeValue(value, path)}`;
  else if (issue.code === "too_small" || issue.code === "too_big") message = describeBound(issue, value, path);
  else if (issue.code === "invalid_value") message = `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}, got ${describeValue(value, path)}`;
  else if (issue.code === "invalid_union" && isDuration(schemaAt(path))) {
    // A string that is not a duration: its own reason, from the string branch of the union.
    const own = issue.errors.flat().find((e) => e.code === "custom");
    message = own?.message ?? `expected a duration such as ${DURATION_EXAMPLES}, or a number of milliseconds, got ${describeValue(value, path)}`;
  }
  const label = path.length ? dotted(path) : "(root)";
  const variable = sourceOf(path);
  return [`${variable === undefined ? label : `${variable} (${label})`}: ${message}`];
}

/** `expected a number > 0, got 0`, `must not be empty`, `expected at most 5 items, got 7`. */
function describeBound(issue: z.core.$ZodIssueTooSmall | z.core.$ZodIssueTooBig, value: unknown, path: readonly PropertyKey[]): string {
  const small = issue.code === "too_small";
  const bound = Number(small ? (issue as z.core.$ZodIssueTooSmall).minimum : (issue as z.core.$ZodIssueTooBig).maximum);
  if (issue.origin === "number" || issue.origin === "bigint" || issue.origin === "int") {
    const relation = small ? (issue.inclusive ? ">=" : ">") : issue.inclusive ? "<=" : "<";
    return `expected a number ${relation} ${bound}, got ${describeValue(value, path)}`;
  }
  const unit = issue.origin === "string" ? "character" : issue.origin === "array" || issue.origin === "set" ? "item" : undefined;
  if (unit === undefined) return issue.message;
  if (small && bound === 1) return "must not be empty";
  const n = small && !issue.inclusive ? bound + 1 : !small && !issue.inclusive ? bound - 1 : bound;
  const size = typeof value === "string" || Array.isArray(value) ? value.length : undefined;
  return `expected ${small ? "at least" : "at most"} ${n} ${unit}${n === 1 ? "" : "s"}${size === undefined ? "" : `, got ${size}`}`;
}

const EXPECTED: Record<string, string> = { number: "a number", int: "a whole number", string: "a string", boolean: "true or false", object: "a mapping of keys", array: "a list", record: "a mapping of keys" };

function describeValue(v: unknown, path: readonly PropertyKey[]): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  if (typeof v === "string") {
    const key = String(path.at(-1) ?? "");
    if (SECRET_KEY.test(key) && !FILE_KEY.test(key)) return "a string";
    return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}…` : v);
  }
  return String(v);
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let node = input;
  for (const k of path) {
    if (typeof node !== "object" || node === null) return undefined;
    node = (node as Record<PropertyKey, unknown>)[k];
  }
  return node;
}

type AnySchema = z.core.$ZodType;
const WRAPPERS = new Set(["default", "prefault", "optional", "nullable", "readonly", "catch", "nonoptional"]);

/** The schema under its defaults and optionals (a refined schema keeps its own type). */
function unwrap(schema: AnySchema | undefined): AnySchema | undefined {
  let s = schema;
  while (s && WRAPPERS.has(s._zod.def.type)) s = (s._zod.def as unknown as { innerType: AnySchema }).innerType;
  return s;
}

/** The schema of the value at a key path, or undefined where the path leaves the schema. */
function schemaAt(path: readonly PropertyKey[]): AnySchema | undefined {
  let s: AnySchema | undefined = configSchema;
  for (const k of path) {
    s = unwrap(s);
    if (!s) return undefined;
    const def = s._zod.def as unknown as { type: string; shape?: Record<string, AnySchema>; element?: AnySchema; valueType?: AnySchema };
    if (def.type === "object") s = def.shape![String(k)];
    else if (def.type === "array") s = def.element;
    else if (def.type === "record") s = def.valueType;
    else return undefined;
  }
  return unwrap(s);
}

/** The keys valid in the mapping at a key path. */
function keysAt(path: readonly PropertyKey[]): string[] {
  const s = schemaAt(path);
  return s?._zod.def.type === "object" ? Object.keys((s._zod.def as unknown as { shape: Record<string, unknown> }).shape) : [];
}

function isDuration(schema: AnySchema | undefined): boolean {
  const s = unwrap(schema);
  return s?._zod.def.type === "union" && (s._zod.def as unknown as { options: unknown[] }).options.includes(durationText);
}

/**
 * The candidate nearest to a mistyped name, if near enough to be what was meant: compared without
 * case, `_` and `-`, by edit distance with transpositions (so `windw`, `caFlie`, `max_records`).
 */
function closestName(name: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[_-]/g, "");
  const n = norm(name);
  const limit = n.length <= 4 ? 1 : n.length <= 8 ? 2 : 3;
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const c of candidates) {
    const d = editDistance(n, norm(c));
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best;
}

/** Optimal string alignment distance: insertions, deletions, substitutions and adjacent swaps. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The config as a person wrote it, for `config check`: each duration as written (`7d`, `30
 * seconds`), a default one in its largest whole unit; everything else as parsed. The parsed
 * {@link Config} itself keeps milliseconds.
 */
export function configAsWritten(config: Config): Record<string, unknown> {
  const walk = (schema: AnySchema | undefined, parsed: unknown, written: unknown): unknown => {
    const s = unwrap(schema);
    if (!s) return parsed;
    if (isDuration(s) && typeof parsed === "number") {
      if (typeof written === "string") return written.trim();
      return typeof written === "number" ? written : formatDuration(parsed);
    }
    const def = s._zod.def as unknown as { type: string; shape?: Record<string, AnySchema>; element?: AnySchema };
    if (def.type === "object" && isPlainObject(parsed)) {
      return Object.fromEntries(Object.entries(parsed as Record<string, unknown>).map(([k, v]) => [k, walk(def.shape![k], v, valueAt(written, [k]))]));
    }
    if (def.type === "array" && Array.isArray(parsed)) return parsed.map((v, i) => walk(def.element, v, valueAt(written, [i])));
    return parsed;
  };
  return walk(configSchema, config, writtenInput.get(config)) as Record<string, unknown>;
}

/** Reads a YAML or JSON config file (JSON is YAML), interpolating `${VAR}` from the environment. */
export function readConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text) ?? {};
  } catch (err) {
    throw new ConfigError(`${file}: not valid YAML or JSON: ${(err as Error).message.split("\n")[0]}`);
  }
  // Interpolate after parsing, in string values only: comments are left alone, and a secret's
  // characters cannot change the document's structure.
  const missing: string[] = [];
  const interpolate = (v: unknown, path: string): unknown => {
    if (typeof v === "string") {
      return v.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
        const value = env[name];
        if (value === undefined) missing.push(`${file}: ${path}: environment variable ${name} is not set`);
        return value ?? "";
      });
    }
    if (Array.isArray(v)) return v.map((x, i) => interpolate(x, `${path}[${i}]`));
    if (isPlainObject(v)) {
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, interpolate(x, path ? `${path}.${k}` : k)]));
    }
    return v;
  };
  const result = interpolate(parsed, "");
  if (missing.length) throw new ConfigError(missing.join("\n"), { problems: missing });
  return result;
}

/** A deep partial view of the config, as overrides from flags or the environment. */
export type ConfigOverrides = { [k: string]: unknown };

/** Merges `b` into `a` (objects deeply, everything else replaced). */
export function mergeConfig(a: ConfigOverrides, b: ConfigOverrides): ConfigOverrides {
  const out: ConfigOverrides = { ...a };
  for (const [k, v] of Object.entries(b)) {
    if (v === undefined) continue;
    const prev = out[k];
    out[k] =
      isPlainObject(prev) && isPlainObject(v) ? mergeConfig(prev as ConfigOverrides, v as ConfigOverrides) : v;
  }
  return out;
}

function isPlainObject(v: unknown): boolean {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Loads configuration: defaults, then the file, then `TRIBUTARY_*` environment overrides, then
 * explicit overrides (command-line flags).
 */
export function loadConfig(
  options: {
    file?: string;
    overrides?: ConfigOverrides;
    env?: NodeJS.ProcessEnv;
    /** Called once per `TRIBUTARY_*` variable that is neither a config key nor read elsewhere. */
    onWarning?: (message: string) => void;
  } = {},
): Config {
  const env = options.env ?? process.env;
  let raw: ConfigOverrides = options.file ? (readConfigFile(options.file, env) as ConfigOverrides) : {};
  if (!isPlainObject(raw)) throw new ConfigError(`${options.file}: the config must be a mapping of keys`);
  for (const warning of unknownEnvVariables(env)) options.onWarning?.(warning);
  const fromEnv = envEntries(env);
  raw = mergeConfig(raw, envOverrides(env));
  const overrides = options.overrides ?? {};
  raw = mergeConfig(raw, overrides);
  // A bad value names the variable it came from, unless a flag replaced it.
  const sourceOf: SourceOf = (path) =>
    fromEnv.find((e) => e.path.every((k, i) => String(path[i]) === k) && valueAt(overrides, e.path) === undefined)?.name;
  return parseWithSources(raw, sourceOf);
}

/** `TRIBUTARY_*` variables tributary reads that are not config keys (logging, debugging, the crash tests). */
const OTHER_VARIABLES = ["TRIBUTARY_LOG_FORMAT", "TRIBUTARY_DEBUG", ...FAULT_ENV_VARS, "TRIBUTARY_TEST_LOG_LEVEL"];

/**
 * One warning per `TRIBUTARY_*` variable that tributary does not read, with the nearest one it
 * does: a misspelt override would otherwise be ignored without a word.
 */
export function unknownEnvVariables(env: NodeJS.ProcessEnv): string[] {
  const known = new Set([...configKeyPaths().map(envName), ...OTHER_VARIABLES]);
  const names = [...known].map((n) => n.slice("TRIBUTARY_".length));
  return Object.keys(env)
    .filter((n) => n.startsWith("TRIBUTARY_") && !known.has(n))
    .sort()
    .map((n) => {
      const hint = closestName(n.slice("TRIBUTARY_".length), names);
      return `unknown environment variable ${n}, ignored${hint === undefined ? "" : ` (did you mean TRIBUTARY_${hint}?)`}`;
    });
}

/** `nats.ackWait` → `TRIBUTARY_NATS_ACK_WAIT`. */
export function envName(path: readonly string[]): string {
  return "TRIBUTARY_" + path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase()).join("_");
}

/** Every config key path, from the schema's defaults (records such as `currency.rates` are one key). */
export function configKeyPaths(): string[][] {
  const paths: string[][] = [];
  const walk = (node: Record<string, unknown>, path: string[]) => {
    for (const [k, v] of Object.entries(node)) {
      const p = [...path, k];
      if (isPlainObject(v) && !(path.length === 1 && path[0] === "currency" && k === "rates")) walk(v as Record<string, unknown>, p);
      else paths.push(p);
    }
  };
  walk(parseConfig({}) as unknown as Record<string, unknown>, []);
  // Optional keys have no default to find them by.
  paths.push(["nats", "user"], ["nats", "pass"], ["nats", "token"], ["nats", "nkeySeedFile"], ["nats", "credsFile"], ["nats", "tls", "caFile"], ["nats", "tls", "certFile"], ["nats", "tls", "keyFile"]);
  paths.push(["http", "token"]);
  return paths;
}

/**
 * Environment overrides, one variable per key: `TRIBUTARY_NATS_URL`, `TRIBUTARY_DATA_DIR`,
 * `TRIBUTARY_DEDUPE_MAX_ENTRIES`, … Digits become numbers where the key is numeric (durations in
 * milliseconds); lists and maps are JSON (`TRIBUTARY_CURRENCY_RATES='{"USD":1,"EUR":1.1}'`).
 */
export function envOverrides(env: NodeJS.ProcessEnv): ConfigOverrides {
  let out: ConfigOverrides = {};
  for (const { path, value } of envEntries(env)) {
    let node: ConfigOverrides = { [path.at(-1)!]: value };
    for (let i = path.length - 2; i >= 0; i--) node = { [path[i]!]: node };
    out = mergeConfig(out, node);
  }
  return out;
}

/** Each `TRIBUTARY_*` variable set for a config key: its name, key path and value. */
function envEntries(env: NodeJS.ProcessEnv): { name: string; path: string[]; value: unknown }[] {
  const defaults = parseConfig({}) as unknown as Record<string, unknown>;
  const entries: { name: string; path: string[]; value: unknown }[] = [];
  for (const path of configKeyPaths()) {
    const name = envName(path);
    const raw = env[name];
    if (raw === undefined || raw === "") continue;
    const fallback = path.reduce<unknown>((node, k) => (node as Record<string, unknown> | undefined)?.[k], defaults);
    let value: unknown = raw;
    if (typeof fallback === "number" && /^-?\d+(\.\d+)?$/.test(raw)) value = Number(raw);
    else if (typeof fallback === "object" && fallback !== null) {
      try {
        value = JSON.parse(raw);
      } catch {
        throw new ConfigError(`${name} (${path.join(".")}): expected JSON, such as ${Array.isArray(fallback) ? `["a","b"]` : `{"USD":1,"EUR":1.1}`}`);
      }
    }
    entries.push({ name, path, value });
  }
  return entries;
}

const SECRET_KEY = /pass|token|secret|key|creds/i;
/** `nats.credsFile`, `nats.tls.keyFile`: paths to secrets, which may show; the contents never do. */
const FILE_KEY = /File$/;

/** The config with secrets masked: credential keys, and `user:pass@` in URLs. */
export function maskSecrets<T extends object = Config>(config: T): T {
  const mask = (v: unknown, key: string): unknown => {
    if (typeof v === "string") {
      if (SECRET_KEY.test(key) && !FILE_KEY.test(key) && v !== "") return "***";
      return v.replace(/\/\/([^@/\s]+)@/g, "//***@");
    }
    if (isPlainObject(v)) return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, mask(x, k)]));
    if (Array.isArray(v)) return v.map((x) => mask(x, key));
    return v;
  };
  return mask(config, "") as T;
}

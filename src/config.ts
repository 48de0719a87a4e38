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
import { AGGREGATES, checkCustomFeatures } from "./model/features.js";

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration: a number of milliseconds, or a string such as `500ms`, `30s`, `15m`, `24h`, `7d`. */
const duration = z.union([
  z.number().int().nonnegative(),
  z.string().transform((s, ctx) => {
    const m = DURATION.exec(s.trim());
    if (!m) {
      ctx.addIssue({ code: "custom", message: `expected a duration such as "7d", "24h" or "500ms", got "${s}"` });
      return z.NEVER;
    }
    return Math.round(Number(m[1]) * UNIT_MS[m[2]!]!);
  }),
]);

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
        for (const [path, message] of checkCustomFeatures(defs)) ctx.addIssue({ code: "custom", path: ["custom", ...path], message });
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
      })
      .prefault({}),
  })
  .strict();

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

/** Validates a plain object as configuration, applying defaults. Throws {@link ConfigError}. */
export function parseConfig(input: unknown): Config {
  const result = configSchema.safeParse(input ?? {});
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const path = issue.path.length ? issue.path.join(".") : "(root)";
    let message = issue.message;
    if (issue.code === "unrecognized_keys") {
      const keys = issue.keys.map((k) => (issue.path.length ? `${path}.${k}` : k));
      throw new ConfigError(`unknown key ${keys.join(", ")}`);
    }
    message = message.replace(/^Invalid input: /, "");
    throw new ConfigError(`${path}: ${message}`);
  }
  return result.data;
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
  const interpolate = (v: unknown, path: string): unknown => {
    if (typeof v === "string") {
      return v.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
        const value = env[name];
        if (value === undefined) throw new ConfigError(`${file}: ${path}: environment variable ${name} is not set`);
        return value;
      });
    }
    if (Array.isArray(v)) return v.map((x, i) => interpolate(x, `${path}[${i}]`));
    if (isPlainObject(v)) {
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, interpolate(x, path ? `${path}.${k}` : k)]));
    }
    return v;
  };
  return interpolate(parsed, "");
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
  options: { file?: string; overrides?: ConfigOverrides; env?: NodeJS.ProcessEnv } = {},
): Config {
  const env = options.env ?? process.env;
  let raw: ConfigOverrides = options.file ? (readConfigFile(options.file, env) as ConfigOverrides) : {};
  if (!isPlainObject(raw)) throw new ConfigError(`${options.file}: the config must be a mapping of keys`);
  raw = mergeConfig(raw, envOverrides(env));
  raw = mergeConfig(raw, options.overrides ?? {});
  return parseConfig(raw);
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
  const defaults = parseConfig({}) as unknown as Record<string, unknown>;
  let out: ConfigOverrides = {};
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
        throw new ConfigError(`${name}: expected JSON for ${path.join(".")}`);
      }
    }
    let node: ConfigOverrides = { [path.at(-1)!]: value };
    for (let i = path.length - 2; i >= 0; i--) node = { [path[i]!]: node };
    out = mergeConfig(out, node);
  }
  return out;
}

const SECRET_KEY = /pass|token|secret|key|creds/i;
/** `nats.credsFile`, `nats.tls.keyFile`: paths to secrets, which may show; the contents never do. */
const FILE_KEY = /File$/;

/** The config with secrets masked: credential keys, and `user:pass@` in URLs. */
export function maskSecrets(config: Config): Config {
  const mask = (v: unknown, key: string): unknown => {
    if (typeof v === "string") {
      if (SECRET_KEY.test(key) && !FILE_KEY.test(key) && v !== "") return "***";
      return v.replace(/\/\/([^@/\s]+)@/g, "//***@");
    }
    if (isPlainObject(v)) return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, mask(x, k)]));
    if (Array.isArray(v)) return v.map((x) => mask(x, key));
    return v;
  };
  return mask(config, "") as Config;
}

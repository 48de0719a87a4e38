import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { configAsWritten, DEFAULT_RATES, envOverrides, formatDuration, loadConfig, maskSecrets, mergeConfig, parseConfig, parseDuration, readConfigFile, unknownEnvVariables } from "../src/config.js";
import { ConfigError } from "../src/errors.js";

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).name).toBe("ConfigError");
    return err as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("parseConfig: defaults", () => {
  it("fills every section from an empty object", () => {
    const c = parseConfig({});
    expect(c.nats).toEqual({
      url: "nats://127.0.0.1:4222",
      stream: "TRIBUTARY",
      subjects: ["tributary.>"],
      consumer: "tributary",
      ackWait: 30_000,
      maxAckPending: 20_000,
      stallTimeout: 15_000,
      maxAge: 7 * 86_400_000,
      maxBytes: 10 * 1024 ** 3,
    });
    expect(c.dataDir).toBe("./data");
    expect(c.dedupe).toEqual({ window: 7 * 86_400_000, maxEntries: 200_000 });
    expect(c.batch).toEqual({ maxRecords: 2_000, maxWait: 20 });
    expect(c.limits).toEqual({
      maxPayloadBytes: 1_048_576,
      maxDepth: 32,
      maxFields: 1_000,
      maxIdLength: 256,
      maxTextLength: 1_024,
      minEventTime: 0,
    });
    expect(c.storage).toEqual({ synchronous: "full", busyTimeout: 10_000, commitThread: "worker", optimizeEvery: 600_000 });
    expect(c.retention).toEqual({ bronze: 7 * 86_400_000, silver: 0, pruneEvery: 10_000 });
  });

  it("defaults the currency to USD with USD, EUR and GBP among the rates", () => {
    const c = parseConfig({});
    expect(c.currency.base).toBe("USD");
    expect(c.currency.rates.USD).toBe(1);
    expect(c.currency.rates.EUR).toBeGreaterThan(0);
    expect(c.currency.rates.GBP).toBeGreaterThan(0);
    expect(c.currency.rates).toEqual(DEFAULT_RATES);
  });

  it("treats undefined and null as an empty config", () => {
    expect(parseConfig(undefined)).toEqual(parseConfig({}));
    expect(parseConfig(null)).toEqual(parseConfig({}));
  });

  it("fills the rest of a section that is given in part", () => {
    const c = parseConfig({ nats: { url: "nats://broker:4222" } });
    expect(c.nats.url).toBe("nats://broker:4222");
    expect(c.nats.stream).toBe("TRIBUTARY");
    expect(c.nats.consumer).toBe("tributary");
  });
});

describe("parseConfig: durations", () => {
  it.each([
    ["7d", 604_800_000],
    ["24h", 86_400_000],
    ["15m", 900_000],
    ["30s", 30_000],
    ["500ms", 500],
    ["1.5s", 1_500],
    [" 2 h ", 7_200_000],
    ["7 days", 604_800_000],
    ["1 day", 86_400_000],
    ["1w", 604_800_000],
    ["2 weeks", 1_209_600_000],
    ["30 seconds", 30_000],
    ["30sec", 30_000],
    ["1.5h", 5_400_000],
    ["90 min", 5_400_000],
    ["1 hour", 3_600_000],
    ["10 Minutes", 600_000],
    [250, 250],
    [0, 0],
  ])("reads %j as %d ms", (value, ms) => {
    expect(parseConfig({ dedupe: { window: value } }).dedupe.window).toBe(ms);
    expect(parseConfig({ batch: { maxWait: value } }).batch.maxWait).toBe(ms);
  });

  it.each([["7 fortnights"], ["7"], ["-5s"], ["ms"], ["soon"], [-1], [1.5], [true]])("rejects %j naming the key path", (value) => {
    expect(configError(() => parseConfig({ dedupe: { window: value } })).message).toMatch(/^dedupe\.window: /);
  });

  it("reads durations for nats.ackWait and storage.busyTimeout", () => {
    const c = parseConfig({ nats: { ackWait: "1m" }, storage: { busyTimeout: "2s" } });
    expect(c.nats.ackWait).toBe(60_000);
    expect(c.storage.busyTimeout).toBe(2_000);
  });
});

describe("parseConfig: errors name their key path", () => {
  it("rejects an unknown nested key with its full path", () => {
    const err = configError(() => parseConfig({ dedupe: { windw: "7d" } }));
    expect(err.message).toContain("dedupe.windw");
    expect(err.message).toMatch(/unknown key/);
  });

  it("rejects an unknown top-level key", () => {
    expect(configError(() => parseConfig({ dataDirectory: "/tmp" })).message).toBe("unknown key dataDirectory");
  });

  it.each([["nats", { nats: { urll: "x" } }, "nats.urll"], ["storage", { storage: { sync: "full" } }, "storage.sync"], ["limits", { limits: { maxPayload: 1 } }, "limits.maxPayload"], ["batch", { batch: { size: 1 } }, "batch.size"], ["currency", { currency: { bse: "USD" } }, "currency.bse"]])(
    "rejects an unknown key in %s",
    (_section, input, path) => {
      expect(configError(() => parseConfig(input)).message).toContain(path);
    },
  );

  it.each([
    [{ nats: { maxAckPending: -1 } }, "nats.maxAckPending"],
    [{ nats: { maxAckPending: 1.5 } }, "nats.maxAckPending"],
    [{ nats: { stream: "has spaces" } }, "nats.stream"],
    [{ nats: { consumer: "a.b" } }, "nats.consumer"],
    [{ nats: { subjects: [] } }, "nats.subjects"],
    [{ nats: { url: "" } }, "nats.url"],
    [{ dataDir: 7 }, "dataDir"],
    [{ dedupe: { maxEntries: 0 } }, "dedupe.maxEntries"],
    [{ batch: { maxRecords: "many" } }, "batch.maxRecords"],
    [{ limits: { maxPayloadBytes: -10 } }, "limits.maxPayloadBytes"],
    [{ storage: { synchronous: "off" } }, "storage.synchronous"],
    [{ currency: { base: "DOLLAR" } }, "currency.base"],
    [{ currency: { rates: { USD: 1, EUR: -2 } } }, "currency.rates.EUR"],
    [{ nats: "nats://x" }, "nats"],
  ])("rejects a bad value in %j naming %s", (input, path) => {
    const message = configError(() => parseConfig(input)).message;
    expect(message.startsWith(`${path}: `), message).toBe(true);
  });
});

describe("parseConfig: limits", () => {
  it("takes limits.minEventTime as ISO-8601 or epoch milliseconds, held as epoch ms", () => {
    expect(parseConfig({ limits: { minEventTime: "2000-01-01T00:00:00Z" } }).limits.minEventTime).toBe(Date.UTC(2000, 0, 1));
    expect(parseConfig({ limits: { minEventTime: "2000-01-01" } }).limits.minEventTime).toBe(Date.UTC(2000, 0, 1));
    expect(parseConfig({ limits: { minEventTime: -86_400_000 } }).limits.minEventTime).toBe(-86_400_000);
  });

  it.each([["not a time"], ["2000-02-30"], [1.5], [true]])("rejects limits.minEventTime %j naming the key", (value) => {
    const message = configError(() => parseConfig({ limits: { minEventTime: value } })).message;
    expect(message.startsWith("limits.minEventTime: "), message).toBe(true);
  });

  it.each(["maxDepth", "maxFields", "maxIdLength", "maxTextLength"])("rejects a limits.%s that is not a positive integer", (key) => {
    for (const value of [0, -1, 2.5, "many"]) {
      const message = configError(() => parseConfig({ limits: { [key]: value } })).message;
      expect(message.startsWith(`limits.${key}: `), message).toBe(true);
    }
  });

  it("reads the new limits from the environment", () => {
    const c = loadConfig({
      env: { TRIBUTARY_LIMITS_MIN_EVENT_TIME: "2001-01-01T00:00:00Z", TRIBUTARY_LIMITS_MAX_ID_LENGTH: "64", TRIBUTARY_LIMITS_MAX_DEPTH: "8" },
    });
    expect(c.limits).toMatchObject({ minEventTime: Date.UTC(2001, 0, 1), maxIdLength: 64, maxDepth: 8 });
  });
});

describe("parseConfig: currency", () => {
  it("requires the base currency to be in the rates", () => {
    const message = configError(() => parseConfig({ currency: { base: "JPY", rates: { USD: 1, EUR: 1.08 } } })).message;
    expect(message).toMatch(/^currency\.base: /);
    expect(message).toContain("JPY");
  });

  it("requires the base currency's rate to be 1", () => {
    expect(configError(() => parseConfig({ currency: { base: "USD", rates: { USD: 2 } } })).message).toMatch(/^currency\.rates\.USD: /);
  });

  it("rejects a base currency missing from the default rates", () => {
    expect(configError(() => parseConfig({ currency: { base: "SEK" } })).message).toMatch(/^currency\.base: /);
  });

  it("accepts another base with its own table, replacing the defaults", () => {
    const c = parseConfig({ currency: { base: "EUR", rates: { EUR: 1, USD: 0.92 } } });
    expect(c.currency).toEqual({ base: "EUR", rates: { EUR: 1, USD: 0.92 } });
  });

  it("upper-cases currency codes", () => {
    expect(parseConfig({ currency: { base: "usd", rates: { usd: 1, eur: 1.1 } } }).currency).toEqual({ base: "USD", rates: { USD: 1, EUR: 1.1 } });
  });
});

describe("envOverrides", () => {
  it("maps TRIBUTARY_* variables to key paths", () => {
    expect(
      envOverrides({
        TRIBUTARY_NATS_URL: "nats://env:4222",
        TRIBUTARY_NATS_STREAM: "S1",
        TRIBUTARY_NATS_CONSUMER: "c1",
        TRIBUTARY_DATA_DIR: "/var/lib/tributary",
        TRIBUTARY_DEDUPE_WINDOW: "3d",
        TRIBUTARY_DEDUPE_MAX_ENTRIES: "5000",
        TRIBUTARY_CURRENCY_BASE: "EUR",
        TRIBUTARY_STORAGE_SYNCHRONOUS: "full",
      }),
    ).toEqual({
      nats: { url: "nats://env:4222", stream: "S1", consumer: "c1" },
      dataDir: "/var/lib/tributary",
      dedupe: { window: "3d", maxEntries: 5000 },
      currency: { base: "EUR" },
      storage: { synchronous: "full" },
    });
  });

  it("ignores empty and unrelated variables", () => {
    expect(envOverrides({ TRIBUTARY_NATS_URL: "", HOME: "/root", TRIBUTARY_UNKNOWN: "x", NATS_URL: "nats://x" })).toEqual({});
  });

  it("produces overrides that parseConfig accepts", () => {
    const c = parseConfig(envOverrides({ TRIBUTARY_NATS_URL: "nats://env:4222", TRIBUTARY_DEDUPE_WINDOW: "3d", TRIBUTARY_DEDUPE_MAX_ENTRIES: "5000" }));
    expect(c.nats.url).toBe("nats://env:4222");
    expect(c.dedupe).toEqual({ window: 3 * 86_400_000, maxEntries: 5000 });
  });

  it("parses a bare number of milliseconds for a duration variable, as it does for maxEntries", () => {
    // Regression: bare digits used to stay a string here, which the duration schema rejected.
    expect(parseConfig(envOverrides({ TRIBUTARY_DEDUPE_WINDOW: "86400000" })).dedupe.window).toBe(86_400_000);
  });

  it("leaves a non-numeric max entries as a string, which parseConfig rejects by path", () => {
    expect(configError(() => parseConfig(envOverrides({ TRIBUTARY_DEDUPE_MAX_ENTRIES: "lots" }))).message).toMatch(/^dedupe\.maxEntries: /);
  });
});

describe("mergeConfig", () => {
  it("merges objects deeply and replaces everything else", () => {
    expect(mergeConfig({ nats: { url: "a", stream: "S" }, list: [1, 2] }, { nats: { url: "b" }, list: [3], dataDir: undefined })).toEqual({
      nats: { url: "b", stream: "S" },
      list: [3],
    });
  });
});

describe("readConfigFile and loadConfig", () => {
  let dir: string;
  const write = (name: string, text: string) => {
    const file = join(dir, name);
    writeFileSync(file, text);
    return file;
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "tributary-config-"));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("reads YAML and interpolates ${VAR} from the given environment", () => {
    const file = write("a.yaml", "nats:\n  url: nats://${NATS_HOST}:${NATS_PORT}\ndataDir: ${DATA}/tributary\n");
    expect(readConfigFile(file, { NATS_HOST: "broker", NATS_PORT: "4333", DATA: "/srv" })).toEqual({
      nats: { url: "nats://broker:4333" },
      dataDir: "/srv/tributary",
    });
  });

  it("reads JSON as YAML", () => {
    const file = write("b.json", '{"dedupe": {"window": "${WINDOW}", "maxEntries": 10}}');
    expect(readConfigFile(file, { WINDOW: "2h" })).toEqual({ dedupe: { window: "2h", maxEntries: 10 } });
  });

  it("leaves text that is not ${NAME} alone", () => {
    const file = write("c.yaml", 'dataDir: "$HOME/${}/$x"\n');
    expect(readConfigFile(file, {})).toEqual({ dataDir: "$HOME/${}/$x" });
  });

  it("names a missing environment variable", () => {
    const file = write("d.yaml", "dataDir: ${NOT_SET_ANYWHERE}\n");
    const message = configError(() => readConfigFile(file, {})).message;
    expect(message).toContain("NOT_SET_ANYWHERE");
    expect(message).toContain(file);
  });

  it("reads an empty file as an empty config", () => {
    expect(readConfigFile(write("e.yaml", ""), {})).toEqual({});
  });

  it("reports a missing file as a ConfigError", () => {
    const message = configError(() => readConfigFile(join(dir, "nope.yaml"), {})).message;
    expect(message).toContain("cannot read config file");
    expect(message).toContain("ENOENT");
  });

  it("reports invalid YAML as a ConfigError naming the file", () => {
    const file = write("f.yaml", "nats: [unclosed\n");
    const message = configError(() => readConfigFile(file, {})).message;
    expect(message).toContain(file);
    expect(message).toContain("not valid YAML or JSON");
  });

  it("loadConfig layers defaults < file < environment < explicit overrides", () => {
    const file = write("g.yaml", "nats:\n  url: nats://file:4222\n  stream: FILESTREAM\ndedupe:\n  window: 2d\ndataDir: ${DIR}\n");
    const env = { DIR: "/from/file", TRIBUTARY_NATS_URL: "nats://env:4222", TRIBUTARY_DEDUPE_MAX_ENTRIES: "99" };
    const fromEnv = loadConfig({ file, env });
    expect(fromEnv.nats.url).toBe("nats://env:4222");
    expect(fromEnv.nats.stream).toBe("FILESTREAM");
    expect(fromEnv.nats.consumer).toBe("tributary");
    expect(fromEnv.dedupe).toEqual({ window: 2 * 86_400_000, maxEntries: 99 });
    expect(fromEnv.dataDir).toBe("/from/file");

    const withFlags = loadConfig({ file, env, overrides: { nats: { url: "nats://flag:4222" }, dataDir: undefined } });
    expect(withFlags.nats.url).toBe("nats://flag:4222");
    expect(withFlags.dataDir).toBe("/from/file");
  });

  it("loadConfig rejects a file that is not a mapping", () => {
    expect(configError(() => loadConfig({ file: write("h.yaml", "- a\n- b\n"), env: {} })).message).toContain("mapping");
  });

  it("loadConfig reports unknown keys from the file by path", () => {
    expect(configError(() => loadConfig({ file: write("i.yaml", "dedupe:\n  windw: 7d\n"), env: {} })).message).toContain("dedupe.windw");
  });
});

describe("nats auth keys", () => {
  it("reads the seed, creds and TLS files as paths, with no TLS unless asked", () => {
    expect(parseConfig({}).nats.tls).toBeUndefined();
    const c = parseConfig({ nats: { credsFile: "app.creds", tls: { caFile: "ca.pem", certFile: "client.pem", keyFile: "client.key" } } });
    expect(c.nats.credsFile).toBe("app.creds");
    expect(c.nats.tls).toEqual({ caFile: "ca.pem", certFile: "client.pem", keyFile: "client.key" });
    expect(parseConfig({ nats: { nkeySeedFile: "user.nk", tls: {} } }).nats).toMatchObject({ nkeySeedFile: "user.nk", tls: {} });
  });

  it.each([
    [{ nats: { tls: { caFlie: "ca.pem" } } }, /^unknown key nats\.tls\.caFlie \(did you mean nats\.tls\.caFile\?\)$/],
    [{ nats: { tls: { caFile: "" } } }, /^nats\.tls\.caFile: /],
    [{ nats: { nkeySeedFile: 7 } }, /^nats\.nkeySeedFile: /],
    [{ nats: { token: "t", credsFile: "a.creds" } }, /^nats\.credsFile: cannot be combined with nats\.token/],
    [{ nats: { user: "u", pass: "p", nkeySeedFile: "u.nk" } }, /^nats\.nkeySeedFile: cannot be combined with nats\.user/],
    [{ nats: { nkeySeedFile: "u.nk", credsFile: "a.creds" } }, /^nats\.credsFile: cannot be combined with nats\.nkeySeedFile/],
    [{ nats: { tls: { certFile: "c.pem" } } }, /^nats\.tls\.keyFile: required with nats\.tls\.certFile$/],
    [{ nats: { tls: { keyFile: "c.key" } } }, /^nats\.tls\.certFile: required with nats\.tls\.keyFile$/],
  ])("rejects %j naming the key", (input, message) => {
    expect(configError(() => parseConfig(input)).message).toMatch(message);
  });

  it("takes each from a TRIBUTARY_NATS_* variable, nats.tls.* included", () => {
    const env = {
      TRIBUTARY_NATS_NKEY_SEED_FILE: "/run/secrets/user.nk",
      TRIBUTARY_NATS_TLS_CA_FILE: "/etc/nats/ca.pem",
      TRIBUTARY_NATS_TLS_CERT_FILE: "/etc/nats/client.pem",
      TRIBUTARY_NATS_TLS_KEY_FILE: "/etc/nats/client.key",
    };
    expect(envOverrides(env)).toEqual({ nats: { nkeySeedFile: "/run/secrets/user.nk", tls: { caFile: "/etc/nats/ca.pem", certFile: "/etc/nats/client.pem", keyFile: "/etc/nats/client.key" } } });
    expect(loadConfig({ env: { TRIBUTARY_NATS_CREDS_FILE: "/run/secrets/app.creds" } }).nats.credsFile).toBe("/run/secrets/app.creds");
  });

  it("config check masks the password and token and shows the file paths", () => {
    const masked = maskSecrets(parseConfig({ nats: { user: "u", pass: "secret-pass", tls: { caFile: "ca.pem", certFile: "c.pem", keyFile: "c.key" } } })).nats;
    expect(masked).toMatchObject({ user: "u", pass: "***", tls: { caFile: "ca.pem", certFile: "c.pem", keyFile: "c.key" } });
    expect(maskSecrets(parseConfig({ nats: { token: "secret-token" } })).nats.token).toBe("***");
    expect(maskSecrets(parseConfig({ nats: { credsFile: "app.creds" } })).nats.credsFile).toBe("app.creds");
  });
});

describe("config errors: every problem at once", () => {
  it("lists each problem on its own line, each naming its key path", () => {
    const err = configError(() => parseConfig({ dedupe: { windw: "7d" }, batch: { maxRecords: "many" }, nats: { stream: "has spaces" } }));
    expect(err.problems).toHaveLength(3);
    expect(err.message.split("\n")).toEqual(err.problems);
    expect(err.problems).toContain('batch.maxRecords: expected a number, got "many"');
    expect(err.problems).toContain("unknown key dedupe.windw (did you mean dedupe.window?)");
    expect(err.problems.some((p) => p.startsWith("nats.stream: "))).toBe(true);
  });

  it.each([
    [{ dedupe: { maxEntries: 0 } }, "dedupe.maxEntries: expected a number > 0, got 0"],
    [{ nats: { ackWait: -1 } }, "nats.ackWait: expected a number >= 0, got -1"],
    [{ nats: { url: "" } }, "nats.url: must not be empty"],
    [{ nats: { subjects: [] } }, "nats.subjects: must not be empty"],
    [{ nats: { stallTimeout: "500ms" } }, "nats.stallTimeout: must be at least 1s"],
  ])("says what a bound wants and what it got: %j", (input, message) => {
    expect(configError(() => parseConfig(input)).message).toBe(message);
  });

  it("lists the allowed values of a choice", () => {
    expect(configError(() => parseConfig({ storage: { synchronous: "off" } })).message).toBe('storage.synchronous: expected one of "normal", "full", got "off"');
  });

  it("keeps a single problem a single line", () => {
    const err = configError(() => parseConfig({ batch: { maxWait: "soon" } }));
    expect(err.problems).toEqual([err.message]);
    expect(err.message).toBe('batch.maxWait: expected a duration such as "7d", "24h", "30 seconds" or "500ms", got "soon"');
  });

  it("lists every missing ${VAR} of a file at once", () => {
    const dir = mkdtempSync(join(tmpdir(), "tributary-config-vars-"));
    try {
      const file = join(dir, "vars.yaml");
      writeFileSync(file, "dataDir: ${NOT_SET_ONE}\nnats:\n  url: ${NOT_SET_TWO}\n");
      const err = configError(() => readConfigFile(file, {}));
      expect(err.problems).toHaveLength(2);
      expect(err.message).toContain("NOT_SET_ONE");
      expect(err.message).toContain("NOT_SET_TWO");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("config errors: did you mean", () => {
  it.each([
    [{ dedupe: { windw: "7d" } }, "unknown key dedupe.windw (did you mean dedupe.window?)"],
    [{ datadir: "/tmp" }, "unknown key datadir (did you mean dataDir?)"],
    [{ batch: { max_records: 10 } }, "unknown key batch.max_records (did you mean batch.maxRecords?)"],
    [{ nats: { urll: "nats://x" } }, "unknown key nats.urll (did you mean nats.url?)"],
    [{ currency: { bse: "USD" } }, "unknown key currency.bse (did you mean currency.base?)"],
    [{ storage: { sync: "full" } }, "unknown key storage.sync"],
    [{ dataDirectory: "/tmp" }, "unknown key dataDirectory"],
  ])("%j → %s", (input, message) => {
    expect(configError(() => parseConfig(input)).message).toBe(message);
  });

  it("suggests only keys valid at that path", () => {
    // `url` is a key of nats, not of batch.
    expect(configError(() => parseConfig({ batch: { url: "x" } })).message).toBe("unknown key batch.url");
  });
});

describe("config errors: durations", () => {
  it("names what is wrong with a duration", () => {
    expect(configError(() => parseConfig({ dedupe: { window: "7 fortnights" } })).message).toBe(
      'dedupe.window: unknown unit "fortnights" in "7 fortnights": use ms, s, m, h, d or w (or seconds, minutes, hours, days, weeks)',
    );
    expect(configError(() => parseConfig({ dedupe: { window: "7" } })).message).toMatch(/^dedupe\.window: "7" has no unit/);
    expect(configError(() => parseConfig({ dedupe: { window: "-5s" } })).message).toMatch(/^dedupe\.window: a duration cannot be negative/);
    expect(configError(() => parseConfig({ dedupe: { window: true } })).message).toMatch(/^dedupe\.window: expected a duration such as .*, or a number of milliseconds, got true$/);
  });

  it("parses and formats durations", () => {
    expect(parseDuration("2 weeks")).toBe(14 * 86_400_000);
    expect(parseDuration("3 fortnights")).toHaveProperty("error");
    expect([604_800_000, 86_400_000, 7_200_000, 900_000, 30_000, 1_500, 20, 0].map(formatDuration)).toEqual(["7d", "1d", "2h", "15m", "30s", "1500ms", "20ms", "0ms"]);
  });
});

describe("config errors: environment variables", () => {
  it("names the variable a bad value came from", () => {
    expect(configError(() => loadConfig({ env: { TRIBUTARY_BATCH_MAX_RECORDS: "abc" } })).message).toBe(
      'TRIBUTARY_BATCH_MAX_RECORDS (batch.maxRecords): expected a number, got "abc"',
    );
    expect(configError(() => loadConfig({ env: { TRIBUTARY_DEDUPE_WINDOW: "7 fortnights" } })).message).toMatch(/^TRIBUTARY_DEDUPE_WINDOW \(dedupe\.window\): unknown unit/);
    expect(configError(() => loadConfig({ env: { TRIBUTARY_CURRENCY_RATES: '{"USD":1,"EUR":-2}' } })).message).toMatch(/^TRIBUTARY_CURRENCY_RATES \(currency\.rates\.EUR\): /);
    expect(configError(() => loadConfig({ env: { TRIBUTARY_CURRENCY_RATES: "EUR=1.1" } })).message).toMatch(/^TRIBUTARY_CURRENCY_RATES \(currency\.rates\): expected JSON/);
  });

  it("does not blame a variable for a value a flag replaced, nor the file's values", () => {
    const dir = mkdtempSync(join(tmpdir(), "tributary-config-env-"));
    try {
      const file = join(dir, "c.yaml");
      writeFileSync(file, "batch:\n  maxWait: soon\n");
      const message = configError(() => loadConfig({ file, env: { TRIBUTARY_DEDUPE_MAX_ENTRIES: "5" } })).message;
      expect(message).toMatch(/^batch\.maxWait: /);
      expect(configError(() => loadConfig({ env: { TRIBUTARY_DATA_DIR: "/x" }, overrides: { dataDir: 7 } })).message).toMatch(/^dataDir: /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("warns once per unknown TRIBUTARY_* variable, with the nearest known one", () => {
    const env = { TRIBUTARY_NATS_URLL: "nats://x", TRIBUTARY_BACH_MAX_RECORDS: "5", TRIBUTARY_WHATEVER: "1", TRIBUTARY_NATS_URL: "nats://y", TRIBUTARY_LOG_FORMAT: "json", HOME: "/root" };
    expect(unknownEnvVariables(env)).toEqual([
      "unknown environment variable TRIBUTARY_BACH_MAX_RECORDS, ignored (did you mean TRIBUTARY_BATCH_MAX_RECORDS?)",
      "unknown environment variable TRIBUTARY_NATS_URLL, ignored (did you mean TRIBUTARY_NATS_URL?)",
      "unknown environment variable TRIBUTARY_WHATEVER, ignored",
    ]);
    const warnings: string[] = [];
    loadConfig({ env, onWarning: (w) => warnings.push(w) });
    expect(warnings).toEqual(unknownEnvVariables(env));
  });

  it("knows every TRIBUTARY_* variable the code, tests, bench, scripts and deploy files read", () => {
    const root = fileURLToPath(new URL("..", import.meta.url));
    const names = new Set<string>();
    for (const top of ["src", "tests", "bench", "scripts", "deploy", "examples"]) {
      for (const f of readdirSync(join(root, top), { recursive: true, encoding: "utf8" })) {
        const path = join(root, top, f);
        if (!statSync(path).isFile() || /results|fixtures/.test(f)) continue;
        for (const m of readFileSync(path, "utf8").matchAll(/\bTRIBUTARY_[A-Z0-9_]*[A-Z0-9]\b/g)) names.add(m[0]);
      }
    }
    // Fixtures of these tests and of tests/cli.test.ts, named to be unknown.
    for (const made of ["TRIBUTARY_UNKNOWN", "TRIBUTARY_NATS_URLL", "TRIBUTARY_BACH_MAX_RECORDS", "TRIBUTARY_WHATEVER", "TRIBUTARY_DEDUP_WINDOW"]) names.delete(made);
    expect(names.size).toBeGreaterThan(10);
    expect(unknownEnvVariables(Object.fromEntries([...names].map((n) => [n, "x"])))).toEqual([]);
  });
});

describe("configAsWritten: durations as written", () => {
  it("keeps each duration as written and shows a default one in its largest unit, while the config holds milliseconds", () => {
    const c = parseConfig({ dedupe: { window: "7d" }, batch: { maxWait: 250 }, nats: { ackWait: " 30 seconds " } });
    expect(c.dedupe.window).toBe(604_800_000);
    expect(c.nats.ackWait).toBe(30_000);
    const shown = configAsWritten(c) as { dedupe: Record<string, unknown>; batch: Record<string, unknown>; nats: Record<string, unknown>; storage: Record<string, unknown> };
    expect(shown.dedupe).toEqual({ window: "7d", maxEntries: 200_000 });
    expect(shown.batch).toEqual({ maxRecords: 2_000, maxWait: 250 });
    expect(shown.nats).toMatchObject({ ackWait: "30 seconds", stallTimeout: "15s", url: "nats://127.0.0.1:4222" });
    expect(shown.storage).toMatchObject({ busyTimeout: "10s" });
    expect(configAsWritten(parseConfig({})).dedupe).toEqual({ window: "7d", maxEntries: 200_000 });
  });

  it("shows a duration from the environment as the variable wrote it", () => {
    const shown = configAsWritten(loadConfig({ env: { TRIBUTARY_DEDUPE_WINDOW: "3 days", TRIBUTARY_BATCH_MAX_WAIT: "50" } })) as { dedupe: { window: unknown }; batch: { maxWait: unknown } };
    expect(shown.dedupe.window).toBe("3 days");
    expect(shown.batch.maxWait).toBe(50);
  });
});

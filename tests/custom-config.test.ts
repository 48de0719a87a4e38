/** Custom feature definitions in the config: every wrong one is a config error naming its key. */
import { describe, expect, it } from "vitest";
import { parseConfig } from "../src/config.js";
import { ConfigError } from "../src/errors.js";

const problems = (custom: unknown[]): string[] => {
  try {
    parseConfig({ features: { custom } });
    return [];
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError & { problems?: string[] }).problems ?? [(err as Error).message];
  }
};

describe("features.custom", () => {
  it("accepts the README's three features, with windows in whole days", () => {
    const c = parseConfig({
      features: {
        custom: [
          { name: "spend_last_7_days", from: "transactions", aggregate: "sum", field: "amount_base", window: "7d" },
          { name: "mobile_sessions_last_30_days", from: "sessions", aggregate: "count", where: { device_type: "mobile" }, window: "30 days" },
          { name: "max_transaction_value", from: "transactions", aggregate: "max", field: "amount_base" },
        ],
      },
    });
    expect(c.features.custom.map((f) => f.window)).toEqual([7 * 86_400_000, 30 * 86_400_000, undefined]);
  });

  it("names the key of every wrong definition", () => {
    const p = problems([
      { name: "total_spend", from: "transactions", aggregate: "sum", field: "amount_base" },
      { name: "a", from: "orders", aggregate: "count" },
      { name: "b", from: "toString", aggregate: "count" },
      { name: "c", from: "transactions", aggregate: "max", field: "constructor" },
      { name: "d", from: "transactions", aggregate: "count", field: "currency" },
      { name: "e", from: "sessions", aggregate: "sum", field: "session_start" },
      { name: "f", from: "sessions", aggregate: "max", field: "device_type" },
      { name: "g", from: "sessions", aggregate: "count", where: { duration: "5" } },
      { name: "h", from: "sessions", aggregate: "count", where: { hasOwnProperty: "x" } },
      { name: "a", from: "events", aggregate: "count" },
    ]).join("\n");
    expect(p).toMatch(/features\.custom\.0\.name: "total_spend" is already a feature name/);
    expect(p).toMatch(/features\.custom\.1\.from: unknown entity "orders"/);
    expect(p).toMatch(/features\.custom\.2\.from: unknown entity "toString"/);
    expect(p).toMatch(/features\.custom\.3\.field: unknown field "constructor" of transactions/);
    expect(p).toMatch(/features\.custom\.4\.field: count counts records and takes no field/);
    expect(p).toMatch(/features\.custom\.5\.aggregate: sum of a time \(session_start\)/);
    expect(p).toMatch(/features\.custom\.6\.field: device_type is categorical/);
    expect(p).toMatch(/features\.custom\.7\.where\.duration: where filters by equality on categorical fields/);
    expect(p).toMatch(/features\.custom\.8\.where\.hasOwnProperty: unknown field "hasOwnProperty"/);
    expect(p).toMatch(/features\.custom\.9\.name: "a" is already a feature name/);
  });

  it("refuses a window that is not a whole number of days, and an unknown aggregate", () => {
    expect(problems([{ name: "x", from: "sessions", aggregate: "count", window: "36h" }]).join("\n")).toMatch(/features\.custom\.0\.window: a window is a whole number of days/);
    expect(problems([{ name: "x", from: "sessions", aggregate: "median", field: "duration" }]).join("\n")).toMatch(/features\.custom\.0\.aggregate/);
  });
});

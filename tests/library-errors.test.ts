/** Errors as an embedder meets them: thrown for a wrong argument, in words that fit a library. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTopology, FeatureReader, NoDataError, StorageError, StreamMismatchError, type Topology } from "../src/index.js";

describe("topology.features", () => {
  let dir: string;
  let topology: Topology;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "tributary-library-"));
    topology = createTopology({ source: { kind: "generator", messages: 300 }, dataDir: dir });
    await topology.start();
    await topology.done;
  });
  afterAll(async () => {
    await topology?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers for a valid as-of time", () => {
    const rows = topology.features.all(new Date());
    expect(rows.length).toBeGreaterThan(0);
    expect(topology.features.get(rows[0]!.customer_id, Date.now())).toMatchObject({ customer_id: rows[0]!.customer_id });
    expect(topology.features.get("no-such-customer", Date.now())).toBeNull();
  });

  it.each([
    ["an invalid Date", new Date("bogus")],
    ["NaN", Number.NaN],
    ["Infinity", Number.POSITIVE_INFINITY],
    ["a time past what a Date holds", 9e15],
  ])("get and all throw a RangeError for %s instead of answering null", (_what, asOf) => {
    expect(() => topology.features.get("1", asOf)).toThrow(RangeError);
    expect(() => topology.features.get("1", asOf)).toThrow(/^features\.get: asOf is not a valid time/);
    expect(() => topology.features.all(asOf)).toThrow(RangeError);
    expect(() => topology.features.all(asOf)).toThrow(/^features\.all: asOf is not a valid time/);
  });

  it("throws a TypeError for an as-of that is neither a number nor a Date, and for a customer id that is not a string", () => {
    expect(() => topology.features.get("1", "2026-03-01" as unknown as Date)).toThrow(TypeError);
    expect(() => topology.features.all("2026-03-01" as unknown as Date)).toThrow(/asOf must be epoch milliseconds or a Date, got the string "2026-03-01"/);
    expect(() => topology.features.get(42 as unknown as string)).toThrow(/customerId must be a string, got number/);
  });
});

describe("FeatureReader", () => {
  it("says the data dir is empty without telling a library user which command to run", () => {
    const dir = mkdtempSync(join(tmpdir(), "tributary-library-empty-"));
    try {
      let err: unknown;
      try {
        new FeatureReader(join(dir, "nothing"));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(NoDataError);
      expect(err).toBeInstanceOf(StorageError);
      expect((err as Error).message).toMatch(/^no gold data in .*nothing/);
      expect((err as Error).message).not.toMatch(/tributary (run|ingest)|--/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("StreamMismatchError", () => {
  it("says what would read on in the jetstream source's terms, and keeps the fact apart for the CLI's flags", () => {
    const e = new StreamMismatchError("stream S is not the stream bronze read", { remedy: "newStream" });
    expect(e.message).toBe("stream S is not the stream bronze read; the jetstream source's newStream option reads it as a new origin from its first message (the layers keep everything read so far)");
    expect(e.fact).toBe("stream S is not the stream bronze read");
    expect(e.remedy).toBe("newStream");
    expect(new StreamMismatchError("gone").message).toBe("gone");
    expect(new StreamMismatchError("gap", { remedy: "acceptGap" }).message).not.toMatch(/--/);
  });
});

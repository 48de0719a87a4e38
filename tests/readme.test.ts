/** The README's feature table is generated from the registry; this keeps the two equal. */
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { BUILTIN_FEATURES, featureTableMarkdown } from "../src/model/features.js";
import { FEATURE_COLUMNS } from "../src/features.js";
import { BUILTIN_ENTITIES, contractTableMarkdown, silverTableMarkdown } from "../src/model/entities.js";
import { ENTITIES } from "../src/types.js";

const README = readFileSync(fileURLToPath(new URL("../README.md", import.meta.url)), "utf8");

describe("README", () => {
  it("holds the feature table generated from BUILTIN_FEATURES, row for row", () => {
    expect(README).toContain(featureTableMarkdown());
  });
  it("holds the data contract and silver tables generated from BUILTIN_ENTITIES", () => {
    expect(README).toContain(contractTableMarkdown());
    expect(README).toContain(silverTableMarkdown());
    expect(BUILTIN_ENTITIES.map((e) => e.name)).toEqual([...ENTITIES]);
  });
  it("lists the features in output order", () => {
    expect(BUILTIN_FEATURES.map((f) => f.name)).toEqual(FEATURE_COLUMNS);
    expect(FEATURE_COLUMNS[0]).toBe("customer_id");
    expect(FEATURE_COLUMNS).toHaveLength(15);
  });
});

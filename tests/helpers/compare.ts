/** Compares feature rows from the CLI's CSV output with the independent reference. */
import { parse } from "csv-parse/sync";
import { expect } from "vitest";
import { compareFeatures, type ReferenceRow } from "../../src/testing/reference.js";

export function parseFeatureCsv(csv: string): Record<string, string>[] {
  return parse(csv, { columns: true, skip_empty_lines: true }) as Record<string, string>[];
}

export function expectFeaturesMatch(actual: Record<string, string>[], expected: ReferenceRow[]): void {
  expect(compareFeatures(actual, expected).slice(0, 20)).toEqual([]);
}

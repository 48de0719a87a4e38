/** Compares feature rows from the CLI's CSV output with the reference, money within 0.01. */
import { parse } from "csv-parse/sync";
import { expect } from "vitest";
import type { ReferenceRow } from "./reference.js";

export function parseFeatureCsv(csv: string): Record<string, string>[] {
  return parse(csv, { columns: true, skip_empty_lines: true }) as Record<string, string>[];
}

const MONEY = new Set(["total_spend", "avg_transaction_value", "spend_last_30_days"]);
const DECIMALS = new Set(["recency_days", "days_since_registration", "avg_session_duration_seconds"]);

export function expectFeaturesMatch(actual: Record<string, string>[], expected: ReferenceRow[]): void {
  expect(actual.map((r) => r.customer_id)).toEqual(expected.map((r) => r.customer_id));
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    for (const [k, v] of Object.entries(e)) {
      const cell = a[k];
      const where = `${e.customer_id}.${k}`;
      if (v === null) {
        expect(cell, where).toBe("");
      } else if (MONEY.has(k)) {
        expect(Math.abs(Number(cell) - (v as number)), `${where}: ${cell} vs ${v}`).toBeLessThanOrEqual(0.01);
      } else if (DECIMALS.has(k)) {
        expect(Math.abs(Number(cell) - (v as number)), `${where}: ${cell} vs ${v}`).toBeLessThan(1e-3);
      } else if (typeof v === "number") {
        expect(Number(cell), where).toBe(v);
      } else {
        expect(cell, where).toBe(v);
      }
    }
  }
}

/**
 * Money sums past the int64 range: every record is within the contract (micros <= 2^53 - 1), but a
 * customer can send enough of them that a SQL sum() of micros overflows. That must not break the
 * feature table for everyone.
 */
import { describe, expect, it } from "vitest";
import { from } from "rxjs";
import { pack } from "msgpackr";
import { createTopology } from "../src/topology.js";
import { FeatureReader } from "../src/features.js";
import type { SourceMessage } from "../src/types.js";
import { tempDirs } from "./helpers/tmp.js";

const LARGEST = 9_007_199_254.74099;

describe("money sums beyond int64", () => {
  const tmp = tempDirs("overflow");

  it("1,100 transactions of the largest amount on one partial day leave every customer's features readable and finite", async () => {
    const now = Date.now();
    // Earlier today: the day is partial, so the reader sums it from silver.
    const at = Math.max(Math.floor(now / 86_400_000) * 86_400_000, now - 60_000);
    const msgs: SourceMessage[] = [];
    const add = (fields: Record<string, unknown>) =>
      msgs.push({ origin: "test:overflow", originSeq: msgs.length + 1, subject: "tributary.transactions", data: pack(fields), receivedAt: now, publishedAt: null, contentType: null, msgId: null });
    for (let i = 0; i < 1_100; i++) add({ transaction_id: `w-${i}`, customer_id: "whale", amount: LARGEST, currency: "USD", transaction_date: at });
    add({ transaction_id: "m-1", customer_id: "minnow", amount: 12.5, currency: "USD", transaction_date: at });
    const dir = tmp();
    const t = createTopology({ dataDir: dir, source: { kind: "observable", messages: from(msgs) }, config: { storage: { commitThread: "inline", synchronous: "normal" } }, metrics: false });
    await t.start();
    expect((await t.done).silver.transactions).toBe(1_101);
    const reader = new FeatureReader(dir);
    try {
      // As of now: today is a partial day, read from silver.
      const rows = reader.compute(now);
      expect(rows.map((r) => r.customer_id)).toEqual(["minnow", "whale"]);
      expect(rows[0]).toMatchObject({ purchase_frequency: 1, total_spend: 12.5 });
      expect(rows[1]!.purchase_frequency).toBe(1_100);
      expect(Number.isFinite(rows[1]!.total_spend)).toBe(true);
      expect(rows[1]!.total_spend / (1_100 * LARGEST)).toBeCloseTo(1, 9);
      // As of tomorrow: the whole day comes from gold's bucket.
      const later = reader.compute(now + 2 * 86_400_000);
      expect(Number.isFinite(later[1]!.total_spend)).toBe(true);
      expect(later[0]).toMatchObject({ total_spend: 12.5 });
    } finally {
      reader.close();
    }
  });
});

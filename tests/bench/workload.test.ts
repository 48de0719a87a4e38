/**
 * The scaling bench's customer permutation: every customer exactly once per n messages, and
 * consecutive messages far apart in key order, as uniformly drawn customers are. (A stride that
 * walks the keys nearly in order once made large key spaces look as cheap as small ones.)
 */
import { describe, expect, it } from "vitest";
import { coprimeStride } from "../../bench/workload.js";

describe("coprimeStride", () => {
  it.each([1, 2, 3, 10, 97, 10_000, 100_000, 1_000_000])("is a permutation of 0..%i-1 that scatters neighbours", (n) => {
    const p = coprimeStride(n);
    const seen = new Uint8Array(n);
    let jumps = 0;
    let prev = 0;
    for (let j = 0; j < n; j++) {
      const k = (j * p) % n;
      expect(seen[k]).toBe(0);
      seen[k] = 1;
      if (j > 0) jumps += Math.abs(k - prev);
      prev = k;
    }
    // Uniformly random neighbours are n/3 apart on average; a near-sequential walk is ~0.
    if (n >= 100) expect(jumps / (n - 1)).toBeGreaterThan(n / 5);
  });
});

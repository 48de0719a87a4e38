/**
 * Customer segments for enrichment, through a bounded cache in front of silver's profiles;
 * profiles in flight update it first, so a transaction after its customer's profile in the same
 * batch sees the new segment.
 */
import { LRUCache } from "lru-cache";
import type { SegmentDirectory } from "../operators/enrich.js";

const NO_PROFILE = "\u0000none";

export class SegmentCache implements SegmentDirectory {
  // NO_PROFILE caches "no profile in silver", so customers without one cost one query, not one per record.
  private readonly cache = new LRUCache<string, string>({ max: 100_000 });
  /** @param lookup the segment silver holds for a customer, or undefined */
  constructor(private readonly lookup: (customerId: string) => string | undefined) {}
  get(customerId: string): string | undefined {
    let s = this.cache.get(customerId);
    if (s === undefined) {
      s = this.lookup(customerId) ?? NO_PROFILE;
      this.cache.set(customerId, s);
    }
    return s === NO_PROFILE ? undefined : s;
  }
  set(customerId: string, segment: string): void {
    this.cache.set(customerId, segment);
  }
}

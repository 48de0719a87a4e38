/**
 * Serving features from a running topology: point-in-time lookups through a per-customer cache
 * that every gold commit clears for the customers it touched, over one read-only feature reader.
 */
import { LRUCache } from "lru-cache";
import { FeatureReader, type FeatureRow } from "../features.js";
import type { CustomFeature } from "../model/features.js";

/** What `topology.features` offers. */
export interface FeatureLookups {
  /**
   * Features of one customer as of `asOf` (epoch ms or Date; default now), or null when not listed.
   * Throws a TypeError or RangeError for an `asOf` that is not a valid time (an invalid Date, NaN).
   */
  get(customerId: string, asOf?: number | Date): FeatureRow | null;
  /** Features of every customer listed as of `asOf` (default now); throws for an invalid `asOf`, as `get` does. */
  all(asOf?: number | Date): FeatureRow[];
}

/** Where a {@link FeatureService} reads: what another thread needs to serve the same lookups. */
export interface FeatureSource {
  readonly dataDir: string;
  readonly busyTimeout: number;
  readonly features: readonly CustomFeature[];
  /** The writer's gold presence bitmaps, when the reader is in the writer's process. */
  readonly presence?: SharedArrayBuffer;
}

/**
 * Feature lookups against a data dir's gold layer, cached per customer and as-of time. Lookups of
 * now are not cached (T moves); they read one customer's buckets (`FeatureReader.lookup`).
 */
export class FeatureService implements FeatureLookups {
  private reader: FeatureReader | null = null;
  /** Cached lookups: customer → (as-of ms → row or null). */
  private readonly cache = new LRUCache<string, Map<number, FeatureRow | null>>({ max: 10_000 });
  private goldVersion: number | null = null;

  /**
   * @param invalidation `told`: the committer's thread calls {@link invalidate} with the customers
   *   of each gold commit; `commits`: any commit to gold (seen in its `data_version`) clears the
   *   cache, for a thread that is not told.
   */
  constructor(
    private readonly dataDir: string,
    private readonly options: { busyTimeout: number; features: readonly CustomFeature[]; presence?: SharedArrayBuffer },
    private readonly invalidation: "told" | "commits" = "told",
  ) {}

  /** What another thread needs to serve the same lookups. */
  get source(): FeatureSource {
    return { dataDir: this.dataDir, busyTimeout: this.options.busyTimeout, features: this.options.features, presence: this.options.presence };
  }

  get(customerId: string, asOf?: number | Date): FeatureRow | null {
    if (typeof customerId !== "string") throw new TypeError(`features.get: customerId must be a string, got ${describeValue(customerId)}`);
    if (asOf === undefined) return this.open().lookup(Date.now(), customerId);
    const t = asOfMillis("features.get", asOf);
    if (this.invalidation === "commits") {
      const version = this.open().goldVersion();
      if (version !== this.goldVersion) this.cache.clear();
      this.goldVersion = version;
    }
    let perCustomer = this.cache.get(customerId);
    const hit = perCustomer?.get(t);
    if (hit !== undefined) return hit;
    const row = this.open().lookup(t, customerId);
    if (!perCustomer) this.cache.set(customerId, (perCustomer = new Map()));
    perCustomer.set(t, row);
    return row;
  }

  all(asOf: number | Date = Date.now()): FeatureRow[] {
    return this.open().compute(asOfMillis("features.all", asOf));
  }

  /** Drops the cached lookups of customers a gold commit touched. */
  invalidate(customers: readonly (string | null)[]): void {
    if (this.cache.size === 0) return;
    for (const c of customers) if (c !== null) this.cache.delete(c);
  }

  /** Closes the reader; the next lookup opens it again. */
  close(): void {
    this.reader?.close();
    this.reader = null;
    this.goldVersion = null;
  }

  private open(): FeatureReader {
    this.reader ??= new FeatureReader(this.dataDir, this.options);
    return this.reader;
  }
}

/** `asOf` as epoch milliseconds; a TypeError for anything but a number or Date, a RangeError for an invalid time. */
function asOfMillis(method: string, asOf: unknown): number {
  if (typeof asOf !== "number" && !(asOf instanceof Date)) {
    throw new TypeError(`${method}: asOf must be epoch milliseconds or a Date, got ${describeValue(asOf)}`);
  }
  const t = typeof asOf === "number" ? asOf : asOf.getTime();
  // The range a Date can hold (±8.64e15 ms); NaN is what `new Date("bogus")` holds.
  if (!Number.isFinite(t) || Math.abs(t) > 8.64e15) {
    throw new RangeError(`${method}: asOf is not a valid time (${asOf instanceof Date ? "an invalid Date" : String(asOf)})`);
  }
  return t;
}

function describeValue(v: unknown): string {
  if (v === null) return "null";
  if (typeof v === "string") return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v)}`;
  return typeof v === "object" ? (v.constructor?.name ?? "an object") : typeof v;
}

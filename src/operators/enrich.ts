import type { OperatorFunction } from "rxjs";
import { toOperator, type Stage } from "./stage.js";
import type { Staged, TransactionRecord } from "../types.js";

/** Where enrich looks up a customer's current segment; the topology backs it with silver. */
export interface SegmentDirectory {
  get(customerId: string): string | undefined;
  set(customerId: string, segment: string): void;
}

export interface EnrichOptions {
  /** Currency → multiplier to the base currency (validated to contain every accepted currency). */
  readonly rates: Readonly<Record<string, number>>;
  readonly segments: SegmentDirectory;
}

/**
 * Enriches a valid record: transactions get their amount in the base currency and the customer's
 * segment as known at this point of the stream; customer profiles update the segment directory.
 * Records the dedupe window called duplicates are enriched too, because silver's key has the
 * last word on them.
 *
 * @example
 * enrichRecord(staged, { rates: { EUR: 1.08 }, segments }).outcome.record.amount_base // 10.8 for €10
 */
export function enrichRecord(staged: Staged, options: EnrichOptions): Staged {
  const o = staged.outcome;
  if (o.status !== "valid" && o.status !== "duplicate") return staged;
  const r = o.record;
  if (r.entity === "customers") {
    if (o.status === "valid") options.segments.set(r.customer_id, r.customer_segment);
    return staged;
  }
  if (r.entity !== "transactions") return staged;
  const record: TransactionRecord = {
    ...r,
    amount_base: r.amount * options.rates[r.currency]!,
    customer_segment: options.segments.get(r.customer_id) ?? "unknown",
  };
  return { msg: staged.msg, entity: staged.entity, outcome: { status: o.status, record } };
}

/** The enrich stage: {@link enrichRecord} as a named value, for the composed hot path. */
export function enrichStage(options: EnrichOptions): Stage<Staged, Staged> {
  return { id: "enrich", apply: (staged) => enrichRecord(staged, options) };
}

/** Pipeable form of {@link enrichRecord}, derived from the same stage. */
export function enrich(options: EnrichOptions): OperatorFunction<Staged, Staged> {
  return toOperator(enrichStage(options));
}

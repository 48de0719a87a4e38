import type { OperatorFunction } from "rxjs";
import { toOperator, type Stage } from "./stage.js";
import type { Staged, ValidRecord } from "../types.js";
import { BUILTIN_ENTITIES, fieldNamed, keyOf, type EntityDefinition } from "../model/entities.js";

/** Where enrich looks up a customer's current segment; the topology backs it with silver. */
export interface SegmentDirectory {
  get(customerId: string): string | undefined;
  set(customerId: string, segment: string): void;
}

export interface EnrichOptions {
  /** Currency → multiplier to the base currency (validated to contain every accepted currency). */
  readonly rates: Readonly<Record<string, number>>;
  readonly segments: SegmentDirectory;
  /** The entities whose derived columns enrich fills (see `model/entities.ts`); default the built-in five. */
  readonly entities?: readonly EntityDefinition[];
}

/** One derived column, compiled: a segment lookup, or an amount converted by its currency's rate. */
type Derivation = { readonly column: string; readonly segment: true } | { readonly column: string; readonly segment: false; readonly amount: string; readonly currency: string };

const compiled = new WeakMap<readonly EntityDefinition[], ReadonlyMap<string, readonly Derivation[]>>();

function derivationsOf(entities: readonly EntityDefinition[]): ReadonlyMap<string, readonly Derivation[]> {
  let m = compiled.get(entities);
  if (m !== undefined) return m;
  const out = new Map<string, readonly Derivation[]>();
  for (const e of entities) {
    if (!e.derived?.length) continue;
    out.set(
      e.name,
      e.derived.map((d): Derivation => {
        if (d.derive === "segment") return { column: d.column, segment: true };
        const amount = fieldNamed(e, d.derive.baseAmountOf)!;
        return { column: d.column, segment: false, amount: keyOf(e, amount), currency: keyOf(e, fieldNamed(e, amount.currency!)!) };
      }),
    );
  }
  compiled.set(entities, out);
  return out;
}

/**
 * Enriches a valid record: every entity's derived columns are filled (transactions get their
 * amount in the base currency and the customer's segment as known at this point of the stream),
 * and customer profiles update the segment directory. Records the dedupe window called
 * duplicates are enriched too, because silver's key has the last word on them.
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
  const derivations = derivationsOf(options.entities ?? BUILTIN_ENTITIES).get(r.entity);
  if (derivations === undefined) return staged;
  const record: Record<string, unknown> = { ...r };
  for (const d of derivations) {
    record[d.column] = d.segment
      ? (options.segments.get(r.customer_id) ?? "unknown")
      : (record[d.amount] as number) * options.rates[record[d.currency] as string]!;
  }
  return { msg: staged.msg, entity: staged.entity, outcome: { status: o.status, record: record as unknown as ValidRecord } };
}

/** The enrich stage: {@link enrichRecord} as a named value, for the composed hot path. */
export function enrichStage(options: EnrichOptions): Stage<Staged, Staged> {
  return { id: "enrich", apply: (staged) => enrichRecord(staged, options) };
}

/** Pipeable form of {@link enrichRecord}, derived from the same stage. */
export function enrich(options: EnrichOptions): OperatorFunction<Staged, Staged> {
  return toOperator(enrichStage(options));
}

/**
 * Stages as values: each per-record step of the graph (decode, validate, dedupe, enrich, and any
 * an embedder adds) is a named, plain function. The hot path composes them into one function, so
 * a record costs one subscriber hop however many stages there are (as RxJS's `map` fuses), and the
 * pipeable operator of a stage is derived from the same value, so the graph you read is the graph
 * that runs. Bronze replay runs the same composition.
 */
import { map, type OperatorFunction } from "rxjs";
import type { SourceMessage, Staged } from "../types.js";

/** A named per-record step. `id` is stable: logs, errors and insertion points use it. */
export interface Stage<I = Staged, O = Staged> {
  readonly id: string;
  readonly apply: (input: I) => O;
}

/** The built-in stages, in order; an embedder's stage goes after one of them. */
export const STAGE_IDS = ["decode", "validate", "dedupe", "enrich"] as const;
export type StageId = (typeof STAGE_IDS)[number];

/**
 * A stage of an embedder's own, placed right after a built-in one. It sees every record with its
 * outcome so far (decoded, valid, duplicate or quarantined) and returns it, changed or not. To
 * route a record to quarantine, return it with `outcome: { status: "quarantined", reason, field,
 * detail }`; a custom `reason` is a lower-case word of its own (`pii_found`), counted like the
 * built-in ones. It must be deterministic and synchronous: bronze replay runs it again after a
 * crash, and must get the same result.
 *
 * @example
 * { after: "validate", id: "redact-email", apply: (s) => s.outcome.status === "valid" && s.outcome.record.entity === "customers"
 *     ? { ...s, outcome: { ...s.outcome, record: { ...s.outcome.record, email: null } } } : s }
 */
export interface InsertedStage extends Stage {
  readonly after: StageId;
}

/** Pipeable form of a stage: the same function, as an RxJS operator. */
export function toOperator<I, O>(stage: Stage<I, O>): OperatorFunction<I, O> {
  return map(stage.apply);
}

/**
 * Composes the built-in stages with an embedder's into one function from a source message to a
 * staged record. Built-ins run in {@link STAGE_IDS} order; inserted stages run right after the
 * stage they name, in the order given.
 *
 * @throws TypeError for an insertion point that is not a built-in stage, or a duplicate id.
 */
export function composeStages(first: Stage<SourceMessage, Staged>, rest: readonly Stage[], inserted: readonly InsertedStage[] = []): (m: SourceMessage) => Staged {
  const builtIn = [first.id, ...rest.map((s) => s.id)];
  const ids = new Set(builtIn);
  for (const s of inserted) {
    if (!builtIn.includes(s.after)) throw new TypeError(`stage ${s.id}: "after" must be one of ${builtIn.join(", ")}, got "${s.after}"`);
    if (ids.has(s.id)) throw new TypeError(`stage id ${s.id} is used twice`);
    ids.add(s.id);
  }
  const after = (id: string) => inserted.filter((s) => s.after === id).map((s) => s.apply);
  const chain: ((s: Staged) => Staged)[] = [...after(first.id)];
  for (const s of rest) chain.push(s.apply, ...after(s.id));
  const start = first.apply;
  if (chain.length === 3 && inserted.length === 0) {
    // The common case, unrolled: no array walk per record.
    const [a, b, c] = chain as [(s: Staged) => Staged, (s: Staged) => Staged, (s: Staged) => Staged];
    return (m) => c(b(a(start(m))));
  }
  return (m) => {
    let s = start(m);
    for (let i = 0; i < chain.length; i++) s = chain[i]!(s);
    return s;
  };
}

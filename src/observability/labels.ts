/** Metric labels that must stay bounded sets, kept apart from prom-client so the commit thread can compute them. */
import { ENTITIES } from "../types.js";

const KNOWN_ENTITIES: ReadonlySet<string> = new Set(ENTITIES);

/** The entity label: one of the five entities, or `unknown` for anything else (bounded cardinality). */
export function entityLabel(entity: string): string {
  return KNOWN_ENTITIES.has(entity) ? entity : "unknown";
}
